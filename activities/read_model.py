"""Activities that project goal and task state into PostgreSQL for dashboards and agents."""

import asyncpg
from temporalio import activity

from activities.rows import insert_event, write_task
from goalkeeper.records import Event, FinishGoal, RecordGoal, RecordRejectedGoal, RecordTask


class ReadModelActivities:
    """Writes goals, tasks and events; holds the worker's connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def record_goal(self, record: RecordGoal) -> None:
        """Store a started goal and its tasks as `pending`.

        A goal id reused after an earlier goal finished starts afresh: its old task
        rows are reset, while its events stay (the audit trail is append-only).
        """
        spec = record.spec
        async with self.pool.acquire() as connection, connection.transaction():
            previous_run = await connection.fetchval(
                "SELECT first_run_id FROM goals WHERE goal_id = $1 FOR UPDATE", record.goal_id
            )
            if previous_run is not None and previous_run != record.first_run_id:
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
                    ended_at = CASE WHEN goals.first_run_id = EXCLUDED.first_run_id
                                    THEN goals.ended_at END,
                    updated_at = now()
                """,
                record.goal_id,
                record.first_run_id,
                spec.title,
                spec.description,
                spec.workspace,
                spec.approvers,
                spec.model_dump(mode="json"),
            )
            await connection.executemany(
                """
                INSERT INTO tasks (goal_id, task_id, title, skill, requires_approval,
                                   approvers, depends_on)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (goal_id, task_id) DO NOTHING
                """,
                [
                    (
                        record.goal_id,
                        t.id,
                        t.title,
                        t.skill,
                        t.requires_approval,
                        spec.approvers_of(t) if t.requires_approval else [],
                        t.depends_on,
                    )
                    for t in spec.tasks
                ],
            )
            await insert_event(connection, record.event)

    @activity.defn
    async def record_rejected_goal(self, record: RecordRejectedGoal) -> None:
        """Store a goal whose spec was rejected, with the reason, so it cannot vanish silently."""
        raw = record.raw_spec if isinstance(record.raw_spec, dict) else {}
        title = raw.get("title") if isinstance(raw.get("title"), str) else record.goal_id
        workspace = raw.get("workspace") if isinstance(raw.get("workspace"), str) else "default"
        async with self.pool.acquire() as connection, connection.transaction():
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

    @activity.defn
    async def record_task(self, record: RecordTask) -> None:
        """Store a task's new state and, if given, the event that explains it."""
        async with self.pool.acquire() as connection, connection.transaction():
            await write_task(connection, record.task)
            if record.event is not None:
                await insert_event(connection, record.event)

    @activity.defn
    async def finish_goal(self, record: FinishGoal) -> None:
        """Store a goal's final status and report."""
        async with self.pool.acquire() as connection, connection.transaction():
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

    @activity.defn
    async def record_event(self, event: Event) -> None:
        """Append one event to the audit trail (rejections, notices)."""
        async with self.pool.acquire() as connection:
            await insert_event(connection, event)
