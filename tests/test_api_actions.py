"""The HTTP API's actions, as the person of a personal token, through the workflows' updates."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from goalkeeper.statuses import TaskStatus
from interfaces.api.app import create_app
from interfaces.api.events import stream
from interfaces.api.listener import EventListener
from interfaces.config import Settings
from interfaces.stack import free_port
from store.tokens import new_token
from tests.helpers import PATIENCE, eventually, goal_spec, report, start_goal, wait_task
from tests.starter import starter

PROBLEM = "application/problem+json"
LISTENING = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%goalkeeper_events%'"


async def bearer(pool: asyncpg.Pool, person: str, *workspaces: str) -> dict[str, str]:
    """The header of a new token for `person` in `workspaces` (none named: all of them)."""
    made = await new_token(pool, person, workspaces, all_workspaces=not workspaces)
    return {"Authorization": f"Bearer {made['token']}"}


def refused(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM), (
        response.text
    )
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], body
    return body


async def test_actions_need_a_valid_token_and_never_echo_it(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    body = {"goal_id": "g", "rating": 5}
    missing = await api.post("/feedback", json=body)
    refused(missing, 401, "missing token", "Authorization: Bearer")
    assert missing.headers["www-authenticate"] == "Bearer"
    basic = await api.post("/feedback", json=body, headers={"Authorization": "Basic eDp5"})
    refused(basic, 401, "missing token")
    guess = "not-a-token-" + uuid.uuid4().hex
    unknown = await api.post("/feedback", json=body, headers={"Authorization": f"Bearer {guess}"})
    refused(unknown, 401, "unknown token")
    assert guess not in unknown.text
    for path in ("/goals/g/budget", "/goals/g/stop", "/goals/g/tasks/t/decision"):
        refused(await api.post(path, json={"decision": "approve", "usd": 1}), 401, "missing")
    refused(await api.post("/suggestions/abcd1234/accept"), 401, "missing")


async def test_tokens_made_listed_and_revoked_by_the_cli(
    api: httpx.AsyncClient, database_url: str
) -> None:
    person = f"person-{uuid.uuid4().hex[:6]}"
    unscoped = await starter(database_url, "token", "new", "--as", person)
    assert unscoped.code == 2 and "--workspace W, or --all-workspaces" in unscoped.err
    both = ("--workspace", "ws-a", "--all-workspaces")
    assert (await starter(database_url, "token", "new", "--as", person, *both)).code == 2
    scoped = ("--workspace", "ws-b", "--workspace", "ws-a")
    made = await starter(database_url, "token", "new", "--as", person, *scoped, "--json")
    assert made.code == 0, made.err
    assert (made.json()["workspaces"], made.json()["all_workspaces"]) == (["ws-a", "ws-b"], False)
    token, token_id = made.json()["token"], made.json()["token_id"]
    shown = await starter(database_url, "token", "new", "--as", person, "--all-workspaces")
    assert shown.code == 0 and "not shown again" in shown.out and "all workspaces" in shown.out

    listed = await starter(database_url, "token", "list", "--json")
    assert listed.code == 0, listed.err
    mine = [t for t in listed.json() if t["token_id"] == token_id]
    assert [(t["person"], t["workspaces"], t["revoked_at"]) for t in mine] == [
        (person, ["ws-a", "ws-b"], None)
    ]
    assert "ws-a, ws-b" in (await starter(database_url, "token", "list")).out
    assert token not in listed.out and "token_hash" not in listed.out
    assert token not in (await starter(database_url, "token", "list")).out

    headers = {"Authorization": f"Bearer {token}"}
    unknown_goal = f"goal-{uuid.uuid4().hex[:8]}"
    body = {"goal_id": unknown_goal, "rating": 4}
    # Past the token: the feedback itself is refused, naming the goal.
    refused(await api.post("/feedback", json=body, headers=headers), 404, unknown_goal)

    revoked = await starter(database_url, "token", "revoke", token_id, "--json")
    assert (revoked.code, revoked.json()["token_id"]) == (0, token_id), revoked.err
    answer = await api.post("/feedback", json=body, headers=headers)
    refused(answer, 401, "revoked")
    assert token not in answer.text
    after = (await starter(database_url, "token", "list", "--json")).json()
    assert [t["revoked_at"] is not None for t in after if t["token_id"] == token_id] == [True]

    bad = await starter(database_url, "token", "revoke", "nope")
    assert (bad.code, "expected a token id" in bad.err) == (2, True)


async def test_approval_and_rejection_reach_the_task_as_the_tokens_person(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    tasks = [
        {"id": f"t{i}", "title": f"Sign off {i}", "skill": "writing", "requires_approval": True}
        for i in (1, 2)
    ]
    spec = goal_spec(workspace=workspace, tasks=tasks, approvers=["ops-lead"])
    handle = await start_goal(client, spec, task_queue)
    for task_id in ("t1", "t2"):
        await report(client, await wait_task(client, handle.id, task_id, TaskStatus.ASSIGNED))
        await wait_task(client, handle.id, task_id, TaskStatus.AWAITING_APPROVAL)
    lead = await bearer(pool, "ops-lead", workspace)
    intruder = await bearer(pool, "intruder", workspace)

    path = f"/goals/{handle.id}/tasks/t1/decision"
    denied = await api.post(path, json={"decision": "approve"}, headers=intruder)
    refused(denied, 409, "'intruder' may not decide", "ops-lead")
    await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL)

    approved = await api.post(path, json={"decision": "approve", "comment": "fine"}, headers=lead)
    assert approved.status_code == 200, approved.text
    task = approved.json()["task"]
    assert (task["status"], task["history"][-1]) == ("completed", "ops-lead approved: fine")

    rejected = await api.post(
        f"/goals/{handle.id}/tasks/t2/decision",
        json={"decision": "reject", "comment": "cite sources"},
        headers=lead,
    )
    assert rejected.status_code == 200, rejected.text
    task = rejected.json()["task"]
    assert (task["reworks"], task["history"][-1]) == (1, "ops-lead rejected: cite sources")

    again = await api.post(path, json={"decision": "reject"}, headers=lead)
    refused(again, 409, "already ended")
    bad = await api.post(path, json={"decision": "maybe"}, headers=lead)
    refused(bad, 422, "'maybe'")
    nowhere = await api.post(
        f"/goals/{handle.id}/tasks/t9/decision", json={"decision": "approve"}, headers=lead
    )
    refused(nowhere, 404, f"{handle.id}/t9")
    await handle.terminate("test over")


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned goal", "signed goal"])
async def test_budget_raise_stop_and_feedback_as_the_tokens_person(
    api: httpx.AsyncClient,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    signed: bool,
) -> None:
    """On a goal that requires signatures, the dashboard signs for the token's person."""
    spec = goal_spec(
        workspace=workspace, approvers=["ops-lead"], budget_usd=1.0, require_signatures=signed
    )
    handle = await start_goal(client, spec, task_queue)
    await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    lead = await bearer(pool, "ops-lead", workspace)
    intruder = await bearer(pool, "intruder", workspace)

    budget = f"/goals/{handle.id}/budget"
    refused(await api.post(budget, json={"usd": 5}, headers=intruder), 409, "'intruder'")
    refused(await api.post(budget, json={"comment": "more"}, headers=lead), 422, "neither")
    refused(await api.post(budget, json={"usd": -1}, headers=lead), 422, "usd")
    raised = await api.post(budget, json={"usd": 5, "comment": "worth it"}, headers=lead)
    assert raised.status_code == 200, raised.text
    assert raised.json()["budget_usd"] == 5.0

    stop = f"/goals/{handle.id}/stop"
    refused(await api.post(stop, headers=intruder), 409, "'intruder'")
    stopped = await api.post(stop, json={"comment": "enough"}, headers=lead)
    assert stopped.status_code == 200, stopped.text
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "stopped by 'ops-lead': enough" in str(failed.value.cause)
    refused(await api.post(stop, headers=lead), 404, handle.id)

    given = await api.post(
        "/feedback",
        json={"goal_id": handle.id, "rating": 2, "comment": "stopped early"},
        headers=lead,
    )
    assert given.status_code == 201, given.text
    assert (given.json()["person"], given.json()["rating"]) == ("ops-lead", 2)
    stored = await pool.fetchval("SELECT person FROM feedback WHERE goal_id = $1", handle.id)
    assert stored == "ops-lead"
    wrong = {"goal_id": handle.id, "rating": 9}
    refused(await api.post("/feedback", json=wrong, headers=lead), 422, "got 9")


