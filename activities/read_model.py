"""Activities that project goal and task state into PostgreSQL for dashboards and agents."""

from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from goalkeeper.errors import InvalidGoalSpec, InvalidRunbook
from goalkeeper.models import GoalRef, GoalSpec, TaskSpec
from goalkeeper.plan_task import needs_plan
from goalkeeper.records import (
    Event,
    EventKind,
    FinishGoal,
    LoadTasks,
    RecordGoal,
    RecordRejectedGoal,
    RecordSkips,
    RecordTask,
    RecordTasks,
    SkipRange,
    StoredGoal,
    StoreGoal,
    TaskSpecPage,
    goal_started_message,
)
from goalkeeper.runbooks import runbook_named
from goalkeeper.scheduling import partition, topological_order
from goalkeeper.statuses import GoalStatus, TaskStatus
from goalkeeper.validation import validate_goal_spec
from monitoring import metrics
from store.rows import insert_event
from store.runbooks import fetch_runbook, match_runbooks
from store.tasks import insert_tasks


class ReadModelActivities:
    """Writes goals, tasks and events; holds the worker's connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def record_goal(self, record: RecordGoal) -> None:
        """Store a started goal; its tasks follow in pages (`record_tasks`).

        A goal id reused after an earlier goal ended starts afresh: its old task rows
        are removed, while its events stay (the audit trail is append-only).
        """
        spec = record.header
        async with self.pool.acquire() as connection, connection.transaction():
            previous_run = await connection.fetchval(
                "SELECT first_run_id FROM goals WHERE goal_id = $1 FOR UPDATE", record.goal_id
            )
            if previous_run is not None and previous_run != record.goal_run_id:
                # The earlier goal's open assignments end here, freeing their agents.
                await connection.execute(
                    """
                    WITH closed AS (
                        UPDATE assignments SET status = 'cancelled', ended_at = now(),
                               error = 'the goal was started again under the same id'
                        WHERE goal_id = $1 AND status IN ('active', 'starting')
                        RETURNING agent_id)
                    SELECT goalkeeper_release(agent_id) FROM closed
                    """,
                    record.goal_id,
                )
                await connection.execute("DELETE FROM tasks WHERE goal_id = $1", record.goal_id)
            await connection.execute(
                """
                INSERT INTO goals (goal_id, first_run_id, title, description, workspace,
                                   approvers, status, spec)
                VALUES ($1, $2, $3, $4, $5, $6, 'running', $7)
                ON CONFLICT (goal_id) DO UPDATE SET
                    first_run_id = EXCLUDED.first_run_id, title = EXCLUDED.title,
                    description = EXCLUDED.description, workspace = EXCLUDED.workspace,
                    approvers = EXCLUDED.approvers, spec = EXCLUDED.spec,
                    status = CASE WHEN goals.first_run_id = EXCLUDED.first_run_id
                                  THEN goals.status ELSE 'running' END,
                    report = CASE WHEN goals.first_run_id = EXCLUDED.first_run_id
                                  THEN goals.report END,
                    error = CASE WHEN goals.first_run_id = EXCLUDED.first_run_id
                                 THEN goals.error END,
                    ended_at = CASE WHEN goals.first_run_id = EXCLUDED.first_run_id
                                    THEN goals.ended_at END,
                    budget_usd = CASE WHEN goals.first_run_id = EXCLUDED.first_run_id
                                      THEN goals.budget_usd END,
                    budget_tokens = CASE WHEN goals.first_run_id = EXCLUDED.first_run_id
                                         THEN goals.budget_tokens END,
                    spent_usd = CASE WHEN goals.first_run_id = EXCLUDED.first_run_id
                                     THEN goals.spent_usd ELSE 0 END,
                    spent_tokens = CASE WHEN goals.first_run_id = EXCLUDED.first_run_id
                                        THEN goals.spent_tokens ELSE 0 END,
                    updated_at = now()
                """,
                record.goal_id,
                record.goal_run_id,
                spec.title,
                spec.description,
                spec.workspace,
                spec.approvers,
                {
                    **spec.model_dump(mode="json", exclude={"tasks"}),
                    "tasks_total": record.tasks_total,
                },
            )
            await insert_tasks(connection, record.goal_id, spec.approvers, 0, record.tasks)
            await insert_event(connection, record.event)

    @activity.defn
    async def store_goal(self, request: StoreGoal) -> StoredGoal:
        """Validate a spec stored by reference and store its goal and tasks in dependency order.

        Returns the header and the partitions (or the reason the spec is invalid), never
        the tasks: a spec of any size stays out of workflow history.
        """
        raw = await self.pool.fetchval(
            "SELECT spec FROM goal_specs WHERE spec_id = $1::uuid", request.spec_id
        )
        if raw is None:
            return StoredGoal(error=f"spec_ref {request.spec_id!r} names no stored goal spec")
        named = runbook_named(raw)
        try:
            runbook = None if named is None else await fetch_runbook(self.pool, *named)
            candidates = (
                await match_runbooks(self.pool, f"{raw.get('title', '')} {raw['description']}")
                if needs_plan(raw)
                else []
            )
            spec = validate_goal_spec(raw, request.goal_id, runbook, candidates)
        except (InvalidGoalSpec, InvalidRunbook) as exc:
            return StoredGoal(error=str(exc))
        header = spec.header()
        pairs = [(t.id or "", t.depends_on) for t in spec.tasks]
        order = topological_order(pairs)
        tasks = [spec.tasks[i] for i in order]
        await self.record_goal(
            RecordGoal(
                goal_id=request.goal_id,
                goal_run_id=request.goal_run_id,
                header=header,
                tasks_total=len(tasks),
                tasks=tasks,
                event=Event(
                    event_id=request.event_id,
                    kind=EventKind.GOAL_STARTED,
                    goal_id=request.goal_id,
                    message=goal_started_message(
                        request.goal_id, header, len(tasks), len(tasks) > header.partition_size
                    ),
                ),
            )
        )
        # Fresh statistics, so the planner reads a goal of any size through its indexes.
        await self.pool.execute("ANALYZE tasks")
        ordered = [pairs[i] for i in order]
        return StoredGoal(
            header=header,
            tasks_total=len(tasks),
            partitions=partition(ordered, header.partition_size),
        )

    @activity.defn
    async def record_tasks(self, record: RecordTasks) -> None:
        """Store a page of the goal's tasks as `pending`, with their specs and positions."""
        header = await self._header(record.goal_id, record.goal_run_id)
        if header is None:
            return  # a newer goal of the same id replaced this one
        await insert_tasks(
            self.pool,
            record.goal_id,
            header.get("approvers") or [],
            record.first_position,
            record.tasks,
        )

    @activity.defn
    async def load_goal(self, ref: GoalRef) -> GoalSpec:
        """The spec of a stored goal, without its tasks (they are read in pages)."""
        header = await self._header(ref.goal_id, ref.goal_run_id)
        if header is None:
            raise ApplicationError(
                f"goal {ref.goal_id!r} of run {ref.goal_run_id!r} is not stored; expected "
                "it to be recorded when the goal started",
                type="InvalidRecord",
                non_retryable=True,
            )
        header.pop("tasks_total", None)
        return GoalSpec.model_validate({**header, "tasks": []})

    @activity.defn
    async def load_tasks(self, request: LoadTasks) -> TaskSpecPage:
        """Task specs by plan position, from `start` up to `end` or `max_bytes`."""
        rows = await self.pool.fetch(
            """
            SELECT t.position, t.spec, length(t.spec::text) AS bytes
            FROM tasks t JOIN goals g USING (goal_id)
            WHERE t.goal_id = $1 AND g.first_run_id = $2 AND t.position >= $3 AND t.position < $4
            ORDER BY t.position
            """,
            request.goal_id,
            request.goal_run_id,
            request.start,
            request.end,
        )
        tasks: list[TaskSpec] = []
        size = 0
        for row in rows:
            if tasks and size + row["bytes"] > request.max_bytes:
                return TaskSpecPage(tasks=tasks, next_start=row["position"])
            size += row["bytes"]
            tasks.append(TaskSpec.model_validate(row["spec"]))
        if request.start + len(tasks) != request.end:
            raise ApplicationError(
                f"goal {request.goal_id!r} has {len(tasks)} stored tasks at positions "
                f"{request.start}..{request.end - 1}; expected {request.end - request.start}",
                type="InvalidRecord",
                non_retryable=True,
            )
        return TaskSpecPage(tasks=tasks)

    @activity.defn
    async def lost_dependencies(self, request: LoadTasks) -> dict[str, str]:
        """Tasks in a range that depend on an earlier task that did not complete, and why.

        The earlier tasks are in partitions that have ended, so their rows are final.
        """
        rows = await self.pool.fetch(
            """
            SELECT DISTINCT ON (t.task_id) t.task_id, d.task_id AS lost, d.status::text
            FROM goals g
            JOIN tasks t ON t.goal_id = g.goal_id
            CROSS JOIN LATERAL unnest(t.depends_on) AS dep(task_id)
            JOIN tasks d ON d.goal_id = $1 AND d.task_id = dep.task_id
            WHERE g.goal_id = $1 AND g.first_run_id = $2 AND t.position >= $3
              AND t.position < $4 AND d.position < $3 AND d.status <> 'completed'
            ORDER BY t.task_id, d.position
            """,
            request.goal_id,
            request.goal_run_id,
            request.start,
            request.end,
        )
        return {r["task_id"]: f"skipped: dependency {r['lost']!r} {r['status']}" for r in rows}

    @activity.defn
    async def skip_range(self, record: SkipRange) -> int:
        """Skip every still-pending task in a range (a partition that will not run)."""
        async with self.pool.acquire() as connection, connection.transaction():
            skipped = await connection.fetchval(
                """
                WITH skipped AS (
                    UPDATE tasks t SET status = 'skipped', error = $5, seq = t.seq + 1,
                           ended_at = now(), updated_at = now()
                    FROM goals g
                    WHERE t.goal_id = $1 AND g.goal_id = t.goal_id AND g.first_run_id = $2
                      AND t.position >= $3 AND t.position < $4 AND t.status = 'pending'
                    RETURNING 1)
                SELECT count(*) FROM skipped
                """,
                record.goal_id,
                record.goal_run_id,
                record.start,
                record.end,
                record.reason,
            )
            await insert_event(
                connection,
                Event(
                    event_id=record.event_id,
                    kind=EventKind.TASK_SKIPPED,
                    goal_id=record.goal_id,
                    message=f"{skipped} tasks at positions {record.start}..{record.end - 1} "
                    f"{record.reason}",
                ),
            )
        metrics.tasks_finished(metrics.activity_meter(), TaskStatus.SKIPPED, int(skipped))
        return int(skipped)

    @activity.defn
    async def record_skips(self, record: RecordSkips) -> None:
        """Store a batch of skipped tasks and an event for each, in one transaction."""
        async with self.pool.acquire() as connection, connection.transaction():
            skipped = await connection.execute(
                """
                UPDATE tasks t SET status = 'skipped', error = s.reason, seq = t.seq + 1,
                       ended_at = now(), updated_at = now()
                FROM unnest($3::text[], $4::text[]) AS s(task_id, reason), goals g
                WHERE t.goal_id = $1 AND t.task_id = s.task_id AND g.goal_id = t.goal_id
                  AND g.first_run_id = $2 AND t.status = 'pending'
                """,
                record.goal_id,
                record.goal_run_id,
                [t.task_id for t in record.tasks],
                [t.reason for t in record.tasks],
            )
            await connection.executemany(
                "SELECT goalkeeper_event($1)",
                [
                    (
                        {
                            "event_id": t.event_id,
                            "kind": EventKind.TASK_SKIPPED.value,
                            "goal_id": record.goal_id,
                            "task_id": t.task_id,
                            "message": f"task {t.task_id!r} {t.reason}",
                        },
                    )
                    for t in record.tasks
                ],
            )
        # "UPDATE n": only tasks still pending are skipped, so a retry counts none again.
        metrics.tasks_finished(
            metrics.activity_meter(), TaskStatus.SKIPPED, int(skipped.split()[-1])
        )

    async def _header(self, goal_id: str, goal_run_id: str) -> dict[str, Any] | None:
        """The stored spec (without tasks) of this run of the goal, if it is the current one."""
        header: dict[str, Any] | None = await self.pool.fetchval(
            "SELECT spec FROM goals WHERE goal_id = $1 AND first_run_id = $2",
            goal_id,
            goal_run_id,
        )
        return header

    @activity.defn
    async def record_rejected_goal(self, record: RecordRejectedGoal) -> None:
        """Store a goal whose spec was rejected, with the reason, so it cannot vanish silently."""
        raw = record.raw_spec if isinstance(record.raw_spec, dict) else {}
        title = raw.get("title") if isinstance(raw.get("title"), str) else record.goal_id
        workspace = raw.get("workspace") if isinstance(raw.get("workspace"), str) else "default"
        async with self.pool.acquire() as connection, connection.transaction():
            recorded = await connection.fetchval(
                "SELECT status = 'rejected' FROM goals WHERE goal_id = $1 AND first_run_id = $2"
                " FOR UPDATE",
                record.goal_id,
                record.first_run_id,
            )
            await connection.execute(
                """
                INSERT INTO goals (goal_id, first_run_id, title, workspace, status, spec,
                                   error, ended_at)
                VALUES ($1, $2, $3, $4, 'rejected', $5, $6, now())
                ON CONFLICT (goal_id) DO UPDATE SET
                    first_run_id = EXCLUDED.first_run_id, status = 'rejected',
                    spec = EXCLUDED.spec, error = EXCLUDED.error,
                    ended_at = EXCLUDED.ended_at, updated_at = now()
                """,
                record.goal_id,
                record.first_run_id,
                title,
                workspace,
                {"submitted": record.raw_spec},
                record.error,
            )
            await insert_event(connection, record.event)
        if not recorded:
            metrics.goal_finished(metrics.activity_meter(), GoalStatus.REJECTED)

    @activity.defn
    async def record_task(self, record: RecordTask) -> None:
        """Store a task's new state and, if given, the event that explains it."""
        written = await self.pool.fetchval(
            "SELECT goalkeeper_write_task($1), goalkeeper_event($2)",
            record.task.model_dump(mode="json"),
            record.event.model_dump(mode="json") if record.event else None,
        )
        if written:  # a newer state, not a retry's: its end, if it is one, counts once
            metrics.tasks_finished(metrics.activity_meter(), record.task.status)

    @activity.defn
    async def finish_goal(self, record: FinishGoal) -> None:
        """Store a goal's final status and report; retire the idle agents provisioned for it."""
        async with self.pool.acquire() as connection, connection.transaction():
            was = await connection.fetchval(
                "SELECT status::text FROM goals WHERE goal_id = $1 FOR UPDATE", record.goal_id
            )
            await connection.execute(
                """
                UPDATE goals SET status = $2, report = $3, error = $4,
                       ended_at = coalesce(ended_at, now()), updated_at = now()
                WHERE goal_id = $1
                """,
                record.goal_id,
                record.status.value,
                record.report.model_dump(mode="json"),
                record.report.error,
            )
            await insert_event(connection, record.event)
            await connection.execute("SELECT goalkeeper_retire($1, NULL)", record.goal_id)
        if was == GoalStatus.RUNNING:  # a retry finds it ended, and counts nothing again
            metrics.goal_finished(metrics.activity_meter(), record.status)

    @activity.defn
    async def record_event(self, event: Event) -> None:
        """Append one event to the audit trail (rejections, notices)."""
        await insert_event(self.pool, event)

    @activity.defn
    async def record_events(self, events: list[Event]) -> None:
        """Append events to the audit trail in one transaction (refused messages, batched)."""
        async with self.pool.acquire() as connection, connection.transaction():
            for event in events:
                await insert_event(connection, event)
