"""The dashboard's pages, rendered on the server from what the API answers.

Each page reads through the API's own functions, so a page and its endpoint never disagree,
and sees what the person's token sees. A person signs in at /login with their token, which
the browser then keeps in an HttpOnly, SameSite=Strict cookie; a page asked for without one
(unless reads are open) answers with the sign-in form. Live regions (`data-live`) are
re-read by static/live.js: on a goal's events, or every few seconds; actions post to the
API, which knows the person by the same cookie.
"""

import json
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from goalkeeper.graph import NODE_HEIGHT, NODE_WIDTH, layout
from goalkeeper.records import EventKind
from goalkeeper.runbooks import Runbook
from goalkeeper.signing import digest
from goalkeeper.statuses import GoalStatus, TaskStatus
from goalkeeper.suggestions import SuggestionStatus
from interfaces.api import agents, costs, goals, requests, suggestions
from interfaces.api.auth import (
    COOKIE,
    Access,
    BearerToken,
    CookieToken,
    reader,
    remember_token,
    same_origin,
)
from interfaces.api.health import health_report
from interfaces.api.problems import Problem
from interfaces.api.state import Limit, Offset, Pool, Temporal
from store import a2a
from store.deliverables import read_deliverable
from store.events import awaits_retry, latest_events
from store.runbooks import fetch_runbook, list_runbooks
from store.tasks import workspace_skills
from store.tokens import InvalidToken, token_holder

HERE = Path(__file__).parent
PAGE = 100
"""Rows a page shows at a time; longer lists page."""

SHOWN_BYTES = 200_000
"""Characters of a result or deliverable a page shows; the API and CLI give the whole."""

TRAIL = 50
"""Events a goal page shows: the newest, the rest are in the API's event stream."""

ATTEMPTS = 20
"""Attempts a task page shows at a time, the latest first; more page."""


