"""Results too large for workflow history, kept in PostgreSQL and passed by reference.

A reference is `{"$ref": "results/<uuid>", "bytes": N}`; the task workflow carries it
like any result, and agents resolve it when a dependent task needs the content. A task
that is a goal has its sub-goal's deliverable as result: `{"$ref": "deliverables/<goal>"}`.
"""

import json
import uuid
from typing import Any

import asyncpg

INLINE_LIMIT = 64 * 1024
"""Results larger than this, as JSON, are stored and sent by reference. Below the task
workflow's own inline limit, so agent.py never sends a result it would reject."""


async def by_reference(pool: asyncpg.Pool, assignment_id: str, result: Any) -> Any:
    """The result itself if small, else a reference to where it is stored."""
    size = len(json.dumps(result))
    if size <= INLINE_LIMIT:
        return result
    result_id = str(uuid.uuid5(uuid.UUID(assignment_id), "result"))
    await pool.execute(
        """
        INSERT INTO results (result_id, assignment_id, body, bytes) VALUES ($1, $2, $3, $4)
        ON CONFLICT (result_id) DO NOTHING
        """,
        result_id,
        assignment_id,
        result,
        size,
    )
    return {"$ref": f"results/{result_id}", "bytes": size}


async def resolve(pool: asyncpg.Pool, value: Any) -> Any:
    """The content behind a reference, or the value itself if it is not one."""
    ref = value.get("$ref") if isinstance(value, dict) else None
    if isinstance(ref, str) and ref.startswith("deliverables/"):
        body = await pool.fetchval(
            "SELECT body FROM deliverables WHERE goal_id = $1", ref.removeprefix("deliverables/")
        )
        if body is None:
            raise LookupError(f"deliverable {ref!r} is not in the deliverables table")
        return body
    if not isinstance(ref, str) or not ref.startswith("results/"):
        return value
    body = await pool.fetchval(
        "SELECT body FROM results WHERE result_id = $1::uuid", ref.removeprefix("results/")
    )
    if body is None:
        raise LookupError(f"result {ref!r} is not in the results table")
    return body
