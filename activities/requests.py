"""Requests in PostgreSQL: the question, how triage decided, and the goal it became."""

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from goalkeeper.limits import MAX_REJECTED_INPUT_CHARS
from goalkeeper.records import RecordRequest, TriageOutcome, UpdateRequest
from goalkeeper.requests import (
    RequestSpec,
    TriageAnswer,
    goal_from_triage,
    parse_triage,
    triage_goal_id,
)
from store.results import failing_visibly, resolve
from store.rows import Connection, insert_event


async def load_request(connection: Connection, request_id: str) -> RequestSpec | None:
    """A stored request's spec, or None when there is none."""
    spec = await connection.fetchval(
        "SELECT spec FROM requests WHERE request_id = $1 AND status <> 'rejected'", request_id
    )
    return None if spec is None else RequestSpec.model_validate(spec)


class RequestActivities:
    """Writes requests and reads their triage; holds the worker's connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def record_request(self, record: RecordRequest) -> None:
        """Store a request as it starts (or is rejected); a reused id starts a fresh row."""
        spec = record.spec
        question = spec.question if spec else str(record.raw)[:MAX_REJECTED_INPUT_CHARS]
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                """
                INSERT INTO requests (request_id, first_run_id, question, workspace, spec,
                                      status, error, ended_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7::text IS NULL THEN NULL
                                                         ELSE now() END)
                ON CONFLICT (request_id) DO UPDATE SET
                    first_run_id = EXCLUDED.first_run_id, question = EXCLUDED.question,
                    workspace = EXCLUDED.workspace, spec = EXCLUDED.spec,
                    status = EXCLUDED.status, error = EXCLUDED.error, kind = NULL,
                    answer = NULL, goal_id = NULL, reason = NULL,
                    ended_at = EXCLUDED.ended_at, updated_at = now()
                WHERE requests.first_run_id <> EXCLUDED.first_run_id
                """,
                record.request_id,
                record.run_id,
                question,
                spec.workspace if spec else "default",
                spec.model_dump(mode="json") if spec else {"submitted": record.raw},
                "triaging" if spec else "rejected",
                record.error,
            )
            await insert_event(connection, record.event)

    @activity.defn
    async def update_request(self, update: UpdateRequest) -> None:
        """Move a request on: triaged, answered, its goal started or ended."""
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                """
                UPDATE requests SET status = $3::request_status, kind = coalesce($4, kind),
                    answer = coalesce($5, answer), goal_id = coalesce($6, goal_id),
                    reason = coalesce($7, reason), error = coalesce($8, error),
                    ended_at = CASE WHEN $3::text IN ('answered', 'completed', 'failed', 'canceled')
                                    THEN now() END,
                    updated_at = now()
                WHERE request_id = $1 AND first_run_id = $2
                """,
                update.request_id,
                update.run_id,
                update.status.value,
                update.kind,
                update.answer,
                update.goal_id,
                update.reason,
                update.error,
            )
            await insert_event(connection, update.event)

    @activity.defn
    async def load_triage(self, request_id: str) -> TriageOutcome:
        """Triage's verdict on the request; a goal it proposes is stored, passed by reference."""
        raw = await self.pool.fetchval(
            "SELECT result FROM tasks WHERE goal_id = $1 AND task_id = 'triage' "
            "AND status = 'completed'",
            triage_goal_id(request_id),
        )
        request = await load_request(self.pool, request_id)
        with failing_visibly():
            triage = parse_triage(await resolve(self.pool, raw))
        if request is None or isinstance(triage, str):  # checked when reported: not expected
            raise ApplicationError(
                f"request {request_id!r} has no valid triage stored: {triage!r:.300}",
                type="InvalidRecord",
                non_retryable=True,
            )
        if isinstance(triage, TriageAnswer):
            return TriageOutcome(kind="answer", answer=triage.answer, reason=triage.reason)
        spec = goal_from_triage(triage, request)
        spec_ref = await self.pool.fetchval(
            "INSERT INTO goal_specs (spec_id, spec) VALUES (gen_random_uuid(), $1) "
            "RETURNING spec_id::text",
            spec,
        )
        title = spec.get("title")
        return TriageOutcome(
            kind="goal",
            reason=triage.reason,
            spec_ref=spec_ref,
            title=title if isinstance(title, str) else None,
        )
