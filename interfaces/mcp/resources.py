"""The MCP resources: a goal's deliverable (for a token that may see the goal) and the
stored runbooks."""

import json

from fastapi import FastAPI
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from starlette.requests import Request

from interfaces.api.goals import known_goal
from interfaces.api.problems import Problem
from interfaces.mcp.gate import access_of
from store.deliverables import read_deliverable
from store.runbooks import fetch_runbook, list_runbooks

DELIVERABLE = "goalkeeper://goals/{goal_id}/deliverable"
RUNBOOKS = "goalkeeper://runbooks"
RUNBOOK = "goalkeeper://runbooks/{name}"


def install(server: MCPServer, app: FastAPI) -> None:
    """Add the resources to `server`, reading from `app`'s pool (the gate has let only a
    valid token through)."""

    @server.resource(
        DELIVERABLE,
        name="deliverable",
        description="a goal's deliverable: its results compiled into one document when it ends",
        mime_type="text/markdown",
    )
    async def deliverable(goal_id: str, ctx: Context) -> str:
        request = _request(ctx)
        try:
            await known_goal(request.app.state.pool, access_of(request), goal_id)
        except Problem as exc:
            raise ResourceNotFoundError(exc.detail) from None
        body = await read_deliverable(request.app.state.pool, goal_id)
        if body is None:
            raise ResourceNotFoundError(
                f"goal {goal_id!r} has no deliverable yet: expected a goal that has ended"
            )
        return body

    @server.resource(
        RUNBOOKS,
        name="runbooks",
        description="the stored runbooks, latest versions, with their history",
        mime_type="application/json",
    )
    async def runbooks() -> str:
        return json.dumps(await list_runbooks(app.state.pool), default=str, indent=2)

    @server.resource(
        RUNBOOK,
        name="runbook",
        description="a stored runbook's latest version: its parameters and tasks",
        mime_type="application/json",
    )
    async def runbook(name: str) -> str:
        found = await fetch_runbook(app.state.pool, name)
        if found is None:
            raise ResourceNotFoundError(f"no runbook {name!r}: expected a name from {RUNBOOKS}")
        return found.model_dump_json(indent=2)


def _request(ctx: Context) -> Request:
    request = ctx.request_context.request
    assert isinstance(request, Request)
    return request
