"""Planning: a goal stated without tasks gets them from a planner agent, checked like a spec.

A goal with a description and neither tasks nor a runbook starts with one task, `plan`
(skill `planning`), whose result must be a plan: tasks, or a runbook with parameters.
The same checks admit tasks added to a running goal (`add_tasks`). Pure, so the goal
workflow, the activity that checks results and the tests apply the same rules.
"""

import json
from typing import Annotated, Any

from pydantic import Field, JsonValue, ValidationError

from goalkeeper.errors import InvalidGoalSpec
from goalkeeper.limits import MAX_REASON_CHARS
from goalkeeper.models import (
    MAX_INPUTS_BYTES,
    GoalSpec,
    Id,
    TaskSpec,
    Text,
    _Strict,
    describe_validation_error,
)
from goalkeeper.requirements import approver_problems, requirements_of
from goalkeeper.runbooks import Runbook, apply_runbook
from goalkeeper.scheduling import find_cycle
from goalkeeper.validation import subgoal_problems

MAX_ADDED_BYTES = 256 * 1024
"""Tasks added in one `add_tasks` update, as JSON: larger lists go in several updates."""


class PlanResult(_Strict):
    """What a planner reports: its tasks, or a runbook to take them from."""

    tasks: list[dict[str, JsonValue]] = []
    runbook: Id | None = None
    parameters: dict[str, JsonValue] = {}
    reason: str = Field(default="", max_length=MAX_REASON_CHARS)


class AddTasks(_Strict):
    """The `add_tasks` update: more work found while the goal runs."""

    tasks: Annotated[list[dict[str, JsonValue]], Field(min_length=1)]
    added_by: Id
    """Who adds them: a planner, an agent that found more work, a person."""
    reason: Text
    signature: str | None = Field(default=None, max_length=200)
    """Where the goal requires signatures: the signer's over this request (goalkeeper.signing)."""
    signed_by: Id | None = None
    """A delegate (the dashboard) that signed on the person's behalf, if not them."""


class _Tasks(_Strict):
    tasks: list[TaskSpec]


def parse_plan(result: Any) -> PlanResult | str:
    """A planner's result, or why it is not a plan (said so the planner can fix it)."""
    try:
        plan = PlanResult.model_validate(result)
    except ValidationError as exc:
        return describe_validation_error(exc, "plan") + (
            '; expected {"tasks": [...]} or {"runbook": "...", "parameters": {...}}'
        )
    if bool(plan.tasks) == bool(plan.runbook):
        return 'invalid plan: expected either "tasks" or "runbook", got ' + (
            "both" if plan.tasks else "neither"
        )
    return plan


def plan_tasks(
    header: GoalSpec, plan: PlanResult, runbook: Runbook | None, existing: set[str], limit: int
) -> list[TaskSpec]:
    """The tasks a plan gives the goal, checked like a spec; `runbook` is the one it names.

    Raises:
        InvalidGoalSpec: naming every problem, so the planner can be asked again.
    """
    if plan.runbook is None:
        return check_new_tasks(header, plan.tasks, existing, limit)
    goal_id = header.goal_id or ""
    if runbook is None:
        raise InvalidGoalSpec(goal_id, f"invalid plan: no runbook {plan.runbook!r} is stored")
    expanded = apply_runbook(
        header.model_copy(update={"runbook": plan.runbook, "parameters": plan.parameters}),
        runbook,
    )
    # A stored runbook's approvers were named by whoever stored it, not by the planner.
    named = {*runbook.approvers, *(name for t in runbook.tasks for name in t.approvers)}
    return check_new_tasks(
        header, [t.model_dump(mode="json") for t in expanded.tasks], existing, limit, named
    )


def check_new_tasks(
    header: GoalSpec,
    raw: list[dict[str, JsonValue]],
    existing: set[str],
    limit: int,
    runbook_approvers: set[str] | frozenset[str] = frozenset(),
) -> list[TaskSpec]:
    """Tasks for a running goal, checked as a spec's are: fields, ids, dependencies (on
    each other or on the goal's tasks), approvers, cycles, and the goal's size limit.
    They may name only the goal's approvers (or `runbook_approvers`, from a stored
    runbook), and their sub-goals may not lower its requirements.

    Raises:
        InvalidGoalSpec: naming every problem and the value that caused it.
    """
    goal_id = header.goal_id or ""
    size = len(json.dumps(raw))
    if size > MAX_ADDED_BYTES:
        raise InvalidGoalSpec(
            goal_id,
            f"invalid tasks: expected at most {MAX_ADDED_BYTES} bytes as JSON at once, "
            f"got {size}; add them in several parts",
        )
    try:
        tasks = _Tasks.model_validate({"tasks": raw}).tasks
    except ValidationError as exc:
        raise InvalidGoalSpec(goal_id, describe_validation_error(exc, "tasks")) from None
    if len(existing) + len(tasks) > limit:
        raise InvalidGoalSpec(
            goal_id,
            f"invalid tasks: the goal would have {len(existing) + len(tasks)} tasks; expected "
            f"at most {limit} (partition_size) in a goal that grows while it runs",
        )
    problems: list[str] = []
    ids: list[str] = []
    required = requirements_of(header)
    for index, task in enumerate(tasks):
        problems += approver_problems(
            required, f"tasks[{index}].approvers", task.approvers, runbook_approvers
        )
        if task.id is None:
            problems.append(f"tasks[{index}].id: required for added tasks, got none")
        elif task.id in existing or task.id in ids:
            problems.append(f"tasks[{index}].id: {task.id!r} is already a task of the goal")
        ids.append(task.id or "")
        if task.inputs and len(json.dumps(task.inputs)) > MAX_INPUTS_BYTES:
            problems.append(f"tasks[{index}].inputs: expected at most {MAX_INPUTS_BYTES} bytes")
        if task.goal is not None and task.id is not None:
            problems += subgoal_problems(header, index, task)
        elif task.requires_approval and not (task.approvers or header.approvers):
            problems.append(
                f"tasks[{index}].requires_approval: task {task.id!r} needs approval "
                "but neither it nor the goal names an approver"
            )
    known = existing | set(ids)
    for index, task in enumerate(tasks):
        for dependency in task.depends_on:
            if dependency == task.id or dependency not in known:
                problems.append(
                    f"tasks[{index}].depends_on: {dependency!r} is not another task of the goal"
                )
    if not problems:
        cycle = find_cycle({t.id or "": [d for d in t.depends_on if d in ids] for t in tasks})
        if cycle:
            problems.append("depends_on: dependency cycle " + " -> ".join(cycle))
    if problems:
        raise InvalidGoalSpec(goal_id, "invalid tasks: " + "; ".join(problems))
    return tasks
