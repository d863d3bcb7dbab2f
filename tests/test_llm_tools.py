"""The LLM agent with MCP tools, costs and a budget: a scripted `FunctionModel` priced as a
real model calls the tools of a real MCP server (the `mcp` SDK) over stdio and over
streamable HTTP; prices come from `genai-prices`' own table. No network beyond loopback."""

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from genai_prices import calc_price
from pydantic_ai import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage, RunUsage

from interfaces.agents import llm, llm_costs
from interfaces.agents.llm_costs import InProcessLimiter, OverBudget
from interfaces.agents.llm_tools import MAX_KEPT_CALLS, ToolCallRecorder
from interfaces.agents.runner import Work

SERVER = str(Path(__file__).with_name("mcp_calc.py"))
STDIO = {"name": "calc", "command": sys.executable, "args": [SERVER]}
USAGE = (1200, 80)
"""Tokens each scripted model call reads and writes."""


def scripted(calls: list[tuple[str, dict[str, Any]]], answer: str = "done") -> FunctionModel:
    """A model that makes `calls` one per turn, then answers with the tools' results."""

    def respond(messages: list[Any], info: AgentInfo) -> ModelResponse:
        returns = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts
                   if isinstance(p, ToolReturnPart)]  # fmt: skip
        usage = RequestUsage(input_tokens=USAGE[0], output_tokens=USAGE[1])
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        if turn < len(calls):
            name, args = calls[turn]
            return ModelResponse(parts=[ToolCallPart(name, args)], usage=usage)
        said = "; ".join(f"{p.tool_name}={p.content}" for p in returns)
        return ModelResponse(parts=[TextPart(f"{answer}: {said}")], usage=usage)

    return FunctionModel(respond, model_name="gpt-4o-mini")


def work(config: dict[str, Any], notes: list[str] | None = None, **context: Any) -> Work:
    async def post(text: str) -> None:
        if notes is not None:
            notes.append(text)

    task = {"id": "t", "title": "Add", "skill": "writing"}
    return Work("a1", "agent-1", "g", "t", 1, {"goal": {"title": "Sums"}, "task": task,
                **context}, config=config, poster=post)  # fmt: skip


def expected_cost(calls: int) -> float:
    usage = RunUsage(input_tokens=USAGE[0] * calls, output_tokens=USAGE[1] * calls)
    return float(calc_price(usage, "gpt-4o-mini", provider_id="openai").total_price)