async def test_suggestions_accepted_and_dismissed_as_the_tokens_person(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    for suggestion_id in ids:
        await pool.execute(
            "INSERT INTO suggestions (suggestion_id, goal_id, kind, subject, message, action) "
            "VALUES ($1, 'g', 'runbook', 'launch', 'add a review step', 'edit the runbook')",
            suggestion_id,
        )
    lead = await bearer(pool, "ops-lead")
    accepted = await api.post(
        f"/suggestions/{ids[0]}/accept", json={"comment": "yes"}, headers=lead
    )
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["decided_by"]) == ("accepted", "ops-lead")
    dismissed = await api.post(f"/suggestions/{str(ids[1])[:8]}/dismiss", headers=lead)
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["status"] == "dismissed"
    refused(await api.post(f"/suggestions/{ids[0]}/dismiss", headers=lead), 409, str(ids[0])[:8])


async def next_event(events: AsyncIterator[str], kind: str) -> dict[str, Any]:
    """Read SSE messages until one of `kind`; a stream that never sends it fails the test."""

    async def read() -> dict[str, Any]:
        async for text in events:
            fields = dict(line.split(": ", 1) for line in text.strip().splitlines() if ": " in line)
            if fields.get("event") == kind:
                event: dict[str, Any] = json.loads(fields["data"])
                assert int(fields["id"]) == event["seq"]
                return event
        raise AssertionError(f"the stream ended before a {kind} event")

    return await asyncio.wait_for(read(), PATIENCE)


