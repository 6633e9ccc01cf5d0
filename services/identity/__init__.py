"""Identity: the embedded identity provider (users, roles, machine clients, tokens)."""
