"""A2A agents as members of a team: registered from their card, doing real goals' tasks.

The agents are served by `a2a-sdk` inside the test (uvicorn on a free port); Goalkeeper
reaches them with `a2a-sdk`'s client through the bridge of `agent.py --a2a-bridge`.
"""

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import uvicorn
from a2a.helpers.proto_helpers import get_data_parts, new_task, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    TaskState,
)
from a2a.utils.signing import create_agent_card_signer
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client, WorkflowFailureError

from goalkeeper import signing
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.a2a.cards import card_json
from interfaces.a2a.member import MAX_RESULT_CHARS, serve_members
from interfaces.a2a.reach import SETTING, Reach
from interfaces.agents import registry
from interfaces.stack import free_port
from store.database import apply_schema, create_pool, login_url, scram_verifier
from store.tokens import new_token
from tests.helpers import PATIENCE, events, eventually, goal_spec, new_goal_id, start_goal
from tests.starter import Ran, run_starter, starter

LOOPBACK = "127.0.0.1"
"""What the tests let Goalkeeper call: their agents are served on loopback, which is
refused unless listed."""


@dataclass
class Scripted(AgentExecutor):
    """An A2A agent whose behaviour each task's title chooses: `fail`, `ask`, `note`,
    `hang`, `huge`, or anything else to complete."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    """What a `note` task waits for after saying what it does."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id and context.message
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        if context.current_task is not None:  # the answer to its question
            answer = context.get_user_input()
            await updater.add_artifact([new_text_part(f"done, as {answer} said")])
            await updater.complete()
            return
        task = new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED)
        await event_queue.enqueue_event(task)
        work = get_data_parts(context.message.parts)[0]
        self.seen.append(work)
        title = work["task"]["title"]
        await updater.start_work()
        if title.startswith("fail"):
            await updater.failed(new_text_message("the printer is on fire"))
        elif title.startswith("ask"):
            await updater.requires_input(new_text_message("Which region, north or south?"))
        elif title.startswith("note"):
            said = new_text_message("reading 3 sources")
            await updater.update_status(TaskState.TASK_STATE_WORKING, message=said)
            await self.released.wait()
            await updater.add_artifact([new_text_part(f"{title} done")])
            await updater.complete()
        elif title.startswith("hang"):
            await asyncio.Event().wait()
        elif title.startswith("huge"):
            await updater.add_artifact([new_text_part("x" * (MAX_RESULT_CHARS + 10))])
            await updater.complete()
        else:
            deps = work.get("dependency_results") or {}
            await updater.add_artifact([new_text_part(f"{title} done; had {sorted(deps)}")])
            await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        self.cancelled.append(context.task_id)
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


@dataclass
class Served:
    url: str
    agent: Scripted
    card: AgentCard


def card_of(url: str, name: str = "Scribe") -> AgentCard:
    return AgentCard(
        name=name,
        description="writes what it is asked to",
        version="1.0",
        supported_interfaces=[
            AgentInterface(url=f"{url}/rpc", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id="writing", name="Writing", description="prose", tags=["prose"]),
        ],
    )


@asynccontextmanager
async def a2a_agent(
    extra: list[Route] | None = None,
    sign: ec.EllipticCurvePrivateKey | None = None,
    jku: str | None = None,
) -> AsyncIterator[Served]:
    """A real A2A agent (a2a-sdk's handler and routes) on a free port, with `extra` routes;
    its card signed with `sign` names `jku` (by default its own /jwks.json)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    card = card_of(url)
    if sign is not None:
        pem = sign.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        card = create_agent_card_signer(
            pem, {"kid": "k1", "alg": "ES256", "jku": jku or f"{url}/jwks.json", "typ": "JOSE"}
        )(card)
    agent = Scripted()
    handler = DefaultRequestHandler(agent, InMemoryTaskStore(), card)
    routes = [
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, "/rpc"),
        *(extra or []),
    ]
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=routes), port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: asyncio.sleep(0, server.started), what="the A2A agent to listen")
    try:
        yield Served(url, agent, card)
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def worker_login(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh login of goalkeeper_worker, the login the bridge runs with."""
    group = "goalkeeper_worker"
    await pool.execute(
        f"DO $$ BEGIN CREATE ROLE {group} NOLOGIN; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    await apply_schema(pool)
    name, password = f"test_bridge_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    await pool.execute(
        f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{scram_verifier(password)}' IN ROLE {group}"
    )
    try:
        login = await create_pool(login_url(database_url, name, password), max_size=8)
        try:
            yield login
        finally:
            await login.close()
    finally:
        await pool.execute(f'DROP ROLE "{name}"')


