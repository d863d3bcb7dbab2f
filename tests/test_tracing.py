"""Telemetry: one goal is one linked trace, from the workflows to each agent attempt's model
calls and tools (OpenTelemetry's GenAI conventions), which replay never emits again; SDK
metrics for Prometheus when configured."""

import asyncio
import urllib.request
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic_ai.models.test import TestModel
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from goalkeeper.runbooks import parse_runbook
from goalkeeper.statuses import GoalStatus
from interfaces.agents import llm, registry
from interfaces.agents.attempt_trace import attempt_span
from interfaces.agents.runner import AgentRunner, Hook, SimulatedWork, Work, WorkResult
from interfaces.client import connect
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer, free_port
from interfaces.telemetry import (
    TelemetryError,
    interceptor_for,
    tracer_provider,
    tracing_interceptors,
)
from store.runbooks import add_runbook
from tests.helpers import PATIENCE, SimulatedAgents, goal_spec, start_goal
from tests.test_llm_tools import STDIO, USAGE, scripted
from tests.test_runbooks import runbook_toml
from worker import build_worker
from workflows.goal import GoalWorkflow
from workflows.request import RequestWorkflow
from workflows.task import TaskWorkflow

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_one_goal_is_one_linked_trace(
    traced_client: Client,
    traced_queue: str,
    pool: asyncpg.Pool,
    workspace: str,
    exporter: InMemorySpanExporter,
) -> None:
    handle = await start_goal(traced_client, goal_spec(2, workspace), traced_queue)
    async with SimulatedAgents(traced_client, pool, handle.id):
        await handle.result()

    # An agent's report is the agent's own trace; the goal's trace shows it as HandleSignal.
    spans = [
        s
        for s in exporter.get_finished_spans()
        if _about(s, handle.id) and not s.name.startswith("SignalWorkflow:")
    ]
    names = {s.name for s in spans}
    assert {
        "StartWorkflow:GoalWorkflow",
        "RunWorkflow:GoalWorkflow",
        "StartChildWorkflow:TaskWorkflow",
        "RunWorkflow:TaskWorkflow",
        "StartActivity:record_goal",
        "RunActivity:assign_agents",
        "RunActivity:end_assignment",
        "RunActivity:finish_goal",
        "HandleSignal:agent_report",
    } <= names, names
    traces: dict[int, set[str]] = {}
    for s in spans:
        traces.setdefault(s.context.trace_id, set()).add(s.name)
    assert len(traces) == 1, f"the goal spans more than one trace: {list(traces.values())}"

    by_id = {s.context.span_id: s for s in spans}
    root = next(s for s in spans if s.name == "StartWorkflow:GoalWorkflow")
    for span in spans:
        chain = span
        while chain.parent is not None and chain.parent.span_id in by_id:
            chain = by_id[chain.parent.span_id]
        assert chain is root, f"{span.name} is not linked to the goal's start"


def _in_goal(span: ReadableSpan, goal_id: str) -> bool:
    """A span of the goal's workflows, not one of an agent's report (the agent's own trace)."""
    reporting = span.name.startswith(("SignalWorkflow:", "StartWorkflowUpdate:"))
    return _about(span, goal_id) and not reporting


def _about(span: ReadableSpan, goal_id: str) -> bool:
    workflow_id = str((span.attributes or {}).get("temporalWorkflowID", ""))
    return workflow_id == goal_id or workflow_id.startswith(f"{goal_id}/")


def test_tracing_is_off_by_default_and_rejects_unknown_exporters() -> None:
    assert tracing_interceptors(Settings(), "test") == []
    assert tracer_provider(Settings(), "test") is None
    with pytest.raises(TelemetryError, match="one of none, console, otlp, got 'zipkin'"):
        tracing_interceptors(Settings(traces="zipkin"), "test")


