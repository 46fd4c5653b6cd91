"""The web console (see server.py)."""