@asynccontextmanager
async def bridge(
    client: Client, pool: asyncpg.Pool, workspace: str, allowed: str = LOOPBACK
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    reach = Reach.parse(allowed.split(","))
    serving = asyncio.create_task(
        serve_members(client, pool, workspace, stop, sweep_interval=1, reach=reach)
    )
    try:
        yield
    finally:
        stop.set()
        await serving


async def register(database_url: str, *args: str, allowed: str = LOOPBACK) -> Ran:
    """`starter.py agent register ARGS`, letting it call only `allowed` of the non-public
    addresses (GOALKEEPER_A2A_ALLOWED_HOSTS)."""
    env = {"DATABASE_URL": database_url, SETTING: allowed}
    return await run_starter(env, "agent", "register", *args, "--json")


async def answer(database_url: str, *args: str) -> Ran:
    return await starter(database_url, "agent", "answer", *args, "--json")


async def test_an_a2a_agent_joins_with_its_cards_skills_and_completes_a_goal(
    client: Client,
    pool: asyncpg.Pool,
    worker_login: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    database_url: str,
) -> None:
    async with a2a_agent() as served:
        agent_id = f"{workspace}-scribe"
        ran = await register(database_url, agent_id, "--a2a", served.url, "--workspace", workspace)
        assert ran.code == 0, ran.err
        assert ran.json()["skills"] == ["writing", "prose"] and ran.json()["signed"] is False
        skills = await pool.fetchval("SELECT skills FROM agents WHERE agent_id = $1", agent_id)
        assert skills == ["writing", "prose"]
        spec = goal_spec(2, workspace, require_signatures=True)
        spec["tasks"][1]["depends_on"] = ["t1"]
        async with bridge(client, worker_login, workspace):
            handle = await start_goal(client, spec, task_queue)
            report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert {t.agent_id for t in report.tasks} == {agent_id}
    rows = await pool.fetch("SELECT task_id, result FROM tasks WHERE goal_id = $1", handle.id)
    results = {row["task_id"]: row["result"] for row in rows}
    assert results == {"t1": "Task 1 done; had []", "t2": "Task 2 done; had ['t1']"}
    first = served.agent.seen[0]
    assert first["goal"]["description"] == "A goal made by a test" and first["attempt"] == 1
    assert served.agent.seen[1]["dependency_results"] == {"t1": "Task 1 done; had []"}


async def test_a_failing_a2a_agent_fails_its_task_with_its_error(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str, database_url: str
) -> None:
    async with a2a_agent() as served, bridge(client, pool, workspace):
        # Registered while the bridge runs: the bridge takes it on at its next sweep.
        agent_id = f"{workspace}-scribe"
        assert (
            await register(database_url, agent_id, "--a2a", served.url, "--workspace", workspace)
        ).code == 0
        spec = goal_spec(0, workspace, max_attempts=1)
        spec["tasks"] = [{"id": "t1", "title": "fail at this", "skill": "writing"}]
        handle = await start_goal(client, spec, task_queue)
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    (task,) = report.tasks
    assert task.outcome is TaskStatus.FAILED
    assert task.error is not None and "the printer is on fire" in task.error
    assert len(served.agent.seen) == 1


async def test_what_an_a2a_agent_says_while_working_becomes_its_assignments_notes(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str, database_url: str
) -> None:
    async with a2a_agent() as served, bridge(client, pool, workspace):
        agent_id = f"{workspace}-scribe"
        assert (
            await register(database_url, agent_id, "--a2a", served.url, "--workspace", workspace)
        ).code == 0
        spec = goal_spec(0, workspace)
        spec["tasks"] = [{"id": "t1", "title": "note as you go", "skill": "writing"}]
        handle = await start_goal(client, spec, task_queue)

        async def noted() -> list[asyncpg.Record]:
            return await events(pool, handle.id, "agent_note")

        try:
            [note] = await eventually(noted, what="the A2A agent's note")
        finally:
            served.agent.released.set()
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert (note["message"], note["agent_id"], note["task_id"]) == (
        "reading 3 sources",
        agent_id,
        "t1",
    )
    assert len(await events(pool, handle.id, "agent_note")) == 1  # said once, noted once


async def asking_goal(
    database_url: str, url: str, agent_id: str, workspace: str
) -> tuple[dict[str, Any], str]:
    """Register the A2A agent at `url` (one that asks a question first) and make the spec
    and id of a goal of one task for it, approved by `lead`."""
    assert (
        await register(database_url, agent_id, "--a2a", url, "--workspace", workspace)
    ).code == 0
    spec = goal_spec(0, workspace, approvers=["lead"])
    spec["tasks"] = [{"id": "t1", "title": "ask first", "skill": "writing"}]
    return spec, new_goal_id()


async def test_an_a2a_agents_question_is_answered_by_an_approver(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    database_url: str,
) -> None:
    async with a2a_agent() as served:
        spec, goal_id = await asking_goal(
            database_url, served.url, f"{workspace}-scribe", workspace
        )
        async with bridge(client, pool, workspace):
            handle = await start_goal(client, spec, task_queue, goal_id)
            asked = await eventually(
                lambda: events(pool, goal_id, "agent_question"), what="the agent's question"
            )
            assert "Which region, north or south?" in asked[0]["message"]
            wrong = await answer(database_url, goal_id, "t1", "north", "--as", "mallory")
            assert wrong.code == 1 and "'mallory' may not answer" in wrong.err
            long = await answer(database_url, goal_id, "t1", "n" * 4001, "--as", "lead")
            assert long.code == 2 and "at most 4000 characters, got 4001" in long.err
            ran = await answer(database_url, goal_id, "t1", "north", "--as", "lead")
            assert ran.code == 0, ran.err
            report = await asyncio.wait_for(handle.result(), PATIENCE)
        again = await answer(database_url, goal_id, "t1", "south", "--as", "lead")
    assert again.code == 1 and "no question waits" in again.err
    assert report.status is GoalStatus.COMPLETED
    result = await pool.fetchval("SELECT result FROM tasks WHERE goal_id = $1", goal_id)
    assert result == "done, as north said"
    assert [e["kind"] for e in await events(pool, goal_id, "agent_question_answered")] == [
        "agent_question_answered"
    ]


async def test_a_silent_a2a_agent_misses_its_deadline_and_its_task_is_cancelled(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str, database_url: str
) -> None:
    async with a2a_agent() as served:
        agent_id = f"{workspace}-scribe"
        assert (
            await register(database_url, agent_id, "--a2a", served.url, "--workspace", workspace)
        ).code == 0
        spec = goal_spec(
            0, workspace, max_attempts=1, report_deadline_seconds=3, heartbeat_timeout_seconds=3
        )
        spec["tasks"] = [{"id": "t1", "title": "hang forever", "skill": "writing"}]
        async with bridge(client, pool, workspace):
            handle = await start_goal(client, spec, task_queue)
            report = await asyncio.wait_for(handle.result(), PATIENCE)
            await eventually(lambda: asyncio.sleep(0, served.agent.cancelled), what="a cancel")
    (task,) = report.tasks
    assert task.outcome is TaskStatus.FAILED
    assert len(served.agent.cancelled) == 1


async def test_a_stopped_goal_cancels_its_a2a_task(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str, database_url: str
) -> None:
    async with a2a_agent() as served:
        agent_id = f"{workspace}-scribe"
        assert (
            await register(database_url, agent_id, "--a2a", served.url, "--workspace", workspace)
        ).code == 0
        spec = goal_spec(0, workspace, approvers=["boss"], heartbeat_timeout_seconds=3)
        spec["tasks"] = [{"id": "t1", "title": "hang on", "skill": "writing"}]
        async with bridge(client, pool, workspace):
            handle = await start_goal(client, spec, task_queue)
            await eventually(lambda: asyncio.sleep(0, served.agent.seen), what="the A2A task")
            await handle.execute_update("stop", {"approver": "boss", "comment": "enough"})
            with pytest.raises(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), PATIENCE)
            await eventually(lambda: asyncio.sleep(0, served.agent.cancelled), what="a cancel")


