"""The embedded SQLite backend of the `Store` protocol."""
