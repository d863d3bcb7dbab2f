"""Goalkeeper as an MCP server: people's assistants ask, start goals, follow them and
decide approvals over streamable HTTP at /mcp, with the API's personal tokens."""
