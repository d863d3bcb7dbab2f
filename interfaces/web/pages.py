"""The dashboard's pages, rendered on the server from what the API answers.

Each page reads through the API's own functions, so a page and its endpoint never disagree.
Live regions (`data-live`) are re-read by static/live.js: on a goal's events, or every
few seconds; actions post to the API with the person's token.
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from activities.deliverables import read_deliverable
from activities.event_feed import latest_events
from goalkeeper.records import EventKind
from goalkeeper.signing import digest
from goalkeeper.statuses import GoalStatus, TaskStatus
from goalkeeper.suggestions import SuggestionStatus
from interfaces.api import agents, costs, goals, suggestions
from interfaces.api.health import health_report
from interfaces.api.problems import Problem
from interfaces.api.state import Limit, Offset, Pool, Temporal

HERE = Path(__file__).parent
PAGE = 100
"""Rows a page shows at a time; longer lists page."""

SHOWN_BYTES = 200_000
"""Characters of a result or deliverable a page shows; the API and CLI give the whole."""

TRAIL = 50
"""Events a goal page shows: the newest, the rest are in the API's event stream."""

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")
static = StaticFiles(directory=HERE / "static")


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def _ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = int((datetime.now(UTC) - value).total_seconds())
    # Minutes at the finest: a live region is not swapped just because a second went by.
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "under a minute ago"


templates.env.filters["usd"] = _usd
templates.env.filters["ago"] = _ago


def _pager_query(params: Any, offset: int) -> str:
    return urlencode({**dict(params), "offset": offset})


def _shown(value: Any, whole: str = "the API") -> str:
    """A result or deliverable as a person reads it: text as is, anything else as indented
    JSON, cut at SHOWN_BYTES with a word on where the whole is."""
    shown = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if len(shown) <= SHOWN_BYTES:
        return shown
    return f"{shown[:SHOWN_BYTES]}\n\n[{len(shown) - SHOWN_BYTES:,} more characters: see {whole}]"


templates.env.filters["pager_query"] = _pager_query
templates.env.filters["shown"] = _shown
templates.env.filters["digest"] = digest


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _problem_page(request: Request, problem: Problem) -> HTMLResponse:
    return _render(request, "problem.html", problem.status, problem=problem, page="")


@router.get("/", response_class=HTMLResponse)
async def goals_page(
    request: Request,
    pool: Pool,
    status: GoalStatus | None = None,
    workspace: str | None = None,
    offset: Offset = 0,
) -> Response:
    """Goals, newest first, with live progress bars."""
    listed = await goals.list_goals(pool, status, workspace, PAGE, offset)
    return _render(
        request,
        "goals.html",
        page="goals",
        listed=listed,
        status=status,
        workspace=workspace,
        offset=offset,
        statuses=list(GoalStatus),
    )


@router.get("/goals/{goal_id:path}", response_class=HTMLResponse)
async def goal_page(
    request: Request,
    pool: Pool,
    client: Temporal,
    goal_id: str,
    status: TaskStatus | None = None,
    offset: Offset = 0,
) -> Response:
    """A goal: its figures, its tasks, its event trail and its deliverable."""
    try:
        goal = await goals.goal(pool=pool, client=client, goal_id=goal_id)
    except Problem as problem:
        return _problem_page(request, problem)
    tasks = await goals.goal_tasks(pool, goal_id, status, PAGE, offset)
    return _render(
        request,
        "goal.html",
        page="goals",
        goal=goal,
        tasks=tasks,
        status=status,
        offset=offset,
        statuses=list(TaskStatus),
        events=await latest_events(pool, goal_id, TRAIL),
        kinds=[kind.value for kind in EventKind],
        deliverable=await read_deliverable(pool, goal_id),
    )


@router.get("/approvals", response_class=HTMLResponse)
async def approvals_page(request: Request, pool: Pool, approver: str | None = None) -> Response:
    """Tasks waiting for a decision, each with the exact result to approve."""
    waiting = await agents.approvals(pool, approver or None, PAGE)
    return _render(
        request, "approvals.html", page="approvals", items=waiting["items"], approver=approver
    )


@router.get("/agents", response_class=HTMLResponse)
async def agents_page(
    request: Request, pool: Pool, workspace: str | None = None, offset: Offset = 0
) -> Response:
    """Agents: status, load against capacity, and how each skill went for them."""
    listed = await agents.list_agents(pool, workspace or None, PAGE, offset)
    return _render(
        request, "agents.html", page="agents", listed=listed, workspace=workspace, offset=offset
    )


@router.get("/costs", response_class=HTMLResponse)
async def costs_page(
    request: Request,
    pool: Pool,
    by: str = "goal",
    goal: str | None = None,
    workspace: str | None = None,
    since: str | None = None,
    limit: Limit = PAGE,
) -> Response:
    """What the work cost and what was wasted, grouped as asked."""
    try:
        report = await costs.costs(pool, goal or None, workspace or None, by, since or None, limit)
    except Problem as problem:
        return _problem_page(request, problem)
    groupings = ["goal", "task", "attempt", "agent", "skill", "runbook", "workspace", "day"]
    return _render(
        request,
        "costs.html",
        page="costs",
        report=report,
        by=by,
        goal=goal,
        workspace=workspace,
        since=since,
        groupings=groupings,
    )


@router.get("/suggestions", response_class=HTMLResponse)
async def suggestions_page(
    request: Request, pool: Pool, status: SuggestionStatus | None = SuggestionStatus.OPEN
) -> Response:
    """Suggestions for better agents, skills and runbooks, to accept or dismiss."""
    listed = await suggestions.suggestions(pool, status, None, PAGE)
    return _render(
        request,
        "suggestions.html",
        page="suggestions",
        items=listed["items"],
        status=status,
        statuses=list(SuggestionStatus),
    )


@router.get("/health", response_class=HTMLResponse)
async def health_page(request: Request, pool: Pool, client: Temporal) -> Response:
    """Whether PostgreSQL and Temporal answer, and the health check's open alerts."""
    report = await health_report(pool, client)
    return _render(request, "health.html", page="health", report=report)
