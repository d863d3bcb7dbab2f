"""The HTTP agent protocol, under /api/v1/agent/: an agent holding only its own credential
waits for its assignments, heartbeats, stores large results and reports.

Heartbeats and reports go to the task workflow as the `heartbeat` and `report` updates,
so the task's own validator judges them (assignment, signatures, sizes) and its refusal
is answered at once. The API never signs for an agent: a goal that requires signatures
takes only what the agent signed with its key. Each refusal about an assignment is
recorded in the goal's audit trail, as a refused signal is.
"""

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import Scope
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from goalkeeper.ids import fact_id
from goalkeeper.limits import MAX_EVENT_MESSAGE_CHARS, clip
from goalkeeper.records import Event, EventKind
from interfaces.agents import registry
from interfaces.api.assignment_bell import AssignmentBell
from interfaces.api.auth import Access, unauthorized
from interfaces.api.events import KEEPALIVE_SECONDS, _EventStream
from interfaces.api.problems import Problem, answers
from interfaces.api.state import Pool, Temporal
from store import results
from store.agent_credentials import (
    CredentialHolder,
    InvalidCredential,
    RevokedCredential,
    credential_holder,
)
from store.rows import insert_event
from workflows.messages import summarize_payload

log = logging.getLogger("goalkeeper.api")

router = APIRouter(prefix="/agent", tags=["agent protocol"])
AGENT_PATH = "/api/v1/agent/"
"""Where the router is served (the API's prefix and its own)."""

MAX_WAIT_SECONDS = 60
"""The longest an agent's poll for work is held open."""

SIGNALS = {"report": "agent_report", "heartbeat": "agent_heartbeat"}
"""The signal each update mirrors, sent when the update gets no answer in time."""

SENT_AS_SIGNAL = "sent"
"""The `status` answered when the task had no answer in time and was sent the signal: it
judges the message later, and records a refusal in the goal's trail."""

STOPPING_RETRY_SECONDS = 5
"""The Retry-After of a poll answered because the API stops."""

MAX_SEEN = 200
"""Assignment ids an agent may say it has (an agent holds at most its capacity)."""

MAKE_ONE = "'starter.py agent credential new AGENT'"
CHALLENGE = {"WWW-Authenticate": "'Bearer': send 'Authorization: Bearer CREDENTIAL'"}

_bearer = HTTPBearer(auto_error=False, description=f"an agent credential from {MAKE_ONE}")

OWN_ASSIGNMENT = {
    403: "an assignment of another agent than the credential's (recorded)",
    404: "no assignment of that id",
}
REFUSED = {
    400: "a body that is not a JSON object (recorded)",
    409: "refused by the task workflow, naming why (recorded), or the task has ended",
}