async def test_sdk_metrics_are_served_for_prometheus_when_configured(
    temporal_server: TemporalDevServer, pool: asyncpg.Pool, workspace: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = Settings(temporal_address=temporal_server.address, metrics_address=address)
    client = await connect(settings)
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, pool, queue):
        handle = await start_goal(client, goal_spec(1, workspace), queue)
        async with SimulatedAgents(client, pool, handle.id):
            await handle.result()
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://{address}/metrics", timeout=60).read().decode()
    )
    # Prometheus names: counters end in _total, durations are seconds and say so.
    assert "\ntemporal_workflow_completed_total{" in body
    assert "\ntemporal_local_activity_execution_latency_seconds_bucket{" in body


async def test_each_assignment_carries_its_goals_trace_for_the_agent(
    traced_client: Client,
    traced_queue: str,
    pool: asyncpg.Pool,
    workspace: str,
    exporter: InMemorySpanExporter,
) -> None:
    """An agent's spans (its model calls, its tools) join the goal's trace: each
    assignment's context names the span that assigned it, within that trace."""
    handle = await start_goal(traced_client, goal_spec(2, workspace), traced_queue)
    async with SimulatedAgents(traced_client, pool, handle.id):
        await handle.result()
    spans = {
        s.context.span_id: s
        for s in exporter.get_finished_spans()
        if _about(s, handle.id) and not s.name.startswith("SignalWorkflow:")  # agents' own
    }
    (trace_id,) = {s.context.trace_id for s in spans.values()}
    rows = await pool.fetch(
        "SELECT context->>'traceparent' AS traceparent FROM assignments WHERE goal_id = $1",
        handle.id,
    )
    assert len(rows) == 2
    for row in rows:
        version, trace_hex, span_hex, _flags = row["traceparent"].split("-")
        assert version == "00" and int(trace_hex, 16) == trace_id, row
        assert spans[int(span_hex, 16)].name == "RunActivity:assign_agents"


