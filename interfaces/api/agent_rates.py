"""Workspaces' token rates over the HTTP agent protocol: POST /api/v1/agent/token-rate.

An agent without a database login asks here before each model call, as one with a login
asks PostgreSQL: both go through goalkeeper_spend_tokens, so all of a workspace's agents
share its tokens-per-minute limit of a provider wherever they run. The workspace is the
credential's agent's, never the caller's to name.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body

from interfaces.api.agent_protocol import Agent
from interfaces.api.problems import Problem, answers
from interfaces.api.state import Pool
from store.token_rates import MAX_TOKENS_PER_MINUTE, RateRefused, check_provider, spend_tokens

router = APIRouter(prefix="/agent", tags=["agent protocol"])

TITLES = {403: "Not this login's agent", 404: "Unknown agent", 422: "Spend refused"}

SPEND = Body(
    description=(
        '`{"provider": "openai", "tokens": 1200}`: the model call\'s provider as pydantic-ai '
        f"names it and the tokens it will likely use, 1 to {MAX_TOKENS_PER_MINUTE}"
    ),
    examples=[{"provider": "openai", "tokens": 1200}],
)


@router.post("/token-rate")
@answers(
    {
        422: "a provider name or a number of tokens that is not one, or a call larger than "
        "the workspace's whole limit"
    }
)
async def spend(pool: Pool, agent: Agent, body: Annotated[dict[str, Any], SPEND]) -> dict[str, Any]:
    """Spend tokens of a provider under the agent's workspace's shared tokens-per-minute
    limit before a model call: `granted`, or the seconds to wait before asking again
    (nothing is spent meanwhile). Where no limit is set, always granted."""
    tokens = body.get("tokens")
    try:
        provider = check_provider(body.get("provider"))
    except RateRefused as exc:
        raise Problem(422, TITLES[422], str(exc)) from exc
    if not isinstance(tokens, int) or isinstance(tokens, bool):
        raise Problem(
            422,
            TITLES[422],
            f"expected `tokens`, a whole number from 1 to {MAX_TOKENS_PER_MINUTE}, got "
            f"{type(tokens).__name__ if tokens is not None else 'none'}",
        )
    if not 1 <= tokens <= MAX_TOKENS_PER_MINUTE:
        raise Problem(
            422,
            TITLES[422],
            f"expected `tokens` from 1 to {MAX_TOKENS_PER_MINUTE}, got {tokens}",
        )
    try:
        wait = await spend_tokens(pool, agent.agent_id, provider, tokens)
    except RateRefused as exc:
        raise Problem(exc.status, TITLES[exc.status], str(exc)) from exc
    return {"granted": wait <= 0, "wait_seconds": wait}