def digest(args: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(args, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


@pytest.fixture
def http_server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, SERVER, "http", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the MCP server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


async def test_tools_over_stdio_and_http_are_called_recorded_noted_and_priced(
    http_server: str,
) -> None:
    config = {"mcp_servers": [STDIO, {"name": "web", "url": http_server}]}
    calls: list[tuple[str, dict[str, Any]]] = [
        ("calc_add", {"a": 2, "b": 3}),
        ("web_add", {"a": 4, "b": 5}),
        ("calc_boom", {"reason": "x"}),
    ]
    notes: list[str] = []
    done = await llm.LlmHook(scripted(calls))(work(config, notes))
    assert done.result == "done: calc_add=5; web_add=9; calc_boom=Error executing tool boom"
    assert [(c["tool"], c["outcome"]) for c in done.tool_calls] == [
        ("calc_add", "success"), ("web_add", "success"), ("calc_boom", "failed")]  # fmt: skip
    assert done.tool_calls[0]["args_digest"] == digest({"a": 2, "b": 3})
    assert done.tool_calls[0]["error"] is None and "boom" in done.tool_calls[2]["error"]
    assert all(c["duration_ms"] >= 0 for c in done.tool_calls)
    assert [n.split(" (")[0] for n in notes] == ["called calc_add", "called web_add",
                                                 "called calc_boom"]  # fmt: skip
    assert notes[0].startswith("called calc_add (ok, ") and "(failed, " in notes[2]
    assert (done.input_tokens, done.output_tokens) == (USAGE[0] * 4, USAGE[1] * 4)
    assert done.tokens_used == (USAGE[0] + USAGE[1]) * 4
    assert done.cost_known and done.cost_usd == pytest.approx(expected_cost(4), abs=1e-12)


async def test_a_budget_stops_the_run_before_the_model_call_that_would_overspend() -> None:
    made: list[int] = []
    inner = scripted([("calc_add", {"a": 1, "b": 1})])

    def counting(messages: list[Any], info: AgentInfo) -> ModelResponse:
        made.append(len(messages))
        assert inner.function is not None
        return inner.function(messages, info)  # type: ignore[return-value]

    model = FunctionModel(counting, model_name="gpt-4o-mini")
    # The first call (about 0.0003) fits; after it 0.000172 is left, and the second would
    # read at least the first's 1,280 tokens.
    budget = {"usd_left": 0.0004, "tokens_left": None}
    with pytest.raises(llm.LlmFailure, match=r"budget: USD 0\.000172 left, the next model call "
                                             r"would cost about 0\.000249$") as failed:  # fmt: skip
        await llm.LlmHook(model)(work({"mcp_servers": [STDIO]}, budget=budget))
    assert len(made) == 1, "the second model call was made"
    done = failed.value.done
    assert done.cost_usd == pytest.approx(expected_cost(1)) and done.tokens_used == sum(USAGE)
    assert [c["tool"] for c in done.tool_calls] == ["calc_add"]
    assert failed.value.tokens_used == sum(USAGE)  # what the runner reports for the attempt


async def test_a_token_budget_stops_the_run_too() -> None:
    budget = {"usd_left": None, "tokens_left": 2000}
    with pytest.raises(llm.LlmFailure, match="budget: 720 tokens left, the next model call"):
        await llm.LlmHook(scripted([("calc_add", {"a": 1, "b": 1})]))(
            work({"mcp_servers": [STDIO]}, budget=budget)
        )


async def test_an_unknown_model_leaves_the_cost_unknown_and_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def respond(messages: list[Any], info: AgentInfo) -> ModelResponse:
        usage = RequestUsage(input_tokens=10, output_tokens=5)
        return ModelResponse(parts=[TextPart("ok")], usage=usage)

    model = FunctionModel(respond, model_name="house-model-7")
    with caplog.at_level(logging.WARNING, logger="goalkeeper.agent.llm"):
        first = await llm.LlmHook(model)(work({}))
        second = await llm.LlmHook(model)(work({}, budget={"usd_left": 0.01}))
    for done in (first, second):
        assert (done.cost_known, done.cost_usd, done.tokens_used) == (False, 0.0, 15)
    said = [r.message for r in caplog.records if "house-model-7" in r.message]
    assert said == ["no price known for model 'house-model-7': its cost is left unknown"]


async def test_a_server_that_cannot_start_fails_the_attempt_naming_it() -> None:
    missing = {"name": "files", "command": "/nonexistent/mcp-files"}
    with pytest.raises(llm.LlmFailure, match=r"MCP server 'files' \(/nonexistent/mcp-files\) "
                                             r"could not start"):  # fmt: skip
        await llm.LlmHook(scripted([]))(work({"mcp_servers": [missing]}))
    exits = {"name": "quits", "command": sys.executable, "args": ["-c", "pass"]}
    with pytest.raises(llm.LlmFailure, match=r"MCP server 'quits' .* could not start"):
        await llm.LlmHook(scripted([]))(work({"mcp_servers": [exits]}))


async def test_a_server_that_answers_garbage_fails_the_attempt_naming_it(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.py"
    garbage.write_text(
        "import sys, time\nprint('not json-rpc', flush=True)\n"
        "sys.stdin.readline()\nprint('{garbage', flush=True)\ntime.sleep(60)\n"
    )
    server = {"name": "junk", "command": sys.executable, "args": [str(garbage)]}
    config = {"mcp_servers": [server], "start_timeout_seconds": 2}
    started = time.monotonic()
    with pytest.raises(llm.LlmFailure, match=r"MCP server 'junk' .* could not start"):
        await llm.LlmHook(scripted([]))(work(config))
    assert time.monotonic() - started < 30


async def test_an_http_server_that_is_not_there_fails_the_attempt_naming_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = {"name": "web", "url": f"http://127.0.0.1:{port}/mcp"}
    with pytest.raises(llm.LlmFailure, match=r"MCP server 'web' \(http://127.0.0.1:\d+/mcp\) "
                                             r"could not start"):  # fmt: skip
        await llm.LlmHook(scripted([]))(work({"mcp_servers": [server]}))


async def test_a_hanging_tool_is_cut_at_the_timeout_and_the_model_told() -> None:
    config = {"mcp_servers": [STDIO], "tool_timeout_seconds": 1}
    started = time.monotonic()
    done = await llm.LlmHook(scripted([("calc_slow", {"seconds": 60})]))(work(config))
    assert time.monotonic() - started < 30
    assert isinstance(done.result, str) and "timed out after 1 s" in done.result
    (call,) = done.tool_calls
    assert (call["tool"], call["outcome"]) == ("calc_slow", "timeout")
    assert call["duration_ms"] >= 1000


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"mcp_servers": [{"name": "x"}]}, "mcp_servers.0: MCP server 'x' needs"),
        ({"mcp_servers": [{"name": "Bad Name", "command": "x"}]}, "mcp_servers.0.name"),
        ({"mcp_servers": [{"name": "x", "url": "file:///etc"}]}, "mcp_servers.0.url"),
        ({"mcp_servers": [{"name": "x", "command": "a", "shell": True}]}, "mcp_servers.0.shell"),
        ({"mcp_servers": [STDIO, STDIO]}, "MCP server names must differ, got calc twice"),
        ({"tool_timeout_seconds": -1}, "tool_timeout_seconds"),
        ({"max_tool_calls": 10_000}, "max_tool_calls"),
        ({"mcp_servers": "calc"}, "mcp_servers"),
    ],
)
async def test_a_bad_config_is_refused_naming_the_field(config: dict[str, Any], named: str) -> None:
    with pytest.raises(llm.LlmFailure, match="bad agent config: ") as failed:
        await llm.LlmHook(scripted([]))(work(config))
    assert named in str(failed.value)


