"""Agents' own credentials for the HTTP agent protocol: made, listed, revoked, and
resolved to the one agent (and workspace) they act for. Kept hashed, as API tokens are."""

import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from store.tokens import InvalidToken, token_hash

PREFIX = "gka_"
"""Every agent credential starts so: told apart from a person's token at a glance."""


class InvalidCredential(InvalidToken):
    """An agent credential that cannot be used: the message says why, never the credential."""


class RevokedCredential(InvalidCredential):
    """A credential that was revoked: names its id and agent, never the credential."""

    def __init__(self, message: str, credential_id: str, agent_id: str) -> None:
        super().__init__(message)
        self.credential_id, self.agent_id = credential_id, agent_id


@dataclass(frozen=True)
class CredentialHolder:
    """The agent a valid credential acts for."""

    credential_id: str
    agent_id: str
    workspace: str


async def new_credential(pool: asyncpg.Pool, agent_id: str) -> dict[str, Any]:
    """Make a credential for a registered agent; the answer is the only place its text
    ever appears."""
    workspace = await pool.fetchval("SELECT workspace FROM agents WHERE agent_id = $1", agent_id)
    if workspace is None:
        raise InvalidCredential(
            f"no agent {agent_id!r}: expected one registered with 'starter.py agent register'"
        )
    credential = PREFIX + secrets.token_urlsafe(32)
    row = await pool.fetchrow(
        "INSERT INTO agent_credentials (credential_id, agent_id, credential_hash) "
        "VALUES ($1, $2, $3) RETURNING credential_id::text, agent_id, created_at",
        uuid.uuid4(),
        agent_id,
        token_hash(credential),
    )
    assert row is not None
    return {**dict(row), "workspace": workspace, "credential": credential}


async def list_credentials(pool: asyncpg.Pool, agent_id: str | None = None) -> list[dict[str, Any]]:
    """Credentials' ids, agents and dates, newest first; never a credential or its hash."""
    rows = await pool.fetch(
        "SELECT credential_id::text, agent_id, created_at, revoked_at FROM agent_credentials "
        "WHERE $1::text IS NULL OR agent_id = $1 ORDER BY created_at DESC, credential_id",
        agent_id,
    )
    return [dict(r) for r in rows]


async def revoke_credential(pool: asyncpg.Pool, credential_id: str) -> dict[str, Any]:
    """Revoke a credential by its id; revoking it again keeps the first revocation's time."""
    try:
        parsed = uuid.UUID(credential_id)
    except ValueError:
        raise InvalidCredential(
            f"expected a credential id from 'agent credential list', got {credential_id!r}"
        ) from None
    row = await pool.fetchrow(
        "UPDATE agent_credentials SET revoked_at = coalesce(revoked_at, now()) "
        "WHERE credential_id = $1 RETURNING credential_id::text, agent_id, created_at, revoked_at",
        parsed,
    )
    if row is None:
        raise InvalidCredential(
            f"no credential {credential_id!r}: expected an id from 'agent credential list'"
        )
    return dict(row)


async def credential_holder(pool: asyncpg.Pool, credential: str) -> CredentialHolder:
    """The agent a credential acts for; an unknown or revoked one is refused, saying which.

    Looked up by its SHA-256 and compared again in constant time, as API tokens are.
    """
    wanted = token_hash(credential)
    row = await pool.fetchrow(
        "SELECT c.credential_id::text, c.credential_hash, c.agent_id, c.revoked_at, g.workspace "
        "FROM agent_credentials c JOIN agents g USING (agent_id) WHERE c.credential_hash = $1",
        wanted,
    )
    if row is None or not hmac.compare_digest(row["credential_hash"], wanted):
        raise InvalidCredential(
            "unknown agent credential: expected one made by 'starter.py agent credential new'"
        )
    if row["revoked_at"] is not None:
        raise RevokedCredential(
            f"the credential {row['credential_id']} of agent {row['agent_id']!r} was revoked at "
            f"{row['revoked_at'].isoformat()}",
            row["credential_id"],
            row["agent_id"],
        )
    return CredentialHolder(row["credential_id"], row["agent_id"], row["workspace"])
