"""The watch: every few seconds, wedged workflows and stalled goals become alerts.

The health check reconciles rows with workflows once a minute; this looks for the work
that looks alive and is not, often enough that a person sees it within seconds. Each
problem is an alert (the `alerts` table, a log line, the webhook), a line on its goal's
row (`goals.problem`) and an event on its goal's trail; its clearing is recorded the same
way. Several workers may watch at once: alerts are opened once and closed once.
"""

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from goalkeeper.ids import fact_id
from goalkeeper.problems import (
    WATCH_ALERT_KINDS,
    WEDGED,
    Problem,
    Quiet,
    goal_candidates,
    reported,
    stalled,
    wedged,
)
from goalkeeper.records import Event, EventKind, Finding
from monitoring.webhook import post_alerts
from store.rows import Connection, insert_event, open_alert

log = logging.getLogger("goalkeeper.watch")

LOOKED_UP = 50
"""Wedged workflows described (attempts, last failure) per round; more are still alerted."""
LISTED = 1000
"""Wedged workflows alerted per round: a bound on one round's work, not on what is found."""


def problems_query(task_queue: str) -> str:
    """The visibility query for wedged workflows of any type on `task_queue`: one of a type
    no worker knows (a deploy skew, a typo) fails every workflow task as surely as ours."""
    quoted = task_queue.replace("\\", "\\\\").replace("'", "\\'")
    return (
        "TemporalReportedProblems IS NOT NULL AND ExecutionStatus = 'Running' "
        f"AND TaskQueue = '{quoted}'"
    )


_QUIET_GOALS = """
WITH running AS (
    SELECT g.goal_id, g.created_at, g.spec FROM goals g
    WHERE g.status = 'running'
      AND NOT EXISTS (SELECT 1 FROM alerts a  -- a goal paused at its budget waits on purpose
                      WHERE a.kind = 'budget_spent' AND a.resolved_at IS NULL
                        AND a.subject IN (g.goal_id, g.goal_id || ' (held)'))
), quiet AS (
    SELECT r.goal_id, r.spec, greatest(max(t.updated_at), r.created_at) AS last_change
    FROM running r JOIN tasks t USING (goal_id)
    GROUP BY r.goal_id, r.spec, r.created_at
    HAVING greatest(max(t.updated_at), r.created_at) < now() - make_interval(secs => $1)
)
SELECT q.goal_id, extract(epoch FROM now() - q.last_change)::float8 AS quiet_seconds,
    coalesce((q.spec->>'report_deadline_seconds')::int, 3600) AS report_deadline,
    coalesce((q.spec->>'approval_timeout_seconds')::int, 86400)
        * CASE WHEN q.spec->>'on_approval_timeout' = 'escalate' THEN 2 ELSE 1 END
        AS approval_timeout,
    max((a.context->>'report_deadline_seconds')::int) AS longest_deadline,
    -- DISTINCT: a task awaiting approval is a row per approver below.
    count(DISTINCT t.task_id) FILTER (WHERE t.status IN ('assigned', 'awaiting_approval'))
        AS working,
    count(DISTINCT t.task_id) FILTER (WHERE t.status = 'awaiting_approval') AS approving,
    count(DISTINCT t.task_id) FILTER (WHERE t.ready) AS ready,
    (array_agg(DISTINCT t.skill) FILTER (WHERE t.ready))[1:5] AS skills,
    (array_agg(DISTINCT 'agent ' || t.agent_id) FILTER (WHERE t.status = 'assigned'))[1:5]
        || (array_agg(DISTINCT 'approver ' || p.name)
            FILTER (WHERE t.status = 'awaiting_approval'))[1:5] AS waiting_on
FROM quiet q
JOIN LATERAL (
    SELECT t.*, t.status = 'pending' AND NOT EXISTS (  -- every dependency is done
        SELECT 1 FROM unnest(t.depends_on) d(task_id)
        WHERE NOT EXISTS (SELECT 1 FROM tasks u WHERE u.goal_id = t.goal_id
                          AND u.task_id = d.task_id AND u.status = 'completed')) AS ready
    FROM tasks t WHERE t.goal_id = q.goal_id
) t ON true
LEFT JOIN assignments a ON a.assignment_id = t.assignment_id AND t.status = 'assigned'
LEFT JOIN LATERAL unnest(CASE WHEN t.status = 'awaiting_approval' THEN t.approvers END) p(name)
    ON true
GROUP BY q.goal_id, q.spec, q.last_change
ORDER BY q.last_change
LIMIT $2
"""
"""Running goals with no task change for `$1` seconds, and what their tasks wait on."""


