"""A2A agents' questions, answered by a person: those the token's person may answer, and
an answer sent to the agent, refused alike by the CLI and the API (`interfaces.a2a`)."""

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from goalkeeper.limits import MAX_EVENT_MESSAGE_CHARS, clip
from goalkeeper.records import Event, EventKind
from interfaces.a2a.questions import AnswerRefused, answer_question
from interfaces.api.auth import Actor, act
from interfaces.api.goals import UNKNOWN_GOAL, known_goal
from interfaces.api.problems import Problem, answers
from interfaces.api.state import Pool
from store import a2a
from store.rows import insert_event

router = APIRouter(tags=["approvals"], dependencies=[act])

_STATUS = {"too_long": 422, "no_task": 404, "not_approver": 403, "no_question": 409}


class AnswerBody(BaseModel):
    """What the person answers to the agent's question."""

    answer: str


@router.get("/questions")
async def questions(pool: Pool, actor: Actor) -> list[dict[str, Any]]:
    """The questions A2A agents ask that the token's person may answer, oldest first."""
    assert actor.person is not None
    rows = await a2a.open_questions(pool, actor.person, actor.scope)
    return [dict(r) | {"question_id": str(r["question_id"])} for r in rows]


@router.post("/goals/{goal_id:path}/tasks/{task_id}/answer")
@answers(
    UNKNOWN_GOAL
    | {
        403: "the token's person is not an approver of the task or its goal",
        409: "no question waits for an answer on the task",
        422: "an answer longer than the limit",
    }
)
async def answer(
    pool: Pool, actor: Actor, goal_id: str, task_id: str, body: AnswerBody
) -> dict[str, Any]:
    """Answer the question an A2A agent asks on a task, as the token's person."""
    await known_goal(pool, actor, goal_id)
    assert actor.person is not None
    try:
        row = await answer_question(pool, goal_id, task_id, body.answer, actor.person)
    except AnswerRefused as exc:
        if exc.kind == "not_approver":
            await insert_event(
                pool,
                Event(
                    event_id=str(uuid.uuid4()),
                    kind=EventKind.ACTION_REFUSED,
                    message=f"answer by {actor.person!r} refused: "
                    f"{clip(str(exc), MAX_EVENT_MESSAGE_CHARS)}",
                    goal_id=goal_id,
                    task_id=task_id,
                    detail={"person": actor.person, "action": "answer"},
                ),
            )
        raise Problem(_STATUS[exc.kind], "Answer refused", str(exc)) from exc
    return {"question_id": str(row["question_id"]), "question": row["question"]}
