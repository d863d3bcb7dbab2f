"""Runbooks in PostgreSQL: adding versions, reading them, and matching text against them."""

from typing import Any

import asyncpg

from goalkeeper.errors import InvalidRunbook
from goalkeeper.runbooks import (
    Runbook,
    RunbookMatch,
    RunbookParameter,
    RunbookRecord,
    check_runbook,
    score_match,
)
from store.rows import Connection


async def add_runbook(pool: asyncpg.Pool, runbook: Runbook) -> bool:
    """Store a runbook version; False when that exact version is already stored.

    Raises:
        InvalidRunbook: the version is stored with other content (versions never change).
    """
    body = runbook.model_dump(mode="json")
    async with pool.acquire() as connection, connection.transaction():
        stored = await connection.fetchval(
            "SELECT body FROM runbooks WHERE name = $1 AND version = $2 FOR UPDATE",
            runbook.name,
            runbook.version,
        )
        if stored is not None:
            if stored == body:
                return False
            latest = await connection.fetchval(
                "SELECT max(version) FROM runbooks WHERE name = $1", runbook.name
            )
            raise InvalidRunbook(
                runbook.name,
                f"runbook {runbook.name!r} version {runbook.version} is already stored with "
                f"other content; versions never change, so expected version {latest + 1}",
            )
        await connection.execute(
            """
            INSERT INTO runbooks (name, version, title, tags, body, document)
            VALUES ($1, $2, $3, $4, $5,
                    setweight(to_tsvector('english', $3 || ' ' || $6), 'A')
                    || setweight(to_tsvector('english', $7), 'B'))
            """,
            runbook.name,
            runbook.version,
            runbook.title,
            runbook.tags,
            body,
            " ".join(runbook.tags),
            runbook.document(),
        )
    return True


async def fetch_runbook(
    connection: Connection, name: str, version: int | None = None
) -> Runbook | None:
    """A stored runbook: the given version, or the latest; None when there is none."""
    body = await connection.fetchval(
        "SELECT body FROM runbooks WHERE name = $1 AND ($2::int IS NULL OR version = $2) "
        "ORDER BY version DESC LIMIT 1",
        name,
        version,
    )
    return None if body is None else check_runbook(body, f"stored runbook {name!r}")


_HISTORY = """
    LEFT JOIN LATERAL (
        SELECT count(*) AS runs,
               count(*) FILTER (WHERE g.status = 'completed') AS completed,
               count(*) FILTER (WHERE g.status = 'failed') AS failed
        FROM goals g WHERE g.spec->>'runbook' = l.name AND g.status <> 'rejected') h ON true
    LEFT JOIN LATERAL (
        SELECT count(f.rating) AS ratings, coalesce(sum(f.rating), 0) AS rating_sum
        FROM goals g JOIN feedback f ON f.goal_id = g.goal_id
        WHERE g.spec->>'runbook' = l.name AND g.status <> 'rejected') r ON true
"""
"""A runbook's success history (its goals, how they ended, how people rated them),
joined to `l`, the runbooks' latest versions."""


async def list_runbooks(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """The latest version of every runbook, with how many versions it has and its history."""
    rows = await pool.fetch(
        f"""
        WITH l AS (
            SELECT DISTINCT ON (name) name, version, title, tags, added_at,
                   count(*) OVER (PARTITION BY name) AS versions,
                   jsonb_array_length(body->'tasks') AS tasks
            FROM runbooks ORDER BY name, version DESC
        )
        SELECT l.*, h.runs, h.completed, h.failed, r.ratings, r.rating_sum
        FROM l {_HISTORY}
        ORDER BY l.name
        """
    )
    listed = []
    for row in rows:
        record = RunbookRecord.model_validate(dict(row))
        listed.append(
            {k: v for k, v in dict(row).items() if k != "rating_sum"}
            | {
                "success_rate": round(record.success_rate, 6),
                "average_rating": record.average_rating,
            }
        )
    return listed


async def match_runbooks(pool: asyncpg.Pool, text: str, limit: int = 5) -> list[RunbookMatch]:
    """Runbooks whose text shares words with `text`, best first, each with its score's parts.

    Any shared word counts (the query's words are OR-ed); full-text rank is weighed with
    the runbook's success history: the goals that used it, how they ended and how people
    rated them (`score_match`).
    """
    rows = await pool.fetch(
        f"""
        WITH q AS (
            SELECT nullif(replace(plainto_tsquery('english', $1)::text, ' & ', ' | '), '')
                   ::tsquery AS query
        ), l AS (
            SELECT DISTINCT ON (name) name, version, title, document,
                   body->>'description' AS description, body->'parameters' AS parameters
            FROM runbooks ORDER BY name, version DESC
        )
        SELECT l.name, l.version, l.title, l.description, l.parameters,
               ts_rank_cd(l.document, q.query, 32) AS text_rank,
               h.runs, h.completed, h.failed, r.ratings, r.rating_sum
        FROM l CROSS JOIN q {_HISTORY}
        WHERE l.document @@ q.query
        """,
        text,
    )
    matches = [
        score_match(
            name=row["name"],
            version=row["version"],
            title=row["title"],
            text_rank=float(row["text_rank"]),
            runs=row["runs"],
            completed=row["completed"],
            failed=row["failed"],
            ratings=row["ratings"],
            rating_sum=row["rating_sum"],
            description=row["description"] or "",
            parameters=[RunbookParameter.model_validate(p) for p in row["parameters"] or []],
        )
        for row in rows
    ]
    return sorted(matches, key=lambda m: (-m.score, m.name))[:limit]