@dataclass
class WatchReport:
    """What one round found, and which alerts it opened and closed."""

    findings: list[Finding] = field(default_factory=list)
    opened: list[Finding] = field(default_factory=list)
    closed: list[dict[str, Any]] = field(default_factory=list)


class Watch:
    """Looks for wedged workflows on its task queue and stalled goals; holds the worker's
    pool and client."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        client: Client,
        webhook: str | None = None,
        every: timedelta = timedelta(seconds=5),
        stall_after: timedelta = timedelta(minutes=2),
        task_queue: str = "goals",
    ) -> None:
        self.pool, self.client, self.webhook = pool, client, webhook
        self.every, self.stall_after = every, stall_after
        self.task_queue = task_queue
        self.query = problems_query(task_queue)
        """The visibility query for wedged workflows (a test gives one the server refuses)."""
        self.reports = True
        """Whether the server reports problem workflows; a server before 1.30 does not."""

    async def run(self, stop: asyncio.Event) -> None:
        """Look every `every` until `stop`. Rounds that fail (PostgreSQL restarting) are
        logged once, with the first one's traceback, and once more when a round succeeds."""
        failing = False
        while not stop.is_set():
            try:
                await self.look()
            except Exception:  # the watch must never take its worker down
                if not failing:
                    log.exception("the watch cannot look; it tries again every round")
                failing = True
            else:
                if failing:
                    log.info("the watch looks again")
                failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every.total_seconds())

    async def look(self) -> WatchReport:
        """One round: find, alert what is new, refresh what is still seen, close the rest."""
        report = WatchReport()
        report.findings += [wedged(p) for p in await self.wedged_workflows()]
        report.findings += await self.stalled_goals()
        await self._record(report, await self._others(report.findings))
        return report

    async def wedged_workflows(self) -> list[Problem]:
        """Running workflows on the task queue that Temporal reports as failing their
        workflow task."""
        if not self.reports:
            return []
        problems: list[Problem] = []
        try:
            async for execution in self.client.list_workflows(self.query, limit=LISTED):
                values = (execution.search_attributes or {}).get("TemporalReportedProblems")
                category, cause = reported([str(v) for v in values or []])
                problems.append(Problem(execution.id, execution.workflow_type, category, cause))
        except RPCError as exc:
            if exc.status is not RPCStatusCode.INVALID_ARGUMENT:
                raise
            self.reports = False
            log.warning(
                "Temporal refused the query for wedged workflows (%s): it reports them from "
                "server 1.30 on; until then only stalled goals are watched, and the SDK's "
                "temporal_workflow_task_execution_failed metric shows failing workflow tasks",
                exc.message,
            )
            return []
        looked = await asyncio.gather(*(self._last_failure(p) for p in problems[:LOOKED_UP]))
        return list(looked) + problems[LOOKED_UP:]

    async def _last_failure(self, problem: Problem) -> Problem:
        """The attempts on its pending workflow task, and the last failure its worker sent."""
        try:
            handle = self.client.get_workflow_handle(problem.workflow_id)
            description = await handle.describe()
            attempts = description.raw_description.pending_workflow_task.attempt
            history = await self.client.workflow_service.get_workflow_execution_history_reverse(
                GetWorkflowExecutionHistoryReverseRequest(
                    namespace=self.client.namespace,
                    execution=WorkflowExecution(workflow_id=problem.workflow_id),
                    maximum_page_size=20,
                )
            )
        except RPCError as exc:
            log.debug("could not describe %s: %s", problem.workflow_id, exc)
            return problem
        failure = next(
            (
                e.workflow_task_failed_event_attributes.failure
                for e in history.history.events
                if e.HasField("workflow_task_failed_event_attributes")
            ),
            None,
        )
        return Problem(
            problem.workflow_id,
            problem.workflow_type,
            problem.category,
            problem.cause,
            attempts,
            await self._said(failure) if failure else "",
        )

    async def _said(self, failure: Failure) -> str:
        """A failure's message and its causes', decrypted when the codec encrypted them
        (the SDK wraps what went wrong: "Failed decoding arguments" says little alone)."""
        try:
            error: BaseException | None = await self.client.data_converter.decode_failure(failure)
        except Exception:  # a message it cannot decode is still shown as it is
            return failure.message
        said: list[str] = []
        while error is not None and len(said) < 5:
            said.append(str(error))
            error = error.__cause__
        return ": ".join(said)

    async def stalled_goals(self) -> list[Finding]:
        """Running goals whose tasks wait with nobody working, or are silent past deadlines."""
        rows = await self.pool.fetch(_QUIET_GOALS, self.stall_after.total_seconds(), LISTED)
        found = []
        for row in rows:
            deadline = max(row["longest_deadline"] or 0, row["report_deadline"])
            allowed = deadline + (row["approval_timeout"] if row["approving"] else 0)
            finding = stalled(
                Quiet(
                    goal_id=row["goal_id"],
                    quiet_for=timedelta(seconds=row["quiet_seconds"]),
                    ready=row["ready"],
                    working=row["working"],
                    ready_skills=tuple(row["skills"] or ()),
                    allowed=timedelta(seconds=allowed),
                    waiting_on=tuple(row["waiting_on"] or ()),
                ),
                self.stall_after,
            )
            if finding:
                found.append(finding)
        return found

    async def _others(self, findings: list[Finding]) -> list[str]:
        """Open wedged-workflow alerts this watch does not see because their workflows run
        on another task queue (workers of several queues may share a database): not its
        to close."""
        seen = {f.subject for f in findings}
        unseen = [
            subject
            for subject in await self.pool.fetchval(
                "SELECT coalesce(array_agg(subject ORDER BY last_seen DESC), '{}') FROM alerts "
                "WHERE kind = $1 AND resolved_at IS NULL",
                WEDGED,
            )
            if subject not in seen
        ]
        if not unseen:  # most rounds
            return []
        others = []
        for subject in unseen[:LOOKED_UP]:
            try:
                described = await self.client.get_workflow_handle(
                    subject.removeprefix("workflow:")
                ).describe()
            except RPCError as exc:
                if exc.status is not RPCStatusCode.NOT_FOUND:
                    raise
                continue
            running = described.status is WorkflowExecutionStatus.RUNNING
            if running and described.task_queue != self.task_queue:
                others.append(subject)
        return others + unseen[LOOKED_UP:]

    async def _record(self, report: WatchReport, others: list[str]) -> None:
        """Alerts, goal rows and events in one transaction; then the log and the webhook.
        `others` are wedged-workflow alerts of other task queues, left as they are."""
        async with self.pool.acquire() as connection, connection.transaction():
            # In one order everywhere, so two workers' watches never wait on each other's rows.
            for finding in sorted(report.findings, key=lambda f: (f.kind, f.subject)):
                if await open_alert(
                    connection, finding.kind, finding.subject, finding.message, finding.action
                ):
                    report.opened.append(finding)
            # An alert is closed only once a round after it was last seen: a watch whose
            # listing lags another's must not close and reopen it.
            report.closed = [
                dict(r)
                for r in await connection.fetch(
                    """
                    UPDATE alerts SET resolved_at = now()
                    WHERE resolved_at IS NULL AND kind = ANY($1::text[])
                      AND NOT (kind || '|' || subject = ANY($2::text[]))
                      AND last_seen < now() - make_interval(secs => $3)
                    RETURNING alert_id::text, kind, subject, message
                    """,
                    list(WATCH_ALERT_KINDS),
                    [f"{f.kind}|{f.subject}" for f in report.findings]
                    + [f"{WEDGED}|{subject}" for subject in others],
                    self.every.total_seconds(),
                )
            ]
            subjects = [f.subject for f in report.findings] + [c["subject"] for c in report.closed]
            goals = await _goals_of(connection, subjects)
            for finding in report.opened:
                await _trail(connection, goals, finding.kind, finding.subject, finding.message)
            for closed in report.closed:
                message = f"cleared: {closed['message']}"
                await _trail(connection, goals, closed["kind"], closed["subject"], message, closed)
            await _goal_rows(connection, goals, report.findings)
        for finding in report.opened:
            log.warning(
                "alert %s on %s: %s (what to do: %s)",
                finding.kind,
                finding.subject,
                finding.message,
                finding.action,
            )
        for closed in report.closed:
            log.info("alert %s on %s cleared", closed["kind"], closed["subject"])
        await post_alerts(
            self.webhook,
            [f.model_dump() | {"resolved": False} for f in report.opened]
            + [
                {
                    "kind": c["kind"],
                    "subject": c["subject"],
                    "message": f"cleared: {c['message']}",
                    "resolved": True,
                }
                for c in report.closed
            ],
        )


