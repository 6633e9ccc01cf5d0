"""Contracts and plumbing every Khidma service uses. No business rule lives here."""