@answers(
    {401: "no valid agent credential: missing, unknown or revoked, or another scheme"},
    headers=CHALLENGE,
)
async def _agent(
    pool: Pool,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CredentialHolder:
    """The agent the request's credential acts for."""
    if bearer is None:
        raise unauthorized(
            f"missing agent credential: expected 'Authorization: Bearer CREDENTIAL' with a "
            f"credential from {MAKE_ONE}"
        )
    try:
        return await credential_holder(pool, bearer.credentials.strip())
    except RevokedCredential as exc:
        await _record_revoked(pool, exc)
        raise unauthorized(str(exc)) from exc
    except InvalidCredential as exc:
        log.warning("agent protocol refused a credential: %s", exc)
        raise unauthorized(str(exc)) from exc


Agent = Annotated[CredentialHolder, Depends(_agent)]


async def _record_revoked(pool: asyncpg.Pool, exc: RevokedCredential) -> None:
    """Recorded once per credential: a revoked one in use is worth an operator's look."""
    event = Event(
        event_id=fact_id("agent-credential-revoked", exc.credential_id),
        kind=EventKind.CREDENTIAL_REJECTED,
        message=clip(f"agent protocol refused: {exc}", MAX_EVENT_MESSAGE_CHARS),
        agent_id=exc.agent_id,
        detail={"via": "http", "credential_id": exc.credential_id},
    )
    await insert_event(pool, event)


async def record_oversized(
    scope: Scope, limit: int, declared: int | None, counted: int | None
) -> None:
    """Record a body refused as too large on the agent protocol (BodyLimit's `on_refused`),
    against the agent whose valid credential sent it, without reading the body.

    A refusal is recorded only for a valid credential (in its goal's trail when the path
    names one of its assignments, else as the agent's), a revoked one as its one
    credential refusal, and nothing for a missing or unknown one: a stranger cannot fill
    the trail. At most one credential lookup, one assignment lookup and one row.
    """
    path: str = scope.get("path", "")
    if not path.startswith(AGENT_PATH):
        return
    scheme, _, credential = Headers(scope=scope).get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return
    pool: asyncpg.Pool = scope["app"].state.pool
    try:
        try:
            agent = await credential_holder(pool, credential.strip())
        except RevokedCredential as exc:
            await _record_revoked(pool, exc)
            return
        except InvalidCredential:
            return
        kind = {
            "heartbeat": EventKind.HEARTBEAT_REJECTED,
            "notes": EventKind.NOTE_REJECTED,
        }.get(path.rsplit("/", 1)[-1], EventKind.REPORT_REJECTED)
        size = f"Content-Length {declared:,}" if counted is None else f"{counted:,} bytes so far"
        message = (
            f"{scope.get('method', 'POST')} {path}: expected a body of at most {limit:,} bytes "
            f"(GOALKEEPER_API_MAX_BODY_BYTES), got {size}; refused unread"
        )
        detail = {"path": path, "limit": limit, "declared": declared, "counted": counted}
        row = await _assignment_of(pool, agent, path)
        if row is not None:
            await _record(pool, agent, row, kind, message, detail)
            return
        text = f"{kind.value.replace('_', ' ')} (agent protocol): {message}"
        event = Event(
            event_id=fact_id("agent-http", kind, agent.credential_id, message),
            kind=kind,
            message=clip(text, MAX_EVENT_MESSAGE_CHARS),
            agent_id=agent.agent_id,
            detail={"via": "http", "credential_id": agent.credential_id} | detail,
        )
        await insert_event(pool, event)
    except (OSError, asyncpg.PostgresError) as exc:  # the 413 is answered all the same
        log.warning("could not record a body too large on %s: %s", path, exc)


async def _assignment_of(
    pool: asyncpg.Pool, agent: CredentialHolder, path: str
) -> asyncpg.Record | None:
    """The credential's own assignment that an agent-protocol path names, if any."""
    parts = path.removeprefix(AGENT_PATH).split("/")
    if len(parts) < 2 or parts[0] != "assignments":
        return None
    try:
        wanted = uuid.UUID(parts[1])
    except ValueError:
        return None
    return await pool.fetchrow(
        "SELECT assignment_id::text, goal_id, task_id FROM assignments "
        "WHERE assignment_id = $1 AND agent_id = $2",
        wanted,
        agent.agent_id,
    )


def _body(description: str, *, required: bool = True) -> dict[str, Any]:
    """A JSON object body as the OpenAPI document shows it; the route reads it itself, so
    a malformed one is refused and recorded against its assignment."""
    schema = {"type": "object", "description": description}
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}


def _stopping(app: Any) -> asyncio.Event:
    """Set once the API begins to stop."""
    stopping: asyncio.Event | None = getattr(app.state, "agents_stopping", None)
    if stopping is None:
        stopping = app.state.agents_stopping = asyncio.Event()
    return stopping


def stop_waiting(app: Any) -> None:
    """Tell the agents waiting on `app` that it stops: each long poll answers at once (503,
    try again) and each assignment stream ends, rather than be cut off by the server."""
    _stopping(app).set()
    bell: AssignmentBell | None = getattr(app.state, "assignment_bell", None)
    if bell is not None:
        bell.ring_all()


def _stopped() -> Problem:
    return Problem(
        503,
        "API stopping",
        f"the API is stopping: expected to answer again shortly; poll again in "
        f"{STOPPING_RETRY_SECONDS} seconds (or at another instance)",
        headers={"Retry-After": str(STOPPING_RETRY_SECONDS)},
    )