async def _goals_of(connection: Connection, subjects: list[str]) -> dict[str, str]:
    """Each subject's goal, where it has one in the read model."""
    if not subjects:  # most rounds: nothing to look up
        return {}
    candidates = {s: goal_candidates(s) for s in subjects}
    known = {
        r["goal_id"]
        for r in await connection.fetch(
            "SELECT goal_id FROM goals WHERE goal_id = ANY($1::text[])",
            [g for found in candidates.values() for g in found],
        )
    }
    return {
        s: next(g for g in found if g in known)
        for s, found in candidates.items()
        if any(g in known for g in found)
    }


async def _goal_rows(
    connection: Connection, goals: dict[str, str], findings: list[Finding]
) -> None:
    """Each goal's `problem`: its wedged workflow or its stall, and what to do; else none."""
    problems: dict[str, str] = {}
    for finding in sorted(findings, key=lambda f: f.kind != WEDGED):
        if finding.subject in goals:
            problems.setdefault(
                goals[finding.subject], f"{finding.message}. What to do: {finding.action}"
            )
    problems = dict(sorted(problems.items()))
    await connection.execute(
        """
        UPDATE goals SET problem = p.problem
        FROM unnest($1::text[], $2::text[]) AS p(goal_id, problem)
        WHERE goals.goal_id = p.goal_id AND goals.problem IS DISTINCT FROM p.problem
        """,
        list(problems),
        list(problems.values()),
    )
    await connection.execute(
        "UPDATE goals SET problem = NULL "
        "WHERE problem IS NOT NULL AND NOT goal_id = ANY($1::text[])",
        list(problems),
    )


async def _trail(
    connection: Connection,
    goals: dict[str, str],
    kind: str,
    subject: str,
    message: str,
    closed: dict[str, Any] | None = None,
) -> None:
    """An alert's opening or clearing on its goal's trail, when it has a goal."""
    if subject not in goals:
        return
    if closed is None:
        event_kind = EventKind.WORKFLOW_WEDGED if kind == WEDGED else EventKind.GOAL_STALLED
    else:
        event_kind = EventKind.WORKFLOW_RECOVERED if kind == WEDGED else EventKind.GOAL_MOVING
    await insert_event(
        connection,
        Event(
            event_id=fact_id("alert cleared", closed["alert_id"]) if closed else str(uuid.uuid4()),
            kind=event_kind,
            goal_id=goals[subject],
            message=message,
            detail={"alert": kind, "subject": subject},
        ),
    )
