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


_REFERENCED = {
    "results/": ("SELECT body FROM results WHERE result_id = $1::uuid", "result"),
    "deliverables/": ("SELECT body FROM deliverables WHERE goal_id = $1", "deliverable"),
}
"""What a reference may point to: its prefix, the query that reads it, what it is."""


async def resolve(pool: asyncpg.Pool, value: Any) -> Any:
    """The content behind a reference, or the value itself if it is not one."""
    ref = value.get("$ref") if isinstance(value, dict) else None
    for prefix, (query, what) in _REFERENCED.items():
        if isinstance(ref, str) and ref.startswith(prefix):
            body = await pool.fetchval(query, ref.removeprefix(prefix))
            if body is None:
                raise LookupError(f"{what} {ref!r} is not in the {what}s table")
            return body
    return value
