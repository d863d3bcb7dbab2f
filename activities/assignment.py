"""Activities that give tasks agents and take them back: the agent registry's only writers."""

import re
import uuid
from datetime import datetime

import asyncpg
from temporalio import activity

from activities.rows import Connection
from goalkeeper.records import AssignAgents, Assignment, AssignTask, EndAssignment, EventKind

BUDGET_SPENT = "GK402"
"""SQLSTATE `goalkeeper_assign` raises when a budget over the goal is spent."""

ASSIGNMENTS_CHANNEL = "goalkeeper_assignments"
"""PostgreSQL NOTIFY channel; the payload is the agent id whose inbox changed."""


class AssignmentActivities:
    """Picks, provisions and releases agents; holds the worker's connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def assign_agents(self, request: AssignAgents) -> list[Assignment]:
        """Give task attempts agents, least loaded first, provisioning one where none fits.

        Each assignment is one statement and its own transaction (`goalkeeper_assign` in
        the schema): it locks only the agent it picks, so assignments for other skills
        never wait, and a retry of a committed one returns the same agent.
        """
        assigned = []
        for task in request.tasks:
            agent_id = provisioned_agent_id(task.skill, task.assignment_id)
            try:
                row = await self._assign(request, task, agent_id)
            except asyncpg.PostgresError as exc:
                if exc.sqlstate != BUDGET_SPENT:
                    raise
                # The rest of the batch would be refused too: the caller waits for a raise.
                assigned.append(
                    Assignment(
                        task_id=task.task_id,
                        assignment_id=task.assignment_id,
                        agent_id="",
                        provisioned=False,
                        refused=str(exc),
                    )
                )
                break
            assigned.append(
                Assignment(
                    task_id=task.task_id,
                    assignment_id=task.assignment_id,
                    agent_id=row["agent_id"],
                    provisioned=row["provisioned"],
                )
            )
        return assigned

    async def _assign(
        self, request: AssignAgents, task: AssignTask, agent_id: str
    ) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            "SELECT * FROM goalkeeper_assign($1)",
            {
                **task.model_dump(mode="json"),
                "goal_id": request.goal_id,
                "goal_run_id": request.goal_run_id,
                "workspace": request.workspace,
                "provision_id": agent_id,
                "provision_event": {
                    # Derived from the assignment id: one provisioning per assignment, ever.
                    "event_id": str(uuid.uuid5(uuid.UUID(task.assignment_id), "1")),
                    "kind": EventKind.AGENT_PROVISIONED.value,
                    "goal_id": request.goal_id,
                    "task_id": task.task_id,
                    "message": f"no agent in workspace {request.workspace!r} with skill "
                    f"{task.skill!r} was free; provisioned {agent_id!r}",
                    "detail": {"skill": task.skill, "workspace": request.workspace},
                },
            },
        )
        assert row is not None
        return row

    @activity.defn
    async def end_assignment(self, request: EndAssignment) -> None:
        """Close an assignment with the agent's outcome, free its slot, record the task.

        One statement (`goalkeeper_end_assignment`); the slot is freed only by the call
        that closes the assignment, so a retry never frees it twice.
        """
        await self.pool.execute(
            "SELECT goalkeeper_end_assignment($1)", request.model_dump(mode="json")
        )

    @activity.defn
    async def activate_assignment(self, assignment_id: str) -> None:
        """Show an assignment made before its task workflow started to its agent, and wake it."""
        await self.pool.execute("SELECT goalkeeper_activate($1::uuid)", assignment_id)

    @activity.defn
    async def last_heartbeat(self, assignment_id: str) -> datetime | None:
        """When the agent last wrote its heartbeat for the assignment, if ever."""
        at: datetime | None = await self.pool.fetchval(
            "SELECT last_heartbeat_at FROM assignments WHERE assignment_id = $1::uuid",
            assignment_id,
        )
        return at


def provisioned_agent_id(skill: str, assignment_id: str) -> str:
    """An id for an agent provisioned for `skill` that is a valid agent id for any skill."""
    slug = re.sub(r"[^A-Za-z0-9_.:@-]+", "-", skill).strip("-.:@_")[:60] or "agent"
    return f"auto-{slug}-{assignment_id[:8]}"


async def release_agent(connection: Connection, agent_id: str) -> None:
    """Free one of the agent's slots; an idle agent that was busy becomes available."""
    await connection.execute("SELECT goalkeeper_release($1)", agent_id)
