"""Agents' PostgreSQL logins: what agents need works, every other write is refused.

Roles are cluster-wide and the tests share one server: every login is the test's own
(a random name) and is dropped after it.
"""

import asyncio
import base64
import hmac
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client

import agent
from goalkeeper import signing
from goalkeeper.errors import GoalkeeperError
from goalkeeper.statuses import GoalStatus
from interfaces.agents import registry
from interfaces.agents.registry import RegistrationRefused
from interfaces.agents.runner import Work, WorkResult
from store import results
from store.database import (
    AGENT_ROLE,
    LOGIN_CAPACITY_LIMIT,
    create_agent_login,
    create_pool,
    drop_agent_login,
    grant_workspaces,
    login_url,
    scram_verifier,
)
from tests.helpers import PATIENCE, goal_spec, new_goal_id, one_row, running_agents, start_goal
from tests.starter import run_starter, starter


@asynccontextmanager
async def agent_login(
    pool: asyncpg.Pool, database_url: str, *workspaces: str
) -> AsyncIterator[asyncpg.Pool]:
    """A pool connected as a fresh agents' login serving `workspaces`, which is dropped
    afterwards."""
    name = f"test_agent_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(16)
    await create_agent_login(pool, name, password, workspaces)
    try:
        login = await create_pool(login_url(database_url, name, password), max_size=4)
        try:
            yield login
        finally:
            await login.close()
    finally:
        await drop_agent_login(pool, name)


@pytest.fixture
async def as_agent(
    pool: asyncpg.Pool, database_url: str, workspace: str
) -> AsyncIterator[asyncpg.Pool]:
    """An agents' login serving the test's workspace."""
    async with agent_login(pool, database_url, workspace) as login:
        yield login


def public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return base64.b64encode(raw).decode()


async def assignment_for(
    pool: asyncpg.Pool,
    agent_id: str,
    context: dict[str, object] | None = None,
    goal_id: str | None = None,
    task_id: str = "t1",
) -> tuple[str, str]:
    """An active assignment of `agent_id` on a new task `task_id` of `goal_id` (by default
    a goal of its own): (goal id, assignment id)."""
    assignment_id = str(uuid.uuid4())
    if goal_id is None:
        goal_id = new_goal_id()
        workspace = await pool.fetchval(
            "SELECT workspace FROM agents WHERE agent_id = $1", agent_id
        )
        await pool.execute(
            "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec) "
            "VALUES ($1, 'run', 'A goal', $2, '{}')",
            goal_id,
            workspace,
        )
    await pool.execute(
        "INSERT INTO tasks (goal_id, task_id, title, skill) VALUES ($1, $2, 'A task', 'data')",
        goal_id,
        task_id,
    )
    await pool.execute(
        "INSERT INTO assignments (assignment_id, goal_id, task_id, agent_id, attempt, context) "
        "VALUES ($1, $2, $3, $4, 1, $5)",
        uuid.UUID(assignment_id),
        goal_id,
        task_id,
        agent_id,
        context or {},
    )
    return goal_id, assignment_id


