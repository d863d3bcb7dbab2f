"""The HTTP API answers from the read model and agrees with the goal workflows' queries."""

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client

from goalkeeper.models import Progress
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.api.goals import read_model_stage
from interfaces.stack import TemporalDevServer, free_port
from store.tokens import new_token
from tests.helpers import (
    ROOT,
    SimulatedAgents,
    decide,
    eventually,
    goal_spec,
    progress,
    report,
    start_goal,
    wait_progress,
    wait_task,
)

PROBLEM = "application/problem+json"
FIGURES = (
    "status",
    "stage",
    "progress_percentage",
    "tasks_total",
    "tasks_completed",
    "tasks_failed",
    "tasks_running",
    "tasks_awaiting_approval",
    "agents_total",
    "agents_completed",
    "cost_usd",
    "tokens_used",
    "calculation_method",
)


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def in_read_model(api: httpx.AsyncClient, goal_id: str, check: Any = bool) -> Any:
    async def probe() -> Any:
        response = await api.get(f"/goals/{goal_id}")
        return response.json() if response.status_code == 200 and check(response.json()) else None

    return await eventually(probe, what=f"{goal_id} in the API")


async def test_goals_are_listed_newest_first_in_pages(
    api: httpx.AsyncClient, client: Client, task_queue: str, workspace: str
) -> None:
    ids = []
    for _ in range(3):
        handle = await start_goal(client, goal_spec(1, workspace), task_queue)
        await in_read_model(api, handle.id)
        ids.append(handle.id)

    first = await get(api, "/goals", workspace=workspace, limit=2)
    assert (first["total"], first["next_offset"]) == (3, 2)
    assert [g["goal_id"] for g in first["items"]] == ids[::-1][:2]
    assert first["items"][0]["tasks_total"] == 1
    rest = await get(api, "/goals", workspace=workspace, limit=2, offset=2)
    assert (rest["total"], rest["next_offset"]) == (3, None)
    assert [g["goal_id"] for g in rest["items"]] == [ids[0]]

    running = await get(api, "/goals", workspace=workspace, status="running")
    assert running["total"] == 3
    done = await get(api, "/goals", workspace=workspace, status="completed")
    assert (done["total"], done["items"], done["next_offset"]) == (0, [], None)


def figures(answer: dict[str, Any] | Progress) -> dict[str, Any]:
    """What a goal's answer shares with its workflow's `progress` query."""
    shown = answer.model_dump(mode="json") if isinstance(answer, Progress) else answer
    return {k: shown[k] for k in Progress.model_fields if k not in ("goal_id", "on_task_failure")}


