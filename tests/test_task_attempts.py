"""A task's attempts over the API: every attempt with its agent, times, tokens, cost (or
unknown), error, trace, tool calls, notes and the context it was given, secrets masked and
bounded; another workspace's goal is the same 404 as an unknown one."""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from goalkeeper.masking import mask_values
from goalkeeper.statuses import GoalStatus
from interfaces.agents.runner import Work, WorkResult
from interfaces.api.app import create_app
from interfaces.config import Settings
from monitoring.traces import trace_id_of
from store.tokens import new_token
from tests.helpers import (
    PATIENCE,
    goal_spec,
    running_agents,
    start_goal,
)

PROBLEM = "application/problem+json"
TRACE_URL = "http://traces.example/trace/{trace_id}"
LARGE = "".join(f"line {n:06d} of the long report\n" for n in range(9_000))
"""A result of about 300,000 characters: stored by reference, and longer than a page shows."""


def call(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "tool": f"search-{n}",
        "args_digest": hashlib.sha256(f"query {n}".encode()).hexdigest(),
        "duration_ms": 10 * n,
        "outcome": "success",
        "error": None,
    } | fields


class Stumbled(Exception):
    """A failed attempt that says what it spent, as the LLM hook's failures do."""

    def __init__(self, message: str, done: WorkResult) -> None:
        super().__init__(message)
        self.done = done


async def fails_then_succeeds(work: Work) -> WorkResult:
    """The first attempt notes, calls a tool that fails, and fails, its price known; the
    next notes, calls two tools and returns a large result, its price unknown."""
    await work.note(f"attempt {work.attempt}: searching <b>2</b> sources")
    if work.attempt == 1:
        spent = WorkResult(
            result=None,
            tokens_used=40,
            input_tokens=30,
            output_tokens=10,
            cost_usd=0.0021,
            tool_calls=(call(1, outcome="failed", error="the index was down"),),
        )
        raise Stumbled("the index was down", spent)
    await work.note("writing it up")
    return WorkResult(
        result=LARGE,
        tokens_used=90,
        input_tokens=70,
        output_tokens=20,
        cost_known=False,
        tool_calls=(call(1), call(2, outcome="timeout", error="no answer in 30 s")),
    )


@pytest.fixture
async def http(pool: asyncpg.Pool, traced_client: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the test's stack with a trace viewer configured, called in process."""
    app = create_app(Settings(trace_url=TRACE_URL), pool=pool, client=traced_client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost/api/v1"
        ) as http,
    ):
        yield http


async def bearer(pool: asyncpg.Pool, person: str, workspace: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await new_token(pool, person, [workspace]))['token']}"}


async def test_every_attempt_with_its_tool_calls_notes_context_and_trace(
    http: httpx.AsyncClient,
    traced_client: Client,
    traced_queue: str,
    pool: asyncpg.Pool,
    workspace: str,
    exporter: InMemorySpanExporter,
) -> None:
    work = {"title": "Launch", "tasks": [{"id": "t1", "title": "Task 1", "skill": "writing"}]}
    work["description"] = "reach postgresql://reader:hunter2-secret@db.example/app for the data"
    launch = {"id": "launch", "title": "Launch", "goal": work}
    spec = goal_spec(0, workspace, max_attempts=2, tasks=[launch])
    async with running_agents(traced_client, pool, workspace, fails_then_succeeds):
        goal = await start_goal(traced_client, spec, traced_queue)
        report = await asyncio.wait_for(goal.result(), PATIENCE)
    goal_id = f"{goal.id}/launch"  # a sub-goal: its id holds a slash
    assert report.status is GoalStatus.COMPLETED
    reader = await bearer(pool, "reader", workspace)

    answer = await http.get(f"/goals/{goal_id}/tasks/t1/attempts", headers=reader)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["goal_id"], body["task_id"], body["total"], body["next_offset"]) == (
        goal_id,
        "t1",
        2,
        None,
    )
    done, failed = body["items"]  # the latest first
    assert (done["attempt"], done["status"], failed["attempt"], failed["status"]) == (
        2,
        "completed",
        1,
        "failed",
    )
    assert failed["error"] == "the index was down" and done["error"] is None
    assert (failed["input_tokens"], failed["output_tokens"], failed["cost_usd"]) == (30, 10, 0.0021)
    assert (done["input_tokens"], done["output_tokens"], done["tokens_used"]) == (70, 20, 90)
    assert done["cost_usd"] is None and not done["cost_known"]  # unknown, not free
    for attempt in (done, failed):
        assert attempt["ended_at"] >= attempt["created_at"]
        assert attempt["duration_seconds"] >= 0

    assert [(c["n"], c["tool"], c["outcome"], c["error"]) for c in failed["tool_calls"]] == [
        (1, "search-1", "failed", "the index was down")
    ]
    assert [(c["tool"], c["outcome"]) for c in done["tool_calls"]] == [
        ("search-1", "success"),
        ("search-2", "timeout"),
    ]
    assert done["tool_calls"][0]["args_digest"] == call(1)["args_digest"]
    assert [n["message"] for n in failed["notes"]] == ["attempt 1: searching <b>2</b> sources"]
    assert [(n["number"], n["message"]) for n in done["notes"]] == [
        (1, "attempt 2: searching <b>2</b> sources"),
        (2, "writing it up"),
    ]

    # The context as given, its secrets masked; its trace is the goal's.
    context = done["context"]
    assert (context["attempt"], context["task"]["id"], context["goal"]["goal_id"]) == (
        2,
        "t1",
        goal_id,
    )
    assert "hunter2-secret" not in answer.text
    assert "postgresql://reader:****@db.example/app" in context["goal"]["description"]
    traces = {f"{s.context.trace_id:032x}" for s in exporter.get_finished_spans()}
    assert done["trace_id"] in traces and failed["trace_id"] in traces
    assert done["trace_url"] == TRACE_URL.replace("{trace_id}", done["trace_id"])

    # The task's page links each attempt's trace, and masks what the API masks.
    page = await http.get(f"http://localhost/goals/{goal_id}/tasks/t1", headers=reader)
    assert page.status_code == 200, page.text
    for attempt in (done, failed):
        assert f'href="{attempt["trace_url"]}"' in page.text
    assert "hunter2-secret" not in page.text and "reader:****@db.example" in page.text

    # Paged, the latest first.
    first = (
        await http.get(f"/goals/{goal_id}/tasks/t1/attempts", params={"limit": 1}, headers=reader)
    ).json()
    assert [a["attempt"] for a in first["items"]] == [2] and first["next_offset"] == 1

    # Another workspace's goal is the same 404 as an unknown one; so is an unknown task.
    stranger = await bearer(pool, "stranger", f"{workspace}-other")
    hidden = await http.get(f"/goals/{goal_id}/tasks/t1/attempts", headers=stranger)
    unknown = await http.get("/goals/no-such-goal/tasks/t1/attempts", headers=stranger)
    for refused in (hidden, unknown):
        assert refused.status_code == 404 and refused.headers["content-type"] == PROBLEM
    assert hidden.json()["detail"].replace(goal_id, "X") == unknown.json()["detail"].replace(
        "no-such-goal", "X"
    )
    missing = await http.get(f"/goals/{goal_id}/tasks/t9/attempts", headers=reader)
    assert missing.status_code == 404 and "t9" in missing.json()["detail"]
    for bad in ({"limit": 0}, {"offset": -1}, {"limit": "many"}):
        refused = await http.get(f"/goals/{goal_id}/tasks/t1/attempts", params=bad, headers=reader)
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM


