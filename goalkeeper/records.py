"""What the workflows ask the activities to write: one model per activity input."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, JsonValue

from goalkeeper.ids import fact_id
from goalkeeper.models import (
    GoalReport,
    GoalSpec,
    Heartbeat,
    TaskSpec,
    TaskSummary,
    TaskView,
    ToolCallRecord,
)
from goalkeeper.requests import RequestSpec
from goalkeeper.statuses import AssignmentStatus, GoalStatus, RequestStatus


class EventKind(StrEnum):
    """Kinds of rows in the audit trail."""

    GOAL_STARTED = "goal_started"
    GOAL_REJECTED = "goal_rejected"
    GOAL_CONTINUED = "goal_continued_as_new"
    GOAL_FINISHED = "goal_finished"
    TASK_ASSIGNED = "task_assigned"
    AGENT_PROVISIONED = "agent_provisioned"
    REPORT_ACCEPTED = "report_accepted"
    REPORT_REJECTED = "report_rejected"
    TASK_RETRIED = "task_retried"
    APPROVAL_REQUESTED = "approval_requested"
    DECISION_ACCEPTED = "decision_accepted"
    DECISION_REJECTED = "decision_rejected"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_SKIPPED = "task_skipped"
    AGENT_REGISTERED = "agent_registered"
    KEY_REGISTERED = "key_registered"
    AGENT_UNRESPONSIVE = "agent_unresponsive"
    AGENT_RETIRED = "agent_retired"
    HEARTBEAT_REJECTED = "heartbeat_rejected"
    MESSAGE_REJECTED = "message_rejected"
    """A message posing as one of Goalkeeper's own (unsealed, forged, or sent elsewhere)."""
    CREDENTIAL_REJECTED = "credential_rejected"
    """An agent's revoked credential used on the HTTP agent protocol (once per credential)."""
    APPROVAL_ESCALATED = "approval_escalated"
    RETRY_REQUESTED = "retry_requested"
    TASK_CANCELLED = "task_cancelled"
    RESULT_INVALID = "result_invalid"
    TASKS_ADDED = "tasks_added"
    SUBGOAL_STARTED = "subgoal_started"
    REQUEST_STARTED = "request_started"
    REQUEST_REJECTED = "request_rejected"
    TASK_INPUT_REJECTED = "task_input_rejected"
    REQUEST_TRIAGED = "request_triaged"
    REQUEST_ENDED = "request_ended"
    BUDGET_ALERT = "budget_alert"
    GOAL_PAUSED = "goal_paused"
    BUDGET_ESCALATED = "budget_escalated"
    BUDGET_RAISED = "budget_raised"
    GOAL_STOPPED = "goal_stopped"
    BUDGET_SET = "budget_set"
    FEEDBACK_GIVEN = "feedback_given"
    SUGGESTION_MADE = "suggestion_made"
    SUGGESTION_ACCEPTED = "suggestion_accepted"
    SUGGESTION_DISMISSED = "suggestion_dismissed"
    WORKFLOW_WEDGED = "workflow_wedged"
    WORKFLOW_RECOVERED = "workflow_recovered"
    GOAL_STALLED = "goal_stalled"
    GOAL_MOVING = "goal_moving"
    ACTION_REFUSED = "action_refused"
    """A person's decision or change sent through the API (or MCP) that its workflow refused."""
    AGENT_NOTE = "agent_note"
    """What an agent says it is doing while it works (store/schema_notes.sql)."""
    NOTE_REJECTED = "note_rejected"
    """A note refused: for another agent's assignment, or past an assignment's limit (once)."""


class Event(BaseModel):
    """One row of the audit trail; `event_id` comes from the workflow so retries add it once."""

    event_id: str
    kind: EventKind
    message: str
    goal_id: str | None = None
    """The goal's id, or a request's: a request's trail is kept under its request id."""
    task_id: str | None = None
    agent_id: str | None = None
    detail: dict[str, JsonValue] = {}


def goal_event(
    goal_id: str,
    goal_run_id: str,
    kind: EventKind,
    message: str,
    task_id: str | None = None,
    detail: dict[str, Any] | None = None,
    key: tuple[object, ...] = (),
) -> Event:
    """An event of a goal run, named by its kind, its task and `key`: what makes it one
    fact (a change number, a position), so it is written once however often the writing
    is repeated."""
    return Event(
        event_id=fact_id("goal", goal_run_id, kind, task_id, *key),
        kind=kind,
        message=message,
        goal_id=goal_id,
        task_id=task_id,
        detail=detail or {},
    )


class RecordGoal(BaseModel):
    """A validated goal, written as `running` when it starts; its tasks follow in pages."""

    goal_id: str
    goal_run_id: str
    header: GoalSpec
    """The spec without its tasks: title, description, approvers, policies."""
    tasks_total: int
    tasks: list[TaskSpec] = []
    """The first page of its tasks, stored with it."""
    event: Event


