"""The MCP server at /mcp, through the `mcp` SDK's own streamable HTTP client against the
API served by uvicorn: tools and resources as the token's person, and what it refuses
(no token, a revoked one, another workspace's goal, a person who is not the approver,
malformed arguments, an oversized body), each with its reason, losing nothing."""

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent, TextResourceContents
from temporalio.client import Client as Temporal
from temporalio.client import WorkflowFailureError

from goalkeeper.runbooks import parse_runbook
from goalkeeper.statuses import TaskStatus
from interfaces.api.app import create_app
from interfaces.config import Settings
from store.runbooks import add_runbook
from store.tokens import new_token, revoke_token
from tests.helpers import SimulatedAgents, eventually, goal_spec, new_goal_id, wait_task
from tests.test_runbooks import runbook_toml

PROBLEM = "application/problem+json"
LIMIT = 64 * 1024
"""The body limit of the test's app: small, so an oversized body is cheap to send."""

TOOLS = {
    "ask",
    "start_goal",
    "goal_progress",
    "goal_tasks",
    "list_approvals",
    "decide_approval",
    "raise_budget",
    "stop_goal",
}


@pytest.fixture
async def mcp_url(pool: asyncpg.Pool, client: Temporal, task_queue: str) -> AsyncIterator[str]:
    """The API app served by uvicorn on a free port, starting work on the test's queue;
    its /mcp URL."""
    settings = Settings(task_queue=task_queue, api_max_body_bytes=LIMIT)
    app = create_app(settings, pool=pool, client=client)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: asyncio.sleep(0, server.started), what="uvicorn started")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def token(pool: asyncpg.Pool, person: str, *workspaces: str) -> str:
    made = await new_token(pool, person, workspaces)
    text: str = made["token"]
    return text


@asynccontextmanager
async def connected(url: str, bearer: str | None) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, sending `bearer` as the API's token."""
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http), cache=None) as session,
    ):
        yield session


def answer(result: CallToolResult) -> Any:
    """A tool's successful answer, as JSON."""
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content.get("result", result.structured_content)
    first = result.content[0]
    assert isinstance(first, TextContent)
    return json.loads(first.text)


def tool_error(result: CallToolResult, *words: str) -> str:
    """A tool's error message, holding each of `words`, and no stack trace."""
    assert result.is_error, result.content
    first = result.content[0]
    assert isinstance(first, TextContent)
    for word in words:
        assert word in first.text, first.text
    assert "Traceback" not in first.text and 'File "' not in first.text
    assert "pydantic.dev" not in first.text and "\n" not in first.text
    return first.text