async def test_an_agent_login_registers_reads_heartbeats_and_stores_results(
    pool: asyncpg.Pool, as_agent: asyncpg.Pool, workspace: str
) -> None:
    agent_id, key = f"{workspace}-agent", public_key()
    login = await as_agent.fetchval("SELECT session_user")
    await registry.register_agent(
        as_agent, agent_id, workspace, ["data"], public_key=key, operator="alice"
    )
    await registry.register_agent(as_agent, agent_id, workspace, ["data"])  # coming back
    await registry.register_agent(as_agent, agent_id, workspace, ["data"], public_key=key)
    row = await one_row(pool, "SELECT * FROM agents WHERE agent_id = $1", agent_id)
    assert (row["login_role"], row["public_key"], row["operator"]) == (login, key, "alice")
    messages = await pool.fetch(
        "SELECT message, detail FROM events WHERE agent_id = $1 ORDER BY seq", agent_id
    )
    assert [m["message"].endswith(", with its key") for m in messages] == [True, False, False]
    assert messages[0]["detail"]["login"] == login

    # What it works from, by reference: the result its goal's task t1 counts (stored for
    # that task's assignment) and the deliverable of the goal's sub-goal.
    goal, other = await assignment_for(pool, agent_id)
    stored = await pool.fetchval(
        "SELECT result_id FROM goalkeeper_store_result($1, $2)", uuid.UUID(other), "earlier"
    )
    sub = f"{goal}/sub"
    await pool.execute(
        "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec) "
        "VALUES ($1, 'run', 'A sub-goal', $2, '{}')",
        sub,
        workspace,
    )
    await pool.execute(
        "INSERT INTO deliverables (goal_id, goal_run_id, body, bytes) VALUES ($1, 'r', 'doc', 3)",
        sub,
    )
    refs: dict[str, dict[str, object]] = {
        "t1": {"$ref": f"results/{stored}", "bytes": 9, "sha256": signing.digest("earlier")},
        "sub": {"$ref": f"deliverables/{sub}"},
    }
    await pool.execute(
        "UPDATE tasks SET status = 'completed', agent_id = $2, result = $3 "
        "WHERE goal_id = $1 AND task_id = 't1'",
        goal,
        agent_id,
        refs["t1"],
    )
    await pool.execute(
        "INSERT INTO tasks (goal_id, task_id, title, skill, status, subgoal_id, result) "
        "VALUES ($1, 'sub', 'A sub-goal', 'data', 'completed', $2, $3)",
        goal,
        sub,
        refs["sub"],
    )
    await pool.execute(
        "UPDATE assignments SET status = 'completed' WHERE assignment_id = $1", other
    )
    _, held = await assignment_for(pool, agent_id, {"dependency_results": refs}, goal, "t2")

    [inbox] = await registry.active_assignments(as_agent, [agent_id])
    assert (inbox["assignment_id"], inbox["context"]["dependency_results"]) == (held, refs)
    assert [await results.resolve(as_agent, ref) for ref in refs.values()] == ["earlier", "doc"]
    tampered = refs["t1"] | {"sha256": signing.digest("other content")}
    with pytest.raises(results.UnresolvedReference, match="does not hold the content"):
        await results.resolve(as_agent, tampered)

    beat = await registry.heartbeat(as_agent, agent_id, held, signature="c2lnbmVk")
    assert beat is not None
    signed_at = datetime.now(UTC) - timedelta(seconds=1)
    assert await registry.heartbeat(as_agent, agent_id, held, "c2ln", signed_at) == signed_at
    written = await one_row(
        pool,
        "SELECT last_heartbeat_at, heartbeat_signature FROM assignments WHERE assignment_id = $1",
        uuid.UUID(held),
    )
    assert tuple(written) == (signed_at, "c2ln")
    with pytest.raises(asyncpg.InvalidParameterValueError, match="ahead of the database"):
        await registry.heartbeat(as_agent, agent_id, held, "c2ln", signed_at + timedelta(hours=1))
    assert await registry.heartbeat(as_agent, agent_id, other) is None  # no longer its

    large = "x" * (results.INLINE_LIMIT + 1)
    reference = await results.by_reference(as_agent, held, large)
    assert reference == {
        "$ref": reference["$ref"],
        "bytes": len(large) + 2,
        "sha256": signing.digest(large),
    }
    again = await results.by_reference(as_agent, held, large)  # a retry: stored anew
    assert again["$ref"] != reference["$ref"] and again["sha256"] == reference["sha256"]
    assert await results.resolve(as_agent, reference) == large

    await registry.take_offline(as_agent, [agent_id])
    assert await pool.fetchval("SELECT status FROM agents WHERE agent_id = $1", agent_id) == (
        "offline"
    )


