"""docker-compose.yml's agents, run as compose runs them but on the test's stack: the
agent-setup script as the API's login, then agent.py over HTTP with what it wrote, and no
login, no codec keys and no route to Temporal."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from temporalio.client import Client

from goalkeeper import signing
from goalkeeper.statuses import GoalStatus
from interfaces.agents import registry
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer
from tests import web
from tests.helpers import ROOT, events, goal_spec, start_goal
from tests.test_agent_http import result_while_running

SKILLS = ("data", "writing", "analytics", "sales")
UNREACHABLE = {
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
    "TEMPORAL_ADDRESS": "127.0.0.1:9",
}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return services


def setup_script(services: dict[str, Any], workspace: str, credentials: Path) -> str:
    """agent-setup's script for this machine: this Python and starter.py, the test's
    workspace and agent ids (the tests share one database), the credentials' directory."""
    (script,) = services["agent-setup"]["command"]
    script = script.replace("$$", "$").replace("python starter.py", f"{sys.executable} starter.py")
    script = script.replace("--workspace default", f"--workspace {workspace}")
    script = re.sub(r"\bsim-(\d)", rf"{workspace}-sim-\1", script)
    return script.replace("/var/lib/goalkeeper/credentials", str(credentials))


def agents_command(services: dict[str, Any], url: str, credentials: Path) -> list[str]:
    """The agents' command for this machine: the in-test API and credentials' directory."""
    command = list(services["agents"]["command"])
    assert command[:2] == ["python", "agent.py"]
    swapped = {"http://api:8000": url, "/var/lib/goalkeeper/credentials": str(credentials)}
    command = [sys.executable, str(ROOT / "agent.py"), *(swapped.get(a, a) for a in command[2:])]
    return [*command, "--delay", "0.2-0.6", "--success-rate", "1"]


def run_setup(script: str, login: str) -> str:
    done = subprocess.run(
        ["/bin/sh", "-c", script],
        env=os.environ | {"DATABASE_URL": login},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_compose_agents_take_signed_work_over_http_with_what_agent_setup_wrote(
    services: dict[str, Any],
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    worker_login: str,
    temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    credentials, keys = tmp_path / "credentials", tmp_path / "keys"
    script = setup_script(services, workspace, credentials)
    said = run_setup(script, worker_login)
    agent_ids = [f"{workspace}-sim-{n}" for n in range(1, 5)]
    files = sorted(credentials.iterdir())
    assert [f.name for f in files] == [f"{a}.credential" for a in agent_ids], said
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    written = {f.name: f.read_text() for f in files}
    # On every start: the same agents, the same credentials, none made again.
    again = run_setup(script, worker_login)
    assert again.count("keeps its credential") == 4
    assert {f.name: f.read_text() for f in files} == written
    made = await pool.fetchval(
        "SELECT count(*) FROM agent_credentials WHERE agent_id = ANY($1::text[])", agent_ids
    )
    assert made == 4

    settings = Settings(database_url=worker_login, temporal_address=temporal_server.address)
    env = os.environ | UNREACHABLE | {"GOALKEEPER_KEY_DIR": str(keys)}
    env.pop("GOALKEEPER_AGENT_CREDENTIAL", None)
    log = tmp_path / "agents.log"
    with web.serve(create_app(settings)) as url, log.open("wb") as out:
        process = subprocess.Popen(
            agents_command(services, url, credentials), env=env, stdout=out, stderr=out
        )
        try:
            tasks: list[dict[str, Any]] = [
                {"id": skill, "title": skill.title(), "skill": skill} for skill in SKILLS
            ]
            tasks[-1]["depends_on"] = list(SKILLS[:-1])
            spec = goal_spec(
                workspace=workspace,
                tasks=tasks,
                require_signatures=True,
                heartbeat_timeout_seconds=5,
            )
            goal = await start_goal(client, spec, task_queue)
            report = await result_while_running(goal.result(), process, log)
        finally:
            process.terminate()
            process.wait(30)
    output = log.read_text()
    assert report.status is GoalStatus.COMPLETED, output
    assert {t.agent_id for t in report.tasks} <= set(agent_ids)
    rejected = [r["kind"] for r in await events(pool, goal.id) if r["kind"].endswith("_rejected")]
    assert rejected == [], output
    # Each agent made its key on its machine and registered it over HTTP, once.
    for agent_id in agent_ids:
        private = (keys / "agent" / f"{agent_id}.key").read_text().strip()
        registered = await pool.fetchval(
            "SELECT public_key FROM agents WHERE agent_id = $1", agent_id
        )
        assert registered == signing.public_key_of(private), agent_id
    await registry.take_offline(pool, agent_ids)
