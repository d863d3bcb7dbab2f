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


async def latest(pool: asyncpg.Pool) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    """The last check run and the alerts still open, newest first."""
    last = await pool.fetchrow("SELECT * FROM health_checks ORDER BY check_id DESC LIMIT 1")
    alerts = await pool.fetch(
        "SELECT * FROM alerts WHERE resolved_at IS NULL ORDER BY last_seen DESC"
    )
    return last, alerts
