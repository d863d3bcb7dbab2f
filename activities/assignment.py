"""Activities that give tasks agents and take them back: the agent registry's only writers."""

import json
import re
import uuid
from datetime import datetime

import asyncpg
from pydantic import ValidationError
from temporalio import activity

from goalkeeper.learning import (
    AgentRecord,
    Candidate,
    check_selection_mode,
    choose_agent,
    selection_rng,
)
from goalkeeper.limits import (
    MAX_QUOTED_CHARS,
    MAX_SIGNATURE_CHARS,
    MAX_TIME_CHARS,
    heartbeat_time_problem,
)
from goalkeeper.models import Heartbeat, describe_validation_error
from goalkeeper.records import (
    AssignAgents,
    Assignment,
    AssignTask,
    EndAssignment,
    EventKind,
    ReadHeartbeat,
    StoredHeartbeat,
)
from goalkeeper.statuses import AgentStatus, TaskStatus
from goalkeeper.task_controls import AgentQuery, AgentStanding
from monitoring import metrics
from monitoring.traces import traceparent
from store.rows import Connection

BUDGET_SPENT = "GK402"
"""SQLSTATE `goalkeeper_assign` raises when a budget over the goal is spent."""

ASSIGNMENTS_CHANNEL = "goalkeeper_assignments"
"""PostgreSQL NOTIFY channel; the payload is the agent id whose inbox changed."""

DEFAULT_SELECTION_SEED = "goalkeeper"
"""Seeds agent choice where GOALKEEPER_SELECTION_SEED is unset: the same run, the same picks."""


