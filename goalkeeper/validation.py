"""Validation of a goal spec before anything of it runs.

Field-level problems come from the pydantic models; this module adds what needs
the whole goal: ids, duplicates, dependencies and approvers. It is pure and
deterministic, so the goal workflow and the starter run the same checks.
"""

import json
from typing import Any

from pydantic import ValidationError

from goalkeeper.errors import InvalidGoalSpec
from goalkeeper.models import (
    MAX_GOAL_DEPTH,
    MAX_INPUTS_BYTES,
    GoalSpec,
    TaskSpec,
    describe_validation_error,
)
from goalkeeper.plan_task import plan_task
from goalkeeper.requirements import joining_goal_problems, requirements_of
from goalkeeper.runbooks import Runbook, RunbookMatch, apply_runbook
from goalkeeper.scheduling import find_cycle
from goalkeeper.subgoals import subgoal_id, subgoal_spec


def validate_goal_spec(
    raw: Any,
    goal_id: str,
    runbook: Runbook | None = None,
    candidates: list[RunbookMatch] | None = None,
) -> GoalSpec:
    """Parse and check a goal spec for the goal `goal_id`, filling in missing task ids.

    A spec that names a runbook gets its tasks from `runbook`, the stored runbook of
    that name (None when there is none). One with a description and neither tasks nor
    a runbook gets one task, `plan`, for a planner, with the runbook `candidates`.

    Raises:
        InvalidGoalSpec: naming every problem found and the value that caused it.
    """
    if not isinstance(raw, dict):
        raise InvalidGoalSpec(
            goal_id,
            f"invalid goal spec: expected a JSON object, got {type(raw).__name__} {raw!r:.80}",
        )
    try:
        spec = GoalSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidGoalSpec(goal_id, describe_validation_error(exc, "goal spec")) from None
    if spec.runbook is not None:
        spec = _expand(spec, goal_id, runbook)
    elif not spec.tasks and spec.description.strip():
        spec.tasks = [plan_task(candidates or [])]
    problems = _problems(spec, goal_id)
    if problems:
        raise InvalidGoalSpec(goal_id, "invalid goal spec: " + "; ".join(problems))
    return spec


def _expand(spec: GoalSpec, goal_id: str, runbook: Runbook | None) -> GoalSpec:
    wanted = f"runbook {spec.runbook!r}" + (
        f" version {spec.runbook_version}" if spec.runbook_version else ""
    )
    if runbook is None:
        raise InvalidGoalSpec(
            goal_id,
            f"invalid goal spec: runbook: no {wanted} is stored; "
            "expected a runbook added with `starter.py runbook add`",
        )
    if runbook.name != spec.runbook or spec.runbook_version not in (None, runbook.version):
        raise InvalidGoalSpec(
            goal_id,
            f"invalid goal spec: runbook: expected {wanted}, "
            f"got {runbook.name!r} version {runbook.version}",
        )
    return apply_runbook(spec.model_copy(update={"goal_id": goal_id}), runbook)


