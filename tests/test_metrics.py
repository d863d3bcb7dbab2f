"""Goalkeeper's own metrics on the SDK's Prometheus endpoint, scraped during and after a goal.

The worker's runtime is the test's own (a fresh metrics address), so its counters start
at zero; the gauges read the shared read model, so they are compared with before.
"""

import asyncio
import re
import urllib.request
import uuid
from collections.abc import Callable

import asyncpg
import pytest
from temporalio.client import WorkflowUpdateFailedError

from goalkeeper import metrics
from goalkeeper.records import HealthCheck
from goalkeeper.statuses import TaskStatus
from interfaces import telemetry
from interfaces.client import connect
from interfaces.config import Settings
from interfaces.metrics import collect
from interfaces.stack import TemporalDevServer, free_port
from store.rows import open_alert
from tests.helpers import (
    PATIENCE,
    SimulatedAgents,
    decide,
    eventually,
    goal_spec,
    start_goal,
    wait_task,
)
from worker import build_worker
from workflows.health import HealthCheckWorkflow

SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

AGREED = frozenset(
    {
        "goalkeeper_goals",
        "goalkeeper_tasks",
        "goalkeeper_approvals_waiting",
        "goalkeeper_approval_oldest_age_seconds",
        "goalkeeper_agents",
        "goalkeeper_alerts_open",
        "goalkeeper_task_assignment_duration_seconds",
        "goalkeeper_task_report_duration_seconds",
        "goalkeeper_task_reassignments_total",
        "goalkeeper_messages_rejected_total",
        "goalkeeper_agents_provisioned_total",
        "goalkeeper_tokens_total",
        "goalkeeper_tokens_by_direction_total",
        "goalkeeper_cost_usd_total",
        "goalkeeper_tasks_finished_total",
        "goalkeeper_goals_finished_total",
        "goalkeeper_health_findings_total",
    }
)
"""The names the dashboard and alert rules are written against."""


class Scrape:
    """One scrape of the endpoint: each sample's name, labels and value."""

    def __init__(self, body: str) -> None:
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for line in body.splitlines():
            found = SAMPLE.match(line)
            if found and not line.startswith("#"):
                name, labels, value = found.groups()
                self.samples.append((name, dict(LABEL.findall(labels or "")), float(value)))

    def value(self, name: str, **labels: str) -> float:
        """The sum over the series of `name` that carry `labels` (Temporal adds its own)."""
        return sum(
            v
            for n, have, v in self.samples
            if n == name and all(have.get(k) == want for k, want in labels.items())
        )

    def families(self) -> set[str]:
        """Goalkeeper's metric names in the scrape, a histogram's by its base name."""
        return {
            re.sub(r"_(bucket|sum|count)$", "", n)
            for n, _, _ in self.samples
            if n.startswith("goalkeeper_")
        }


async def scrape(address: str) -> Scrape:
    def get() -> str:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=60) as response:
            body: bytes = response.read()
        return body.decode()

    return Scrape(await asyncio.to_thread(get))


async def scraped(address: str, check: Callable[[Scrape], bool], what: str) -> Scrape:
    """Scrape until `check` holds: gauges follow the read model within a collector's turn."""

    async def probe() -> Scrape | None:
        now = await scrape(address)
        return now if check(now) else None

    return await eventually(probe, PATIENCE, what)


def test_the_catalogue_exports_the_agreed_names() -> None:
    assert metrics.NAMES == AGREED
    for metric in metrics.CATALOGUE:
        assert not {"goal_id", "task_id", "agent_id", "assignment_id"} & set(metric.labels)


async def test_no_metrics_address_means_no_collector() -> None:
    meter = telemetry.metric_meter(None)
    await asyncio.wait_for(collect(None, meter, 0.05, asyncio.Event()), PATIENCE)  # type: ignore[arg-type]


