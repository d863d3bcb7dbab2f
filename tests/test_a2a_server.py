"""Goalkeeper as an A2A agent, called with a2a-sdk's own client over HTTP on uvicorn: its
Agent Card, a question answered, a goal followed through an approval to its deliverable,
a goal stopped by cancelling its task, and hostile calls refused."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from a2a.client import A2ACardResolver, Client, ClientConfig, create_client
from a2a.client.errors import A2AClientError
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from a2a.utils.errors import (
    InvalidParamsError,
    InvalidRequestError,
    TaskNotCancelableError,
    TaskNotFoundError,
)
from temporalio.client import Client as Temporal

from goalkeeper.runbooks import parse_runbook
from interfaces.a2a import server
from interfaces.a2a.tasks import as_json
from interfaces.agents.runner import SimulatedWork, Work, WorkResult
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.stack import free_port
from store import a2a_tasks
from store.runbooks import add_runbook
from store.tokens import new_token, token_holder
from tests.helpers import PATIENCE, eventually, running_agents
from tests.test_runbooks import runbook_toml

PROBLEM = "application/problem+json"
V1 = {"A2A-Version": "1.0"}
SKILLS = ("triage", "research", "writing")


@asynccontextmanager
async def serving(pool: asyncpg.Pool, client: Temporal, task_queue: str) -> AsyncIterator[str]:
    """The API on uvicorn on a free loopback port, starting work on the test's queue."""
    port = free_port()
    app = create_app(Settings(task_queue=task_queue), pool=pool, client=client)
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started), what="uvicorn started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def token(pool: asyncpg.Pool, person: str, workspace: str) -> str:
    made = await new_token(pool, person, [workspace])
    return str(made["token"])


@asynccontextmanager
async def a2a(url: str, secret: str, *, streaming: bool = True) -> AsyncIterator[Client]:
    """a2a-sdk's client for the agent at `url`, from its card, sending `secret` as a
    bearer token."""
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(headers=headers, timeout=PATIENCE) as http:
        client = await create_client(url, ClientConfig(streaming=streaming, httpx_client=http))
        yield client


def asking(text: str, **metadata: Any) -> SendMessageRequest:
    message = Message(role=Role.ROLE_USER, parts=[Part(text=text)], message_id=uuid.uuid4().hex)
    if metadata:
        message.metadata.update(metadata)
    return SendMessageRequest(message=message, configuration=SendMessageConfiguration())


async def stored_runbook(pool: asyncpg.Pool) -> tuple[str, str]:
    """A runbook whose last task needs approval, and the one word only it holds."""
    word = f"w{uuid.uuid4().hex[:8]}"
    runbook = parse_runbook(
        runbook_toml(f"{word}-rollout", word, extra="requires_approval = true"), "r.toml"
    )
    await add_runbook(pool, runbook)
    return runbook.name, word


def ask_for_work(word: str) -> str:
    return f"Do the {word} work for all of the people, please, as soon as it can be done"


def text_of(task: Task) -> str:
    return " ".join(p.text for p in task.status.message.parts)


async def test_the_agent_card_names_the_api_its_tokens_and_a_stored_runbook(
    pool: asyncpg.Pool, client: Temporal, task_queue: str
) -> None:
    name, _ = await stored_runbook(pool)
    async with serving(pool, client, task_queue) as url, httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, url).get_agent_card()
    assert card.name == "Goalkeeper" and card.capabilities.streaming
    assert [i.url for i in card.supported_interfaces] == [f"{url}/a2a"]
    assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
    assert "bearer" in card.security_requirements[0].schemes
    skills = {s.id for s in card.skills}
    assert {"ask", "goal", f"runbook:{name}"} <= skills


async def test_a_short_question_is_answered_as_a_completed_task(
    pool: asyncpg.Pool, client: Temporal, task_queue: str, workspace: str
) -> None:
    secret = await token(pool, "asker", workspace)
    async with (
        running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), SKILLS),
        serving(pool, client, task_queue) as url,
        a2a(url, secret, streaming=False) as agent,
    ):
        answers = [r async for r in agent.send_message(asking("What is our refund policy?"))]
        assert len(answers) == 1 and answers[0].HasField("task")
        task = answers[0].task
        assert task.status.state == TaskState.TASK_STATE_COMPLETED, text_of(task)
        [artifact] = task.artifacts
        assert artifact.name == "answer" and "refund policy" in artifact.parts[0].text
        fetched = await agent.get_task(GetTaskRequest(id=task.id))
        assert fetched.status.state == TaskState.TASK_STATE_COMPLETED
    row = await pool.fetchrow(
        "SELECT workspace, status, answer FROM requests WHERE request_id = $1", f"a2a-{task.id}"
    )
    assert row is not None and (row["workspace"], row["status"]) == (workspace, "answered")
    assert row["answer"] == artifact.parts[0].text


