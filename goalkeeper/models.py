"""The messages of the public contract: goal specs, reports, decisions, progress.

One pydantic model per workflow input, signal, query result and activity input,
so fields can be added without breaking running workflows. Models that arrive
from outside (specs, reports, decisions) forbid unknown fields and coercions, so a
typo is an error that names the field instead of a value silently ignored.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from goalkeeper.limits import (
    MAX_COMMENT_CHARS,
    MAX_ERROR_CHARS,
    MAX_GOAL_DESCRIPTION_CHARS,
    MAX_GUIDANCE_CHARS,
    MAX_SIGNATURE_CHARS,
    MAX_TASK_DESCRIPTION_CHARS,
    MAX_TIME_CHARS,
    MAX_TITLE_CHARS,
    MAX_TOOL_CALLS,
    MAX_TOOL_ERROR_CHARS,
    MAX_TOOL_NAME_CHARS,
    heartbeat_time,
)
from goalkeeper.scheduling import ScheduleState
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

GoalId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=(128 + 1) * 4,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*(/[A-Za-z0-9][A-Za-z0-9_.:@-]*){0,3}$",
    ),
]
"""A goal's id: an `Id`, or for a sub-goal its parent's id, `/` and its task's id."""

Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)
]
"""A required, non-blank line of text such as a title or a skill."""

Guidance = Annotated[str, StringConstraints(max_length=MAX_GUIDANCE_CHARS)]
"""Advice to agents on how to do the work: up to 16 KiB."""

Comment = Annotated[str, StringConstraints(max_length=MAX_COMMENT_CHARS)]
"""What an approver says with a decision, a budget raise or a stop."""

Seconds = Annotated[int, Field(ge=1, le=365 * 86400)]
"""A duration in whole seconds, from one second to a year."""

MAX_GOAL_DEPTH = 3
"""How deep sub-goals nest: a goal's task may be a goal, down to this many levels."""

SUBGOAL_SKILL = "goal"
"""The skill of a task that is a goal when its spec names none: no agent takes it."""

FailurePolicy = Literal["continue", "fail_goal", "ask_approver"]
ApprovalTimeoutPolicy = Literal["reject", "fail"]


