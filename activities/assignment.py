"""Activities that give tasks agents and take them back: the agent registry's only writers."""

import uuid

import asyncpg
from temporalio import activity

from activities.rows import Connection, insert_event, write_task
from goalkeeper.records import AssignAgent, Assignment, EndAssignment, Event, EventKind
from goalkeeper.statuses import AgentStatus, AssignmentStatus, TaskStatus

ASSIGNMENTS_CHANNEL = "goalkeeper_assignments"
"""PostgreSQL NOTIFY channel; the payload is the agent id whose inbox changed."""

_WORKING = [s.value for s in AgentStatus if s.accepts_work]


class AssignmentActivities:
    """Picks, provisions and releases agents; holds the worker's connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def assign_agent(self, request: AssignAgent) -> Assignment:
        """Give a task attempt an agent, least loaded first, provisioning one if none fits.

        One transaction per workspace at a time, so two tasks never race for one
        agent's last slot; the assignment, the agent's load, the task row, the events
        and the agent's wake-up all commit together or not at all.
        """
        task = request.task
        async with self.pool.acquire() as connection, connection.transaction():
            existing = await connection.fetchrow(
                "SELECT agent_id FROM assignments WHERE assignment_id = $1",
                request.assignment_id,
            )
            if existing is not None:  # a retry of an attempt that already committed
                return Assignment(
                    assignment_id=request.assignment_id,
                    agent_id=existing["agent_id"],
                    provisioned=False,
                )
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext('goalkeeper-assign:' || $1))",
                request.workspace,
            )
            agent_id = await connection.fetchval(
                """
                SELECT agent_id FROM agents
                WHERE workspace = $1 AND $2 = ANY(skills)
                  AND status = ANY($3::agent_status[])
                  AND active_assignments < capacity
                  AND NOT agent_id = ANY($4::text[])
                ORDER BY agent_id = $5 DESC NULLS LAST,
                         active_assignments::float / capacity,
                         last_assigned_at NULLS FIRST, agent_id
                LIMIT 1
                FOR UPDATE
                """,
                request.workspace,
                request.skill,
                _WORKING,
                request.exclude_agent_ids,
                request.prefer_agent_id,
            )
            provisioned = agent_id is None
            if provisioned:
                agent_id = await self._provision(connection, request)
            await connection.execute(
                """
                UPDATE agents SET active_assignments = active_assignments + 1,
                       status = 'busy', last_assigned_at = now()
                WHERE agent_id = $1
                """,
                agent_id,
            )
            await connection.execute(
                """
                INSERT INTO assignments
                    (assignment_id, goal_id, task_id, agent_id, attempt, context)
                VALUES ($1, $2, $3, $4, $5, $6)
                """,
                request.assignment_id,
                task.goal_id,
                task.task_id,
                agent_id,
                task.attempts,
                request.context,
            )
            assigned = task.model_copy(
                update={
                    "status": TaskStatus.ASSIGNED,
                    "agent_id": agent_id,
                    "assignment_id": request.assignment_id,
                }
            )
            await write_task(connection, assigned)
            await insert_event(
                connection,
                Event(
                    event_id=request.assignment_id,
                    kind=EventKind.TASK_ASSIGNED,
                    goal_id=task.goal_id,
                    task_id=task.task_id,
                    agent_id=agent_id,
                    message=f"task {task.task_id!r} assigned to agent {agent_id!r} "
                    f"(attempt {task.attempts})",
                    detail={"assignment_id": request.assignment_id, "provisioned": provisioned},
                ),
            )
            await connection.execute("SELECT pg_notify($1, $2)", ASSIGNMENTS_CHANNEL, agent_id)
        return Assignment(
            assignment_id=request.assignment_id, agent_id=agent_id, provisioned=provisioned
        )

    async def _provision(self, connection: Connection, request: AssignAgent) -> str:
        """Register a new agent for the skill, so a task never waits without one."""
        agent_id = f"auto-{request.skill}-{request.assignment_id[:8]}".replace(" ", "-")
        await connection.execute(
            """
            INSERT INTO agents (agent_id, workspace, skills, status, capacity, provisioned)
            VALUES ($1, $2, $3, 'available', 1, true)
            """,
            agent_id,
            request.workspace,
            [request.skill],
        )
        await insert_event(
            connection,
            Event(
                # Derived from the assignment id: one provisioning per assignment, ever.
                event_id=_derived_id(request.assignment_id, 1),
                kind=EventKind.AGENT_PROVISIONED,
                goal_id=request.task.goal_id,
                task_id=request.task.task_id,
                agent_id=agent_id,
                message=f"no agent in workspace {request.workspace!r} with skill "
                f"{request.skill!r} was free; provisioned {agent_id!r}",
                detail={"skill": request.skill, "workspace": request.workspace},
            ),
        )
        return agent_id

    @activity.defn
    async def end_assignment(self, request: EndAssignment) -> None:
        """Close an assignment with the agent's outcome, free the agent's slot, record the task.

        The slot is freed only by the call that closes the assignment, so a retry
        never frees it twice.
        """
        async with self.pool.acquire() as connection, connection.transaction():
            agent_id = await connection.fetchval(
                """
                UPDATE assignments SET status = $2, result = $3, error = $4,
                       tokens_used = $5, cost_usd = $6, ended_at = now()
                WHERE assignment_id = $1 AND status = 'active'
                RETURNING agent_id
                """,
                request.assignment_id,
                request.status.value,
                request.result,
                request.error,
                request.tokens_used,
                request.cost_usd,
            )
            if agent_id is not None:
                await release_agent(connection, agent_id)
                if request.status is AssignmentStatus.TIMED_OUT:
                    await connection.execute(
                        "UPDATE agents SET status = 'unresponsive' WHERE agent_id = $1", agent_id
                    )
            await write_task(connection, request.task)
            await insert_event(connection, request.event)


async def release_agent(connection: Connection, agent_id: str) -> None:
    """Free one of the agent's slots; an idle agent that was busy becomes available."""
    await connection.execute(
        """
        UPDATE agents SET active_assignments = active_assignments - 1,
               status = CASE WHEN status = 'busy' AND active_assignments = 1
                             THEN 'available'::agent_status ELSE status END
        WHERE agent_id = $1 AND active_assignments > 0
        """,
        agent_id,
    )


def _derived_id(base_uuid: str, n: int) -> str:
    """A stable UUID derived from another, for the n-th event an activity writes."""
    return str(uuid.uuid5(uuid.UUID(base_uuid), str(n)))
