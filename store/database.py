"""The PostgreSQL connection pool, the schema (applied idempotently at worker start) and
agents' logins."""

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from enum import StrEnum
from importlib import resources
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg

from goalkeeper.errors import GoalkeeperError
from goalkeeper.statuses import (
    AgentStatus,
    AssignmentStatus,
    GoalStatus,
    RequestStatus,
    TaskStatus,
)
from store.rows import Connection

ENUM_TYPES: dict[str, type[StrEnum]] = {
    "agent_status": AgentStatus,
    "task_status": TaskStatus,
    "goal_status": GoalStatus,
    "assignment_status": AssignmentStatus,
    "request_status": RequestStatus,
}
"""PostgreSQL enum types and the Python enums they are generated from."""

SCHEMA_FILES = (
    "schema.sql",
    "schema_costs.sql",
    "schema_learning.sql",
    "schema_api.sql",
    "schema_agent_api.sql",
    "schema_security.sql",
    "schema_roles.sql",
    "schema_notes.sql",
    "schema_token_rates.sql",
    "schema_a2a.sql",
    "schema_a2a_tasks.sql",
    "schema_services.sql",
)
"""Applied in this order: the core read model, then costs, feedback and suggestions, then
agents' records and learning (whose triggers watch the tables before it), then the HTTP
API's tokens, then agents' and approvers' keys, then what agents' logins may do, then what
services' logins may do (last: they grant on what the others made)."""

AGENT_ROLE = "goalkeeper_agent"
"""The NOLOGIN role whose members are agents' logins: what they may do is in
schema_roles.sql."""

LOGIN_CAPACITY_LIMIT = 100
"""The most assignments at once an agents' login may give one agent it registers
(goalkeeper_login_capacity_limit() in schema_roles.sql, which enforces it)."""

AGENT_ENTRY = "goalkeeper_register_agent(text, text, text[], integer, jsonb, text, text)"
"""The function an agent calls first; it exists once a worker has applied the schema."""

_SCHEMA_LOCK = 0x60A1_CEE9
"""Advisory lock id: workers starting together apply the schema one at a time."""


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections decode jsonb to Python values.

    Connections go back to the pool without asyncpg's reset query (a round trip per
    use): Goalkeeper changes no session state outside a transaction, and whoever
    LISTENs removes its own listener.
    """
    return await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset: see `create_pool`."""


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )


async def apply_schema(pool: asyncpg.Pool) -> None:
    """Create or update the enum types, tables, indexes and views."""
    files = resources.files("store")
    schema = "\n".join(files.joinpath(name).read_text() for name in SCHEMA_FILES)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
        for type_name, enum in ENUM_TYPES.items():
            exists = await connection.fetchval(
                "SELECT 1 FROM pg_type WHERE typname = $1", type_name
            )
            if not exists:
                labels = ", ".join(f"'{member.value}'" for member in enum)
                await connection.execute(f"CREATE TYPE {type_name} AS ENUM ({labels})")
            else:
                for member in enum:
                    await connection.execute(
                        f"ALTER TYPE {type_name} ADD VALUE IF NOT EXISTS '{member.value}'"
                    )
        await connection.execute(schema)


async def owns_schema(pool: asyncpg.Pool) -> bool:
    """Whether this login owns the schema (or may act as its owner), so it applies it; a
    service's own login (goalkeeper_worker) only uses what the owner applied."""
    owner: bool = await pool.fetchval(
        "SELECT pg_has_role(n.nspowner, 'USAGE') FROM pg_namespace n "
        "WHERE n.nspname = current_schema()"
    )
    return bool(owner)


async def schema_applied(pool: asyncpg.Pool) -> bool:
    """Whether a Goalkeeper schema is there (its owner applied it)."""
    applied: bool = await pool.fetchval("SELECT to_regprocedure($1) IS NOT NULL", AGENT_ENTRY)
    return applied


async def agent_access(pool: asyncpg.Pool) -> bool | None:
    """Whether this login may act for agents; None while the schema they need is missing
    (or older than this code): a worker creates it, agents never do."""
    allowed: bool | None = await pool.fetchval(
        """
        SELECT CASE WHEN to_regprocedure($1) IS NOT NULL
                    THEN has_function_privilege($1, 'EXECUTE') END
        """,
        AGENT_ENTRY,
    )
    return allowed


class InvalidAgentLogin(GoalkeeperError):
    """An agents' login that cannot be made or dropped: the message says why."""


_LOGIN_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,62}")


def check_login_name(name: str) -> str:
    """The name if it is a plain lowercase PostgreSQL role name that is not reserved."""
    if not _LOGIN_NAME.fullmatch(name) or name.startswith("pg_") or name == AGENT_ROLE:
        raise InvalidAgentLogin(
            f"expected a login name of lowercase letters, digits, '_', '.' or '-' (at most 63, "
            f"not starting with 'pg_', not {AGENT_ROLE!r}), got {name!r}"
        )
    return name


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """What PostgreSQL keeps of a password (SCRAM-SHA-256, as psql's \\password sends it):
    given instead of the password, which then reaches neither the server nor its logs."""
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def login_url(database_url: str, name: str, password: str) -> str:
    """`database_url` (the owner's) with the login `name` and its password instead."""
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("user", "password")]
    return urlunsplit(
        parts._replace(
            netloc=f"{quote(name, safe='')}:{quote(password, safe='')}@{host}",
            query=urlencode(query, safe="/"),
        )
    )