class SignIn(Exception):
    """A page asked for without a usable token: answered with the sign-in form."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


async def _page_reader(
    request: Request, pool: Pool, bearer: BearerToken, cookie: CookieToken
) -> Access:
    try:
        return await reader(request, pool, bearer, cookie)
    except Problem as problem:
        if problem.status == 401:
            raise SignIn(problem.detail) from problem
        raise


PageReader = Annotated[Access, Depends(_page_reader)]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_page_reader)])
signing_in = APIRouter(include_in_schema=False)
"""/login and /logout: the only pages that need no token."""
templates = Jinja2Templates(directory=HERE / "templates")
static = StaticFiles(directory=HERE / "static")


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def _ago(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):  # from a JSON row: ISO 8601, with its offset
        value = datetime.fromisoformat(value)
    seconds = int((datetime.now(UTC) - value).total_seconds())
    # Minutes at the finest: a live region is not swapped just because a second went by.
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "under a minute ago"


templates.env.filters["usd"] = _usd
templates.env.filters["ago"] = _ago
templates.env.globals |= {"node_width": NODE_WIDTH, "node_height": NODE_HEIGHT}


def _pager_query(params: Any, offset: int) -> str:
    return urlencode({**dict(params), "offset": offset})


def _shown(value: Any, whole: str = "the API") -> str:
    """A result or deliverable as a person reads it: text as is, anything else as indented
    JSON, cut at SHOWN_BYTES with a word on where the whole is."""
    shown = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if len(shown) <= SHOWN_BYTES:
        return shown
    return f"{shown[:SHOWN_BYTES]}\n\n[{len(shown) - SHOWN_BYTES:,} more characters: see {whole}]"


def _cut(value: Any) -> dict[str, Any]:
    """A result as a person reads it (text as is, anything else as indented JSON), cut at
    SHOWN_BYTES: `text`, and `more`, the characters left out (the API has them)."""
    shown = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return {"text": shown[:SHOWN_BYTES], "more": max(len(shown) - SHOWN_BYTES, 0)}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"


templates.env.filters["duration"] = _duration
templates.env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
templates.env.filters["pager_query"] = _pager_query
templates.env.filters["shown"] = _shown
templates.env.filters["digest"] = digest


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("viewer", getattr(request.state, "access", None))
    context.setdefault("here", _here(request))
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _problem_page(request: Request, problem: Problem) -> HTMLResponse:
    return _render(request, "problem.html", problem.status, problem=problem, page="")


@router.get("/", response_class=HTMLResponse)
async def goals_page(
    request: Request,
    pool: Pool,
    access: PageReader,
    status: GoalStatus | None = None,
    workspace: str | None = None,
    offset: Offset = 0,
) -> Response:
    """Goals, newest first, with live progress bars."""
    listed = await goals.list_goals(pool, access, status, workspace, PAGE, offset)
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


@router.get("/goals/{goal_id:path}/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(
    request: Request,
    pool: Pool,
    client: Temporal,
    access: PageReader,
    goal_id: str,
    task_id: str,
    status: TaskStatus | None = None,
    offset: Offset = 0,
) -> Response:
    """A task: its status and approvals, its result (one stored by reference resolved),
    each attempt with its agent, duration, tokens, cost, tool calls, notes, the context it
    was given and its trace; and retry, reassign or cancel it where that applies."""
    try:
        task = await goals.one_task(pool=pool, access=access, goal_id=goal_id, task_id=task_id)
    except Problem as problem:
        # Goal ids may hold '/': a goal whose own id ends in /tasks/<x> has its page here.
        whole = f"{goal_id}/tasks/{task_id}"
        try:
            await goals.known_goal(pool, access, whole)
        except Problem:
            return _problem_page(request, problem)
        return await goal_page(request, pool, client, access, whole, status, offset)
    goal = await goals.goal(pool=pool, client=client, access=access, goal_id=goal_id)
    attempts = await goals.task_attempts(request, pool, access, goal_id, task_id, ATTEMPTS, offset)
    result, unreadable = None, None
    try:
        result = (await goals.task_result(pool, access, goal_id, task_id))["content"]
    except Problem as problem:
        unreadable = problem.detail
    return _render(
        request,
        "task.html",
        page="goals",
        goal=goal,
        task=task,
        attempts=attempts,
        offset=offset,
        result=None if result is None else _cut(result),
        unreadable=unreadable,
        kinds=[kind.value for kind in EventKind],
        ended=TaskStatus(task["status"]).is_terminal,
        retry=task["status"] == TaskStatus.FAILED
        and goal["status"] == GoalStatus.RUNNING
        and await awaits_retry(pool, goal_id, task_id),
    )


@router.get("/goals/{goal_id:path}", response_class=HTMLResponse)
async def goal_page(
    request: Request,
    pool: Pool,
    client: Temporal,
    access: PageReader,
    goal_id: str,
    status: TaskStatus | None = None,
    offset: Offset = 0,
) -> Response:
    """A goal: its figures, its tasks, its event trail and its deliverable."""
    try:
        goal = await goals.goal(pool=pool, client=client, access=access, goal_id=goal_id)
    except Problem as problem:
        return _problem_page(request, problem)
    tasks = await goals.goal_tasks(pool, access, goal_id, status, PAGE, offset)
    whole = status is None and offset == 0 and tasks["next_offset"] is None
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
        skills=await workspace_skills(pool, goal["workspace"]),
        graph=layout(tasks["items"]) if whole else None,
    )


@router.get("/start", response_class=HTMLResponse)
async def start_page(
    request: Request, pool: Pool, access: PageReader, runbook: str | None = None
) -> Response:
    """Ask a question, or start a goal from a stored runbook and its parameters (or from a
    description to plan from), in one of the token's workspaces."""
    return _render(
        request,
        "start.html",
        page="start",
        runbooks=await _offered_runbooks(pool),
        chosen=runbook,
        workspaces=access.scope,
    )


async def _offered_runbooks(pool: Any) -> list[Runbook]:
    """The latest version of each stored runbook (at most PAGE), with its parameters."""
    offered = []
    for listed in (await list_runbooks(pool))[:PAGE]:
        runbook = await fetch_runbook(pool, listed["name"], listed["version"])
        if runbook is not None:
            offered.append(runbook)
    return offered


@router.get("/requests/{request_id}", response_class=HTMLResponse)
async def request_page(
    request: Request, pool: Pool, client: Temporal, access: PageReader, request_id: str
) -> Response:
    """A question asked: its status while triage runs, then its answer or the goal set for
    it, with that goal's progress."""
    try:
        asked = await requests.request(
            pool=pool, client=client, access=access, request_id=request_id
        )
    except Problem as problem:
        return _problem_page(request, problem)
    goal = None
    # A goal set but not recorded yet: the page shows its id until it is.
    with suppress(Problem):
        if asked.get("goal_id"):
            goal = await goals.goal(
                pool=pool, client=client, access=access, goal_id=asked["goal_id"]
            )
    return _render(request, "request.html", page="start", asked=asked, goal=goal)


