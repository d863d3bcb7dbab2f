"""Agents' notes over the HTTP agent protocol: POST /api/v1/agent/assignments/{id}/notes.

An agent says what it is doing while it works; the note joins its goal's trail (and so
the goal's page and event stream) through goalkeeper_agent_note, which holds the limits.
A note for another agent's assignment is refused and recorded, as other agent-protocol
refusals are; one past an assignment's limit is recorded once, by PostgreSQL.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body

from goalkeeper.limits import MAX_NOTE_CHARS, MAX_NOTES_PER_ASSIGNMENT
from goalkeeper.records import EventKind
from interfaces.api.agent_protocol import OWN_ASSIGNMENT, Agent, own_assignment
from interfaces.api.problems import Problem, answers
from interfaces.api.state import Pool
from store.notes import NoteRefused, post_note

router = APIRouter(prefix="/agent", tags=["agent protocol"])

TITLES = {
    403: "Not this agent's assignment",
    404: "Unknown assignment",
    409: "Assignment ended",
    422: "Note refused",
    429: "Too many notes",
}

NOTE = Body(
    description=f'`{{"text": "searching 3 sources"}}`: 1 to {MAX_NOTE_CHARS} characters',
    examples=[{"text": "searching 3 sources"}],
)


@router.post("/assignments/{assignment_id}/notes", status_code=201)
@answers(
    OWN_ASSIGNMENT
    | {
        409: "the assignment has ended",
        422: f"a note that is empty or longer than {MAX_NOTE_CHARS} characters",
        429: f"the assignment has {MAX_NOTES_PER_ASSIGNMENT} notes already (recorded once)",
    }
)
async def post_agent_note(
    pool: Pool,
    agent: Agent,
    assignment_id: str,
    body: Annotated[dict[str, Any], NOTE],
) -> dict[str, Any]:
    """Say what the agent is doing on its active assignment, for people watching the goal:
    the note joins the goal's event trail. Bounded in size and number per assignment."""
    row = await own_assignment(pool, agent, assignment_id, EventKind.NOTE_REJECTED)
    text = body.get("text")
    if not isinstance(text, str):
        raise Problem(
            422,
            TITLES[422],
            f"expected `text`, a string of 1 to {MAX_NOTE_CHARS} characters, got "
            f"{type(text).__name__ if text is not None else 'none'}",
        )
    try:
        number = await post_note(pool, agent.agent_id, row["assignment_id"], text)
    except NoteRefused as exc:
        raise Problem(exc.status, TITLES[exc.status], str(exc)) from exc
    return {"assignment_id": row["assignment_id"], "number": number}
