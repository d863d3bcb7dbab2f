"""Workspaces' token rates: a tokens-per-minute limit per model provider that all of a
workspace's agents share, kept and enforced by PostgreSQL (schema_token_rates.sql), so
agents in any process or on any machine hold each other back."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from goalkeeper.errors import GoalkeeperError

PROVIDER = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A provider's name as `pydantic-ai` gives it (`openai`, `anthropic`, `google-gla`); the
schema checks the same."""

MAX_TOKENS_PER_MINUTE = 2_000_000_000
"""The largest limit (and spend) PostgreSQL's integer holds."""

MINUTE = 60.0


class RateRefused(GoalkeeperError):
    """A spend or a limit PostgreSQL would not take, with its reason; `status` is the HTTP
    answer's."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


REFUSALS: dict[type[asyncpg.PostgresError], int] = {
    asyncpg.InsufficientPrivilegeError: 403,
    asyncpg.NoDataFoundError: 404,
    asyncpg.InvalidParameterValueError: 422,
    asyncpg.ProgramLimitExceededError: 422,  # a call larger than the whole limit
}


@dataclass(frozen=True)
class TokenRate:
    """A workspace's limit on one provider's tokens."""

    workspace: str
    provider: str
    tokens_per_minute: int
    window_seconds: float
    set_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "provider": self.provider,
            "tokens_per_minute": self.tokens_per_minute,
            "window_seconds": self.window_seconds,
            "set_at": self.set_at.isoformat(),
        }


def check_provider(provider: Any) -> str:
    """The provider's name if it is one a limit may have; refused (422) naming it else."""
    if not isinstance(provider, str) or not PROVIDER.fullmatch(provider):
        shown = provider if isinstance(provider, str) and len(provider) <= 80 else None
        raise RateRefused(
            "expected a provider name of 1 to 64 lowercase letters, digits, '.', '_' or '-' "
            "as pydantic-ai names it (e.g. 'openai', 'anthropic'), got "
            + (repr(shown) if shown is not None else _described(provider)),
            422,
        )
    return provider


def _described(value: Any) -> str:
    if isinstance(value, str):
        return f"{len(value)} characters"
    return type(value).__name__


async def spend_tokens(pool: asyncpg.Pool, agent_id: str, provider: str, tokens: int) -> float:
    """Spend `tokens` of `provider` for the agent under its workspace's limit: 0.0 once
    granted (or where no limit is set), else the seconds to wait before asking again.

    Raises:
        RateRefused: naming why (see REFUSALS), e.g. a call larger than the whole limit.
    """
    try:
        wait: float = await pool.fetchval(
            "SELECT goalkeeper_spend_tokens($1, $2, $3)", agent_id, provider, tokens
        )
    except tuple(REFUSALS) as exc:
        raise RateRefused(str(exc), REFUSALS[type(exc)]) from exc
    except asyncpg.UndefinedFunctionError:
        return 0.0  # a schema from before token rates: none can be set yet
    return wait


async def set_token_rate(
    pool: asyncpg.Pool,
    workspace: str,
    provider: str,
    tokens_per_minute: int,
    window_seconds: float = MINUTE,
) -> TokenRate:
    """Set (or change) the workspace's limit on the provider; spends already in the window
    count against the new limit."""
    if not workspace.strip():
        raise RateRefused(f"expected a workspace name, got {workspace!r}", 422)
    check_provider(provider)
    if not 1 <= tokens_per_minute <= MAX_TOKENS_PER_MINUTE:
        raise RateRefused(
            f"expected 1 to {MAX_TOKENS_PER_MINUTE} tokens a minute, got {tokens_per_minute}",
            422,
        )
    row = await pool.fetchrow(
        """
        INSERT INTO token_rates AS r (workspace, provider, tokens_per_minute, window_seconds)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (workspace, provider) DO UPDATE SET
            tokens_per_minute = EXCLUDED.tokens_per_minute,
            window_seconds = EXCLUDED.window_seconds, set_at = now()
        RETURNING r.*
        """,
        workspace,
        provider,
        tokens_per_minute,
        window_seconds,
    )
    assert row is not None
    return TokenRate(**dict(row))


async def clear_token_rate(pool: asyncpg.Pool, workspace: str, provider: str) -> bool:
    """Lift the workspace's limit on the provider (and forget its spends); False if none."""
    cleared = await pool.fetchval(
        "DELETE FROM token_rates WHERE workspace = $1 AND provider = $2 RETURNING 1",
        workspace,
        provider,
    )
    return cleared is not None


async def token_rates(pool: asyncpg.Pool, workspace: str | None = None) -> list[TokenRate]:
    """The limits set, of one workspace or all, by workspace and provider."""
    rows = await pool.fetch(
        "SELECT * FROM token_rates WHERE $1::text IS NULL OR workspace = $1 "
        "ORDER BY workspace, provider",
        workspace,
    )
    return [TokenRate(**dict(row)) for row in rows]
