"""The HTTP agent protocol (/api/v1/agent/): an agent holding only its own credential
takes, heartbeats and reports its assignments; whatever else it sends is refused with
problem details, recorded, and loses nothing."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from goalkeeper import signing
from goalkeeper.models import AgentReport, GoalReport
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.agents import registry
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.keyring import key_for
from interfaces.stack import TemporalDevServer
from store.agent_credentials import new_credential, revoke_credential
from tests import web
from tests.helpers import PATIENCE, ROOT, events, eventually, goal_spec, start_goal, wait_task
from tests.starter import starter

BODY_LIMIT = 256 * 1024
PROBLEM = "application/problem+json"


@pytest.fixture
async def http(pool: asyncpg.Pool, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the test's stack, called in process at its root, its body limit 256 KiB."""
    app = create_app(Settings(api_max_body_bytes=BODY_LIMIT), pool=pool, client=client)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost/api/v1/agent") as http,
    ):
        yield http


async def agent_with_credential(
    pool: asyncpg.Pool, workspace: str, name: str, public_key: str | None = None
) -> tuple[str, dict[str, str]]:
    agent_id = f"{workspace}-{name}"
    await registry.register_agent(pool, agent_id, workspace, ["writing"], public_key=public_key)
    made = await new_credential(pool, agent_id)
    return agent_id, {"Authorization": f"Bearer {made['credential']}"}


