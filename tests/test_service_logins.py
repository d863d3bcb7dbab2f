"""Services that log in as other roles than the schema's owner (docker-compose.yml's
`worker` and `api`, members of goalkeeper_worker): they run goals, and change no schema.

Roles are cluster-wide and the tests share one server: the login is the test's own (a
random name) and is dropped after it; the group role stays, as compose's would.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from temporalio.client import Client

from goalkeeper.statuses import GoalStatus
from interfaces.agents.runner import SimulatedWork
from store.database import create_pool, login_url, owns_schema
from tests.helpers import PATIENCE, goal_spec, running_agents, start_goal
from tests.starter import starter
from worker import build_worker


@pytest.fixture
async def as_worker(worker_login: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool connected as a fresh member of goalkeeper_worker."""
    login = await create_pool(worker_login, max_size=8)
    try:
        yield login
    finally:
        await login.close()


async def test_a_worker_on_its_own_login_completes_a_goal(
    client: Client, pool: asyncpg.Pool, as_worker: asyncpg.Pool, workspace: str
) -> None:
    assert await owns_schema(pool) and not await owns_schema(as_worker)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    spec = goal_spec(3, workspace)
    spec["tasks"][2]["depends_on"] = ["t1", "t2"]
    work = SimulatedWork(success_rate=1.0, delay=(0.0, 0.2))
    async with (
        build_worker(client, as_worker, queue),
        running_agents(client, as_worker, workspace, work),
    ):
        handle = await start_goal(client, spec, queue)
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert await pool.fetchval("SELECT status::text FROM goals WHERE goal_id = $1", handle.id) == (
        "completed"
    )


SCHEMA_CHANGES = [
    "CREATE TABLE worker_made (x int)",
    "ALTER TABLE goals ADD COLUMN worker_made int",
    "DROP TABLE events",
    "CREATE OR REPLACE FUNCTION goalkeeper_event(e jsonb) RETURNS void LANGUAGE sql AS ''",
    "DROP POLICY results_agent_reads ON results",
    "ALTER TABLE results DISABLE ROW LEVEL SECURITY",
    "CREATE ROLE worker_made LOGIN",
    "GRANT goalkeeper_agent TO CURRENT_USER",
]


async def test_a_workers_login_changes_no_schema_and_makes_no_role(
    as_worker: asyncpg.Pool,
) -> None:
    async with as_worker.acquire() as connection:
        for statement in SCHEMA_CHANGES:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute(statement)


async def test_only_the_owner_applies_the_schema(
    as_worker: asyncpg.Pool, database_url: str
) -> None:
    login = await as_worker.fetchval("SELECT session_user")
    url = login_url(database_url, login, "unused")  # the test server trusts its logins
    refused = await starter(url, "schema", "apply")
    assert refused.code == 1 and f"login '{login}' does not own the schema" in refused.err
    applied = await starter(database_url, "schema", "apply", "--json")
    assert applied.code == 0 and "schema_services.sql" in applied.json()["applied"], applied.err
