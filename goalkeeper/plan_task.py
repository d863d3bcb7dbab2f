"""The task a goal starts with when it states only what it wants: plan it."""

from typing import Any

from goalkeeper.models import TaskSpec
from goalkeeper.runbooks import RunbookMatch

PLAN_TASK_ID = "plan"
PLAN_SKILL = "planning"

PLAN_GUIDANCE = (
    'Report a plan: {"tasks": [task specs], "reason": "..."}, each task with an id, a '
    "title, a skill and its depends_on, or "
    '{"runbook": "<one of the runbook candidates>", "parameters": {...}, "reason": "..."}. '
    "A plan that is not valid comes back to you with the reason."
)


def needs_plan(raw: Any) -> bool:
    """A raw spec that a planner must complete: a description, no tasks, no runbook."""
    return (
        isinstance(raw, dict)
        and not raw.get("tasks")
        and not raw.get("runbook")
        and bool(str(raw.get("description", "")).strip())
    )


def plan_task(candidates: list[RunbookMatch]) -> TaskSpec:
    """The first task of a goal stated without tasks: plan it."""
    return TaskSpec(
        id=PLAN_TASK_ID,
        title="Plan the goal: break it into tasks",
        skill=PLAN_SKILL,
        guidance=PLAN_GUIDANCE,
        expects="plan",
        inputs={"runbook_candidates": [c.model_dump(mode="json") for c in candidates]},
    )