async def test_an_oversized_answer_fails_the_attempt_visibly(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str, database_url: str
) -> None:
    async with a2a_agent() as served:
        agent_id = f"{workspace}-scribe"
        assert (
            await register(database_url, agent_id, "--a2a", served.url, "--workspace", workspace)
        ).code == 0
        spec = goal_spec(0, workspace, max_attempts=1)
        spec["tasks"] = [{"id": "t1", "title": "huge output", "skill": "writing"}]
        async with bridge(client, pool, workspace):
            handle = await start_goal(client, spec, task_queue)
            report = await asyncio.wait_for(handle.result(), PATIENCE)
    (task,) = report.tasks
    assert task.outcome is TaskStatus.FAILED
    assert task.error is not None and f"expected at most {MAX_RESULT_CHARS}" in task.error


async def test_a_malformed_answer_fails_the_attempt_visibly(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str, database_url: str
) -> None:
    async def garbage(request: Any) -> Response:
        return Response(b"{not json", media_type="application/json")

    async with a2a_agent([Route("/garbage", garbage, methods=["POST"])]) as served:
        agent_id = f"{workspace}-scribe"
        assert (
            await register(database_url, agent_id, "--a2a", served.url, "--workspace", workspace)
        ).code == 0
        # The stored card now points the agent's interface at an endpoint answering garbage.
        card = await pool.fetchval("SELECT card FROM a2a_agents WHERE agent_id = $1", agent_id)
        card["supportedInterfaces"][0]["url"] = f"{served.url}/garbage"
        await pool.execute("UPDATE a2a_agents SET card = $2 WHERE agent_id = $1", agent_id, card)
        spec = goal_spec(1, workspace, max_attempts=1)
        async with bridge(client, pool, workspace):
            handle = await start_goal(client, spec, task_queue)
            report = await asyncio.wait_for(handle.result(), PATIENCE)
    (task,) = report.tasks
    assert task.outcome is TaskStatus.FAILED
    assert task.error is not None and f"A2A agent {agent_id} at" in task.error


