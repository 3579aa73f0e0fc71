"""Tools from Model Context Protocol servers, as chinwag tools (docs/mcp.md)."""
