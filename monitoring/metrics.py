"""Goalkeeper's metrics, recorded through a Temporal meter: a workflow's (it skips replay),
or an activity's. Names and labels come from `goalkeeper.metrics`; with no metrics
address the meter is a no-op. The gauges are set from the read model (`monitoring.gauges`).

A metric never stops the work it measures: a value that cannot be recorded is logged.
"""

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import ParamSpec

from temporalio import activity
from temporalio.common import MetricMeter

from goalkeeper import metrics as m
from goalkeeper.statuses import GoalStatus, TaskStatus

log = logging.getLogger("goalkeeper.metrics")

P = ParamSpec("P")


def _quietly(record: Callable[P, None]) -> Callable[P, None]:
    """Log, rather than raise, what a metric cannot take: workflows and activities go on."""

    @wraps(record)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception as exc:
            log.warning("metric not recorded by %s: %r", record.__name__, exc)

    return wrapper


def activity_meter() -> MetricMeter:
    """The running activity's meter; a no-op one when called outside an activity."""
    try:
        return activity.metric_meter()
    except RuntimeError:
        return MetricMeter.noop


def since_scheduled() -> timedelta:
    """How long ago the running activity was first scheduled, its retries included."""
    try:
        return datetime.now(UTC) - activity.info().scheduled_time
    except RuntimeError:
        return timedelta(0)


def _add(meter: MetricMeter, metric: m.Metric, value: int, **labels: str) -> None:
    if value > 0:
        meter.create_counter(metric.name, metric.description, metric.unit).add(value, labels)


def _time(meter: MetricMeter, metric: m.Metric, took: timedelta, **labels: str) -> None:
    histogram = meter.create_histogram_timedelta(metric.name, metric.description, "duration")
    histogram.record(max(took, timedelta(0)), labels)


@_quietly
def task_assigned(meter: MetricMeter, skill: str, waited: timedelta) -> None:
    """A task got its agent `waited` after asking for one."""
    _time(meter, m.ASSIGNMENT_DURATION, waited, skill=skill)


@_quietly
def report_arrived(meter: MetricMeter, skill: str, took: timedelta) -> None:
    """An agent's report arrived `took` after its assignment."""
    _time(meter, m.REPORT_DURATION, took, skill=skill)


@_quietly
def reassigned(meter: MetricMeter, reason: m.Reassignment) -> None:
    """A task goes to an agent again, for `reason`."""
    _add(meter, m.REASSIGNMENTS, 1, reason=reason.value)


@_quietly
def rejected(meter: MetricMeter, kind: m.Rejected) -> None:
    """A message was refused: a signal, an update, or a workflow's start input."""
    _add(meter, m.MESSAGES_REJECTED, 1, kind=kind.value)


def refused(meter: MetricMeter, kind: m.Rejected, problem: object) -> object:
    """Count `problem` as a rejected `kind` if it is one (a reason, as a string); returns it,
    so an update validator can pass it on to `reject_if`."""
    if isinstance(problem, str):
        rejected(meter, kind)
    return problem


@_quietly
def provisioned(meter: MetricMeter, skill: str) -> None:
    """An agent was provisioned for `skill`."""
    _add(meter, m.AGENTS_PROVISIONED, 1, skill=skill)


@_quietly
def tasks_finished(meter: MetricMeter, outcome: TaskStatus, count: int = 1) -> None:
    """`count` tasks reached the end `outcome` in the read model."""
    if outcome.is_terminal:
        _add(meter, m.TASKS_FINISHED, count, outcome=outcome.value)


@_quietly
def goal_finished(meter: MetricMeter, outcome: GoalStatus) -> None:
    """A goal ended with `outcome`."""
    _add(meter, m.GOALS_FINISHED, 1, outcome=outcome.value)


@_quietly
def count_findings(meter: MetricMeter, kinds: Iterable[str]) -> None:
    """One count per health check finding, by its kind (call it with each run's findings)."""
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    for kind, count in counts.items():
        _add(meter, m.HEALTH_FINDINGS, count, kind=kind)


class Spend:
    """Tokens and cost that agents reported, by workspace and skill.

    Tokens are a counter. Cost is fractional and Temporal's counters count in integers,
    so this keeps its running total and sets it on a gauge: it grows like a counter, and
    starts again from 0 when the process does.
    """

    def __init__(self) -> None:
        self._cost: dict[tuple[str, str], float] = {}

    @_quietly
    def add(
        self,
        meter: MetricMeter,
        workspace: str,
        skill: str,
        tokens: int,
        usd: float,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        labels = {"workspace": workspace, "skill": skill}
        _add(meter, m.TOKENS, tokens, **labels)
        read, written = input_tokens or 0, output_tokens or 0
        unsaid = max(0, tokens - read - written)
        for direction, count in zip(m.TOKEN_DIRECTIONS, (read, written, unsaid), strict=True):
            _add(meter, m.TOKENS_BY_DIRECTION, count, direction=direction, **labels)
        if usd > 0:
            total = self._cost[workspace, skill] = self._cost.get((workspace, skill), 0.0) + usd
            meter.create_gauge_float(m.COST.name, m.COST.description).set(total, labels)
