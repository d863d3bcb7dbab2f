"""Signing keys in PostgreSQL: approvers' and delegates' public keys, and agents' new keys."""

import uuid

import asyncpg

from goalkeeper.errors import GoalkeeperError
from goalkeeper.records import Event, EventKind
from goalkeeper.signing import check_public_key
from store.rows import Connection, insert_event


class UnknownSigner(GoalkeeperError):
    """An agent or approver with no such id, or no key where one is needed."""


class KeyAlreadySet(GoalkeeperError):
    """An agent that has a key already: only an operator replaces it."""


async def register_approver_key(
    connection: Connection, approver: str, public_key: str, *, delegate: bool = False
) -> None:
    """Make `public_key` the approver's (or a delegate's) key; an earlier one is kept, as
    replaced, so the trail says which key signed what when."""
    check_public_key(public_key)
    await connection.execute(
        "UPDATE approver_keys SET replaced_at = now() WHERE approver = $1 AND replaced_at IS NULL",
        approver,
    )
    await connection.execute(
        """
        INSERT INTO approver_keys (approver, public_key, delegate) VALUES ($1, $2, $3)
        ON CONFLICT (approver) DO UPDATE SET public_key = EXCLUDED.public_key,
            delegate = EXCLUDED.delegate, created_at = now(), replaced_at = NULL
        """,
        approver,
        public_key,
        delegate,
    )
    kind = "delegate" if delegate else "approver"
    await _event(connection, None, f"{kind} {approver!r} registered a new signing key")


async def ensure_delegate_key(pool: asyncpg.Pool, name: str, public_key: str) -> None:
    """Register a delegate's key (the dashboard's) unless it is already the current one."""
    current = await pool.fetchval(
        "SELECT public_key FROM approver_keys WHERE approver = $1 AND delegate "
        "AND replaced_at IS NULL",
        name,
    )
    if current != public_key:
        async with pool.acquire() as connection, connection.transaction():
            await register_approver_key(connection, name, public_key, delegate=True)


async def rekey_agent(
    connection: Connection, agent_id: str, public_key: str, operator: str
) -> None:
    """Replace an agent's key, as an operator; recorded with who did it."""
    check_public_key(public_key)
    done = await connection.fetchval(
        "UPDATE agents SET public_key = $2 WHERE agent_id = $1 RETURNING true", agent_id, public_key
    )
    if not done:
        raise UnknownSigner(f"no agent {agent_id!r}: expected a registered agent id")
    await _event(connection, agent_id, f"agent {agent_id!r} was given a new key by {operator!r}")


async def first_agent_key(connection: Connection, agent_id: str, public_key: str) -> bool:
    """Give an agent that has no key yet `public_key` (its first, trusted on first use as
    when it registers itself); True if it was set now, False if it was already the key.
    `KeyAlreadySet` if the agent has another key: only an operator replaces one."""
    check_public_key(public_key)
    current = await connection.fetchrow(
        "SELECT public_key FROM agents WHERE agent_id = $1 FOR UPDATE", agent_id
    )
    if current is None:
        raise UnknownSigner(f"no agent {agent_id!r}: expected a registered agent id")
    if current["public_key"] == public_key:
        return False
    if current["public_key"] is not None:
        raise KeyAlreadySet(
            f"agent {agent_id!r} already has another key; only an operator may replace it "
            "(starter.py agent rekey)"
        )
    await connection.execute(
        "UPDATE agents SET public_key = $2 WHERE agent_id = $1", agent_id, public_key
    )
    await _event(connection, agent_id, f"agent {agent_id!r} registered its first key over HTTP")
    return True


async def _event(connection: Connection, agent_id: str | None, message: str) -> None:
    await insert_event(
        connection,
        Event(
            event_id=str(uuid.uuid4()),
            kind=EventKind.KEY_REGISTERED,
            agent_id=agent_id,
            message=message,
        ),
    )
