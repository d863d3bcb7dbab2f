"""The dashboard's pages, rendered by the server from the real stack's read model."""

import re
import uuid
from html import unescape
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client

from goalkeeper.statuses import TaskStatus
from tests.helpers import eventually, goal_spec, report, start_goal, wait_task

ROOT = "http://localhost"
WEB = Path(__file__).resolve().parent.parent / "interfaces" / "web"
PAGES = ("/", "/approvals", "/agents", "/costs", "/suggestions", "/health")


async def page(api: httpx.AsyncClient, path: str, expect: int = 200, **params: Any) -> str:
    response = await api.get(ROOT + path, params=params)
    assert response.status_code == expect, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def text(html: str) -> str:
    """What a person reads on the page: tags gone, whitespace squeezed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


async def test_every_page_renders_and_fetches_nothing_from_elsewhere(
    api: httpx.AsyncClient,
) -> None:
    for path in PAGES:
        html = await page(api, path)
        assert "<nav>" in html and 'href="/approvals"' in html, path
        # Nothing fetched from the internet: every script, stylesheet and image is ours.
        assert not re.findall(r'(?:src|href)="(?://|https?:)', html), path
    for asset in ("style.css", "live.js"):
        response = await api.get(f"{ROOT}/static/{asset}")
        assert response.status_code == 200
        assert not re.findall(r"https?://|url\(//", response.text), asset
    # The package ships its assets: the wheel's package data names them.
    assert {p.name for p in (WEB / "static").iterdir()} == {"style.css", "live.js"}


async def test_goals_page_shows_progress_as_the_api_does_and_filters(
    api: httpx.AsyncClient, client: Client, task_queue: str, workspace: str
) -> None:
    handle = await start_goal(client, goal_spec(4, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, view)

    async def one_done() -> Any:
        body = (await api.get(f"/goals/{handle.id}")).json()
        return body if body.get("tasks_completed") == 1 else None

    goal = await eventually(one_done, what="one task done in the read model")
    html = await page(api, "/", workspace=workspace)
    assert f'aria-valuenow="{goal["progress_percentage"]}"' in html
    assert f'data-goal="{handle.id}"' in html
    shown = text(html)
    assert "25.0 % · 1 of 4 tasks done" in shown
    assert f"{goal['agents_completed']} of {goal['agents_total']} agents complete" in shown
    elsewhere = await page(api, "/", workspace=f"none-{uuid.uuid4().hex[:6]}")
    assert handle.id not in elsewhere and "No goals yet" in elsewhere
    assert handle.id not in await page(api, "/", workspace=workspace, status="completed")


async def test_goal_page_shows_tasks_events_and_deliverable(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    tasks = [
        {"id": "draft", "title": "Draft the memo", "skill": "writing"},
        {"id": "review", "title": "Review it", "skill": "writing", "depends_on": ["draft"]},
    ]
    handle = await start_goal(client, goal_spec(workspace=workspace, tasks=tasks), task_queue)
    draft = await wait_task(client, handle.id, "draft", TaskStatus.ASSIGNED)
    running = text(await page(api, f"/goals/{handle.id}"))
    assert "Draft the memo" in running and f" {draft.agent_id} " in running
    assert "0 of 2 tasks done" in running and "task assigned" in running
    assert "Not compiled yet" in running

    await report(client, draft, result="the memo, drafted")
    review = await wait_task(client, handle.id, "review", TaskStatus.ASSIGNED)
    await report(client, review, result="the memo, reviewed")
    await handle.result()

    async def compiled() -> Any:
        html = await page(api, f"/goals/{handle.id}")
        return html if "Not compiled yet" not in html else None

    ended = text(await eventually(compiled, what="the deliverable on the goal page"))
    assert "100.0 % · 2 of 2 tasks done" in ended and "completed" in ended
    assert "the memo, reviewed" in ended
    only_pending = text(await page(api, f"/goals/{handle.id}", status="pending"))
    assert "No tasks pending" in only_pending

    missing = await page(api, "/goals/no-such-goal", expect=404)
    assert "no goal 'no-such-goal'" in unescape(missing)


async def test_approvals_inbox_shows_the_exact_result_with_its_decision_form(
    api: httpx.AsyncClient, client: Client, task_queue: str, workspace: str
) -> None:
    tasks = [{"id": "sign", "title": "Sign off", "skill": "writing", "requires_approval": True}]
    spec = goal_spec(workspace=workspace, tasks=tasks, approvers=["ops-lead"])
    handle = await start_goal(client, spec, task_queue)
    view = await wait_task(client, handle.id, "sign", TaskStatus.ASSIGNED)
    await report(client, view, result={"summary": "ship <it>", "lines": 3})
    await wait_task(client, handle.id, "sign", TaskStatus.AWAITING_APPROVAL)

    async def listed() -> Any:
        html = await page(api, "/approvals", approver="ops-lead")
        return html if f'data-task="{handle.id}/sign"' in html else None

    html = await eventually(listed, what="the task in the approvals inbox")
    assert "&lt;it&gt;" in html  # the result is shown as it is, escaped
    assert '{\n  "lines": 3,\n  "summary": "ship <it>"\n}' in unescape(html)
    assert f'data-post="/api/v1/goals/{handle.id}/tasks/sign/decision"' in html
    assert 'value="approve"' in html and 'value="reject"' in html
    assert f'data-task="{handle.id}/sign"' not in await page(api, "/approvals", approver="intern")


async def test_agents_costs_suggestions_and_health_pages(
    api: httpx.AsyncClient, client: Client, task_queue: str, workspace: str
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    holding = text(await page(api, "/agents", workspace=workspace))
    assert f"{handle.id} / t1 Task 1 · attempt 1 · since" in holding, holding
    await report(client, view)
    await handle.result()

    agents = text(await page(api, "/agents", workspace=workspace))
    assert f"{view.agent_id} " in agents and "writing" in agents and "1/1 first tries" in agents

    costs = text(await page(api, "/costs", goal=handle.id, by="agent"))
    assert f"{view.agent_id} 1 100 $0.0100" in costs and "total 1 100 $0.0100" in costs
    bad = await page(api, "/costs", expect=400, by="colour")
    assert "cannot group costs by &#39;colour&#39;" in bad

    assert "Suggestions" in await page(api, "/suggestions", status="dismissed")
    health = text(await page(api, "/health"))
    assert "PostgreSQL reachable" in health and "Temporal reachable" in health


async def test_goal_page_draws_its_tasks_dependencies_with_their_states(
    api: httpx.AsyncClient, client: Client, task_queue: str, workspace: str
) -> None:
    tasks: list[dict[str, Any]] = [
        {"id": "research", "title": "Research", "skill": "writing"},
        {"id": "outline", "title": "Outline", "skill": "writing"},
        {
            "id": "draft",
            "title": "Draft",
            "skill": "writing",
            "depends_on": ["research", "outline"],
        },
    ]
    tasks[2]["depends_on"] = ["research", "outline"]
    handle = await start_goal(client, goal_spec(workspace=workspace, tasks=tasks), task_queue)
    view = await wait_task(client, handle.id, "research", TaskStatus.ASSIGNED)
    await report(client, view)

    async def drawn() -> str | None:
        html = await page(api, f"/goals/{handle.id}")
        done = '<g class="node completed" data-task-id="research"'
        return html if done in html else None

    html = await eventually(drawn, what="the graph with research completed")
    nodes = {t: s for s, t in re.findall(r'<g class="node (\w+)" data-task-id="(\w+)"', html)}
    assert (nodes["research"], nodes["draft"]) == ("completed", "pending"), nodes
    assert set(nodes) == {"research", "outline", "draft"}
    assert 'data-task-id="draft" transform="translate(190,0)"' in html  # after both
    assert html.count('<path class="edge"') == 2
    filtered = await page(api, f"/goals/{handle.id}", status="pending")
    assert 'id="graph"' not in filtered  # drawn only from the whole goal
    await client.get_workflow_handle(handle.id).terminate()
