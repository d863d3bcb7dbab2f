"""Agents' notes: what an agent says while it works reaches the goal's event stream and page
before its report, over PostgreSQL and over the HTTP agent protocol; whatever else is sent
is refused, naming why, and a refusal about an assignment is recorded."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from a2a.types.a2a_pb2 import TaskState
from temporalio.client import Client

from goalkeeper.limits import MAX_NOTE_CHARS, MAX_NOTES_PER_ASSIGNMENT
from goalkeeper.runbooks import parse_runbook
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.agents import registry
from interfaces.agents.http_transport import HttpTransport
from interfaces.agents.runner import AgentRunner, SimulatedWork, Work, WorkResult
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.stack import free_port
from store.agent_credentials import new_credential
from store.runbooks import add_runbook
from tests.helpers import (
    PATIENCE,
    events,
    eventually,
    goal_spec,
    running_agents,
    start_goal,
    task_view,
    wait_task,
)
from tests.test_a2a_server import SKILLS, a2a, ask_for_work, asking, serving, states, token
from tests.test_least_privilege import agent_login, assignment_for
from tests.test_runbooks import runbook_toml

PROBLEM = "application/problem+json"
NOTES = ("searching 3 sources", "draft 2 of 3 <b>bold</b>")


@pytest.fixture
async def served(pool: asyncpg.Pool, client: Client) -> AsyncIterator[str]:
    """The API and pages on uvicorn on the test's stack, reads open; its base URL."""
    port = free_port()
    app = create_app(Settings(api_open_reads=True), pool=pool, client=client)
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started), what="uvicorn started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


class NotingHook:
    """Posts its notes, then works on until released: its report comes after the test saw
    the notes."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    async def __call__(self, work: Work) -> WorkResult:
        for text in NOTES:
            await work.note(text)
        await self.released.wait()
        return WorkResult(result=f"{work.task_id} done")


@asynccontextmanager
async def goal_events(base: str, goal_id: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """The goal's event stream over HTTP, from its first event: each event's data."""
    async with (
        httpx.AsyncClient(base_url=base, timeout=PATIENCE) as http,
        http.stream(
            "GET", f"/api/v1/goals/{goal_id}/events", headers={"Last-Event-ID": "0"}
        ) as answer,
    ):
        assert answer.headers["content-type"].startswith("text/event-stream")

        async def data() -> AsyncIterator[dict[str, Any]]:
            async for line in answer.aiter_lines():
                if line.startswith("data: "):
                    yield json.loads(line.removeprefix("data: "))

        yield data()


async def notes_seen_while_working(
    base: str, client: Client, goal_id: str, hook: NotingHook
) -> list[dict[str, Any]]:
    """The notes the goal's stream carries while its task is still assigned; then the work
    is released."""
    view = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)  # the goal is known
    seen: list[dict[str, Any]] = []
    async with goal_events(base, goal_id) as stream:
        async for event in stream:
            if event["kind"] == "agent_note":
                seen.append(event)
            if len(seen) == len(NOTES):
                break
    assert (await task_view(client, goal_id, "t1")).status is TaskStatus.ASSIGNED
    assert {e["detail"]["assignment_id"] for e in seen} == {view.assignment_id}
    async with httpx.AsyncClient(base_url=base) as http:
        page = (await http.get(f"/goals/{goal_id}")).text
    # Shown on the goal's page, as text: an agent's note never becomes markup.
    assert NOTES[0] in page and "draft 2 of 3 &lt;b&gt;bold&lt;/b&gt;" in page
    assert page.count('class="note"') == len(NOTES)
    assert 'data-kinds="' in page and "agent_note" in page.split('data-kinds="')[1].split('"')[0]
    hook.released.set()
    return seen


async def test_an_agent_on_its_database_login_posts_notes_seen_live_before_its_report(
    served: str, client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    hook = NotingHook()
    async with running_agents(client, pool, workspace, hook):
        handle = await start_goal(client, goal_spec(1, workspace), task_queue)
        try:
            seen = await asyncio.wait_for(
                notes_seen_while_working(served, client, handle.id, hook), PATIENCE
            )
        finally:
            hook.released.set()
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert [e["message"] for e in seen] == list(NOTES)
    assert [e["detail"]["number"] for e in seen] == [1, 2]
    assert {e["task_id"] for e in seen} == {"t1"}


async def test_an_agent_over_http_posts_notes_seen_live_before_its_report(
    served: str, client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    agent_id = f"{workspace}-http"
    await registry.register_agent(pool, agent_id, workspace, ["writing"])
    credential = (await new_credential(pool, agent_id))["credential"]
    hook = NotingHook()
    runner = AgentRunner(
        None, None, [agent_id], hook, transport=HttpTransport(served, credential, 5)
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        handle = await start_goal(client, goal_spec(1, workspace), task_queue)
        try:
            seen = await asyncio.wait_for(
                notes_seen_while_working(served, client, handle.id, hook), PATIENCE
            )
        finally:
            hook.released.set()
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    finally:
        stop.set()
        await running
        await registry.take_offline(pool, [agent_id])
    assert report.status is GoalStatus.COMPLETED
    assert [(e["message"], e["agent_id"]) for e in seen] == [(n, agent_id) for n in NOTES]


def refused(answer: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    """The problem details of a refusal, checked for its status and words."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = answer.json()
    for word in words:
        assert word in problem["detail"], problem
    return problem


