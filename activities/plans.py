"""Plans in PostgreSQL: a planner's result checked against its goal, and adopted."""

import asyncpg
from temporalio import activity

from goalkeeper.errors import InvalidGoalSpec, InvalidRunbook
from goalkeeper.models import GoalSpec, TaskSpec
from goalkeeper.planning import parse_plan, plan_tasks
from goalkeeper.records import AdoptedPlan, AdoptPlan
from store.results import UnresolvedReference, resolve
from store.runbooks import fetch_runbook
from store.tasks import insert_tasks


async def planned_tasks(
    pool: asyncpg.Pool, goal_id: str, goal_run_id: str, result: object
) -> tuple[GoalSpec, list[TaskSpec]]:
    """The goal's spec, and the tasks a plan gives it, checked against its spec and tasks.

    Raises:
        InvalidGoalSpec: why the plan cannot be adopted, said for the planner.
        UnresolvedReference: the plan's stored content cannot be read.
    """
    header = await pool.fetchval(
        "SELECT spec FROM goals WHERE goal_id = $1 AND first_run_id = $2", goal_id, goal_run_id
    )
    if header is None:
        raise InvalidGoalSpec(goal_id, f"goal {goal_id!r} of this plan is not stored")
    header.pop("tasks_total", None)
    goal = GoalSpec.model_validate({**header, "goal_id": goal_id, "tasks": []})
    plan = parse_plan(await resolve(pool, result))
    if isinstance(plan, str):
        raise InvalidGoalSpec(goal_id, plan)
    existing = {
        r["task_id"]
        for r in await pool.fetch("SELECT task_id FROM tasks WHERE goal_id = $1", goal_id)
    }
    try:
        runbook = None if plan.runbook is None else await fetch_runbook(pool, plan.runbook)
    except InvalidRunbook as exc:
        raise InvalidGoalSpec(goal_id, str(exc)) from None
    return goal, plan_tasks(goal, plan, runbook, existing, goal.partition_size)


class PlanActivities:
    """Adopts plans into their goals; holds the worker's connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def adopt_plan(self, request: AdoptPlan) -> AdoptedPlan:
        """Store the plan's tasks after the goal's own; the goal then reads them in pages."""
        result = await self.pool.fetchval(
            "SELECT result FROM tasks WHERE goal_id = $1 AND task_id = $2 AND status = 'completed'",
            request.goal_id,
            request.task_id,
        )
        try:
            goal, tasks = await planned_tasks(
                self.pool, request.goal_id, request.goal_run_id, result
            )
        except (InvalidGoalSpec, UnresolvedReference) as exc:
            return AdoptedPlan(error=str(exc))
        async with self.pool.acquire() as connection, connection.transaction():
            await insert_tasks(
                connection, request.goal_id, goal.approvers, request.first_position, tasks
            )
        return AdoptedPlan(count=len(tasks))
