"""Bounded, checked input from agents: heartbeat times against the clock, text limits
where text enters, and a task's `status` query small whatever its agents sent."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError

from goalkeeper import signing
from goalkeeper.limits import (
    MAX_HISTORY_LINES,
    MAX_VIEW_BYTES,
    bounded_history,
    clip,
    heartbeat_time_problem,
)
from goalkeeper.models import AgentReport, ApprovalDecision, Heartbeat, TaskView
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.agents import registry
from tests.helpers import PATIENCE, events, eventually, goal_spec, start_goal, task_view, wait_task
from tests.test_signatures import signed_report

FUTURE = "2999-01-01T00:00:00+00:00"


def test_heartbeat_times_are_checked_against_the_clock() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert heartbeat_time_problem(None, now, "c") is None
    assert heartbeat_time_problem((now + timedelta(seconds=59)).isoformat(), now, "c") is None
    ahead = heartbeat_time_problem(FUTURE, now, "the database's clock")
    assert ahead and "at most 60 s ahead of the database's clock" in ahead and FUTURE in ahead
    for bad in ("not-a-time", "2026-01-01T00:00:00"):  # no offset: no time to compare
        assert "expected an ISO 8601 time with its UTC offset" in str(
            heartbeat_time_problem(bad, now, "c")
        )
    with pytest.raises(ValidationError, match=r"at\n.*expected an ISO 8601 time"):
        Heartbeat(agent_id="a", assignment_id="x", at="not-a-time")


def test_free_text_from_outside_is_limited_and_the_refusal_names_the_limit() -> None:
    with pytest.raises(ValidationError, match=r"error\n.*at most 4000 characters"):
        AgentReport.model_validate(
            {"agent_id": "a", "assignment_id": "x", "outcome": "failed", "error": "e" * 4001}
        )
    with pytest.raises(ValidationError, match=r"comment\n.*at most 2000 characters"):
        ApprovalDecision.model_validate(
            {"approver": "a", "decision": "approve", "comment": "c" * 2001}
        )


def test_a_tasks_view_stays_bounded_whatever_its_history() -> None:
    assert clip("abc", 5) == "abc"
    clipped = clip("x" * 100 + "END", 60)
    assert len(clipped) == 60 and clipped.endswith("END") and "characters left out" in clipped
    lines = [f"attempt {n}: agent a failed: " + "😀" * 4000 for n in range(200)]
    bounded = bounded_history(lines)
    assert len(bounded) == MAX_HISTORY_LINES and bounded[0] == "(151 earlier lines left out)"
    again = bounded_history([*bounded, "one more"])
    assert again[0] == "(152 earlier lines left out)" and again[-1] == "one more"
    view = TaskView(
        goal_id="g",
        task_id="t",
        title="T" * 500,
        skill="s",
        history=bounded,
        error="😀" * 4000,
        result="r" * 128 * 1024,
    )
    assert len(view.model_dump_json().encode()) < MAX_VIEW_BYTES


# Over the wire.


async def _signers(pool: asyncpg.Pool, workspace: str) -> dict[str, str]:
    """Two registered agents of the workspace that sign: their private keys by id."""
    keys = {}
    for name in ("alpha", "beta"):
        key, public = signing.new_keys()
        agent_id = f"{workspace}-{name}"
        await registry.register_agent(pool, agent_id, workspace, ["writing"], public_key=public)
        keys[agent_id] = key
    return keys


def _beat(view: TaskView, key: str, at: str) -> dict[str, Any]:
    content = signing.heartbeat_content(
        view.goal_id, view.task_id, view.agent_id or "", view.assignment_id or "", at
    )
    return {
        "agent_id": view.agent_id,
        "assignment_id": view.assignment_id,
        "at": at,
        "signature": signing.sign(key, content),
    }


async def _write_beat(pool: asyncpg.Pool, view: TaskView, key: str, at: str) -> None:
    """Write a heartbeat to PostgreSQL as the agent's own login would: `at` signed."""
    signed = _beat(view, key, at)
    written = await registry.heartbeat(
        pool,
        view.agent_id or "",
        view.assignment_id or "",
        signature=json.dumps({"at": at, "signature": signed["signature"]}),
    )
    assert written is not None