async def test_notes_over_http_are_refused_for_others_ended_too_long_and_too_many(
    served: str, client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    owner, stranger = f"{workspace}-owner", f"{workspace}-stranger"
    await registry.register_agent(pool, owner, workspace, ["writing"])
    await registry.register_agent(pool, stranger, workspace, ["other"])
    auth = {"Authorization": f"Bearer {(await new_credential(pool, owner))['credential']}"}
    theirs = {"Authorization": f"Bearer {(await new_credential(pool, stranger))['credential']}"}
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    assert view.assignment_id is not None
    path = f"/assignments/{view.assignment_id}/notes"
    async with httpx.AsyncClient(base_url=f"{served}/api/v1/agent", timeout=PATIENCE) as http:
        posted = await http.post(path, json={"text": "starting"}, headers=auth)
        assert (posted.status_code, posted.json()["number"]) == (201, 1), posted.text

        # Credentials: none, a made-up one.
        refused(await http.post(path, json={"text": "x"}), 401, "missing agent credential")
        forged = {"Authorization": "Bearer gk_agent_forged"}
        assert (await http.post(path, json={"text": "x"}, headers=forged)).status_code == 401

        # Another agent's assignment: refused and recorded in the goal's trail.
        refused(await http.post(path, json={"text": "mine now"}, headers=theirs), 403, stranger)
        rejected = await events(pool, handle.id, "note_rejected")
        assert len(rejected) == 1 and rejected[0]["agent_id"] == stranger
        refused(
            await http.post(f"/assignments/{uuid.uuid4()}/notes", json={"text": "x"}, headers=auth),
            404,
        )
        refused(
            await http.post("/assignments/not-a-uuid/notes", json={"text": "x"}, headers=auth), 404
        )

        # Too long, empty, not text, not an object.
        long = "n" * (MAX_NOTE_CHARS + 1)
        refused(
            await http.post(path, json={"text": long}, headers=auth),
            422,
            f"{MAX_NOTE_CHARS + 1} characters",
            f"1 to {MAX_NOTE_CHARS}",
        )
        refused(await http.post(path, json={"text": "  "}, headers=auth), 422, "expected 1 to")
        refused(await http.post(path, json={"text": 42}, headers=auth), 422, "got int")
        refused(await http.post(path, json={}, headers=auth), 422, "got none")
        assert (await http.post(path, json=["x"], headers=auth)).status_code == 422
        huge = await http.post(path, json={"text": "x" * 2_000_000}, headers=auth)
        refused(huge, 413)
        *_, oversized = await events(pool, handle.id, "note_rejected")
        assert oversized["agent_id"] == owner and "refused unread" in oversized["message"]
        ok = await http.post(path, json={"text": "n" * MAX_NOTE_CHARS}, headers=auth)
        assert ok.status_code == 201, ok.text

        # Up to the limit, then refused: said once in the trail, however often it is tried.
        for number in range(3, MAX_NOTES_PER_ASSIGNMENT + 1):
            answer = await http.post(path, json={"text": f"step {number}"}, headers=auth)
            assert answer.json()["number"] == number, answer.text
        for _ in range(3):
            refused(
                await http.post(path, json={"text": "one more"}, headers=auth),
                429,
                f"at most {MAX_NOTES_PER_ASSIGNMENT} per attempt",
            )
        rejected = await events(pool, handle.id, "note_rejected")
        assert len(rejected) == 3
        assert rejected[-1]["agent_id"] == owner
        assert f"more than {MAX_NOTES_PER_ASSIGNMENT} notes" in rejected[-1]["message"]
        assert len(await events(pool, handle.id, "agent_note")) == MAX_NOTES_PER_ASSIGNMENT

        # Once the assignment has ended, its notes are over.
        done = await http.post(
            f"/assignments/{view.assignment_id}/report",
            json={"outcome": "completed", "result": "done"},
            headers=auth,
        )
        assert done.status_code == 200, done.text
        await wait_task(client, handle.id, "t1", TaskStatus.COMPLETED)
        refused(
            await http.post(path, json={"text": "late"}, headers=auth),
            409,
            "expected an active one",
        )
    assert (await handle.result()).status is GoalStatus.COMPLETED


async def test_an_agents_login_posts_notes_only_for_its_own_agents(
    pool: asyncpg.Pool, database_url: str, workspace: str
) -> None:
    limits = await pool.fetchrow("SELECT chars, per_assignment FROM goalkeeper_note_limits()")
    assert limits is not None
    assert (limits["chars"], limits["per_assignment"]) == (MAX_NOTE_CHARS, MAX_NOTES_PER_ASSIGNMENT)
    async with (
        agent_login(pool, database_url, workspace) as mine,
        agent_login(pool, database_url, workspace) as other,
    ):
        await registry.register_agent(mine, f"{workspace}-mine", workspace, ["data"])
        await registry.register_agent(other, f"{workspace}-other", workspace, ["data"])
        goal_id, assignment = await assignment_for(pool, f"{workspace}-mine")
        note = "SELECT goalkeeper_agent_note($1, $2::uuid, $3)"
        assert await mine.fetchval(note, f"{workspace}-mine", assignment, "on it") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="may not post notes"):
            await other.fetchval(note, f"{workspace}-mine", assignment, "not mine")
        with pytest.raises(asyncpg.NoDataFoundError, match="holds no assignment"):
            await other.fetchval(note, f"{workspace}-other", assignment, "not mine either")
        with pytest.raises(asyncpg.InvalidParameterValueError, match="expected 1 to"):
            await mine.fetchval(note, f"{workspace}-mine", assignment, "x" * 300)
        # Notes are written only through the function: the trail itself is not agents'.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await mine.execute(
                "INSERT INTO events (event_id, goal_id, kind, message) "
                "VALUES (gen_random_uuid(), $1, 'agent_note', 'forged')",
                goal_id,
            )
        # A flood at once: the limit holds exactly, and the refusal is said once.
        flood = await asyncio.gather(
            *(mine.fetchval(note, f"{workspace}-mine", assignment, f"n{i}") for i in range(60))
        )
        numbers = sorted(n for n in flood if n is not None)
        assert numbers == list(range(2, MAX_NOTES_PER_ASSIGNMENT + 1))
    kept = await events(pool, goal_id, "agent_note")
    assert kept[0]["message"] == "on it" and len(kept) == MAX_NOTES_PER_ASSIGNMENT
    assert len(await events(pool, goal_id, "note_rejected")) == 1


