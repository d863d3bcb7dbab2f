"""Agents' notes: posted through goalkeeper_agent_note (schema_notes.sql), which holds the
rules, and kept as the goal's `agent_note` events."""

from typing import Any

import asyncpg

from goalkeeper.errors import GoalkeeperError
from goalkeeper.limits import MAX_NOTES_PER_ASSIGNMENT


class NoteRefused(GoalkeeperError):
    """A note PostgreSQL would not take, with its reason; `status` is the HTTP answer's."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


REFUSALS: dict[type[asyncpg.PostgresError], int] = {
    asyncpg.InsufficientPrivilegeError: 403,
    asyncpg.NoDataFoundError: 404,
    asyncpg.ObjectNotInPrerequisiteStateError: 409,
    asyncpg.InvalidParameterValueError: 422,
}


async def post_note(pool: asyncpg.Pool, agent_id: str, assignment_id: str, text: str) -> int:
    """Post the agent's note on its active assignment; its number among the assignment's.

    Raises:
        NoteRefused: naming why (see REFUSALS; 429 past the assignment's limit).
    """
    try:
        number: int | None = await pool.fetchval(
            "SELECT goalkeeper_agent_note($1, $2::uuid, $3)", agent_id, assignment_id, text
        )
    except tuple(REFUSALS) as exc:
        raise NoteRefused(str(exc), REFUSALS[type(exc)]) from exc
    if number is None:
        raise NoteRefused(
            f"assignment {assignment_id} has its {MAX_NOTES_PER_ASSIGNMENT} notes: expected at "
            f"most {MAX_NOTES_PER_ASSIGNMENT} per attempt; the rest are refused (said once)",
            429,
        )
    return number


async def note_limits(pool: asyncpg.Pool) -> tuple[int, int]:
    """The longest note and the most notes per assignment, as PostgreSQL enforces them."""
    row = await pool.fetchrow("SELECT chars, per_assignment FROM goalkeeper_note_limits()")
    assert row is not None
    return row["chars"], row["per_assignment"]


async def latest_note(pool: asyncpg.Pool, goal_id: str) -> dict[str, Any] | None:
    """The goal's newest note: `task_id`, `agent_id`, `message`, `created_at`; None if none."""
    row = await pool.fetchrow(
        "SELECT task_id, agent_id, message, created_at FROM events "
        "WHERE goal_id = $1 AND kind = 'agent_note' ORDER BY seq DESC LIMIT 1",
        goal_id,
    )
    return dict(row) if row is not None else None
