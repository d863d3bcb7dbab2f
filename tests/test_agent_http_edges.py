"""The HTTP agent protocol at its edges, over a real socket: bodies over the limit are
refused unread yet recorded against the agent that sent them, and an open long poll ends
cleanly when the API shuts down."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from goalkeeper.statuses import TaskStatus
from interfaces.agents import registry
from interfaces.agents.http_transport import HttpTransport
from interfaces.api.app import create_app
from interfaces.cli.serve import Dashboard
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer, free_port
from store.agent_credentials import new_credential, revoke_credential
from tests.helpers import eventually, goal_spec, start_goal, wait_task

BODY_LIMIT = 64 * 1024
PROBLEM = "application/problem+json"
LIMIT_WORDS = "GOALKEEPER_API_MAX_BODY_BYTES"


@dataclass
class Api:
    url: str
    app: FastAPI
    server: uvicorn.Server
    serving: "asyncio.Task[None]"


@asynccontextmanager
async def api_served(pool: asyncpg.Pool, client: Client) -> AsyncIterator[Api]:
    """The API served by uvicorn on a free port in this loop, on the test's connections."""
    app = create_app(Settings(api_max_body_bytes=BODY_LIMIT), pool=pool, client=client)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: asyncio.sleep(0, server.started), what="the API to listen")
    api = Api(f"http://127.0.0.1:{port}/api/v1/agent", app, server, serving)
    try:
        yield api
    finally:
        server.should_exit = True
        await serving


async def agent_with_credential(
    pool: asyncpg.Pool, workspace: str, name: str
) -> tuple[str, dict[str, str]]:
    agent_id = f"{workspace}-{name}"
    await registry.register_agent(pool, agent_id, workspace, ["writing"])
    made = await new_credential(pool, agent_id)
    return agent_id, {"Authorization": f"Bearer {made['credential']}"}


async def oversized_rows(pool: asyncpg.Pool, agent_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT kind, goal_id, task_id, message, detail FROM events "
        "WHERE agent_id = $1 AND message LIKE '%' || $2 || '%'",
        agent_id,
        LIMIT_WORDS,
    )
    return [dict(r) for r in rows]


def too_large(answer: httpx.Response) -> None:
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert LIMIT_WORDS in answer.json()["detail"]


async def chunks(size: int) -> AsyncIterator[bytes]:
    """A body sent chunked, with no Content-Length: counted as it streams in."""
    for _ in range(size // 8192 + 1):
        yield b"x" * 8192


async def test_an_oversized_body_is_refused_unread_and_recorded_against_its_agent(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    agent_id, auth = await agent_with_credential(pool, workspace, "big")
    stranger = {"Authorization": "Bearer gka_not-a-credential"}
    revoked_id, revoked = await agent_with_credential(pool, workspace, "gone")
    credential_id = await pool.fetchval(
        "SELECT credential_id::text FROM agent_credentials WHERE agent_id = $1", revoked_id
    )
    await revoke_credential(pool, credential_id)
    goal = await start_goal(client, goal_spec(1, workspace), task_queue)
    huge = b"x" * (BODY_LIMIT + 1)
    async with api_served(pool, client) as api, httpx.AsyncClient(base_url=api.url) as http:
        polled = await http.get("/assignments", params={"wait": 30}, headers=auth)
        (work,) = polled.json()["assignments"]
        path = f"/assignments/{work['assignment_id']}"
        report, beat = f"{path}/report", f"{path}/heartbeat"
        for _ in range(2):  # the same refusal twice is one row
            too_large(await http.post(report, content=huge, headers=auth))
        too_large(await http.post(beat, content=huge, headers=auth))
        too_large(
            await http.post(report, content=chunks(BODY_LIMIT + BODY_LIMIT // 2), headers=auth)
        )
        too_large(await http.post("/assignments/nope/results", content=huge, headers=auth))
        # Without a valid credential: nothing recorded, or the revoked one's one refusal.
        too_large(await http.post(report, content=huge, headers=stranger))
        too_large(await http.post(report, content=huge))
        for _ in range(2):
            too_large(await http.post(report, content=huge, headers=revoked))
        refused = await http.get("/me", headers=revoked)
        assert refused.status_code == 401

    rows = await oversized_rows(pool, agent_id)
    declared = f"got Content-Length {BODY_LIMIT + 1:,}"
    assert Counter((r["kind"], r["goal_id"], r["task_id"]) for r in rows) == {
        ("heartbeat_rejected", goal.id, "t1"): 1,
        ("report_rejected", goal.id, "t1"): 2,  # declared, and counted
        ("report_rejected", None, None): 1,  # no assignment of its own named: the agent's
    }
    assert sum(declared in r["message"] for r in rows) == 3
    assert any("bytes so far" in r["message"] for r in rows)
    assert {r["detail"]["limit"] for r in rows} == {BODY_LIMIT}
    assert all("/api/v1/agent/assignments/" in r["detail"]["path"] for r in rows)
    gone = await pool.fetch(
        "SELECT kind FROM events WHERE agent_id = $1 AND kind <> 'agent_registered'", revoked_id
    )
    assert [r["kind"] for r in gone] == ["credential_rejected"]
    strangers = await pool.fetchval(
        "SELECT count(*) FROM events WHERE agent_id IS NULL AND message LIKE '%' || $1 || '%'",
        LIMIT_WORDS,
    )
    assert strangers == 0
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    assert view.assignment_id == work["assignment_id"] and view.result is None
    await registry.take_offline(pool, [agent_id, revoked_id])


async def test_an_open_long_poll_is_answered_when_the_api_stops(
    pool: asyncpg.Pool, workspace: str, database_url: str, temporal_server: TemporalDevServer
) -> None:
    polling, auth = await agent_with_credential(pool, workspace, "polling")
    running, theirs = await agent_with_credential(pool, workspace, "running")
    streaming, watch = await agent_with_credential(pool, workspace, "streaming")
    settings = Settings(database_url=database_url, temporal_address=temporal_server.address)
    dashboard = Dashboard(settings, free_port())  # as `serve` runs it, and stops it
    await dashboard.start()
    app = dashboard.app
    assert app is not None
    transport = HttpTransport(dashboard.url, theirs["Authorization"].removeprefix("Bearer "))
    await transport.open()
    try:
        async with httpx.AsyncClient(base_url=f"{dashboard.url}api/v1/agent") as http:
            poll = asyncio.create_task(
                http.get("/assignments", params={"wait": 60}, headers=auth, timeout=90)
            )
            runner = asyncio.create_task(transport.assignments([running], None, []))
            async with http.stream("GET", "/assignments/stream", headers=watch) as stream:

                async def all_wait() -> bool:
                    bell = getattr(app.state, "assignment_bell", None)
                    return bell is not None and bell.waiting == {polling, running, streaming}

                await eventually(all_wait, what="the three agents to wait for work")
                await dashboard.stop()
                answer = await poll
                found = await runner
                streamed = await stream.aread()  # it ends: no cut-off chunked body
    finally:
        await transport.close()
        await dashboard.stop()
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.headers["retry-after"] == "5"
    assert "the API is stopping" in answer.json()["detail"]
    assert found == []  # the agent runner's transport takes it as no work yet, and goes on
    assert stream.status_code == 200 and b"assignment" not in streamed
    await registry.take_offline(pool, [polling, running, streaming])
