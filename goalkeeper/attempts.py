"""What each outcome of a task's attempt means: the task's next state, its event, and
what the next attempt is told (whom to exclude or prefer, the feedback to rework).

`TaskWorkflow` waits for agents and approvers and applies the `Step` these functions
return; every rule about attempts lives here, where it is tested without a server.
"""

from dataclasses import dataclass, field, replace
from typing import Any

from goalkeeper.limits import MAX_COMMENT_CHARS, MAX_EVENT_MESSAGE_CHARS
from goalkeeper.metrics import Reassignment
from goalkeeper.models import ApprovalDecision
from goalkeeper.records import EventKind
from goalkeeper.statuses import AssignmentStatus, Decision, TaskStatus

SYSTEM_APPROVER = "goalkeeper"
"""Who decides when the escalation chain ends without a decision, or a result is invalid."""


@dataclass(frozen=True)
class Standing:
    """Where the task stands when an outcome arrives."""

    task_id: str
    agent_id: str
    """The agent of the current attempt ("" when none holds it)."""
    assignment_id: str | None
    attempt: int
    """The number of the current attempt, over the task's whole life."""
    attempts_used: int
    """Attempts this run of the goal has given the task."""
    max_attempts: int
    history: tuple[str, ...] = ()
    reworks: int = 0

    @property
    def attempts_spent(self) -> bool:
        """No attempt is left for another try."""
        return self.attempts_used >= self.max_attempts