@asynccontextmanager
async def traced_agents(
    client: Client,
    pool: asyncpg.Pool,
    workspace: str,
    hook: Hook,
    provider: TracerProvider,
    config: dict[str, Any] | None = None,
    skills: tuple[str, ...] = ("writing",),
) -> AsyncIterator[None]:
    """Two agents with `skills` (a task's retry goes to another agent), their attempts
    traced to `provider`."""
    agent_ids = [f"{workspace}-traced-{n}" for n in range(2)]
    for agent_id in agent_ids:
        await registry.register_agent(pool, agent_id, workspace, skills, 2, config=config)
    runner = AgentRunner(
        client, pool, agent_ids, hook, sweep_interval=3600, tracer_provider=provider
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        yield
    finally:
        stop.set()
        await running
        await registry.take_offline(pool, agent_ids)


def _chain(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[str]:
    """The names of `span` and its ancestors, nearest first."""
    by_id = {s.context.span_id: s for s in spans}
    names = [span.name]
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_an_llm_attempt_joins_its_goals_trace_with_its_model_calls_and_tools(
    traced_client: Client,
    traced_queue: str,
    pool: asyncpg.Pool,
    workspace: str,
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
) -> None:
    """The attempt is `invoke_agent`, each model call `chat` with its tokens, the call of a
    real MCP server's tool `execute_tool`: in the goal's trace, under the task's span."""
    hook = llm.LlmHook(scripted([("calc_add", {"a": 20, "b": 22})]), tracer_provider=provider)
    config = {"mcp_servers": [STDIO], "tool_timeout_seconds": 30}
    async with traced_agents(traced_client, pool, workspace, hook, provider, config):
        handle = await start_goal(traced_client, goal_spec(1, workspace), traced_queue)
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status == GoalStatus.COMPLETED, report

    spans = exporter.get_finished_spans()
    (trace_id,) = {s.context.trace_id for s in spans if _in_goal(s, handle.id)}
    ours = [s for s in spans if s.context.trace_id == trace_id]
    # One invoke_agent per attempt: the hook's own, not another from the runner.
    (attempt,) = [s for s in ours if s.name.startswith("invoke_agent ")]
    (tool,) = [s for s in ours if s.name.startswith("execute_tool ")]
    chats = [s for s in ours if s.name.startswith("chat ")]

    row = await pool.fetchrow(
        "SELECT assignment_id::text, agent_id FROM assignments WHERE goal_id = $1", handle.id
    )
    assert row is not None
    # The goal assigns a task's first attempt as it starts the task.
    assert _chain(tool, spans) == [
        "execute_tool calc_add",
        f"invoke_agent {row['agent_id']}",
        "RunActivity:assign_agents",
        "StartActivity:assign_agents",
        "StartWorkflow:GoalWorkflow",
    ]
    assert dict(attempt.attributes or {}) | {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": row["agent_id"],
        "gen_ai.agent.id": row["agent_id"],
        "goalkeeper.goal.id": handle.id,
        "goalkeeper.task.id": "t1",
        "goalkeeper.attempt": 1,
        "goalkeeper.assignment.id": row["assignment_id"],
    } == dict(attempt.attributes or {})
    assert (tool.attributes or {})["gen_ai.tool.name"] == "calc_add"
    assert len(chats) == 2 and all(c.parent and c.parent.span_id == attempt.context.span_id
                                   for c in chats)  # fmt: skip
    for chat in chats:
        attributes = chat.attributes or {}
        assert attributes["gen_ai.operation.name"] == "chat"
        usage = (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"])
        assert usage == USAGE
    # The prompt, the answer and the tool's arguments stay in PostgreSQL, not in the trace.
    assert not {k for k in tool.attributes or {} if "argument" in k or "result" in k}
    assert '"b"' not in str(list((tool.attributes or {}).values()))  # the arguments' keys
    assert "Test goal" not in str([dict(s.attributes or {}) for s in ours])


async def test_a_request_its_goal_and_every_attempt_of_its_agents_are_one_trace(
    traced_client: Client,
    traced_queue: str,
    pool: asyncpg.Pool,
    workspace: str,
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
) -> None:
    """From the question to the deliverable: triage, planning and each task's attempt are
    `invoke_agent` spans under the request's own span, through its goal's and tasks'."""
    word = f"w{uuid.uuid4().hex[:8]}"
    await add_runbook(pool, parse_runbook(runbook_toml(f"{word}-rollout", word), "r.toml"))
    skills = ("triage", "research", "writing", "writing-x", f"planning-{word}")
    async with traced_agents(
        traced_client, pool, workspace, SimulatedWork(delay=(0, 0)), provider, skills=skills
    ):
        request = await traced_client.start_workflow(
            RequestWorkflow.run,
            {
                "question": f"Do the {word} work for all of the people, please, as soon as it can",
                "workspace": workspace,
            },
            id=f"request-{uuid.uuid4().hex[:8]}",
            task_queue=traced_queue,
        )
        view = await asyncio.wait_for(request.result(), PATIENCE)
    assert view.kind == "goal" and view.goal_status == GoalStatus.COMPLETED.value, view

    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.name == "StartWorkflow:RequestWorkflow"]
    ours = [s for s in spans if s.context.trace_id == root.context.trace_id]
    attempts = [s for s in ours if s.name.startswith("invoke_agent ")]
    tasks = {(s.attributes or {}).get("goalkeeper.task.id") for s in attempts}
    rows = await pool.fetch(
        "SELECT task_id FROM assignments WHERE goal_id LIKE $1", f"{request.id}.%"
    )
    assert tasks == {r["task_id"] for r in rows} and "triage" in tasks, tasks
    for attempt in attempts:
        chain = _chain(attempt, ours)
        assert chain[-1] == "StartWorkflow:RequestWorkflow", chain
    goal = next(s for s in ours if s.name == "RunWorkflow:GoalWorkflow")
    assert _chain(goal, ours)[-1] == "StartWorkflow:RequestWorkflow"


async def test_every_attempt_of_any_hook_is_an_invoke_agent_span_and_replay_emits_none(
    traced_client: Client,
    traced_queue: str,
    pool: asyncpg.Pool,
    workspace: str,
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
) -> None:
    """The runner makes the span for a hook that makes none; a failed attempt says why.
    Replaying the goal's and the task's histories through the same tracing adds no span."""

    def flaky(work: Work) -> WorkResult:
        if work.attempt == 1:
            raise RuntimeError("the first draft was lost")
        return WorkResult(result="drafted", tokens_used=30, input_tokens=20, output_tokens=10)

    async with traced_agents(traced_client, pool, workspace, flaky, provider):
        handle = await start_goal(traced_client, goal_spec(1, workspace), traced_queue)
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status == GoalStatus.COMPLETED, report

    spans = exporter.get_finished_spans()
    (trace_id,) = {s.context.trace_id for s in spans if _in_goal(s, handle.id)}
    attempts = sorted(
        (s for s in spans if s.name.startswith("invoke_agent ")),
        key=lambda s: str((s.attributes or {})["goalkeeper.attempt"]),
    )
    assert [(s.attributes or {})["goalkeeper.attempt"] for s in attempts] == [1, 2]
    assert {s.context.trace_id for s in attempts} == {trace_id}
    # The goal assigns the first attempt as it starts the task, the task its retry.
    assigned = ["RunActivity:assign_agents", "StartActivity:assign_agents"]
    assert [_chain(s, spans)[1:] for s in attempts] == [
        [*assigned, "StartWorkflow:GoalWorkflow"],
        [*assigned, "StartChildWorkflow:TaskWorkflow", "StartWorkflow:GoalWorkflow"],
    ]
    failed, done = attempts
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.status.description == "the first draft was lost"
    assert (failed.attributes or {})["error.type"] == "RuntimeError"
    assert done.status.status_code == StatusCode.UNSET
    assert (done.attributes or {})["gen_ai.usage.input_tokens"] == 20
    assert (done.attributes or {})["gen_ai.usage.output_tokens"] == 10

    histories = [
        await traced_client.get_workflow_handle(workflow_id).fetch_history()
        for workflow_id in (handle.id, f"{handle.id}/t1")
    ]
    emitted = len(exporter.get_finished_spans())
    replayer = Replayer(
        workflows=[GoalWorkflow, TaskWorkflow],
        data_converter=pydantic_data_converter,
        interceptors=[interceptor_for(provider)],
    )
    for history in histories:
        await replayer.replay_workflow(history)
    assert exporter.get_finished_spans()[emitted:] == ()


async def test_an_attempt_without_a_goal_trace_joins_no_other_trace(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """Without a traceparent (the worker traces nothing) an attempt's spans are a trace of
    their own, never children of a span that happens to be current."""
    work = Work("a1", "agent-1", "g", "t", 1, {"task": {"id": "t", "title": "Say hi"}})
    hook = llm.LlmHook(TestModel(custom_output_text="hi"), tracer_provider=provider)
    with provider.get_tracer("test").start_as_current_span("unrelated") as unrelated:
        with attempt_span(work, provider):
            assert (await hook(work)).result == "hi"
        with attempt_span(work, provider):
            pass  # a hook that makes no span of its own
    spans = exporter.get_finished_spans()
    attempts = [s for s in spans if s.name == "invoke_agent agent-1"]
    assert len(attempts) == 2
    unrelated_trace = unrelated.get_span_context().trace_id
    for span in attempts:
        assert span.parent is None and span.context.trace_id != unrelated_trace
    assert all(s.context.trace_id != unrelated_trace for s in spans if s.name != "unrelated")


async def test_an_llm_attempt_that_fails_before_its_run_is_still_an_invoke_agent_span(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """A configuration that does not fit fails the attempt before pydantic-ai runs, so the
    runner's span shows it, with the reason."""
    context = {"task": {"id": "t", "title": "Say hi"}, "traceparent": TRACEPARENT}
    work = Work("a1", "agent-1", "g", "t", 1, context, config={"mcp_servers": "none"})
    hook = llm.LlmHook(TestModel(custom_output_text="hi"), tracer_provider=provider)
    with pytest.raises(llm.LlmFailure), attempt_span(work, provider):
        await hook(work)
    (span,) = exporter.get_finished_spans()
    assert span.name == "invoke_agent agent-1" and span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "LlmFailure"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == TRACEPARENT.split("-")[2]