@router.get("/approvals", response_class=HTMLResponse)
async def approvals_page(
    request: Request, pool: Pool, access: PageReader, approver: str | None = None
) -> Response:
    """Tasks waiting for a decision, each with the exact result to approve; and the
    questions A2A agents ask that the signed-in person may answer."""
    waiting = await agents.approvals(pool, access, approver or None, PAGE)
    asked = await a2a.open_questions(pool, access.person, access.scope) if access.person else []
    return _render(
        request,
        "approvals.html",
        page="approvals",
        items=waiting["items"],
        approver=approver,
        questions=asked,
    )


@router.get("/agents", response_class=HTMLResponse)
async def agents_page(
    request: Request,
    pool: Pool,
    access: PageReader,
    workspace: str | None = None,
    offset: Offset = 0,
) -> Response:
    """Agents: status, load against capacity, and how each skill went for them."""
    listed = await agents.list_agents(pool, access, workspace or None, PAGE, offset)
    return _render(
        request, "agents.html", page="agents", listed=listed, workspace=workspace, offset=offset
    )


@router.get("/costs", response_class=HTMLResponse)
async def costs_page(
    request: Request,
    pool: Pool,
    access: PageReader,
    by: str = "goal",
    goal: str | None = None,
    workspace: str | None = None,
    since: str | None = None,
    limit: Limit = PAGE,
) -> Response:
    """What the work cost and what was wasted, grouped as asked (for a token of several
    workspaces, one at a time: the first unless another is chosen)."""
    if not workspace and not goal and access.scope:
        workspace = access.scope[0]
    try:
        report = await costs.costs(
            pool, access, goal or None, workspace or None, by, since or None, limit
        )
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
    request: Request,
    pool: Pool,
    access: PageReader,
    status: SuggestionStatus | None = SuggestionStatus.OPEN,
) -> Response:
    """Suggestions for better agents, skills and runbooks, to accept or dismiss."""
    listed = await suggestions.suggestions(pool, access, status, None, PAGE)
    return _render(
        request,
        "suggestions.html",
        page="suggestions",
        items=listed["items"],
        status=status,
        statuses=list(SuggestionStatus),
    )


@router.get("/health", response_class=HTMLResponse)
async def health_page(
    request: Request, pool: Pool, client: Temporal, access: PageReader
) -> Response:
    """Whether PostgreSQL and Temporal answer, and the health check's open alerts."""
    report = await health_report(pool, client, access)
    return _render(request, "health.html", page="health", report=report)


@signing_in.get("/login", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: str = "/") -> Response:
    """The sign-in form: a personal token, kept by this browser until it signs out."""
    return _sign_in(request, 200, next, None)


@signing_in.post("/login", response_class=HTMLResponse)
async def sign_in(request: Request, pool: Pool) -> Response:
    """Check the form's token and keep it in an HttpOnly, SameSite=Strict cookie; then back
    to the page the person came from (a path of this site only)."""
    _from_here(request)
    form = parse_qs((await request.body()).decode(errors="replace"))
    token = (form.get("token") or [""])[0].strip()
    back = _local((form.get("next") or ["/"])[0])
    try:
        await token_holder(pool, token)
    except InvalidToken as exc:
        return _sign_in(request, 401, back, str(exc) if token else "expected a token, got none")
    response = RedirectResponse(back, status_code=303)
    remember_token(response, request, token)
    return response


@signing_in.post("/logout")
async def sign_out(request: Request) -> Response:
    """Forget this browser's token."""
    _from_here(request)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


def _from_here(request: Request) -> None:
    # No other site may sign a browser in (as the attacker) or out.
    if request.headers.get("origin") is not None and not same_origin(request):
        raise Problem(
            403,
            "Cross-origin sign-in",
            f"expected a form of this dashboard (Origin http(s)://{request.headers.get('host')}), "
            f"got Origin {request.headers.get('origin')!r}",
        )


def _local(path: str) -> str:
    """`path` if it is a path of this site, else the goals page: never another site."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"


def _sign_in(request: Request, status: int, back: str, error: str | None) -> HTMLResponse:
    return _render(
        request, "login.html", status, page="", back=_local(back), error=error, viewer=None
    )


async def _signin_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignIn)
    return _sign_in(request, 401, _here(request), exc.detail)


def install(app: FastAPI) -> None:
    """Answer a page asked for without a usable token with the sign-in form (401)."""
    app.add_exception_handler(SignIn, _signin_page)