async def test_a_large_context_is_cut_to_its_beginning(
    http: httpx.AsyncClient,
    traced_client: Client,
    traced_queue: str,
    pool: asyncpg.Pool,
    workspace: str,
) -> None:
    tasks = [
        {"id": "big", "title": "Write a lot", "skill": "writing"},
        {"id": "next", "title": "Read it", "skill": "writing", "depends_on": ["big"]},
    ]

    async def large_then_small(work: Work) -> WorkResult:
        return WorkResult(result="x" * 40_000 if work.task_id == "big" else "read")

    async with running_agents(traced_client, pool, workspace, large_then_small):
        spec = goal_spec(workspace=workspace, tasks=tasks)
        goal = await start_goal(traced_client, spec, traced_queue)
        await asyncio.wait_for(goal.result(), PATIENCE)
    body = (
        await http.get(
            f"/goals/{goal.id}/tasks/next/attempts", headers=await bearer(pool, "r", workspace)
        )
    ).json()
    (only,) = body["items"]
    assert only["context"] is None and only["context_chars"] > 40_000
    assert len(only["context_excerpt"]) == 16_000
    assert only["context_excerpt"].startswith("{")


def test_a_trace_id_is_read_from_a_traceparent_only() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of(f"00-{trace}-00f067aa0ba902b7-01") == trace
    for bad in (None, 42, "", "00-0-0-01", f"00-{'0' * 32}-00f067aa0ba902b7-01", f"{trace}"):
        assert trace_id_of(bad) is None, bad
    assert trace_id_of(f"00-{trace.upper()}-00f067aa0ba902b7-01") is None  # lowercase hex only


def test_secrets_are_masked_in_every_text_of_a_context_and_nothing_else_changes() -> None:
    context: dict[str, Any] = {
        "goal": {"description": "use sk-live-abcdef123456 at postgresql://u:pw1@h/db"},
        "deps": [["sk-live-abcdef123456", 3, None, True]],
    }
    masked = mask_values(context, ["sk-live-abcdef123456"])
    assert masked == {
        "goal": {"description": "use **** at postgresql://u:****@h/db"},
        "deps": [["****", 3, None, True]],
    }
    assert context["deps"][0][0] == "sk-live-abcdef123456"  # the original is left alone


def test_the_trace_url_setting_needs_an_address_with_the_trace_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "http://localhost:16686/trace/{trace_id}"
    monkeypatch.delenv("GOALKEEPER_TRACE_URL", raising=False)
    assert Settings.from_env().trace_url is None
    monkeypatch.setenv("GOALKEEPER_TRACE_URL", url)
    assert Settings.from_env().trace_url == url
    for bad in ("http://localhost:16686/trace/", "javascript:alert(1)//{trace_id}"):
        monkeypatch.setenv("GOALKEEPER_TRACE_URL", bad)
        with pytest.raises(ValueError, match="GOALKEEPER_TRACE_URL must be an http"):
            Settings.from_env()
