"""PUT /api/v1/agent/key: an agent over HTTP registers its own first signing key, as an
agent registering itself in PostgreSQL does; only an operator replaces a key."""

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body

from goalkeeper.limits import MAX_EVENT_MESSAGE_CHARS, clip
from goalkeeper.records import Event, EventKind
from goalkeeper.signing import InvalidKey
from interfaces.api.agent_protocol import Agent
from interfaces.api.problems import Problem, answers
from interfaces.api.state import Pool
from store.keys import KeyAlreadySet, first_agent_key
from store.rows import insert_event

log = logging.getLogger("goalkeeper.api")

router = APIRouter(prefix="/agent", tags=["agent protocol"])


@router.put("/key")
@answers(
    {
        409: "the agent has another key already: only an operator replaces it (recorded)",
        422: "not a base64 Ed25519 public key",
    }
)
async def register_key(
    pool: Pool,
    agent: Agent,
    public_key: Annotated[
        str, Body(embed=True, max_length=64, description="base64 Ed25519 public key (32 bytes)")
    ],
) -> dict[str, Any]:
    """Make `public_key` the agent's key where it has none yet; the same key again is
    fine. A goal requiring signatures takes only what this key signed."""
    try:
        async with pool.acquire() as connection, connection.transaction():
            added = await first_agent_key(connection, agent.agent_id, public_key)
    except InvalidKey as exc:
        raise Problem(422, "Invalid key", f"public_key: {exc}") from exc
    except KeyAlreadySet as exc:
        # Someone with the credential tried to sign as the agent with a key of their own.
        await insert_event(
            pool,
            Event(
                event_id=str(uuid.uuid4()),
                kind=EventKind.ACTION_REFUSED,
                agent_id=agent.agent_id,
                message=clip(f"agent protocol refused a key: {exc}", MAX_EVENT_MESSAGE_CHARS),
                detail={"via": "http", "action": "register key"},
            ),
        )
        log.warning("agent protocol refused a key for %s: %s", agent.agent_id, exc)
        raise Problem(409, "Key already set", str(exc)) from exc
    return {"agent_id": agent.agent_id, "public_key": public_key, "registered": added}
