"""The health check: reconcile PostgreSQL with Temporal, repair what is safe, alert on the rest.

Temporal's history is the truth; the read model is a projection of it. Each finding
becomes an alert (a row in `alerts`, a log line, and an optional webhook POST) that
stays open while the problem is seen and closes once it is not.
"""

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.assignment import release_agent
from goalkeeper.budgets import BUDGET_ALERT_KINDS
from goalkeeper.models import TaskSummary, TaskView
from goalkeeper.problems import WATCH_ALERT_KINDS
from goalkeeper.records import Event, EventKind, Finding, HealthCheck, HealthReport
from goalkeeper.seals import SealKeys, sealed
from monitoring.metrics import count_findings
from monitoring.webhook import post_alerts
from store.paging import goal_tasks
from store.rows import insert_event, open_alert, write_task

log = logging.getLogger("interfaces.health")

QUERY_TIMEOUT = timedelta(seconds=10)
"""A goal that cannot answer a query this fast has no worker; that is itself a finding."""

GOALS_AT_ONCE = 32
"""Running goals checked side by side: goals without a worker each take QUERY_TIMEOUT to say
so, and 500 of them one after another would outlast the check's own 5 minutes."""

_COMPARED = ("status", "agent_id", "assignment_id", "attempts")
"""Task fields whose disagreement with the workflow counts as a finding."""