async def states(stream: AsyncIterator[StreamResponse], until: set[Any]) -> AsyncIterator[Any]:
    """Each status update's (state, text) and each artifact of a stream, until a state in
    `until`."""
    async for event in stream:
        if event.HasField("status_update"):
            status = event.status_update.status
            yield status.state, " ".join(p.text for p in status.message.parts)
            if status.state in until:
                return
        elif event.HasField("artifact_update"):
            yield event.artifact_update.artifact


async def test_work_becomes_a_goal_followed_through_its_approval_to_its_deliverable(
    pool: asyncpg.Pool, client: Temporal, task_queue: str, workspace: str
) -> None:
    name, word = await stored_runbook(pool)
    secret = await token(pool, "lead", workspace)
    skills = (*SKILLS, f"planning-{word}")
    seen: list[Any] = []
    async with (
        running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), skills),
        serving(pool, client, task_queue) as url,
        a2a(url, secret) as agent,
        httpx.AsyncClient(base_url=f"{url}/api/v1", headers=bearer(secret)) as api,
    ):
        stream = agent.send_message(asking(ask_for_work(word)))
        ended = {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED}
        input_required = ended | {TaskState.TASK_STATE_INPUT_REQUIRED}
        first = await anext(stream)
        assert first.HasField("task")
        task_id = first.task.id
        goal_id = f"a2a-{task_id}.goal"
        async for item in states(stream, input_required):
            seen.append(item)
        state, asked = seen[-1]
        assert state == TaskState.TASK_STATE_INPUT_REQUIRED, seen
        assert "'announce'" in asked and "awaits approval by lead" in asked
        working = [t for s, t in seen if s == TaskState.TASK_STATE_WORKING]
        assert f"request 'a2a-{task_id}': triaging the question" in working
        assert asked.startswith(f"goal {goal_id!r}: 50% (1 of 2 tasks completed); "), asked
        got = await agent.get_task(GetTaskRequest(id=task_id))
        assert got.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        decided = await api.post(
            f"/goals/{goal_id}/tasks/announce/decision", json={"decision": "approve"}
        )
        assert decided.status_code == 200, decided.text
        rest = [item async for item in states(stream, ended)]
    *artifacts, (state, said) = rest
    assert state == TaskState.TASK_STATE_COMPLETED, rest
    assert said == f"goal {goal_id!r} completed"
    [deliverable] = [a for a in artifacts if not isinstance(a, tuple)]
    stored = await pool.fetchval("SELECT body FROM deliverables WHERE goal_id = $1", goal_id)
    assert deliverable.name == "deliverable" and deliverable.parts[0].text == stored
    goal = await pool.fetchrow("SELECT status, spec FROM goals WHERE goal_id = $1", goal_id)
    assert goal is not None and goal["status"] == "completed"
    assert goal["spec"]["runbook"] == name


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_cancelling_the_task_stops_its_goal_and_other_tokens_see_nothing(
    pool: asyncpg.Pool, client: Temporal, task_queue: str, workspace: str
) -> None:
    _, word = await stored_runbook(pool)
    secret = await token(pool, "lead", workspace)
    other = await token(pool, "lead", workspace)  # the same person, another token
    skills = (*SKILLS, f"planning-{word}")
    async with (
        running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), skills),
        serving(pool, client, task_queue) as url,
        a2a(url, secret) as agent,
        a2a(url, other) as stranger,
    ):
        stream = agent.send_message(asking(ask_for_work(word)))
        first = await anext(stream)
        task_id = first.task.id
        goal_id = f"a2a-{task_id}.goal"
        waiting = {TaskState.TASK_STATE_INPUT_REQUIRED}
        async for _ in states(stream, waiting):
            pass
        for call in (
            stranger.get_task(GetTaskRequest(id=task_id)),
            stranger.cancel_task(CancelTaskRequest(id=task_id)),
        ):
            with pytest.raises(TaskNotFoundError):
                await call
        canceled = await agent.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        assert text_of(canceled) == f"goal {goal_id!r} stopped"
        await stream.aclose()  # type: ignore[attr-defined]

        async def stopped() -> bool:
            status = await pool.fetchval("SELECT status FROM goals WHERE goal_id = $1", goal_id)
            return bool(status == "failed")

        await eventually(stopped, what="the goal stopped")
        stops = await pool.fetch(
            "SELECT message FROM events WHERE goal_id = $1 AND kind = 'goal_stopped'", goal_id
        )
        assert len(stops) == 1 and "lead" in stops[0]["message"], stops
        got = await agent.get_task(GetTaskRequest(id=task_id))
        assert got.status.state == TaskState.TASK_STATE_CANCELED
        with pytest.raises(TaskNotCancelableError):
            await agent.cancel_task(CancelTaskRequest(id=task_id))  # ended


