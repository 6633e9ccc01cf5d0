"""One module per channel adapter (see services/channels/main.py)."""
