"""A small MCP server on the `mcp` SDK for the LLM agent's tests.

python tests/mcp_calc.py            # over stdio
python tests/mcp_calc.py http PORT  # streamable HTTP at http://127.0.0.1:PORT/mcp
"""

import sys

import anyio
from mcp.server import MCPServer

server = MCPServer("calc")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def boom(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"boom: {reason}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
