"""The Python client library for chinwag bots. It imports nothing from the server, so a bot
can depend on it alone (its one requirement is `websockets`). See `docs/bots.md`."""

from chinwag_client.client import (
    AuthenticationFailed,
    ChinwagClient,
    ChinwagError,
    ClientClosed,
    ResumeLost,
)

__all__ = ["AuthenticationFailed", "ChinwagClient", "ChinwagError", "ClientClosed", "ResumeLost"]
