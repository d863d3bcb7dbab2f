"""Nothing stuck in silence: wedged workflows and stalled goals become alerts, and clear.

A worker deployed with a change that breaks determinism wedges the task workflows it
replays; Temporal marks them (`TemporalReportedProblems`), and the watch raises an alert
with the cause and what to do within 15 s, in the alerts table, the log, the webhook,
`starter.py health` and the goal's row, and clears it when the right code is back.
"""

import asyncio
import logging
import os
import time
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from goalkeeper.problems import Quiet, advice, goal_candidates, reported, stalled
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.client import connect
from interfaces.codec import Keyring
from interfaces.config import Settings
from monitoring.watch import Watch, WatchReport
from tests.deploys import ChangedTaskWorkflow
from tests.helpers import PATIENCE, events, eventually, goal_spec, report, start_goal, wait_task
from tests.starter import starter
from worker import build_worker


class CountedWatch(Watch):
    """A watch that notes when each of its finished rounds began, so a test can wait for a
    round that began after something happened instead of for a number of seconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rounds: list[float] = []

    async def look(self) -> WatchReport:
        began = time.monotonic()
        report = await super().look()
        self.rounds.append(began)
        return report

    async def round_after(self, moment: float) -> None:
        """Return once a round that began after `moment` (time.monotonic()) has finished."""

        async def done() -> bool:
            return any(began > moment for began in self.rounds)

        await eventually(done, what="a round of the watch")


async def _reported(client: Client, workflow_id: str, present: bool) -> bool:
    query = f"WorkflowId = '{workflow_id}' AND TemporalReportedProblems IS NOT NULL"
    found = [w.id async for w in client.list_workflows(query)]
    return bool(found) is present


def _alerts(posted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [alert for body in posted for alert in body["alerts"]]


async def _open_alert(pool: asyncpg.Pool, kind: str, subject: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM alerts WHERE kind = $1 AND subject = $2 AND resolved_at IS NULL",
        kind,
        subject,
    )


async def test_a_deploy_that_breaks_determinism_is_alerted_with_its_cause_and_clears(
    client: Client,
    pool: asyncpg.Pool,
    database_url: str,
    temporal_server: Any,
    webhook: tuple[str, list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, posted = webhook
    queue = f"watch-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    watch = CountedWatch(pool, client, url, every=timedelta(seconds=2), task_queue=queue)
    watching = asyncio.create_task(watch.run(stop))
    subject = ""
    try:
        async with build_worker(client, pool, queue):
            handle = await start_goal(client, goal_spec(1, "w-watch"), queue)
            view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
        subject = f"workflow:{handle.id}/t1"

        caplog.set_level(logging.WARNING, logger="goalkeeper.watch")
        async with build_worker(client, pool, queue, task_workflow=ChangedTaskWorkflow):
            # A message makes the new worker replay the task's history, and fail.
            await client.get_workflow_handle(f"{handle.id}/t1").signal(
                "agent_heartbeat", {"agent_id": view.agent_id, "assignment_id": view.assignment_id}
            )
            await eventually(
                lambda: _reported(client, f"{handle.id}/t1", True), what="Temporal's report"
            )
            # Detected in the first round after Temporal reports it (a round every 2 s):
            # counted in rounds, not seconds, so a busy machine cannot fail it.
            await watch.round_after(time.monotonic())
            alert = await _open_alert(pool, "workflow_wedged", subject)
            assert alert is not None, "no alert in the first round after Temporal's report"
            assert "NonDeterministicError" in alert["message"], alert["message"]
            assert "roll the worker back" in alert["action"]
            problem = await pool.fetchval("SELECT problem FROM goals WHERE goal_id = $1", handle.id)
            assert problem and "NonDeterministicError" in problem
            assert any(
                "workflow_wedged" in r.getMessage() and subject in r.getMessage()
                for r in caplog.records
            )
            assert any(a["subject"] == subject and not a["resolved"] for a in _alerts(posted))
            shown = await starter(database_url, "health", temporal_address=temporal_server.address)
            assert shown.code != 0
            assert "workflow_wedged" in shown.out and f"{handle.id}/t1" in shown.out
            assert "roll the worker back" in shown.out
            progress = await starter(
                database_url,
                "goal",
                "progress",
                handle.id,
                temporal_address=temporal_server.address,
            )
            assert progress.code != 0 and "problem: task workflow" in progress.out
            asked = await starter(
                database_url,
                "report",
                f"{handle.id}/t1",
                "--result",
                "x",
                temporal_address=temporal_server.address,
            )
            assert asked.code != 0 and "Traceback" not in asked.err
            assert "Workflow Task in failed state" in asked.err, asked.err
            assert "starter.py health" in asked.err

        # The right code again: the task replays, the alert clears, and the goal goes on.
        async with build_worker(client, pool, queue):
            await eventually(
                lambda: _reported(client, f"{handle.id}/t1", False), what="the report to clear"
            )
            cleared = await eventually(
                lambda: pool.fetchrow(
                    "SELECT * FROM alerts WHERE kind = 'workflow_wedged' AND subject = $1 "
                    "AND resolved_at IS NOT NULL",
                    subject,
                ),
                what="the alert to clear",
            )
            assert cleared["first_seen"] <= cleared["resolved_at"]
            await report(client, view)
            assert (await handle.result()).status is GoalStatus.COMPLETED
        assert (
            await pool.fetchval("SELECT problem FROM goals WHERE goal_id = $1", handle.id) is None
        )
        trail = [e["kind"] for e in await events(pool, handle.id)]
        assert trail.index("workflow_wedged") < trail.index("workflow_recovered")

        async def told_cleared() -> bool:  # posted after the round's writes are committed
            return any(a["subject"] == subject and a["resolved"] for a in _alerts(posted))

        await eventually(told_cleared, what="the cleared alert at the webhook")
    finally:
        stop.set()
        await watching


async def _plant(pool: asyncpg.Pool, goal_id: str, spec: str, tasks: list[tuple[Any, ...]]) -> None:
    await pool.execute(
        "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec, created_at) "
        "VALUES ($1, 'planted', 'Planted', 'w-stall', $2::jsonb, now() - interval '3 hours')",
        goal_id,
        spec,
    )
    for task_id, status, depends_on, agent in tasks:
        await pool.execute(
            "INSERT INTO tasks (goal_id, task_id, title, skill, status, depends_on, agent_id, "
            "updated_at) VALUES ($1, $2, $2, 'research', $3, $4, $5, now() - interval '3 hours')",
            goal_id,
            task_id,
            status,
            depends_on,
            agent,
        )


async def test_goals_with_ready_tasks_unassigned_or_silent_past_deadlines_are_stalled(
    client: Client, pool: asyncpg.Pool, api: httpx.AsyncClient
) -> None:
    unassigned, silent, blocked = (f"stall-{n}-{uuid.uuid4().hex[:6]}" for n in range(3))
    agent = f"agent-{uuid.uuid4().hex[:6]}"
    await pool.execute(
        "INSERT INTO agents (agent_id, workspace, skills) VALUES ($1, 'w-stall', '{research}')",
        agent,
    )
    # The seeds' 0 %: ready tasks, nobody on them, for hours.
    await _plant(
        pool, unassigned, "{}", [("a", "completed", [], agent), ("b", "pending", ["a"], None)]
    )
    # Worked on, but silent far past a one-minute report deadline.
    await _plant(pool, silent, '{"report_deadline_seconds": 60}', [("a", "assigned", [], agent)])
    # Pending behind a failed task: waits on a decision, not on an agent; and its deadline
    # (an hour by default) plus the grace have long passed, but nothing is being worked on.
    await _plant(pool, blocked, "{}", [("a", "failed", [], agent), ("b", "pending", ["a"], None)])

    watch = Watch(pool, client, every=timedelta(seconds=1), stall_after=timedelta(minutes=2))
    found = {f.subject: f for f in (await watch.look()).findings}
    assert "waits on an agent for research" in found[f"goal:{unassigned}"].message
    assert "no task change for 3h" in found[f"goal:{silent}"].message
    assert f"agent {agent}" in found[f"goal:{silent}"].message
    assert f"goal:{blocked}" not in found
    for goal in (unassigned, silent):
        assert await _open_alert(pool, "goal_stalled", f"goal:{goal}")
        assert "What to do" in await pool.fetchval(
            "SELECT problem FROM goals WHERE goal_id = $1", goal
        )
        assert [e["kind"] for e in await events(pool, goal, "goal_stalled")] == ["goal_stalled"]
    # The API and the goal's page say it too.
    answer = (await api.get(f"/goals/{unassigned}")).json()
    assert "waits on an agent for research" in answer["problem"]
    page = await api.get(f"http://localhost/goals/{unassigned}")
    assert "waits on an agent for research" in page.text

    # The agent reports: the goal moves again, and the stall is closed and recorded.
    await pool.execute(
        "UPDATE tasks SET status = 'completed', updated_at = now() WHERE goal_id = $1", silent
    )
    await asyncio.sleep(1.1)  # an alert closes a full round after it was last seen
    looked = await watch.look()
    assert f"goal:{silent}" in {c["subject"] for c in looked.closed}
    assert await _open_alert(pool, "goal_stalled", f"goal:{silent}") is None
    assert await pool.fetchval("SELECT problem FROM goals WHERE goal_id = $1", silent) is None
    assert [e["kind"] for e in await events(pool, silent, "goal_moving")] == ["goal_moving"]
    await pool.execute(
        "UPDATE goals SET status = 'failed' WHERE goal_id = ANY($1)", [unassigned, silent, blocked]
    )


async def test_a_goal_whose_own_results_its_worker_cannot_decrypt_is_alerted_naming_the_key(
    client: Client, pool: asyncpg.Pool, temporal_server: Any
) -> None:
    # A worker that rotated to a new key wrote the goal's activity results; a worker that
    # never got that key replays them. Messages from outside would be rejected, but the
    # goal's own results fail loudly, and the alert names the key to give it.
    old = ("k-old", os.urandom(32))
    sender, rotated, lacking = [
        await connect(Settings(temporal_address=temporal_server.address, codec_keys=keys))
        for keys in (Keyring((old,)), Keyring((("k-new", os.urandom(32)), old)), Keyring((old,)))
    ]
    queue = f"watch-key-{uuid.uuid4().hex[:8]}"
    async with build_worker(rotated, pool, queue):
        handle = await start_goal(sender, goal_spec(1, "w-key"), queue)
        await wait_task(rotated, handle.id, "t1", TaskStatus.ASSIGNED)
    watch = Watch(pool, lacking, every=timedelta(seconds=1), task_queue=queue)
    async with build_worker(lacking, pool, queue):
        # Any message makes the worker replay the goal's history.
        await sender.get_workflow_handle(handle.id).signal("approval_decision", {})
        await eventually(lambda: _reported(client, handle.id, True), 90, "Temporal's report")
        found = {f.subject: f for f in (await watch.look()).findings}
        alert = found[f"workflow:{handle.id}"]
        assert "encrypted with key 'k-new'" in alert.message, alert.message
        assert "give the workers the key named here" in alert.action
        await handle.terminate("a test's goal that cannot be read")


async def test_a_workflow_of_a_type_no_worker_knows_is_alerted_naming_its_type_and_clears(
    client: Client, pool: asyncpg.Pool
) -> None:
    queue = f"watch-type-{uuid.uuid4().hex[:8]}"
    watch = Watch(pool, client, every=timedelta(seconds=1), task_queue=queue)
    subject = ""
    async with build_worker(client, pool, queue):
        handle = await client.start_workflow(
            "GoalWorkflw", {}, id=f"typo-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        subject = f"workflow:{handle.id}"
        await eventually(lambda: _reported(client, handle.id, True), 90, "Temporal's report")
        found = {f.subject: f for f in (await watch.look()).findings}
        alert = found[subject]
        assert f"workflow '{handle.id}' of type 'GoalWorkflw' is stuck" in alert.message
        assert "not registered on this worker" in alert.message, alert.message
        assert "deploy the worker that does" in alert.action
        assert await _open_alert(pool, "workflow_wedged", subject)
        # A watch of another task queue sees it too, and leaves it to this one.
        elsewhere = Watch(pool, client, every=timedelta(seconds=0), task_queue=f"{queue}-other")
        assert subject not in {c["subject"] for c in (await elsewhere.look()).closed}
        assert await _open_alert(pool, "workflow_wedged", subject)

        await handle.terminate("started with a typo")

        async def cleared() -> bool:
            await watch.look()
            return await _open_alert(pool, "workflow_wedged", subject) is None

        await eventually(cleared, PATIENCE, "the alert to clear")


def test_what_temporal_reports_and_whose_goal_it_is_are_read_from_plain_values() -> None:
    assert reported(
        ["category=WorkflowTaskFailed", "cause=WorkflowTaskFailedCausePayloadsTooLarge"]
    ) == (
        "WorkflowTaskFailed",
        "WorkflowTaskFailedCausePayloadsTooLarge",
    )
    assert reported(None) == ("unknown", "unknown")
    assert "2 MiB" in advice("WorkflowTaskFailed", "WorkflowTaskFailedCausePayloadsTooLarge")
    assert "poll" in advice("WorkflowTaskTimedOut", "unknown")
    assert goal_candidates("goal:g1") == ["g1"]
    assert goal_candidates("workflow:g1/t2") == ["g1/t2", "g1"]  # a sub-goal first, then a task
    assert goal_candidates("workflow:g1#partition-3") == ["g1#partition-3", "g1"]
    assert goal_candidates("agent:a1") == []


def test_a_goal_is_stalled_only_past_its_grace_and_its_deadlines() -> None:
    grace = timedelta(minutes=2)

    def quiet(minutes: int, ready: int = 0, working: int = 0) -> Quiet:
        return Quiet(
            goal_id="g",
            quiet_for=timedelta(minutes=minutes),
            ready=ready,
            working=working,
            ready_skills=("research",),
            allowed=timedelta(hours=1),
            waiting_on=("agent a1",),
        )

    assert stalled(quiet(1, ready=2), grace) is None
    assert stalled(quiet(3, ready=2), grace) is not None
    assert stalled(quiet(61, working=1), grace) is None  # within its deadline and the grace
    late = stalled(quiet(63, working=1), grace)
    assert late is not None and "agent a1" in late.message
    assert stalled(quiet(600), grace) is None  # nothing ready, nothing worked on: not stalled


async def test_a_server_without_reported_problems_leaves_stalled_goals_watched(
    client: Client, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    watch = Watch(pool, client, every=timedelta(seconds=1))
    watch.query = "TemporalNoSuchAttribute IS NOT NULL"  # as a server before 1.30 answers
    caplog.set_level(logging.WARNING, logger="goalkeeper.watch")
    for _ in range(2):
        await watch.look()  # no error: the round goes on to stalled goals
    said = [r.getMessage() for r in caplog.records if "server 1.30" in r.getMessage()]
    assert len(said) == 1, said
    assert watch.reports is False