class StoreGoal(BaseModel):
    """Validate and store a goal whose spec was stored by reference (`goal_specs`)."""

    spec_id: str
    goal_id: str
    goal_run_id: str
    event_id: str


class StoredGoal(BaseModel):
    """What the goal needs of a stored spec: its header and partitions, or why it is invalid."""

    header: GoalSpec | None = None
    tasks_total: int = 0
    partitions: list[tuple[int, int, list[int]]] = []
    """`(start, end, after)` per partition, in dependency order."""
    error: str | None = None


class RecordTasks(BaseModel):
    """One page of a goal's tasks, stored `pending` with their specs and plan positions."""

    goal_id: str
    goal_run_id: str
    first_position: int
    tasks: list[TaskSpec]


class AdoptTasks(BaseModel):
    """Tasks a goal's new run takes over from the run that started them."""

    goal_id: str
    goal_run_id: str
    tasks: list[TaskSummary]
    subgoals: dict[str, TaskSummary] = {}
    """Of those tasks, the ones that are goals: each as it was when its sub-goal started."""


class LoadTasks(BaseModel):
    """Read back a range of a goal's task specs, a page of at most `max_bytes` at a time."""

    goal_id: str
    goal_run_id: str
    start: int
    end: int
    max_bytes: int = 128 * 1024


class TaskSpecPage(BaseModel):
    """Task specs in plan order, and where the next page starts (None: the range is done)."""

    tasks: list[TaskSpec]
    next_start: int | None = None


class RecordRejectedGoal(BaseModel):
    """A goal whose spec was invalid: kept so the rejection is visible in the read model."""

    goal_id: str
    first_run_id: str
    raw_spec: Any
    error: str
    event: Event


class RecordTask(BaseModel):
    """A task's new state (absolute values, applied only if newer than the stored one)."""

    task: TaskView
    event: Event | None = None


class SkippedTask(BaseModel):
    """A task that can no longer run, and why."""

    task_id: str
    reason: str
    event_id: str


class RecordSkips(BaseModel):
    """A batch of skipped tasks, written in one transaction (a cascade of any size is
    written in bounded batches)."""

    goal_id: str
    goal_run_id: str
    tasks: list[SkippedTask]


class SkipRange(BaseModel):
    """Skip the pending tasks of a partition that will not run (the goal is failing)."""

    goal_id: str
    goal_run_id: str
    start: int
    end: int
    reason: str
    event_id: str


class AssignTask(BaseModel):
    """One task attempt that needs an agent; the assignment id is the workflow's, so a
    retried activity reuses it."""

    task_id: str
    skill: str
    assignment_id: str
    attempt: int
    seq: int
    """The task's `seq` once assigned."""
    exclude_agent_ids: list[str] = []
    """Agents that already failed this task."""
    prefer_agent_id: str | None = None
    """The agent that did the work before, for rework, or the one a person named."""
    avoid_agent_ids: list[str] = []
    """Agents passed over where another can take the task (one a person took it from)."""
    rework: list[dict[str, JsonValue]] = []
    """Approvers' comments on earlier results, with the assignment each was about."""
    report_deadline_seconds: int
    heartbeat_timeout_seconds: int
    deferred: bool = False
    """Made before the task workflow starts: hidden from the agent until it has."""


class AssignAgents(BaseModel):
    """Give task attempts of one goal agents, in one transaction."""

    goal_id: str
    goal_run_id: str
    workspace: str
    tasks: list[AssignTask]
    require_signatures: bool | None = None
    """The goal's choice; None: the worker's default, said back in each assignment."""


class Assignment(BaseModel):
    """The outcome of assigning one task attempt."""

    task_id: str = ""
    assignment_id: str
    agent_id: str
    provisioned: bool
    refused: str | None = None
    """Why no agent was given: a budget over the goal is spent (the last of a batch)."""
    refused_by: str | None = None
    """Whose budget: a goal's id, or `workspace:` and the workspace's name."""
    agent_key: str | None = None
    """The agent's public key, to check its signatures."""
    agent_operator: str | None = None
    """Who operates the agent: they may not approve its work."""
    signatures_required: bool = False
    """Whether the task must refuse unsigned messages about this assignment."""


class ReadHeartbeat(BaseModel):
    """Read an agent's last heartbeat written to PostgreSQL for its assignment."""

    assignment_id: str
    signed: bool = False
    """The task requires signatures: only a signed heartbeat counts."""


class StoredHeartbeat(BaseModel):
    """An agent's last heartbeat written to PostgreSQL, checked against its clock."""

    at: datetime | None = None
    """When, if it counts as to time (never ahead of the database's clock)."""
    beat: Heartbeat | None = None
    """The signed heartbeat, for the task to check its signature."""
    problem: str | None = None
    """Why it does not count: a time unparseable or ahead of the database's clock."""


