"""Deliverables: a goal's results compiled into one document when it ends."""

import json

import asyncpg
from temporalio.client import Client

from goalkeeper.deliverables import TaskOutcome, render_document, render_result
from goalkeeper.statuses import GoalStatus, TaskStatus
from store.deliverables import read_deliverable
from store.results import by_reference
from tests.helpers import (
    SimulatedAgents,
    goal_spec,
    new_goal_id,
    report,
    start_goal,
    wait_task,
)


def test_the_document_shows_results_in_order_and_why_others_have_none() -> None:
    tasks = [
        TaskOutcome("csv", "Import", "completed", "a1", "1,000 rows", None),
        TaskOutcome("stats", "Stats", "completed", "a2", {"rows": 1000}, None),
        TaskOutcome("mail", "Mail", "failed", "a3", None, "SMTP down"),
        TaskOutcome("after", "After", "skipped", None, None, None),
    ]
    document = render_document("Goal", "Why we do it", tasks, completed=2, total=4)
    assert document.startswith("# Goal\n\nWhy we do it\n\n_2 of 4 tasks completed._\n")
    assert document.index("## 1. Import") < document.index("## 2. Stats")
    assert "`csv`, by agent `a1`\n\n1,000 rows" in document
    assert '```json\n{\n  "rows": 1000\n}\n```' in document
    assert "## 3. Mail\n\n`mail`, by agent `a3`: **failed**: SMTP down" in document
    assert "## 4. After\n\n`after`: **skipped**" in document
    assert render_result("  ") == "_(empty result)_" and render_result(None) == "_(no result)_"


async def test_a_goal_compiles_its_results_and_failures_when_it_ends(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(3, workspace, description="All three tasks, in order", max_attempts=1)
    spec["tasks"][2]["depends_on"] = ["t1"]
    goal_id = new_goal_id()
    handle = await start_goal(client, spec, task_queue, goal_id)

    def outcome(task_id: str, attempt: int) -> str:
        return "failed" if task_id == "t1" else "completed"

    async with SimulatedAgents(client, pool, goal_id, outcome):
        report = await handle.result()
    assert report.status is GoalStatus.FAILED
    document = await read_deliverable(pool, goal_id)
    assert document is not None and report.deliverable_bytes == len(document.encode())
    assert "_1 of 3 tasks completed._" in document
    assert "## 1. Task 1\n\n`t1`" in document and "**failed**: " in document
    assert "## 2. Task 2" in document and "t2 done" in document
    assert "## 3. Task 3\n\n`t3`: **skipped**" in document


async def test_results_kept_by_reference_are_resolved_in_the_document(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    goal_id = new_goal_id()
    handle = await start_goal(client, goal_spec(1, workspace), task_queue, goal_id)
    view = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    big = {"rows": ["x" * 100] * 1000}
    assert view.assignment_id is not None
    ref = await by_reference(pool, view.assignment_id, big)
    assert "$ref" in ref
    await report(client, view, result=ref)
    await handle.result()
    document = await read_deliverable(pool, goal_id)
    assert document is not None and json.dumps(big, indent=2)[:300] in document
