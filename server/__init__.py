"""chinwag: a realtime chat-style agent server."""

__version__ = "0.1.0"
