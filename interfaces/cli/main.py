"""The parser and dispatcher of `starter.py`; each command lives in its own module."""

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from goalkeeper.statuses import Decision
from interfaces.cli import (
    agents,
    approvals,
    budgets,
    codec,
    costs,
    demo,
    events,
    feedback,
    goals,
    health,
    keys,
    requests,
    runbooks,
    schema,
    secret,
    serve,
    stack,
    suggestions,
    tokens,
)
from interfaces.cli.session import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, CliError, Session
from interfaces.client import TemporalUnreachable
from interfaces.config import Settings
from interfaces.stack import StackError
from interfaces.telemetry import TelemetryError, hide_secrets, masked

DESCRIPTION = """Goalkeeper: goals for teams of AI agents, on Temporal.

exit codes: 0 success; 1 the goal, task or request failed; 2 bad usage or input;
3 Temporal or PostgreSQL unreachable. Add --json to any command for scripts."""


API_PORT_HELP = "dashboard and HTTP API port (8000; 0: none)"


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    top = argparse.ArgumentParser(
        prog="starter.py",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        group: "argparse._SubParsersAction[argparse.ArgumentParser]",
        name: str,
        help: str,
        run: object,
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(run=run)
        return sub

    up = command(
        commands, "up", "run the embedded Temporal (Web UI), PostgreSQL and dashboard", stack.up
    )
    up.add_argument("--port", type=int, default=7233, help="Temporal gRPC port (7233)")
    up.add_argument("--ui-port", type=int, default=8233, help="Temporal Web UI port (8233)")
    up.add_argument("--api-port", type=int, default=8000, help=API_PORT_HELP)

    show = command(
        commands, "demo", "run the sample goal end to end on the embedded stack", demo.run
    )
    show.add_argument("--interactive", action="store_true", help="ask me to approve each task")
    show.add_argument("--keep", action="store_true", help="keep everything running afterwards")
    show.add_argument("--agents", type=int, default=3, help="simulated agents (3)")
    show.add_argument("--success-rate", type=float, default=0.75, help="per attempt (0.75)")
    show.add_argument("--delay", default="0.3-1.2", help="seconds per task, LOW-HIGH")
    show.add_argument("--seed", default="demo", help="the agents' seed: same seed, same run")
    show.add_argument("--ui-port", type=int, default=8233, help="Temporal Web UI port (8233)")
    show.add_argument("--api-port", type=int, default=8000, help=API_PORT_HELP)
    show.add_argument("--timeout", type=float, default=300, help="give up after (300) seconds")

    asking = command(
        commands, "ask", "ask a question: an agent answers it or sets a goal", requests.ask
    )
    asking.add_argument("question", help="what you want answered or done")
    asking.add_argument("--workspace", default="default", help="workspace (default)")
    asking.add_argument("--approver", action="append", default=[], help="an approver (repeat)")
    asking.add_argument("--request-id", help="request id (default: generated)")
    asking.add_argument("--wait", action="store_true", help="wait for the answer or the goal")

    goal = commands.add_parser("goal", help="start goals and read them").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    start = command(
        goal, "start", "start a goal from a JSON or TOML spec, or from flags", goals.start
    )
    start.add_argument("spec", type=Path, nargs="?", help="spec file (.json or .toml)")
    start.add_argument("--goal-id", help="goal id (default: the spec's, or generated)")
    start.add_argument("--title", help="goal title, when giving tasks as flags")
    start.add_argument("--description", default="", help="goal description")
    start.add_argument("--workspace", default="default", help="workspace (default)")
    start.add_argument("--approver", action="append", default=[], help="an approver (repeat)")
    start.add_argument(
        "--task", action="append", default=[], help="SKILL:TITLE or SKILL:TITLE:approval (repeat)"
    )
    watch = command(goal, "progress", "show a goal's progress", goals.progress)
    watch.add_argument("goal_id")
    watch.add_argument("--watch", action="store_true", help="follow until the goal ends")
    watch.add_argument("--interval", type=float, default=0.5, help="seconds between updates")
    command(goal, "tasks", "list a goal's tasks, agents and assignments", goals.tasks).add_argument(
        "goal_id"
    )
    reporting = command(goal, "report", "wait for a goal to end and print its report", goals.report)
    reporting.add_argument("goal_id")
    reporting.add_argument(
        "--deliverable", action="store_true", help="print the compiled deliverable instead"
    )
    listing = command(goal, "list", "list goals from the read model", goals.list_goals)
    listing.add_argument("--limit", type=int, default=50, help="newest N goals (50)")

    waiting = command(commands, "approvals", "list tasks awaiting approval", approvals.awaiting)
    waiting.add_argument("--as", dest="approver", help="only those this approver may decide")
    waiting.add_argument("--full", action="store_true", help="print each result whole")
    for name, run in (("approve", approvals.approve), ("reject", approvals.reject)):
        decide = command(commands, name, f"{name} a task's result", run)
        decide.add_argument("task", help="GOAL_ID/TASK_ID")
        decide.add_argument("--as", dest="approver", required=True, help="approver name")
        decide.add_argument("--comment", default="", help="why (sent to the agent on reject)")

    agent = commands.add_parser("agent", help="the agent registry").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    register = command(agent, "register", "register (or bring back) an agent", agents.register)
    register.add_argument("agent_id")
    register.add_argument("--skills", required=True, help="comma-separated skills")
    register.add_argument("--workspace", default="default", help="workspace (default)")
    register.add_argument("--capacity", type=int, default=1, help="assignments at once (1)")
    register.add_argument(
        "--config", help='what the agent works with, a JSON object, e.g. \'{"model": "m"}\''
    )
    command(
        agent,
        "list",
        "list agents with their status, load and record per skill",
        agents.list_agents,
    ).add_argument("--workspace", help="only this workspace")
    logins = agent.add_parser(
        "role", help="agents' PostgreSQL logins", description="agents' PostgreSQL logins"
    ).add_subparsers(dest="role_action", required=True, metavar="ACTION")
    made = command(
        logins, "new", "make a login for agents and print its DATABASE_URL once", agents.new_role
    )
    made.add_argument("name", help="the login's name (lowercase)")
    made.add_argument(
        "--workspace",
        dest="workspaces",
        action="append",
        metavar="W",
        help="a workspace its agents serve (repeat for more; at least one)",
    )
    made.add_argument(
        "--password-env", help="take its password from this variable (never printed) instead"
    )
    made.add_argument(
        "--if-missing",
        action="store_true",
        help="an agents' login of that name is fine (it is granted the workspaces)",
    )
    granting = command(
        logins, "grant", "let an agents' login serve more workspaces", agents.grant_role
    )
    granting.add_argument("name")
    granting.add_argument(
        "--workspace", dest="workspaces", action="append", required=True, metavar="W"
    )
    command(logins, "list", "list agents' logins and their workspaces", agents.list_roles)
    command(logins, "drop", "drop an agents' login", agents.drop_role).add_argument("name")

    schema_group = commands.add_parser(
        "schema", help="the PostgreSQL schema (its owner's)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    command(schema_group, "apply", "create or update the schema, as its owner", schema.apply)

    runbook = commands.add_parser("runbook", help="the runbooks goals start from").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    adding = command(runbook, "add", "store runbooks from TOML files", runbooks.add)
    adding.add_argument("files", type=Path, nargs="+", help="runbook files (runbooks/*.toml)")
    command(runbook, "list", "list runbooks, latest versions", runbooks.list_all)
    showing = command(runbook, "show", "show a runbook's parameters and tasks", runbooks.show)
    showing.add_argument("name")
    showing.add_argument("--version", type=int, help="a version (default: the latest)")
    matching = command(
        runbook, "match", "rank runbooks against a goal's text, with why", runbooks.match
    )
    matching.add_argument("text", help="what the goal is about")
    matching.add_argument("--limit", type=int, default=5, help="candidates (5)")

    spend = command(commands, "costs", "what the work cost, and what of it was wasted", costs.costs)
    spend.add_argument("--goal", help="a goal and its sub-goals")
    spend.add_argument("--workspace", help="only this workspace")
    spend.add_argument(
        "--by", default="goal", help="goal|task|attempt|agent|skill|runbook|workspace|day (goal)"
    )
    spend.add_argument("--since", help="attempts from this day on, YYYY-MM-DD (UTC)")
    spend.add_argument("--limit", type=int, default=50, help="lines at most (50)")
    rating = command(
        commands, "feedback", "rate a goal's or a task's work, with a comment", feedback.give
    )
    rating.add_argument("goal_id")
    rating.add_argument("task_id", nargs="?", help="a task of the goal (default: the goal)")
    rating.add_argument("--rating", type=int, help="1 (poor) to 5 (excellent)")
    rating.add_argument("--comment", default="", help="what was good or bad")
    rating.add_argument("--as", dest="person", required=True, help="who you are")
    ideas = command(
        commands,
        "suggestions",
        "what could be done better, from goals that ended",
        suggestions.listing,
    )
    ideas.add_argument("--status", choices=suggestions.STATUSES, default="open", help="(open)")
    ideas.add_argument("--limit", type=int, default=50, help="newest N (50)")
    deciding = ideas.add_subparsers(dest="action", metavar="ACTION")
    for name, run in (("accept", suggestions.accept), ("dismiss", suggestions.dismiss)):
        decide_on = command(deciding, name, f"{name} a suggestion", run)
        decide_on.add_argument("suggestion_id", help="its id, or the first 8 characters")
        decide_on.add_argument("--as", dest="person", required=True, help="who decides")
        decide_on.add_argument("--comment", default="", help="why")

    budget = commands.add_parser("budget", help="goals' and workspaces' budgets").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    raising = command(
        budget, "raise", "raise a goal's budget (its approvers)", budgets.raise_budget
    )
    raising.add_argument("goal_id")
    raising.add_argument("--usd", type=float, help="the new budget in USD")
    raising.add_argument("--tokens", type=int, help="the new budget in tokens")
    raising.add_argument("--as", dest="approver", required=True, help="approver name")
    raising.add_argument("--comment", default="", help="why")
    stopping = command(
        budget, "stop", "stop a goal: running tasks aborted, the rest skipped", budgets.stop
    )
    stopping.add_argument("goal_id")
    stopping.add_argument("--as", dest="approver", required=True, help="approver name")
    stopping.add_argument("--comment", default="", help="why")
    setting = command(budget, "set", "set a workspace's monthly budget", budgets.set_workspace)
    setting.add_argument("--workspace", required=True, help="the workspace")
    setting.add_argument("--usd", type=float, help="monthly budget in USD")
    setting.add_argument("--tokens", type=int, help="monthly budget in tokens")
    setting.add_argument("--as", dest="approver", default="operator", help="who sets it")
    command(budget, "show", "workspaces' monthly budgets and spend", budgets.show).add_argument(
        "--workspace", help="only this workspace"
    )

    check = command(
        commands,
        "health",
        "the health check: open alerts, a run now, or its schedule",
        health.health,
    )
    check.add_argument(
        "--run", dest="check_now", action="store_true", help="run a check now and print findings"
    )
    check.add_argument("--no-repair", action="store_true", help="with --run: only look")
    check.add_argument("--install", action="store_true", help="create or update the schedule")
    check.add_argument("--interval", type=int, default=60, help="with --install: seconds (60)")

    api = command(
        commands, "serve", "serve the dashboard and HTTP API (/api/v1, docs at /docs)", serve.serve
    )
    api.add_argument("--port", type=int, default=8000, help="port (8000)")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")

    token = commands.add_parser(
        "token", help="personal tokens for the HTTP API and dashboard"
    ).add_subparsers(dest="token_command", required=True, metavar="ACTION")
    minting = command(token, "new", "make a token and print it once", tokens.new)
    minting.add_argument("--as", dest="person", required=True, help="whom the token acts as")
    minting.add_argument(
        "--workspace",
        dest="workspaces",
        action="append",
        default=[],
        metavar="W",
        help="a workspace the token may see and act in (repeat for more)",
    )
    minting.add_argument(
        "--all-workspaces", action="store_true", help="instead of --workspace: every workspace"
    )
    command(token, "list", "tokens: ids, persons, workspaces, created, revoked", tokens.listing)
    command(token, "revoke", "revoke a token by its id", tokens.revoke).add_argument(
        "token_id", help="TOKEN_ID from 'token list'"
    )

    codec_server = command(
        commands,
        "codec-server",
        "decode payloads for the Temporal UI and CLI, for people with a token",
        codec.serve,
    )
    codec_server.add_argument("--port", type=int, default=8081, help="port (8081)")
    codec_server.add_argument("--host", default="127.0.0.1", help="address (127.0.0.1)")
    codec_server.add_argument(
        "--cors-origin",
        action="append",
        help="the Temporal UI's origin, e.g. http://localhost:8080 (repeat; default: "
        "GOALKEEPER_UI_URL's)",
    )
    codec_key = commands.add_parser(
        "codec-key", help="keys that encrypt payloads in Temporal"
    ).add_subparsers(dest="codec_key_command", required=True, metavar="ACTION")
    command(codec_key, "new", "make a key and print it once", codec.new_key).add_argument(
        "--id", help="its key id (default: today's date and 4 random hex digits)"
    )

    worker_secret = commands.add_parser(
        "worker-secret", help="the key that seals the messages between workflows"
    ).add_subparsers(dest="worker_secret_command", required=True, metavar="ACTION")
    command(worker_secret, "new", "make a key and print it once", secret.new_secret).add_argument(
        "--id", help="its key id (default: today's date and 4 random hex digits)"
    )

    send = command(commands, "report", "send an agent report for a task by hand", agents.report)
    send.add_argument("task", help="GOAL_ID/TASK_ID")
    send.add_argument("--outcome", choices=["completed", "failed"], default="completed")
    send.add_argument("--result", help="the work's result")
    send.add_argument("--error", help="why it failed")
    send.add_argument("--agent", help="agent id (default: the assigned agent)")
    send.add_argument("--assignment", help="assignment id (default: the current one)")
    send.add_argument("--tokens", type=int, default=0, help="tokens used")
    send.add_argument("--cost", type=float, default=0.0, help="cost in USD")

    replaced = command(agent, "rekey", "give an agent a new key, as its operator", keys.rekey)
    replaced.add_argument("agent_id")
    replaced.add_argument("--public-key", required=True, help="its new public key (base64)")
    replaced.add_argument("--as", dest="operator", required=True, help="who replaces it")
    approver = commands.add_parser("approver", help="approvers' signing keys")
    approver_keys = approver.add_subparsers(dest="approver_command", required=True).add_parser(
        "key", help="an approver's key pair"
    )
    key_actions = approver_keys.add_subparsers(dest="key_command", required=True)
    made = command(key_actions, "new", "make and register an approver's key", keys.new_approver_key)
    made.add_argument("--as", dest="approver", required=True, help="the approver's name")
    made.add_argument("--replace", action="store_true", help="replace a key this machine has")
    signing = command(
        commands, "sign", "print a signed decision or goal change for the temporal CLI", keys.sign
    )
    signing.add_argument("target", help="GOAL_ID/TASK_ID for a decision, GOAL_ID for --control")
    signing.add_argument("--decision", choices=[d.value for d in Decision])
    changes = sorted(set(keys.CONTROLS) - {"retry"})  # a retry is signed as a --decision
    signing.add_argument("--control", choices=changes, help="a change to a goal")
    signing.add_argument("--as", dest="approver", required=True, help="who signs (added_by)")
    signing.add_argument("--comment", default="", help="why (add_tasks: its reason)")
    signing.add_argument("--usd", type=float, help="raise_budget: the new USD budget")
    signing.add_argument("--tokens", type=int, help="raise_budget: the new token budget")
    signing.add_argument("--tasks", help="add_tasks: the tasks, a JSON list, each with its id")
    signing.add_argument(
        "--agent-key", action="store_true", help="sign with the agent key of --as (add_tasks)"
    )
    trail = command(commands, "events", "a goal's audit trail, newest last", events.events)
    trail.add_argument("goal_id")
    trail.add_argument("--limit", type=int, default=50, help="newest N events (50)")
    trail.add_argument("--kind", help="only events of this kind (e.g. report_rejected)")
    trail.add_argument("--before", type=int, help="events before this seq (the previous page)")
    return top


async def _run(session: Session, args: argparse.Namespace) -> None:
    try:
        await args.run(session, args)
    finally:
        await session.close()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    hide_secrets()  # in the logs of the dashboard and the demo, and in any traceback
    # SIGTERM unwinds like Ctrl-C, so the demo stops what it started.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        session = Session(Settings.from_env(), as_json=args.json)
    except ValueError as exc:
        print(f"error: {masked(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.run is stack.up:
            stack.up(session, args)
        else:
            asyncio.run(_run(session, args))
    except (TemporalUnreachable, StackError) as exc:
        print(f"error: {masked(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except TelemetryError as exc:
        print(f"error: {masked(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"error: {masked(exc)}", file=sys.stderr)
        return exc.exit_code
    except (WorkflowQueryFailedError, RPCError) as exc:
        # A workflow whose workflow task keeps failing (a deploy that broke determinism)
        # cannot answer queries either; the watch says which and what to do.
        print(
            f"error: Temporal could not answer: {masked(exc)}; "
            "`python starter.py health` says what is wrong and what to do",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return session.exit_code
