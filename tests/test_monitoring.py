"""The monitoring files in ops/: Prometheus's scrape configuration and alert rules, and
Grafana's provisioning and dashboard, checked without either server: every query parses,
names only metrics a worker exports (Goalkeeper's from `goalkeeper.metrics`, the SDK's
scraped from a real worker) with their own labels, and keeps the labels its legend or its
alert's text names."""

import asyncio
import json
import re
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import promql_parser as promql
import pytest
import yaml
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from goalkeeper import metrics
from goalkeeper.metrics import CATALOGUE, NAMES
from goalkeeper.problems import WATCH_ALERT_KINDS
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.client import connect
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer, free_port
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "ops" / "prometheus"
GRAFANA = ROOT / "ops" / "grafana"

LABELS = {metric.exported: set(metric.labels) for metric in CATALOGUE}
"""Each of Goalkeeper's metrics' own labels, by exported name."""
VALUES = {
    ("goalkeeper_goals", "status"): {status.value for status in GoalStatus},
    ("goalkeeper_tasks", "status"): {status.value for status in TaskStatus},
    ("goalkeeper_tasks_finished_total", "outcome"): set(metrics.TASK_OUTCOMES),
    ("goalkeeper_goals_finished_total", "outcome"): set(metrics.GOAL_OUTCOMES),
    ("goalkeeper_agents", "origin"): set(metrics.AGENT_ORIGINS),
    # Only the watch's kinds are named in queries so far; a health check's kind may join them.
    ("goalkeeper_alerts_open", "kind"): set(WATCH_ALERT_KINDS),
}
"""The values a query may match a label of Goalkeeper's metrics with."""
TARGET_LABELS = {"job", "instance", "service_name"}
"""Labels every series scraped from a worker has besides its own."""
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})
"""Series Prometheus makes itself: a target's health, and its alerts."""
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
GRAFANA_RANGES = re.compile(r"\$__(rate_interval|interval|range)\b")
"""Grafana's own variables that stand for a duration in a query."""
SEVERITIES = {"critical", "warning"}
REQUIRED_ALERTS = {
    "GoalkeeperWorkflowWedged",
    "GoalkeeperGoalStalled",
    "GoalkeeperWorkflowTasksFailing",
    "GoalkeeperTasksFailing",
    "GoalkeeperApprovalWaitingTooLong",
    "GoalkeeperNoWorkerScraped",
    "GoalkeeperHealthAlertsOpen",
}


Node = TypeVar("Node", bound=promql.Expr)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return _yaml(PROMETHEUS / "prometheus.yml")


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    groups = _yaml(PROMETHEUS / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "goalkeeper.json").read_text())


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    (source,) = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    return source


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel but rows, those in collapsed rows too."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries(rules: list[dict[str, Any]], dashboard: dict[str, Any]) -> dict[str, str]:
    """Every PromQL query of the alert rules and the dashboard, by where it is."""
    found = {f"alert {rule['alert']}": rule["expr"] for rule in rules}
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found[f"panel {panel['id']} {panel['title']!r} {target['refId']}"] = target["expr"]
    return found


def parse(query: str) -> promql.Expr:
    """The query's syntax tree, Grafana's duration variables taken as 5 minutes."""
    query = GRAFANA_RANGES.sub("5m", query)
    assert "$" not in query, f"a variable the dashboard does not define: {query}"
    return promql.parse(query)


def nodes(tree: promql.Expr, kind: type[Node]) -> list[Node]:
    """The nodes of one kind in a syntax tree."""
    found: list[Node] = []
    promql.walk(tree, lambda node: found.append(node) if isinstance(node, kind) else None)
    return found


