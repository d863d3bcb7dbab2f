"""A goal too big for one run continues-as-new and loses nothing."""

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.children import ChildActivities
from goalkeeper.models import Progress, TaskSummary, TaskView
from goalkeeper.records import AdoptTasks
from goalkeeper.seals import SealKeys
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.agents import registry
from interfaces.stack import TemporalDevServer, free_port
from tests.helpers import (
    PATIENCE,
    SimulatedAgents,
    events,
    eventually,
    goal_spec,
    report,
    start_goal,
    task_view,
    wait_task,
)
from worker import build_worker
from workflows.goal import GoalWorkflow

SIGNALS_PER_RUN = 1_000
"""Signals Temporal takes per run here (10,000 by default): a flood's end, sooner."""


@pytest.fixture(scope="module")
def small_history_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A dev server that suggests continue-as-new after a few dozen history events."""
    server = TemporalDevServer(
        tmp_path_factory.mktemp("can") / "temporal.db",
        port=free_port(),
        ui_port=None,
        dynamic_config={
            "limit.historyCount.suggestContinueAsNew": "60",
            "history.maximumSignalsPerExecution": str(SIGNALS_PER_RUN),
        },
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def small_history_client(small_history_server: TemporalDevServer) -> Client:
    return await Client.connect(
        small_history_server.address, data_converter=pydantic_data_converter
    )


@pytest.fixture
async def queue(small_history_client: Client, pool: asyncpg.Pool) -> AsyncIterator[str]:
    async with build_worker(small_history_client, pool, "can-goals"):
        yield "can-goals"


async def test_a_large_goal_continues_as_new_with_exact_progress_and_report(
    small_history_client: Client, queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    client = small_history_client
    spec = {
        "title": "Big goal",
        "workspace": workspace,
        "approvers": ["ops-lead"],
        "max_running_tasks": 4,
        "max_attempts": 2,
        "tasks": [
            {
                "id": f"t{i}",
                "title": f"Task {i}",
                "skill": "data",
                "requires_approval": i % 5 == 0,
                "depends_on": [f"t{i - 10}"] if i >= 10 else [],
            }
            for i in range(30)
        ],
    }
    handle = await start_goal(client, spec, queue)

    def outcome(task_id: str, attempt: int) -> str:
        return "failed" if task_id in ("t3", "t17") and attempt == 1 else "completed"

    async with SimulatedAgents(client, pool, handle.id, outcome=outcome, approver="ops-lead"):
        report = await handle.result()

    assert report.status is GoalStatus.COMPLETED
    assert report.progress.tasks_total == 30 and report.progress.tasks_completed == 30
    assert report.progress.progress_percentage == 100.0
    assert report.progress.tokens_used == 10 * (30 + 2)  # two tasks took a second attempt
    attempts = {t.task_id: t.attempts for t in report.tasks}
    assert attempts["t3"] == attempts["t17"] == 2
    assert sum(attempts.values()) == 32

    continued = await events(pool, handle.id, "goal_continued_as_new")
    assert continued, "the goal never continued as new"
    description = await handle.describe()
    assert description.run_id != handle.first_execution_run_id
    finished = await events(pool, handle.id, "goal_finished")
    assert len(finished) == 1
    started = await pool.fetch(
        "SELECT task_id, count(*) AS n FROM assignments WHERE goal_id = $1 GROUP BY task_id",
        handle.id,
    )
    assert {r["task_id"]: r["n"] for r in started} == attempts


async def test_a_long_task_keeps_its_agent_across_continue_as_new(
    small_history_client: Client, queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    """Heartbeats of either kind never push a task past Temporal's limits: it starts a
    fresh history and keeps its assignment, its deadline and its silence rule."""
    client = small_history_client
    spec = {
        "title": "Long task",
        "workspace": workspace,
        "heartbeat_timeout_seconds": 3,
        "tasks": [{"id": "long", "title": "Long", "skill": "data"}],
    }
    handle = await start_goal(client, spec, queue)
    task = client.get_workflow_handle(f"{handle.id}/long")
    view = await _assigned(client, handle.id)
    beat = {"agent_id": view.agent_id, "assignment_id": view.assignment_id}
    for _ in range(40):  # heartbeats through history: each an event
        await task.signal("agent_heartbeat", beat)
    # Heartbeats in PostgreSQL: no event each; the task reads them when silence is due.
    for _ in range(16):
        assert await registry.heartbeat(pool, view.agent_id or "", view.assignment_id or "")
        await asyncio.sleep(0.5)

    async def continued() -> bool:  # listing is eventually consistent: asked until it shows
        runs = [e async for e in client.list_workflows(f'WorkflowId = "{handle.id}/long"')]
        return len(runs) > 1

    await eventually(continued, what="the task to continue as new")
    now = await task.query("status", result_type=TaskView)
    assert now.assignment_id == view.assignment_id and now.attempts == 1
    await task.signal(
        "agent_report", {**beat, "outcome": "completed", "result": "done after a long while"}
    )
    report = await handle.result()
    assert report.status is GoalStatus.COMPLETED and report.tasks[0].attempts == 1


async def _assigned(client: Client, goal_id: str) -> TaskView:
    async def probe() -> TaskView | None:
        view = await client.get_workflow_handle(f"{goal_id}/long").query(
            "status", result_type=TaskView
        )
        return view if view.status is TaskStatus.ASSIGNED else None

    return await eventually(probe)


async def test_a_task_awaiting_approval_never_holds_back_the_rest_of_its_goal(
    small_history_client: Client, queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    """The goal continues as new while the task waits; its new runs adopt the task, start
    the other tasks meanwhile, and learn of its end by its signal."""
    client = small_history_client
    spec = {
        "title": "One slow approval",
        "workspace": workspace,
        "approvers": ["ops-lead"],
        "max_running_tasks": 3,
        "tasks": [
            {"id": "slow", "title": "Needs sign-off", "skill": "data", "requires_approval": True},
            *({"id": f"q{i}", "title": f"Quick {i}", "skill": "data"} for i in range(15)),
        ],
    }
    handle = await start_goal(client, spec, queue)
    async with SimulatedAgents(client, pool, handle.id):

        async def rest_done() -> bool:
            now = await handle.query(GoalWorkflow.progress)
            return now.tasks_completed == 15 and now.tasks_awaiting_approval == 1

        await eventually(rest_done, what="every other task to complete")
    continued = await events(pool, handle.id, "goal_continued_as_new")
    assert continued, "the goal never continued as new while the approval waited"
    slow = client.get_workflow_handle(f"{handle.id}/slow")
    assert (await slow.query("status", result_type=TaskView)).status is (
        TaskStatus.AWAITING_APPROVAL
    )
    await slow.signal("approval_decision", {"approver": "ops-lead", "decision": "approve"})
    report = await handle.result()
    assert report.status is GoalStatus.COMPLETED
    assert (report.progress.tasks_total, report.progress.tasks_completed) == (16, 16)
    assert [
        r["n"]
        for r in await pool.fetch(
            "SELECT count(*) AS n FROM events WHERE goal_id = $1 AND kind = 'goal_finished'",
            handle.id,
        )
    ] == [1]


async def test_a_task_that_ended_before_its_adoption_is_read_from_temporal(
    client: Client, task_queue: str, workspace: str, worker_secret: SealKeys
) -> None:
    """The race the handover leaves: a task that ended between two runs of its goal."""
    spec = goal_spec(2, workspace)
    handle = await start_goal(client, spec, task_queue)
    done = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, done)
    # Ended, not only completed: a task says it completed before its workflow closes, and
    # until then the adoption asks it (rightly) instead of reading its end.
    await asyncio.wait_for(client.get_workflow_handle(f"{handle.id}/t1").result(), PATIENCE)
    gone = await wait_task(client, handle.id, "t2", TaskStatus.ASSIGNED)
    await client.get_workflow_handle(f"{handle.id}/t2").terminate("lost between runs")
    ended = await ActivityEnvironment().run(
        ChildActivities(client, worker_secret).adopt_tasks,
        AdoptTasks(
            goal_id=handle.id,
            goal_run_id=done.goal_run_id,
            tasks=[TaskSummary(task_id="t1", seq=1), TaskSummary(task_id="t2", seq=1)],
        ),
    )
    by_id = {s.task_id: s for s in ended}
    assert by_id["t1"].status is TaskStatus.COMPLETED and by_id["t1"].tokens_used == 100
    assert by_id["t2"].status is TaskStatus.FAILED
    assert by_id["t2"].error == "task workflow ended without an outcome: TERMINATED"
    assert gone.agent_id is not None
    # Its task lost, the goal fails on its own; a terminate here would race with that end.
    ending = await handle.result()
    assert (ending.progress.tasks_completed, ending.progress.tasks_failed) == (1, 1)


async def test_a_running_subgoal_changes_hands_like_a_task(
    small_history_client: Client, queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    """A sub-goal's updates arrive in its parent's history for as long as it runs, so the
    parent must be free to continue as new meanwhile; its next run adopts the sub-goal."""
    client = small_history_client
    spec = {
        "title": "A long sub-goal",
        "workspace": workspace,
        "max_running_tasks": 3,
        "tasks": [
            {
                "id": "research",
                "title": "Research",
                "goal": {
                    "title": "Research",
                    "tasks": [{"id": "r1", "title": "R1", "skill": "data"}],
                },
            },
            *({"id": f"q{i}", "title": f"Quick {i}", "skill": "data"} for i in range(15)),
        ],
    }
    handle = await start_goal(client, spec, queue)
    async with SimulatedAgents(client, pool, handle.id):

        async def rest_done() -> bool:
            now = await handle.query(GoalWorkflow.progress)
            return now.tasks_completed == 15 and now.tasks_running == 1

        await eventually(rest_done, what="every other task to complete")
    assert await events(pool, handle.id, "goal_continued_as_new"), "it never continued as new"
    source = await wait_task(client, f"{handle.id}/research", "r1", TaskStatus.ASSIGNED)
    await report(client, source)
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    assert (result.progress.tasks_total, result.progress.tasks_completed) == (16, 16)
    research = next(t for t in result.tasks if t.task_id == "research")
    assert (research.outcome, research.tokens_used) == (TaskStatus.COMPLETED, 100)


async def test_a_goal_paused_at_its_budget_stays_paused_across_continue_as_new(
    small_history_client: Client, queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    client = small_history_client
    spec = goal_spec(20, workspace, approvers=["boss"], budget_usd=0.095, max_running_tasks=10)
    handle = await start_goal(client, spec, queue)
    running = [
        await wait_task(client, handle.id, f"t{i}", TaskStatus.ASSIGNED) for i in range(1, 11)
    ]
    for view in running:  # $0.10 of $0.095 once all ten are in: the goal pauses
        await report(client, view, cost_usd=0.01)

    async def paused() -> Progress | None:
        now = await handle.query(GoalWorkflow.progress)
        return now if now.stage.startswith("paused") else None

    await eventually(paused, what="the goal to pause at its budget")
    reported: set[str] = set()

    async def settled_in_a_later_run() -> Progress | None:
        # Work in flight (started before the pause) finishes. Its ends are history too, yet
        # the ten reports may arrive together and be handled in one go, leaving the goal
        # short of the length at which it continues as new.
        for row in await pool.fetch(
            "SELECT task_id, assignment_id::text FROM assignments "
            "WHERE goal_id = $1 AND status = 'active'",
            handle.id,
        ):
            if row["assignment_id"] not in reported:
                view = await task_view(client, handle.id, row["task_id"])
                await report(client, view, cost_usd=0.01)
                reported.add(row["assignment_id"])
        now = await handle.query(GoalWorkflow.progress)
        moved = await events(pool, handle.id, "goal_continued_as_new")
        if not moved and now.tasks_running == 0:
            # Idle and paused, the goal may sit below the length at which Temporal suggests
            # continuing as new: a forged message, refused and recorded, grows its history
            # as an outsider's would, and the goal looks again.
            await client.get_workflow_handle(handle.id).signal("task_update", {"forged": True})
        return now if moved and now.tasks_running == 0 and now.tasks_completed >= 10 else None

    now = await eventually(settled_in_a_later_run, what="the work in flight to finish, later")
    assert now.stage.startswith("paused") and now.tasks_pending > 0
    assigned = await pool.fetchval("SELECT count(*) FROM assignments WHERE goal_id = $1", handle.id)
    assert assigned == now.tasks_completed  # nothing new was assigned
    await client.get_workflow_handle(handle.id).execute_update(
        "raise_budget", {"approver": "boss", "usd": 1.0}, result_type=Progress
    )
    async with SimulatedAgents(client, pool, handle.id):
        report_ = await handle.result()
    assert report_.status is GoalStatus.COMPLETED and report_.progress.tasks_completed == 20
    assert len(await events(pool, handle.id, "goal_paused")) == 1


async def test_refused_messages_to_an_idle_goal_make_it_continue_as_new(
    small_history_client: Client, queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    client = small_history_client
    handle = await start_goal(client, goal_spec(1, workspace), queue)
    await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    first = (await handle.describe()).run_id
    sent = 0

    async def moved() -> str | None:
        # The goal waits on its one task; only an outsider's forged messages reach it, until
        # it says it continues as new (then it finishes the handlers it has, and moves).
        nonlocal sent
        if not await events(pool, handle.id, "goal_continued_as_new"):
            await client.get_workflow_handle(handle.id).signal("task_update", {"forged": sent})
            sent += 1
        run_id = (await handle.describe()).run_id
        return run_id if run_id != first else None

    await eventually(moved, what="the goal to continue as new under refused messages")
    refused = await events(pool, handle.id, "message_rejected")
    assert refused and len(refused) <= sent
    await report(client, await task_view(client, handle.id, "t1"))
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED and result.progress.tasks_completed == 1


async def test_a_flood_of_refused_messages_cannot_grow_a_goal_to_temporals_limit(
    small_history_client: Client, queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    """Forged messages sent without pause from many senders, while the goal waits: no
    run can close while they keep coming, so Temporal takes at most SIGNALS_PER_RUN of
    them per run. Each refusal is recorded, in batches apart from its handler, so the
    run's history stays a small multiple of the messages (Temporal ends a run at 51,200
    events: 10,000 signals, its default cap, must stay well under it); then the goal
    continues as new and goes on."""
    client = small_history_client
    handle = await start_goal(client, goal_spec(1, workspace), queue)
    await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    first = (await handle.describe()).run_id
    sent = 0

    async def flood() -> None:
        nonlocal sent
        target = client.get_workflow_handle(handle.id)
        while True:
            try:
                await target.signal("task_update", {"forged": sent})
            except RPCError as exc:
                if "limit for signal events" in str(exc):
                    return  # the run's cap: the flood ends here
                continue  # a busy server's timeout: the flood goes on
            sent += 1

    await asyncio.wait_for(asyncio.gather(*(flood() for _ in range(8))), PATIENCE)

    async def moved() -> str | None:
        run_id = (await handle.describe()).run_id
        return run_id if run_id != first else None

    await eventually(moved, what="the goal to continue as new once the flood ends")
    history = await client.get_workflow_handle(handle.id, run_id=first).fetch_history()
    signalled = sum(
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in history.events
    )
    # What the server took (a sender may have timed out on one it took, on a busy machine).
    assert signalled == SIGNALS_PER_RUN and sent <= signalled, (signalled, sent)
    assert len(history.events) < 2 * signalled, (len(history.events), signalled)
    recorded = await events(pool, handle.id, "message_rejected")
    assert len(recorded) == signalled  # each refusal in the trail, once
    await report(client, await task_view(client, handle.id, "t1"))
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