async def test_an_answer_of_the_wrong_type_fails_the_attempt_with_the_reason() -> None:
    def respond(messages: list[Any], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"kind": "nonsense"})])

    item = work({})
    item.context["task"] = {"id": "triage", "title": "t", "skill": "triage", "expects": "triage"}
    hook = llm.LlmHook(FunctionModel(respond, model_name="gpt-4o-mini"))
    with pytest.raises(llm.LlmFailure, match="the model did not answer as expected") as failed:
        await hook(item)
    assert failed.value.done.tokens_used > 0


async def test_too_many_tool_calls_end_the_run() -> None:
    calls = [("calc_add", {"a": n, "b": 1}) for n in range(5)]
    with pytest.raises(llm.LlmFailure, match="limit: ") as failed:
        await llm.LlmHook(scripted(calls))(work({"mcp_servers": [STDIO], "max_tool_calls": 2}))
    assert [c["outcome"] for c in failed.value.done.tool_calls] == ["success", "success"]


async def test_the_token_rate_limiter_holds_calls_back_and_refuses_the_impossible() -> None:
    limiter = InProcessLimiter(tokens_per_minute=100, window=0.5)
    await limiter.acquire(60)
    started = time.monotonic()
    await limiter.acquire(60)  # waits for the first to leave the window
    assert time.monotonic() - started >= 0.4
    with pytest.raises(OverBudget, match="exceeds the limit of 100 tokens a minute"):
        await limiter.acquire(101)
    hook = llm.LlmHook(scripted([]), limiter=InProcessLimiter(tokens_per_minute=10))
    with pytest.raises(llm.LlmFailure, match="rate limit"):
        await hook(work({}))


def test_prices_come_from_the_table_and_the_provider_when_given() -> None:
    usage = RunUsage(input_tokens=1000, output_tokens=500)
    assert llm_costs.price(usage, "gpt-4o-mini") == Decimal("0.00045")
    assert llm_costs.run_cost(RunUsage(input_tokens=1, cost=Decimal("0.5")), "x", None) == Decimal(
        "0.5"
    )


async def test_an_http_server_that_answers_html_fails_the_attempt_naming_it() -> None:
    class Html(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b"<html>not MCP</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        server = {"name": "web", "url": f"http://127.0.0.1:{httpd.server_port}/mcp"}
        config = {"mcp_servers": [server], "start_timeout_seconds": 5}
        with pytest.raises(llm.LlmFailure, match=r"MCP server 'web' .* could not start: "):
            await llm.LlmHook(scripted([]))(work(config))
    finally:
        httpd.shutdown()
        httpd.server_close()


def children() -> set[int]:
    """The processes this one started that are still alive."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


async def test_a_stdio_server_ends_with_the_attempt_whatever_its_outcome() -> None:
    before = children()
    await llm.LlmHook(scripted([("calc_add", {"a": 1, "b": 2})]))(work({"mcp_servers": [STDIO]}))
    with pytest.raises(llm.LlmFailure, match="budget"):
        await llm.LlmHook(scripted([("calc_add", {"a": 1, "b": 2})]))(
            work({"mcp_servers": [STDIO]}, budget={"usd_left": 0.0001})
        )
    assert children() - before == set()


async def test_the_record_keeps_a_bounded_number_of_calls_with_clipped_errors() -> None:
    notes: list[str] = []

    async def note(text: str) -> None:
        notes.append(text)

    recorder = ToolCallRecorder(note=note)
    for n in range(MAX_KEPT_CALLS + 5):
        await recorder._record(ToolCallPart("calc_boom", {"n": n}), "failed", "x" * 5000, 0.01)
    assert (len(recorder.calls), recorder.dropped) == (MAX_KEPT_CALLS, 5)
    assert len(notes) == MAX_KEPT_CALLS
    assert all(len(c["error"]) == 300 for c in recorder.calls)
