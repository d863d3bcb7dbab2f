"""A window's planning tasks: once one completes, the tasks of its plan join the goal.

They were checked when reported (`goalkeeper.planning`); this shell adopts them.
"""

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.plans import PlanActivities
    from activities.read_model import ReadModelActivities
    from goalkeeper.records import AdoptedPlan, AdoptPlan, EventKind, LoadTasks
    from workflows.options import record
    from workflows.specs import load_specs

if TYPE_CHECKING:
    from workflows.window import TaskWindow


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
    await window.add(specs, f"planned in task {task_id!r}")