@dataclass(frozen=True)
class Step:
    """What to do next: the task's new state and event, and what the next attempt is told.

    Fields left None leave the task's view as it is.
    """

    status: TaskStatus
    kind: EventKind
    message: str
    history: tuple[str, ...]
    assignment: AssignmentStatus | None = None
    """How the current assignment ends; None when it has already ended (or none holds it)."""
    error: str | None = None
    waiting_on: tuple[str, ...] | None = None
    approval_level: int | None = None
    reworks: int | None = None
    detail: dict[str, Any] | None = None
    """The event's detail: an approver's decision."""
    exclude: str | None = None
    """An agent never to be given the task again."""
    prefer: str | None = None
    """The agent the next attempt goes to, if it can take it: rework stays with its author."""
    rework: dict[str, Any] | None = None
    """Feedback the next attempt is given on the work it redoes."""
    reassigned: Reassignment | None = None
    """Why the task goes to an agent again, as the reassignment is counted."""
    spent: bool = False
    """The attempts ran out: the task failed for it."""
    keeps_result: bool = False
    """The report's result is the task's result."""
    ended: bool = field(init=False)
    """The task reached its end."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ended", self.status.is_terminal)


def aborted_unassigned(standing: Standing, reason: str) -> Step:
    """The task was aborted while no agent could be given (its budget was spent)."""
    return Step(
        status=TaskStatus.SKIPPED,
        kind=EventKind.TASK_CANCELLED,
        message=f"task {standing.task_id!r} aborted while its budget was spent: {reason}",
        history=(*standing.history, f"aborted ({reason})"),
        error=reason,
    )


def lapsed(standing: Standing, why: str, reason: Reassignment, abort: str | None = None) -> Step:
    """The assignment ended without a report (`why`): aborted, or the agent is passed over
    and the task goes to another, unless the attempts ran out."""
    if abort is not None:
        return Step(
            status=TaskStatus.SKIPPED,
            kind=EventKind.TASK_CANCELLED,
            message=f"task {standing.task_id!r} aborted: {abort}",
            history=(*standing.history, f"attempt {standing.attempt}: aborted ({abort})"),
            assignment=AssignmentStatus.CANCELLED,
            error=abort,
        )
    agent = standing.agent_id
    lines = (*standing.history, f"attempt {standing.attempt}: agent {agent} {why}")
    if standing.attempts_spent:
        return _failed(standing, lines, AssignmentStatus.TIMED_OUT, exclude=agent)
    return Step(
        status=TaskStatus.PENDING,
        kind=EventKind.AGENT_UNRESPONSIVE,
        message=f"agent {agent!r} {why} on task {standing.task_id!r}; reassigning",
        history=lines,
        assignment=AssignmentStatus.TIMED_OUT,
        exclude=agent,
        reassigned=reason,
    )


def reassigned(standing: Standing, why: str, agent: str | None) -> Step:
    """A person took the task from its agent (`why`): it goes to `agent` where named, else
    to another agent where one can take it. Never the end of the task, whatever its
    attempts: the person chose a new one, and the agent did not fail it."""
    old = standing.agent_id
    return Step(
        status=TaskStatus.PENDING,
        kind=EventKind.TASK_RETRIED,
        message=f"task {standing.task_id!r} taken from agent {old!r}, {why}"[
            :MAX_EVENT_MESSAGE_CHARS
        ],
        history=(*standing.history, f"attempt {standing.attempt}: taken from agent {old}, {why}"),
        assignment=AssignmentStatus.CANCELLED,
        prefer=agent,
        reassigned=Reassignment.REQUESTED,
    )


def failed(standing: Standing, error: str | None) -> Step:
    """The agent reported that it failed: it is passed over for the next attempt."""
    agent = standing.agent_id
    lines = (
        *standing.history,
        f"attempt {standing.attempt}: agent {agent} failed: {error or 'no error given'}",
    )
    if standing.attempts_spent:
        return _failed(standing, lines, AssignmentStatus.FAILED, exclude=agent)
    return Step(
        status=TaskStatus.PENDING,
        kind=EventKind.TASK_RETRIED,
        message=f"agent {agent!r} failed task {standing.task_id!r}; reassigning",
        history=lines,
        assignment=AssignmentStatus.FAILED,
        exclude=agent,
        reassigned=Reassignment.AGENT_FAILED,
    )


def invalid(standing: Standing, problem: str, expects: str | None) -> Step:
    """The agent completed with a result that may not count (`problem`): it is asked again."""
    agent = standing.agent_id
    lines = (
        *standing.history,
        f"attempt {standing.attempt}: agent {agent} gave an invalid result: {problem}",
    )
    if standing.attempts_spent:
        return _failed(standing, lines, AssignmentStatus.FAILED)
    return Step(
        status=TaskStatus.PENDING,
        kind=EventKind.RESULT_INVALID,
        message=(
            f"agent {agent!r} gave task {standing.task_id!r} an invalid "
            f"{expects} result; asking again: {problem}"
        )[:MAX_EVENT_MESSAGE_CHARS],
        history=lines,
        assignment=AssignmentStatus.FAILED,
        prefer=agent,
        rework={
            "approver": SYSTEM_APPROVER,
            "comment": problem,
            "assignment_id": standing.assignment_id,
        },
        reassigned=Reassignment.INVALID_RESULT,
    )


def completed(standing: Standing, approvers: list[str] | None) -> Step:
    """The agent completed with a valid result: done, or waiting for the first level of
    `approvers` (None when the task needs no approval)."""
    agent = standing.agent_id
    lines = (*standing.history, f"attempt {standing.attempt}: agent {agent} completed")
    if approvers is None:
        return Step(
            status=TaskStatus.COMPLETED,
            kind=EventKind.TASK_COMPLETED,
            message=f"task {standing.task_id!r} completed by agent {agent!r}",
            history=lines,
            assignment=AssignmentStatus.COMPLETED,
            keeps_result=True,
        )
    return Step(
        status=TaskStatus.AWAITING_APPROVAL,
        kind=EventKind.APPROVAL_REQUESTED,
        message=f"task {standing.task_id!r} awaits approval by one of {approvers}",
        history=lines,
        assignment=AssignmentStatus.COMPLETED,
        waiting_on=tuple(approvers),
        approval_level=0,
        keeps_result=True,
    )


def escalated(standing: Standing, level: int, approvers: list[str], timeout_seconds: int) -> Step:
    """No decision came within the timeout: the next `level` of approvers is asked."""
    return Step(
        status=TaskStatus.AWAITING_APPROVAL,
        kind=EventKind.APPROVAL_ESCALATED,
        message=(
            f"no decision on task {standing.task_id!r} within {timeout_seconds}s; "
            f"escalated to {approvers}"
        ),
        history=standing.history,
        waiting_on=tuple(approvers),
        approval_level=level,
    )


def aborted_awaiting(standing: Standing, reason: str) -> Step:
    """The task was aborted while it waited for a decision."""
    return Step(
        status=TaskStatus.SKIPPED,
        kind=EventKind.TASK_CANCELLED,
        message=f"task {standing.task_id!r} aborted: {reason}",
        history=(*standing.history, f"aborted ({reason})"),
        error=reason,
        waiting_on=(),
    )


def unanswered(standing: Standing, levels: int, policy: str) -> Step | ApprovalDecision:
    """No level of approvers decided: the task fails, or (`policy` "reject") Goalkeeper
    rejects the result, which `decided` then applies."""
    ran_out = f"no decision at any of {levels} approval levels"
    if policy == "reject":
        return ApprovalDecision(approver=SYSTEM_APPROVER, decision=Decision.REJECT, comment=ran_out)
    return Step(
        status=TaskStatus.FAILED,
        kind=EventKind.TASK_FAILED,
        message=f"task {standing.task_id!r} failed: {ran_out}",
        history=(*standing.history, ran_out),
        error=ran_out,
        waiting_on=(),
    )


def decided(standing: Standing, decision: ApprovalDecision) -> Step:
    """An approver's decision: approved is done; rejected goes back to the same agent for
    rework, unless the attempts ran out."""
    comment = f": {decision.comment}" if decision.comment else ""
    detail = decision_detail(decision, standing.assignment_id)
    task = f"task {standing.task_id!r}"
    if decision.decision is Decision.APPROVE:
        return Step(
            status=TaskStatus.COMPLETED,
            kind=EventKind.DECISION_ACCEPTED,
            message=f"{task} approved by {decision.approver!r}{via(decision)}",
            history=(*standing.history, f"{decision.approver} approved{comment}"),
            waiting_on=(),
            detail=detail,
        )
    lines = (*standing.history, f"{decision.approver} rejected{comment}")
    reworks = standing.reworks + 1
    if standing.attempts_spent:
        return Step(
            status=TaskStatus.FAILED,
            kind=EventKind.TASK_FAILED,
            message=f"{task} rejected and out of attempts ({standing.max_attempts})",
            history=lines,
            error="; ".join(lines),
            waiting_on=(),
            reworks=reworks,
            detail=detail,
            spent=True,
        )
    return Step(
        status=TaskStatus.PENDING,
        kind=EventKind.DECISION_ACCEPTED,
        message=f"{task} sent back for rework by {decision.approver!r}{via(decision)}",
        history=lines,
        waiting_on=(),
        reworks=reworks,
        detail=detail,
        prefer=standing.agent_id,
        rework={
            "approver": decision.approver,
            "comment": decision.comment,
            "assignment_id": standing.assignment_id,
        },
        reassigned=Reassignment.REJECTED_RESULT,
    )


def after(standing: Standing, step: Step) -> Standing:
    """The standing once `step` is applied, its history as the step left it (unbounded)."""
    return replace(standing, history=step.history, reworks=step.reworks or standing.reworks)


def decision_detail(decision: ApprovalDecision, assignment_id: str | None) -> dict[str, Any]:
    """An approver's decision as its event's detail: feedback on that assignment's work."""
    return {
        "approver": decision.approver,
        "decision": decision.decision.value,
        "comment": decision.comment[:MAX_COMMENT_CHARS],
        "assignment_id": assignment_id,
    }


def via(decision: ApprovalDecision) -> str:
    """How a decision was signed, when someone other than its approver signed it."""
    return f" (signed by {decision.signed_by!r} on their behalf)" if decision.signed_by else ""


def _failed(
    standing: Standing,
    lines: tuple[str, ...],
    outcome: AssignmentStatus,
    exclude: str | None = None,
) -> Step:
    """The attempts ran out with this one's `outcome`: the task failed."""
    return Step(
        status=TaskStatus.FAILED,
        kind=EventKind.TASK_FAILED,
        message=f"task {standing.task_id!r} failed after {standing.max_attempts} attempts",
        history=lines,
        assignment=outcome,
        error="; ".join(lines),
        exclude=exclude,
        spent=True,
    )