class AssignmentActivities:
    """Picks, provisions and releases agents; holds the worker's connection pool.

    `selection` is how an agent is picked among those with the skill and a free slot:
    `learned` weighs their records on the skill (`goalkeeper.learning.choose_agent`,
    its draws seeded by `seed` and the assignment id), `least_loaded` only their load.
    `require_signatures` is the worker's default for goals that do not say.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        selection: str = "learned",
        seed: str = DEFAULT_SELECTION_SEED,
        require_signatures: bool = False,
    ) -> None:
        self.pool = pool
        self.selection = check_selection_mode(selection)
        self.seed = seed
        self.require_signatures = require_signatures
        self.spend = metrics.Spend()

    @activity.defn
    async def assign_agents(self, request: AssignAgents) -> list[Assignment]:
        """Give task attempts agents, provisioning one where none fits.

        Each assignment is one transaction: the candidates' records are read and the
        choice passed to `goalkeeper_assign` (the schema), which locks only the agent it
        takes, falls back to the least loaded one if the choice filled up meanwhile, and
        returns the same agent to a retry of a committed assignment. Rework goes back
        to the agent that did the work (`prefer_agent_id`), whatever its record.
        """
        assigned = []
        meter = metrics.activity_meter()
        for task in request.tasks:
            try:
                async with self.pool.acquire() as connection, connection.transaction():
                    prefer = task.prefer_agent_id
                    if prefer is None and task.avoid_agent_ids:
                        prefer = await self._other_agent(connection, request.workspace, task)
                    if prefer is None and self.selection == "learned":
                        prefer = await self._learned_choice(connection, request.workspace, task)
                    row = await self._assign(connection, request, task, prefer)
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
                        refused_by=getattr(exc, "detail", None),
                    )
                )
                break
            if row["made_now"]:  # not a retry of an assignment already made
                metrics.task_assigned(meter, task.skill, metrics.since_scheduled())
            if row["provisioned"]:
                metrics.provisioned(meter, task.skill)
            required = request.require_signatures
            assigned.append(
                Assignment(
                    task_id=task.task_id,
                    assignment_id=task.assignment_id,
                    agent_id=row["agent_id"],
                    provisioned=row["provisioned"],
                    agent_key=row["public_key"],
                    agent_operator=row["operator"],
                    signatures_required=self.require_signatures if required is None else required,
                )
            )
        return assigned

    async def _other_agent(
        self, connection: Connection, workspace: str, task: AssignTask
    ) -> str | None:
        """An agent other than those the task avoids that could take it now (the learned
        choice among them, else the least loaded); None where there is none."""
        others = task.model_copy(
            update={"exclude_agent_ids": [*task.exclude_agent_ids, *task.avoid_agent_ids]}
        )
        if self.selection == "learned":
            choice = await self._learned_choice(connection, workspace, others)
            if choice is not None:
                return choice
        agent_id: str | None = await connection.fetchval(
            """
            SELECT agent_id FROM agents
            WHERE workspace = $1 AND skills @> ARRAY[$2]
              AND status IN ('available', 'busy') AND active_assignments < capacity
              AND NOT agent_id = ANY($3::text[])
            ORDER BY active_assignments::float8 / capacity, last_assigned_at NULLS FIRST, agent_id
            LIMIT 1
            """,
            workspace,
            task.skill,
            others.exclude_agent_ids,
        )
        return agent_id

    @activity.defn
    async def agent_standing(self, query: AgentQuery) -> AgentStanding:
        """An agent of a workspace as it stands now: its skills, status and load, for a
        person's choice of it for a task (`reassign_task`)."""
        row = await self.pool.fetchrow(
            "SELECT skills, status, active_assignments, capacity FROM agents "
            "WHERE agent_id = $1 AND workspace = $2",
            query.agent_id,
            query.workspace,
        )
        if row is None:
            return AgentStanding(agent_id=query.agent_id)
        return AgentStanding(
            agent_id=query.agent_id,
            known=True,
            skills=list(row["skills"]),
            status=AgentStatus(row["status"]),
            active_assignments=row["active_assignments"],
            capacity=row["capacity"],
        )

    async def _learned_choice(
        self, connection: Connection, workspace: str, task: AssignTask
    ) -> str | None:
        """The agent Thompson sampling on records picks among those that could take the
        task now; None (least loaded) while none of them has a record."""
        rows = await connection.fetch(
            """
            SELECT g.agent_id, g.active_assignments::float8 / g.capacity AS load, r.first_tries,
                   r.first_try_completions, r.completions, r.failures, r.lapses, r.reworks,
                   r.ratings_good, r.ratings_bad
            FROM agents g LEFT JOIN agent_records r ON r.agent_id = g.agent_id AND r.skill = $2
            WHERE g.workspace = $1 AND g.skills @> ARRAY[$2]
              AND g.status IN ('available', 'busy') AND g.active_assignments < g.capacity
              AND NOT g.agent_id = ANY($3::text[])
            """,
            workspace,
            task.skill,
            task.exclude_agent_ids,
        )
        candidates = [
            Candidate(
                agent_id=row["agent_id"],
                record=AgentRecord.from_counts(dict(row)),
                load=row["load"],
            )
            for row in rows
        ]
        return choose_agent(candidates, selection_rng(self.seed, task.assignment_id))

    async def _assign(
        self, connection: Connection, request: AssignAgents, task: AssignTask, prefer: str | None
    ) -> asyncpg.Record:
        """One call of `goalkeeper_assign`: the agent taken, whether it was provisioned, and
        its key and operator."""
        agent_id = provisioned_agent_id(task.skill, task.assignment_id)
        # The agent's key and operator in the same statement: they are set at registration,
        # so the snapshot it joins is current for them (a just-provisioned agent has neither).
        # The same snapshot predates the assignment, so `made_now` tells a retry apart.
        row = await connection.fetchrow(
            "SELECT a.*, g.public_key, g.operator, NOT EXISTS (SELECT FROM assignments x "
            "WHERE x.assignment_id = $2::uuid) AS made_now FROM goalkeeper_assign($1) a "
            "LEFT JOIN agents g USING (agent_id)",
            {
                **task.model_dump(mode="json"),
                "prefer_agent_id": prefer,
                "goal_id": request.goal_id,
                "goal_run_id": request.goal_run_id,
                "workspace": request.workspace,
                "provision_id": agent_id,
                # The agent's spans (its model calls, its tools) join the goal's trace.
                "traceparent": traceparent(),
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
            task.assignment_id,
        )
        assert row is not None
        return row

    @activity.defn
    async def end_assignment(self, request: EndAssignment) -> None:
        """Close an assignment with the agent's outcome, free its slot, record the task.

        One statement (`goalkeeper_end_assignment`); the slot is freed only by the call
        that closes the assignment, so a retry never frees it twice, nor counts its tokens
        and cost, nor the task's end, in the metrics again.
        """
        task = request.task
        # The subqueries read the statement's snapshot, taken before the function's writes:
        # the assignment and task as they were before this call.
        row = await self.pool.fetchrow(
            """
            SELECT (SELECT g.workspace FROM assignments a JOIN goals g USING (goal_id)
                    WHERE a.assignment_id = $2::uuid AND a.status IN ('active', 'starting'))
                       AS closes_in,
                   (SELECT t.status::text FROM tasks t WHERE t.goal_id = $3 AND t.task_id = $4)
                       AS task_was,
                   goalkeeper_end_assignment($1)
            """,
            request.model_dump(mode="json"),
            request.assignment_id,
            task.goal_id,
            task.task_id,
        )
        assert row is not None
        meter = metrics.activity_meter()
        if row["closes_in"] is not None:
            self.spend.add(
                meter,
                row["closes_in"],
                task.skill,
                request.tokens_used,
                request.cost_usd,
                request.input_tokens,
                request.output_tokens,
            )
        if row["task_was"] is not None and not TaskStatus(row["task_was"]).is_terminal:
            metrics.tasks_finished(meter, task.status)

    @activity.defn
    async def activate_assignment(self, assignment_id: str) -> None:
        """Show an assignment made before its task workflow started to its agent, and wake it."""
        await self.pool.execute("SELECT goalkeeper_activate($1::uuid)", assignment_id)

    @activity.defn
    async def last_heartbeat(self, assignment_id: str) -> datetime | None:
        """When the agent last wrote its heartbeat for the assignment, if ever and not
        ahead of the database's clock: for tasks that started before `stored_heartbeat`."""
        return (await self.stored_heartbeat(ReadHeartbeat(assignment_id=assignment_id))).at

    @activity.defn
    async def stored_heartbeat(self, request: ReadHeartbeat) -> StoredHeartbeat:
        """The agent's last heartbeat written to PostgreSQL, checked against the database's
        clock: a time ahead of it by more than `MAX_CLOCK_SKEW`, or none at all, does not
        count, and says why. For a task that requires signatures, the signed heartbeat
        (its signature the task checks itself)."""
        row = await self.pool.fetchrow(
            "SELECT agent_id, last_heartbeat_at, heartbeat_signature, now() AS db_now "
            "FROM assignments WHERE assignment_id = $1::uuid",
            request.assignment_id,
        )
        if row is None:
            return StoredHeartbeat()
        now: datetime = row["db_now"]
        if not request.signed:
            at: datetime | None = row["last_heartbeat_at"]
            if at is None:
                return StoredHeartbeat()
            problem = heartbeat_time_problem(at.isoformat(), now, "the database's clock")
            return StoredHeartbeat(problem=problem) if problem else StoredHeartbeat(at=at)
        if not row["heartbeat_signature"]:
            return StoredHeartbeat()
        try:
            signed = json.loads(row["heartbeat_signature"])
            sent = str(signed["at"])[:MAX_TIME_CHARS]
            signature = str(signed["signature"])[:MAX_SIGNATURE_CHARS]
        except (ValueError, KeyError, TypeError):
            return StoredHeartbeat(
                problem='heartbeat rejected: expected a signed heartbeat {"at", "signature"} '
                f"as JSON, got {str(row['heartbeat_signature'])[:MAX_QUOTED_CHARS]!r}"
            )
        problem = heartbeat_time_problem(sent, now, "the database's clock")
        if problem is not None:
            return StoredHeartbeat(problem=problem)
        try:
            beat = Heartbeat(
                agent_id=row["agent_id"],
                assignment_id=request.assignment_id,
                at=sent,
                signature=signature,
            )
        except ValidationError as exc:
            return StoredHeartbeat(problem=describe_validation_error(exc, "heartbeat"))
        return StoredHeartbeat(at=datetime.fromisoformat(sent), beat=beat)

    @activity.defn
    async def read_heartbeat(self, assignment_id: str) -> Heartbeat | None:
        """The agent's last signed heartbeat, for tasks that started before
        `stored_heartbeat`: the same checks, but one that fails them is only left out."""
        stored = await self.stored_heartbeat(
            ReadHeartbeat(assignment_id=assignment_id, signed=True)
        )
        return stored.beat


def provisioned_agent_id(skill: str, assignment_id: str) -> str:
    """An id for an agent provisioned for `skill` that is a valid agent id for any skill."""
    slug = re.sub(r"[^A-Za-z0-9_.:@-]+", "-", skill).strip("-.:@_")[:60] or "agent"
    return f"auto-{slug}-{assignment_id[:8]}"


async def release_agent(connection: Connection, agent_id: str) -> None:
    """Free one of the agent's slots; an idle agent that was busy becomes available."""
    await connection.execute("SELECT goalkeeper_release($1)", agent_id)
