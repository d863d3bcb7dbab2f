"""Answering the question an A2A agent asks on a task: who may, how long an answer may be.
The CLI (`agent answer`) and the API answer through here, so both refuse alike."""

import asyncpg

from interfaces.a2a.member import MAX_ANSWER_CHARS
from store import a2a


class AnswerRefused(Exception):
    """An answer that cannot be given: `kind` says why (`too_long`, `no_task`,
    `not_approver`, `no_question`), the message names the value and what was expected."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


async def answer_question(
    pool: asyncpg.Pool, goal_id: str, task_id: str, text: str, person: str
) -> asyncpg.Record:
    """Answer the open question on a task as `person`, one of its or its goal's approvers."""
    if len(text) > MAX_ANSWER_CHARS:
        raise AnswerRefused(
            "too_long",
            f"expected an answer of at most {MAX_ANSWER_CHARS} characters, got {len(text)}",
        )
    approvers = await a2a.approvers_of(pool, goal_id, task_id)
    if approvers is None:
        raise AnswerRefused("no_task", f"no task {goal_id}/{task_id}")
    if person not in approvers:
        raise AnswerRefused(
            "not_approver",
            f"{person!r} may not answer on {goal_id}/{task_id}: expected one of its approvers "
            f"{', '.join(approvers) or '(none named)'}",
        )
    try:
        return await a2a.answer(pool, goal_id, task_id, text, person)
    except a2a.NoOpenQuestion as exc:
        raise AnswerRefused("no_question", str(exc)) from exc
