"""Telemetry: one goal is one linked trace; SDK metrics for Prometheus when configured."""

import asyncio
import urllib.request
import uuid

import asyncpg
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from interfaces.client import connect
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer, free_port
from interfaces.telemetry import TelemetryError, tracing_interceptors
from tests.helpers import SimulatedAgents, goal_spec, start_goal
from worker import build_worker


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


def _about(span: ReadableSpan, goal_id: str) -> bool:
    workflow_id = str((span.attributes or {}).get("temporalWorkflowID", ""))
    return workflow_id == goal_id or workflow_id.startswith(f"{goal_id}/")


def test_tracing_is_off_by_default_and_rejects_unknown_exporters() -> None:
    assert tracing_interceptors(Settings(), "test") == []
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