class _Strict(BaseModel):
    """Input from outside: unknown fields and type coercions are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TaskSpec(_Strict):
    """One task of a goal, as the person who states the goal writes it."""

    id: Id | None = None
    title: Text
    skill: Text
    description: Annotated[str, StringConstraints(max_length=MAX_TASK_DESCRIPTION_CHARS)] = ""
    guidance: Guidance = ""
    """How an agent should do this task (from a runbook, or written by hand)."""
    requires_approval: bool = False
    approvers: list[Id] = []
    """Approvers of this task, in addition to the goal's."""
    depends_on: list[Id] = []
    """Tasks whose results this one needs; it starts once they have completed."""
    report_deadline_seconds: Seconds | None = None
    """Overrides the goal's `report_deadline_seconds` for this task."""
    heartbeat_timeout_seconds: Seconds | None = None
    """Overrides the goal's `heartbeat_timeout_seconds` for this task."""
    expects: Literal["triage", "plan", "deliverable"] | None = None
    """A result this task must give, checked before it counts: an invalid one goes back
    to the agent with the reason, using an attempt."""
    inputs: dict[str, JsonValue] = {}
    """What the agent needs beyond the texts (up to 64 KiB as JSON), e.g. the question
    and runbook candidates of a triage."""
    goal: dict[str, JsonValue] | None = None
    """A goal of its own (a spec like any goal's): the task runs as a sub-goal, a child
    `GoalWorkflow` counted as one task, instead of going to an agent."""

    @model_validator(mode="before")
    @classmethod
    def _subgoal_skill(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("goal") is not None and "skill" not in data:
            return {**data, "skill": SUBGOAL_SKILL}
        return data


class ParentGoal(_Strict):
    """Where a sub-goal belongs: set by Goalkeeper when a goal's task is itself a goal."""

    goal_id: GoalId
    goal_run_id: str = Field(max_length=128)
    task_id: Id
    depth: int = Field(ge=1, le=MAX_GOAL_DEPTH)
    """1 for a sub-goal of a goal people started, 2 for one below it, and so on."""


MAX_INPUTS_BYTES = 64 * 1024


class GoalSpec(_Strict):
    """A goal: what to achieve, the tasks that achieve it, and who signs off."""

    goal_id: GoalId | None = None
    title: Text
    description: Annotated[str, StringConstraints(max_length=MAX_GOAL_DESCRIPTION_CHARS)] = ""
    workspace: Id = "default"
    approvers: list[Id] = []
    tasks: list[TaskSpec] = []
    runbook: Id | None = None
    """A stored runbook whose tasks the goal gets, instead of listing its own."""
    runbook_version: int | None = Field(default=None, ge=1)
    """The runbook's version; the latest when not given (recorded once expanded)."""
    parameters: dict[
        Annotated[str, StringConstraints(max_length=64)],
        Annotated[str, StringConstraints(max_length=1024)] | int | float,
    ] = {}
    """Values of the runbook's parameters."""
    guidance: Guidance = ""
    """How agents should work on every task of this goal (a runbook's, unless given)."""
    compile: bool = False
    """End with a `compile` task: an agent writes the deliverable from every result and
    judges it against `success_criteria` (else Goalkeeper compiles the results itself)."""
    success_criteria: Guidance = ""
    """What the deliverable must achieve for the goal to count as met."""
    max_replans: int = Field(default=1, ge=0, le=10)
    """Times the goal plans more work when the judge finds the criteria not met."""
    max_attempts: int = Field(default=3, ge=1, le=50)
    """Assignments per task; failed reports, missed deadlines, silent agents and
    rejected work all use one, and when they are spent the task fails."""
    max_running_tasks: int = Field(default=100, ge=1, le=1000)
    """Window of task workflows running at once (Temporal caps pending children)."""
    partition_size: int = Field(default=500, ge=2, le=1000)
    """A goal with more tasks than this runs them in partitions of this many, each its
    own workflow, so no workflow's state or history grows with the goal."""
    report_deadline_seconds: Seconds = 3600
    """How long an agent has, from its assignment, to report."""
    heartbeat_timeout_seconds: Seconds = 60
    """Longest silence allowed between an agent's heartbeats, once it has sent one."""
    approval_timeout_seconds: Seconds = 86400
    """How long each level of approvers has to decide before the next level is asked."""
    require_signatures: bool | None = None
    """Refuse unsigned or wrongly signed reports, heartbeats and decisions; None: the
    worker's default (GOALKEEPER_REQUIRE_SIGNATURES)."""
    escalation: list[list[Id]] = []
    """Approver groups asked in turn when the previous level does not decide in time."""
    on_approval_timeout: ApprovalTimeoutPolicy = "reject"
    """At the end of the escalation chain: `reject` (rework, using an attempt) or `fail`."""
    on_task_failure: FailurePolicy = "continue"
    """When a task fails for good: `continue` without it (its dependents are skipped),
    `fail_goal` (stop everything), or `ask_approver` whether to retry it."""
    budget_usd: float | None = Field(default=None, gt=0, le=1e9, strict=False)
    """Spend (USD) at which the goal pauses: no new assignment starts until one of its
    approvers raises the budget or stops the goal. Its sub-goals' spend counts too."""
    budget_tokens: int | None = Field(default=None, gt=0, le=10**15)
    """The same, in tokens."""
    parent: ParentGoal | None = None
    """Set on a sub-goal: the goal and task it runs for (never by hand)."""

    @property
    def depth(self) -> int:
        """0 for a goal people started; one more per level of sub-goal."""
        return self.parent.depth if self.parent else 0

    def header(self) -> "GoalSpec":
        """The spec without its tasks: what every part of a goal of any size may carry."""
        return self.model_copy(update={"tasks": []})

    def approvers_of(self, task: TaskSpec) -> list[str]:
        """Who may decide on the task: the goal's approvers and the task's own."""
        return sorted({*self.approvers, *task.approvers})


ToolCallOutcome = Literal["success", "failed", "timeout"]


class ToolCallRecord(_Strict):
    """One tool call of an attempt, as its agent reports it: the arguments only by digest,
    so a report never carries (nor leaks) what the tool was given."""

    tool: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOOL_NAME_CHARS)]
    args_digest: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    """The SHA-256 of the call's arguments, 64 lowercase hex digits."""
    duration_ms: int = Field(ge=0, le=7 * 86400 * 1000)
    outcome: ToolCallOutcome
    error: str | None = Field(default=None, max_length=MAX_TOOL_ERROR_CHARS)


