"""Feedback kept in PostgreSQL: each with the attempt and agent whose work it is about."""

import uuid
from typing import Any

import asyncpg

from goalkeeper.feedback import FEEDBACK_GIVEN, Feedback, InvalidFeedback


async def give_feedback(pool: asyncpg.Pool, given: Feedback) -> dict[str, Any]:
    """Store a person's feedback and its `feedback_given` event; return the stored row.

    Feedback on a task is about its current (or final) attempt: the task's assignment
    and agent. Unknown goals and tasks are refused, naming them.
    """
    feedback_id = uuid.uuid4()
    async with pool.acquire() as connection, connection.transaction():
        if not await connection.fetchval("SELECT 1 FROM goals WHERE goal_id = $1", given.goal_id):
            raise InvalidFeedback(
                given.goal_id,
                f"no goal {given.goal_id!r} in the read model: expected a goal id from 'goal list'",
            )
        assignment_id = agent_id = None
        if given.task_id is not None:
            task = await connection.fetchrow(
                "SELECT assignment_id, agent_id FROM tasks WHERE goal_id = $1 AND task_id = $2",
                given.goal_id,
                given.task_id,
            )
            if task is None:
                raise InvalidFeedback(
                    given.task_id,
                    f"goal {given.goal_id!r} has no task {given.task_id!r}: expected one "
                    f"from 'goal tasks {given.goal_id}'",
                )
            assignment_id, agent_id = task["assignment_id"], task["agent_id"]
        row = await connection.fetchrow(
            """
            INSERT INTO feedback (feedback_id, goal_id, task_id, assignment_id, agent_id,
                                  person, rating, comment, source)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'person')
            RETURNING feedback_id::text, goal_id, task_id, assignment_id::text, agent_id,
                      person, rating, comment, source, created_at
            """,
            feedback_id,
            given.goal_id,
            given.task_id,
            assignment_id,
            agent_id,
            given.person,
            given.rating,
            given.comment,
        )
        about = f"task {given.task_id!r} of goal" if given.task_id else "goal"
        await connection.execute(
            "SELECT goalkeeper_event($1)",
            {
                "event_id": str(feedback_id),
                "kind": FEEDBACK_GIVEN,
                "goal_id": given.goal_id,
                "task_id": given.task_id,
                "agent_id": agent_id,
                "message": f"{given.person} rated {about} {given.goal_id!r} {given.rating} of 5",
                "detail": {
                    "feedback_id": str(feedback_id),
                    "person": given.person,
                    "rating": given.rating,
                    "comment": given.comment,
                    "assignment_id": None if assignment_id is None else str(assignment_id),
                },
            },
        )
    assert row is not None
    return dict(row)
