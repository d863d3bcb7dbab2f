"""The dashboard's Ask box and New goal form, rendered by the server and posted as their
page posts (the signed-in browser's cookie, the page's own Origin): what they offer, the
work they start in Temporal and the read model, and what they refuse."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from goalkeeper.runbooks import parse_runbook
from goalkeeper.statuses import TaskStatus
from interfaces.agents.runner import SimulatedWork
from interfaces.api.app import create_app
from interfaces.config import Settings
from store.runbooks import add_runbook
from store.tokens import new_token
from tests.helpers import eventually, one_row, running_agents, wait_task
from tests.test_api_work import never_started, refused
from tests.test_pages import text
from tests.test_runbooks import runbook_toml

HERE = "http://localhost"
"""The page's own Origin, as a browser sends it with the page's actions."""


@pytest.fixture
async def site(
    pool: asyncpg.Pool, client: Client, task_queue: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The dashboard with closed reads, starting work on the test's task queue."""
    app = create_app(Settings(task_queue=task_queue), pool=pool, client=client)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=HERE) as http,
    ):
        yield http


async def signed_in(
    site: httpx.AsyncClient, pool: asyncpg.Pool, person: str, *workspaces: str
) -> httpx.AsyncClient:
    """`site` signed in at /login as `person` of `workspaces` (all of them if none), as a
    browser does: the token is kept in the cookie."""
    made = await new_token(pool, person, workspaces, all_workspaces=not workspaces)
    site.cookies.clear()
    answer = await site.post("/login", data={"token": made["token"], "next": "/start"})
    assert answer.status_code == 303, answer.text
    return site


async def post(site: httpx.AsyncClient, path: str, body: Any, origin: str = HERE) -> httpx.Response:
    """POST `body` as the page's script does: JSON, with the cookie and the page's Origin."""
    return await site.post(path, json=body, headers={"Origin": origin})


async def new_runbook(pool: asyncpg.Pool) -> str:
    name = f"rb-{uuid.uuid4().hex[:8]}"
    await add_runbook(pool, parse_runbook(runbook_toml(name, "zebra"), f"{name}.toml"))
    return name


async def test_the_forms_offer_the_runbooks_with_their_parameters_and_the_tokens_workspaces(
    site: httpx.AsyncClient, pool: asyncpg.Pool, workspace: str
) -> None:
    name = await new_runbook(pool)
    refused_page = await site.get("/start")
    assert refused_page.status_code == 401 and 'id="sign-in"' in refused_page.text

    other = f"ws-{uuid.uuid4().hex[:8]}"
    await signed_in(site, pool, "planner", workspace, other)
    html = (await site.get("/start", params={"runbook": name})).text
    assert 'data-post="/api/v1/requests"' in html and 'data-post="/api/v1/goals"' in html
    assert f'<option value="{name}" data-version="1" selected>' in html
    assert "Prepare the zebra rollout" in text(html)
    fieldset = html.split(f'data-choice="{name}"')[1].split("</fieldset>")[0]
    # region has a default (shown, not required); owner has none, so it is required.
    assert 'name="parameters.region"' in fieldset and 'placeholder="EU"' in fieldset
    owner = fieldset.split('name="parameters.owner"')[1].split(">")[0]
    assert "required" in owner
    # Only the token's workspaces are offered.
    offered = html.split('name="workspace"')[1].split("</select>")[0]
    assert f"<option>{workspace}</option>" in offered and f"<option>{other}</option>" in offered
    assert offered.count("<option>") == 2

    await signed_in(site, pool, "admin")
    anywhere = (await site.get("/start")).text
    assert '<input name="workspace" placeholder="default"' in anywhere


async def test_with_open_reads_the_forms_show_but_say_a_token_is_needed(
    api: httpx.AsyncClient,
) -> None:
    html = (await api.get(f"{HERE}/start")).text
    assert "Starting work needs a personal token" in text(html)
    refused(await api.post("/requests", json={"question": "q?"}), 401, "missing token")


async def test_a_question_asked_from_the_page_is_followed_to_its_answer(
    site: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    await signed_in(site, pool, "asker", workspace)
    request_id = f"request-{uuid.uuid4().hex[:8]}"
    body = {"question": "What is our refund policy?", "request_id": request_id}
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), ("triage",)):
        asked = await post(site, "/api/v1/requests", body)
        assert asked.status_code == 202, asked.text
        assert asked.json()["request_id"] == request_id
        described = await client.get_workflow_handle(request_id).describe()
        assert described.workflow_type == "RequestWorkflow"

        async def answered() -> Any:
            html = (await site.get(f"/requests/{request_id}")).text
            return html if 'data-status="answered"' in html else None

        html = await eventually(answered, what="the request page showing its answer")
    row = await one_row(pool, "SELECT * FROM requests WHERE request_id = $1", request_id)
    assert (row["workspace"], row["status"]) == (workspace, "answered")
    shown = text(html)
    assert "What is our refund policy?" in shown and row["answer"][:40] in shown
    assert "data-refresh" not in html  # ended: the page stops re-reading itself


