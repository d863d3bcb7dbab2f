"""The changes to a goal that are signed where it requires signatures, and the request
each is: what `signing.control_content` names as its `kind`."""

from pydantic import BaseModel

from goalkeeper.budgets import BudgetRaise, GoalStop
from goalkeeper.models import ApprovalDecision
from goalkeeper.planning import AddTasks
from goalkeeper.task_controls import TaskCancel, TaskReassign

CONTROLS: dict[str, type[BaseModel]] = {
    "raise_budget": BudgetRaise,
    "stop": GoalStop,
    "add_tasks": AddTasks,
    "retry": ApprovalDecision,
    "reassign": TaskReassign,
    "cancel": TaskCancel,
}
"""By kind: the `raise_budget`, `stop` and `add_tasks` updates, a retry decision
(`decide` or `approval_decision` on the goal, naming a failed task and its attempt), and
a task reassigned or cancelled (the `reassign_task` and `cancel_task` updates)."""