def _bell(request: Request) -> AssignmentBell:
    bell: AssignmentBell | None = getattr(request.app.state, "assignment_bell", None)
    if bell is None:
        bell = request.app.state.assignment_bell = AssignmentBell(request.app.state.pool)
    return bell


@router.get("/me")
async def me(pool: Pool, agent: Agent) -> dict[str, Any]:
    """The agent the credential acts for, its workspace and its public key (null until it
    has one): a way to check a credential."""
    key = await pool.fetchval("SELECT public_key FROM agents WHERE agent_id = $1", agent.agent_id)
    return {"agent_id": agent.agent_id, "workspace": agent.workspace, "public_key": key}


@router.get("/assignments")
@answers(
    {503: "the API is stopping: poll again after Retry-After"},
    headers={"Retry-After": "seconds to wait before polling again"},
)
async def assignments(
    request: Request,
    pool: Pool,
    agent: Agent,
    wait: Annotated[
        float,
        Query(ge=0, le=MAX_WAIT_SECONDS, description="seconds to wait for one if none (0-60)"),
    ] = 30,
    seen: Annotated[
        list[str],
        Query(max_length=MAX_SEEN, description="assignment ids the agent has: wait for another"),
    ] = [],  # noqa: B006 (FastAPI copies it)
) -> dict[str, Any]:
    """The agent's active assignments, each with its full context (the goal, the task,
    its dependencies' results, rework comments); waits up to `wait` seconds for one not
    `seen`."""
    deadline = time.monotonic() + wait
    stopping = _stopping(request.app)
    async with _bell(request).listening(agent.agent_id) as rung:
        while True:
            rung.clear()  # before reading, so a notice while it reads is not lost
            if stopping.is_set():
                raise _stopped()
            rows = await registry.active_assignments(pool, [agent.agent_id])
            left = deadline - time.monotonic()
            if any(r["assignment_id"] not in seen for r in rows) or left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rung.wait(), left)
    return {
        "agent_id": agent.agent_id,
        "workspace": agent.workspace,
        "assignments": [await _assignment_view(pool, row) for row in rows],
    }