async def test_tools_and_resources_are_listed_and_runbooks_read(
    mcp_url: str, pool: asyncpg.Pool, workspace: str
) -> None:
    name = f"mcp-{uuid.uuid4().hex[:6]}"
    await add_runbook(pool, parse_runbook(runbook_toml(name, "lighthouse"), "test"))
    async with connected(mcp_url, await token(pool, "reader", workspace)) as mcp:
        tools = (await mcp.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        decide = next(t for t in tools if t.name == "decide_approval")
        assert decide.input_schema["properties"]["decision"]["enum"] == ["approve", "reject"]
        assert "ctx" not in decide.input_schema["properties"]
        listed = {str(r.uri) for r in (await mcp.list_resources()).resources}
        assert "goalkeeper://runbooks" in listed
        templates = {
            t.uri_template for t in (await mcp.list_resource_templates()).resource_templates
        }
        assert templates == {
            "goalkeeper://goals/{goal_id}/deliverable",
            "goalkeeper://runbooks/{name}",
        }
        read = (await mcp.read_resource("goalkeeper://runbooks")).contents[0]
        assert isinstance(read, TextResourceContents)
        assert name in {r["name"] for r in json.loads(read.text)}
        one = (await mcp.read_resource(f"goalkeeper://runbooks/{name}")).contents[0]
        assert isinstance(one, TextResourceContents)
        assert json.loads(one.text)["name"] == name
        with pytest.raises(MCPError) as unknown:
            await mcp.read_resource("goalkeeper://runbooks/no-such-runbook")
        assert "no runbook 'no-such-runbook'" in unknown.value.error.message


async def test_ask_start_a_goal_follow_it_and_read_its_deliverable(
    mcp_url: str, client: Temporal, pool: asyncpg.Pool, workspace: str
) -> None:
    async with connected(mcp_url, await token(pool, "asker", workspace)) as mcp:
        asked = answer(await mcp.call_tool("ask", {"question": "Who approves refunds?"}))
        request_id = asked["request_id"]
        described = await client.get_workflow_handle(request_id).describe()
        assert described.workflow_type == "RequestWorkflow"

        goal_id = new_goal_id()
        spec = goal_spec(2, workspace, goal_id=goal_id)
        started = answer(await mcp.call_tool("start_goal", {"spec": spec}))
        assert started == {"goal_id": goal_id}
        await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)

        async def recorded() -> Any:
            found = await mcp.call_tool("goal_progress", {"goal_id": goal_id})
            return None if found.is_error else answer(found)

        progress = await eventually(recorded, what="the goal in the read model")
        assert (progress["goal_id"], progress["workspace"], progress["tasks_total"]) == (
            goal_id,
            workspace,
            2,
        )
        tasks = answer(await mcp.call_tool("goal_tasks", {"goal_id": goal_id}))
        assert [t["task_id"] for t in tasks["items"]] == ["t1", "t2"]

        async with SimulatedAgents(client, pool, goal_id):
            await client.get_workflow_handle(goal_id).result()
        done = answer(await mcp.call_tool("goal_progress", {"goal_id": goal_id}))
        assert (done["status"], done["progress_percentage"]) == ("completed", 100.0)
        uri = f"goalkeeper://goals/{goal_id}/deliverable"
        document = (await mcp.read_resource(uri)).contents[0]
        assert isinstance(document, TextResourceContents)
        assert "t1 done" in document.text and "t2 done" in document.text


