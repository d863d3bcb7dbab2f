"""What an attempt did travels from its agent's report to everything people read: the
task's `status`, the API's task view, costs, the goal report and the metrics; a report
whose record is malformed is refused with the reason, recorded, and the task still waits."""

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from goalkeeper import signing
from goalkeeper.models import AgentReport, ToolCallRecord
from goalkeeper.records import EndAssignment, Event, EventKind
from goalkeeper.statuses import AssignmentStatus, GoalStatus, TaskStatus
from interfaces.agents import registry
from interfaces.agents.runner import Work, WorkResult
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer
from store.agent_credentials import new_credential
from store.tokens import new_token
from tests.helpers import (
    PATIENCE,
    events,
    eventually,
    goal_spec,
    running_agents,
    start_goal,
    wait_task,
)
from tests.starter import starter

PROBLEM = "application/problem+json"


def call(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "tool": f"search-{n}",
        "args_digest": hashlib.sha256(f"query {n}".encode()).hexdigest(),
        "duration_ms": 10 * n,
        "outcome": "success",
        "error": None,
    } | fields


@pytest.fixture
async def http(pool: asyncpg.Pool, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the test's stack, called in process."""
    app = create_app(Settings(), pool=pool, client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost/api/v1"
        ) as http,
    ):
        yield http


async def signed_agent(
    pool: asyncpg.Pool, workspace: str, name: str
) -> tuple[str, str, dict[str, str]]:
    key, public = signing.new_keys()
    agent_id = f"{workspace}-{name}"
    await registry.register_agent(pool, agent_id, workspace, ["writing"], public_key=public)
    made = await new_credential(pool, agent_id)
    return agent_id, key, {"Authorization": f"Bearer {made['credential']}"}


async def assignment(http: httpx.AsyncClient, auth: dict[str, str], task_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        answer = await http.get("/agent/assignments", params={"wait": 5}, headers=auth)
        assert answer.status_code == 200, answer.text
        found = [a for a in answer.json()["assignments"] if a["task_id"] == task_id]
        return found[0] if found else None

    return await eventually(probe, what=f"the assignment of {task_id}")


def signed(goal_id: str, work: dict[str, Any], agent_id: str, key: str, **body: Any) -> Any:
    """`body` as the agent sends it, signed over what the task will read of it."""
    full = AgentReport.model_validate(
        body | {"agent_id": agent_id, "assignment_id": work["assignment_id"]}
    )
    content = signing.report_content(goal_id, work["task_id"], full)
    return body | {"signature": signing.sign(key, content)}


async def test_tool_calls_and_split_tokens_reach_status_api_costs_and_the_report(
    http: httpx.AsyncClient,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    database_url: str,
    temporal_server: TemporalDevServer,
) -> None:
    agent_id, key, auth = await signed_agent(pool, workspace, "tooled")
    person = {"Authorization": f"Bearer {(await new_token(pool, 'reader', [workspace]))['token']}"}
    tasks = [
        {"id": "t1", "title": "Search", "skill": "writing"},
        {"id": "t2", "title": "Write", "skill": "writing", "depends_on": ["t1"]},
    ]
    spec = goal_spec(workspace=workspace, tasks=tasks, require_signatures=True)
    goal = await start_goal(client, spec, task_queue)

    # t1: priced, split, two tool calls (one failed); tokens_used 0 is counted as the sum.
    first = await assignment(http, auth, "t1")
    calls = [call(1), call(2, outcome="failed", error="the index was down")]
    body = signed(
        goal.id,
        first,
        agent_id,
        key,
        outcome="completed",
        result="memo",
        input_tokens=120,
        output_tokens=30,
        cost_usd=0.0042,
        tool_calls=calls,
    )
    answer = await http.post(
        f"/agent/assignments/{first['assignment_id']}/report", json=body, headers=auth
    )
    assert answer.status_code == 200, answer.text

    # t2: a model with no known price: its cost is unknown, not free.
    second = await assignment(http, auth, "t2")
    body = signed(
        goal.id,
        second,
        agent_id,
        key,
        outcome="completed",
        result="notes",
        tokens_used=50,
        input_tokens=40,
        output_tokens=10,
        cost_known=False,
    )
    answer = await http.post(
        f"/agent/assignments/{second['assignment_id']}/report", json=body, headers=auth
    )
    assert answer.status_code == 200, answer.text
    report = await asyncio.wait_for(goal.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED

    # The task's status query.
    view = await wait_task(client, goal.id, "t1", TaskStatus.COMPLETED)
    assert (view.tokens_used, view.input_tokens, view.output_tokens) == (150, 120, 30)
    assert [c.model_dump() for c in view.tool_calls] == calls and view.tool_calls_total == 2
    unknown = await wait_task(client, goal.id, "t2", TaskStatus.COMPLETED)
    assert (unknown.cost_unknown_attempts, unknown.cost_usd, unknown.tool_calls) == (1, 0.0, [])

    # The API's task view: the latest attempt, its tool calls in order, the split.
    shown = (await http.get(f"/goals/{goal.id}/tasks/t1", headers=person)).json()
    assert (shown["input_tokens"], shown["output_tokens"], shown["cost_unknown_attempts"]) == (
        120,
        30,
        0,
    )
    latest = shown["latest_attempt"]
    assert (latest["attempt"], latest["agent_id"], latest["cost_usd"]) == (1, agent_id, 0.0042)
    assert [{k: c[k] for k in calls[0]} for c in latest["tool_calls"]] == calls
    assert [c["n"] for c in latest["tool_calls"]] == [1, 2]
    t2 = (await http.get(f"/goals/{goal.id}/tasks/t2", headers=person)).json()
    assert (t2["cost_unknown_attempts"], t2["latest_attempt"]["cost_usd"]) == (1, None)
    assert not t2["latest_attempt"]["cost_known"]
    missing = await http.get(f"/goals/{goal.id}/tasks/t9", headers=person)
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert "t9" in missing.json()["detail"]

    # Costs: tokens read and written apart, the unknown attempt counted, not added as 0.
    costs = (await http.get("/costs", params={"goal": goal.id}, headers=person)).json()
    total = costs["total"]
    assert (total["input_tokens"], total["output_tokens"], total["tokens_used"]) == (160, 40, 200)
    assert (total["cost_unknown_attempts"], total["cost_usd"]) == (1, 0.0042)
    by_task = (
        await http.get("/costs", params={"goal": goal.id, "by": "task"}, headers=person)
    ).json()
    unknowns = {line["key"]: line["cost_unknown_attempts"] for line in by_task["lines"]}
    assert unknowns == {f"{goal.id}/t1": 0, f"{goal.id}/t2": 1}

    # The goal report says both.
    text = await starter(
        database_url, "goal", "report", goal.id, temporal_address=temporal_server.address
    )
    assert "tokens read: 160, written: 40" in text.out, text.out
    assert "cost unknown for 1 attempt (no price known): $0.0042 leaves them out" in text.out
    await registry.take_offline(pool, [agent_id])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"tool_calls": [call(n) for n in range(1, 102)]}, "at most 100 items"),
        ({"tool_calls": [call(1, args_digest="not-a-sha256")]}, "args_digest"),
        ({"tokens_used": 99, "input_tokens": 10, "output_tokens": 5}, "tokens_used 99 is not"),
        ({"input_tokens": -5}, "input_tokens"),
        ({"cost_known": False, "cost_usd": 0.5}, "cost_known false"),
    ],
)
async def test_a_malformed_record_is_refused_recorded_and_the_task_still_waits(
    http: httpx.AsyncClient,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    body: dict[str, Any],
    reason: str,
) -> None:
    agent_id, _key, auth = await signed_agent(pool, workspace, "hostile")
    goal = await start_goal(client, goal_spec(1, workspace), task_queue)
    work = await assignment(http, auth, "t1")
    sent = {"outcome": "completed", "result": "forged"} | body
    answer = await http.post(
        f"/agent/assignments/{work['assignment_id']}/report", json=sent, headers=auth
    )
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert reason in answer.json()["detail"], answer.json()

    # The same straight to the workflow as a signal: refused and recorded too.
    await client.get_workflow_handle(f"{goal.id}/t1").signal(
        "agent_report", sent | {"agent_id": agent_id, "assignment_id": work["assignment_id"]}
    )

    async def both_recorded() -> list[asyncpg.Record] | None:
        found = [
            r for r in await events(pool, goal.id, "report_rejected") if reason in r["message"]
        ]
        return found if len(found) >= 2 else None

    await eventually(both_recorded, what="both refusals in the audit trail")
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    assert view.assignment_id == work["assignment_id"] and view.result is None
    assert (view.tokens_used, view.tool_calls) == (0, [])
    assert not await pool.fetchval(
        "SELECT count(*) FROM tool_calls WHERE assignment_id = $1::uuid", work["assignment_id"]
    )
    await goal.cancel()
    await registry.take_offline(pool, [agent_id])


