"""How workflows call activities: timeouts and retry policies, chosen on purpose."""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

ACTIVITY_TIMEOUT = timedelta(seconds=30)
"""One PostgreSQL transaction; longer means the database is unreachable, so retry."""

DATABASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
    non_retryable_error_types=["InvalidRecord"],
)
"""Writes to the read model retry until PostgreSQL is back: a restart loses nothing."""

ASSIGN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
    maximum_attempts=0,
    non_retryable_error_types=["InvalidRecord"],
)
"""Assignment retries without limit: a task never proceeds without an agent, and
never gives up on getting one; a stuck assignment shows as a retrying activity."""


async def record(activity: Any, arg: Any, summary: str) -> None:
    """Run one write to the read model, with the database retry policy."""
    await workflow.execute_activity_method(
        activity,
        arg,
        start_to_close_timeout=ACTIVITY_TIMEOUT,
        retry_policy=DATABASE_RETRY,
        summary=summary,
    )
