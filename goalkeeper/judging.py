"""What a report, heartbeat or decision means for a task: accepted, or rejected and why.

Pure functions of the task's state, so the workflow that applies them stays a thin
shell and every reason a sender can be given is tested without Temporal.
"""

import json
from collections.abc import Collection
from typing import Any

from goalkeeper.models import AgentReport, ApprovalDecision, TaskView
from goalkeeper.statuses import TaskStatus

INLINE_RESULT_LIMIT = 128 * 1024
"""Largest result, as JSON, carried in workflow history; larger ones go by reference."""


def assignment_problem(
    view: TaskView, agent_id: str, assignment_id: str, what: str, closed: Collection[str] = ()
) -> str | None:
    """Why a message about an assignment cannot count, or None if it can.

    Args:
        closed: assignments that ended without a report (lapsed, aborted); a message
            for one of them is refused even while the task has not moved on yet.
    """
    where = f"task {view.task_id!r} of goal {view.goal_id!r}"
    if view.status.is_terminal:
        return f"{what} rejected: {where} already ended ({view.status})"
    if view.assignment_id is None:
        return f"{what} rejected: {where} has no assignment yet"
    if assignment_id in closed:
        return (
            f"{what} rejected: assignment {assignment_id!r} of {where} has lapsed "
            "(deadline, silence or reassignment); the task goes to another agent"
        )
    if assignment_id != view.assignment_id:
        return (
            f"{what} rejected: assignment {assignment_id!r} (agent {agent_id!r}) is not "
            f"current for {where}; the current one is {view.assignment_id!r}, "
            f"held by {view.agent_id!r}"
        )
    if agent_id != view.agent_id:
        return (
            f"{what} rejected: agent {agent_id!r} does not hold assignment "
            f"{assignment_id!r} of {where}; {view.agent_id!r} does"
        )
    if view.status is not TaskStatus.ASSIGNED and what == "heartbeat":
        return f"{what} rejected: assignment {assignment_id!r} has ended ({view.status})"
    return None


def report_problem(
    view: TaskView, report: AgentReport, reported: Collection[str], closed: Collection[str]
) -> str | None:
    """Why an agent's report cannot count: wrong agent or assignment, a repeat, too large."""
    problem = assignment_problem(view, report.agent_id, report.assignment_id, "report", closed)
    if problem:
        return problem
    if report.assignment_id in reported:
        return (
            f"report rejected: assignment {report.assignment_id!r} was already reported; "
            "the first report counts"
        )
    size = len(json.dumps(report.result))
    if size > INLINE_RESULT_LIMIT:
        return (
            f"report rejected: a result of {size} bytes is over the {INLINE_RESULT_LIMIT} "
            "byte inline limit; store it and report a reference (agent.py does this)"
        )
    return None


def decision_problem(view: TaskView, decision: ApprovalDecision, pending: bool) -> str | None:
    """Why an approver's decision on a task's result cannot count.

    Args:
        pending: a decision was already taken at this level and is being applied.
    """
    where = f"task {view.task_id!r} of goal {view.goal_id!r}"
    if view.status is not TaskStatus.AWAITING_APPROVAL or pending:
        return f"decision rejected: {where} is not awaiting approval (it is {view.status})"
    if decision.task_id not in (None, view.task_id):
        return f"decision rejected: it names task {decision.task_id!r}, but this is {where}"
    if decision.approver not in view.waiting_on:
        return (
            f"decision rejected: {decision.approver!r} may not decide on {where}; "
            f"expected one of {view.waiting_on}"
        )
    return None


def retry_problem(
    goal_id: str,
    decision: ApprovalDecision,
    approvers: Collection[str],
    awaiting: Collection[str],
    state: str | None,
) -> str | None:
    """Why a retry decision on a goal cannot count (`on_task_failure: ask_approver`).

    Args:
        awaiting: failed tasks whose retry decision is due.
        state: the named task's status, or None if the goal has no such task.
    """
    goal = f"goal {goal_id!r}"
    if decision.task_id is None:
        return (
            f"decision rejected: a decision on {goal} needs a task_id naming a failed task; "
            "decisions on a task's result go to the task's workflow"
        )
    if state is None:
        return f"decision rejected: {goal} has no task {decision.task_id!r}"
    if decision.task_id not in awaiting:
        return (
            f"decision rejected: task {decision.task_id!r} of {goal} is not awaiting a "
            f"retry decision (it is {state})"
        )
    if decision.approver not in approvers:
        return (
            f"decision rejected: {decision.approver!r} may not decide on {goal}; "
            f"expected one of {sorted(approvers)}"
        )
    return None


def signed_control_problem(
    kind: str,
    goal_id: str,
    request: Any,
    signer: str,
    approvers: Collection[str],
    agents: Collection[str],
) -> str | None:
    """Why a change to a goal that requires signatures cannot count, whatever its
    signature: added tasks come from an approver or an agent of the goal; a retry names
    the attempt it decides and a reassign the assignment it ends, so that replayed, they
    count for nothing (a replayed addition names task ids already taken; a replayed raise
    is not above the budget; a replayed cancel finds its task ended)."""
    what = f"{kind} of goal {goal_id!r} rejected: the goal requires signatures"
    if kind == "add_tasks" and signer not in approvers and signer not in agents:
        return (
            f"{what}; expected added_by to be one of its approvers {sorted(approvers)} "
            f"or an agent of its tasks, got {signer!r}"
        )
    if kind == "retry" and request.attempt is None:
        return (
            f"{what}; expected the failed attempt the decision is on ('attempt'), so it counts once"
        )
    if kind == "reassign" and request.assignment_id is None:
        return f"{what}; expected the assignment it takes away ('assignment_id'), so it counts once"
    return None