async def test_an_approval_decided_only_by_its_approver(
    mcp_url: str, client: Temporal, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    tasks = [{"id": "t1", "title": "Sign off", "skill": "writing", "requires_approval": True}]
    goal_id = new_goal_id()
    spec = goal_spec(workspace=workspace, tasks=tasks, approvers=["ops-lead"], goal_id=goal_id)
    lead, intruder = (
        await token(pool, "ops-lead", workspace),
        await token(pool, "intruder", workspace),
    )
    async with connected(mcp_url, lead) as mcp:
        answer(await mcp.call_tool("start_goal", {"spec": spec}))
    async with SimulatedAgents(client, pool, goal_id):
        await wait_task(client, goal_id, "t1", TaskStatus.AWAITING_APPROVAL)

    async with connected(mcp_url, intruder) as mcp:
        assert answer(await mcp.call_tool("list_approvals", {}))["items"] == []
        arguments = {"goal_id": goal_id, "task_id": "t1", "decision": "approve"}
        denied = await mcp.call_tool("decide_approval", arguments)
        tool_error(denied, "'intruder' may not decide", "ops-lead")
    await wait_task(client, goal_id, "t1", TaskStatus.AWAITING_APPROVAL)
    async with connected(mcp_url, lead) as mcp:
        waiting = answer(await mcp.call_tool("list_approvals", {}))["items"]
        assert [(w["goal_id"], w["task_id"]) for w in waiting] == [(goal_id, "t1")]
        malformed = {"goal_id": goal_id, "task_id": "t1", "decision": "maybe"}
        wrong = await mcp.call_tool("decide_approval", malformed)
        tool_error(wrong, "decision: Input should be 'approve' or 'reject', got 'maybe'")
        stale = {
            "goal_id": goal_id,
            "task_id": "t1",
            "decision": "approve",
            "result_digest": "0" * 64,
        }
        tool_error(await mcp.call_tool("decide_approval", stale), "has a new result")
        decided = {
            "goal_id": goal_id,
            "task_id": "t1",
            "decision": "approve",
            "comment": "fine",
            "result_digest": waiting[0]["content_digest"],
        }
        task = answer(await mcp.call_tool("decide_approval", decided))["task"]
        assert (task["status"], task["history"][-1]) == ("completed", "ops-lead approved: fine")
        again = await mcp.call_tool("decide_approval", {**decided, "result_digest": None})
        tool_error(again, "already ended")
    await client.get_workflow_handle(goal_id).result()


async def test_a_budget_raised_and_a_goal_stopped_by_its_approver(
    mcp_url: str, client: Temporal, pool: asyncpg.Pool, workspace: str
) -> None:
    goal_id = new_goal_id()
    spec = goal_spec(
        workspace=workspace,
        approvers=["ops-lead"],
        budget_usd=1.0,
        require_signatures=True,
        goal_id=goal_id,
    )
    lead, intruder = (
        await token(pool, "ops-lead", workspace),
        await token(pool, "intruder", workspace),
    )
    async with connected(mcp_url, lead) as mcp:
        answer(await mcp.call_tool("start_goal", {"spec": spec}))
    await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)

    async with connected(mcp_url, intruder) as mcp:
        refused = await mcp.call_tool("raise_budget", {"goal_id": goal_id, "usd": 5})
        tool_error(refused, "'intruder'")
        tool_error(await mcp.call_tool("stop_goal", {"goal_id": goal_id}), "'intruder'")
    async with connected(mcp_url, lead) as mcp:
        negative = await mcp.call_tool("raise_budget", {"goal_id": goal_id, "usd": -1})
        tool_error(negative, "usd", "-1")
        tool_error(await mcp.call_tool("raise_budget", {"goal_id": goal_id}), "neither")
        raised = await mcp.call_tool(
            "raise_budget", {"goal_id": goal_id, "usd": 5, "comment": "worth it"}
        )
        assert answer(raised)["budget_usd"] == 5.0
        stopped = await mcp.call_tool("stop_goal", {"goal_id": goal_id, "comment": "enough"})
        answer(stopped)
        with pytest.raises(WorkflowFailureError) as failed:
            await client.get_workflow_handle(goal_id).result()
        assert "stopped by 'ops-lead': enough" in str(failed.value.cause)
        tool_error(await mcp.call_tool("stop_goal", {"goal_id": goal_id}), goal_id)


