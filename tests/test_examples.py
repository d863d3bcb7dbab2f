"""The examples of docs/connect-an-agent.md, run as written against a real stack: each
agent, in its own process and holding only its credential (or, over A2A, served through
the bridge), does the tasks of a real goal."""

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from goalkeeper import signing
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.agents import registry
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer, free_port
from store.agent_credentials import new_credential
from store.tokens import new_token
from tests import web
from tests.helpers import PATIENCE, ROOT, events, eventually, goal_spec, start_goal, wait_task
from tests.starter import run_starter

EXAMPLES = ROOT / "docs" / "examples"
PAGE = ROOT / "docs" / "connect-an-agent.md"

TS_TYPES = "|".join(
    (
        r"Record<string, string>",
        r"Promise<\w+>",
        "Response",
        r"Assignment\[\]",
        "Assignment",
        r"string\[\]",
        "string",
        "object",
    )
)
"""The type annotations docs/examples/agent.ts uses, which `strip_types` removes."""


def strip_types(typescript: str) -> str:
    """agent.ts as plain JavaScript: its type aliases and annotations removed (Node 20
    cannot run TypeScript itself, and nothing is downloaded to compile it)."""
    text = re.sub(r"^type \w+ = \{\n.*?^\};\n", "", typescript, flags=re.DOTALL | re.MULTILINE)
    return re.sub(rf"\??: (?:{TS_TYPES})(?=[\s,;=)])", "", text)


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"the examples' tests need {name} on PATH (Debian: apt-get install {name})"
    return found


@pytest.fixture
def api_url(database_url: str, temporal_server: TemporalDevServer) -> Iterator[str]:
    """The API served by uvicorn on a free port, as an agent elsewhere would reach it."""
    settings = Settings(database_url=database_url, temporal_address=temporal_server.address)
    with web.serve(create_app(settings)) as url:
        yield url