async def test_a_goal_started_from_the_form_runs_from_its_runbook(
    site: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    name = await new_runbook(pool)
    await signed_in(site, pool, "planner", workspace)
    goal_id = f"goal-{uuid.uuid4().hex[:8]}"
    form = {
        "title": "Zebra rollout",
        "runbook": name,
        "workspace": workspace,
        "goal_id": goal_id,
        "parameters": {"owner": "ops"},
    }
    started = await post(site, "/api/v1/goals", form)
    assert started.status_code == 202, started.text
    assert started.json()["goal_id"] == goal_id
    assert (await client.get_workflow_handle(goal_id).describe()).workflow_type == "GoalWorkflow"
    await wait_task(client, goal_id, "plan", TaskStatus.ASSIGNED)
    row = await one_row(pool, "SELECT workspace, title FROM goals WHERE goal_id = $1", goal_id)
    assert dict(row) == {"workspace": workspace, "title": "Zebra rollout"}
    shown = text((await site.get(f"/goals/{goal_id}")).text)
    # The runbook's default filled region, the form's value owner.
    assert "Zebra rollout" in shown and "Plan the zebra rollout in EU for ops" in shown
    await client.get_workflow_handle(goal_id).terminate()


async def test_the_forms_start_nothing_beyond_the_token_or_from_elsewhere_and_say_why(
    site: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    name = await new_runbook(pool)
    theirs = f"ws-{uuid.uuid4().hex[:8]}"
    await signed_in(site, pool, "planner", workspace)
    goal_id = f"goal-{uuid.uuid4().hex[:8]}"
    form = {"title": "t", "runbook": name, "goal_id": goal_id, "parameters": {"owner": "o"}}

    body = refused(await post(site, "/api/v1/goals", {**form, "workspace": theirs}), 403, theirs)
    assert body["workspace"] == theirs
    question = {"question": "q?", "workspace": theirs, "request_id": goal_id}
    refused(await post(site, "/api/v1/requests", question), 403, repr(theirs))
    # Another site's page, or a script that hides its Origin, cannot use the cookie.
    refused(await post(site, "/api/v1/goals", form, "http://evil.example"), 403, "evil.example")
    bare = await site.post("/api/v1/goals", json=form)
    assert refused(bare, 403, "got None")["title"] == "Cross-origin action"

    # Bad values are refused naming them, as the page shows next to the form.
    for fields, word in (
        ({"parameters": {}}, "needs ['owner']"),
        ({"parameters": {"owner": "o", "colour": "red"}}, "['colour']"),
        ({"goal_id": "bad id!"}, "'bad id!'"),
        ({"runbook": "no-such-runbook"}, "no-such-runbook"),
        ({"title": ""}, "title"),
    ):
        refused(await post(site, "/api/v1/goals", {**form, **fields}), 422, word)
    refused(await post(site, "/api/v1/requests", {"question": " "}), 422, "question")
    await never_started(client, pool, goal_id)

    # A request of another workspace is not shown, as an unknown one is not.
    outsider = f"request-{uuid.uuid4().hex[:8]}"
    await signed_in(site, pool, "other", theirs)
    asked = await post(site, "/api/v1/requests", {"question": "mine?", "request_id": outsider})
    assert asked.status_code == 202, asked.text
    await signed_in(site, pool, "planner", workspace)
    hidden = await site.get(f"/requests/{outsider}")
    assert hidden.status_code == 404 and repr(outsider) in text(hidden.text)
    await client.get_workflow_handle(outsider).terminate()


async def test_a_question_that_becomes_a_goal_is_followed_to_that_goal(
    site: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    await signed_in(site, pool, "asker", workspace)
    # Words no runbook holds, so the simulated triage sets a goal of its own tasks.
    question = f"Zorblat the {uuid.uuid4().hex} quux with vorpal snickersnee and jabberwock"
    skills = ("triage", "research", "writing")
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), skills):
        asked = await post(site, "/api/v1/requests", {"question": question})
        assert asked.status_code == 202, asked.text
        request_id = asked.json()["request_id"]

        async def completed() -> Any:
            html = (await site.get(f"/requests/{request_id}")).text
            return html if 'data-status="completed"' in html and "100.0 %" in html else None

        html = await eventually(completed, what="the request page following its goal to the end")
    goal_id = await pool.fetchval("SELECT goal_id FROM requests WHERE request_id = $1", request_id)
    assert goal_id and f'<a class="title" href="/goals/{goal_id}">' in html
    assert "no runbook fits it" in text(html)  # why triage set a goal