def selected(selector: promql.VectorSelector) -> tuple[set[str], list[promql.Matcher]]:
    """The metric names a selector names (by name or `__name__`), and its other matchers."""
    alternatives = selector.matchers.or_matchers  # {a="x" or b="y"}
    matchers = [*selector.matchers.matchers, *(m for group in alternatives for m in group)]
    by_name = {m.value for m in matchers if m.name == "__name__"}
    assert all(m.op == promql.MatchOp.Equal for m in matchers if m.name == "__name__"), selector
    assert selector.name or by_name, f"a selector without a metric name: {selector}"
    names = {selector.name} if selector.name else by_name
    return names, [m for m in matchers if m.name != "__name__"]


def metric_names(query: str) -> set[str]:
    """The metric names a query selects."""
    return {
        name
        for selector in nodes(parse(query), promql.VectorSelector)
        for name in selected(selector)[0]
    }


def goalkeeper_metric(name: str) -> str | None:
    """The exported name of Goalkeeper's metric a series belongs to, if it is one."""
    base = re.sub(f"({'|'.join(HISTOGRAM_SERIES)})$", "", name)
    return base if base in NAMES else None


def kept_labels(node: promql.Expr) -> set[str] | None:
    """The labels an expression's results carry: a set, or None when they keep those of
    the series selected (whichever those are)."""
    if isinstance(node, promql.NumberLiteral | promql.StringLiteral):
        return set()
    if isinstance(node, promql.VectorSelector | promql.MatrixSelector):
        return None
    if isinstance(node, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
        return kept_labels(node.expr)
    if isinstance(node, promql.AggregateExpr):
        if node.modifier is None:
            return set()
        by = node.modifier.type == promql.AggModifierType.By
        return set(node.modifier.labels) if by else None
    if isinstance(node, promql.BinaryExpr):
        lhs, rhs = kept_labels(node.lhs), kept_labels(node.rhs)
        if str(node.op) == "or" or lhs == set():  # a scalar on the left: the right's labels
            return None if lhs is None or rhs is None else lhs | rhs
        return lhs
    if isinstance(node, promql.Call):
        name, args = node.func.name, node.args
        if name == "absent" and isinstance(args[0], promql.VectorSelector):
            return {m.name for m in args[0].matchers.matchers if m.op == promql.MatchOp.Equal}
        if name in ("absent", "vector", "scalar", "time"):
            return set()
        if name == "histogram_quantile":
            labels = kept_labels(args[1])
            return None if labels is None else labels - {"le"}
        vectors = [arg for arg in args if isinstance(arg, promql.Expr)]
        return kept_labels(vectors[-1]) if vectors else set()
    raise AssertionError(f"no rule for {type(node).__name__}: {node}")


def test_prometheus_scrapes_the_workers_as_the_rules_expect(
    config: dict[str, Any], rules: list[dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    assert config["global"]["evaluation_interval"] == config["global"]["scrape_interval"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    # The rules and panels that ask whether workers are up name the scrape job.
    for where, query in queries(rules, dashboard).items():
        for job in re.findall(r"""\bjob\s*=\s*"([^"]*)\"""", query):
            assert job in jobs, f"{where} names job {job!r}; prometheus.yml has {jobs}"
    assert [Path(path).name for path in config["rule_files"]] == ["alerts.yml"]


def test_every_alert_rule_has_a_severity_and_says_what_to_do(
    rules: list[dict[str, Any]],
) -> None:
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    assert set(names) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(names)
    for rule in rules:
        name = rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert promql.parse_duration(rule["for"]) <= timedelta(minutes=10), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description"}, name
        assert "\n" not in annotations["summary"] and len(annotations["summary"]) < 100, name
        assert len(annotations["description"]) > len(annotations["summary"]), name


def test_wedged_and_stalled_work_alerts_within_a_minute(rules: list[dict[str, Any]]) -> None:
    by_name = {rule["alert"]: rule for rule in rules}
    for name, kind in (
        ("GoalkeeperWorkflowWedged", "workflow_wedged"),
        ("GoalkeeperGoalStalled", "goal_stalled"),
    ):
        rule = by_name[name]
        assert f'goalkeeper_alerts_open{{kind="{kind}"}}' in rule["expr"], name
        assert promql.parse_duration(rule["for"]) <= timedelta(minutes=1), name
    # Each worker reports the same read-model figures: max, so four workers are not 4 alerts.
    for rule in rules:
        if "goalkeeper_alerts_open" in rule["expr"]:
            assert re.match(r"max\b", rule["expr"]), rule["alert"]


def test_annotations_name_only_labels_their_alert_keeps(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        named = {
            label
            for text in rule["annotations"].values()
            for label in re.findall(r"\$labels\.(\w+)", text)
        }
        kept = kept_labels(parse(rule["expr"]))
        if kept is not None:
            assert named <= kept, f"{rule['alert']} names {named - kept}, its results keep {kept}"


def test_legends_name_only_labels_their_query_keeps(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        for target in panel["targets"]:
            named = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            kept = kept_labels(parse(target["expr"]))
            if kept is not None:
                assert named <= kept, f"{panel['title']!r} names {named - kept}, keeps {kept}"


def test_the_dashboard_reads_the_provisioned_prometheus(
    dashboard: dict[str, Any], datasource: dict[str, Any]
) -> None:
    assert datasource["type"] == "prometheus" and datasource["uid"]
    expected = {"type": "prometheus", "uid": datasource["uid"]}
    ids = [panel["id"] for panel in dashboard["panels"]]
    ids += [panel["id"] for row in dashboard["panels"] for panel in row.get("panels", [])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert dashboard["uid"] and not dashboard.get("__inputs"), "it must load without an import"
    for panel in panels(dashboard):
        title = panel["title"]
        assert panel["datasource"] == expected, title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target.get("datasource", expected) == expected, title
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, title
    for variable in dashboard.get("templating", {}).get("list", []):
        assert variable.get("datasource", expected) == expected, variable["name"]


def test_the_dashboard_shows_what_the_issue_asks_for(dashboard: dict[str, Any]) -> None:
    shown = " ".join(
        target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])
    )
    for name in NAMES:
        assert name in shown, f"no panel shows {name}"
    for name in (
        "temporal_workflow_task_execution_failed_total",
        "temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
        "temporal_activity_schedule_to_start_latency_seconds_bucket",
        "temporal_worker_task_slots_available",
    ):
        assert name in shown, f"no panel shows {name}"
    assert "histogram_quantile(0.5," in shown and "histogram_quantile(0.95," in shown


@activity.defn(name="monitoring_probe_fails_once")
async def fails_once() -> None:
    if activity.info().attempt == 1:
        raise ApplicationError("the first attempt fails, for the failure counter")


@workflow.defn(name="MonitoringProbeCompletes", sandboxed=False)
class Completes:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            fails_once,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50)),
        )


@workflow.defn(name="MonitoringProbeFails", sandboxed=False)
class Fails:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("this workflow fails, for the failed-workflow counter")


@workflow.defn(name="MonitoringProbeWedged", sandboxed=False)
class Wedged:
    @workflow.run
    async def run(self) -> None:
        raise RuntimeError("this workflow task fails on every attempt")


def _scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=60) as response:
        body: bytes = response.read()
    return body.decode()


@pytest.fixture(scope="module")
async def sdk_metrics(temporal_server: TemporalDevServer) -> set[str]:
    """The temporal_* series a worker serves, configured as Goalkeeper's are, once its
    workflows and activities have completed, failed and had a workflow task fail."""
    address = f"127.0.0.1:{free_port()}"
    client = await connect(
        Settings(temporal_address=temporal_server.address, metrics_address=address)
    )
    queue = f"monitoring-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[Completes, Fails, Wedged], activities=[fails_once]
    ):
        wedged = await client.start_workflow(Wedged.run, id=f"{queue}-wedged", task_queue=queue)
        await client.execute_workflow(Completes.run, id=f"{queue}-completes", task_queue=queue)
        with pytest.raises(Exception, match="failed"):
            await client.execute_workflow(Fails.run, id=f"{queue}-fails", task_queue=queue)
        try:

            async def failed_once() -> str | None:  # the wedged workflow's task has failed
                body = await asyncio.to_thread(_scrape, address)
                return body if "temporal_workflow_task_execution_failed" in body else None

            body = await eventually(failed_once, what="a failed workflow task in the metrics")
        finally:
            await wedged.terminate("the metrics are read")
    return {
        line.split("{")[0].split(" ")[0]
        for line in body.splitlines()
        if line.startswith("temporal_")
    }


