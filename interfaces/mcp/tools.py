"""The MCP tools: each acts as the calling token's person through the code path the HTTP
API uses (interfaces.starting, the workflows' updates signed as the dashboard's delegate),
so the workflows refuse what that person may not do, and a goal of another workspace is
unknown. A refusal comes back as the tool's error, saying why."""

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import asyncpg
from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent
from pydantic import Field, ValidationError
from starlette.requests import Request
from temporalio.client import Client

from goalkeeper.errors import InvalidGoalSpec
from goalkeeper.models import describe_validation_error
from interfaces.api import actions, goals
from interfaces.api.actions import BudgetBody, CommentBody, DecisionBody
from interfaces.api.auth import Access
from interfaces.api.problems import Problem
from interfaces.api.state import MAX_LIMIT
from interfaces.api.work import workspace_for
from interfaces.cli.queries import awaiting_approval
from interfaces.mcp.gate import access_of
from interfaces.starting import AlreadyStarted, InvalidRequest, start_goal, start_request

P = ParamSpec("P")
T = TypeVar("T")

GoalId = Annotated[str, Field(min_length=1, description="a goal id, as start_goal answers it")]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="rows per page (1-1000)")]
Offset = Annotated[int, Field(ge=0, description="rows to skip")]


def refusals(tool: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """The API's refusals (problem details) as the tool's error, with their message."""

    @functools.wraps(tool)
    async def refusing(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await tool(*args, **kwargs)
        except Problem as exc:
            raise ToolError(exc.detail) from None
        except (InvalidGoalSpec, InvalidRequest, AlreadyStarted) as exc:
            raise ToolError(str(exc)) from None

    return refusing


class Caller:
    """What a tool call acts with: its HTTP request, the app's connections, the token's
    access."""

    def __init__(self, ctx: Context) -> None:
        request = ctx.request_context.request
        assert isinstance(request, Request)  # streamable HTTP: the call's own request
        self.request = request
        self.access: Access = access_of(request)
        self.pool: asyncpg.Pool = request.app.state.pool
        self.client: Client = request.app.state.client
        self.task_queue: str = request.app.state.mcp_task_queue


def tools() -> list[Tool]:
    """The tools, for the server to serve."""
    return [
        Tool.from_function(refusals(tool), name=tool.__name__.removesuffix("_tool"))
        for tool in (
            ask,
            start_goal_tool,
            goal_progress,
            goal_tasks,
            list_approvals,
            decide_approval,
            raise_budget,
            stop_goal,
        )
    ]


class ArgumentCheck:
    """Checks a tool call's arguments before it runs: those that do not validate are its
    error, one line naming each bad or unknown argument, what was expected and what was
    given."""

    def __init__(self, served: list[Tool]) -> None:
        self.tools = {tool.name: tool for tool in served}

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
        params = ctx.params or {}
        name = params.get("name")
        tool = (
            self.tools.get(name) if ctx.method == "tools/call" and isinstance(name, str) else None
        )
        arguments = params.get("arguments") or {}
        if tool is not None and isinstance(arguments, dict):
            known = sorted(tool.parameters.get("properties", {}))
            unknown = sorted(set(arguments) - set(known))
            if unknown:
                text = (
                    f"invalid arguments to {tool.name}: unknown {unknown}, expected some of {known}"
                )
                return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
            try:
                tool.fn_metadata.validate_arguments(arguments)
            except ValidationError as exc:
                text = describe_validation_error(exc, f"arguments to {tool.name}")
                return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        return await call_next(ctx)


async def ask(
    question: Annotated[str, Field(min_length=1, description="the question, in plain words")],
    ctx: Context,
    workspace: Annotated[
        str | None, Field(description="default: the token's only workspace, else 'default'")
    ] = None,
    approvers: Annotated[list[str], Field(description="who may approve its work")] = [],  # noqa: B006
    request_id: Annotated[str | None, Field(description="default: generated")] = None,
) -> dict[str, Any]:
    """Ask a question, as `starter.py ask` does: a triage agent answers it or sets a goal.
    Answers the request's id."""
    caller = Caller(ctx)
    spec = {
        "question": question,
        "workspace": workspace_for(caller.access, workspace),
        "approvers": approvers,
    }
    started = await start_request(_given(caller.client), caller.task_queue, spec, request_id)
    return {"request_id": started}


async def start_goal_tool(
    spec: Annotated[
        dict[str, Any],
        Field(
            description="a goal spec: title, description, workspace, approvers and its tasks "
            "(id, title, skill, requires_approval, depends_on), or a stored runbook and its "
            "parameters, or a description to plan from"
        ),
    ],
    ctx: Context,
) -> dict[str, Any]:
    """Start a goal, as `starter.py goal start` does. Answers the goal's id."""
    caller = Caller(ctx)
    spec = {**spec, "workspace": workspace_for(caller.access, spec.get("workspace"))}
    goal_id = await start_goal(_given(caller.client), _given(caller.pool), caller.task_queue, spec)
    return {"goal_id": goal_id}


async def goal_progress(goal_id: GoalId, ctx: Context) -> dict[str, Any]:
    """A goal's status, stage, progress, counts and spend against its budget; a running
    goal's figures from its workflow."""
    caller = Caller(ctx)
    return await goals.goal(caller.pool, caller.client, caller.access, goal_id, live=True)


async def goal_tasks(
    goal_id: GoalId, ctx: Context, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """A goal's tasks in plan order: status, agent, attempts, reworks, spend, dependencies."""
    caller = Caller(ctx)
    return await goals.goal_tasks(caller.pool, caller.access, goal_id, None, limit, offset)


async def list_approvals(ctx: Context, limit: Limit = 50) -> dict[str, Any]:
    """Tasks waiting for the token's person to decide on, oldest first, each with the
    result to decide on and its digest."""
    caller = Caller(ctx)
    person, scope = caller.access.person, caller.access.scope
    return {"items": await awaiting_approval(caller.pool, person, limit, scope)}


async def decide_approval(
    goal_id: GoalId,
    task_id: Annotated[str, Field(min_length=1, description="the task's id in its goal")],
    decision: Literal["approve", "reject"],
    ctx: Context,
    comment: str = "",
    result_digest: Annotated[
        str | None,
        Field(description="the content_digest of the result seen: refused if it changed since"),
    ] = None,
) -> dict[str, Any]:
    """Approve or reject a task's result as the token's person, one of its approvers; on
    a failed task, retry it (approve) or give up (reject)."""
    caller = Caller(ctx)
    body = DecisionBody.model_validate(
        {"decision": decision, "comment": comment, "result_digest": result_digest}
    )
    return await actions.decide(
        caller.request, caller.pool, caller.client, caller.access, goal_id, task_id, body
    )


async def raise_budget(
    goal_id: GoalId,
    ctx: Context,
    usd: Annotated[float | None, Field(gt=0, description="the new budget in USD")] = None,
    tokens: Annotated[int | None, Field(gt=0, description="the new budget in tokens")] = None,
    comment: str = "",
) -> dict[str, Any]:
    """Raise a goal's budget as one of its approvers; a goal paused at its budget goes on."""
    caller = Caller(ctx)
    body = BudgetBody(usd=usd, tokens=tokens, comment=comment)
    return await actions.raise_budget(
        caller.request, caller.pool, caller.client, caller.access, goal_id, body
    )


async def stop_goal(goal_id: GoalId, ctx: Context, comment: str = "") -> dict[str, Any]:
    """Stop a goal as one of its approvers: running tasks are aborted, the rest skipped."""
    caller = Caller(ctx)
    return await actions.stop(
        caller.request,
        caller.pool,
        caller.client,
        caller.access,
        goal_id,
        CommentBody(comment=comment),
    )


def _given(value: Any) -> Callable[[], Awaitable[Any]]:
    """A connection already held, as the lazy source interfaces.starting takes."""

    async def source() -> Any:
        return value

    return source