async def test_hostile_calls_are_refused_naming_the_reason(
    pool: asyncpg.Pool,
    client: Temporal,
    task_queue: str,
    workspace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = await token(pool, "asker", workspace)
    started = await pool.fetchval("SELECT count(*) FROM requests WHERE request_id LIKE 'a2a-%'")
    async with serving(pool, client, task_queue) as url, httpx.AsyncClient() as http:
        send = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {
                "message": {"role": "ROLE_USER", "messageId": "m1", "parts": [{"text": "hi?"}]}
            },
        }
        for headers, why in (
            ({}, "expected an 'Authorization: Bearer TOKEN' header"),
            (bearer("not-a-token"), "unknown token"),
            ({"Authorization": f"Basic {secret}"}, "expected an 'Authorization: Bearer TOKEN'"),
        ):
            refused = await http.post(f"{url}/a2a", json=send, headers=V1 | headers)
            assert (refused.status_code, refused.headers["content-type"]) == (401, PROBLEM)
            assert why in refused.json()["detail"]
        huge = {**send, "params": {"message": {"parts": [{"text": "x" * (1024 * 1024)}]}}}
        too_large = await http.post(f"{url}/a2a", json=huge, headers=V1 | bearer(secret))
        assert (too_large.status_code, too_large.headers["content-type"]) == (413, PROBLEM)
        assert "expected a request body of at most" in too_large.json()["detail"]
        malformed = await http.post(
            f"{url}/a2a",
            content=b'{"jsonrpc": "2.0", "id": 1, "method"',
            headers=V1 | bearer(secret),
        )
        assert malformed.json()["error"]["code"] == -32700, malformed.text
        no_parts = {**send, "params": {"message": {"role": "ROLE_USER", "messageId": "m2"}}}
        answered = await http.post(f"{url}/a2a", json=no_parts, headers=V1 | bearer(secret))
        assert answered.json()["error"]["code"] in (-32600, -32602), answered.text
        async with a2a(url, "not-a-token") as forged:
            with pytest.raises(A2AClientError, match="401"):
                await anext(forged.send_message(asking("What is it?")))
        async with a2a(url, secret, streaming=False) as agent:
            with pytest.raises(InvalidParamsError, match="got no text"):
                await anext(agent.send_message(asking("   ")))
            with pytest.raises(InvalidParamsError, match="question"):
                await anext(agent.send_message(asking("why" * 6000)))
            with pytest.raises(InvalidParamsError, match="workspace 'elsewhere'"):
                await anext(agent.send_message(asking("What is it?", workspace="elsewhere")))
            # With no agent at work, the request stays in triage and its task running.
            request = asking("Who approves refunds?")
            request.configuration.return_immediately = True
            [sent] = [r async for r in agent.send_message(request)]
            triaged = sent.task.id

            async def triaging() -> bool:
                task = await agent.get_task(GetTaskRequest(id=triaged))
                return task.status.state == TaskState.TASK_STATE_WORKING

            await eventually(triaging, what="the request in triage")
            monkeypatch.setattr(server, "MAX_TASKS_PER_TOKEN", 1)  # that one is running
            with pytest.raises(InvalidRequestError, match="still running: 1; expected fewer"):
                await anext(agent.send_message(asking("And another?")))
            reply = asking("Approve it")
            reply.message.task_id = triaged
            with pytest.raises(InvalidParamsError, match=f"taskId '{triaged}': expected none"):
                await anext(agent.send_message(reply))
            unknown = str(uuid.uuid4())
            with pytest.raises(TaskNotFoundError):
                await agent.get_task(GetTaskRequest(id=unknown))
            with pytest.raises(TaskNotFoundError):
                await agent.cancel_task(CancelTaskRequest(id=unknown))
    after = await pool.fetchval("SELECT count(*) FROM requests WHERE request_id LIKE 'a2a-%'")
    assert after == started + 1  # nothing refused started a request: only the one in triage
    holder = await token_holder(pool, secret)
    kept = await pool.fetch("SELECT task_id FROM a2a_tasks WHERE token_id = $1", holder.token_id)
    assert [r["task_id"] for r in kept] == [triaged]  # nor kept a task


