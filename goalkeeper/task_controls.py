"""Reassigning and cancelling a running goal's task: the requests, and why one cannot count.

A person (one of the goal's approvers) takes a task from its agent, to another or to
whoever may take it, or cancels a task that has not ended. Pure functions of the task's
state as the goal holds it, so every reason a sender can be given is tested without
Temporal; `workflows.goal.controls` signs, judges and takes them.
"""

from pydantic import BaseModel, Field

from goalkeeper.limits import MAX_SIGNATURE_CHARS
from goalkeeper.models import Comment, Id, TaskSummary, _Strict
from goalkeeper.statuses import AgentStatus, TaskStatus

MAX_REASSIGNED_ATTEMPTS = 100
"""The attempts a task may have had and still be reassigned: each adds a line to its history
and an assignment it keeps, and a person's reassign is not held to `max_attempts`."""


class TaskReassign(_Strict):
    """Take a task from its agent now: the `reassign_task` update on the goal.

    The task goes to `agent` where one is named, else to another agent that can take it
    (the same pool where none can). Naming `assignment_id`, the one taken away, keeps a
    request from taking the task from the agent that replaced it; a signed one must.
    """

    task_id: Id
    approver: Id
    agent: Id | None = None
    assignment_id: str | None = Field(default=None, max_length=64)
    comment: Comment = ""
    signature: str | None = Field(default=None, max_length=MAX_SIGNATURE_CHARS)
    """Where the goal requires signatures: the signer's over this request (goalkeeper.signing)."""
    signed_by: Id | None = None
    """A delegate (the dashboard) that signed on the approver's behalf, if not them."""


class TaskCancel(_Strict):
    """End a task that has not ended, without a result: the `cancel_task` update on the goal.

    It ends `skipped`, its agent released, and the tasks that depend on it are skipped,
    as when a failed task is given up; the goal goes on with the rest.
    """

    task_id: Id
    approver: Id
    comment: Comment = ""
    signature: str | None = Field(default=None, max_length=MAX_SIGNATURE_CHARS)
    """Where the goal requires signatures: the signer's over this request (goalkeeper.signing)."""
    signed_by: Id | None = None
    """A delegate (the dashboard) that signed on the approver's behalf, if not them."""


class AgentQuery(BaseModel):
    """Whether an agent may be given a goal's task: read by `agent_standing`."""

    agent_id: str
    workspace: str


class AgentStanding(BaseModel):
    """An agent as PostgreSQL holds it now, as far as taking a task goes; None fields: unknown."""

    agent_id: str
    known: bool = False
    skills: list[str] = []
    status: AgentStatus | None = None
    active_assignments: int = 0
    capacity: int = 0


def reassign_problem(
    goal_id: str,
    request: TaskReassign,
    status: TaskStatus | None,
    summary: TaskSummary | None,
    running: bool,
    subgoal: bool,
) -> str | None:
    """Why a reassign cannot count, judged on the task as the goal holds it now.

    Args:
        status: the task's status in the goal's schedule; None if it has no such task.
        summary: what the goal holds of the task (its agent, its assignment).
        running: its task workflow runs.
        subgoal: the task is a goal of its own, with no agent to take it from.
    """
    what = f"reassign of task {request.task_id!r} of goal {goal_id!r} rejected"
    if status is None:
        return f"{what}: the goal has no such task"
    if status.is_terminal:
        return f"{what}: it already ended ({status}); expected a task that has not"
    if subgoal:
        return f"{what}: it runs as a goal of its own, which has no agent to take it from"
    if status is TaskStatus.AWAITING_APPROVAL:
        return (
            f"{what}: its agent has reported and the result awaits approval; "
            "approve it, or reject it for rework"
        )
    if not running or summary is None or summary.assignment_id is None or not summary.agent_id:
        return f"{what}: no agent holds it yet ({status}); it is assigned when it starts"
    if request.assignment_id is not None and request.assignment_id != summary.assignment_id:
        return (
            f"{what}: it names assignment {request.assignment_id!r}, but the current one is "
            f"{summary.assignment_id!r} (held by {summary.agent_id!r}); a request made for an "
            "earlier assignment counts for nothing"
        )
    if summary.attempts >= MAX_REASSIGNED_ATTEMPTS:
        return (
            f"{what}: it has had {summary.attempts} attempts, the most after which it may be "
            f"reassigned ({MAX_REASSIGNED_ATTEMPTS}); cancel it instead"
        )
    if request.agent is not None and request.agent == summary.agent_id:
        return f"{what}: agent {request.agent!r} already holds it; name another agent or none"
    return None


def agent_problem(goal_id: str, task_id: str, skill: str, agent: AgentStanding) -> str | None:
    """Why the agent a reassign names cannot take the task now: unknown, without its skill,
    offline or out of the pool, or full."""
    what = f"reassign of task {task_id!r} of goal {goal_id!r} rejected"
    name = repr(agent.agent_id)
    if not agent.known:
        return f"{what}: there is no agent {name} in the goal's workspace"
    if skill not in agent.skills:
        return (
            f"{what}: agent {name} lacks the skill {skill!r} (it has "
            f"{', '.join(agent.skills) or 'none'})"
        )
    if agent.status is None or not agent.status.accepts_work:
        return f"{what}: agent {name} is {agent.status} and takes no work"
    if agent.active_assignments >= agent.capacity:
        return (
            f"{what}: agent {name} is full ({agent.active_assignments} of "
            f"{agent.capacity} assignments); name another, or none"
        )
    return None


def cancel_problem(
    goal_id: str, request: TaskCancel, status: TaskStatus | None, awaiting_retry: bool
) -> str | None:
    """Why a cancel cannot count: no such task, or it has ended.

    Args:
        status: the task's status in the goal's schedule; None if it has no such task.
        awaiting_retry: it failed and waits for a retry decision.
    """
    what = f"cancel of task {request.task_id!r} of goal {goal_id!r} rejected"
    if status is None:
        return f"{what}: the goal has no such task"
    if awaiting_retry:
        return (
            f"{what}: it already ended (failed) and awaits a retry decision; reject the "
            "retry to give it up"
        )
    if status.is_terminal:
        return f"{what}: it already ended ({status}); expected a task that has not"
    return None


def running_problem(goal_id: str, kind: str, task_id: str, failing: str | None) -> str | None:
    """Why a goal takes no reassign or cancel now: it is failing, so its tasks are stopping."""
    if failing is None:
        return None
    return (
        f"{kind} of task {task_id!r} of goal {goal_id!r} rejected: the goal is failing "
        f"({failing}); its running tasks are stopping"
    )


def cancel_reason(approver: str, comment: str) -> str:
    """Why a cancelled task ended, as its error and its agent are told."""
    return f"cancelled by {approver!r}" + (f": {comment}" if comment else "")


def reassign_reason(approver: str, agent: str | None, comment: str) -> str:
    """Why a task's agent lost it, as the task's history says."""
    to = f" to {agent!r}" if agent else ""
    return f"reassigned{to} by {approver!r}" + (f": {comment}" if comment else "")