class HealthActivities:
    """Runs the checks; holds the worker's pool and Temporal client."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        client: Client,
        seal_keys: SealKeys,
        webhook: str | None = None,
    ) -> None:
        self.pool, self.client, self.webhook = pool, client, webhook
        self.seal_keys = seal_keys

    @activity.defn
    async def check_health(self, request: HealthCheck) -> HealthReport:
        """Look for every known inconsistency, repair what is safe, and record alerts."""
        report = HealthReport()
        await self._goals_without_tasks(report)
        await self._tasks_without_agent(report)
        await self._stale_assignments(report, request.repair)
        await self._agents_stuck_busy(report, request.repair)
        await self._tasks_past_deadline(report, request, request.repair)
        await self._goals_against_workflows(report, request, request.repair)
        await self._alert(report.findings)
        count_findings(activity.metric_meter(), [f.kind for f in report.findings])
        return report

    async def _goals_without_tasks(self, report: HealthReport) -> None:
        rows = await self.pool.fetch(
            """
            SELECT goal_id FROM goals g
            WHERE status = 'running'
              AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.goal_id = g.goal_id)
            """
        )
        for row in rows:
            report.findings.append(
                Finding(
                    kind="goal_without_tasks",
                    subject=f"goal:{row['goal_id']}",
                    message=f"goal {row['goal_id']!r} is running with no tasks",
                )
            )

    async def _tasks_without_agent(self, report: HealthReport) -> None:
        rows = await self.pool.fetch(
            """
            SELECT goal_id, task_id, status FROM tasks
            WHERE status NOT IN ('pending', 'skipped') AND agent_id IS NULL
            """
        )
        for row in rows:
            report.findings.append(
                Finding(
                    kind="task_without_agent",
                    subject=f"task:{row['goal_id']}/{row['task_id']}",
                    message=f"task {row['goal_id']}/{row['task_id']} is {row['status']} "
                    "with no agent",
                )
            )

    async def _stale_assignments(self, report: HealthReport, repair: bool) -> None:
        """Active assignments the task no longer holds: close them and free their agents."""
        async with self.pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                """
                SELECT a.assignment_id::text, a.agent_id, a.goal_id, a.task_id
                FROM assignments a LEFT JOIN tasks t USING (goal_id, task_id)
                WHERE a.status IN ('active', 'starting')
                  AND (t.task_id IS NULL OR t.assignment_id IS DISTINCT FROM a.assignment_id
                       OR t.status <> 'assigned')
                  AND a.created_at < now() - interval '30 seconds'
                FOR UPDATE OF a
                """
            )
            for row in rows:
                if repair:
                    await connection.execute(
                        "UPDATE assignments SET status = 'cancelled', ended_at = now(), "
                        "error = 'closed by the health check: the task no longer holds it' "
                        "WHERE assignment_id = $1::uuid",
                        row["assignment_id"],
                    )
                    await release_agent(connection, row["agent_id"])
                report.findings.append(
                    Finding(
                        kind="stale_assignment",
                        subject=f"assignment:{row['assignment_id']}",
                        message=f"assignment {row['assignment_id']} of agent {row['agent_id']!r} "
                        f"is active but task {row['goal_id']}/{row['task_id']} does not hold it",
                        action="closed it and released the agent" if repair else "",
                        repaired=repair,
                    )
                )

    async def _agents_stuck_busy(self, report: HealthReport, repair: bool) -> None:
        """Agents whose recorded load differs from their live assignments."""
        async with self.pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                """
                SELECT g.agent_id, g.status, g.active_assignments,
                       (SELECT count(*) FROM assignments a
                        WHERE a.agent_id = g.agent_id
                          AND a.status IN ('active', 'starting')) AS live
                FROM agents g
                WHERE g.active_assignments <> (SELECT count(*) FROM assignments a
                        WHERE a.agent_id = g.agent_id AND a.status IN ('active', 'starting'))
                   OR (g.status = 'busy' AND NOT EXISTS (SELECT 1 FROM assignments a
                        WHERE a.agent_id = g.agent_id AND a.status IN ('active', 'starting')))
                FOR UPDATE OF g
                """
            )
            for row in rows:
                if repair:
                    # Counted again under the agent's lock: an assignment that committed
                    # since the look above is included, so no slot is given twice.
                    await connection.execute(
                        """
                        WITH live AS (SELECT count(*)::int AS n FROM assignments a
                                      WHERE a.agent_id = $1 AND a.status IN ('active', 'starting'))
                        UPDATE agents SET active_assignments = least(live.n, capacity),
                            status = CASE WHEN status IN ('busy', 'available')
                                          THEN (CASE WHEN live.n > 0 THEN 'busy' ELSE 'available'
                                                END)::agent_status
                                          ELSE status END
                        FROM live WHERE agent_id = $1
                        """,
                        row["agent_id"],
                    )
                report.findings.append(
                    Finding(
                        kind="agent_load_wrong",
                        subject=f"agent:{row['agent_id']}",
                        message=f"agent {row['agent_id']!r} is {row['status']} with "
                        f"{row['active_assignments']} assignments recorded but {row['live']} live",
                        action=f"set its load to {row['live']}" if repair else "",
                        repaired=repair,
                    )
                )

    async def _tasks_past_deadline(
        self, report: HealthReport, request: HealthCheck, repair: bool
    ) -> None:
        """Tasks still assigned well past their report deadline: ask their workflow to reassign."""
        rows = await self.pool.fetch(
            """
            SELECT t.goal_id, t.task_id, a.agent_id, a.assignment_id::text,
                   extract(epoch FROM now() - a.created_at)::int AS age
            FROM tasks t JOIN assignments a ON a.assignment_id = t.assignment_id
            WHERE t.status = 'assigned' AND a.status = 'active'
              AND a.created_at + make_interval(
                    secs => coalesce((a.context->>'report_deadline_seconds')::int, 3600) + $1)
                  < now()
            """,
            request.deadline_grace_seconds,
        )
        for row in rows:
            workflow_id = f"{row['goal_id']}/{row['task_id']}"
            action = ""
            if repair:
                try:
                    reassign = {
                        "assignment_id": row["assignment_id"],
                        "reason": "past its report deadline by the health check's clock "
                        f"(assigned {row['age']}s ago)",
                    }
                    await self.client.get_workflow_handle(workflow_id).signal(
                        "reassign", sealed(self.seal_keys, "reassign", workflow_id, reassign)
                    )
                    action = "asked the task workflow to reassign it"
                except RPCError as exc:
                    action = f"could not signal the task workflow: {exc.message}"
            report.findings.append(
                Finding(
                    kind="task_past_deadline",
                    subject=f"task:{workflow_id}",
                    message=f"task {workflow_id} has been assigned to {row['agent_id']!r} for "
                    f"{row['age']}s, past its report deadline",
                    action=action,
                    repaired=action.startswith("asked"),
                )
            )

    async def _goals_against_workflows(
        self, report: HealthReport, request: HealthCheck, repair: bool
    ) -> None:
        """Running goals: re-project rows that disagree; record outcomes of dead workflows."""
        goals = await self.pool.fetch(
            "SELECT goal_id FROM goals WHERE status = 'running' ORDER BY updated_at LIMIT $1",
            request.goals_limit,
        )
        checking = asyncio.Semaphore(GOALS_AT_ONCE)

        async def check(goal_id: str) -> None:
            async with checking:
                await self._goal_against_workflow(report, goal_id, repair)

        async with asyncio.TaskGroup() as group:  # one that fails stops the rest
            for goal in goals:
                group.create_task(check(goal["goal_id"]))

    async def _goal_against_workflow(
        self, report: HealthReport, goal_id: str, repair: bool
    ) -> None:
        """One running goal: its workflow's tasks against its rows, or its workflow's end."""
        report.goals_checked += 1
        handle = self.client.get_workflow_handle(goal_id)
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            description = None
        if description is None or description.status is not WorkflowExecutionStatus.RUNNING:
            await self._dead_goal(report, goal_id, description, repair)
            return
        try:
            views = await asyncio.wait_for(
                goal_tasks(self.client, goal_id), QUERY_TIMEOUT.total_seconds()
            )
        except (RPCError, TimeoutError) as exc:  # a workflow that cannot answer is worth a look
            report.findings.append(
                Finding(
                    kind="goal_unanswering",
                    subject=f"goal:{goal_id}",
                    message=f"goal {goal_id!r} did not answer its tasks query: "
                    f"{getattr(exc, 'message', None) or 'no answer in time'}",
                )
            )
            return
        await self._compare_tasks(report, goal_id, views, repair)

    async def _compare_tasks(
        self, report: HealthReport, goal_id: str, views: list[TaskSummary], repair: bool
    ) -> None:
        rows = {
            r["task_id"]: r
            for r in await self.pool.fetch(
                "SELECT task_id, status::text, agent_id, assignment_id::text, attempts, seq "
                "FROM tasks WHERE goal_id = $1",
                goal_id,
            )
        }
        for view in views:
            row = rows.get(view.task_id)
            if row is None or row["seq"] > view.seq:
                continue  # a task row ahead of the goal's view is the goal catching up
            expected = {
                "status": view.status.value,
                "agent_id": view.agent_id,
                "assignment_id": view.assignment_id,
                "attempts": view.attempts,
            }
            differs = [f for f in _COMPARED if row[f] != expected[f]]
            if row["seq"] < view.seq or not differs:
                continue  # an update in flight, or nothing to say
            if repair:
                await self._reproject(goal_id, view)
            shown = ", ".join(f"{f} {row[f]!r} (workflow: {expected[f]!r})" for f in differs)
            report.findings.append(
                Finding(
                    kind="read_model_disagrees",
                    subject=f"task:{goal_id}/{view.task_id}",
                    message=f"task {goal_id}/{view.task_id} row disagrees with its workflow: "
                    f"{shown}",
                    action="re-projected the row from the workflow" if repair else "",
                    repaired=repair,
                )
            )

    async def _reproject(self, goal_id: str, summary: TaskSummary) -> None:
        """Write the task's state as its own workflow holds it, or as the goal does."""
        try:
            view: TaskView = await self.client.get_workflow_handle(
                f"{goal_id}/{summary.task_id}"
            ).query("status", result_type=TaskView, rpc_timeout=QUERY_TIMEOUT)
        except RPCError:
            view = TaskView(goal_id=goal_id, task_id=summary.task_id, title="", skill="")
            view = view.model_copy(
                update=summary.model_dump(exclude={"task_id"}, include=set(TaskView.model_fields))
            )
        if view.seq >= summary.seq:
            await write_task(self.pool, view, force=True)

    async def _dead_goal(
        self, report: HealthReport, goal_id: str, description: Any, repair: bool
    ) -> None:
        """A goal row still running whose workflow ended without recording how."""
        state = "missing" if description is None else description.status.name.lower()
        message = f"goal {goal_id!r} is running in the read model but its workflow is {state}"
        if repair:
            async with self.pool.acquire() as connection, connection.transaction():
                await connection.execute(
                    "UPDATE goals SET status = 'failed', error = $2, ended_at = now(), "
                    "updated_at = now() WHERE goal_id = $1 AND status = 'running'",
                    goal_id,
                    f"workflow {state} without recording an outcome",
                )
                await insert_event(
                    connection,
                    Event(
                        event_id=str(uuid.uuid4()),
                        kind=EventKind.GOAL_FINISHED,
                        goal_id=goal_id,
                        message=f"{message}; recorded as failed by the health check",
                    ),
                )
        report.findings.append(
            Finding(
                kind="workflow_ended_without_outcome",
                subject=f"goal:{goal_id}",
                message=message,
                action="recorded the goal as failed" if repair else "",
                repaired=repair,
            )
        )

    async def _alert(self, findings: list[Finding]) -> None:
        """Open an alert per new finding, refresh those still seen, close those gone."""
        new: list[Finding] = []
        async with self.pool.acquire() as connection, connection.transaction():
            seen = []
            for finding in findings:
                opened = await open_alert(
                    connection,
                    finding.kind,
                    finding.subject,
                    finding.message,
                    finding.action,
                    finding.repaired,
                )
                seen.append(f"{finding.kind}|{finding.subject}")
                if opened:
                    new.append(finding)
            await connection.execute(
                """
                UPDATE alerts SET resolved_at = now()
                WHERE resolved_at IS NULL AND NOT (kind || '|' || subject = ANY($1::text[]))
                  AND NOT kind = ANY($2::text[])
                """,
                seen,
                [*BUDGET_ALERT_KINDS, *WATCH_ALERT_KINDS],  # raised and closed elsewhere
            )
            await connection.execute(
                "INSERT INTO health_checks (findings, repaired) VALUES ($1, $2)",
                len(findings),
                sum(f.repaired for f in findings),
            )
        for finding in new:
            log.warning(
                "health alert %s on %s: %s%s",
                finding.kind,
                finding.subject,
                finding.message,
                f" ({finding.action})" if finding.action else "",
            )
        await post_alerts(self.webhook, [f.model_dump() for f in new])