class TightBudget:
    """Simulated agents whose triage gives the goal a budget its first task spends."""

    def __init__(self) -> None:
        self.work = SimulatedWork(delay=(0, 0))

    async def __call__(self, work: Work) -> WorkResult:
        done = await self.work(work)
        if isinstance(done.result, dict) and done.result.get("kind") == "goal":
            goal = done.result["goal"]
            assert isinstance(goal, dict)
            goal["budget_usd"] = 0.0001
        return done


async def test_a_goal_paused_at_its_budget_requires_input_until_it_is_raised(
    pool: asyncpg.Pool, client: Temporal, task_queue: str, workspace: str
) -> None:
    _, word = await stored_runbook(pool)
    secret = await token(pool, "lead", workspace)
    skills = (*SKILLS, f"planning-{word}")
    waiting = {TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_FAILED}
    async with (
        running_agents(client, pool, workspace, TightBudget(), skills),
        serving(pool, client, task_queue) as url,
        a2a(url, secret) as agent,
        httpx.AsyncClient(base_url=f"{url}/api/v1", headers=bearer(secret)) as api,
    ):
        stream = agent.send_message(asking(ask_for_work(word)))
        task_id = (await anext(stream)).task.id
        goal_id = f"a2a-{task_id}.goal"
        seen = [item async for item in states(stream, waiting)]
        state, asked = seen[-1]
        assert state == TaskState.TASK_STATE_INPUT_REQUIRED, seen
        assert "paused: budget" in asked and "Asked of lead: raise its budget" in asked
        assert f"POST /api/v1/goals/{goal_id}/budget" in asked
        raised = await api.post(f"/goals/{goal_id}/budget", json={"usd": 10})
        assert raised.status_code == 200, raised.text
        seen = [item async for item in states(stream, waiting)]
        state, asked = seen[-1]
        assert state == TaskState.TASK_STATE_INPUT_REQUIRED, seen
        assert "'announce'" in asked and "awaits approval by lead" in asked
        assert "paused" not in asked  # the raise let the goal go on to its next task
        await stream.aclose()  # type: ignore[attr-defined]


async def test_a_goal_stopped_elsewhere_is_a_failed_task_with_the_reason(
    pool: asyncpg.Pool, client: Temporal, task_queue: str, workspace: str
) -> None:
    _, word = await stored_runbook(pool)
    secret = await token(pool, "lead", workspace)
    skills = (*SKILLS, f"planning-{word}")
    ended = {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED}
    async with (
        running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), skills),
        serving(pool, client, task_queue) as url,
        a2a(url, secret) as agent,
        httpx.AsyncClient(base_url=f"{url}/api/v1", headers=bearer(secret)) as api,
    ):
        stream = agent.send_message(asking(ask_for_work(word)))
        task_id = (await anext(stream)).task.id
        goal_id = f"a2a-{task_id}.goal"
        async for _ in states(stream, ended | {TaskState.TASK_STATE_INPUT_REQUIRED}):
            pass
        stopped = await api.post(f"/goals/{goal_id}/stop", json={"comment": "not now"})
        assert stopped.status_code == 200, stopped.text
        rest = [item async for item in states(stream, ended)]
    state, said = rest[-1]
    assert state == TaskState.TASK_STATE_FAILED, rest
    assert said.startswith(f"request 'a2a-{task_id}' failed: goal failed: goal {goal_id!r}")
    assert "stopped by 'lead': not now" in said, said