class EndAssignment(BaseModel):
    """Close an assignment, release the agent, and record the task, in one transaction.

    A `timed_out` assignment also marks its agent unresponsive, so it gets no new work
    until it registers again.
    """

    assignment_id: str
    status: AssignmentStatus
    result: JsonValue = None
    error: str | None = None
    tokens_used: int = 0
    cost_usd: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_known: bool = True
    tool_calls: list[ToolCallRecord] = []
    """All the report's tool calls, kept in the read model (the view shows the last few)."""
    task: TaskView
    event: Event


class FinishGoal(BaseModel):
    """A goal's final status and report."""

    goal_id: str
    status: GoalStatus
    report: GoalReport
    event: Event


class HealthCheck(BaseModel):
    """What a health check run does: look, and repair what it safely can."""

    repair: bool = True
    goals_limit: int = 500
    """Running goals compared with their workflows per run, oldest first."""
    deadline_grace_seconds: int = 30
    """How far past its deadline a task must be before the check steps in (its own
    durable timer normally acts first)."""


class Finding(BaseModel):
    """One inconsistency between PostgreSQL and Temporal, and what was done about it."""

    kind: str
    subject: str
    message: str
    action: str = ""
    repaired: bool = False


class HealthReport(BaseModel):
    """The outcome of one health check run."""

    findings: list[Finding] = []
    goals_checked: int = 0


class RunbookRef(BaseModel):
    """A runbook a goal names: its latest version, or the one given."""

    name: str
    version: int | None = None


def goal_started_message(goal_id: str, header: GoalSpec, tasks: int, partitioned: bool) -> str:
    """The event that opens a goal's trail: how many tasks, from where, run how."""
    source = (
        f" from runbook {header.runbook!r} version {header.runbook_version}"
        if header.runbook
        else ""
    )
    how = f" in partitions of {header.partition_size}" if partitioned else ""
    return f"goal {goal_id!r} started with {tasks} task{'s' if tasks != 1 else ''}{source}{how}"


class CheckResult(BaseModel):
    """A reported result to check: its reference, if it holds one, and what its task
    expects (`TaskSpec.expects`), if anything."""

    expects: str | None = None
    result: JsonValue
    """The result as reported: the content, or a reference to it."""
    assignment_id: str | None = None
    """The assignment the report names: the only one whose stored result it may refer to."""
    request_id: str | None = None
    """For a triage: the request it answers."""
    goal_id: str | None = None
    goal_run_id: str | None = None
    """For a plan: the goal it plans."""


class RecordRequest(BaseModel):
    """A request that started (a valid `spec`) or was rejected (`error`, `raw`)."""

    request_id: str
    run_id: str
    spec: RequestSpec | None = None
    raw: JsonValue = None
    """What was sent, summarised, when it was invalid."""
    error: str | None = None
    event: Event


class UpdateRequest(BaseModel):
    """A request's next state: triaged, answered, its goal started or ended."""

    request_id: str
    run_id: str
    status: RequestStatus
    kind: str | None = None
    answer: str | None = None
    goal_id: str | None = None
    reason: str | None = None
    error: str | None = None
    event: Event


class TriageOutcome(BaseModel):
    """What triage decided, as the request workflow needs it: the answer, or the goal
    stored by reference (a plan of any size stays out of history)."""

    kind: str
    answer: str | None = None
    reason: str = ""
    spec_ref: str | None = None
    title: str | None = None


class MatchRunbooks(BaseModel):
    """Find runbooks for a text: a request's question, a goal's description."""

    text: str
    limit: int = 5


class CompileDeliverable(BaseModel):
    """Compile a goal's deliverable from its tasks' results."""

    goal_id: str
    goal_run_id: str


class AdoptPlan(BaseModel):
    """Store the tasks of a goal's completed plan after its existing ones."""

    goal_id: str
    goal_run_id: str
    task_id: str
    first_position: int


class AdoptedPlan(BaseModel):
    """How many tasks a plan added, or why it could not be adopted."""

    count: int = 0
    error: str | None = None


class LoadVerdict(BaseModel):
    """Read the judgement of a goal's compile task."""

    goal_id: str
    task_id: str


class BudgetAlert(BaseModel):
    """An alert about a goal's budget to open (and post to the webhook) or close."""

    kind: str
    subject: str
    message: str = ""
    action: str = ""


class RecordBudget(BaseModel):
    """A change in a goal's budget standing: its event, a new budget to hold assignments
    to, alerts to open and alerts to close, in one transaction."""

    goal_id: str
    event: Event | None = None
    budget_usd: float | None = None
    budget_tokens: int | None = None
    set_budget: bool = False
    open_alert: BudgetAlert | None = None
    close_alerts: list[BudgetAlert] = []