async def test_a_card_that_cannot_be_fetched_or_read_is_refused(
    pool: asyncpg.Pool, workspace: str, database_url: str
) -> None:
    async def not_json(request: Any) -> Response:
        return Response(b"<html>hello</html>", media_type="text/html")

    async def not_a_card(request: Any) -> Response:
        return JSONResponse({"name": "x", "skills": "all of them"})

    async def too_big(request: Any) -> Response:
        return Response(b" " * (300 * 1024) + b"{}", media_type="application/json")

    extra = [
        Route("/html/.well-known/agent-card.json", not_json),
        Route("/odd/.well-known/agent-card.json", not_a_card),
        Route("/big/.well-known/agent-card.json", too_big),
    ]
    async with a2a_agent(extra) as served:
        agent_id = f"{workspace}-odd"
        refused = {
            "nowhere": await register(
                database_url, agent_id, "--a2a", f"http://127.0.0.1:{free_port()}"
            ),
            "missing": await register(database_url, agent_id, "--a2a", f"{served.url}/none"),
            "html": await register(database_url, agent_id, "--a2a", f"{served.url}/html"),
            "odd": await register(database_url, agent_id, "--a2a", f"{served.url}/odd"),
            "big": await register(database_url, agent_id, "--a2a", f"{served.url}/big"),
            "scheme": await register(database_url, agent_id, "--a2a", "file:///etc/passwd"),
        }
    assert {k: r.code for k, r in refused.items()} == dict.fromkeys(refused, 1)
    assert "cannot be fetched" in refused["nowhere"].err
    assert "expected HTTP 200, got 404" in refused["missing"].err
    assert "expected a JSON agent card" in refused["html"].err
    assert "not an A2A agent card" in refused["odd"].err
    assert "expected at most 262144 bytes" in refused["big"].err
    assert "expected an http(s) URL" in refused["scheme"].err
    assert await pool.fetchval("SELECT count(*) FROM agents WHERE agent_id = $1", agent_id) == 0