class AgentReport(_Strict):
    """An agent's report on its assignment: the `agent_report` signal."""

    agent_id: Id
    assignment_id: Text
    outcome: ReportOutcome = Field(strict=False)
    result: JsonValue = None
    """Bounded by `judging.INLINE_RESULT_LIMIT`; larger results travel by reference."""
    error: str | None = Field(default=None, max_length=MAX_ERROR_CHARS)
    tokens_used: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    input_tokens: int | None = Field(default=None, ge=0)
    """Of `tokens_used`, those the model read (its prompts), where known."""
    output_tokens: int | None = Field(default=None, ge=0)
    """Of `tokens_used`, those the model wrote, where known."""
    cost_known: bool = True
    """False where no price was known: `cost_usd` is then unknown (and must be 0), not free."""
    tool_calls: list[ToolCallRecord] = Field(default=[], max_length=MAX_TOOL_CALLS)
    signature: str | None = Field(default=None, max_length=MAX_SIGNATURE_CHARS)
    """The agent's signature over the report (goalkeeper.signing.report_content)."""

    @model_validator(mode="after")
    def _tokens_add_up(self) -> "AgentReport":
        """Input and output tokens are parts of `tokens_used`: with both given, a
        `tokens_used` of 0 becomes their sum, and any other must equal it."""
        split = (self.input_tokens, self.output_tokens)
        if None not in split:
            total = sum(t or 0 for t in split)
            if self.tokens_used == 0:
                self.tokens_used = total
            elif self.tokens_used != total:
                raise ValueError(
                    f"tokens_used {self.tokens_used} is not input_tokens + output_tokens "
                    f"({total}): expected their sum, or 0 to have it counted"
                )
        else:
            for name, part in zip(("input_tokens", "output_tokens"), split, strict=True):
                if part is not None and part > self.tokens_used:
                    raise ValueError(
                        f"{name} {part} is more than tokens_used {self.tokens_used}: "
                        "expected a part of it"
                    )
        if not self.cost_known and self.cost_usd != 0:
            raise ValueError(
                f"cost_usd {self.cost_usd} with cost_known false: expected 0, as no price was known"
            )
        return self


class ApprovalDecision(_Strict):
    """An approver's decision: the `approval_decision` signal and `decide` update.

    On a task, it approves or rejects the task's result. On a goal whose policy is
    `ask_approver`, it names a failed `task_id`: approve retries it, reject gives it up.
    """

    approver: Id
    decision: Decision = Field(strict=False)
    comment: Comment = ""
    task_id: Id | None = None
    signature: str | None = Field(default=None, max_length=MAX_SIGNATURE_CHARS)
    """The signature over the decision on the exact result (goalkeeper.signing)."""
    signed_by: Id | None = None
    """A delegate (the dashboard) that signed on the approver's behalf, if not them."""
    attempt: int | None = Field(default=None, ge=1)
    """On a goal's failed task: the attempt decided on, so a signed retry counts once."""


class Heartbeat(_Strict):
    """An agent saying it is still working: the `agent_heartbeat` signal and update."""

    agent_id: Id
    assignment_id: Text
    at: str | None = Field(default=None, max_length=MAX_TIME_CHARS)
    """When the agent sent it (ISO 8601 with its offset), signed with it: a replay repeats
    an old time. Checked against the clock: at most `limits.MAX_CLOCK_SKEW` ahead."""
    signature: str | None = Field(default=None, max_length=MAX_SIGNATURE_CHARS)

    @field_validator("at")
    @classmethod
    def _a_time(cls, at: str | None) -> str | None:
        parsed = None if at is None else heartbeat_time(at)
        if isinstance(parsed, str):
            raise ValueError(parsed)
        return at


class TaskView(BaseModel):
    """Everything known about one task at a moment: the `status` and `tasks` queries."""

    goal_id: str
    task_id: str
    title: str
    skill: str
    goal_run_id: str = ""
    """The goal run this task belongs to (its first execution's id)."""
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
    approval_level: int = 0
    """0 for the task's own approvers, then one more per escalation."""
    assigned_at: datetime | None = None
    report_due_at: datetime | None = None
    """When the current assignment's report deadline passes."""
    last_heartbeat_at: datetime | None = None
    tokens_used: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    """Of `tokens_used`, those its attempts' reports said the model read and wrote."""
    cost_unknown_attempts: int = 0
    """Attempts whose cost no price was known for: `cost_usd` leaves them out."""
    tool_calls: list[ToolCallRecord] = []
    """The latest report's tool calls (its last `limits.MAX_SHOWN_TOOL_CALLS`)."""
    tool_calls_total: int = 0
    """How many tool calls that report recorded, shown or not."""
    result: JsonValue = None
    error: str | None = None
    history: list[str] = []
    """One line per attempt or decision, so a failure says what happened each time."""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    seq: int = 0
    """Grows with every change, so the goal ignores stale or repeated updates."""
    subgoal_id: str | None = None
    """For a task that is a goal: the sub-goal's id (it has no agent of its own)."""


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
    on_task_failure: str = "continue"
    tasks_added: int = 0
    """Tasks that joined while the goal ran: its plan, and `add_tasks`."""
    budget_usd: float | None = None
    """The goal's budget now (raises included), if it has one."""
    budget_tokens: int | None = None
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
    tasks_omitted: int = 0
    """Completed tasks left out of `tasks` to keep the report small (large goals)."""
    error: str | None = None
    deliverable_bytes: int = 0
    """Size of the compiled deliverable, kept in PostgreSQL (`goal report --deliverable`)."""


