"""`make demo` runs in the suite as a newcomer would run it, on its own embedded stack."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from goalkeeper.statuses import TaskStatus
from interfaces.cli import demo as demo_command
from interfaces.cli.session import Session
from interfaces.config import Settings
from interfaces.stack import EmbeddedPostgres, TemporalDevServer, free_port
from tests.helpers import (
    ROOT,
    events,
    eventually,
    goal_spec,
    report,
    start_goal,
    wait_task,
)


def test_the_demo_reaches_100_percent_prints_the_report_and_cleans_up(tmp_path: Path) -> None:
    port, ui_port, api_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "GOALKEEPER_DATA_DIR": str(tmp_path / "data"),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "DATABASE_URL": "",
    }
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "starter.py"), "demo", "--ui-port", str(ui_port),
         "--api-port", str(api_port), "--timeout", "180"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        out, err = demo.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        demo.terminate()  # SIGTERM: the demo stops what it started
        out, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, out + err
    assert "100.0%  6 of 6 tasks" in out
    assert "completed: 6 of 6 tasks (100.0%)" in out
    for task in ("import-csv", "email-1", "email-2", "email-3", "dashboard", "sales-scripts"):
        assert f"\n{task} " in out, task
    assert "asked: 'Launch the Q3 campaign to 500 qualified leads'" in out
    assert "triage: a goal" in out and "runbook 'campaign' fits it best" in out
    assert "ops-lead sends 'Write email 2 of the Q3 sequence: the case study' back" in out
    assert "  | # Launch the Q3 campaign to 500 qualified leads" in out  # the deliverable
    assert "  | _6 of 6 tasks completed._" in out
    assert "auto-analytics-" in out  # an agent provisioned for the skill nobody had
    # Said as it happens, not only in the report.
    assert "no agent in workspace 'default' with skill 'analytics' was free; provisioned" in out
    assert "workflows?query=WorkflowType%3D%22GoalWorkflow%22" in out
    assert "What it cost, by agent (python starter.py costs --goal campaign-" in out
    assert "\n  total " in out and "Suggestions from this run (" in out
    assert "provisioned_only: register a dedicated agent" in out and "--skills analytics" in out
    assert f"http://127.0.0.1:{ui_port}/namespaces/default/workflows/campaign-" in out
    dashboard = f"http://127.0.0.1:{api_port}/"
    assert f"dashboard: {dashboard} (API docs {dashboard}docs), while the demo runs" in out

    for freed, what in ((port, "Temporal"), (api_port, "the dashboard")):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", freed)) != 0, f"{what} was left running"
    assert EmbeddedPostgres(tmp_path / "data" / "postgres").running_url() is None


async def test_an_interactive_rejection_asks_why_until_it_is_told(
    client: Client,
    task_queue: str,
    workspace: str,
    pool: asyncpg.Pool,
    temporal_server: TemporalDevServer,
    database_url: str,
) -> None:
    spec = goal_spec(1, workspace, approvers=["ops-lead"])
    spec["tasks"][0]["requires_approval"] = True
    handle = await start_goal(client, spec, task_queue)
    await report(client, await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED))
    view = await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL)
    answers = iter(["n", "", "  ", "lead with the numbers"])
    settings = Settings(temporal_address=temporal_server.address, database_url=database_url)
    session = Session(settings)
    line = await demo_command._decide(session, view, ask=lambda prompt: next(answers))
    assert line.endswith(": lead with the numbers")
    sent_back = await eventually(
        lambda: events(pool, handle.id, "decision_accepted"), what="the rejection"
    )
    assert sent_back[0]["detail"]["comment"] == "lead with the numbers"


async def test_a_query_temporal_gave_up_on_is_asked_again_and_other_errors_end_the_demo() -> None:
    """On a busy machine a worker can take longer to answer a query than Temporal waits
    ("Timeout expired"); the demo's polling asks again instead of ending."""

    async def value() -> str:
        return "progress"

    async def gave_up() -> str:
        raise RPCError("Timeout expired", RPCStatusCode.CANCELLED, b"")

    async def refused() -> str:
        raise RPCError("no such workflow", RPCStatusCode.NOT_FOUND, b"")

    assert await demo_command.answered(value()) == "progress"
    assert await demo_command.answered(gave_up()) is None
    with pytest.raises(RPCError, match="no such workflow"):
        await demo_command.answered(refused())