def jwks(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {"keys": [public | {"kid": "k1", "alg": "ES256", "use": "sig"}]}


async def test_a_signed_card_is_verified_and_a_forged_one_refused(
    pool: asyncpg.Pool, workspace: str, database_url: str, tmp_path: Any
) -> None:
    signer, stranger = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    keys = {"key": jwks(signer)}

    async def published(request: Any) -> Response:
        return JSONResponse(keys["key"])

    async with a2a_agent([Route("/jwks.json", published)], sign=signer) as served:
        good = await register(
            database_url, f"{workspace}-good", "--a2a", served.url, "--workspace", workspace
        )
        assert good.code == 0, good.err
        assert good.json()["signed"] is True
        pinned = tmp_path / "pinned.json"
        pinned.write_text(json.dumps(jwks(stranger)["keys"][0]))
        wrong_pin = await register(
            database_url, f"{workspace}-pin", "--a2a", served.url, "--card-key", str(pinned)
        )
        keys["key"] = jwks(stranger)  # the host now publishes a key that did not sign it
        forged = await register(database_url, f"{workspace}-forged", "--a2a", served.url)
    for refused in (wrong_pin, forged):
        assert refused.code == 1 and "signature does not verify" in refused.err
    signed = await pool.fetchval(
        "SELECT signed FROM a2a_agents WHERE agent_id = $1", f"{workspace}-good"
    )
    assert signed is True
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM agents WHERE agent_id = ANY($1::text[])",
            [f"{workspace}-pin", f"{workspace}-forged"],
        )
        == 0
    )


async def test_an_unsigned_card_is_refused_when_a_key_is_pinned(
    workspace: str, database_url: str, tmp_path: Any
) -> None:
    pinned = tmp_path / "pinned.json"
    pinned.write_text(json.dumps(jwks(ec.generate_private_key(ec.SECP256R1()))["keys"][0]))
    async with a2a_agent() as served:
        ran = await register(
            database_url, f"{workspace}-x", "--a2a", served.url, "--card-key", str(pinned)
        )
    assert ran.code == 1 and "signature does not verify" in ran.err


async def test_a_bridge_leaves_alone_an_agent_whose_key_another_holds(
    client: Client, pool: asyncpg.Pool, workspace: str, database_url: str
) -> None:
    async with a2a_agent() as served:
        agent_id = f"{workspace}-scribe"
        ran = await register(database_url, agent_id, "--a2a", served.url, "--workspace", workspace)
        assert ran.code == 0, ran.err
        _, public = signing.new_keys()  # another bridge serves it, with its own key
        await registry.register_agent(pool, agent_id, workspace, ["writing"], public_key=public)
        stop = asyncio.Event()
        stop.set()
        runner = await serve_members(client, pool, workspace, stop)
    assert list(runner.agent_ids) == []
    kept = await pool.fetchval("SELECT public_key FROM agents WHERE agent_id = $1", agent_id)
    assert kept == public


