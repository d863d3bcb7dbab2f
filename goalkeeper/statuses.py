"""The status vocabularies of goals, tasks, agents and assignments.

Each enum is the only definition of its values: the workflows, the activities,
the CLI and the PostgreSQL enum types (generated from these classes) all use it.
"""

from enum import StrEnum


class AgentStatus(StrEnum):
    """Whether an agent can be given work."""

    AVAILABLE = "available"
    """Registered and idle."""
    BUSY = "busy"
    """Working on at least one assignment; takes more while below its capacity."""
    UNRESPONSIVE = "unresponsive"
    """Missed its deadline or heartbeats; gets no work until it reports in again."""
    OFFLINE = "offline"
    """Deregistered; gets no work."""
    RETIRED = "retired"
    """Provisioned for a goal that has ended, and idle: out of the pool for good."""

    @property
    def accepts_work(self) -> bool:
        return self in (AgentStatus.AVAILABLE, AgentStatus.BUSY)


class TaskStatus(StrEnum):
    """Where a task is in its life. Only `pending` and `skipped` tasks lack an agent."""

    PENDING = "pending"
    ASSIGNED = "assigned"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED)


class GoalStatus(StrEnum):
    """Where a goal is in its life."""

    RUNNING = "running"
    COMPLETED = "completed"
    """Every task completed."""
    FAILED = "failed"
    """At least one task failed or was skipped."""
    REJECTED = "rejected"
    """The goal spec was invalid; nothing ran."""


class AssignmentStatus(StrEnum):
    """The state of one agent's assignment to one task attempt."""

    ACTIVE = "active"
    STARTING = "starting"
    """Made by the goal before the task workflow starts; agents see it once it has."""
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    """The agent missed its report deadline or went silent."""
    CANCELLED = "cancelled"


class ReportOutcome(StrEnum):
    """What an agent says happened to its assignment."""

    COMPLETED = "completed"
    FAILED = "failed"


class Decision(StrEnum):
    """An approver's decision on a task's result."""

    APPROVE = "approve"
    REJECT = "reject"


class RequestStatus(StrEnum):
    """Where a request is in its life."""

    TRIAGING = "triaging"
    ANSWERED = "answered"
    """Triage answered it directly: a simple request, and done."""
    GOAL_RUNNING = "goal_running"
    COMPLETED = "completed"
    """Its goal completed."""
    FAILED = "failed"
    """Triage never gave a valid result, or the goal failed."""
    REJECTED = "rejected"
    """The request itself was invalid."""
    CANCELED = "canceled"
    """Its caller canceled it: its triage or goal was aborted, and no goal started after."""

    @property
    def is_terminal(self) -> bool:
        return self not in (RequestStatus.TRIAGING, RequestStatus.GOAL_RUNNING)
