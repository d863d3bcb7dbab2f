"""Personal API tokens: made, listed, revoked, and resolved to the person they act as and
the workspaces they may see."""

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from goalkeeper.errors import GoalkeeperError


class InvalidToken(GoalkeeperError):
    """A token or token id that cannot be used: the message says why, never the token."""


@dataclass(frozen=True)
class TokenHolder:
    """Whom a valid token acts as, and what it may see."""

    token_id: str
    person: str
    workspaces: frozenset[str] | None
    """The workspaces the token may see and act in; None for every workspace."""


def token_hash(token: str) -> str:
    """The SHA-256 kept in place of a token, so a leaked table holds no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def new_token(
    pool: asyncpg.Pool,
    person: str,
    workspaces: Sequence[str] = (),
    *,
    all_workspaces: bool = False,
) -> dict[str, Any]:
    """Make a token for `person` that sees `workspaces` (or, only when asked, all of them);
    the answer is the only place its text ever appears."""
    if not person.strip():
        raise InvalidToken(f"expected the name of the token's person (--as), got {person!r}")
    named = sorted({w.strip() for w in workspaces})
    if "" in named:
        raise InvalidToken(f"expected workspace names (--workspace W), got {list(workspaces)!r}")
    if bool(named) == all_workspaces:
        raise InvalidToken(
            "expected the workspaces the token may see: one or more --workspace W, or "
            f"--all-workspaces, not {'both' if named else 'neither'}"
        )
    token = secrets.token_urlsafe(32)
    row = await pool.fetchrow(
        "INSERT INTO api_tokens (token_id, person, token_hash, workspaces, all_workspaces) "
        "VALUES ($1, $2, $3, $4, $5) "
        "RETURNING token_id::text, person, workspaces, all_workspaces, created_at",
        uuid.uuid4(),
        person.strip(),
        token_hash(token),
        named,
        all_workspaces,
    )
    assert row is not None
    return {**dict(row), "token": token}


async def list_tokens(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every token's id, person, workspaces and dates, newest first; never a token or its
    hash."""
    rows = await pool.fetch(
        "SELECT token_id::text, person, workspaces, all_workspaces, created_at, revoked_at "
        "FROM api_tokens ORDER BY created_at DESC, token_id"
    )
    return [dict(r) for r in rows]


async def revoke_token(pool: asyncpg.Pool, token_id: str) -> dict[str, Any]:
    """Revoke a token by its id; revoking it again keeps the first revocation's time."""
    try:
        parsed = uuid.UUID(token_id)
    except ValueError:
        raise InvalidToken(f"expected a token id from 'token list', got {token_id!r}") from None
    row = await pool.fetchrow(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE token_id = $1 "
        "RETURNING token_id::text, person, created_at, revoked_at",
        parsed,
    )
    if row is None:
        raise InvalidToken(f"no token {token_id!r}: expected a token id from 'token list'")
    return dict(row)


async def token_holder(pool: asyncpg.Pool, token: str) -> TokenHolder:
    """Who holds a token and what it sees; an unknown or revoked token is refused, saying
    which.

    The table is searched by the token's SHA-256, so the time a lookup takes says nothing
    of the token itself; the hash found is compared again in constant time all the same.
    """
    wanted = token_hash(token)
    row = await pool.fetchrow(
        "SELECT token_id::text, token_hash, person, workspaces, all_workspaces, revoked_at "
        "FROM api_tokens WHERE token_hash = $1",
        wanted,
    )
    if row is None or not hmac.compare_digest(row["token_hash"], wanted):
        raise InvalidToken("unknown token: expected one made by 'starter.py token new'")
    if row["revoked_at"] is not None:
        raise InvalidToken(f"the token was revoked at {row['revoked_at'].isoformat()}")
    workspaces = None if row["all_workspaces"] else frozenset(row["workspaces"])
    return TokenHolder(row["token_id"], row["person"], workspaces)