async def test_a_heartbeat_from_the_future_does_not_keep_a_silent_task(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    keys = await _signers(pool, workspace)
    spec = goal_spec(1, workspace, require_signatures=True, heartbeat_timeout_seconds=3)
    goal = await start_goal(client, spec, task_queue)
    first = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    key = keys[first.agent_id or ""]
    task = client.get_workflow_handle(f"{goal.id}/t1")

    # Signed with the agent's own key, by update and by signal: refused, its clock named.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await task.execute_update("heartbeat", _beat(first, key, FUTURE))
    assert "at most 60 s ahead of the workflow's clock" in str(refused.value.cause)
    # A real heartbeat, then the agent goes silent but for one from the year 2999.
    await task.execute_update("heartbeat", _beat(first, key, datetime.now(UTC).isoformat()))
    await _write_beat(pool, first, key, FUTURE)

    second = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert second.agent_id != first.agent_id
    assert any("went silent" in line for line in second.history), second.history
    rejected = await events(pool, goal.id, "heartbeat_rejected")
    assert any("database's clock" in e["message"] for e in rejected), rejected
    await task.execute_update("report", signed_report(second, keys[second.agent_id or ""]))
    report = await asyncio.wait_for(goal.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED


async def test_an_unparseable_heartbeat_time_is_refused_and_the_task_goes_on(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    keys = await _signers(pool, workspace)
    spec = goal_spec(1, workspace, require_signatures=True, heartbeat_timeout_seconds=2)
    goal = await start_goal(client, spec, task_queue)
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    key = keys[view.agent_id or ""]
    task = client.get_workflow_handle(f"{goal.id}/t1")

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await task.execute_update("heartbeat", _beat(view, key, "not-a-time"))
    message = str(refused.value.cause)
    assert "at: expected an ISO 8601 time" in message and "not-a-time" in message
    await task.signal("agent_heartbeat", _beat(view, key, "not-a-time"))
    await _write_beat(pool, view, key, "not-a-time")

    async def both_recorded() -> list[str] | None:
        found = [e["message"] for e in await events(pool, goal.id, "heartbeat_rejected")]
        by_db = [m for m in found if "written to PostgreSQL" in m and "not-a-time" in m]
        by_signal = [m for m in found if "at: expected an ISO 8601" in m and m not in by_db]
        return found if by_db and by_signal else None

    await eventually(both_recorded, what="both refusals in the trail")
    # The task never failed a workflow task over it: its agent's real report applies.
    assert (await task_view(client, goal.id, "t1")).attempts == 1
    await task.execute_update("report", signed_report(view, key))
    assert (await asyncio.wait_for(goal.result(), PATIENCE)).status is GoalStatus.COMPLETED


async def test_huge_errors_are_refused_and_the_status_query_still_answers(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(1, workspace, max_attempts=3)
    goal = await start_goal(client, spec, task_queue)
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    task = client.get_workflow_handle(f"{goal.id}/t1")
    failed = {
        "agent_id": view.agent_id,
        "assignment_id": view.assignment_id,
        "outcome": "failed",
        "error": "x" * (1536 * 1024),
    }
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await task.execute_update("report", failed)
    assert "error: String should have at most 4000 characters" in str(refused.value.cause)
    await task.signal("agent_report", failed)

    async def recorded() -> list[Any] | None:
        return await events(pool, goal.id, "report_rejected") or None

    [rejection] = await eventually(recorded, what="the huge report in the trail")
    assert len(rejection["message"]) < 10_000 and len(json.dumps(rejection["detail"])) < 10_000

    # Errors at the limit are taken; the view stays small and the query answers.
    for attempt in (1, 2):
        current = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=attempt)
        await task.execute_update(
            "report",
            {
                "agent_id": current.agent_id,
                "assignment_id": current.assignment_id,
                "outcome": "failed",
                "error": "😀" * 4000,
            },
        )
    last = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=3)
    assert len(last.model_dump_json().encode()) < 64 * 1024
    await task.execute_update(
        "report",
        {
            "agent_id": last.agent_id,
            "assignment_id": last.assignment_id,
            "outcome": "completed",
            "result": "done",
        },
    )
    assert (await asyncio.wait_for(goal.result(), PATIENCE)).status is GoalStatus.COMPLETED
