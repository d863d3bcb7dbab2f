"""How workflows call activities: timeouts and retry policies, chosen on purpose."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

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

REFUSED_FIRST = timedelta(seconds=5)
REFUSED_MAX = timedelta(minutes=5)


def refused_wait(refusals: int) -> timedelta:
    """How long to wait before asking again for agents a spent budget refused `refusals`
    times in a row: a budget may be raised outside the goal (a workspace's), so it is
    looked at again, ever less often."""
    return min(REFUSED_FIRST * 2 ** (refusals - 1), REFUSED_MAX)


A = TypeVar("A")
R = TypeVar("R")
Activity = Callable[[Any, A], Awaitable[R]]
"""An activity method of a class that holds its connections, taking one input model."""

LOCAL_RETRY_THRESHOLD = timedelta(seconds=10)
"""Past this backoff a local activity's retry waits on a durable timer, so a long
database outage neither holds a workflow task open nor loses the write."""


async def record(
    activity: Activity[A, R], arg: A, summary: str, timeout: timedelta = ACTIVITY_TIMEOUT
) -> R:
    """Run one short, idempotent PostgreSQL write (or read) as a local activity.

    A local activity is one marker in the same workflow task, instead of three events
    and a round trip through the server; it retries like any activity.
    """
    return await workflow.execute_local_activity_method(
        activity,
        arg,
        start_to_close_timeout=timeout,
        retry_policy=DATABASE_RETRY,
        local_retry_threshold=LOCAL_RETRY_THRESHOLD,
        summary=summary,
    )


async def record_apart(activity: Activity[A, R], arg: A, summary: str) -> R:
    """Run a short, idempotent write from a signal or update handler, as a regular activity.

    Local activities running at once in two coroutines (a handler's and the main
    one's) can resolve in another order on replay than they did live, and the
    coroutines then issue their commands in another order; a regular activity's
    completion is an event in history, so its order is fixed.
    """
    return await workflow.execute_activity_method(
        activity,
        arg,
        start_to_close_timeout=ACTIVITY_TIMEOUT,
        retry_policy=DATABASE_RETRY,
        summary=summary,
    )


async def assign(activity: Activity[A, R], arg: A, summary: str) -> R:
    """Give tasks agents: a local activity that retries until every task has one."""
    return await workflow.execute_local_activity_method(
        activity,
        arg,
        start_to_close_timeout=ACTIVITY_TIMEOUT,
        retry_policy=ASSIGN_RETRY,
        local_retry_threshold=LOCAL_RETRY_THRESHOLD,
        summary=summary,
    )