async def test_an_a2a_agents_question_is_answered_over_the_api(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    database_url: str,
    api: httpx.AsyncClient,
) -> None:
    async with a2a_agent() as served:
        agent_id = f"{workspace}-asker"
        spec, goal_id = await asking_goal(database_url, served.url, agent_id, workspace)
        lead = await new_token(pool, "lead", [workspace])
        mallory = await new_token(pool, "mallory", [workspace])
        outsider = await new_token(pool, "lead", ["elsewhere"])
        as_ = lambda made: {"Authorization": f"Bearer {made['token']}"}  # noqa: E731
        path = f"/goals/{goal_id}/tasks/t1/answer"
        async with bridge(client, pool, workspace):
            handle = await start_goal(client, spec, task_queue, goal_id)
            await eventually(
                lambda: events(pool, goal_id, "agent_question"), what="the agent's question"
            )
            waiting = (await api.get("/questions", headers=as_(lead))).json()
            assert [(q["goal_id"], q["task_id"]) for q in waiting] == [(goal_id, "t1")]
            assert (await api.get("/questions", headers=as_(mallory))).json() == []
            page = await api.get("http://localhost/approvals", headers=as_(lead))
            assert "Which region, north or south?" in page.text
            assert f'data-post="/api/v1{path}"' in page.text  # the page's answer form
            other = await api.get("http://localhost/approvals", headers=as_(mallory))
            assert "Which region" not in other.text
            denied = await api.post(path, json={"answer": "north"}, headers=as_(mallory))
            assert denied.status_code == 403 and "'mallory' may not answer" in denied.text
            unknown = await api.post(path, json={"answer": "north"}, headers=as_(outsider))
            assert unknown.status_code == 404
            long = await api.post(path, json={"answer": "n" * 4001}, headers=as_(lead))
            assert long.status_code == 422 and "got 4001" in long.text
            ran = await api.post(path, json={"answer": "north"}, headers=as_(lead))
            assert ran.status_code == 200, ran.text
            report = await asyncio.wait_for(handle.result(), PATIENCE)
        again = await api.post(path, json={"answer": "south"}, headers=as_(lead))
    assert again.status_code == 409 and "no question waits" in again.text
    assert report.status is GoalStatus.COMPLETED
    refused = await events(pool, goal_id, "action_refused")
    assert len(refused) == 1 and "mallory" in refused[0]["message"]


def only(served: Served) -> str:
    """An allow-list naming one served agent's host and port, and nothing else local."""
    return served.url.removeprefix("http://")


async def test_a_card_at_an_address_not_allowed_is_refused_unfetched(
    pool: asyncpg.Pool, workspace: str, database_url: str
) -> None:
    async def by_name(request: Any) -> Response:
        # Called at the address it resolved to, the request still names the host it asked.
        if not request.headers["host"].startswith("localhost:"):
            return Response(status_code=421)
        return JSONResponse(card_json(card_of(f"http://{request.headers['host']}")))

    extra = [Route("/named/.well-known/agent-card.json", by_name)]
    async with a2a_agent(extra) as served, a2a_agent() as other:
        agent_id = f"{workspace}-inside"
        refused = {
            "unlisted": await register(database_url, agent_id, "--a2a", served.url, allowed=""),
            "other port": await register(
                database_url, agent_id, "--a2a", other.url, allowed=only(served)
            ),
            "by name": await register(
                database_url,
                agent_id,
                "--a2a",
                served.url.replace("127.0.0.1", "localhost"),
                allowed=only(served),
            ),
            "metadata": await register(
                database_url, agent_id, "--a2a", "http://169.254.169.254/latest", allowed=""
            ),
        }
        allowed = await register(database_url, agent_id, "--a2a", served.url, allowed=only(served))
        by_range = await register(
            database_url,
            f"{agent_id}-by-range",
            "--a2a",
            served.url.replace("127.0.0.1", "localhost") + "/named",
            allowed="127.0.0.0/8,::1",
        )
    assert {k: r.code for k, r in refused.items()} == dict.fromkeys(refused, 1), refused
    for ran in refused.values():
        assert "is not a public address" in ran.err and SETTING in ran.err, ran.err
    assert f"refused to call {other.url}/.well-known/agent-card.json" in refused["other port"].err
    assert "localhost (resolving to 127.0.0.1)" in refused["by name"].err
    assert "refused to call http://169.254.169.254/latest/" in refused["metadata"].err
    assert allowed.code == 0, allowed.err
    assert by_range.code == 0, by_range.err
    misread = await register(database_url, agent_id, "--a2a", served.url, allowed="a b,10.0.0.0/8")
    assert misread.code == 2 and f"{SETTING} must be host names" in misread.err
    assert "got 'a b'" in misread.err


