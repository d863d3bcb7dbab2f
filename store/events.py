"""A goal's audit events as a feed: those after a seq, and those just announced by NOTIFY."""

from typing import Any

import asyncpg

EVENTS_CHANNEL = "goalkeeper_events"
"""Where each new event of a goal is announced as "GOAL_ID SEQ" (schema_api.sql)."""

_COLUMNS = "seq, event_id::text, goal_id, task_id, agent_id, kind, message, detail, created_at"


def parse_notice(payload: str) -> tuple[str, int]:
    """The goal id and seq of an announced event; goal ids may hold spaces, seqs never."""
    goal_id, _, seq = payload.rpartition(" ")
    return goal_id, int(seq)


async def events_after(
    pool: asyncpg.Pool, goal_id: str, after: int, limit: int
) -> list[dict[str, Any]]:
    """A goal's events after `after`, oldest first, at most `limit`."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE goal_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        goal_id,
        after,
        limit,
    )
    return [dict(r) for r in rows]


async def events_by_seq(pool: asyncpg.Pool, goal_id: str, seqs: list[int]) -> list[dict[str, Any]]:
    """A goal's events of the given seqs, oldest first."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE goal_id = $1 AND seq = ANY($2::bigint[]) "
        "ORDER BY seq",
        goal_id,
        seqs,
    )
    return [dict(r) for r in rows]


async def latest_events(pool: asyncpg.Pool, goal_id: str, limit: int) -> list[dict[str, Any]]:
    """A goal's last `limit` events, newest first: the tail of its trail."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE goal_id = $1 ORDER BY seq DESC LIMIT $2",
        goal_id,
        limit,
    )
    return [dict(r) for r in rows]


async def trail(
    pool: asyncpg.Pool, goal_id: str, limit: int, kind: str | None = None, before: int | None = None
) -> list[dict[str, Any]]:
    """A goal's last `limit` events before seq `before` (of one `kind`, if given), oldest
    first: a page of its trail, read from its end."""
    rows = await pool.fetch(
        f"SELECT * FROM (SELECT {_COLUMNS} FROM events WHERE goal_id = $1 "
        "AND ($2::text IS NULL OR kind = $2) AND ($3::bigint IS NULL OR seq < $3) "
        "ORDER BY seq DESC LIMIT $4) page ORDER BY seq",
        goal_id,
        kind,
        before,
        limit,
    )
    return [dict(r) for r in rows]


async def awaits_retry(pool: asyncpg.Pool, goal_id: str, task_id: str) -> bool:
    """Whether the goal's approvers were asked to retry the failed task (`retry_requested`)
    and have not decided yet: the newest of those events about it is the question."""
    newest: str | None = await pool.fetchval(
        "SELECT kind FROM events WHERE goal_id = $1 AND task_id = $2 "
        "AND kind IN ('retry_requested', 'task_retried', 'decision_accepted') "
        "ORDER BY seq DESC LIMIT 1",
        goal_id,
        task_id,
    )
    return newest == "retry_requested"
