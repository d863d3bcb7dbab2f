"""A goal's requirements, which nothing that joins the goal may lower.

A goal names who approves its work (its approvers and escalation levels), whether its
reports and decisions must be signed, and the workspace its agents work in. Work that
joins it later (a plan, `add_tasks`, a sub-goal) and the goal a request's triage
proposes run under those requirements: they name no other approver, never switch
signatures off, and stay in the same workspace. Pure, so every path that admits work
applies the same rules, and each refusal names the field and what was expected.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from goalkeeper.models import GoalSpec


@dataclass(frozen=True)
class Requirements:
    """What work under a goal (or a request) must keep."""

    owner: str
    """Whose requirements these are, as refusals name it: "goal 'x'", "request 'y'"."""
    workspace: str
    approvers: frozenset[str] = field(default_factory=frozenset)
    """Everyone who may be named as an approver: the approvers and escalation levels."""
    signatures: bool | None = None
    """True: required; None: the worker's default; False: switched off by the owner."""


def requirements_of(goal: GoalSpec) -> Requirements:
    """A goal's requirements: its workspace, everyone it names to decide, its signatures."""
    named = {*goal.approvers, *(name for level in goal.escalation for name in level)}
    return Requirements(
        owner=f"goal {goal.goal_id or ''!r}",
        workspace=goal.workspace,
        approvers=frozenset(named),
        signatures=goal.require_signatures,
    )


def approver_problems(
    required: Requirements, where: str, names: Iterable[Any], also: Iterable[str] = ()
) -> list[str]:
    """Approvers named at `where` that the owner does not name (nor `also` allows)."""
    allowed = required.approvers | set(also)
    outside = [name for name in names if name not in allowed]
    if not outside:
        return []
    expected = f"some of {sorted(allowed)}" if allowed else "none (it names no approvers)"
    return [f"{where}: {outside[0]!r} is not an approver of {required.owner}; expected {expected}"]


def joining_goal_problems(required: Requirements, raw: Mapping[str, Any], where: str) -> list[str]:
    """What a goal run under `required` (a sub-goal, a request's goal) may not say: another
    workspace, signatures off, approvers or escalation levels the owner does not name, or
    a parent (only Goalkeeper sets that)."""
    prefix = f"{where}." if where else ""
    problems = []
    workspace = raw.get("workspace")
    if workspace is not None and workspace != required.workspace:
        problems.append(
            f"{prefix}workspace: expected {required.workspace!r} (it runs in the workspace of "
            f"{required.owner}), got {workspace!r}"
        )
    if raw.get("require_signatures") is False and required.signatures is not False:
        why = "requires" if required.signatures else "leaves to the worker's default"
        problems.append(
            f"{prefix}require_signatures: expected true or nothing ({required.owner} {why} "
            "signatures, which work under it may not switch off), got false"
        )
    approvers = raw.get("approvers")
    if isinstance(approvers, list):
        problems += approver_problems(required, f"{prefix}approvers", approvers)
    escalation = raw.get("escalation")
    if isinstance(escalation, list):
        for level, group in enumerate(escalation):
            if isinstance(group, list):
                problems += approver_problems(required, f"{prefix}escalation[{level}]", group)
    tasks = raw.get("tasks")
    if isinstance(tasks, list):
        for index, task in enumerate(tasks):
            if isinstance(task, Mapping) and isinstance(task.get("approvers"), list):
                problems += approver_problems(
                    required, f"{prefix}tasks[{index}].approvers", task["approvers"]
                )
    if raw.get("parent") is not None:
        problems.append(f"{prefix}parent: set by Goalkeeper only; expected none, got one")
    return problems


def held_to(required: Requirements, spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` held to `required` whatever it says: the owner's workspace, and signatures
    required where the owner requires them (its refusals are `joining_goal_problems`)."""
    spec = {**spec, "workspace": required.workspace}
    if spec.get("require_signatures") is not True and required.signatures is not False:
        spec["require_signatures"] = required.signatures
    return spec