@router.get(
    "/assignments/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
@answers(
    {429: "too many streams open for the credential or the client's address"},
    headers={"Retry-After": "seconds to wait before opening one again"},
)
async def assignment_stream(request: Request, pool: Pool, agent: Agent) -> StreamingResponse:
    """The agent's active assignments, then each new one as it is made, as server-sent
    events (`id: ASSIGNMENT_ID`, `event: assignment`, `data:` as in GET /assignments). A
    reconnecting agent is sent those still active again."""
    address = request.client.host if request.client else "unknown"
    as_holder = Access(agent.agent_id, f"agent:{agent.credential_id}", None)
    close = request.app.state.stream_limits.open(as_holder, address)
    return _EventStream(
        _assignment_events(pool, _bell(request), agent.agent_id, _stopping(request.app)),
        on_close=close,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _assignment_events(
    pool: asyncpg.Pool, bell: AssignmentBell, agent_id: str, stopping: asyncio.Event
) -> AsyncGenerator[str]:
    """Each active assignment of the agent once, as an SSE message, and a keepalive line
    when there is nothing to say; it ends when the API stops (the agent reconnects)."""
    sent: set[str] = set()
    async with bell.listening(agent_id) as rung:
        while True:
            rung.clear()  # before reading, so a notice while it reads is not lost
            if stopping.is_set():
                return
            rows = await registry.active_assignments(pool, [agent_id])
            for row in rows:
                if row["assignment_id"] not in sent:
                    sent.add(row["assignment_id"])
                    data = json.dumps(await _assignment_view(pool, row), default=str)
                    yield f"id: {row['assignment_id']}\nevent: assignment\ndata: {data}\n\n"
            sent &= {row["assignment_id"] for row in rows}  # ended ones are forgotten
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rung.wait(), KEEPALIVE_SECONDS)
            if not rung.is_set():
                yield ": keepalive\n\n"


@router.post(
    "/assignments/{assignment_id}/heartbeat",
    openapi_extra=_body(
        "`at` (ISO 8601, the time signed) and `signature` (the heartbeat content of "
        "goalkeeper.signing, signed with the agent's key) where the goal requires signatures; "
        "may be empty otherwise",
        required=False,
    ),
)
@answers(OWN_ASSIGNMENT | REFUSED)
async def heartbeat(
    request: Request,
    pool: Pool,
    client: Temporal,
    agent: Agent,
    assignment_id: str,
) -> dict[str, Any]:
    """Tell the task its agent still works on it; refused once the assignment is not the
    agent's current one, or when unsigned where signatures are required."""
    row = await own_assignment(pool, agent, assignment_id, EventKind.HEARTBEAT_REJECTED)
    payload = await _message(request, pool, agent, row, EventKind.HEARTBEAT_REJECTED)
    view = await _update(pool, client, agent, row, "heartbeat", payload)
    return {"assignment_id": row["assignment_id"], "status": view.get("status")}


@router.post(
    "/assignments/{assignment_id}/report",
    openapi_extra=_body(
        "`outcome` ('completed' or 'failed'), `result` (or the reference POST .../results "
        "answered), `error`, `tokens_used`, `cost_usd`, and `signature` (the report content "
        "of goalkeeper.signing, signed with the agent's key) where the goal requires signatures"
    ),
)
@answers(OWN_ASSIGNMENT | REFUSED)
async def report(
    request: Request,
    pool: Pool,
    client: Temporal,
    agent: Agent,
    assignment_id: str,
) -> dict[str, Any]:
    """Report how the assignment went; the task's answer, or its refusal naming why."""
    row = await own_assignment(pool, agent, assignment_id, EventKind.REPORT_REJECTED)
    payload = await _message(request, pool, agent, row, EventKind.REPORT_REJECTED)
    view = await _update(pool, client, agent, row, "report", payload)
    return {"assignment_id": row["assignment_id"], "status": view.get("status")}


@router.post("/assignments/{assignment_id}/results", status_code=201)
@answers(OWN_ASSIGNMENT | {409: "the assignment has ended"})
async def store_result(
    pool: Pool,
    agent: Agent,
    assignment_id: str,
    body: Annotated[Any, Body(description="the result, any JSON, up to the body limit")],
) -> dict[str, Any]:
    """Store a result too large to report inline; report the reference this answers."""
    row = await own_assignment(pool, agent, assignment_id, EventKind.REPORT_REJECTED)
    if row["status"] != "active":
        raise Problem(
            409,
            "Assignment ended",
            f"assignment {assignment_id} is {row['status']}: expected an active one",
        )
    try:
        return await results.stored(pool, row["assignment_id"], body)
    except asyncpg.InsufficientPrivilegeError as exc:  # it ended meanwhile
        raise Problem(409, "Assignment ended", str(exc)) from exc


async def own_assignment(
    pool: asyncpg.Pool, agent: CredentialHolder, assignment_id: str, kind: EventKind
) -> asyncpg.Record:
    """The assignment, if the credential's agent holds (or held) it; another agent's is
    refused and recorded."""
    unknown = Problem(
        404,
        "Unknown assignment",
        f"no assignment {assignment_id!r}: expected an id from GET /api/v1/agent/assignments",
    )
    try:
        wanted = uuid.UUID(assignment_id)
    except ValueError:
        raise unknown from None
    row = await pool.fetchrow(
        "SELECT assignment_id::text, goal_id, task_id, agent_id, attempt, status::text "
        "FROM assignments WHERE assignment_id = $1",
        wanted,
    )
    if row is None:
        raise unknown
    if row["agent_id"] != agent.agent_id:
        detail = (
            f"assignment {assignment_id} is not agent {agent.agent_id!r}'s: expected one of "
            "the credential's own agent"
        )
        await _record(pool, agent, row, kind, detail, {"path": assignment_id})
        raise Problem(403, "Not this agent's assignment", detail)
    return row


async def _message(
    request: Request,
    pool: asyncpg.Pool,
    agent: CredentialHolder,
    row: asyncpg.Record,
    kind: EventKind,
) -> dict[str, Any]:
    """The body as the task's message, for the credential's agent and the path's
    assignment; a body that is not a JSON object, or names another, is refused."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        detail = f"expected a JSON object as the body, got malformed JSON: {exc}"
        await _record(pool, agent, row, kind, detail, {"body": raw[:500].decode(errors="replace")})
        raise Problem(400, "Malformed JSON", detail) from None
    if not isinstance(body, dict):
        detail = f"expected a JSON object as the body, got {type(body).__name__}"
        await _record(pool, agent, row, kind, detail, {"body": summarize_payload((body,), 500)})
        raise Problem(400, "Not a JSON object", detail)
    for field, own in (("agent_id", agent.agent_id), ("assignment_id", row["assignment_id"])):
        if field in body and body[field] != own:
            detail = f"the body's {field} {body[field]!r:.80} is not {own!r}, the request's"
            await _record(pool, agent, row, kind, detail, {"payload": summarize_payload((body,))})
            raise Problem(403, "Not this agent's assignment", detail)
    return body | {"agent_id": agent.agent_id, "assignment_id": row["assignment_id"]}


async def _update(
    pool: asyncpg.Pool,
    client: Client,
    agent: CredentialHolder,
    row: asyncpg.Record,
    name: str,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """Send the task the update; its refusal is recorded and answered as a 409."""
    kind = EventKind.REPORT_REJECTED if name == "report" else EventKind.HEARTBEAT_REJECTED
    workflow_id = f"{row['goal_id']}/{row['task_id']}"
    handle = client.get_workflow_handle(workflow_id)
    try:
        answer = await handle.execute_update(name, payload)
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        # No answer in time (a busy worker): sent as the signal, which the task judges the
        # same way and whose refusal it records itself; a repeat is harmless.
        await handle.signal(SIGNALS[name], payload)
        return {"status": SENT_AS_SIGNAL}
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        await _record(pool, agent, row, kind, message, {"payload": summarize_payload((payload,))})
        raise Problem(
            409, f"{name.capitalize()} refused", message, workflow_id=workflow_id
        ) from exc
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        raise Problem(
            409,
            "Task ended",
            f"task {workflow_id!r} has ended: assignment {row['assignment_id']} is {row['status']}",
            workflow_id=workflow_id,
        ) from exc
    return answer if isinstance(answer, dict) else {}


async def _record(
    pool: asyncpg.Pool,
    agent: CredentialHolder,
    row: asyncpg.Record,
    kind: EventKind,
    message: str,
    detail: dict[str, Any],
) -> None:
    """Record a refusal in the goal's audit trail; the same refusal is recorded once."""
    text = clip(f"{kind.value.replace('_', ' ')} (agent protocol): {message}", 2000)
    event = Event(
        event_id=fact_id("agent-http", kind, agent.credential_id, row["assignment_id"], message),
        kind=kind,
        message=clip(text, MAX_EVENT_MESSAGE_CHARS),
        goal_id=row["goal_id"],
        task_id=row["task_id"],
        agent_id=agent.agent_id,
        detail={"via": "http", "credential_id": agent.credential_id} | detail,
    )
    await insert_event(pool, event)


async def _assignment_view(pool: asyncpg.Pool, row: asyncpg.Record) -> dict[str, Any]:
    """An assignment as its agent sees it: its dependencies' stored results read for it."""
    context = dict(row["context"] or {})
    resolved = {}
    for task_id, value in (context.get("dependency_results") or {}).items():
        try:
            resolved[task_id] = await results.resolve(pool, value)
        except results.UnresolvedReference:
            resolved[task_id] = value  # the agent sees the reference, and can say so
    context["dependency_results"] = resolved
    return {
        "assignment_id": row["assignment_id"],
        "goal_id": row["goal_id"],
        "task_id": row["task_id"],
        "attempt": row["attempt"],
        "context": context,
        "config": dict(row["config"] or {}),
    }
