"""Progress is exact at every moment and never double counts."""

import asyncio

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from goalkeeper.models import GoalCheckpoint, GoalRef, TaskSummary, WindowState
from goalkeeper.progress import checkpoint_figures
from goalkeeper.scheduling import Plan, Schedule
from goalkeeper.statuses import GoalStatus, TaskStatus
from tests.helpers import (
    goal_spec,
    one_row,
    progress,
    report,
    start_goal,
    wait_progress,
    wait_task,
)


async def test_each_completed_task_moves_progress_by_its_share(
    client: Client, task_queue: str, workspace: str
) -> None:
    handle = await start_goal(client, goal_spec(5, workspace), task_queue)
    views = [await wait_task(client, handle.id, f"t{i}", TaskStatus.ASSIGNED) for i in range(1, 6)]
    start = await wait_progress(handle, lambda p: p.tasks_running == 5)
    assert (start.progress_percentage, start.tasks_total, start.tasks_completed) == (0.0, 5, 0)

    await report(client, views[0])
    one = await wait_progress(handle, lambda p: p.tasks_completed == 1)
    assert one.progress_percentage == 20.0
    assert (one.agents_total, one.agents_completed) == (5, 1)
    assert (one.tokens_used, one.cost_usd) == (100, 0.01)

    for view in views[1:]:
        await report(client, view)
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    assert result.progress.progress_percentage == 100.0
    assert result.progress.tasks_completed == 5
    final = await progress(handle)
    assert (final.status, final.stage, final.progress_percentage) == (
        GoalStatus.COMPLETED,
        "done",
        100.0,
    )


async def test_a_failed_task_counts_in_the_total(
    client: Client, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(2, workspace, max_attempts=1)
    handle = await start_goal(client, spec, task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    second = await wait_task(client, handle.id, "t2", TaskStatus.ASSIGNED)
    await report(client, first)
    await report(client, second, "failed", error="disk full")
    result = await handle.result()
    assert result.status is GoalStatus.FAILED
    assert (result.progress.tasks_total, result.progress.tasks_failed) == (2, 1)
    assert result.progress.progress_percentage == 50.0
    failed = next(t for t in result.tasks if t.task_id == "t2")
    assert failed.outcome is TaskStatus.FAILED
    assert failed.error is not None and "disk full" in failed.error


async def test_duplicate_late_and_rapid_reports_never_double_count(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, goal_spec(3, workspace), task_queue)
    views = [await wait_task(client, handle.id, f"t{i}", TaskStatus.ASSIGNED) for i in range(1, 4)]

    # The same report five times at once, then once more after it was counted. A task
    # closes as it ends, so Temporal itself refuses repeats that arrive after that.
    sent = await asyncio.gather(
        *(report(client, views[0]) for _ in range(5)), return_exceptions=True
    )
    refused = sum(isinstance(r, RPCError) for r in sent)
    assert all(r is None or isinstance(r, RPCError) for r in sent), sent
    after_first = await wait_progress(handle, lambda p: p.tasks_completed == 1)
    await wait_task(client, handle.id, "t1", TaskStatus.COMPLETED)
    with pytest.raises(RPCError, match="already completed"):
        await report(client, views[0])
    seen: list[float] = [after_first.progress_percentage]

    # The remaining two in rapid succession, watching progress all along.
    await asyncio.gather(report(client, views[1]), report(client, views[2]))
    while (current := await progress(handle)).status is GoalStatus.RUNNING:
        seen.append(current.progress_percentage)
    seen.append(current.progress_percentage)

    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert current.tasks_completed == 3 and current.progress_percentage == 100.0
    assert current.tokens_used == 300
    rows = await pool.fetch(
        "SELECT task_id, count(*) FROM events WHERE goal_id = $1 AND kind = 'task_completed' "
        "GROUP BY task_id",
        handle.id,
    )
    assert {r["task_id"]: r["count"] for r in rows} == {"t1": 1, "t2": 1, "t3": 1}
    rejected = await pool.fetchval(
        "SELECT count(*) FROM events WHERE goal_id = $1 AND kind = 'report_rejected'", handle.id
    )
    assert rejected + refused == 4  # four duplicates: recorded, or refused to the sender


async def test_read_model_agrees_with_the_progress_query(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, goal_spec(3, workspace, max_attempts=1), task_queue)
    views = [await wait_task(client, handle.id, f"t{i}", TaskStatus.ASSIGNED) for i in range(1, 4)]
    await report(client, views[0])
    await report(client, views[1], "failed")
    await wait_task(client, handle.id, "t2", TaskStatus.FAILED)
    live = await wait_progress(handle, lambda p: p.tasks_completed == 1 and p.tasks_failed == 1)
    row = await one_row(pool, "SELECT * FROM goal_progress WHERE goal_id = $1", handle.id)
    assert row is not None
    for field in (
        "tasks_total",
        "tasks_completed",
        "tasks_failed",
        "tasks_running",
        "tasks_awaiting_approval",
        "progress_percentage",
        "agents_total",
        "agents_completed",
        "tokens_used",
    ):
        assert row[field] == getattr(live, field), field
    assert abs(row["cost_usd"] - live.cost_usd) < 1e-9
    assert live.progress_percentage == 33.3


def test_a_goals_next_run_shows_its_checkpoints_figures_until_it_has_loaded() -> None:
    """Right after continue-as-new the progress is the checkpoint's, never 0 %."""
    plan = Plan.build((f"t{i}", []) for i in range(4))
    schedule = Schedule(plan, "continue")
    started = schedule.next_to_start(4)
    schedule.end(started[0], TaskStatus.COMPLETED)
    schedule.change(started[1], TaskStatus.AWAITING_APPROVAL)
    summary = TaskSummary(task_id="t0", status=TaskStatus.COMPLETED, cost_usd=0.5, tokens_used=7)
    checkpoint = GoalCheckpoint(
        spec_ref=GoalRef(goal_id="g", goal_run_id="r", tasks_total=4),
        window=WindowState(schedule=schedule.state(), tasks={0: summary}, agents=["a"]),
    )
    counts, agents, _, cost, tokens = checkpoint_figures(checkpoint)
    assert counts[TaskStatus.COMPLETED] == 1 and counts[TaskStatus.AWAITING_APPROVAL] == 1
    assert counts[TaskStatus.PENDING] == 2 and sum(counts.values()) == 4
    assert (agents, cost, tokens) == ({"a"}, 0.5, 7)
