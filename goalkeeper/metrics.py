"""Goalkeeper's own metrics, as data: what each one measures, its labels, and the name
Prometheus sees, so dashboards and alert rules can be checked against one list.

Labels are small fixed sets (statuses, outcomes, the reasons and kinds below) or a
deployment's own short lists (workspaces, skills, alert kinds); never a goal, task or
agent id. Temporal adds its own bounded labels (`service_name`, and `namespace`,
`task_queue` and `workflow_type` or `activity_type` where a workflow or activity records).
"""

from dataclasses import dataclass
from enum import StrEnum

from goalkeeper.statuses import GoalStatus, TaskStatus


class Kind(StrEnum):
    """How a metric is recorded, which decides the suffix Prometheus gives its name."""

    COUNTER = "counter"
    """An integer count that only grows; exported with `_total`."""
    GAUGE = "gauge"
    """A value set from the read model every few seconds; exported as named."""
    DURATION = "duration"
    """A histogram of durations; exported in seconds, with `_seconds`."""
    SUM = "sum"
    """A fractional total that only grows, kept per worker process and exported as a gauge
    under its `_total` name: Temporal's meter counts in integers only."""


@dataclass(frozen=True)
class Metric:
    """One metric: the instrument's name on the meter, what it means, its label keys."""

    name: str
    kind: Kind
    description: str
    labels: tuple[str, ...] = ()
    unit: str | None = None
    """UCUM, as OpenTelemetry has it; annotations such as `{task}` add no suffix."""
    buckets: tuple[float, ...] = ()
    """A histogram's bucket bounds, in seconds."""

    @property
    def exported(self) -> str:
        """The metric's name in Prometheus (a histogram's, before `_bucket` and the like)."""
        if self.kind is Kind.COUNTER:
            return f"{self.name}_total"
        if self.kind is Kind.DURATION:
            return f"{self.name}_seconds"
        return self.name


class Reassignment(StrEnum):
    """Why a task was given to an agent again: `goalkeeper_task_reassignments_total{reason}`."""

    DEADLINE = "deadline"
    """The agent missed its report deadline."""
    SILENT = "silent"
    """The agent stopped sending heartbeats."""
    AGENT_FAILED = "agent_failed"
    """The agent reported that it failed."""
    INVALID_RESULT = "invalid_result"
    """The result was not what the task expects; it goes back for another try."""
    REJECTED_RESULT = "rejected_result"
    """An approver sent the result back for rework."""
    HEALTH_CHECK = "health_check"
    """The `reassign` signal, which the health check sends for a task past its deadline."""
    RETRY_APPROVED = "retry_approved"
    """A failed task's approver asked for it to be tried again (`on_task_failure`)."""
    REQUESTED = "requested"
    """One of the goal's approvers took it from its agent (`reassign_task`)."""


class Rejected(StrEnum):
    """What a refused message was: `goalkeeper_messages_rejected_total{kind}`."""

    REPORT = "report"
    HEARTBEAT = "heartbeat"
    DECISION = "decision"
    """An approval decision on a task, or a retry decision on a goal's failed task."""
    ADD_TASKS = "add_tasks"
    BUDGET = "budget"
    """A budget raise or a stop."""
    TASK_CONTROL = "task_control"
    """A reassign or cancel of a goal's task."""
    GOAL_INPUT = "goal_input"
    TASK_INPUT = "task_input"
    REQUEST_INPUT = "request_input"
    INTERNAL = "internal"
    """A message posing as one of Goalkeeper's own between its workflows."""


AGENT_ORIGINS = ("registered", "provisioned")
"""Where an agent came from: it registered, or an assignment provisioned it."""

TASK_OUTCOMES = tuple(s.value for s in TaskStatus if s.is_terminal)
GOAL_OUTCOMES = tuple(s.value for s in GoalStatus if s is not GoalStatus.RUNNING)