def _problems(spec: GoalSpec, goal_id: str) -> list[str]:
    problems = []
    if spec.goal_id is not None and spec.goal_id != goal_id:
        problems.append(
            f"goal_id {spec.goal_id!r} differs from the workflow id {goal_id!r}; "
            "a goal's workflow id must be its goal id"
        )
    spec.goal_id = goal_id
    if "/" in goal_id and spec.parent is None:
        problems.append(
            f"goal id {goal_id!r} contains '/', which only a sub-goal's id does "
            "(its parent's id, '/', its task's id); expected letters, digits and _ . : @ -"
        )
    if (spec.budget_usd is not None or spec.budget_tokens is not None) and not spec.approvers:
        problems.append(
            "budget_usd/budget_tokens: a goal with a budget needs approvers to raise it or "
            "stop the goal when it is spent; expected approvers, got none"
        )
    if not spec.tasks:
        problems.append(
            "tasks: expected at least one task, a runbook, or a description to plan "
            "from, got none of them; a goal with no tasks cannot run"
        )
        return problems

    _fill_task_ids(spec)
    seen: dict[str, int] = {}
    for index, task in enumerate(spec.tasks):
        assert task.id is not None
        if task.id in seen:
            problems.append(
                f"tasks[{index}].id: duplicate task id {task.id!r} (also tasks[{seen[task.id]}])"
            )
        seen.setdefault(task.id, index)

    for index, task in enumerate(spec.tasks):
        for dependency in task.depends_on:
            if dependency == task.id:
                problems.append(f"tasks[{index}].depends_on: task {task.id!r} depends on itself")
            elif dependency not in seen:
                problems.append(
                    f"tasks[{index}].depends_on: unknown task {dependency!r}; "
                    f"expected one of {sorted(seen)}"
                )
        if task.inputs and len(json.dumps(task.inputs)) > MAX_INPUTS_BYTES:
            problems.append(
                f"tasks[{index}].inputs: expected at most {MAX_INPUTS_BYTES} bytes as JSON, "
                f"got {len(json.dumps(task.inputs))}"
            )
        if task.goal is not None:
            problems += subgoal_problems(spec, index, task)
        elif task.requires_approval and not (task.approvers or spec.approvers):
            problems.append(
                f"tasks[{index}].requires_approval: task {task.id!r} needs approval "
                "but neither it nor the goal names an approver"
            )
    for level, group in enumerate(spec.escalation):
        if not group:
            problems.append(f"escalation[{level}]: expected at least one approver, got none")
    if spec.on_task_failure == "ask_approver" and not spec.approvers:
        problems.append(
            "on_task_failure: 'ask_approver' needs the goal to name approvers, got none"
        )
    if not problems:
        cycle = find_cycle({t.id: t.depends_on for t in spec.tasks if t.id is not None})
        if cycle:
            problems.append("depends_on: dependency cycle " + " -> ".join(cycle))
    return problems


def subgoal_problems(spec: GoalSpec, index: int, task: TaskSpec) -> list[str]:
    """What is wrong with a task that is a goal, its own spec checked as its goal will be."""
    where = f"tasks[{index}]"
    if task.requires_approval or task.expects is not None:
        return [
            f"{where}: task {task.id!r} is a goal: its own tasks give results and ask for "
            "approval, so expected no requires_approval or expects on it"
        ]
    if spec.depth + 1 > MAX_GOAL_DEPTH:
        return [
            f"{where}.goal: sub-goals nest at most {MAX_GOAL_DEPTH} deep, and task {task.id!r} "
            f"would start one at depth {spec.depth + 1}"
        ]
    lowered = joining_goal_problems(requirements_of(spec), task.goal or {}, f"{where}.goal")
    if lowered:
        return lowered
    nested = subgoal_spec(spec, task, goal_run_id="")
    try:
        if nested.get("runbook") is None:
            validate_goal_spec(nested, subgoal_id(spec.goal_id or "", task.id or ""))
        else:  # its runbook is read when it starts; here only its fields are checked
            GoalSpec.model_validate(nested)
    except InvalidGoalSpec as exc:
        # One path per problem: tasks[0].goal.tasks[2].skill: ...
        return [
            f"{where}.goal" + ("." if p.startswith("tasks[") else ": ") + p
            for p in str(exc).removeprefix("invalid goal spec: ").split("; ")
        ]
    except ValidationError as exc:
        return [f"{where}.goal: " + describe_validation_error(exc, "goal spec")]
    return []


def _fill_task_ids(spec: GoalSpec) -> None:
    """Give tasks without an id `task-N` (N its position), never reusing a given id."""
    taken = {t.id for t in spec.tasks if t.id is not None}
    for index, task in enumerate(spec.tasks, start=1):
        if task.id is None:
            candidate, n = f"task-{index}", index
            while candidate in taken:
                n += len(spec.tasks)
                candidate = f"task-{n}"
            task.id = candidate
            taken.add(candidate)
