"""`health`: the health check's latest findings, a run on demand, or its schedule."""

import argparse
import uuid
from datetime import timedelta

from goalkeeper.records import HealthCheck, HealthReport
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_FAILED, Session, table
from interfaces.health import WORKFLOW_ID, install_schedule, latest
from workflows.health import HealthCheckWorkflow


def add_commands(commands: Commands, command: Command) -> None:
    check = command(
        commands, "health", "the health check: open alerts, a run now, or its schedule", health
    )
    check.add_argument(
        "--run", dest="check_now", action="store_true", help="run a check now and print findings"
    )
    check.add_argument("--no-repair", action="store_true", help="with --run: only look")
    check.add_argument("--install", action="store_true", help="create or update the schedule")
    check.add_argument("--interval", type=int, default=60, help="with --install: seconds (60)")


async def health(session: Session, args: argparse.Namespace) -> None:
    if args.install:
        client = await session.client()
        state = await install_schedule(
            client, session.settings.task_queue, timedelta(seconds=args.interval)
        )
        session.emit(
            {"schedule": state, "interval_seconds": args.interval},
            f"health check schedule {state}: every {args.interval}s",
        )
        return
    if args.check_now:
        client = await session.client()
        report: HealthReport = await client.execute_workflow(
            HealthCheckWorkflow.run,
            HealthCheck(repair=not args.no_repair),
            id=f"{WORKFLOW_ID}-{uuid.uuid4().hex[:8]}",
            task_queue=session.settings.task_queue,
        )
        rows = [[f.kind, f.subject, f.action or "alerted", f.message] for f in report.findings]
        session.emit(
            report.model_dump(mode="json"),
            f"{len(report.findings)} findings ({report.goals_checked} running goals checked)"
            + ("\n" + table(rows, ["kind", "subject", "done", "finding"]) if rows else ""),
        )
        if report.findings:
            session.exit_code = EXIT_FAILED
        return
    last, alerts = await latest(await session.pool())
    when = f"last check {last['checked_at']:%Y-%m-%d %H:%M:%S}" if last else "no check has run yet"
    rows = [
        [a["kind"], a["subject"], a["seen"], "yes" if a["repaired"] else "no", a["message"]]
        for a in alerts
    ]
    todo = [f"- {a['subject']}: {a['action']}" for a in alerts if a["action"] and not a["repaired"]]
    session.emit(
        {"last_check": dict(last) if last else None, "alerts": [dict(a) for a in alerts]},
        f"{when}; {len(alerts)} open alerts"
        + ("\n" + table(rows, ["kind", "subject", "seen", "repaired", "finding"]) if rows else "")
        + ("\nwhat to do:\n" + "\n".join(todo) if todo else ""),
    )
    if alerts:
        session.exit_code = EXIT_FAILED