async def test_a_card_naming_an_interface_not_allowed_is_refused(
    pool: asyncpg.Pool, workspace: str, database_url: str
) -> None:
    async with a2a_agent() as other:
        targets = {"metadata": "http://169.254.169.254", "elsewhere": other.url}

        async def card(request: Any) -> Response:
            url = targets[request.path_params["name"]]
            return JSONResponse(card_json(card_of(url)))

        async with a2a_agent([Route("/{name}/.well-known/agent-card.json", card)]) as served:
            agent_id = f"{workspace}-pointing"
            refused = {
                name: await register(
                    database_url, agent_id, "--a2a", f"{served.url}/{name}", allowed=only(served)
                )
                for name in targets
            }
    for name, ran in refused.items():
        assert ran.code == 1, ran.err
        assert f"its interface '{targets[name]}/rpc'" in ran.err, ran.err
        assert "is not a public address" in ran.err
    assert await pool.fetchval("SELECT count(*) FROM agents WHERE agent_id = $1", agent_id) == 0
    assert other.agent.seen == []


async def test_a_redirect_is_followed_only_to_an_allowed_address(
    pool: asyncpg.Pool, workspace: str, database_url: str
) -> None:
    async with a2a_agent() as other:

        async def away(request: Any) -> Response:
            return Response(
                status_code=302, headers={"Location": f"{other.url}/.well-known/agent-card.json"}
            )

        async def home(request: Any) -> Response:
            return Response(status_code=301, headers={"Location": "/.well-known/agent-card.json"})

        extra = [
            Route("/away/.well-known/agent-card.json", away),
            Route("/home/.well-known/agent-card.json", home),
        ]
        async with a2a_agent(extra) as served:
            agent_id = f"{workspace}-moved"
            away_ran = await register(
                database_url, agent_id, "--a2a", f"{served.url}/away", allowed=only(served)
            )
            home_ran = await register(
                database_url, agent_id, "--a2a", f"{served.url}/home", allowed=only(served)
            )
    assert away_ran.code == 1
    assert f"refused to call {other.url}/.well-known/agent-card.json" in away_ran.err
    assert home_ran.code == 0, home_ran.err


async def test_a_signed_cards_key_set_at_an_address_not_allowed_is_refused(
    pool: asyncpg.Pool, workspace: str, database_url: str
) -> None:
    signer = ec.generate_private_key(ec.SECP256R1())

    async def published(request: Any) -> Response:
        return JSONResponse(jwks(signer))

    # Signed with a key served elsewhere: verifiable, were Goalkeeper let call there.
    async with (
        a2a_agent([Route("/jwks.json", published)]) as keys,
        a2a_agent(sign=signer, jku=f"{keys.url}/jwks.json") as served,
    ):
        agent_id = f"{workspace}-keyed"
        refused = await register(database_url, agent_id, "--a2a", served.url, allowed=only(served))
        both = f"{only(served)},{only(keys)}"
        allowed = await register(database_url, agent_id, "--a2a", served.url, allowed=both)
    assert refused.code == 1
    assert f"its key set (jku) refused to call {keys.url}/jwks.json" in refused.err
    assert allowed.code == 0 and allowed.json()["signed"] is True, allowed.err


async def test_the_bridge_calls_no_interface_not_allowed(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str, database_url: str
) -> None:
    async with a2a_agent() as served, a2a_agent() as other:
        agent_id = f"{workspace}-turned"
        ran = await register(database_url, agent_id, "--a2a", served.url, "--workspace", workspace)
        assert ran.code == 0, ran.err
        # The stored card now names another local agent, one the bridge may not call.
        card = await pool.fetchval("SELECT card FROM a2a_agents WHERE agent_id = $1", agent_id)
        card["supportedInterfaces"][0]["url"] = f"{other.url}/rpc"
        await pool.execute("UPDATE a2a_agents SET card = $2 WHERE agent_id = $1", agent_id, card)
        spec = goal_spec(1, workspace, max_attempts=1)
        async with bridge(client, pool, workspace, allowed=only(served)):
            handle = await start_goal(client, spec, task_queue)
            report = await asyncio.wait_for(handle.result(), PATIENCE)
    (task,) = report.tasks
    assert task.outcome is TaskStatus.FAILED
    assert task.error is not None and f"refused to call {other.url}/rpc" in task.error
    assert other.agent.seen == [] and served.agent.seen == []
