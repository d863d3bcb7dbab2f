"""How a window's tasks grow while its goal runs: tasks added by `add_tasks`, a planning
task's plan adopted, and once every task has ended a compile or re-plan task.

What may be added, and what follows a goal's last task, are the core's
(`goalkeeper.planning`, `goalkeeper.compiling`); this shell stores and adds them.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.deliverables import DeliverableActivities
    from activities.plans import PlanActivities
    from activities.read_model import ReadModelActivities
    from goalkeeper.compiling import Verdict, next_step
    from goalkeeper.errors import InvalidGoalSpec
    from goalkeeper.models import TaskSpec
    from goalkeeper.planning import AddTasks, check_new_tasks
    from goalkeeper.records import (
        AdoptedPlan,
        AdoptPlan,
        EventKind,
        LoadTasks,
        LoadVerdict,
        RecordTasks,
    )
    from goalkeeper.statuses import TaskStatus
    from workflows.options import record
    from workflows.runners.runner import Added
    from workflows.specs import load_specs

if TYPE_CHECKING:
    from workflows.runners.window import TaskWindow


def judge_added(window: "TaskWindow", request: AddTasks, running: bool) -> list[TaskSpec] | str:
    """The tasks `request` adds to a goal still `running`, checked as a spec's are; or
    why they cannot join it."""
    goal_id, header = window.goal_id, window.header
    if not running:
        return f"goal {goal_id!r} has ended; expected a running goal"
    if window.failing is not None:
        return f"goal {goal_id!r} is failing ({window.failing})"
    try:
        return check_new_tasks(
            header.model_copy(update={"goal_id": goal_id}),
            request.tasks,
            set(window.schedule.plan.index),
            header.partition_size,
        )
    except InvalidGoalSpec as exc:
        return str(exc)


async def add_tasks(window: "TaskWindow", judge: Callable[[], Added]) -> str | None:
    """Have the loop add the tasks `judge` accepts, judged again when their turn comes (an
    addition taken in before them changed the goal); why not, if it refused them."""
    refused: list[str | None] = []

    async def add() -> None:
        added = judge()
        if not isinstance(added, str):
            request, tasks = added
            await store_and_join(window, tasks, f"by {request.added_by}: {request.reason}")
        refused.append(added if isinstance(added, str) else None)

    if not window.closed:
        window.later(add)  # the loop adds them: positions follow each other
        await workflow.wait_condition(lambda: bool(refused) or window.closed)
    problem = refused[0] if refused else judge()
    return problem if isinstance(problem, str) else None


async def store_and_join(window: "TaskWindow", tasks: list[TaskSpec], why: str) -> None:
    """Store tasks after the goal's own, then let them run."""
    await record(
        ReadModelActivities.record_tasks,
        RecordTasks(
            goal_id=window.goal_id,
            goal_run_id=window.goal_run_id,
            first_position=len(window.specs),
            tasks=tasks,
        ),
        f"record {len(tasks)} added tasks",
    )
    await window.join(tasks, why)


async def adopt_plan(window: "TaskWindow", i: int) -> None:
    """A plan completed: its tasks join the goal (they were checked when reported)."""
    task_id, first = window.specs[i].id or "", len(window.specs)
    adopted: AdoptedPlan = await record(
        PlanActivities.adopt_plan,
        AdoptPlan(
            goal_id=window.goal_id,
            goal_run_id=window.goal_run_id,
            task_id=task_id,
            first_position=first,
        ),
        "adopt the plan",
    )
    if adopted.error is not None:
        await record(
            ReadModelActivities.record_event,
            window.event(
                EventKind.TASK_FAILED,
                f"plan could not be adopted: {adopted.error}",
                task_id,
                key=("plan",),
            ),
            "record the plan not adopted",
        )
        return
    specs = await load_specs(
        LoadTasks(
            goal_id=window.goal_id,
            goal_run_id=window.goal_run_id,
            start=first,
            end=first + adopted.count,
        )
    )
    await window.join(specs, f"planned in task {task_id!r}")


class FollowUp:
    """What follows a compiling goal's last task: a compile task, or a re-plan when its
    judge found the success criteria unmet, until they are met or the re-plans run out."""

    def __init__(self, window: "TaskWindow") -> None:
        self.window = window
        self.stage: str | None = None
        """The goal's stage once it compiles or re-plans."""
        self.unmet: str | None = None
        """Why the goal's success criteria are not met, when its judge said so last."""

    async def __call__(self) -> bool:
        """Every task has ended: add the next step; False when there is none."""
        window = self.window
        schedule, specs, last = window.schedule, window.specs, len(window.specs) - 1
        verdict: Verdict | None = None
        if (
            specs[last].expects == "deliverable"
            and schedule.status_of(last) is TaskStatus.COMPLETED
        ):
            verdict = await record(
                DeliverableActivities.load_verdict,
                LoadVerdict(goal_id=window.goal_id, task_id=specs[last].id or ""),
                "read the judgement",
            )
        completed = {
            schedule.plan.ids[i]
            for i in range(len(specs))
            if schedule.status_of(i) is TaskStatus.COMPLETED
        }
        step = next_step(window.header, specs, completed, verdict)
        if step.task is None:
            self.unmet = step.unmet
            return False
        if step.action == "compile":
            self.stage = f"compiling the deliverable ({step.task.id})"
        else:
            self.stage = f"re-planning ({step.task.id}): {verdict.reasons if verdict else ''}"
        await store_and_join(window, [step.task], f"{step.action}: {self.stage}")
        return True