async def next_assignment(http: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    """The agent's first active assignment, by long poll."""

    async def probe() -> dict[str, Any] | None:
        answer = await http.get("/assignments", params={"wait": 5}, headers=auth)
        assert answer.status_code == 200, answer.text
        found = answer.json()["assignments"]
        return found[0] if found else None

    return await eventually(probe, what="an assignment over HTTP")


def refused(answer: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    """The problem details of a refusal, checked for its status and words."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = answer.json()
    for word in words:
        assert word in problem["detail"], problem
    return problem


async def test_an_agent_over_http_takes_its_assignments_and_completes_a_goal(
    http: httpx.AsyncClient,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
) -> None:
    agent_id, auth = await agent_with_credential(pool, workspace, "http")
    me = await http.get("/me", headers=auth)
    assert me.json() == {"agent_id": agent_id, "workspace": workspace, "public_key": None}
    tasks = [
        {"id": "draft", "title": "Draft", "skill": "writing"},
        {"id": "edit", "title": "Edit", "skill": "writing", "depends_on": ["draft"]},
    ]
    goal = await start_goal(client, goal_spec(workspace=workspace, tasks=tasks), task_queue)

    draft = await next_assignment(http, auth)
    assert (draft["goal_id"], draft["task_id"], draft["attempt"]) == (goal.id, "draft", 1)
    assert draft["context"]["goal"]["description"] == "A goal made by a test"
    assert draft["context"]["task"]["title"] == "Draft"
    path = f"/assignments/{draft['assignment_id']}"
    beat = await http.post(f"{path}/heartbeat", headers=auth)
    assert beat.status_code == 200, beat.text
    # A large result is stored first, and its reference reported.
    large = {"text": "x" * 100_000}
    stored = await http.post(f"{path}/results", json=large, headers=auth)
    assert stored.status_code == 201, stored.text
    reference = stored.json()
    assert reference["$ref"].startswith("results/")
    done = await http.post(
        f"{path}/report",
        json={"outcome": "completed", "result": reference, "tokens_used": 5, "cost_usd": 0.01},
        headers=auth,
    )
    assert done.status_code == 200, done.text

    edit = await next_assignment(http, auth)
    assert edit["task_id"] == "edit"
    assert edit["context"]["dependency_results"] == {"draft": large}
    done = await http.post(
        f"/assignments/{edit['assignment_id']}/report",
        json={"outcome": "completed", "result": "edited"},
        headers=auth,
    )
    assert done.status_code == 200, done.text
    report = await asyncio.wait_for(goal.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert {t.agent_id for t in report.tasks} == {agent_id}
    assert not await events(pool, goal.id, "report_rejected")
    await registry.take_offline(pool, [agent_id])


async def test_a_goal_that_requires_signatures_takes_only_the_agents_signed_messages(
    http: httpx.AsyncClient,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
) -> None:
    key, public = signing.new_keys()
    agent_id, auth = await agent_with_credential(pool, workspace, "signer", public)
    spec = goal_spec(workspace=workspace, require_signatures=True)
    goal = await start_goal(client, spec, task_queue)
    work = await next_assignment(http, auth)
    path = f"/assignments/{work['assignment_id']}"

    # Unsigned, the API does not sign for the agent: both are refused at once, recorded.
    refused(await http.post(f"{path}/heartbeat", headers=auth), 409, "signatures are required")
    report: dict[str, Any] = {"outcome": "completed", "result": "memo", "tokens_used": 3}
    refused(await http.post(f"{path}/report", json=report, headers=auth), 409, "unsigned")

    at = datetime.now(UTC).isoformat()
    content = signing.heartbeat_content(goal.id, "t1", agent_id, work["assignment_id"], at)
    beat = {"at": at, "signature": signing.sign(key, content)}
    answer = await http.post(f"{path}/heartbeat", json=beat, headers=auth)
    assert answer.status_code == 200, answer.text

    full = AgentReport.model_validate(
        report | {"agent_id": agent_id, "assignment_id": work["assignment_id"]}
    )
    signature = signing.sign(key, signing.report_content(goal.id, "t1", full))
    answer = await http.post(f"{path}/report", json=report | {"signature": signature}, headers=auth)
    assert answer.status_code == 200, answer.text
    result = await asyncio.wait_for(goal.result(), PATIENCE)
    assert result.status is GoalStatus.COMPLETED

    kinds = {r["kind"] for r in await events(pool, goal.id) if "agent protocol" in r["message"]}
    assert kinds == {"report_rejected", "heartbeat_rejected"}
    await registry.take_offline(pool, [agent_id])


async def test_hostile_requests_are_refused_recorded_and_the_task_still_waits(
    http: httpx.AsyncClient,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
) -> None:
    agent_id, auth = await agent_with_credential(pool, workspace, "holder")
    other_id, other = await agent_with_credential(pool, workspace, "other")
    await registry.take_offline(pool, [other_id])  # it gets no work, but holds a credential
    goal = await start_goal(client, goal_spec(workspace=workspace), task_queue)
    work = await next_assignment(http, auth)
    path = f"/assignments/{work['assignment_id']}"
    report = {"outcome": "completed", "result": "forged"}

    # No credential, a wrong one, a person's token scheme, a revoked one.
    refused(await http.post(f"{path}/report", json=report), 401, "missing agent credential")
    wrong = {"Authorization": "Bearer gka_not-a-credential"}
    refused(await http.post(f"{path}/report", json=report, headers=wrong), 401, "unknown")
    revoked_id, revoked = await agent_with_credential(pool, workspace, "revoked")
    listed = await pool.fetchval(
        "SELECT credential_id::text FROM agent_credentials WHERE agent_id = $1", revoked_id
    )
    await revoke_credential(pool, listed)
    refused(await http.get("/assignments?wait=0", headers=revoked), 401, "revoked")
    refused(await http.post(f"{path}/report", json=report, headers=revoked), 401, "revoked")
    recorded = await pool.fetchval(
        "SELECT count(*) FROM events WHERE agent_id = $1 AND kind = 'credential_rejected'",
        revoked_id,
    )
    assert recorded == 1

    # Another agent's credential on this assignment, and a body naming another agent.
    refused(await http.post(f"{path}/report", json=report, headers=other), 403, "not agent")
    refused(await http.post(f"{path}/heartbeat", headers=other), 403, "not agent")
    named = report | {"agent_id": other_id}
    refused(await http.post(f"{path}/report", json=named, headers=auth), 403, "is not")
    # An assignment that does not exist, and one that is not an id at all.
    refused(await http.post(f"/assignments/{uuid.uuid4()}/report", json=report, headers=auth), 404)
    refused(await http.post("/assignments/nope/report", json=report, headers=auth), 404, "nope")
    # Malformed JSON, a body that is no object, an outcome the task does not know.
    broken = {**auth, "content-type": "application/json"}
    refused(await http.post(f"{path}/report", content=b'{"outcome": ', headers=broken), 400)
    refused(await http.post(f"{path}/report", json=["completed"], headers=auth), 400, "list")
    refused(
        await http.post(f"{path}/report", json={"outcome": "finished"}, headers=auth),
        409,
        "outcome",
    )
    # A body over the limit is refused unread.
    huge = {"outcome": "completed", "result": "x" * (BODY_LIMIT + 1)}
    refused(await http.post(f"{path}/report", json=huge, headers=auth), 413)

    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    assert view.assignment_id == work["assignment_id"] and view.result is None

    rejected = await events(pool, goal.id, "report_rejected")
    by_http = [r for r in rejected if "agent protocol" in r["message"]]
    assert {r["agent_id"] for r in by_http} == {agent_id, other_id}
    assert any("malformed JSON" in r["message"] for r in by_http)
    assert any("outcome" in r["message"] for r in by_http)
    assert await events(pool, goal.id, "heartbeat_rejected")

    # A failed attempt makes a new one; the first assignment's id is stale from then.
    failed = {"outcome": "failed", "error": "the draft was lost"}
    answer = await http.post(f"{path}/report", json=failed, headers=auth)
    assert answer.status_code == 200, answer.text
    await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    refused(await http.post(f"{path}/report", json=report, headers=auth), 409)
    refused(await http.post(f"{path}/heartbeat", headers=auth), 409)
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert view.result is None
    await registry.take_offline(pool, [agent_id, other_id, revoked_id])


async def result_while_running(
    result: Awaitable[GoalReport], process: subprocess.Popen[bytes], log: Path
) -> GoalReport:
    """The goal's report, unless the agent's process ends first (its log then says why)."""
    waiting = asyncio.ensure_future(result)

    watching = asyncio.ensure_future(asyncio.to_thread(process.wait))
    done, _ = await asyncio.wait(
        {waiting, watching}, timeout=PATIENCE, return_when=asyncio.FIRST_COMPLETED
    )
    watching.cancel()
    if waiting not in done:
        waiting.cancel()
        raise AssertionError(f"the agent ended or the goal did not: {log.read_text()}")
    return waiting.result()


async def test_agent_py_over_http_needs_no_database_login_nor_temporal_and_signs(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    database_url: str,
    temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    agent_id = f"{workspace}-process"
    # The process signs with its key on this machine, whose public half is registered.
    public = signing.public_key_of(key_for("agent", agent_id))
    await registry.register_agent(pool, agent_id, workspace, ["writing"], public_key=public)
    credential = (await new_credential(pool, agent_id))["credential"]
    settings = Settings(database_url=database_url, temporal_address=temporal_server.address)
    unreachable = {
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "TEMPORAL_ADDRESS": "127.0.0.1:9",
    }
    env = os.environ | unreachable | {"GOALKEEPER_AGENT_CREDENTIAL": credential}
    log = tmp_path / "agent.log"
    with web.serve(create_app(settings)) as url, log.open("wb") as out:
        command = [sys.executable, str(ROOT / "agent.py"), "--api", url, "--delay", "1.5-2"]
        process = subprocess.Popen(
            [*command, "--success-rate", "1"],
            env=env,
            stdout=out,
            stderr=out,
        )
        try:
            tasks = [
                {"id": "draft", "title": "Draft", "skill": "writing"},
                {"id": "edit", "title": "Edit", "skill": "writing", "depends_on": ["draft"]},
            ]
            spec = goal_spec(
                workspace=workspace,
                tasks=tasks,
                require_signatures=True,
                heartbeat_timeout_seconds=3,
            )
            goal = await start_goal(client, spec, task_queue)
            report = await result_while_running(goal.result(), process, log)
        finally:
            process.terminate()
            process.wait(30)
    said = log.read_text()
    assert report.status is GoalStatus.COMPLETED, said
    assert {t.agent_id for t in report.tasks} == {agent_id}
    rejected = [r["kind"] for r in await events(pool, goal.id) if r["kind"].endswith("_rejected")]
    assert rejected == [], said
    assert said.count("reported completed") == 2 and "refused" not in said, said
    await registry.take_offline(pool, [agent_id])


async def test_credentials_are_made_listed_and_revoked_from_the_cli(
    http: httpx.AsyncClient, pool: asyncpg.Pool, database_url: str, workspace: str, tmp_path: Path
) -> None:
    agent_id = f"{workspace}-cli"
    await registry.register_agent(pool, agent_id, workspace, ["writing"])
    unknown = await starter(database_url, "agent", "credential", "new", f"{workspace}-nobody")
    assert unknown.code == 2 and "no agent" in unknown.err
    made = (await starter(database_url, "agent", "credential", "new", agent_id, "--json")).json()
    assert made["credential"].startswith("gka_") and made["workspace"] == workspace
    auth = {"Authorization": f"Bearer {made['credential']}"}
    assert (await http.get("/me", headers=auth)).json()["agent_id"] == agent_id
    listed = await starter(database_url, "agent", "credential", "list", "--agent", agent_id)
    assert made["credential_id"] in listed.out and made["credential"] not in listed.out
    stored = await pool.fetchval(
        "SELECT count(*) FROM agent_credentials WHERE credential_hash = $1", made["credential"]
    )
    assert stored == 0  # only its hash is kept
    # Written to a file instead, once: the agent keeps it on the next call.
    into = tmp_path / "credentials"
    for made_now in (True, False):
        written = await starter(
            database_url, "agent", "credential", "new", agent_id, "--into", str(into), "--json"
        )
        assert written.code == 0 and written.json()["made"] is made_now, written.err
    assert (into / f"{agent_id}.credential").read_text().startswith("gka_")
    nobody = await starter(
        database_url, "agent", "credential", "new", f"{workspace}-nobody", "--into", str(into)
    )
    assert nobody.code == 2 and not (into / f"{workspace}-nobody.credential").exists()
    revoked = await starter(database_url, "agent", "credential", "revoke", made["credential_id"])
    assert revoked.code == 0, revoked.err
    refused(await http.get("/me", headers=auth), 401, "revoked")
    await registry.take_offline(pool, [agent_id])


async def test_assignments_stream_as_server_sent_events(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    database_url: str,
    temporal_server: TemporalDevServer,
) -> None:
    agent_id, auth = await agent_with_credential(pool, workspace, "streamed")
    settings = Settings(database_url=database_url, temporal_address=temporal_server.address)
    with web.serve(create_app(settings)) as url:
        async with (
            httpx.AsyncClient(base_url=f"{url}/api/v1/agent", timeout=PATIENCE) as http,
            http.stream("GET", "/assignments/stream", headers=auth) as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            # Made after the stream opened: it comes as the NOTIFY wakes the stream.
            goal = await start_goal(client, goal_spec(workspace=workspace), task_queue)
            lines = stream.aiter_lines()
            data = None
            async with asyncio.timeout(PATIENCE):
                async for line in lines:
                    if line.startswith("data: "):
                        data = json.loads(line.removeprefix("data: "))
                        break
            assert data is not None and (data["goal_id"], data["task_id"]) == (goal.id, "t1")
            done = await http.post(
                f"/assignments/{data['assignment_id']}/report",
                json={"outcome": "completed", "result": "streamed"},
                headers=auth,
            )
            assert done.status_code == 200, done.text
        report = await asyncio.wait_for(goal.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    await registry.take_offline(pool, [agent_id])


async def test_an_agent_registers_its_first_key_and_no_other(
    http: httpx.AsyncClient, pool: asyncpg.Pool, workspace: str
) -> None:
    agent_id, auth = await agent_with_credential(pool, workspace, "keyed")
    assert (await http.get("/me", headers=auth)).json()["public_key"] is None
    first, other = (signing.new_keys()[1] for _ in range(2))
    refused(await http.put("/key", json={"public_key": "AAAA"}, headers=auth), 422, "public_key")
    answer = await http.put("/key", json={"public_key": first}, headers=auth)
    assert answer.status_code == 200 and answer.json()["registered"] is True, answer.text
    again = await http.put("/key", json={"public_key": first}, headers=auth)
    assert again.status_code == 200 and again.json()["registered"] is False
    # Whoever else holds the credential cannot sign as the agent with a key of their own.
    refused(await http.put("/key", json={"public_key": other}, headers=auth), 409, "operator")
    assert (await http.get("/me", headers=auth)).json()["public_key"] == first
    kinds = await pool.fetch("SELECT kind FROM events WHERE agent_id = $1 ORDER BY seq", agent_id)
    assert [r["kind"] for r in kinds].count("key_registered") == 1
    assert [r["kind"] for r in kinds][-1] == "action_refused"
    refused(await http.put("/key", json={"public_key": first}), 401, "missing")
    await registry.take_offline(pool, [agent_id])