def check_workspaces(workspaces: Sequence[str]) -> list[str]:
    """The workspaces a login is granted, each given once: at least one, none blank."""
    if not workspaces:
        raise InvalidAgentLogin(
            "expected one or more workspaces the login's agents serve (--workspace W), got none"
        )
    blank = [w for w in workspaces if not w.strip()]
    if blank:
        raise InvalidAgentLogin(f"expected a workspace name, got {blank[0]!r}")
    return list(dict.fromkeys(workspaces))


async def create_agent_login(
    pool: asyncpg.Pool, name: str, password: str, workspaces: Sequence[str]
) -> None:
    """Make `name` a login that may act for agents (a member of goalkeeper_agent) in
    `workspaces` only: it registers, adopts and claims agents there and nowhere else."""
    check_login_name(name)
    granted = check_workspaces(workspaces)
    try:
        async with pool.acquire() as connection, connection.transaction():
            # Role names and passwords cannot be parameters; the name is checked above and
            # the verifier is base64 and digits.
            await connection.execute(
                f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{scram_verifier(password)}' "
                f"IN ROLE {AGENT_ROLE}"
            )
            await _grant(connection, name, granted)
    except asyncpg.DuplicateObjectError:
        raise InvalidAgentLogin(f"a role {name!r} exists already; choose another name") from None
    except asyncpg.UndefinedObjectError:
        raise InvalidAgentLogin(
            f"no role {AGENT_ROLE!r} yet: start a worker once, which creates it"
        ) from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise InvalidAgentLogin(f"cannot make login {name!r}: {exc}") from None


async def _grant(connection: Connection, name: str, workspaces: list[str]) -> list[str]:
    """Add `workspaces` to those login `name` serves; all it serves now."""
    served: list[str] = await connection.fetchval(
        """
        INSERT INTO agent_logins AS l (login, workspaces) VALUES ($1, $2)
        ON CONFLICT (login) DO UPDATE SET
            workspaces = ARRAY(SELECT DISTINCT w FROM unnest(l.workspaces || $2) w ORDER BY w),
            granted_at = now()
        RETURNING workspaces
        """,
        name,
        workspaces,
    )
    return served


async def grant_workspaces(pool: asyncpg.Pool, name: str, workspaces: Sequence[str]) -> list[str]:
    """Let agents' login `name` serve `workspaces` too; all it serves now."""
    check_login_name(name)
    granted = check_workspaces(workspaces)
    is_agent_login = await agent_login(pool, name)
    if not is_agent_login:
        missing = f"no role {name!r}"
        raise InvalidAgentLogin(
            missing if is_agent_login is None else f"role {name!r} is not an agents' login"
        )
    return await _grant(pool, name, granted)


async def login_workspaces(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Each agents' login and the workspaces it serves (none: it may do nothing)."""
    rows = await pool.fetch(
        """
        SELECT r.rolname AS login, coalesce(l.workspaces, '{}') AS workspaces
        FROM pg_roles r
        JOIN pg_auth_members m ON m.member = r.oid AND m.roleid = to_regrole($1)
        LEFT JOIN agent_logins l ON l.login = r.rolname
        WHERE r.rolcanlogin ORDER BY r.rolname
        """,
        AGENT_ROLE,
    )
    return {r["login"]: list(r["workspaces"]) for r in rows}


async def agent_login(pool: asyncpg.Pool, name: str) -> bool | None:
    """Whether role `name` is an agents' login (a member of goalkeeper_agent); None: no role."""
    is_agent_login: bool | None = await pool.fetchval(
        """
        SELECT r.rolcanlogin AND NOT r.rolsuper AND EXISTS (
            SELECT 1 FROM pg_auth_members m
            WHERE m.member = r.oid AND m.roleid = to_regrole($2))
        FROM pg_roles r WHERE r.rolname = $1
        """,
        name,
        AGENT_ROLE,
    )
    return is_agent_login


async def drop_agent_login(pool: asyncpg.Pool, name: str) -> None:
    """Drop an agents' login: it connects no more, and its open connections may do nothing.

    Only a login that is a member of goalkeeper_agent, so no other role is dropped by it.
    The agents it registered stay registered to its name; its workspaces are forgotten, so
    a new login of that name serves only those it is granted.
    """
    check_login_name(name)
    is_agent_login = await agent_login(pool, name)
    if is_agent_login is None:
        raise InvalidAgentLogin(f"no role {name!r}")
    if not is_agent_login:
        raise InvalidAgentLogin(f"role {name!r} is not an agents' login; it is left as it is")
    try:
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(f'DROP ROLE "{name}"')
            await connection.execute("DELETE FROM agent_logins WHERE login = $1", name)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise InvalidAgentLogin(f"cannot drop login {name!r}: {exc}") from None
