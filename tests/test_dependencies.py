"""Tasks wait for their dependencies, receive their results, and are skipped if one fails."""

import asyncpg
from temporalio.client import Client

from goalkeeper.statuses import GoalStatus, TaskStatus
from store.paging import goal_tasks
from tests.helpers import events, eventually, report, start_goal, task_view, wait_task


def _spec(workspace: str) -> dict:
    return {
        "title": "Campaign",
        "description": "Launch the Q3 campaign to 500 leads",
        "workspace": workspace,
        "max_attempts": 1,
        "tasks": [
            {"id": "csv", "title": "Import CSV", "skill": "data"},
            {"id": "email", "title": "Write email", "skill": "writing", "depends_on": ["csv"]},
            {"id": "send", "title": "Send", "skill": "ops", "depends_on": ["email"]},
            {"id": "dash", "title": "Dashboard", "skill": "data"},
        ],
    }


async def test_a_task_starts_once_its_dependencies_completed_and_sees_their_results(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, _spec(workspace), task_queue)
    csv = await wait_task(client, handle.id, "csv", TaskStatus.ASSIGNED)
    tasks = {t.task_id: t for t in await goal_tasks(client, handle.id)}
    assert tasks["email"].status is tasks["send"].status is TaskStatus.PENDING

    await report(client, csv, result={"rows": 500, "file": "leads.csv"})
    email = await wait_task(client, handle.id, "email", TaskStatus.ASSIGNED)
    context = await pool.fetchval(
        "SELECT context FROM assignments WHERE assignment_id = $1", email.assignment_id
    )
    assert context["goal"]["description"] == "Launch the Q3 campaign to 500 leads"
    assert context["dependency_results"] == {"csv": {"rows": 500, "file": "leads.csv"}}
    assert context["task"]["title"] == "Write email"


async def test_dependents_of_a_failed_task_are_skipped_and_recorded(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, _spec(workspace), task_queue)
    csv = await wait_task(client, handle.id, "csv", TaskStatus.ASSIGNED)
    dash = await wait_task(client, handle.id, "dash", TaskStatus.ASSIGNED)
    await report(client, csv, "failed", error="no such bucket")
    await report(client, dash)
    result = await handle.result()
    outcomes = {t.task_id: t.outcome for t in result.tasks}
    assert outcomes == {
        "csv": TaskStatus.FAILED,
        "email": TaskStatus.SKIPPED,
        "send": TaskStatus.SKIPPED,
        "dash": TaskStatus.COMPLETED,
    }
    assert result.status is GoalStatus.FAILED
    assert result.progress.tasks_skipped == 2 and result.progress.progress_percentage == 25.0
    skipped = await events(pool, handle.id, "task_skipped")
    assert {r["task_id"] for r in skipped} == {"email", "send"}
    rows = await pool.fetch(
        "SELECT task_id, status, error FROM tasks WHERE goal_id = $1", handle.id
    )
    by_id = {r["task_id"]: r for r in rows}
    assert by_id["email"]["status"] == "skipped" and "'csv' failed" in by_id["email"]["error"]
    assert by_id["send"]["status"] == "skipped" and "'email' skipped" in by_id["send"]["error"]


async def test_the_running_window_bounds_concurrent_tasks(
    client: Client, task_queue: str, workspace: str
) -> None:
    spec = {
        "title": "Windowed",
        "workspace": workspace,
        "max_running_tasks": 2,
        "tasks": [{"id": f"t{i}", "title": f"T{i}", "skill": "data"} for i in range(5)],
    }
    handle = await start_goal(client, spec, task_queue)
    done: set[str] = set()
    while len(done) < 5:
        started = []
        for i in range(5):
            try:
                view = await task_view(client, handle.id, f"t{i}")
            except Exception:
                continue
            started.append(view)
        running = [v for v in started if not v.status.is_terminal]
        assert len(running) <= 2
        assigned = [v for v in running if v.status is TaskStatus.ASSIGNED]
        if assigned:
            await report(client, assigned[0])
            await _wait_ended(client, handle.id, assigned[0].task_id)
            done.add(assigned[0].task_id)
    assert (await handle.result()).status is GoalStatus.COMPLETED


async def _wait_ended(client: Client, goal_id: str, task_id: str) -> None:
    async def ended() -> bool:
        return (await task_view(client, goal_id, task_id)).status.is_terminal

    await eventually(ended, what=f"{task_id} to end")
