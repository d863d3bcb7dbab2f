"""The README's five-minute tour, run as a newcomer runs it: the shell blocks of its section,
command by command and in order, on a stack of their own (`starter.py up` on free ports and
in a temporary data folder, then the worker and agents as the tour starts them).

Like a person who reads each answer before typing the next command, the test waits for
what the tour says has happened (a task assigned, a result awaiting approval) before a
command that needs it, fills in placeholders such as `<assignment_id from the query>` or
`<the gka_... it printed>` from the previous command's output, gives the tour's API address
its own port, and presses Ctrl-C where a comment says to. Every command must succeed and
every goal the tour starts must complete; when the README's commands change, this test
runs the new ones.
"""

import asyncio
import os
import re
import shlex
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from goalkeeper.statuses import TaskStatus
from interfaces.cli.queries import awaiting_approval
from interfaces.stack import EmbeddedPostgres, free_port, temporal_cli
from tests.helpers import PATIENCE, ROOT, eventually, wait_task

README = ROOT / "README.md"
TOUR = "## A five-minute tour"

READY = {"up": "Ctrl-C stops the stack", "worker.py": "worker polling task queue"}
"""What a long-running command prints once the next command may rely on it."""

CTRL_C = {"awaits approval": "awaiting approval"}
"""What a "Ctrl-C once ..." comment waits for, as the command prints it."""

TASK_READY = {
    "report": TaskStatus.ASSIGNED,
    "approve": TaskStatus.AWAITING_APPROVAL,
    "reject": TaskStatus.AWAITING_APPROVAL,
    "status": TaskStatus.ASSIGNED,  # the user reads the assignment from it
    "agent_report": TaskStatus.ASSIGNED,
    "approval_decision": TaskStatus.AWAITING_APPROVAL,
}
"""The state a task is in when the tour sends each of these (by command or signal name)."""

PLACEHOLDER = re.compile(r"<(\w+) from the query>")
"""A value the previous command printed as JSON, by its key."""
PRINTED = re.compile(r"<the (\w+)\.\.\. it printed>")
"""A secret the previous command printed once, by how it starts (`gka_`)."""
API = "http://127.0.0.1:8000"
"""The API's address as the tour gives it (the port `up` serves it on by default)."""


@dataclass
class Step:
    """One command of the tour, as a person would paste it into a shell."""

    line: int
    text: str
    argv: list[str]
    comment: str = ""
    background: bool = field(init=False)

    def __post_init__(self) -> None:
        self.background = self.argv[-1] == "&" or self.long_running() is not None
        if self.argv[-1] == "&":
            self.argv.pop()
            self.text = self.text.rstrip().removesuffix("&").rstrip()

    def long_running(self) -> str | None:
        """`up` or `worker.py` (which print when ready), `agent.py`, or None."""
        if self.argv[:3] == ["python", "starter.py", "up"]:
            return "up"
        script = next((a for a in self.argv if a.endswith(".py")), None)
        return script if script in ("worker.py", "agent.py") else None

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


def tour_blocks(readme: str) -> list[list[tuple[int, str]]]:
    """The tour's ```sh blocks, each a list of (line number, line)."""
    lines = readme.splitlines()
    start = lines.index(TOUR)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks: list[list[tuple[int, str]]] = []
    block: list[tuple[int, str]] | None = None
    for number in range(start + 1, end):
        line = lines[number]
        if block is None and line.strip() == "```sh":
            block = []
        elif block is not None and line.strip() == "```":
            blocks.append(block)
            block = None
        elif block is not None:
            block.append((number + 1, line))
    return blocks