async def test_goalkeeper_metrics_move_as_a_goal_runs(
    temporal_server: TemporalDevServer, pool: asyncpg.Pool, workspace: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    client = await connect(
        Settings(temporal_address=temporal_server.address, metrics_address=address)
    )
    stop = asyncio.Event()
    collector = asyncio.create_task(collect(pool, telemetry.metric_meter(address), 0.2, stop))
    try:
        before = await scraped(address, lambda s: "goalkeeper_goals" in s.families(), "gauges")
        queue = f"metrics-{uuid.uuid4().hex[:8]}"
        spec = goal_spec(3, workspace, approvers=["ops-lead"])
        spec["tasks"][2]["requires_approval"] = True
        async with build_worker(client, pool, queue):
            handle = await start_goal(client, spec, queue)
            fail_t2_once = lambda task_id, attempt: (  # noqa: E731
                "failed" if (task_id, attempt) == ("t2", 1) else "completed"
            )
            async with SimulatedAgents(client, pool, handle.id, outcome=fail_t2_once):
                await wait_task(client, handle.id, "t3", TaskStatus.AWAITING_APPROVAL)
                during = await scraped(
                    address,
                    lambda s: (
                        s.value("goalkeeper_tasks", status="completed")
                        == before.value("goalkeeper_tasks", status="completed") + 2
                        and s.value("goalkeeper_tasks", status="awaiting_approval")
                        == before.value("goalkeeper_tasks", status="awaiting_approval") + 1
                    ),
                    "the running goal's tasks in the gauges",
                )
                # A report from an agent that does not hold the task, and a decision by
                # someone who is not an approver: both refused, and counted.
                await client.get_workflow_handle(f"{handle.id}/t3").signal(
                    "agent_report",
                    {
                        "agent_id": "intruder",
                        "assignment_id": str(uuid.uuid4()),
                        "outcome": "completed",
                    },
                )
                with pytest.raises(WorkflowUpdateFailedError):
                    await client.get_workflow_handle(f"{handle.id}/t3").execute_update(
                        "decide", {"approver": "intruder", "decision": "approve"}
                    )
                await decide(client, handle.id, "t3", "ops-lead", "approve")
                await handle.result()
            # A goal row with no tasks: the health check's finding, counted by its kind.
            hollow = f"hollow-{uuid.uuid4().hex[:8]}"
            await pool.execute(
                "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec) "
                "VALUES ($1, 'none', 'Hollow', $2, '{}')",
                hollow,
                workspace,
            )
            await client.execute_workflow(
                HealthCheckWorkflow.run,
                # The hollow goal's finding is looked for; not the session's other goals.
                HealthCheck(repair=False, goals_limit=0),
                id=f"check-{hollow}",
                task_queue=queue,
            )
            await pool.execute("UPDATE goals SET status = 'failed' WHERE goal_id = $1", hollow)
        provisioned = await pool.fetchval(
            "SELECT count(*) FROM agents WHERE provisioned_for = $1", handle.id
        )
        await open_alert(pool, "metrics_test", handle.id, "an alert for the gauge")
        after = await scraped(
            address,
            lambda s: (
                s.value("goalkeeper_goals", status="completed")
                == before.value("goalkeeper_goals", status="completed") + 1
                and s.value("goalkeeper_alerts_open", kind="metrics_test") == 1
                and s.value("goalkeeper_messages_rejected_total", kind="report") == 1
            ),
            "the finished goal in the gauges",
        )
        await pool.execute(
            "UPDATE alerts SET resolved_at = now() WHERE kind = 'metrics_test' AND subject = $1",
            handle.id,
        )
        await scraped(
            address,
            lambda s: s.value("goalkeeper_alerts_open", kind="metrics_test") == 0,
            "the resolved alert's kind to read 0",
        )
    finally:
        stop.set()
        await collector

    # While the goal ran: it and its tasks, one of them waiting for approval.
    for name, labels in [
        ("goalkeeper_goals", {"status": "running"}),
        ("goalkeeper_tasks", {"status": "awaiting_approval"}),
        ("goalkeeper_approvals_waiting", {}),
    ]:
        assert during.value(name, **labels) == before.value(name, **labels) + 1, name
    assert during.value("goalkeeper_approval_oldest_age_seconds") >= 0

    # Once it ended: its tasks leave the running goals' counts, the goal counts completed.
    for status in ("pending", "assigned", "awaiting_approval", "completed", "failed"):
        assert after.value("goalkeeper_tasks", status=status) == before.value(
            "goalkeeper_tasks", status=status
        ), status
    assert after.value("goalkeeper_goals", status="running") == before.value(
        "goalkeeper_goals", status="running"
    )
    assert after.value("goalkeeper_approvals_waiting") == before.value(
        "goalkeeper_approvals_waiting"
    )
    retired = {"status": "retired", "origin": "provisioned"}
    assert after.value("goalkeeper_agents", **retired) == (
        before.value("goalkeeper_agents", **retired) + provisioned
    )

    # Counted where it happened: this runtime is the test's, so these start at zero.
    skill = {"skill": "writing"}
    spent = {"workspace": workspace, **skill}
    assert after.value("goalkeeper_tasks_finished_total", outcome="completed") == 3
    assert after.value("goalkeeper_tasks_finished_total", outcome="failed") == 0
    assert after.value("goalkeeper_goals_finished_total", outcome="completed") == 1
    assert after.value("goalkeeper_task_reassignments_total", reason="agent_failed") == 1
    assert after.value("goalkeeper_task_reassignments_total") == 1
    assert after.value("goalkeeper_messages_rejected_total", kind="report") == 1
    assert after.value("goalkeeper_messages_rejected_total", kind="decision") == 1
    assert after.value("goalkeeper_agents_provisioned_total", **skill) == provisioned > 0
    # Four reports (t2 failed once) of 10 tokens and $0.001 each.
    assert after.value("goalkeeper_tokens_total", **spent) == 40
    assert after.value("goalkeeper_tokens_by_direction_total", direction="unsaid", **spent) == 40
    assert after.value("goalkeeper_cost_usd_total", **spent) == pytest.approx(0.004)
    assert after.value("goalkeeper_task_assignment_duration_seconds_count", **skill) == 4
    assert after.value("goalkeeper_task_report_duration_seconds_count", **skill) == 4
    # Buckets for agents' work, which takes minutes to hours, not the SDK's default ones.
    day = {"le": "86400", **skill}
    assert after.value("goalkeeper_task_report_duration_seconds_bucket", **day) == 4
    assert after.value("goalkeeper_health_findings_total", kind="goal_without_tasks") >= 1

    # The endpoint serves exactly the catalogue's names, no other of Goalkeeper's own.
    assert after.families() == metrics.NAMES
