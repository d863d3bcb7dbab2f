"""The MCP server at /mcp of the API app: its tools and resources, served as streamable
HTTP behind the token gate, its session manager running for the app's lifetime."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route

from interfaces.config import Settings
from interfaces.mcp import resources, tools
from interfaces.mcp.gate import TokenGate

PATH = "/mcp"

INSTRUCTIONS = (
    "Goalkeeper runs goals for teams of AI agents. Ask a question (ask) or start a goal "
    "(start_goal), follow it (goal_progress, goal_tasks), decide the approvals waiting for "
    "you (list_approvals, decide_approval), raise a goal's budget or stop it. You act as "
    "your token's person, in its workspaces only."
)


def build(app: FastAPI) -> MCPServer:
    """The MCP server, its tools and resources reading from `app`'s connections."""
    served = tools.tools()
    server: MCPServer = MCPServer(
        "goalkeeper",
        title="Goalkeeper",
        instructions=INSTRUCTIONS,
        tools=served,
        middleware=[tools.ArgumentCheck(served)],
        # The SDK sets up the root logger where nothing has (the CLI): at INFO, every
        # command would print the libraries' chatter (the demo's pg_ctl lines, say).
        log_level="WARNING",
    )
    resources.install(server, app)
    return server


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the MCP server at /mcp of `app`, behind the token gate; the API's own Host
    check and body limit come first. Stateless: each request stands alone, so any
    replica of the API answers it and revoking a token takes effect at once."""
    server = build(app)
    # Its Host check is the app's (HostCheck, GOALKEEPER_API_ALLOWED_HOSTS); a browser
    # page cannot act here, as only a bearer token is accepted, never a cookie.
    server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    app.state.mcp_task_queue = settings.task_queue
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with outer(app), _running(manager):
            yield

    app.router.lifespan_context = lifespan
    app.router.routes.append(
        Route(PATH, TokenGate(manager.handle_request), include_in_schema=False)
    )


@asynccontextmanager
async def _running(manager: StreamableHTTPSessionManager) -> AsyncIterator[None]:
    """The session manager running in a task of its own: its task group is entered and
    left in one task, wherever the app's lifespan is entered and left (a test fixture
    enters it in one task and leaves it in another)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with manager.run():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run(), name="mcp session manager")
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()  # it failed to start: say why
    try:
        yield
    finally:
        stop.set()
        await task