async def test_cancelling_in_triage_ends_the_request_canceled_with_no_goal(
    pool: asyncpg.Pool, client: Temporal, task_queue: str, workspace: str
) -> None:
    secret = await token(pool, "asker", workspace)
    async with (
        serving(pool, client, task_queue) as url,
        a2a(url, secret, streaming=False) as agent,
    ):
        request = asking(ask_for_work("triage-only"))
        request.configuration.return_immediately = True
        [sent] = [r async for r in agent.send_message(request)]
        task_id = sent.task.id
        request_id = f"a2a-{task_id}"

        async def triaging() -> bool:
            status = await pool.fetchval(
                "SELECT status FROM goals WHERE goal_id = $1", f"{request_id}.triage"
            )
            return bool(status == "running")

        await eventually(triaging, what="the triage goal running")  # no agent takes it
        canceled = await agent.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        assert text_of(canceled) == f"request {request_id!r} canceled while triaged"

        async def ended() -> bool:
            status = await pool.fetchval(
                "SELECT status FROM requests WHERE request_id = $1", request_id
            )
            return bool(status == "canceled")

        await eventually(ended, what="the request canceled")
        row = await pool.fetchrow(
            "SELECT error, goal_id, ended_at FROM requests WHERE request_id = $1", request_id
        )
        assert row is not None and row["goal_id"] is None and row["ended_at"] is not None
        assert row["error"] == "canceled by its caller while triaged"
        triage = await pool.fetchrow(
            "SELECT status, error FROM goals WHERE goal_id = $1", f"{request_id}.triage"
        )
        assert triage is not None and triage["status"] == "failed"
        assert f"request {request_id!r} canceled" in triage["error"], triage["error"]
        started = await pool.fetchval(
            "SELECT count(*) FROM goals WHERE goal_id = $1", f"{request_id}.goal"
        )
        assert started == 0
        with pytest.raises(TaskNotCancelableError):  # a replayed cancel changes nothing
            await agent.cancel_task(CancelTaskRequest(id=task_id))
        got = await agent.get_task(GetTaskRequest(id=task_id))
        assert got.status.state == TaskState.TASK_STATE_CANCELED
    final = await pool.fetchrow("SELECT state, final FROM a2a_tasks WHERE task_id = $1", task_id)
    assert final is not None and (final["state"], final["final"]) == ("TASK_STATE_CANCELED", True)


async def test_tasks_outlive_a_restart_and_are_followed_to_their_end(
    pool: asyncpg.Pool,
    client: Temporal,
    task_queue: str,
    workspace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, word = await stored_runbook(pool)
    secret = await token(pool, "lead", workspace)
    other = await token(pool, "lead", workspace)
    skills = (*SKILLS, f"planning-{word}")
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), skills):
        async with serving(pool, client, task_queue) as url, a2a(url, secret) as agent:
            stream = agent.send_message(asking(ask_for_work(word)))
            task_id = (await anext(stream)).task.id
            goal_id = f"a2a-{task_id}.goal"
            async for _ in states(stream, {TaskState.TASK_STATE_INPUT_REQUIRED}):
                pass
            await stream.aclose()  # type: ignore[attr-defined]
        # The API is gone; the goal waits for its approval, and the task is kept.
        row = await pool.fetchrow(
            "SELECT state, final, goal_id, person, workspace FROM a2a_tasks WHERE task_id = $1",
            task_id,
        )
        assert row is not None and dict(row) == {
            "state": "TASK_STATE_INPUT_REQUIRED",
            "final": False,
            "goal_id": goal_id,
            "person": "lead",
            "workspace": workspace,
        }
        async with (
            serving(pool, client, task_queue) as url,
            a2a(url, secret, streaming=False) as agent,
            a2a(url, other, streaming=False) as stranger,
            httpx.AsyncClient(base_url=f"{url}/api/v1", headers=bearer(secret)) as api,
        ):
            got = await agent.get_task(GetTaskRequest(id=task_id))
            assert got.status.state == TaskState.TASK_STATE_INPUT_REQUIRED, text_of(got)
            assert "'announce'" in text_of(got) and "awaits approval by lead" in text_of(got)
            assert got.history[0].parts[0].text == ask_for_work(word)
            with pytest.raises(TaskNotFoundError):
                await stranger.get_task(GetTaskRequest(id=task_id))
            monkeypatch.setattr(server, "MAX_TASKS_PER_TOKEN", 1)  # the kept task counts
            with pytest.raises(InvalidRequestError, match="still running: 1; expected fewer"):
                await anext(agent.send_message(asking("And another?")))
            decided = await api.post(
                f"/goals/{goal_id}/tasks/announce/decision", json={"decision": "approve"}
            )
            assert decided.status_code == 200, decided.text

            async def completed() -> Task | None:
                task = await agent.get_task(GetTaskRequest(id=task_id))
                return task if task.status.state == TaskState.TASK_STATE_COMPLETED else None

            done = await eventually(completed, what="the task followed again to its end")
    assert text_of(done) == f"goal {goal_id!r} completed"
    [deliverable] = done.artifacts
    stored = await pool.fetchval("SELECT body FROM deliverables WHERE goal_id = $1", goal_id)
    assert deliverable.name == "deliverable" and deliverable.parts[0].text == stored
    said = [" ".join(p.text for p in m.parts) for m in done.history[1:]]
    assert said == list(dict.fromkeys(said)), said  # each change said once
    final = await pool.fetchval("SELECT final FROM a2a_tasks WHERE task_id = $1", task_id)
    assert final is True


