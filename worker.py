"""The Goalkeeper worker: runs goal, task and health-check workflows and their activities.

    python worker.py

Reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, GOALKEEPER_TASK_QUEUE and DATABASE_URL
(unset: the embedded PostgreSQL under GOALKEEPER_DATA_DIR), the telemetry settings
GOALKEEPER_TRACES and GOALKEEPER_METRICS_ADDRESS, the health check's
GOALKEEPER_HEALTH_INTERVAL, the watch's GOALKEEPER_WATCH_INTERVAL and
GOALKEEPER_STALL_AFTER, GOALKEEPER_ALERT_WEBHOOK, how agents are picked:
GOALKEEPER_AGENT_SELECTION and GOALKEEPER_SELECTION_SEED, the payload encryption:
GOALKEEPER_CODEC_KEYS (or _FILE) and GOALKEEPER_CODEC_ACCEPT_PLAINTEXT, and the workers'
secret that seals the messages between workflows, GOALKEEPER_WORKER_SECRET (or _FILE). At
start it applies the schema (when its login owns it; otherwise its owner has: `starter.py
schema apply`), registers its search attributes and creates the health check's schedule,
all idempotently.
While it runs it watches for wedged workflows and stalled goals (`monitoring.watch`).
"""

import argparse
import asyncio
import logging
import signal
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from activities.assignment import DEFAULT_SELECTION_SEED, AssignmentActivities
from activities.budgets import BudgetActivities
from activities.checks import CheckActivities
from activities.children import ChildActivities
from activities.deliverables import DeliverableActivities
from activities.health import HealthActivities
from activities.keys import KeyActivities
from activities.plans import PlanActivities
from activities.read_model import ReadModelActivities
from activities.requests import RequestActivities
from activities.runbooks import RunbookActivities
from activities.suggestions import SuggestionActivities
from goalkeeper.errors import GoalkeeperError
from goalkeeper.masking import mask_url
from goalkeeper.seals import SealKeys
from interfaces import metrics, telemetry
from interfaces.client import TemporalUnreachable, connect, exit_process
from interfaces.config import Settings
from interfaces.health import install_schedule
from interfaces.payloads import inbound, tolerant
from interfaces.stack import start_database
from monitoring.watch import Watch
from store.database import (
    SCHEMA_FILES,
    apply_schema,
    create_pool,
    owns_schema,
    schema_applied,
)
from workflows import sealing, search_attributes
from workflows.goal import GoalWorkflow
from workflows.health import HealthCheckWorkflow
from workflows.request import RequestWorkflow
from workflows.runners.partition import PartitionWorkflow
from workflows.task import TaskWorkflow

log = logging.getLogger("goalkeeper.worker")


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    alert_webhook: str | None = None,
    assignments: AssignmentActivities | None = None,
    selection: str = "learned",
    selection_seed: str = DEFAULT_SELECTION_SEED,
    require_signatures: bool = False,
    task_workflow: type = TaskWorkflow,
    accept_plaintext: bool = False,
    seal_keys: SealKeys | None = None,
) -> Worker:
    """A worker for every Goalkeeper workflow and activity on `task_queue`.

    `assignments` may be a subclass of the assignment activities (tests use one to
    make a message arrive at a chosen moment); otherwise agents are picked by
    `selection` (`learned` or `least_loaded`), seeded by `selection_seed`. Goals that
    do not say whether they require signatures follow `require_signatures`.
    `task_workflow` may be another version of `TaskWorkflow` (tests deploy a changed one).
    With codec keys, plaintext reaching a workflow is refused unless `accept_plaintext`.
    `seal_keys`, the workers' secret, seals the messages between workflows; once given,
    later workers of the process may leave it out.
    """
    if seal_keys is not None:
        sealing.use(seal_keys)
    keyring = sealing.keys()
    if keyring is None:
        raise ValueError("a worker needs the workers' secret: pass seal_keys to build_worker")
    # Its workflows see undecodable input, and reject it by name; its activities call
    # Temporal as clients do, and see errors.
    polling = inbound(client, accept_plaintext)
    client = tolerant(client)
    assignments = assignments or AssignmentActivities(
        pool, selection, selection_seed, require_signatures
    )
    keys = KeyActivities(pool, require_signatures)
    read_model = ReadModelActivities(pool)
    budget = BudgetActivities(pool, alert_webhook)
    health = HealthActivities(pool, client, keyring, alert_webhook)
    suggestions = SuggestionActivities(pool, alert_webhook)
    runbooks = RunbookActivities(pool)
    requests = RequestActivities(pool)
    checks = CheckActivities(pool)
    deliverables = DeliverableActivities(pool)
    plans = PlanActivities(pool)
    children = ChildActivities(client, keyring)
    return Worker(
        polling,
        task_queue=task_queue,
        workflows=[
            RequestWorkflow,
            GoalWorkflow,
            PartitionWorkflow,
            task_workflow,
            HealthCheckWorkflow,
        ],
        activities=[
            health.check_health,
            suggestions.suggest_improvements,
            assignments.assign_agents,
            assignments.end_assignment,
            assignments.last_heartbeat,
            assignments.read_heartbeat,
            assignments.stored_heartbeat,
            assignments.activate_assignment,
            assignments.agent_standing,
            keys.approver_keys,
            keys.agent_key,
            keys.control_signers,
            read_model.record_goal,
            read_model.record_tasks,
            read_model.store_goal,
            read_model.load_goal,
            read_model.load_tasks,
            read_model.record_skips,
            read_model.lost_dependencies,
            read_model.skip_range,
            read_model.record_rejected_goal,
            read_model.record_task,
            read_model.finish_goal,
            read_model.record_event,
            read_model.record_events,
            budget.record_budget,
            runbooks.load_runbook,
            runbooks.match_runbooks,
            requests.record_request,
            requests.update_request,
            requests.load_triage,
            checks.check_result,
            deliverables.compile_deliverable,
            deliverables.load_verdict,
            plans.adopt_plan,
            children.adopt_tasks,
        ],
    )


