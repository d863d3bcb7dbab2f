"""The messages of the public contract: goal specs, reports, decisions, progress.

One pydantic model per workflow input, signal, query result and activity input,
so fields can be added without breaking running workflows. Models that arrive
from outside (specs, reports, decisions) forbid unknown fields and coercions, so a
typo is an error that names the field instead of a value silently ignored.
"""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, ValidationError

from goalkeeper.statuses import Decision, GoalStatus, ReportOutcome, TaskStatus

Id = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$",
    ),
]
"""A goal, task or agent id: letters, digits and `_ . : @ -`, up to 128 characters."""

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
"""A required, non-blank line of text such as a title or a skill."""


class _Strict(BaseModel):
    """Input from outside: unknown fields and type coercions are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TaskSpec(_Strict):
    """One task of a goal, as the person who states the goal writes it."""

    id: Id | None = None
    title: Text
    skill: Text
    description: str = ""
    requires_approval: bool = False
    approvers: list[Id] = []
    """Approvers of this task, in addition to the goal's."""
    depends_on: list[Id] = []
    """Tasks whose results this one needs; it starts once they have completed."""


class GoalSpec(_Strict):
    """A goal: what to achieve, the tasks that achieve it, and who signs off."""

    goal_id: Id | None = None
    title: Text
    description: str = ""
    workspace: Id = "default"
    approvers: list[Id] = []
    tasks: list[TaskSpec]
    max_attempts: int = Field(default=3, ge=1, le=50)
    """Assignments a task may use on failed reports before it fails for good."""
    max_rework: int = Field(default=2, ge=0, le=50)
    """Times an approver may send a task back for rework before it fails."""
    max_running_tasks: int = Field(default=100, ge=1, le=1000)
    """Window of task workflows running at once (Temporal caps pending children)."""

    def approvers_of(self, task: TaskSpec) -> list[str]:
        """Who may decide on the task: the goal's approvers and the task's own."""
        return sorted({*self.approvers, *task.approvers})


class AgentReport(_Strict):
    """An agent's report on its assignment: the `agent_report` signal."""

    agent_id: Id
    assignment_id: Text
    outcome: ReportOutcome = Field(strict=False)
    result: JsonValue = None
    error: str | None = None
    tokens_used: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)


class ApprovalDecision(_Strict):
    """An approver's decision on a task's result: the `approval_decision` signal."""

    approver: Id
    decision: Decision = Field(strict=False)
    comment: str = ""


class TaskView(BaseModel):
    """Everything known about one task at a moment: the `status` and `tasks` queries."""

    goal_id: str
    task_id: str
    title: str
    skill: str
    depends_on: list[str] = []
    requires_approval: bool = False
    status: TaskStatus = TaskStatus.PENDING
    agent_id: str | None = None
    assignment_id: str | None = None
    attempts: int = 0
    reworks: int = 0
    agent_ids: list[str] = []
    """Every agent that has held an assignment on this task, in order."""
    waiting_on: list[str] = []
    """Approvers who may decide, while the task awaits approval."""
    tokens_used: int = 0
    cost_usd: float = 0.0
    result: JsonValue = None
    error: str | None = None
    history: list[str] = []
    """One line per attempt or decision, so a failure says what happened each time."""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    seq: int = 0
    """Grows with every change, so the goal ignores stale or repeated updates."""


class Progress(BaseModel):
    """A goal's progress, derived from its task states when asked: the `progress` query."""

    goal_id: str
    status: GoalStatus
    stage: str
    progress_percentage: float
    tasks_total: int
    tasks_completed: int
    tasks_failed: int
    tasks_skipped: int
    tasks_running: int
    tasks_awaiting_approval: int
    tasks_pending: int
    agents_total: int
    agents_completed: int
    cost_usd: float
    tokens_used: int
    calculation_method: str = (
        "tasks_completed / tasks_total; failed and skipped tasks count in the total"
    )


class TaskReport(BaseModel):
    """One line of a goal report."""

    task_id: str
    title: str
    outcome: TaskStatus
    agent_id: str | None
    attempts: int
    reworks: int
    tokens_used: int
    cost_usd: float
    duration_seconds: float | None
    error: str | None


class GoalReport(BaseModel):
    """What a goal workflow returns: per task the outcome, agent, attempts, tokens, cost."""

    goal_id: str
    title: str
    status: GoalStatus
    progress: Progress
    tasks: list[TaskReport]
    error: str | None = None


class TaskInput(BaseModel):
    """Input of a `TaskWorkflow`: the task plus what its agent needs to know of the goal."""

    goal_id: str
    goal_title: str
    goal_description: str
    workspace: str
    task: TaskSpec
    approvers: list[str]
    dependency_results: dict[str, JsonValue] = {}
    max_attempts: int
    max_rework: int


class GoalCheckpoint(BaseModel):
    """The goal's state carried across continue-as-new."""

    spec: GoalSpec
    tasks: dict[str, TaskView]
    started: list[str]
    """Tasks whose workflows have been started (they survive continue-as-new)."""


def describe_validation_error(exc: ValidationError, what: str) -> str:
    """Turn a pydantic error into one line per problem: where, what, and the value given."""
    problems = []
    for error in exc.errors(include_url=False):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        where = where.lstrip(".") or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        given = _short(error.get("input"))
        if error["type"] == "missing":
            problems.append(f"{where}: {message}")
        else:
            problems.append(f"{where}: {message}, got {given}")
    return f"invalid {what}: " + "; ".join(problems)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
