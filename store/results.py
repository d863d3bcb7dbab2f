"""Results too large for workflow history, kept in PostgreSQL and passed by reference.

An agent stores such a result for its own assignment (goalkeeper_store_result, which
picks a random id) and reports `{"$ref": "results/<id>", "bytes": N, "sha256": "<hex>"}`,
the digest of the content as stored; the task checks the reference before the result
counts (`reference_problem`), and whoever needs the content resolves it. A task that is a
goal has its sub-goal's deliverable as result: `{"$ref": "deliverables/<goal>"}`.
"""

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
from temporalio.exceptions import ApplicationError

from goalkeeper.errors import GoalkeeperError
from goalkeeper.references import DELIVERABLES, REF, RESULTS, Reference, holds_reference
from goalkeeper.signing import digest

INLINE_LIMIT = 64 * 1024
"""Results larger than this, as JSON, are stored and sent by reference. Below the task
workflow's own inline limit, so agent.py never sends a result it would reject."""


class UnresolvedReference(GoalkeeperError, LookupError):
    """A reference whose content cannot be read, or is not what the reference says."""

    def __init__(self, ref: str, message: str) -> None:
        super().__init__(message)
        self.ref = ref


async def by_reference(pool: asyncpg.Pool, assignment_id: str, result: Any) -> Any:
    """The result itself if small, else a reference to it, stored for the assignment (as
    is a result holding a `$ref` key, such as a JSON Schema, at any size).

    The digest is of the content as PostgreSQL gives it back, which is what the task
    checks and approvers see (jsonb may respell numbers).
    """
    if len(json.dumps(result)) <= INLINE_LIMIT and not holds_reference(result):
        return result  # one holding a `$ref` key is stored, for inline it would be refused
    return await stored(pool, assignment_id, result)


async def stored(pool: asyncpg.Pool, assignment_id: str, result: Any) -> dict[str, Any]:
    """Store a result for the assignment, whatever its size; the reference to report."""
    size = len(json.dumps(result))
    row = await pool.fetchrow(
        "SELECT result_id::text, body FROM goalkeeper_store_result($1, $2)",
        uuid.UUID(assignment_id),
        result,
    )
    assert row is not None  # the function returns a row or raises
    return {"$ref": f"{RESULTS}{row['result_id']}", "bytes": size, "sha256": digest(row["body"])}


async def reference_problem(
    pool: asyncpg.Pool, reference: Reference, assignment_id: str | None
) -> str | None:
    """Why a reported reference may not count: not stored, stored for another assignment
    than the report's, or holding other content than its digest names."""
    row = await pool.fetchrow(
        "SELECT assignment_id::text, body FROM results WHERE result_id = $1::uuid",
        reference.result_id,
    )
    if row is None:
        return f"result {reference.ref!r} is not stored: expected one stored for this assignment"
    if row["assignment_id"] != assignment_id:
        return (
            f"result {reference.ref!r} was stored for assignment {row['assignment_id']}, "
            f"expected one stored for this report's assignment {assignment_id}"
        )
    found = digest(row["body"])
    if found != reference.sha256:
        return (
            f"result {reference.ref!r} holds content of sha256 {found}, "
            f"expected the {reference.sha256} its reference names"
        )
    return None


_REFERENCED = {
    RESULTS: ("SELECT body FROM results WHERE result_id = $1::uuid", "result"),
    DELIVERABLES: ("SELECT body FROM deliverables WHERE goal_id = $1", "deliverable"),
}
"""What a reference may point to: its prefix, the query that reads it, what it is."""


async def resolve(pool: asyncpg.Pool, value: Any) -> Any:
    """The content behind a reference, or the value itself if it is not one.

    Raises:
        UnresolvedReference: naming the reference, when its content is not there (or not
            readable by this login), or is not the content its sha256 names.
    """
    ref = value.get(REF) if isinstance(value, dict) else None
    if ref is None:
        return value
    for prefix, (query, what) in _REFERENCED.items():
        if isinstance(ref, str) and ref.startswith(prefix):
            key = ref.removeprefix(prefix)
            try:
                body = await pool.fetchval(query, key)
            except asyncpg.DataError:  # not a uuid
                body = None
            if body is None:
                raise UnresolvedReference(ref, f"{what} {ref!r} is not in the {what}s table")
            sha256 = value.get("sha256")
            if sha256 is not None and digest(body) != sha256:
                raise UnresolvedReference(
                    ref, f"{what} {ref!r} does not hold the content of sha256 {sha256!r:.80}"
                )
            return body
    raise UnresolvedReference(
        str(ref),
        f"expected a reference to 'results/<id>' or 'deliverables/<goal>', got {ref!r:.200}",
    )


@contextlib.contextmanager
def failing_visibly() -> Iterator[None]:
    """In an activity: a reference that cannot be resolved fails it for good, naming the
    reference, for retrying cannot make the content appear."""
    try:
        yield
    except UnresolvedReference as exc:
        raise ApplicationError(
            str(exc), exc.ref, type="UnresolvedReference", non_retryable=True
        ) from None