async def test_a_task_in_triage_is_canceled_after_a_restart(
    pool: asyncpg.Pool, client: Temporal, task_queue: str, workspace: str
) -> None:
    secret = await token(pool, "asker", workspace)
    request = asking("Who approves refunds after the restart?")
    request.configuration.return_immediately = True
    async with (
        serving(pool, client, task_queue) as url,
        a2a(url, secret, streaming=False) as agent,
    ):
        [sent] = [r async for r in agent.send_message(request)]
    task_id = sent.task.id
    request_id = f"a2a-{task_id}"
    async with (
        serving(pool, client, task_queue) as url,
        a2a(url, secret, streaming=False) as agent,
    ):

        async def triaging() -> bool:
            task = await agent.get_task(GetTaskRequest(id=task_id))
            return text_of(task) == f"request {request_id!r}: triaging the question"

        await eventually(triaging, what="the task followed again, in triage")
        canceled = await agent.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        assert text_of(canceled) == f"request {request_id!r} canceled while triaged"

        async def ended() -> bool:
            status = await pool.fetchval(
                "SELECT status FROM requests WHERE request_id = $1", request_id
            )
            return bool(status == "canceled")

        await eventually(ended, what="the request canceled")
        await asyncio.sleep(2 * server.POLL_SECONDS)  # its follower reads the end, writes nothing
        got = await agent.get_task(GetTaskRequest(id=task_id))
        assert got.status.state == TaskState.TASK_STATE_CANCELED
        assert text_of(got) == f"request {request_id!r} canceled while triaged"
        with pytest.raises(TaskNotCancelableError):
            await agent.cancel_task(CancelTaskRequest(id=task_id))


async def test_a_kept_task_whose_request_never_started_fails_saying_so(
    pool: asyncpg.Pool,
    client: Temporal,
    task_queue: str,
    workspace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = await token(pool, "asker", workspace)
    holder = await token_holder(pool, secret)
    task_id = str(uuid.uuid4())
    kept = Task(id=task_id, context_id="c1", history=[asking("Still there?").message])
    owner = {"token_id": holder.token_id, "person": "asker", "workspace": workspace}
    # As an API that stopped between keeping the task and starting its request left it.
    await a2a_tasks.claim(
        pool, task_id, owner, f"a2a-{task_id}", "TASK_STATE_SUBMITTED", as_json(kept), 32
    )
    monkeypatch.setattr(server, "UNKNOWN_READS", 2)
    async with (
        serving(pool, client, task_queue) as url,
        a2a(url, secret, streaming=False) as agent,
    ):

        async def failed() -> Task | None:
            task = await agent.get_task(GetTaskRequest(id=task_id))
            return task if task.status.state == TaskState.TASK_STATE_FAILED else None

        task = await eventually(failed, what="the kept task failed")
    assert text_of(task) == (
        f"request 'a2a-{task_id}' was never started (the API stopped as it started it): "
        "send the message again"
    )
    final = await pool.fetchval("SELECT final FROM a2a_tasks WHERE task_id = $1", task_id)
    assert final is True  # it no longer counts against the token's limit