FORBIDDEN = [
    "CREATE TABLE agent_made (x int)",
    "CREATE FUNCTION agent_made() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "ALTER TABLE agents ADD COLUMN agent_made int",
    "DROP TABLE events",
    "INSERT INTO tasks (goal_id, task_id, title, skill) VALUES ('{goal}', 'x', 'x', 'x')",
    "UPDATE tasks SET status = 'completed' WHERE goal_id = '{goal}'",
    "DELETE FROM tasks WHERE goal_id = '{goal}'",
    "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec) "
    "VALUES ('x', 'x', 'x', 'x', jsonb_build_object())",
    "UPDATE goals SET status = 'completed' WHERE goal_id = '{goal}'",
    "DELETE FROM goals WHERE goal_id = '{goal}'",
    "INSERT INTO events (event_id, kind, message) VALUES (gen_random_uuid(), 'x', 'forged')",
    "UPDATE events SET message = 'forged'",
    "DELETE FROM events",
    "INSERT INTO approver_keys (approver, public_key) VALUES ('mallory', '{key}')",
    "UPDATE approver_keys SET public_key = '{key}'",
    "DELETE FROM approver_keys",
    "UPDATE agents SET public_key = '{key}' WHERE agent_id = '{mine}'",
    "UPDATE agents SET public_key = '{key}' WHERE agent_id = '{theirs}'",
    "UPDATE agents SET operator = 'mallory' WHERE agent_id = '{mine}'",
    "INSERT INTO agents (agent_id, workspace, skills) VALUES ('x', 'x', ARRAY['x'])",
    "DELETE FROM agents WHERE agent_id = '{theirs}'",
    "UPDATE assignments SET status = 'completed' WHERE assignment_id = '{held}'",
    "UPDATE assignments SET last_heartbeat_at = now() WHERE assignment_id = '{theirs_held}'",
    "INSERT INTO deliverables (goal_id, goal_run_id, body, bytes) VALUES ('{goal}', 'r', 'x', 1)",
    "UPDATE results SET body = '\"forged\"'",
    "DELETE FROM results",
    "INSERT INTO results (result_id, assignment_id, body, bytes) "
    "VALUES (gen_random_uuid(), '{theirs_held}', '\"forged\"', 8)",
    "INSERT INTO results (result_id, assignment_id, body, bytes) "
    "VALUES (gen_random_uuid(), '{held}', '\"not through the function\"', 8)",
    "SELECT goalkeeper_store_result('{theirs_held}', '\"forged\"')",
    "INSERT INTO workspace_budgets (workspace, monthly_usd, set_by) VALUES ('x', 1, 'x')",
    "INSERT INTO api_tokens (token_id, person, token_hash) VALUES (gen_random_uuid(), 'x', 'x')",
    "SELECT token_hash FROM api_tokens",
    "SELECT * FROM approver_keys",
    "SELECT * FROM assignments",
    "SELECT * FROM agents",
    "SELECT * FROM events",
    "SELECT * FROM tasks",
    "SELECT goalkeeper_event(jsonb_build_object('event_id', '{held}', 'kind', 'x'))",
    "SELECT goalkeeper_write_task(jsonb_build_object(), true)",
    "SELECT goalkeeper_end_assignment(jsonb_build_object('assignment_id', '{held}'))",
    "SELECT goalkeeper_release('{theirs}')",
]


async def test_an_agent_login_is_refused_everything_else(
    pool: asyncpg.Pool, database_url: str, as_agent: asyncpg.Pool, workspace: str
) -> None:
    mine, theirs, key = f"{workspace}-mine", f"{workspace}-theirs", public_key()
    await registry.register_agent(as_agent, mine, workspace, ["data"], public_key=key)
    async with agent_login(pool, database_url, workspace) as other:
        await registry.register_agent(other, theirs, workspace, ["data"])
        goal, held = await assignment_for(pool, mine)
        _, theirs_held = await assignment_for(pool, theirs, {"secret": "theirs"})
        names = {"goal": goal, "key": public_key(), "mine": mine, "theirs": theirs}
        names |= {"held": held, "theirs_held": theirs_held}
        async with as_agent.acquire() as connection:
            for statement in FORBIDDEN:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await connection.execute(statement.format(**names))

        with pytest.raises(RegistrationRefused, match=rf"'{mine}' already has a key.*agent rekey"):
            await registry.register_agent(
                as_agent, mine, workspace, ["data"], public_key=names["key"]
            )
        await registry.register_agent(as_agent, mine, workspace, ["data"], operator="alice")
        with pytest.raises(RegistrationRefused, match="operated by 'alice'"):
            await registry.register_agent(as_agent, mine, workspace, ["data"], operator="mallory")
        for taking in ({}, {"public_key": names["key"]}, {"config": {"prompt": "obey me"}}):
            with pytest.raises(RegistrationRefused, match=f"'{theirs}' belongs to another login"):
                await registry.register_agent(as_agent, theirs, workspace, ["data"], **taking)
        row = await one_row(pool, "SELECT * FROM agents WHERE agent_id = $1", theirs)
        assert (row["public_key"], row["config"]) == (None, {})
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="may not heartbeat"):
            await registry.heartbeat(as_agent, theirs, theirs_held)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="may not take it offline"):
            await registry.take_offline(as_agent, [theirs])
        inbox = await registry.active_assignments(as_agent, [mine, theirs])
        assert [r["agent_id"] for r in inbox] == [mine]
        await results.by_reference(other, theirs_held, "y" * (results.INLINE_LIMIT + 1))
        stored = await pool.fetchval(
            "SELECT result_id FROM results WHERE assignment_id = $1", uuid.UUID(theirs_held)
        )
        with pytest.raises(LookupError):  # not referred to by any assignment of its own
            await results.resolve(as_agent, {"$ref": f"results/{stored}"})
        assert await as_agent.fetchval("SELECT count(*) FROM results") == 0

    provisioned = f"{workspace}-auto"
    await pool.execute(
        "INSERT INTO agents (agent_id, workspace, skills, provisioned) "
        "VALUES ($1, $2, '{data}', true)",
        provisioned,
        workspace,
    )
    with pytest.raises(RegistrationRefused, match="provisioned by Goalkeeper"):
        await registry.register_agent(as_agent, provisioned, workspace, ["data"])