async def main() -> None:
    settings = Settings.from_env()
    seal_keys = settings.seal_keys()
    url, started = start_database(settings)
    try:
        await serve(settings, seal_keys, url)
    finally:
        if started is not None:  # the stack was down: leave it down
            log.info("stopping the embedded PostgreSQL this worker started")
            started.stop()


async def serve(settings: Settings, seal_keys: SealKeys, url: str) -> None:
    """Run the worker on the database at `url` until SIGINT or SIGTERM."""
    pool = await create_pool(url)
    try:
        await _serve_on(pool, settings, seal_keys, url)
    finally:  # before its PostgreSQL stops, also where Temporal could not be reached
        await pool.close()


async def _serve_on(pool: asyncpg.Pool, settings: Settings, seal_keys: SealKeys, url: str) -> None:
    if await owns_schema(pool):
        await apply_schema(pool)
        log.info("PostgreSQL at %s: schema applied (%s)", _where(url), ", ".join(SCHEMA_FILES))
    elif await schema_applied(pool):
        log.info("PostgreSQL at %s: schema applied by its owner", _where(url))
    else:
        raise GoalkeeperError(
            f"PostgreSQL at {_where(url)} has no Goalkeeper schema, and this login does not "
            "own the schema to apply it: its owner runs 'python starter.py schema apply'"
        )
    client = await connect(settings, service="goalkeeper-worker")
    added = await search_attributes.ensure_registered(client, settings.temporal_namespace)
    log.info(
        "search attributes %s in namespace %r",
        f"registered: {', '.join(added)}" if added else "already registered",
        settings.temporal_namespace,
    )
    worker = build_worker(
        client,
        pool,
        settings.task_queue,
        settings.alert_webhook,
        selection=settings.agent_selection,
        selection_seed=settings.selection_seed,
        require_signatures=settings.require_signatures,
        accept_plaintext=settings.codec_accept_plaintext,
        seal_keys=seal_keys,
    )
    if settings.codec_keys and settings.codec_accept_plaintext:
        log.warning(
            "GOALKEEPER_CODEC_ACCEPT_PLAINTEXT=on: workflows accept unencrypted messages; "
            "turn it off once histories written before encryption have ended"
        )
    if settings.health_interval_seconds:
        every = timedelta(seconds=settings.health_interval_seconds)
        state = await install_schedule(client, settings.task_queue, every)
        log.info("health check schedule %s: every %ss", state, settings.health_interval_seconds)
    if settings.alert_webhook:
        log.info("new alerts are POSTed to %s", mask_url(settings.alert_webhook))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker polling task queue %r on %s (namespace %r)",
        settings.task_queue,
        settings.temporal_address,
        settings.temporal_namespace,
    )
    async with worker, asyncio.TaskGroup() as running:
        if settings.watch_interval_seconds:
            watch = Watch(
                pool,
                client,
                settings.alert_webhook,
                every=timedelta(seconds=settings.watch_interval_seconds),
                stall_after=timedelta(seconds=settings.stall_after_seconds),
                task_queue=settings.task_queue,
            )
            running.create_task(watch.run(stop))
            log.info(
                "watching for wedged workflows and stalled goals every %ss",
                settings.watch_interval_seconds,
            )
        meter = telemetry.metric_meter(settings.metrics_address)
        running.create_task(metrics.collect(pool, meter, metrics.COLLECT_EVERY, stop))
        await stop.wait()


def _where(url: str) -> str:
    """Where a database URL points, without its user or password."""
    parts = urlsplit(url)
    socket = parse_qs(parts.query).get("host", [""])[0]
    return f"{parts.hostname or socket}{f':{parts.port}' if parts.port else ''}{parts.path}"


if __name__ == "__main__":
    argparse.ArgumentParser(
        description="Run a Goalkeeper worker until Ctrl-C or SIGTERM. It takes no options: "
        "it is configured by the environment (TEMPORAL_ADDRESS, DATABASE_URL, GOALKEEPER_*; "
        "see docs/configuration.md)."
    ).parse_args()
    telemetry.configure_logging()
    try:
        asyncio.run(main())
    except TemporalUnreachable as exc:
        log.error("%s", exc)
        exit_process(3)
    except (GoalkeeperError, ValueError) as exc:  # what cannot be used: its message names it
        log.error("%s", exc)
        exit_process(2)
    exit_process(0)