def steps(block: list[tuple[int, str]]) -> Iterator[Step]:
    """The block's commands: lines joined where a command goes on (a trailing backslash, or
    a quote still open), each without its comment."""
    pending: list[str] = []
    first = 0
    for number, line in block:
        if not pending and not line.strip():
            continue
        first = first or number
        pending.append(line)
        text = "\n".join(pending)
        if text.endswith("\\"):
            continue
        try:
            argv = shlex.split(text.replace("\\\n", " "), comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        command, comment = split_comment(text)
        yield Step(first, command, argv, comment)
        pending, first = [], 0
    assert not pending, f"README.md:{first}: a command that never ends"


def split_comment(text: str) -> tuple[str, str]:
    """The command and its `# comment`, if any (a `#` that starts a word outside quotes)."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text, ""


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


class Tour:
    """The stack, processes and state of one run of the tour."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.data = home / "data"
        self.port, self.ui_port, self.api_port = free_port(), free_port(), free_port()
        self.env = self._environment()
        self.running: dict[str, list[tuple[asyncio.subprocess.Process, Path]]] = {}
        self.last_output = ""
        self.client: Client | None = None
        self.pool: asyncpg.Pool | None = None

    def _environment(self) -> dict[str, str]:
        """A newcomer's shell: `python` and `temporal` from the virtual environment, and
        nothing of the suite's own settings; only where the stack lives is chosen here."""
        bin_dir = self.home / "bin"
        bin_dir.mkdir(parents=True)
        for name, target in (("python", sys.executable), ("temporal", temporal_cli())):
            wrapper = bin_dir / name
            wrapper.write_text(f'#!/bin/sh\nexec "{target}" "$@"\n')
            wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        kept = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GOALKEEPER_", "TEMPORAL_")) and k != "DATABASE_URL"
        }
        return kept | {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "GOALKEEPER_DATA_DIR": str(self.data),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.port}",
            "GOALKEEPER_UI_URL": f"http://127.0.0.1:{self.ui_port}",
        }

    async def run(self, step: Step) -> None:
        text = self._filled(step)
        await self._wait_until_ready(step)
        if step.background:
            await self._start(step, text)
        elif step.comment.startswith("Ctrl-C"):
            await self._interrupt_when_told(step, text)
        else:
            code, out, err = await self._shell(text)
            assert code == 0, f"{step}\nexited {code}\n{out}\n{err}"
            self.last_output = out

    def _filled(self, step: Step) -> str:
        """The command with its placeholders filled from the previous command's output."""

        def value(match: re.Match[str]) -> str:
            found = re.search(rf'"{match.group(1)}"\s*:\s*"([^"]*)"', self.last_output)
            assert found, f"{step}\nno {match.group(1)} in the previous output:\n{self.last_output}"
            return found.group(1)

        def printed(match: re.Match[str]) -> str:
            found = re.search(rf"(?<!\S){re.escape(match.group(1))}\S+", self.last_output)
            assert found, (
                f"{step}\nno {match.group(1)}... in the previous output:\n{self.last_output}"
            )
            return found.group(0)

        text = PRINTED.sub(printed, PLACEHOLDER.sub(value, step.text))
        text = text.replace(API, f"http://127.0.0.1:{self.api_port}")
        assert not re.search(r"<[^>]+>", text), f"{step}\na placeholder the test cannot fill"
        if step.long_running() == "up":  # free ports, not the defaults
            text += f" --port {self.port} --ui-port {self.ui_port} --api-port {self.api_port}"
        return text

    async def _shell(self, text: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            "bash", "-c", text, cwd=ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(), PATIENCE)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"{text} did not end in {PATIENCE:.0f} s") from None
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def _start(self, step: Step, text: str) -> None:
        """Start a command that runs on (in its own terminal, or with `&`); a worker started
        again replaces the one that runs, as Ctrl-C then the new command would."""
        kind = step.long_running() or step.argv[0]
        if kind == "worker.py":
            for process, _ in self.running.pop(kind, []):
                await stop(process)
        log = self.home / f"{kind}-{step.line}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                "bash", "-c", text, cwd=ROOT, env=self.env, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.running.setdefault(kind, []).append((process, log))
        if kind in READY:
            deadline = time.monotonic() + PATIENCE
            while READY[kind] not in log.read_text():
                assert process.returncode is None, f"{step}\nexited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{step}\nnever ready:\n{log.read_text()}"
                await asyncio.sleep(0.2)

    async def _interrupt_when_told(self, step: Step, text: str) -> None:
        """Run a command that follows something, and press Ctrl-C when the comment says."""
        sign = next((CTRL_C[k] for k in CTRL_C if k in step.comment), None)
        assert sign, f"{step}\nwhat does '{step.comment}' look like? Add it to CTRL_C"
        process = await asyncio.create_subprocess_exec(
            "bash", "-c", text, cwd=ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        assert process.stdout is not None and process.stderr is not None
        seen: list[str] = []
        deadline = time.monotonic() + PATIENCE
        while not seen or sign not in seen[-1]:
            try:
                line = await asyncio.wait_for(
                    process.stdout.readline(), deadline - time.monotonic()
                )
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                raise AssertionError(f"{step}\nnever showed {sign!r}: {seen}") from None
            if not line:
                err = (await process.stderr.read()).decode()
                raise AssertionError(f"{step}\nended before {sign!r}: {seen}\n{err}")
            seen.append(line.decode())
        os.killpg(process.pid, signal.SIGINT)
        await asyncio.wait_for(process.wait(), PATIENCE)
        assert process.returncode == 130, f"{step}\nexited {process.returncode} on Ctrl-C"
        self.last_output = "".join(seen)

    async def _wait_until_ready(self, step: Step) -> None:
        """Wait, as a person reading the previous output would, for what the tour says
        holds before this command: the task it names in the state it expects, or something
        awaiting the approver whose approvals it lists."""
        argv = step.argv
        if argv[:2] == ["python", "starter.py"] and argv[2:3] == ["approvals"]:
            approver = option(argv, "--as")
            pool = await self._pool()
            await eventually(
                lambda: awaiting_approval(pool, approver), what=f"a task awaiting {approver}"
            )
            return
        if argv[:2] == ["python", "starter.py"] and argv[2] in TASK_READY:
            ref, state = argv[3], TASK_READY[argv[2]]
        elif argv[0] == "temporal" and (name := option(argv, "--name")) in TASK_READY:
            ref, state = option(argv, "--workflow-id") or "", TASK_READY[name or ""]
        else:
            return
        goal_id, _, task_id = ref.rpartition("/")
        await wait_task(await self._client(), goal_id, task_id, state)

    async def _client(self) -> Client:
        if self.client is None:
            self.client = await Client.connect(
                self.env["TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter
            )
        return self.client

    async def _pool(self) -> asyncpg.Pool:
        if self.pool is None:
            url = EmbeddedPostgres(self.data / "postgres").running_url()
            assert url, "the tour's PostgreSQL is not running"
            self.pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        return self.pool

    async def completed_goals(self) -> list[str] | None:
        """The goals the tour started, once every one of them has completed."""
        rows = await (await self._pool()).fetch("SELECT goal_id, status::text FROM goals")
        done = all(row["status"] == "completed" for row in rows)
        return [row["goal_id"] for row in rows] if done else None

    async def agents_of(self, goal_id: str) -> list[str]:
        """The agents that hold a goal's tasks."""
        sql = "SELECT DISTINCT agent_id FROM tasks WHERE goal_id = $1 ORDER BY agent_id"
        return [row["agent_id"] for row in await (await self._pool()).fetch(sql, goal_id)]

    async def stop(self) -> None:
        """Stop everything the tour started, last first, as Ctrl-C in each terminal would."""
        if self.pool is not None:
            await self.pool.close()
        for kind in reversed(list(self.running)):
            for process, _ in reversed(self.running.pop(kind)):
                await stop(process)


async def stop(process: asyncio.subprocess.Process) -> None:
    """Ctrl-C to the process's group, then, if it does not end, SIGKILL."""
    if process.returncode is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def processes_naming(path: Path) -> list[int]:
    """Processes whose command line names `path`, a file of this test's own folder."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(path).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:  # it ended meanwhile
            continue
    return found


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_tour_is_read_from_the_readme() -> None:
    all_steps = [s for block in tour_blocks(README.read_text()) for s in steps(block)]
    assert [s.long_running() for s in all_steps[:2]] == ["up", "worker.py"]
    assert any("<assignment_id from the query>" in s.text for s in all_steps)
    assert any(PRINTED.search(s.text) and "--api" in s.argv for s in all_steps)
    assert any(s.comment.startswith("Ctrl-C") for s in all_steps)
    assert sum(s.background for s in all_steps) >= 4  # up, the worker twice, agents


async def test_the_tour_runs_from_start_to_end(tmp_path: Path) -> None:
    tour = Tour(tmp_path)
    ran = 0
    try:
        for block in tour_blocks(README.read_text()):
            for step in steps(block):
                await tour.run(step)
                ran += 1
        goals = await eventually(tour.completed_goals, what="every goal of the tour to complete")
        assert {"welcome", "q3.goal", "over-http", "signed"} <= set(goals), goals
        # Nothing but `agent.py --api` runs courier: its task was done over HTTP.
        assert await tour.agents_of("over-http") == ["courier"]
    finally:
        await tour.stop()
        # Stopping `up` stops the stack: had it not, what it left is stopped here.
        postgres = EmbeddedPostgres(tour.data / "postgres")
        left = ["PostgreSQL"] if postgres.running_url() is not None else []
        if left:
            postgres.start()
            postgres.stop()
        for pid in processes_naming(tour.data / "temporal.db"):
            left.append(f"Temporal (pid {pid})")
            os.kill(pid, signal.SIGKILL)
    assert not left, f"left running when the tour's stack stopped: {left}"
    assert ran > 20
    for port in (tour.port, tour.api_port):
        assert not listening(port), f"port {port} was left open"