def test_every_query_parses_and_names_only_metrics_a_worker_exports(
    rules: list[dict[str, Any]], dashboard: dict[str, Any], sdk_metrics: set[str]
) -> None:
    assert "temporal_workflow_task_execution_failed_total" in sdk_metrics, sorted(sdk_metrics)
    unknown = {}
    for where, query in queries(rules, dashboard).items():
        for name in metric_names(query):
            if name in PROMETHEUS_SERIES | sdk_metrics or goalkeeper_metric(name):
                continue
            unknown[where] = name
    assert not unknown, f"queries name metrics no worker exports: {unknown}"


def test_queries_use_goalkeeper_metrics_labels_and_values(
    rules: list[dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    for where, query in queries(rules, dashboard).items():
        tree = parse(query)
        for selector in nodes(tree, promql.VectorSelector):
            names, matchers = selected(selector)
            for name in filter(None, map(goalkeeper_metric, names)):
                for matcher in matchers:
                    label = matcher.name
                    assert label in LABELS[name] | TARGET_LABELS, f"{where}: {name} has no {label}"
                    known = VALUES.get((name, label))
                    if known is not None:
                        values = set(matcher.value.split("|"))
                        assert values <= known, f"{where}: {name}{{{label}}} is never {values}"
        for aggregation in nodes(tree, promql.AggregateExpr):
            if aggregation.modifier is None:
                continue
            over = {
                goalkeeper_metric(name)
                for selector in nodes(aggregation.expr, promql.VectorSelector)
                for name in selected(selector)[0]
            }
            if None in over:  # not only Goalkeeper's metrics
                continue
            labels = set().union(*(LABELS[str(name)] for name in over)) | TARGET_LABELS | {"le"}
            extra = set(aggregation.modifier.labels) - labels
            assert not extra, f"{where}: {sorted(map(str, over))} have no {extra}"


def test_metric_names_are_read_from_the_syntax_tree() -> None:
    query = (
        "histogram_quantile(0.95, sum by (le)"
        ' (rate(a_seconds_bucket{skill=~"x|y"}[$__rate_interval])))'
        ' / on() group_left() max without (instance) ({__name__="b", kind="sum"})'
        " and absent(up == 1) or vector(0) * count_over_time(c[5m:1m]) > bool 3"
    )
    assert metric_names(query) == {"a_seconds_bucket", "b", "up", "c"}
    assert kept_labels(parse("sum by (kind, le) (rate(x[5m])) > 0")) == {"kind", "le"}
    assert kept_labels(parse("histogram_quantile(0.5, sum by (le, skill) (x))")) == {"skill"}
    assert kept_labels(parse("100 * max(x) / sum(y)")) == set()
    assert kept_labels(parse('up{job="w"} == 0')) is None
    assert kept_labels(parse('absent(up{job="w"})')) == {"job"}


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    run = subprocess.run(
        [_promtool(), "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _promtool() -> str:
    """promtool, installed with `.ci/promtool` (Debian's prometheus) if it is missing."""
    if shutil.which("promtool") is None:
        subprocess.run([str(ROOT / ".ci" / "promtool")], check=False)
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "the alert rules' tests need promtool: .ci/promtool could not install Debian's "
            "prometheus package; install it as root",
            pytrace=False,
        )
    return found