async def test_the_owner_may_not_change_a_key_by_registering_either(
    pool: asyncpg.Pool, workspace: str
) -> None:
    agent_id, key = f"{workspace}-agent", public_key()
    await registry.register_agent(pool, agent_id, workspace, ["data"], public_key=key)
    with pytest.raises(RegistrationRefused, match="only an operator may replace it"):
        await registry.register_agent(pool, agent_id, workspace, ["data"], public_key=public_key())
    assert await pool.fetchval("SELECT public_key FROM agents WHERE agent_id = $1", agent_id) == key
    assert (
        await pool.fetchval("SELECT login_role FROM agents WHERE agent_id = $1", agent_id) is None
    )


async def large_then_read(work: Work) -> WorkResult:
    """The first task's result is stored by reference; the second reads it back."""
    if work.task_id == "t1":
        return WorkResult(result="x" * (results.INLINE_LIMIT + 1))
    return WorkResult(result=f"read {len(work.context['dependency_results']['t1'])} characters")


async def test_agents_on_their_own_login_complete_a_goal(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool, as_agent: asyncpg.Pool
) -> None:
    spec = goal_spec(2, workspace)
    spec["tasks"][1]["depends_on"] = ["t1"]
    async with running_agents(client, as_agent, workspace, large_then_read):
        handle = await start_goal(client, spec, task_queue)
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    rows = await pool.fetch(
        "SELECT task_id, result FROM tasks WHERE goal_id = $1 ORDER BY task_id", handle.id
    )
    assert rows[0]["result"]["$ref"].startswith("results/")
    assert rows[1]["result"] == f"read {results.INLINE_LIMIT + 1} characters"


async def test_agents_wait_for_a_worker_to_make_the_schema_and_say_so(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "goalkeeper.agent")
    nowhere = await asyncpg.create_pool(
        database_url, min_size=1, max_size=1, server_settings={"search_path": "nowhere"}
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, stop.set)
    try:
        assert await agent.wait_for_schema(nowhere, stop) is False
    finally:
        await nowhere.close()
    assert "waiting for a worker to create it; start one with 'python worker.py'" in caplog.text


async def test_a_login_that_is_no_agents_is_told_how_to_get_one(
    pool: asyncpg.Pool, database_url: str
) -> None:
    name = f"test_plain_{uuid.uuid4().hex[:10]}"
    await pool.execute(f'CREATE ROLE "{name}" LOGIN')
    try:
        plain = await create_pool(login_url(database_url, name, "unused"), max_size=1)
        try:
            with pytest.raises(GoalkeeperError, match=f"'{name}' may not act for agents.*role new"):
                await agent.wait_for_schema(plain, asyncio.Event())
        finally:
            await plain.close()
    finally:
        await pool.execute(f'DROP ROLE "{name}"')