async def test_a_goals_event_stream_sends_kept_events_then_new_ones(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    listener = EventListener(pool)
    live = stream(pool, listener, handle.id)
    try:
        started = await next_event(live, "goal_started")
        assigned = await next_event(live, "task_assigned")  # kept before the stream opened
        assert (started["goal_id"], assigned["task_id"]) == (handle.id, "t1")
        await report(client, view)
        completed = await next_event(live, "task_completed")  # announced while it streams
        finished = await next_event(live, "goal_finished")
        assert assigned["seq"] < completed["seq"] < finished["seq"]
    finally:
        await live.aclose()

    resumed = stream(pool, listener, handle.id, after=completed["seq"])
    try:
        first = await asyncio.wait_for(anext(resumed), PATIENCE)
        assert int(first.split("\n")[0].removeprefix("id: ")) > completed["seq"]
    finally:
        await resumed.aclose()
    assert await pool.fetchval(LISTENING) == 0


async def test_the_event_stream_over_http_on_uvicorn(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    port = free_port()
    config = uvicorn.Config(
        create_app(Settings(), pool=pool, client=client), port=port, log_level="info"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        reader = await bearer(pool, "reader", workspace)
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=reader) as http:
            await eventually(lambda: asyncio.sleep(0, server.started), what="uvicorn started")
            missing = await http.get("/goals/no-such-goal/events")
            assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM)
            headers = {"Last-Event-ID": "0"}
            async with http.stream("GET", f"/goals/{handle.id}/events", headers=headers) as got:
                assert got.headers["content-type"].startswith("text/event-stream")
                messages = sse(got.aiter_lines())
                await next_event(messages, "task_assigned")
                await report(client, view)
                finished = await next_event(messages, "goal_finished")
                assert finished["goal_id"] == handle.id

            async def released() -> bool:
                return not await pool.fetchval(LISTENING)

            await eventually(released, what="the stream's connection back in the pool")
    finally:
        server.should_exit = True
        await serving


async def sse(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """SSE messages from a response's lines: each ends at a blank line."""
    text = ""
    async for line in lines:
        if line:
            text += line + "\n"
        elif text:
            yield text
            text = ""


async def test_a_refused_action_is_recorded_in_the_goals_trail(
    api: httpx.AsyncClient, client: Client, task_queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace, approvers=["ops-lead"]), task_queue)
    await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    intruder = await bearer(pool, "intruder", workspace)
    refused(await api.post(f"/goals/{handle.id}/stop", headers=intruder), 409, "'intruder'")
    rows = await pool.fetch(
        "SELECT message, detail FROM events WHERE goal_id = $1 AND kind = 'action_refused'",
        handle.id,
    )
    assert len(rows) == 1 and "stop by 'intruder' refused" in rows[0]["message"]
    assert rows[0]["detail"]["person"] == "intruder"
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
