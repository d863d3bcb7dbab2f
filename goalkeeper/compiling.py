"""Compiling a goal's deliverable by an agent, judged against its success criteria.

A goal with `"compile": true` ends with a `compile` task: its agent receives every
completed task's result (by reference where large), writes the deliverable and says
whether the goal's `success_criteria` are met. When they are not, the goal plans again
with the judge's reasons (a `replan` task), up to `max_replans` times, then compiles
again. Pure: the goal workflow applies what `next_step` decides.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, StringConstraints, ValidationError

from goalkeeper.models import GoalSpec, TaskSpec, _Strict, describe_validation_error
from goalkeeper.plan_task import PLAN_GUIDANCE, PLAN_SKILL

COMPILE_SKILL = "compile"
COMPILE_GUIDANCE = (
    'Report {"deliverable": "<the deliverable, in markdown>", "met": true | false, '
    '"reasons": "..."}: write the deliverable from the results of the tasks, then judge it '
    "against the goal's success criteria; when they are not met, say what is missing."
)


class Compiled(_Strict):
    """What a compile task reports: the deliverable and the judgement on it."""

    deliverable: Annotated[str, StringConstraints(min_length=1, max_length=16 * 1024 * 1024)]
    met: bool
    reasons: str = ""


def parse_compiled(result: Any) -> Compiled | str:
    """A compile result, or why it is not one (said so the agent can fix it)."""
    try:
        return Compiled.model_validate(result)
    except ValidationError as exc:
        return describe_validation_error(exc, "compile result") + (
            '; expected {"deliverable": "...", "met": true | false, "reasons": "..."}'
        )


class Verdict(BaseModel):
    """The judgement of a compile task, without its deliverable (which may be large)."""

    met: bool
    reasons: str = ""


@dataclass(frozen=True)
class Step:
    """What a goal that compiles does once all its tasks have ended."""

    action: Literal["compile", "replan", "done"]
    task: TaskSpec | None = None
    unmet: str | None = None
    """When done: why the success criteria are still not met (the goal fails)."""


def next_step(
    header: GoalSpec,
    specs: list[TaskSpec],
    completed: set[str],
    verdict: Verdict | None,
) -> Step:
    """Compile after new work; re-plan when the judge says the criteria are not met.

    `specs` are the goal's tasks in order, `completed` the ids of those that completed,
    and `verdict` the last compile task's judgement, if the last task is one and it
    completed.
    """
    last = specs[-1] if specs else None
    rounds = sum(1 for t in specs if t.expects == "deliverable")
    replans = sum(1 for t in specs if (t.id or "").startswith("replan-"))
    if last is None or last.expects != "deliverable":
        work = [t.id or "" for t in specs if t.expects is None and t.id in completed]
        return Step("compile", compile_task(header, rounds + 1, work))
    if verdict is None:
        return Step("done", unmet="the compile task did not complete")
    if verdict.met:
        return Step("done")
    if replans < header.max_replans:
        return Step("replan", replan_task(replans + 1, verdict.reasons))
    return Step(
        "done",
        unmet=f"success criteria not met after {replans} re-plans: "
        f"{verdict.reasons or 'no reasons given'}",
    )


def compile_task(header: GoalSpec, round: int, work: list[str]) -> TaskSpec:
    return TaskSpec(
        id=f"compile-{round}",
        title="Compile the deliverable and judge it against the success criteria",
        skill=COMPILE_SKILL,
        guidance=COMPILE_GUIDANCE,
        expects="deliverable",
        depends_on=work,
        inputs={"success_criteria": header.success_criteria, "round": round},
    )


def replan_task(round: int, reasons: str) -> TaskSpec:
    return TaskSpec(
        id=f"replan-{round}",
        title="Plan more work: the success criteria are not met yet",
        skill=PLAN_SKILL,
        guidance=PLAN_GUIDANCE + " Give new task ids.",
        expects="plan",
        inputs={"judge_reasons": reasons, "round": round},
    )