async def test_hostile_callers_are_refused_with_their_reason(
    mcp_url: str, client: Temporal, pool: asyncpg.Pool, workspace: str
) -> None:
    goal_id = new_goal_id()
    mine = await token(pool, "owner", workspace)
    async with connected(mcp_url, mine) as mcp:
        answer(
            await mcp.call_tool("start_goal", {"spec": goal_spec(1, workspace, goal_id=goal_id)})
        )
    await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "stop_goal", "arguments": {"goal_id": goal_id}},
    }
    wire = {"Accept": "application/json, text/event-stream"}

    async with httpx.AsyncClient(timeout=60) as http:
        missing = await http.post(mcp_url, json=call, headers=wire)
        problem = refusal(missing, 401, "missing token", "Authorization: Bearer")
        assert missing.headers["www-authenticate"] == "Bearer" and problem["instance"] == "/mcp"
        basic = await http.post(mcp_url, json=call, headers=wire | {"Authorization": "Basic eDp5"})
        refusal(basic, 401, "missing token")
        guess = f"guess-{uuid.uuid4().hex}"
        unknown = await http.post(mcp_url, json=call, headers=wire | bearer(guess))
        refusal(unknown, 401, "unknown token")
        assert guess not in unknown.text

        revoked = await new_token(pool, "owner", [workspace])
        await revoke_token(pool, revoked["token_id"])
        late = await http.post(mcp_url, json=call, headers=wire | bearer(revoked["token"]))
        refusal(late, 401, "revoked")
        assert revoked["token"] not in late.text

        huge = {
            **call,
            "params": {"name": "ask", "arguments": {"question": "x" * (LIMIT + LIMIT // 2)}},
        }
        oversized = await http.post(mcp_url, json=huge, headers=wire | bearer(mine))
        refusal(oversized, 413, f"at most {LIMIT:,} bytes")
    with pytest.raises(ExceptionGroup) as unconnected:  # the SDK's client is refused too
        async with connected(mcp_url, None) as mcp:
            await mcp.list_tools()
    assert unconnected.group_contains(MCPError)
    # Each request stands alone: a token revoked while its client is connected is refused
    # at its very next call.
    held = await new_token(pool, "owner", [workspace])
    async with connected(mcp_url, held["token"]) as mcp:
        assert answer(await mcp.call_tool("goal_progress", {"goal_id": goal_id}))
        await revoke_token(pool, held["token_id"])
        with pytest.raises(MCPError):
            await mcp.call_tool("stop_goal", {"goal_id": goal_id})
    # The goal went on untouched: nobody stopped it.
    await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)

    elsewhere = await token(pool, "owner", f"ws-{uuid.uuid4().hex[:8]}")
    async with connected(mcp_url, elsewhere) as mcp:
        for tool in ("goal_progress", "goal_tasks", "stop_goal", "raise_budget"):
            arguments = {"goal_id": goal_id} | ({"usd": 9} if tool == "raise_budget" else {})
            tool_error(await mcp.call_tool(tool, arguments), f"no goal {goal_id!r}")
        decision = {"goal_id": goal_id, "task_id": "t1", "decision": "approve"}
        tool_error(await mcp.call_tool("decide_approval", decision), f"no goal {goal_id!r}")
        with pytest.raises(MCPError) as unseen:
            await mcp.read_resource(f"goalkeeper://goals/{goal_id}/deliverable")
        assert f"no goal {goal_id!r}" in unseen.value.error.message
        spec = goal_spec(1, workspace, goal_id=new_goal_id())
        tool_error(await mcp.call_tool("start_goal", {"spec": spec}), workspace, "expected one of")

    async with connected(mcp_url, mine) as mcp:
        invalid = "invalid arguments to "
        absent = await mcp.call_tool("goal_progress", {})
        tool_error(absent, invalid + "goal_progress: goal_id: Field required")
        zero = await mcp.call_tool("goal_tasks", {"goal_id": goal_id, "limit": 0})
        tool_error(zero, invalid + "goal_tasks: limit: ", "greater than or equal to 1, got 0")
        number = await mcp.call_tool("goal_progress", {"goal_id": 42})
        tool_error(number, "goal_id: ", "string, got 42")
        text = await mcp.call_tool("start_goal", {"spec": "not a spec"})
        tool_error(text, "spec: ", "dictionary, got 'not a spec'")
        usd = {"goal_id": goal_id, "usd": "lots"}
        tool_error(await mcp.call_tool("raise_budget", usd), "usd: ", "got 'lots'")
        typo = await mcp.call_tool("stop_goal", {"goalid": goal_id})
        tool_error(typo, "unknown ['goalid'], expected some of ['comment', 'goal_id']")
        bad_spec = {"spec": {"workspace": workspace, "title": "No tasks"}}
        tool_error(await mcp.call_tool("start_goal", bad_spec), "invalid goal spec")
        tool_error(await mcp.call_tool("no_such_tool", {}), "no_such_tool")
        progress = answer(await mcp.call_tool("goal_progress", {"goal_id": goal_id}))
        assert progress["status"] == "running"
    await client.get_workflow_handle(goal_id).terminate("test over")


def bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


def refusal(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM), (
        response.status_code,
        response.text,
    )
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], body
    return body