GOALS = Metric("goalkeeper_goals", Kind.GAUGE, "Goals by status.", ("status",), "{goal}")
TASKS = Metric(
    "goalkeeper_tasks", Kind.GAUGE, "Tasks of running goals, by status.", ("status",), "{task}"
)
APPROVALS_WAITING = Metric(
    "goalkeeper_approvals_waiting",
    Kind.GAUGE,
    "Tasks of running goals awaiting an approval decision.",
    unit="{task}",
)
APPROVAL_OLDEST_AGE = Metric(
    "goalkeeper_approval_oldest_age_seconds",
    Kind.GAUGE,
    "How long the oldest task awaiting an approval decision has waited (0 when none).",
)
AGENTS = Metric(
    "goalkeeper_agents",
    Kind.GAUGE,
    "Agents by status, and whether they registered or were provisioned.",
    ("status", "origin"),
    "{agent}",
)
ALERTS_OPEN = Metric(
    "goalkeeper_alerts_open", Kind.GAUGE, "Open alerts, by kind.", ("kind",), "{alert}"
)
ASSIGNMENT_DURATION = Metric(
    "goalkeeper_task_assignment_duration",
    Kind.DURATION,
    "From a task asking for an agent to its assignment, retries included.",
    ("skill",),
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
REPORT_DURATION = Metric(
    "goalkeeper_task_report_duration",
    Kind.DURATION,
    "From a task's assignment to its agent's report arriving.",
    ("skill",),
    buckets=(1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400),
)
REASSIGNMENTS = Metric(
    "goalkeeper_task_reassignments",
    Kind.COUNTER,
    "Tasks given to an agent again, by why (see `Reassignment`).",
    ("reason",),
    "{task}",
)
MESSAGES_REJECTED = Metric(
    "goalkeeper_messages_rejected",
    Kind.COUNTER,
    "Signals, updates and start inputs refused, by what they were (see `Rejected`).",
    ("kind",),
    "{message}",
)
AGENTS_PROVISIONED = Metric(
    "goalkeeper_agents_provisioned",
    Kind.COUNTER,
    "Agents provisioned because no agent with the skill was free.",
    ("skill",),
    "{agent}",
)
TOKENS = Metric(
    "goalkeeper_tokens",
    Kind.COUNTER,
    "Tokens that agents reported using, counted as their assignments end.",
    ("workspace", "skill"),
    "{token}",
)
TOKENS_BY_DIRECTION = Metric(
    "goalkeeper_tokens_by_direction",
    Kind.COUNTER,
    "The same tokens by direction: `input` (read) and `output` (written) where the report "
    "said, `unsaid` for the rest.",
    ("workspace", "skill", "direction"),
    "{token}",
)
TOKEN_DIRECTIONS = ("input", "output", "unsaid")
COST = Metric(
    "goalkeeper_cost_usd_total",
    Kind.SUM,
    "Cost in USD that agents reported, counted as their assignments end (per worker "
    "process; read it as a counter).",
    ("workspace", "skill"),
)
TASKS_FINISHED = Metric(
    "goalkeeper_tasks_finished",
    Kind.COUNTER,
    "Tasks that reached an end in the read model, by outcome (completed, failed, skipped).",
    ("outcome",),
    "{task}",
)
GOALS_FINISHED = Metric(
    "goalkeeper_goals_finished",
    Kind.COUNTER,
    "Goals that ended, by outcome (completed, failed, rejected).",
    ("outcome",),
    "{goal}",
)
HEALTH_FINDINGS = Metric(
    "goalkeeper_health_findings",
    Kind.COUNTER,
    "The health check's findings, by kind.",
    ("kind",),
    "{finding}",
)

CATALOGUE = (
    GOALS,
    TASKS,
    APPROVALS_WAITING,
    APPROVAL_OLDEST_AGE,
    AGENTS,
    ALERTS_OPEN,
    ASSIGNMENT_DURATION,
    REPORT_DURATION,
    REASSIGNMENTS,
    MESSAGES_REJECTED,
    AGENTS_PROVISIONED,
    TOKENS,
    TOKENS_BY_DIRECTION,
    COST,
    TASKS_FINISHED,
    GOALS_FINISHED,
    HEALTH_FINDINGS,
)
"""Every metric Goalkeeper exports beside the Temporal SDK's."""

NAMES = frozenset(m.exported for m in CATALOGUE)
"""The exported names (a histogram by its base name, before `_bucket`, `_sum`, `_count`)."""

BUCKETS = {m.name: list(m.buckets) for m in CATALOGUE if m.buckets}
"""Bucket bounds by instrument name, for the Prometheus exporter."""