async def tooled(work: Work) -> WorkResult:
    """A hook as the LLM agent's: split tokens, no known price, two tool calls."""
    return WorkResult(
        result="answered",
        input_tokens=70,
        output_tokens=20,
        tokens_used=90,
        cost_known=False,
        tool_calls=(call(1), call(2, outcome="timeout", error="no answer in 30 s")),
    )


async def test_the_runner_reports_what_its_hook_did(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    async with running_agents(client, pool, workspace, tooled):
        goal = await start_goal(client, goal_spec(1, workspace), task_queue)
        report = await asyncio.wait_for(goal.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    view = await wait_task(client, goal.id, "t1", TaskStatus.COMPLETED)
    assert (view.input_tokens, view.output_tokens, view.cost_unknown_attempts) == (70, 20, 1)
    assert [c.outcome for c in view.tool_calls] == ["success", "timeout"]
    stored = await pool.fetch(
        "SELECT c.tool, c.outcome, c.error FROM tool_calls c JOIN assignments a "
        "USING (assignment_id) WHERE a.goal_id = $1 ORDER BY c.n",
        goal.id,
    )
    assert [tuple(r) for r in stored] == [
        ("search-1", "success", None),
        ("search-2", "timeout", "no answer in 30 s"),
    ]

    # A retried end of the assignment (the activity's one statement again) adds nothing.
    assignment_id = view.assignment_id
    assert assignment_id is not None
    again = EndAssignment(
        assignment_id=assignment_id,
        status=AssignmentStatus.COMPLETED,
        result="answered",
        tokens_used=90,
        input_tokens=70,
        output_tokens=20,
        cost_known=False,
        tool_calls=[ToolCallRecord(**call(n)) for n in (1, 2, 3)],
        task=view,
        event=Event(
            event_id=str(uuid.uuid4()),
            kind=EventKind.TASK_COMPLETED,
            message="retried",
            goal_id=goal.id,
            task_id="t1",
        ),
    )
    for _ in range(2):
        await pool.execute("SELECT goalkeeper_end_assignment($1)", again.model_dump(mode="json"))
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM tool_calls WHERE assignment_id = $1::uuid", assignment_id
        )
        == 2
    )