async def test_a_goal_served_over_a2a_says_its_newest_note_while_it_works(
    pool: asyncpg.Pool, client: Client, task_queue: str, workspace: str
) -> None:
    word = f"w{uuid.uuid4().hex[:8]}"
    await add_runbook(pool, parse_runbook(runbook_toml(f"{word}-rollout", word), "r.toml"))
    secret = await token(pool, "lead", workspace)
    released = asyncio.Event()
    simulated = SimulatedWork(delay=(0, 0))

    async def hook(work: Work) -> WorkResult:
        if work.task_id == "announce":
            await work.note("drafting the announcement, 1 of 2")
            await released.wait()
        return await simulated(work)

    skills = (*SKILLS, f"planning-{word}")
    working: list[str] = []
    async with (
        running_agents(client, pool, workspace, hook, skills),
        serving(pool, client, task_queue) as url,
        a2a(url, secret) as agent,
    ):
        stream = agent.send_message(asking(ask_for_work(word)))
        ended = {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED}
        try:
            async for item in states(stream, ended):
                if not isinstance(item, tuple):
                    continue  # the deliverable
                state, said = item
                if state == TaskState.TASK_STATE_WORKING:
                    working.append(said)
                    if "drafting the announcement" in said:
                        released.set()
        finally:
            released.set()
    assert state == TaskState.TASK_STATE_COMPLETED, working
    # The newest note is said in every working status until a newer one: once at least.
    noted = next(said for said in working if "drafting the announcement" in said)
    assert noted.endswith(
        f"; agent '{workspace}-agent-0' on task 'announce': drafting the announcement, 1 of 2"
    ) or noted.endswith(
        f"; agent '{workspace}-agent-1' on task 'announce': drafting the announcement, 1 of 2"
    ), noted