async def test_agent_role_new_prints_a_url_whose_password_alone_logs_in(
    pool: asyncpg.Pool, database_url: str
) -> None:
    name = f"test_cli_{uuid.uuid4().hex[:10]}"
    hba = Path(await pool.fetchval("SHOW hba_file"))
    trusting = hba.read_text()
    # This login, and only it, must give its password (the test server trusts the rest).
    hba.write_text(
        f"local all {name} scram-sha-256\nhost all {name} all scram-sha-256\n" + trusting
    )
    await pool.execute("SELECT pg_reload_conf()")
    try:
        bare = await starter(database_url, "agent", "role", "new", name)
        assert bare.code == 2 and "expected one or more --workspace W" in bare.err, bare.err
        assert await pool.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name) is None
        made = await starter(
            database_url, "agent", "role", "new", name, "--workspace", "acme", "--json"
        )
        assert made.code == 0, made.err
        url = made.json()["database_url"]
        assert made.json()["login"] == name and url.startswith(f"postgresql://{name}:")
        assert made.json()["workspaces"] == ["acme"]
        connection = await asyncpg.connect(url)
        try:
            assert await connection.fetchval("SELECT session_user") == name
            assert await connection.fetchval("SELECT pg_has_role($1, 'MEMBER')", AGENT_ROLE)
        finally:
            await connection.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(login_url(database_url, name, "wrong"))

        again = await starter(database_url, "agent", "role", "new", name, "--workspace", "x")
        assert again.code == 2 and f"a role '{name}' exists already" in again.err
        granted = await starter(
            database_url, "agent", "role", "grant", name, "--workspace", "beta", "--json"
        )
        assert granted.code == 0 and granted.json()["workspaces"] == ["acme", "beta"], granted.err
        listed = await starter(database_url, "agent", "role", "list", "--json")
        assert {"login": name, "workspaces": ["acme", "beta"]} in listed.json()
        refused = await starter(database_url, "agent", "role", "drop", "postgres")
        assert refused.code == 2 and "'postgres' is not an agents' login" in refused.err
        dropped = await starter(database_url, "agent", "role", "drop", name)
        assert dropped.code == 0, dropped.err
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
            await asyncpg.connect(url)
    finally:
        hba.write_text(trusting)
        await pool.execute("SELECT pg_reload_conf()")
        await pool.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_the_password_verifier_is_scram_sha_256_as_rfc_7677_computes_it() -> None:
    """RFC 7677's example: the server's signature proves the server key is right."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt, 4096)
    method, _, rest = verifier.partition("$")
    iterations_salt, _, keys = rest.partition("$")
    server_key = base64.b64decode(keys.split(":")[1])
    assert (method, iterations_salt) == ("SCRAM-SHA-256", "4096:W22ZaJ0SNY7soEsUEjb6gQ==")
    auth = (
        "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    signature = hmac.digest(server_key, auth.encode(), "sha256")
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_a_logins_url_is_the_owners_with_its_name_and_password() -> None:
    owner = "postgresql://o:secret@db:5432/gk?user=o&sslmode=require"
    assert login_url(owner, "a", "p/w") == "postgresql://a:p%2Fw@db:5432/gk?sslmode=require"
    embedded = "postgresql://postgres:@/postgres?host=/tmp/data/postgres"
    assert login_url(embedded, "a", "pw") == "postgresql://a:pw@/postgres?host=/tmp/data/postgres"


async def test_a_login_made_from_a_given_password_never_prints_it_and_may_exist(
    pool: asyncpg.Pool, database_url: str
) -> None:
    name = f"agents_{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(24)
    env = {"DATABASE_URL": database_url, "AGENTS_PASSWORD": password}
    args = ["agent", "role", "new", name, "--password-env", "AGENTS_PASSWORD", "--if-missing"]
    args += ["--workspace", "acme"]
    try:
        made = await run_starter(env, *args)
        assert made.code == 0, made.err
        assert password not in made.out + made.err and f"{name}:****@" in made.out
        again = await run_starter(env, *args, "--workspace", "beta")
        assert again.code == 0 and "exists already" in again.out, again.err
        assert "serving workspaces acme, beta" in again.out
        short = await run_starter(env | {"AGENTS_PASSWORD": "short"}, *args)
        assert short.code == 2 and "at least 16" in short.err and "short" not in short.err
    finally:
        await drop_agent_login(pool, name)


# Point by point, what an agents' login tried on PostgreSQL with its own credentials,
# outside its workspaces or beyond its capacity: each refused in the database.


async def test_a_login_registers_only_in_its_workspaces_with_a_bounded_capacity(
    pool: asyncpg.Pool, as_agent: asyncpg.Pool, workspace: str
) -> None:
    agent_id, elsewhere = f"{workspace}-agent", f"{workspace}-elsewhere"
    with pytest.raises(
        RegistrationRefused,
        match=rf"may register agents in workspace '{workspace}', got workspace '{elsewhere}'",
    ):
        await registry.register_agent(as_agent, agent_id, elsewhere, ["data"])
    limit = await pool.fetchval("SELECT goalkeeper_login_capacity_limit()")
    assert limit == LOGIN_CAPACITY_LIMIT
    for capacity in (limit + 1, 2**31 - 1):
        with pytest.raises(
            RegistrationRefused, match=rf"capacity between 1 and {limit}, got capacity {capacity}"
        ):
            await registry.register_agent(as_agent, agent_id, workspace, ["data"], capacity)
    assert await pool.fetchval("SELECT 1 FROM agents WHERE agent_id = $1", agent_id) is None

    await registry.register_agent(as_agent, agent_id, workspace, ["data"], limit)
    with pytest.raises(RegistrationRefused, match="capacity between 1"):  # coming back
        await registry.register_agent(as_agent, agent_id, workspace, ["data"], limit * 10)
    assert await pool.fetchval("SELECT capacity FROM agents WHERE agent_id = $1", agent_id) == (
        limit
    )
    await registry.register_agent(pool, agent_id, workspace, ["data"], limit * 10)  # the owner
    assert await pool.fetchval("SELECT capacity FROM agents WHERE agent_id = $1", agent_id) == (
        limit * 10
    )


async def test_a_login_cannot_take_or_move_an_agent_of_another_login_or_workspace(
    pool: asyncpg.Pool, database_url: str, workspace: str
) -> None:
    mine, other_ws = f"{workspace}-b", f"{workspace}-other"
    async with (
        agent_login(pool, database_url, workspace, mine) as login,
        agent_login(pool, database_url, other_ws) as other,
    ):
        name = await login.fetchval("SELECT session_user")
        ours, key = f"{workspace}-ours", public_key()
        await registry.register_agent(login, ours, workspace, ["data"], public_key=key)
        with pytest.raises(
            RegistrationRefused, match=rf"is in workspace '{workspace}'.*got workspace '{mine}'"
        ):
            await registry.register_agent(login, ours, mine, ["data"])

        # Another login's agent, with its key, in a workspace this login does not serve.
        theirs, their_key = f"{workspace}-theirs", public_key()
        await registry.register_agent(other, theirs, other_ws, ["data"], public_key=their_key)
        for ws in (workspace, other_ws):
            with pytest.raises(RegistrationRefused, match=r"belongs to another login|may register"):
                await registry.register_agent(login, theirs, ws, ["data"], public_key=public_key())
        assert not await registry.claim_provisioned(login, theirs, public_key())
        row = await one_row(pool, "SELECT * FROM agents WHERE agent_id = $1", theirs)
        assert (row["workspace"], row["public_key"], row["login_role"]) == (
            other_ws,
            their_key,
            await other.fetchval("SELECT session_user"),
        )

        # One the owner registered: claimed in its own workspace, if the login serves it.
        owned_there, owned_here = f"{workspace}-owned-there", f"{workspace}-owned-here"
        await registry.register_agent(pool, owned_there, other_ws, ["data"])
        await registry.register_agent(pool, owned_here, workspace, ["data"])
        for ws in (workspace, other_ws):
            with pytest.raises(RegistrationRefused, match=f"workspace '{other_ws}'"):
                await registry.register_agent(login, owned_there, ws, ["data"])
        assert (
            await pool.fetchval("SELECT login_role FROM agents WHERE agent_id = $1", owned_there)
            is None
        )
        await registry.register_agent(login, owned_here, workspace, ["data"])
        assert (
            await pool.fetchval("SELECT login_role FROM agents WHERE agent_id = $1", owned_here)
            == name
        )


async def test_a_login_claims_and_serves_provisioned_agents_of_its_workspaces_only(
    pool: asyncpg.Pool, database_url: str, as_agent: asyncpg.Pool, workspace: str
) -> None:
    other_ws = f"{workspace}-other"
    theirs, ours = f"auto-{workspace}-there", f"auto-{workspace}-here"
    for agent_id, ws in ((theirs, other_ws), (ours, workspace)):
        await pool.execute(
            "INSERT INTO agents (agent_id, workspace, skills, provisioned) "
            "VALUES ($1, $2, '{data}', true)",
            agent_id,
            ws,
        )
    _, their_work = await assignment_for(pool, theirs)
    _, our_work = await assignment_for(pool, ours)

    with pytest.raises(
        asyncpg.InsufficientPrivilegeError,
        match=rf"'{theirs}': login \S+ may claim provisioned agents in workspace "
        rf"'{workspace}', got workspace '{other_ws}'",
    ):
        await registry.claim_provisioned(as_agent, theirs, public_key())
    assert await pool.fetchval("SELECT public_key FROM agents WHERE agent_id = $1", theirs) is None
    assert await registry.active_assignments(as_agent, [theirs], other_ws) == []
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="may not heartbeat"):
        await registry.heartbeat(as_agent, theirs, their_work)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="may not take it offline"):
        await registry.take_offline(as_agent, [theirs])
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # row security: not its work
        await results.by_reference(as_agent, their_work, "y" * (results.INLINE_LIMIT + 1))

    key = public_key()
    assert await registry.claim_provisioned(as_agent, ours, key)
    inbox = await registry.active_assignments(as_agent, [], workspace)
    assert [(r["agent_id"], r["assignment_id"]) for r in inbox] == [(ours, our_work)]
    assert await registry.heartbeat(as_agent, ours, our_work) is not None
    # Another login of this workspace adopts it too, but its key stays the first.
    async with agent_login(pool, database_url, workspace) as other:
        assert not await registry.claim_provisioned(other, ours, public_key())
    assert await pool.fetchval("SELECT public_key FROM agents WHERE agent_id = $1", ours) == key


async def test_a_login_made_before_workspaces_serves_none_until_granted(
    pool: asyncpg.Pool, database_url: str, workspace: str
) -> None:
    name, password = f"test_old_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    await pool.execute(
        f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{scram_verifier(password)}' IN ROLE {AGENT_ROLE}"
    )
    try:
        old = await create_pool(login_url(database_url, name, password), max_size=1)
        try:
            with pytest.raises(RegistrationRefused, match=r"workspace none \(none is granted"):
                await registry.register_agent(old, f"{workspace}-a", workspace, ["data"])
            assert await grant_workspaces(pool, name, [workspace]) == [workspace]
            await registry.register_agent(old, f"{workspace}-a", workspace, ["data"])
        finally:
            await old.close()
    finally:
        await drop_agent_login(pool, name)
    assert await pool.fetchval("SELECT 1 FROM agent_logins WHERE login = $1", name) is None


async def test_agent_py_on_a_scoped_login_serves_its_workspace_and_adopts_there(
    client: Client,
    task_queue: str,
    pool: asyncpg.Pool,
    as_agent: asyncpg.Pool,
    workspace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOALKEEPER_KEY_DIR", str(tmp_path / "keys"))
    flags = ["--workspace", workspace, "--prefix", workspace, "--count", "1", "--capacity", "2"]
    flags += ["--skills", "writing", "--adopt-provisioned", "--delay", "0-0.2"]
    args = agent.parser().parse_args(flags)
    skills, agent_ids = ["writing"], [f"{workspace}-1"]
    stop = asyncio.Event()
    serving = asyncio.create_task(
        agent.serve(args, client, as_agent, agent_ids, skills, agent.hook_of(args), stop)
    )
    try:
        spec = goal_spec(2, workspace, require_signatures=True)
        spec["tasks"][1]["skill"] = "data"  # none of its agents has it: one is provisioned
        handle = await start_goal(client, spec, task_queue)
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    finally:
        stop.set()
        await serving
    assert report.status is GoalStatus.COMPLETED
    by_task = {t.task_id: t.agent_id for t in report.tasks}
    assert by_task["t1"] == agent_ids[0] and (by_task["t2"] or "").startswith("auto-")

    elsewhere = agent.parser().parse_args(["--workspace", f"{workspace}-other", "--count", "1"])
    refused = f"may register agents in workspace '{workspace}'"
    with pytest.raises(RegistrationRefused, match=refused):
        await agent.serve(
            elsewhere, client, as_agent, agent_ids, skills, agent.hook_of(elsewhere), stop
        )
