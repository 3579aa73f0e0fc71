"""The OpenAI-compatible HTTP API: `/v1/models` and `/v1/chat/completions`, on the same
turns, store, tools, limits and auth as the socket."""
