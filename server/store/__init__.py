"""Persistence behind the `Store` protocol (`base.py`); SQLite is the embedded backend."""