class TaskSummary(BaseModel):
    """What a goal keeps of one task: small and of fixed size, so a goal of any size fits.

    The result, the attempt history and the task's spec live in the task workflow
    (its `status` query) and in PostgreSQL, never here.
    """

    task_id: str
    status: TaskStatus = TaskStatus.PENDING
    agent_id: str | None = None
    assignment_id: str | None = None
    attempts: int = 0
    reworks: int = 0
    tokens_used: int = 0
    cost_usd: float = 0.0
    waiting_on: list[str] = []
    error: str | None = None
    seq: int = 0
    """Grows with every change, so stale or repeated updates are ignored."""
    goal_progress: str | None = None
    """For a task that is a goal: how far its own tasks are ("3 of 7 tasks done")."""
    duration_seconds: float | None = None
    """Once the task ended: how long its task workflows ran, retries included."""


class TaskPage(BaseModel):
    """One page of a goal's tasks: the `tasks` query. Totals come from `progress`."""

    goal_id: str
    offset: int
    limit: int
    status: TaskStatus | None = None
    total: int
    """Tasks matching the filter, across all pages."""
    tasks: list[TaskSummary]
    next_offset: int | None = None
    """Where the next page starts, or None on the last page."""
    partitions: list[str] = []
    """For a goal run in partitions: the partition workflows, whose own `tasks`
    queries page through their tasks (this page then lists none)."""


class TasksQuery(BaseModel):
    """Arguments of the `tasks` query; all optional."""

    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)
    status: TaskStatus | None = None


class TaskUpdate(BaseModel):
    """A task's new state, from its workflow to the goal that runs it: `task_update`.

    `goal_run_id` names the goal's run (its first execution's id), so a task left
    behind by an earlier goal of the same id cannot change this one.
    """

    goal_run_id: str
    task: TaskSummary
    agent_ids: list[str] = []
    """Every agent that has held the task."""


class Abort(BaseModel):
    """End a task or a sub-goal without a result: its goal is failing. `abort`, sealed."""

    reason: str = "aborted"


class Adopt(BaseModel):
    """A later run of a goal takes over a task or sub-goal it did not start. `adopt`, sealed."""

    goal_run_id: str


class Reassign(BaseModel):
    """Take a task from the agent of `assignment_id` now (the health check, or a person
    through the goal's `reassign_task`). `reassign`, sealed; naming the assignment keeps it
    from taking the task from a later agent."""

    assignment_id: str
    reason: str = "reassigned on request"
    by: str | None = None
    """The person who asked, through the goal: the task then goes on whatever its attempts,
    to `agent_id` where named, else to another agent than this one where one can take it."""
    agent_id: str | None = None


class PartitionFail(BaseModel):
    """The goal is failing: a partition aborts what runs and skips the rest. `fail`, sealed."""

    reason: str


class AssignedAgent(BaseModel):
    """An assignment made before the task workflow starts."""

    assignment_id: str
    agent_id: str
    assigned_at: datetime | None = None
    """When the goal made it: the task's deadlines count from here, a time fixed in the
    task's input rather than read from the clock when its workflow first runs."""
    agent_key: str | None = None
    """The agent's public key, to check its signatures."""
    agent_operator: str | None = None
    signatures_required: bool = False


class TaskInput(BaseModel):
    """Input of a `TaskWorkflow`: its task, the goal's rules, and where it stands."""

    goal_id: str
    goal_run_id: str
    workspace: str
    task: TaskSpec
    approval_levels: list[list[str]]
    """Who may decide at each level: the task's approvers, then each escalation group."""
    max_attempts: int
    report_deadline_seconds: int
    heartbeat_timeout_seconds: int
    approval_timeout_seconds: int
    on_approval_timeout: ApprovalTimeoutPolicy
    previous: TaskSummary | None = None
    """The task's state from an earlier attempt, when an approver had it retried."""
    require_signatures: bool | None = None
    """The goal's `require_signatures`; None: the worker's default."""
    assigned: AssignedAgent | None = None
    """The first attempt's assignment, when the goal made it (it assigns in batches)."""
    note: str | None = None
    """Why the task runs again, for its history (an approver asked for a retry)."""


