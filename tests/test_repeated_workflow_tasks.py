"""A workflow task that runs twice writes each fact once.

Temporal refuses a workflow task's commands when a message arrived while it ran and
the task would complete its workflow; the next attempt runs the same code again,
local activities included. What it writes must be named by the fact, not by the
order in which handlers happened to run, or the audit trail counts a fact twice.
"""

import asyncpg
from temporalio import activity
from temporalio.client import Client

from activities.assignment import AssignmentActivities
from goalkeeper.ids import assignment_id
from goalkeeper.records import EndAssignment
from goalkeeper.statuses import GoalStatus, TaskStatus
from tests.helpers import goal_spec, report, start_goal, wait_task
from worker import build_worker


class ReportTwiceWhileClosing(AssignmentActivities):
    """Sends the agent's report again while its first is being recorded, once."""

    def __init__(self, pool: asyncpg.Pool, client: Client) -> None:
        super().__init__(pool)
        self.client = client
        self.sent: set[str] = set()

    @activity.defn(name="end_assignment")
    async def end_assignment(self, request: EndAssignment) -> None:
        task = request.task
        if request.assignment_id not in self.sent:
            self.sent.add(request.assignment_id)
            await self.client.get_workflow_handle(f"{task.goal_id}/{task.task_id}").signal(
                "agent_report",
                {
                    "agent_id": task.agent_id,
                    "assignment_id": request.assignment_id,
                    "outcome": "completed",
                    "result": "the same result again",
                },
            )
        await super().end_assignment(request)


async def test_a_report_repeated_while_its_task_closes_is_counted_and_recorded_once(
    client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    queue = f"test-repeat-{workspace}"
    async with build_worker(client, pool, queue, assignments=ReportTwiceWhileClosing(pool, client)):
        handle = await start_goal(client, goal_spec(1, workspace), queue)
        view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
        await report(client, view)
        result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    kinds = {
        r["kind"]: r["n"]
        for r in await pool.fetch(
            "SELECT kind, count(*) AS n FROM events WHERE goal_id = $1 AND task_id = 't1' "
            "GROUP BY kind",
            handle.id,
        )
    }
    assert kinds.get("task_completed") == 1, kinds
    assert kinds.get("report_rejected") == 1, kinds
    # The workflow task that closed the task ran twice: Temporal refused the first.
    history = await client.get_workflow_handle(f"{handle.id}/t1").fetch_history()
    refused = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
    assert refused, "the repeated report arrived too late to make the workflow task run twice"
    assignments = await pool.fetch(
        "SELECT assignment_id::text FROM assignments WHERE goal_id = $1", handle.id
    )
    assert [r["assignment_id"] for r in assignments] == [view.assignment_id]


def test_an_attempt_has_one_assignment_id_per_goal_run() -> None:
    first = assignment_id("run-1", "t1", 1)
    assert first == assignment_id("run-1", "t1", 1)
    assert len({first, assignment_id("run-1", "t1", 2), assignment_id("run-2", "t1", 1)}) == 3
