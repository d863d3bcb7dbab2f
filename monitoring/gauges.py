"""The read model's counts behind Goalkeeper's gauges, and setting them on a meter.

Read every few seconds, so each stays cheap beside a goal of any size: goals and agents
are scanned once each; tasks are counted only for running goals, through the
`tasks_goal_status` index; open alerts through `alerts_open`.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from temporalio.common import MetricGaugeFloat, MetricMeter

from goalkeeper import metrics as m
from goalkeeper.problems import WATCH_ALERT_KINDS
from goalkeeper.statuses import AgentStatus, GoalStatus, TaskStatus

# The running goals' ids come with their count: the goals table is read once.
_GOALS = """
SELECT status::text AS key, count(*) AS n,
       array_agg(goal_id) FILTER (WHERE status = 'running') AS running
FROM goals GROUP BY status
"""

_TASKS = """
SELECT status::text AS key, count(*) AS n FROM tasks WHERE goal_id = ANY($1::text[])
GROUP BY status
"""

# Waiting starts when the report that asked for approval closed the assignment; the
# task's own row changes again on each escalation.
_APPROVALS = """
SELECT count(*) AS n, coalesce(max(now() - coalesce(a.ended_at, t.updated_at)), '0s') AS oldest
FROM tasks t LEFT JOIN assignments a ON a.assignment_id = t.assignment_id
WHERE t.goal_id = ANY($1::text[]) AND t.status = 'awaiting_approval'
"""

_AGENTS = """
SELECT status::text AS status, provisioned, count(*) AS n FROM agents
GROUP BY status, provisioned
"""

_ALERTS = """
SELECT kind AS key, count(*) AS n FROM alerts WHERE resolved_at IS NULL GROUP BY kind
"""


@dataclass
class Counts:
    """What the gauges show, as the read model has it now."""

    goals: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    """Of running goals."""
    approvals_waiting: int = 0
    oldest_approval: timedelta = timedelta(0)
    agents: dict[tuple[str, str], int] = field(default_factory=dict)
    """By status and origin (`registered` or `provisioned`)."""
    alerts: dict[str, int] = field(default_factory=dict)
    """Open alerts by kind."""


async def read_counts(connection: "asyncpg.Connection[Any] | PoolConnectionProxy[Any]") -> Counts:
    """The read model's counts, from one snapshot (a read-only transaction)."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        goals = await connection.fetch(_GOALS)
        running = [goal_id for r in goals for goal_id in r["running"] or ()]
        tasks = await connection.fetch(_TASKS, running)
        approvals = await connection.fetchrow(_APPROVALS, running)
        agents = await connection.fetch(_AGENTS)
        alerts = await connection.fetch(_ALERTS)
    assert approvals is not None  # an aggregate without GROUP BY returns one row
    return Counts(
        goals=_by_key(goals),
        tasks=_by_key(tasks),
        approvals_waiting=approvals["n"],
        oldest_approval=approvals["oldest"],
        agents={
            (r["status"], "provisioned" if r["provisioned"] else "registered"): r["n"]
            for r in agents
        },
        alerts=_by_key(alerts),
    )


def _by_key(rows: list[Any]) -> dict[str, int]:
    return {r["key"]: r["n"] for r in rows}


class Gauges:
    """Sets the read model's counts on the gauges of a meter.

    Every status is set, zeros included, so a count that drops to nothing reads 0 and
    not its last value; alert kinds, which are open-ended, are zeroed once seen closed.
    """

    def __init__(self, meter: MetricMeter) -> None:
        self.meter = meter
        self._gauges: dict[str, MetricGaugeFloat] = {}
        # The watch's kinds read 0 from the start, so a dashboard shows them before any.
        self._alert_kinds: set[str] = set(WATCH_ALERT_KINDS)

    def set(self, counts: Counts) -> None:
        """Show `counts`: every label value the gauges have had gets its value now."""
        for goal_status in GoalStatus:
            value = counts.goals.get(goal_status.value, 0)
            self._set(m.GOALS, value, status=goal_status.value)
        for task_status in TaskStatus:
            value = counts.tasks.get(task_status.value, 0)
            self._set(m.TASKS, value, status=task_status.value)
        self._set(m.APPROVALS_WAITING, counts.approvals_waiting)
        self._set(m.APPROVAL_OLDEST_AGE, max(counts.oldest_approval.total_seconds(), 0.0))
        for agent_status in AgentStatus:
            for origin in m.AGENT_ORIGINS:
                value = counts.agents.get((agent_status.value, origin), 0)
                self._set(m.AGENTS, value, status=agent_status.value, origin=origin)
        self._alert_kinds |= set(counts.alerts)
        for kind in sorted(self._alert_kinds):
            self._set(m.ALERTS_OPEN, counts.alerts.get(kind, 0), kind=kind)

    def _set(self, metric: m.Metric, value: float, **labels: str) -> None:
        gauge = self._gauges.get(metric.name)
        if gauge is None:
            gauge = self._gauges[metric.name] = self.meter.create_gauge_float(
                metric.name, metric.description
            )
        gauge.set(value, labels)