@contextmanager
def running(
    command: list[str], log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` in its own process group, its output in `log`, stopped at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=os.environ | env, stdout=out, stderr=out, start_new_session=True
        )
        try:
            yield process
        finally:  # its whole group: a shell's curl would outlive the shell
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


async def goal_done_by(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    process: subprocess.Popen[bytes],
    log: Path,
) -> dict[str, str]:
    """Start a goal of two dependent tasks; once it completes, each task's result."""
    tasks = [
        {"id": "draft", "title": "Draft", "skill": "writing"},
        {"id": "edit", "title": "Edit", "skill": "writing", "depends_on": ["draft"]},
    ]
    goal = await start_goal(client, goal_spec(workspace=workspace, tasks=tasks), task_queue)
    waiting = asyncio.ensure_future(goal.result())
    watching = asyncio.ensure_future(asyncio.to_thread(process.wait))
    done, _ = await asyncio.wait(
        {waiting, watching}, timeout=PATIENCE, return_when=asyncio.FIRST_COMPLETED
    )
    watching.cancel()
    if waiting not in done:
        waiting.cancel()
        raise AssertionError(f"the agent ended or the goal did not: {log.read_text()}")
    report = waiting.result()
    assert report.status is GoalStatus.COMPLETED, log.read_text()
    rows = await pool.fetch("SELECT task_id, result FROM tasks WHERE goal_id = $1", goal.id)
    return {row["task_id"]: row["result"] for row in rows}


async def http_agent(pool: asyncpg.Pool, workspace: str) -> tuple[str, str]:
    agent_id = f"{workspace}-example"
    await registry.register_agent(pool, agent_id, workspace, ["writing"])
    return agent_id, (await new_credential(pool, agent_id))["credential"]


def commands(tmp_path: Path, url: str) -> dict[str, list[str]]:
    """How each HTTP example is run: the Python one with no site-packages at all, so it
    shows it needs nothing but the standard library."""
    script = tmp_path / "agent.mjs"
    script.write_text(strip_types((EXAMPLES / "agent.ts").read_text()))
    return {
        "curl": [tool("bash"), str(EXAMPLES / "agent.sh"), url],
        "python": [sys.executable, "-I", "-S", str(EXAMPLES / "agent.py"), url],
        "typescript": [tool("node"), str(script), url],
    }


@pytest.mark.parametrize("language", ["curl", "python", "typescript"])
async def test_an_http_example_agent_does_the_tasks_of_a_goal(
    language: str,
    api_url: str,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    tmp_path: Path,
) -> None:
    tool("curl"), tool("jq")
    agent_id, credential = await http_agent(pool, workspace)
    log = tmp_path / "agent.log"
    unreachable = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "PYTHONPATH": ""}
    env = unreachable | {"GOALKEEPER_AGENT_CREDENTIAL": credential}
    with running(commands(tmp_path, api_url)[language], log, env) as process:
        results = await goal_done_by(client, pool, task_queue, workspace, process, log)
    by = {"curl": "curl", "python": "Python", "typescript": "TypeScript"}[language]
    assert results["draft"].startswith(f"Draft: done by {by}"), results
    assert results["edit"].startswith(f"Edit: done by {by}"), results
    if language == "python":
        assert results["edit"] == "Edit: done by Python, given ['draft']"
    said = log.read_text()
    assert said.count("reported completed") == 2 and "refused" not in said, said
    await registry.take_offline(pool, [agent_id])


def test_the_typescript_example_is_typescript_and_its_twin_plain_javascript(tmp_path: Path) -> None:
    source = (EXAMPLES / "agent.ts").read_text()
    twin = strip_types(source)
    assert "type Assignment" in source and ": Promise<void>" in source
    assert not re.search(r"\btype \w+ =|: (?:string|Assignment|Promise)\b", twin), twin
    script = tmp_path / "agent.mjs"
    script.write_text(twin)
    checked = subprocess.run([tool("node"), "--check", str(script)], capture_output=True)
    assert checked.returncode == 0, checked.stderr.decode()


@pytest.mark.parametrize("language", ["curl", "python", "typescript"])
async def test_an_http_example_agent_with_a_wrong_credential_says_why(
    language: str, api_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "agent.log"
    env = {"GOALKEEPER_AGENT_CREDENTIAL": "gka_not-a-credential", "PYTHONPATH": ""}

    async def refusal() -> str | None:
        said = log.read_text()
        return said if "poll refused" in said else None

    with running(commands(tmp_path, api_url)[language], log, env):
        said = await eventually(refusal, what="the refusal in the agent's output")
    assert "unknown" in said, said
    assert '"status":401' in said.replace(" ", ""), said


@pytest.mark.parametrize("language", ["curl", "python", "typescript"])
async def test_an_unsigned_report_of_an_example_is_refused_and_the_task_waits(
    language: str,
    api_url: str,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    tmp_path: Path,
) -> None:
    """The examples do not sign: a goal that requires signatures refuses their reports,
    the agent prints why, and the task goes on waiting for a signed one."""
    agent_id = f"{workspace}-example"
    _, public = signing.new_keys()
    await registry.register_agent(pool, agent_id, workspace, ["writing"], public_key=public)
    credential = (await new_credential(pool, agent_id))["credential"]
    log = tmp_path / "agent.log"
    env = {"GOALKEEPER_AGENT_CREDENTIAL": credential, "PYTHONPATH": ""}
    spec = goal_spec(workspace=workspace, require_signatures=True)
    goal = await start_goal(client, spec, task_queue)

    async def refusal() -> str | None:
        said = log.read_text()
        return said if "report refused" in said else None

    with running(commands(tmp_path, api_url)[language], log, env):
        said = await eventually(refusal, what="the refusal in the agent's output")
    assert "409" in said and "unsigned" in said and "reported completed" not in said, said
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=1)
    assert view.result is None
    assert await events(pool, goal.id, "report_rejected")
    await goal.terminate("the test is over")
    await registry.take_offline(pool, [agent_id])


async def test_the_a2a_example_serves_its_card_and_does_a_goal_through_the_bridge(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    database_url: str,
    temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    example = [sys.executable, str(EXAMPLES / "a2a_agent.py"), str(port)]
    with running(example, tmp_path / "a2a.log", {}):

        async def card() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    answer = await http.get(f"{url}/.well-known/agent-card.json")
            except httpx.TransportError:
                return False
            return answer.status_code == 200

        await eventually(card, what="the A2A example's card")
        agent_id = f"{workspace}-scribe"
        allowed = {"GOALKEEPER_A2A_ALLOWED_HOSTS": f"127.0.0.1:{port}"}  # loopback, listed
        ran = await run_starter(
            {"DATABASE_URL": database_url, **allowed},
            *("agent", "register", agent_id, "--a2a", url, "--workspace", workspace),
        )
        assert ran.code == 0, ran.err
        bridge = [sys.executable, str(ROOT / "agent.py"), "--a2a-bridge", "--workspace", workspace]
        env = {"DATABASE_URL": database_url, "TEMPORAL_ADDRESS": temporal_server.address, **allowed}
        log = tmp_path / "bridge.log"
        with running(bridge, log, env) as process:
            results = await goal_done_by(client, pool, task_queue, workspace, process, log)
    assert results == {"draft": "Draft: done over A2A", "edit": "Edit: done over A2A"}
    await registry.take_offline(pool, [agent_id])


async def test_an_agent_credential_and_a_persons_token_each_open_only_their_own_doors(
    api_url: str, pool: asyncpg.Pool, workspace: str
) -> None:
    agent_id, credential = await http_agent(pool, workspace)
    token = (await new_token(pool, "dana", [workspace]))["token"]
    as_agent = {"Authorization": f"Bearer {credential}"}
    as_person = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api_url) as http:
        me = await http.get("/api/v1/agent/me", headers=as_agent)
        assert me.json() == {"agent_id": agent_id, "workspace": workspace, "public_key": None}
        assert (await http.get("/api/v1/goals", headers=as_person)).status_code == 200
        # Neither is the other: an agent reads no goals, a person takes no assignments.
        for path, auth in (("/api/v1/goals", as_agent), ("/api/v1/agent/me", as_person)):
            answer = await http.get(path, headers=auth)
            assert answer.status_code == 401, (path, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
    await registry.take_offline(pool, [agent_id])


def test_the_page_shows_each_example_as_it_is_tested() -> None:
    page = PAGE.read_text()
    for name in ("agent.sh", "agent.py", "agent.ts", "a2a_agent.py"):
        source = (EXAMPLES / name).read_text()
        assert f"examples/{name}" in page, name
        assert source.strip() in page, f"docs/connect-an-agent.md does not show {name} as it is"
