"""Work started over HTTP as a token's person: questions, goals from specs and runbooks,
tasks added to a running goal; and hostile input refused, naming the value, starting
nothing."""

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from goalkeeper.runbooks import parse_runbook
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.starting import INLINE_SPEC_BYTES
from store.runbooks import add_runbook
from store.tokens import new_token
from tests.helpers import (
    SimulatedAgents,
    events,
    eventually,
    goal_spec,
    new_goal_id,
    wait_task,
)
from tests.test_runbooks import runbook_toml
from workflows.goal import GoalWorkflow

PROBLEM = "application/problem+json"
LIMIT = 32 * 1024
"""The body limit of the test's app: small, so an oversized body is cheap to send."""


@asynccontextmanager
async def serving(
    pool: asyncpg.Pool, client: Client, task_queue: str, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The API, in process, starting work on the test's own task queue."""
    app = create_app(Settings(task_queue=task_queue, **settings), pool=pool, client=client)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as http,
    ):
        yield http


@pytest.fixture
async def http(
    pool: asyncpg.Pool, client: Client, task_queue: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a small body limit, so an oversized body is cheap to send."""
    async with serving(pool, client, task_queue, api_max_body_bytes=LIMIT) as http:
        yield http


async def bearer(pool: asyncpg.Pool, person: str, *workspaces: str) -> dict[str, str]:
    made = await new_token(pool, person, workspaces)
    return {"Authorization": f"Bearer {made['token']}"}


def refused(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM), (
        response.status_code,
        response.text,
    )
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], body
    return body


async def never_started(client: Client, pool: asyncpg.Pool, workflow_id: str) -> None:
    """Nothing of `workflow_id` exists: no workflow, no goal or request row, no event (the
    CLI refuses such input before it starts anything, and records nothing either)."""
    with pytest.raises(RPCError) as raised:
        await client.get_workflow_handle(workflow_id).describe()
    assert raised.value.status is RPCStatusCode.NOT_FOUND
    assert await pool.fetchval("SELECT count(*) FROM goals WHERE goal_id = $1", workflow_id) == 0
    assert (
        await pool.fetchval("SELECT count(*) FROM requests WHERE request_id = $1", workflow_id) == 0
    )
    assert await pool.fetchval("SELECT count(*) FROM events WHERE goal_id = $1", workflow_id) == 0


async def read_when_recorded(http: httpx.AsyncClient, location: str, headers: Any) -> Any:
    async def probe() -> Any:
        found = await http.get(location, headers=headers)
        return found.json() if found.status_code == 200 else None

    return await eventually(probe, what=f"{location} readable")


async def test_a_question_asked_over_http_runs_as_a_request(
    http: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    asker = await bearer(pool, "asker", workspace)
    request_id = f"request-{uuid.uuid4().hex[:8]}"
    body = {"question": "Who approves refunds?", "request_id": request_id}
    asked = await http.post("/api/v1/requests", json=body, headers=asker)
    assert asked.status_code == 202, asked.text
    location = f"/api/v1/requests/{request_id}"
    assert asked.json() == {"request_id": request_id, "location": location}
    assert asked.headers["location"] == location

    async def recorded() -> Any:
        found = await http.get(location, headers=asker)
        return found.json() if found.json().get("source") == "read_model" else None

    view = await eventually(recorded, what="the request in the read model")
    # The token's only workspace, since the body named none.
    assert (view["workspace"], view["status"], view["question"]) == (
        workspace,
        "triaging",
        "Who approves refunds?",
    )
    await wait_task(client, f"{request_id}.triage", "triage", TaskStatus.ASSIGNED)

    again = await http.post("/api/v1/requests", json=body, headers=asker)
    refused(again, 409, repr(request_id), "already exists")
    outsider = await bearer(pool, "outsider", f"ws-{uuid.uuid4().hex[:6]}")
    refused(await http.get(location, headers=outsider), 404, repr(request_id))


async def test_goals_start_from_a_spec_and_from_a_runbook_and_run_to_the_end(
    http: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    person = await bearer(pool, "planner", workspace)
    started = await http.post("/api/v1/goals", json=goal_spec(2, workspace), headers=person)
    assert started.status_code == 202, started.text
    goal_id = started.json()["goal_id"]
    assert started.headers["location"] == f"/api/v1/goals/{goal_id}"
    async with SimulatedAgents(client, pool, goal_id):
        report = await client.get_workflow_handle_for(GoalWorkflow.run, goal_id).result()
    assert report.status is GoalStatus.COMPLETED
    read = await read_when_recorded(http, started.headers["location"], person)
    assert (read["status"], read["tasks_completed"]) == ("completed", 2)
    again = {**goal_spec(1, workspace), "goal_id": goal_id}
    refused(await http.post("/api/v1/goals", json=again, headers=person), 409, repr(goal_id))

    name = f"rb-{uuid.uuid4().hex[:8]}"
    await add_runbook(pool, parse_runbook(runbook_toml(name, "zebra"), f"{name}.toml"))
    spec = {
        "title": "Zebra rollout",
        "workspace": workspace,
        "runbook": name,
        "parameters": {"owner": "ops", "region": "US"},
    }
    started = await http.post("/api/v1/goals", json=spec, headers=person)
    assert started.status_code == 202, started.text
    goal_id = started.json()["goal_id"]
    async with SimulatedAgents(client, pool, goal_id):
        report = await client.get_workflow_handle_for(GoalWorkflow.run, goal_id).result()
    assert report.status is GoalStatus.COMPLETED
    tasks = (await http.get(f"/api/v1/goals/{goal_id}/tasks", headers=person)).json()["items"]
    assert [(t["task_id"], t["status"]) for t in tasks] == [
        ("plan", "completed"),
        ("announce", "completed"),
    ]
    assert tasks[0]["title"] == "Plan the zebra rollout in US for ops"


async def test_tasks_are_added_to_a_running_goal_signed_for_its_approver(
    http: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    lead = await bearer(pool, "ops-lead", workspace)
    spec = goal_spec(1, workspace, approvers=["ops-lead"], require_signatures=True)
    started = await http.post("/api/v1/goals", json=spec, headers=lead)
    assert started.status_code == 202, started.text
    goal_id = started.json()["goal_id"]
    await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    path = f"/api/v1/goals/{goal_id}/tasks"
    more = {"tasks": [{"id": "t2", "title": "Check it", "skill": "writing"}], "reason": "found"}

    intern = await bearer(pool, "intern", workspace)
    refused(await http.post(path, json=more, headers=intern), 409, "'intern'", "ops-lead")
    outsider = await bearer(pool, "ops-lead", f"ws-{uuid.uuid4().hex[:6]}")
    refused(await http.post(path, json=more, headers=outsider), 404, repr(goal_id))
    taken = {"tasks": [{"id": "t1", "title": "Again", "skill": "writing"}], "reason": "x"}
    refused(await http.post(path, json=taken, headers=lead), 409, "'t1'")
    refused(await http.post(path, json={**more, "reason": " "}, headers=lead), 422, "reason")

    added = await http.post(path, json=more, headers=lead)
    assert added.status_code == 201, added.text
    assert added.headers["location"] == path
    assert added.json()["progress"]["tasks_total"] == 2
    await wait_task(client, goal_id, "t2", TaskStatus.ASSIGNED)
    [event] = await pool.fetch(
        "SELECT message FROM events WHERE goal_id = $1 AND kind = 'tasks_added'", goal_id
    )
    assert "ops-lead" in event["message"], event


async def test_hostile_input_is_refused_naming_the_value_and_starts_nothing(
    http: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    person = await bearer(pool, "someone", workspace)
    goal_id = new_goal_id()
    spec = goal_spec(1, workspace, goal_id=goal_id)

    refused(await http.post("/api/v1/goals", json=spec), 401, "missing token")
    refused(await http.post("/api/v1/requests", json={"question": "q?"}), 401, "missing token")
    refused(await http.post(f"/api/v1/goals/{goal_id}/tasks", json={}), 401, "missing token")

    elsewhere = await bearer(pool, "someone", f"ws-{uuid.uuid4().hex[:6]}")
    body = refused(await http.post("/api/v1/goals", json=spec, headers=elsewhere), 403, workspace)
    assert body["workspace"] == workspace
    question = {"question": "q?", "workspace": workspace, "request_id": goal_id}
    refused(await http.post("/api/v1/requests", json=question, headers=elsewhere), 403, workspace)

    json_header = person | {"Content-Type": "application/json"}
    malformed = await http.post("/api/v1/goals", content=b'{"title": ', headers=json_header)
    refused(malformed, 422, "decode error")
    refused(await http.post("/api/v1/goals", json=[spec], headers=person), 422, "dictionary")

    refused(await http.post("/api/v1/goals", json={**spec, "workspace": 5}, headers=person), 422)
    huge = {**spec, "description": "x" * (LIMIT + 1)}
    refused(await http.post("/api/v1/goals", json=huge, headers=person), 413, f"{LIMIT:,} bytes")

    bad: dict[str, tuple[dict[str, Any], str]] = {
        "unknown runbook": ({"runbook": "no-such-runbook", "tasks": []}, "no runbook"),
        "failing validation": (
            {"tasks": [{"id": "t1", "title": "a", "skill": "s", "depends_on": ["nope"]}]},
            "'nope'",
        ),
        "bad goal id": ({"goal_id": "bad id!"}, "'bad id!'"),
        "goal id no string": ({"goal_id": 5}, "goal_id"),
    }
    for what, (fields, word) in bad.items():
        answer = await http.post("/api/v1/goals", json={**spec, **fields}, headers=person)
        found = refused(answer, 422, word)
        assert found["title"] == "Invalid goal spec", (what, found)
    name = f"rb-{uuid.uuid4().hex[:8]}"
    await add_runbook(pool, parse_runbook(runbook_toml(name, "zebra"), f"{name}.toml"))
    for parameters, word in (
        ({"owner": "ops", "colour": "red"}, "['colour'] are not parameters"),
        ({}, "needs ['owner'], which have no default"),
    ):
        fields = {"runbook": name, "parameters": parameters, "tasks": []}
        answer = await http.post("/api/v1/goals", json={**spec, **fields}, headers=person)
        refused(answer, 422, word)

    for fields, word in (
        ({"question": "  "}, "question"),
        ({"question": "q?", "request_id": "bad id!"}, "'bad id!'"),
        ({"question": "q?", "request_id": "r" * 101}, "at most 100"),
        ({"question": "q?", "colour": "red"}, "colour"),
    ):
        answer = await http.post("/api/v1/requests", json=fields, headers=person)
        refused(answer, 422, word)
    await never_started(client, pool, goal_id)
    await never_started(client, pool, "r" * 101)


async def test_a_spec_only_its_workflow_can_judge_is_rejected_there_and_recorded(
    http: httpx.AsyncClient, pool: asyncpg.Pool, workspace: str
) -> None:
    person = await bearer(pool, "someone", workspace)
    parent = {"goal_id": "elsewhere", "goal_run_id": "run", "task_id": "t1", "depth": 1}
    started = await http.post(
        "/api/v1/goals", json=goal_spec(1, workspace, parent=parent), headers=person
    )
    assert started.status_code == 202, started.text
    # Only Temporal knows who started a goal: its workflow rejects the claimed parent and
    # records why, exactly as for a spec the CLI started.
    goal = await read_when_recorded(http, started.headers["location"], person)
    assert goal["status"] == "rejected"
    assert "sub-goals are started by their goal" in goal["error"], goal
    [event] = await events(pool, goal["goal_id"], "goal_rejected")
    assert "'elsewhere'" in event["message"]


async def test_a_large_spec_goes_to_its_goal_by_reference(
    pool: asyncpg.Pool, client: Client, task_queue: str, workspace: str
) -> None:
    person = await bearer(pool, "someone", workspace)
    tasks = [
        {"id": f"t{i}", "title": f"Task {i}", "skill": "writing", "guidance": "g" * 16_000}
        for i in range(1, 21)
    ]
    spec = goal_spec(workspace=workspace, goal_id=new_goal_id(), tasks=tasks)
    assert INLINE_SPEC_BYTES < len(json.dumps(spec)) < Settings().api_max_body_bytes
    async with serving(pool, client, task_queue) as http:
        started = await http.post("/api/v1/goals", json=spec, headers=person)
    assert started.status_code == 202, started.text
    goal_id = started.json()["goal_id"]
    assert goal_id == spec["goal_id"]
    stored = "SELECT count(*) FROM goal_specs WHERE spec->>'goal_id' = $1"
    assert await pool.fetchval(stored, goal_id) == 1
    history = client.get_workflow_handle(goal_id).fetch_history_events()
    first = await history.__anext__()
    started_with = first.workflow_execution_started_event_attributes.input.payloads[0].data
    assert len(started_with) < 1024 and b"spec_ref" in started_with
    await wait_task(client, goal_id, "t20", TaskStatus.ASSIGNED)
