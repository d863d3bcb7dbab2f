"""A small MCP server for the demo's offline LLM agents: a made-up library to search and a
word counter. It imports only the `mcp` SDK, so it runs as a plain script over stdio:

    python interfaces/agents/demo_tools.py
"""

import hashlib

from mcp.server import MCPServer

server = MCPServer("demo-library")

TOPICS = ("audience", "pricing", "channels", "timing", "risks", "metrics")


@server.tool()
def search(query: str, limit: int = 3) -> list[str]:
    """Find sources on `query` in the demo's library; the same query finds the same ones."""
    seed = int(hashlib.sha256(query.encode()).hexdigest(), 16)
    picked = [TOPICS[(seed >> (4 * n)) % len(TOPICS)] for n in range(max(1, min(limit, 5)))]
    return [f"Notes on {topic} for {query[:80]!r} (source {n + 1})" for n, topic in
            enumerate(picked)]  # fmt: skip


@server.tool()
def word_count(text: str) -> int:
    """Count the words of `text`."""
    return len(text.split())


if __name__ == "__main__":
    server.run()
