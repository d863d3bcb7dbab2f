"""The health check's Temporal Schedule, and reading its latest findings."""

from datetime import timedelta

import asyncpg
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from goalkeeper.records import HealthCheck
from workflows.health import HealthCheckWorkflow

SCHEDULE_ID = "goalkeeper-health"
WORKFLOW_ID = "goalkeeper-health-check"


def _schedule(task_queue: str, every: timedelta) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            HealthCheckWorkflow.run,
            HealthCheck(),
            id=WORKFLOW_ID,
            task_queue=task_queue,
            # A check that no worker picks up must not hold back the ones after it.
            execution_timeout=max(every * 5, timedelta(minutes=5)),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def install_schedule(client: Client, task_queue: str, every: timedelta) -> str:
    """Create the health check's schedule, or bring an existing one to this interval."""
    schedule = _schedule(task_queue, every)
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
        return "created"
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(SCHEDULE_ID).update(update)
        return "updated"


async def latest(
    pool: asyncpg.Pool, workspaces: list[str] | None = None
) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    """The last check run and the alerts still open, newest first: all of them, or those
    about goals, tasks, assignments and agents of `workspaces`."""
    last = await pool.fetchrow("SELECT * FROM health_checks ORDER BY check_id DESC LIMIT 1")
    alerts = await pool.fetch(
        f"SELECT * FROM alerts a WHERE resolved_at IS NULL AND ($1::text[] IS NULL OR "
        f"{_IN_WORKSPACES}) ORDER BY last_seen DESC",
        workspaces,
    )
    return last, alerts


_IN_WORKSPACES = """(
    EXISTS (
        SELECT 1 FROM goals g WHERE g.workspace = ANY($1) AND g.goal_id = ANY(ARRAY[
            a.subject,
            regexp_replace(a.subject, ' \\(held\\)$', ''),
            regexp_replace(a.subject, '^(goal|workflow):', ''),
            regexp_replace(a.subject, '^(task|workflow):(.*)/[^/]*$', '\\2')
        ])
    )
    OR EXISTS (
        SELECT 1 FROM agents ag WHERE ag.workspace = ANY($1)
          AND ag.agent_id = CASE WHEN starts_with(a.subject, 'agent:') THEN substr(a.subject, 7) END
    )
    OR EXISTS (
        SELECT 1 FROM assignments x JOIN goals g USING (goal_id) WHERE g.workspace = ANY($1)
          AND x.assignment_id = CASE WHEN a.subject ~ '^assignment:[0-9a-f-]{36}$'
                                     THEN substr(a.subject, 12)::uuid END
    )
)"""
"""Whether alert `a` is about something of workspaces $1, by its subject: `GOAL`,
`GOAL (held)`, `goal:GOAL`, `task:GOAL/TASK`, `workflow:ID`, `agent:ID`, `assignment:ID`."""