async def test_a_goal_agrees_with_its_progress_query_then_with_its_stored_report(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(2, workspace, budget_usd=5.0, approvers=["ops-lead"])
    handle = await start_goal(client, spec, task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await wait_task(client, handle.id, "t2", TaskStatus.ASSIGNED)
    await report(client, first)
    await wait_progress(handle, lambda p: p.tasks_completed == 1)

    body = await in_read_model(api, handle.id, lambda b: b["tasks_completed"] == 1)
    assert body["source"] == "read_model"
    assert figures(body) == figures(await progress(handle))
    assert (body["progress_percentage"], body["budget_usd"], body["stage"]) == (
        50.0,
        5.0,
        "running",
    )
    assert (body["workspace"], body["title"], body["ended_at"]) == (workspace, "Test goal", None)
    live = await get(api, f"/goals/{handle.id}", live="true")
    assert live["source"] == "workflow"
    assert live.keys() == body.keys() and figures(live) == figures(body)

    second = await wait_task(client, handle.id, "t2", TaskStatus.ASSIGNED)
    await report(client, second)
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    ended = await in_read_model(api, handle.id, lambda b: b["status"] == "completed")
    assert ended["source"] == "report"
    stored = await pool.fetchval("SELECT report FROM goals WHERE goal_id = $1", handle.id)
    assert {k: ended[k] for k in FIGURES} == {
        k: v for k, v in stored["progress"].items() if k in FIGURES
    }
    final = await progress(handle)
    assert (ended["stage"], ended["progress_percentage"]) == (final.stage, 100.0)
    assert (ended["tokens_used"], ended["cost_usd"]) == (200, 0.02)
    assert ended["ended_at"] is not None
    assert (await get(api, f"/goals/{handle.id}", live="true"))["source"] == "report"


async def test_a_goals_stage_from_the_read_model_shows_approvals_and_a_budget_pause(
    api: httpx.AsyncClient, client: Client, task_queue: str, workspace: str
) -> None:
    tasks = [
        {"id": "sign", "title": "Sign off", "skill": "writing", "requires_approval": True},
        {"id": "spend", "title": "Spend", "skill": "writing"},
        {"id": "later", "title": "Later", "skill": "writing", "depends_on": ["spend"]},
    ]
    spec = goal_spec(workspace=workspace, tasks=tasks, approvers=["boss"], budget_usd=1.0)
    handle = await start_goal(client, spec, task_queue)
    sign = await wait_task(client, handle.id, "sign", TaskStatus.ASSIGNED)
    spend = await wait_task(client, handle.id, "spend", TaskStatus.ASSIGNED)
    await report(client, sign)
    await wait_progress(handle, lambda p: p.tasks_awaiting_approval == 1)

    waiting = await in_read_model(api, handle.id, lambda b: b["tasks_awaiting_approval"] == 1)
    assert waiting["stage"] == "running: 1 awaiting approval"
    assert figures(waiting) | {"stage": "running"} == figures(await progress(handle))

    await report(client, spend, cost_usd=1.2)  # $1.21 of $1.00: the goal pauses
    paused = await wait_progress(handle, lambda p: p.stage.startswith("paused: budget"))
    held = await in_read_model(api, handle.id, lambda b: b["stage"].startswith("paused"))
    assert held["stage"].startswith("paused: budget ($1.21 of $1.00 (121%))"), held["stage"]
    assert paused.stage.startswith("paused: budget ($1.21 of $1.00 (121%))"), paused.stage
    assert figures(held) | {"stage": paused.stage} == figures(await progress(handle))
    assert (held["tasks_pending"], held["cost_usd"], held["budget_usd"]) == (1, 1.21, 1.0)
    await handle.terminate("test over")


def test_a_goal_held_back_by_another_budget_says_whose() -> None:
    why = "workspace 'w' has spent its monthly budget: $1.2000 of $1.0000, 0 of no limit tokens"
    assert (
        read_model_stage(
            "g",
            GoalStatus.RUNNING,
            awaiting_approval=2,
            paused=True,
            held_by=f"goal 'g' paused: {why}",
            spent=None,
        )
        == f"paused: budget ({why}); assignments start again once it is raised"
    )
    ended = read_model_stage(
        "g", GoalStatus.FAILED, awaiting_approval=0, paused=False, held_by=None, spent=None
    )
    assert ended == "failed"


async def test_live_falls_back_to_the_read_model_without_a_workflow(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    goal_id = f"goal-{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec) "
        "VALUES ($1, 'none', 'Orphan', 'nowhere', '{}')",
        goal_id,
    )
    try:
        body = await get(api, f"/goals/{goal_id}", live="true")
        assert (body["source"], body["stage"], body["tasks_total"]) == ("read_model", "running", 0)
        assert body["calculation_method"] == Progress.model_fields["calculation_method"].default
    finally:
        await pool.execute("DELETE FROM goals WHERE goal_id = $1", goal_id)


async def test_tasks_are_paged_in_plan_order_with_their_figures(
    api: httpx.AsyncClient, client: Client, task_queue: str, workspace: str
) -> None:
    tasks = [
        {"id": "draft", "title": "Draft", "skill": "writing"},
        {"id": "review", "title": "Review", "skill": "writing", "depends_on": ["draft"]},
        {"id": "publish", "title": "Publish", "skill": "writing", "depends_on": ["review"]},
    ]
    handle = await start_goal(client, goal_spec(workspace=workspace, tasks=tasks), task_queue)
    view = await wait_task(client, handle.id, "draft", TaskStatus.ASSIGNED)
    await report(client, view, "failed", error="no ink")

    async def failed_once() -> Any:
        page = await get(api, f"/goals/{handle.id}/tasks")
        return page if page["total"] == 3 and page["items"][0]["attempts"] >= 2 else None

    whole = await eventually(failed_once, what="draft's second attempt in the API")
    assert [t["task_id"] for t in whole["items"]] == ["draft", "review", "publish"]
    draft, review, _ = whole["items"]
    assert (draft["status"], draft["agent_id"] is not None) == ("assigned", True)
    assert (draft["cost_usd"], draft["tokens_used"]) == (0.01, 100)
    assert (review["status"], review["depends_on"], review["agent_id"]) == (
        "pending",
        ["draft"],
        None,
    )

    first = await get(api, f"/goals/{handle.id}/tasks", limit=2)
    assert ([t["task_id"] for t in first["items"]], first["next_offset"]) == (
        ["draft", "review"],
        2,
    )
    last = await get(api, f"/goals/{handle.id}/tasks", limit=2, offset=2)
    assert ([t["task_id"] for t in last["items"]], last["next_offset"]) == (["publish"], None)
    beyond = await get(api, f"/goals/{handle.id}/tasks", offset=3)
    assert (beyond["total"], beyond["items"], beyond["next_offset"]) == (3, [], None)
    pending = await get(api, f"/goals/{handle.id}/tasks", status="pending")
    assert (pending["total"], [t["task_id"] for t in pending["items"]]) == (
        2,
        ["review", "publish"],
    )


async def test_agents_and_approvals(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    tasks = [{"id": "t1", "title": "Sign off", "skill": "writing", "requires_approval": True}]
    spec = goal_spec(workspace=workspace, tasks=tasks, approvers=["ops-lead"])
    handle = await start_goal(client, spec, task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)

    agents = await get(api, "/agents", workspace=workspace)
    assert agents["total"] == 1
    agent = agents["items"][0]
    assert (agent["agent_id"], agent["workspace"], agent["status"]) == (
        view.agent_id,
        workspace,
        "busy",
    )
    assert ("writing" in agent["skills"], agent["load"], agent["provisioned"]) == (
        True,
        agent["active_assignments"] / agent["capacity"],
        True,
    )
    [held] = agent["holding"]  # what it holds right now
    assert (held["goal_id"], held["task_id"], held["title"], held["attempt"]) == (
        handle.id,
        "t1",
        "Sign off",
        1,
    )

    await report(client, view)
    await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL)

    async def waiting() -> Any:
        found = await get(api, "/approvals", approver="ops-lead")
        return [a for a in found["items"] if a["goal_id"] == handle.id]

    [waits] = await eventually(waiting, what="the approval in the API")
    assert (waits["task_id"], waits["approvers"], waits["goal_title"]) == (
        "t1",
        ["ops-lead"],
        "Test goal",
    )
    others = await get(api, "/approvals", approver="someone-else")
    assert all(a["goal_id"] != handle.id for a in others["items"])

    await decide(client, handle.id, "t1", "ops-lead", "approve")
    await handle.result()

    async def recorded() -> Any:
        [agent] = (await get(api, "/agents", workspace=workspace))["items"]
        return [r for r in agent["records"] if r["skill"] == "writing" and r["completions"]]

    [record] = await eventually(recorded, what="the agent's record in the API")
    assert (record["completions"], record["failures"]) == (1, 0)
    [agent] = (await get(api, "/agents", workspace=workspace))["items"]
    assert agent["holding"] == []  # nothing once its work is done
    empty = await get(api, "/agents", workspace=f"none-{uuid.uuid4().hex[:6]}")
    assert (empty["total"], empty["items"]) == (0, [])


async def test_costs_and_their_bad_queries(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    handle = await start_goal(client, goal_spec(2, workspace), task_queue)
    async with SimulatedAgents(client, pool, handle.id):
        await handle.result()

    by_goal = await get(api, "/costs", goal=handle.id)
    assert by_goal["by"] == "goal"
    spent = await pool.fetchval(
        "SELECT sum(cost_usd)::float8 FROM assignments WHERE goal_id = $1", handle.id
    )
    assert (by_goal["total"]["attempts"], by_goal["total"]["cost_usd"]) == (2, spent)
    by_task = await get(api, "/costs", goal=handle.id, by="task")
    assert sorted(line["key"] for line in by_task["lines"]) == [
        f"{handle.id}/t1",
        f"{handle.id}/t2",
    ]
    today = datetime.now(UTC).date().isoformat()
    by_day = await get(api, "/costs", workspace=workspace, by="day", since=today)
    assert [(line["key"], line["attempts"]) for line in by_day["lines"]] == [(today, 2)]

    bad_by = await api.get("/costs", params={"by": "colour"})
    assert (bad_by.status_code, bad_by.headers["content-type"]) == (400, PROBLEM)
    assert "'colour'" in bad_by.json()["detail"] and "expected one of" in bad_by.json()["detail"]
    bad_since = await api.get("/costs", params={"since": "31/01/2025"})
    assert bad_since.status_code == 400
    assert "'31/01/2025'" in bad_since.json()["detail"]
    assert "YYYY-MM-DD" in bad_since.json()["detail"]
    unknown = await api.get("/costs", params={"goal": "no-such-goal"})
    assert (unknown.status_code, unknown.json()["status"]) == (404, 404)


async def test_problems_name_the_bad_value(api: httpx.AsyncClient) -> None:
    missing = await api.get("/goals/no-such-goal")
    assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM)
    body = missing.json()
    assert (body["type"], body["title"], body["status"]) == ("about:blank", "Unknown goal", 404)
    assert "'no-such-goal'" in body["detail"]
    assert body["instance"] == "/api/v1/goals/no-such-goal"
    tasks = await api.get("/goals/no-such-goal/tasks")
    assert (tasks.status_code, tasks.headers["content-type"]) == (404, PROBLEM)

    for path, params, parameter, value in [
        ("/goals", {"limit": "0"}, "limit", "'0'"),
        ("/goals", {"limit": "1001"}, "limit", "'1001'"),
        ("/goals", {"offset": "-1"}, "offset", "'-1'"),
        ("/goals", {"status": "sleeping"}, "status", "'sleeping'"),
        ("/goals/x/tasks", {"status": "done"}, "status", "'done'"),
        ("/suggestions", {"status": "maybe"}, "status", "'maybe'"),
        ("/agents", {"limit": "many"}, "limit", "'many'"),
    ]:
        response = await api.get(path, params=params)
        assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM), path
        problem = response.json()
        assert problem["status"] == 422
        assert f"'{parameter}'" in problem["detail"] and value in problem["detail"], problem
        assert "expected" in problem["detail"]
        assert [e["parameter"] for e in problem["errors"]] == [parameter]

    nowhere = await api.get("/nowhere")
    assert (nowhere.status_code, nowhere.headers["content-type"]) == (404, PROBLEM)


async def test_suggestions_by_status(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    goal_id = f"goal-{uuid.uuid4().hex[:10]}"
    await pool.execute(
        """
        INSERT INTO suggestions (suggestion_id, goal_id, kind, subject, message, action)
        VALUES ($1, $2, 'runbook', 'launch', 'add a review step', 'edit the runbook')
        """,
        uuid.uuid4(),
        goal_id,
    )
    found = await get(api, "/suggestions", status="open", goal=goal_id)
    assert [(s["goal_id"], s["kind"], s["status"]) for s in found["items"]] == [
        (goal_id, "runbook", "open")
    ]
    assert (await get(api, "/suggestions", status="accepted", goal=goal_id))["items"] == []
    assert len((await get(api, "/suggestions", limit=1))["items"]) == 1


async def test_health_says_what_is_reachable_and_the_open_alerts(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    subject = f"goal-{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO alerts (alert_id, kind, subject, message) VALUES ($1, 'test', $2, 'seen')",
        uuid.uuid4(),
        subject,
    )
    try:
        body = await get(api, "/health")
        assert (body["postgres"], body["temporal"]) == ({"reachable": True}, {"reachable": True})
        assert body["status"] == "alerts"
        assert body["open_alerts"] == len(body["alerts"]) >= 1
        assert subject in [a["subject"] for a in body["alerts"]]
    finally:
        await pool.execute("UPDATE alerts SET resolved_at = now() WHERE subject = $1", subject)


async def test_serve_answers_health_over_http(
    temporal_server: TemporalDevServer, database_url: str, pool: asyncpg.Pool
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        "serve",
        "--port",
        str(port),
        env={
            **os.environ,
            "TEMPORAL_ADDRESS": temporal_server.address,
            "DATABASE_URL": database_url,
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def answers() -> Any:
                assert process.returncode is None, "starter.py serve exited"
                try:
                    response = await http.get("/api/v1/health")
                except httpx.TransportError:
                    return None
                return response

            response = await eventually(answers, what="starter.py serve to answer")
            # By default, reading needs a token too, and only loopback names are served.
            assert (response.status_code, response.headers["content-type"]) == (401, PROBLEM)
            foreign = await http.get("/api/v1/health", headers={"Host": "evil.example"})
            assert (foreign.status_code, foreign.json()["host"]) == (421, "evil.example")
            token = (await new_token(pool, "reader", all_workspaces=True))["token"]
            response = await http.get(
                "/api/v1/health", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code in (200, 503)
            assert response.json()["postgres"] == {"reachable": True}
            assert response.json()["temporal"] == {"reachable": True}
            docs = await http.get("/docs")
            assert docs.status_code == 200
    finally:
        process.terminate()
        await process.wait()
