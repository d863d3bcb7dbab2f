"""Personal API tokens: made, listed, revoked, and resolved to the person they act as."""

import hashlib
import secrets
import uuid
from typing import Any

import asyncpg

from goalkeeper.errors import GoalkeeperError


class InvalidToken(GoalkeeperError):
    """A token or token id that cannot be used: the message says why, never the token."""


def token_hash(token: str) -> str:
    """The SHA-256 kept in place of a token, so a leaked table holds no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def new_token(pool: asyncpg.Pool, person: str) -> dict[str, Any]:
    """Make a token for `person`; the answer is the only place its text ever appears."""
    if not person.strip():
        raise InvalidToken(f"expected the name of the token's person (--as), got {person!r}")
    token = secrets.token_urlsafe(32)
    row = await pool.fetchrow(
        "INSERT INTO api_tokens (token_id, person, token_hash) VALUES ($1, $2, $3) "
        "RETURNING token_id::text, person, created_at",
        uuid.uuid4(),
        person.strip(),
        token_hash(token),
    )
    assert row is not None
    return {**dict(row), "token": token}


async def list_tokens(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every token's id, person and dates, newest first; never a token or its hash."""
    rows = await pool.fetch(
        "SELECT token_id::text, person, created_at, revoked_at FROM api_tokens "
        "ORDER BY created_at DESC, token_id"
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


async def token_person(pool: asyncpg.Pool, token: str) -> str:
    """The person a token acts as; an unknown or revoked token is refused, saying which."""
    row = await pool.fetchrow(
        "SELECT person, revoked_at FROM api_tokens WHERE token_hash = $1", token_hash(token)
    )
    if row is None:
        raise InvalidToken("unknown token: expected one made by 'starter.py token new'")
    if row["revoked_at"] is not None:
        raise InvalidToken(f"the token was revoked at {row['revoked_at'].isoformat()}")
    person: str = row["person"]
    return person