class Signers(BaseModel):
    """Whose signatures a task accepts now, and whether it requires them."""

    required: bool = False
    agent_key: str | None = None
    """The public key of the agent holding the current assignment."""
    agent_operator: str | None = None
    """Who operates that agent: they may not approve its work."""
    approver_keys: dict[str, str] = {}
    """The approvers' public keys, read when the task came to await approval."""
    delegate_keys: dict[str, str] = {}
    """Keys that sign on behalf of a person (the dashboard's), by their name."""
    agent_keys: dict[str, str] = {}
    """Agents' keys by id, for changes a goal's agents may make (adding tasks)."""
    last_beat_at: str | None = None
    """The time in the last signed heartbeat: an earlier or equal one is a replay."""


class ControlSigners(BaseModel):
    """Whose keys may sign a change to a goal, and whether the goal requires it."""

    approvers: list[str]
    agents: list[str] = []
    require_signatures: bool | None = None
    """The goal's `require_signatures`; None: the worker's default."""


class TaskCheckpoint(BaseModel):
    """A task's state carried across continue-as-new (long tasks, many heartbeats)."""

    view: TaskView
    attempts_before: int
    exclude: list[str] = []
    rework: list[dict[str, JsonValue]] = []
    reported: list[str] = []
    adopted: bool = False
    signers: Signers | None = None


class PartitionInput(BaseModel):
    """Input of a `PartitionWorkflow`: which stored tasks of the goal it runs."""

    goal_id: str
    goal_run_id: str
    index: int
    start: int
    """First plan position of its tasks (plan positions follow the dependencies)."""
    end: int
    window: int
    """Its tasks running at once: its share of the goal's `max_running_tasks`."""


class PartitionUpdate(BaseModel):
    """A partition's counts, rolled up to its goal: the `partition_update` signal."""

    goal_run_id: str
    index: int
    seq: int
    counts: dict[TaskStatus, int]
    tokens_used: int = 0
    cost_usd: float = 0.0
    agents: list[str] = []
    agents_completed: list[str] = []
    retry_due: list[str] = []
    """Failed tasks waiting for an approver's retry decision."""
    failing: str | None = None
    ended: bool = False


class PartitionState(BaseModel):
    """What a goal keeps of one partition."""

    index: int
    start: int
    end: int
    after: list[int] = []
    """Partitions holding tasks that this one's tasks depend on: it starts after them."""
    started: bool = False
    update: PartitionUpdate | None = None


class WindowState(BaseModel):
    """A window of tasks carried across continue-as-new: a byte per task, a summary per
    task that has left `pending` (a window holds at most a partition's worth)."""

    schedule: ScheduleState
    tasks_added: int = 0
    tasks: dict[int, TaskSummary] = {}
    agents: list[str] = []
    agents_completed: list[str] = []
    subgoals: dict[int, TaskSummary] = {}
    """Tasks whose sub-goal runs, each as it was when that sub-goal started."""


class BudgetState(BaseModel):
    """A goal's budget as raised so far, and where its spend stands against it."""

    usd: float | None = None
    tokens: int | None = None
    raises: int = 0
    """Raises so far: each budget is one fact, its alert and pause named by it."""
    alerted: bool = False
    """The alert at `ALERT_SHARE` of this budget has been sent."""
    paused_at: datetime | None = None
    """When spend reached this budget: no new assignment starts until a decision."""
    level: int = 0
    """The approval level asked to decide on the pause (escalation goes on from it)."""
    stopped: str | None = None
    """Why the goal was stopped, once it was: nothing more is decided."""
    holds: int = 0
    """Times another budget (its workspace's, a goal's it runs for) held the goal back."""


class GoalCheckpoint(BaseModel):
    """The goal's state carried across continue-as-new: compact at any size."""

    spec_ref: "GoalRef"
    window: WindowState | None = None
    """A goal that runs its tasks itself."""
    partitions: list[PartitionState] = []
    """A goal that runs its tasks in partitions."""
    failing: str | None = None
    agents: list[str] = []
    agents_completed: list[str] = []
    told: int = 0
    """Updates a sub-goal has sent the goal it runs for: their numbering goes on."""
    adopted_by: str | None = None
    """The run of the parent goal that took this sub-goal over, if one did."""
    budget: BudgetState | None = None
    """The goal's budget as raised so far, and where it stands."""


class GoalRef(BaseModel):
    """A goal whose spec is stored in PostgreSQL: the input of a large goal and of a new run."""

    goal_id: str
    goal_run_id: str
    tasks_total: int


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
