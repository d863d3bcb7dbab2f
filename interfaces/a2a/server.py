"""Goalkeeper as an A2A agent: its Agent Card at the protocol's well-known path, and the
protocol's send, stream, get and cancel (JSON-RPC at /a2a) as the token's person.

A message becomes a request, started as `POST /api/v1/requests` starts one; its A2A task
follows the request and its goal (goalkeeper.a2a_states) from the read model until it
ends, kept in PostgreSQL (interfaces.a2a.tasks) so it outlives a restart. Cancelling it
cancels a request in triage, or stops its goal, signed as the dashboard's delegate."""

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from a2a.auth.user import User
from a2a.helpers import new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.agent_execution.active_task import TERMINAL_TASK_STATES
from a2a.server.context import ServerCallContext
from a2a.server.events import Event, EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder, ServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.server.tasks import TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    CancelTaskRequest,
    HTTPAuthSecurityScheme,
    Message,
    Role,
    SecurityRequirement,
    SecurityScheme,
    SendMessageRequest,
    StringList,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, TransportProtocol
from a2a.utils.errors import InvalidParamsError, InvalidRequestError, TaskNotCancelableError
from fastapi import FastAPI
from google.protobuf.json_format import MessageToDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.service import RPCError

from goalkeeper.a2a_states import A2aState, Standing, Waiting, standing
from goalkeeper.controls import CONTROLS
from goalkeeper.signing import sign_control
from interfaces.a2a.tasks import StoredTasks, StoredTaskWriter, as_json, bounded
from interfaces.api import goals, requests
from interfaces.api.actions import send_update
from interfaces.api.auth import DELEGATE, MAKE_ONE, Access, unauthorized
from interfaces.api.problems import Problem
from interfaces.api.work import workspace_for
from interfaces.config import Settings
from interfaces.starting import InvalidRequest, cancel_request, check_request, start_request
from store import a2a_tasks
from store.deliverables import read_deliverable
from store.notes import latest_note
from store.runbooks import list_runbooks
from store.tokens import InvalidToken, TokenHolder, token_holder

RPC_PATH = "/a2a"
POLL_SECONDS = 0.5
"""How often a working A2A task reads its request and goal from the read model."""

UNKNOWN_READS = 20
"""Reads (one per POLL_SECONDS) that find no request before a kept task is failed: its API
stopped between keeping the task and starting the request."""

MAX_TASKS_PER_TOKEN = 32
"""A2A tasks a token may have running at once (counted in PostgreSQL, across restarts):
each is followed until its request ends."""

Publish = Callable[[TaskState, Message, tuple[str, str] | None, str | None], Awaitable[bool]]
"""Says a followed task's new state (with its artifact and goal): False once it ended."""

MAX_RUNBOOK_SKILLS = 200
"""Runbooks shown as skills on the card at most, so the card stays small."""

log = logging.getLogger(__name__)

_STATES = {
    A2aState.WORKING: TaskState.TASK_STATE_WORKING,
    A2aState.INPUT_REQUIRED: TaskState.TASK_STATE_INPUT_REQUIRED,
    A2aState.COMPLETED: TaskState.TASK_STATE_COMPLETED,
    A2aState.FAILED: TaskState.TASK_STATE_FAILED,
    A2aState.CANCELED: TaskState.TASK_STATE_CANCELED,
}

BEARER = "bearer"

BASE_SKILLS = [
    AgentSkill(
        id="ask",
        name="Answer a question",
        description="A triage agent answers a short question directly.",
        tags=["question", "answer"],
        examples=["What is our refund policy?"],
    ),
    AgentSkill(
        id="goal",
        name="Reach a goal",
        description="Work that needs several steps becomes a goal: tasks for a team of "
        "agents, with approvals and budgets; the deliverable comes back as an artifact.",
        tags=["goal", "orchestration"],
        examples=["Prepare the launch of the new pricing in the EU for the sales team"],
    ),
]


def request_id_of(task_id: str) -> str:
    """The Goalkeeper request an A2A task is: one per task, so a retry starts nothing new."""
    return f"a2a-{task_id}"


def agent_card(url: str, runbooks: list[dict[str, Any]]) -> AgentCard:
    """Goalkeeper's Agent Card at `url` (the API's root): JSON-RPC at /a2a, streaming, the
    API's bearer tokens, and its skills (one per stored runbook)."""
    skills = BASE_SKILLS + [
        AgentSkill(
            id=f"runbook:{r['name']}",
            name=str(r["title"]),
            description=f"A goal from the runbook {r['name']!r} (version {r['version']}, "
            f"{r['tasks']} tasks).",
            tags=["runbook", *r["tags"]],
        )
        for r in runbooks[:MAX_RUNBOOK_SKILLS]
    ]
    return AgentCard(
        name="Goalkeeper",
        description="Goal-driven orchestration for teams of AI agents: ask a question, or "
        "state a goal and follow it to its deliverable, with approvals as input-required.",
        version="1",
        supported_interfaces=[
            AgentInterface(
                url=url.rstrip("/") + RPC_PATH,
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version="1.0",
            )
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        security_schemes={
            BEARER: SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="Bearer", description=f"a token from {MAKE_ONE}"
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={BEARER: StringList(list=[])})],
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain", "text/markdown"],
        skills=skills,
    )


class _TokenUser(User):
    """The A2A user a request's token is: tasks are kept per token, so no other token's
    request sees or cancels them."""

    def __init__(self, holder: TokenHolder) -> None:
        self.holder = holder

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self.holder.token_id


class _TokenContext(ServerCallContextBuilder):
    """The call context of a request authenticated by `_rpc`: its token's holder."""

    def build(self, request: Request) -> ServerCallContext:
        context = DefaultServerCallContextBuilder().build(request)
        holder: TokenHolder = request.state.holder
        context.user = _TokenUser(holder)
        context.state["holder"] = holder
        return context


async def authenticated(request: Request) -> TokenHolder:
    """The holder of the request's bearer token; a missing, unknown or revoked one is
    refused (401) before the protocol reads the body."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        log.warning("a2a: refused a request without a bearer token from %s", request.client)
        raise unauthorized(
            f"expected an 'Authorization: Bearer TOKEN' header with a token from {MAKE_ONE}"
        )
    try:
        return await token_holder(request.app.state.pool, token.strip())
    except InvalidToken as exc:
        log.warning("a2a: refused a token from %s: %s", request.client, exc)
        raise unauthorized(str(exc)) from exc


class GoalkeeperExecutor(AgentExecutor):
    """Starts a request for each new A2A task and follows it until it ends; a task is kept
    in PostgreSQL, so an API that starts again follows each one not yet ended."""

    def __init__(self, app: FastAPI, task_queue: str) -> None:
        self.app, self.task_queue = app, task_queue
        self._stopped: dict[str, str] = {}
        """What canceling each A2A task being canceled has stopped, as its message says."""
        self._resumed: set[asyncio.Task[None]] = set()
        """The followers of the tasks this process took up again when it started."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        holder: TokenHolder = context.call_context.state["holder"]
        access = Access.of(holder)
        task_id = str(context.task_id)
        spec = self._spec(context, access)
        request_id = request_id_of(task_id)
        try:
            check_request(spec, request_id)  # a refusal makes no task at all
        except InvalidRequest as exc:
            raise InvalidParamsError(message=str(exc)) from None
        await self._start(context, event_queue, spec, access)

    async def _start(
        self, context: RequestContext, event_queue: EventQueue, spec: dict[str, Any], access: Access
    ) -> None:
        """Keep the task (within the token's limit), start its request, and follow it."""
        task_id, context_id = str(context.task_id), str(context.context_id)
        request_id = request_id_of(task_id)
        assert context.message is not None and access.token_id and access.person
        task = Task(
            id=task_id,
            context_id=context_id,
            status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
            history=[context.message],
        )
        pool, limit = self.app.state.pool, MAX_TASKS_PER_TOKEN
        owner = {
            "token_id": access.token_id,
            "person": access.person,
            "workspace": spec["workspace"],
        }
        state = TaskState.Name(task.status.state)
        kept, running = await a2a_tasks.claim(
            pool, task_id, owner, request_id, state, as_json(bounded(task)), limit
        )
        if not kept:
            raise InvalidRequestError(
                message=f"this token's A2A tasks still running: {running}; expected fewer "
                f"than {limit}: wait for one to end, or cancel one"
            )
        try:
            await start_request(self._client, self.task_queue, spec, request_id)
        except BaseException as exc:
            await a2a_tasks.forget(pool, task_id, access.token_id)  # nothing started
            if isinstance(exc, InvalidRequest):
                raise InvalidParamsError(message=str(exc)) from None
            raise
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task_id, context_id)

        async def publish(
            state: TaskState, message: Message, artifact: tuple[str, str] | None, goal: str | None
        ) -> bool:
            if artifact is not None:
                await updater.add_artifact([new_text_part(artifact[1])], name=artifact[0])
            await updater.update_status(state, message=message)
            if goal is not None:
                await a2a_tasks.note_goal(pool, task_id, goal)
            return True

        await self._follow(access, request_id, task_id, publish)

    def _spec(self, context: RequestContext, access: Access) -> dict[str, Any]:
        """The request a message asks for: its text, and the workspace and approvers its
        metadata names (default: the token's workspace and person)."""
        question = context.get_user_input().strip()
        if not question:
            raise InvalidParamsError(
                message="expected a message with a text part holding the question or goal, "
                "got no text"
            )
        message = context.message
        assert message is not None
        metadata = MessageToDict(message.metadata) if message.HasField("metadata") else {}
        try:
            workspace = workspace_for(access, metadata.get("workspace"))
        except Problem as exc:
            raise InvalidParamsError(message=exc.detail) from None
        approvers = metadata.get("approvers", [access.person])
        return {"question": question, "workspace": workspace, "approvers": approvers}

    async def _client(self) -> Any:
        return self.app.state.client

    async def _follow(
        self, access: Access, request_id: str, task_id: str, publish: Publish
    ) -> None:
        """Publish the request's standing each time it changes, until it ends."""
        last: Standing | None = None
        unknown = 0
        while task_id not in self._stopped:
            try:
                now, artifact, goal_id = await self._standing(access, request_id)
            except (asyncpg.PostgresError, OSError, RPCError) as exc:
                # The request goes on without us: read it again rather than fail the task.
                log.warning("a2a: reading request %r failed, retrying: %r", request_id, exc)
                await asyncio.sleep(POLL_SECONDS)
                continue
            except Problem as exc:  # neither the read model nor Temporal knows the request
                unknown += 1
                if unknown < UNKNOWN_READS:
                    await asyncio.sleep(POLL_SECONDS)
                    continue
                log.warning("a2a: task %r: %s", task_id, exc.detail)
                said = (
                    f"request {request_id!r} was never started (the API stopped as it "
                    "started it): send the message again"
                )
                message = new_text_message(said, role=Role.ROLE_AGENT)
                await publish(TaskState.TASK_STATE_FAILED, message, None, None)
                return
            if now != last and task_id not in self._stopped:
                message = new_text_message(now.message, role=Role.ROLE_AGENT)
                with_artifact = artifact if now.state is A2aState.COMPLETED else None
                if not await publish(_STATES[now.state], message, with_artifact, goal_id):
                    return  # it ended elsewhere: canceled by a call this process did not hold
                last = now
            if now.state.is_terminal:
                return
            await asyncio.sleep(POLL_SECONDS)

    async def resume(self) -> None:
        """Follow again every stored task not yet ended: the API stopped while it ran."""
        pool = self.app.state.pool
        for row in await a2a_tasks.unfinished(pool):
            holder = TokenHolder(row["token_id"], row["person"], frozenset([row["workspace"]]))
            writer = StoredTaskWriter(pool, row["task_id"], row["token_id"])
            follower = asyncio.create_task(
                self._follow_stored(Access.of(holder), row["request_id"], row["task_id"], writer)
            )
            self._resumed.add(follower)
            follower.add_done_callback(self._resumed.discard)
        if self._resumed:
            log.info("a2a: following %d unfinished tasks again", len(self._resumed))

    async def _follow_stored(
        self, access: Access, request_id: str, task_id: str, writer: StoredTaskWriter
    ) -> None:
        try:
            await self._follow(access, request_id, task_id, writer.publish)
        except Exception:  # one task's trouble leaves the others followed
            log.exception("a2a: following task %r again failed", task_id)

    async def aclose(self) -> None:
        """Stop the followers taken up again; their tasks are followed after the next start."""
        for follower in list(self._resumed):
            follower.cancel()
        await asyncio.gather(*self._resumed, return_exceptions=True)

    async def _standing(
        self, access: Access, request_id: str
    ) -> tuple[Standing, tuple[str, str] | None, str | None]:
        """The request's standing now, its artifact (name, text) once it has one, and its
        goal once it has one."""
        pool, client = self.app.state.pool, self.app.state.client
        request = await requests.request(pool, client, access, request_id)
        goal_id, goal, waiting, note = request.get("goal_id"), None, [], None
        if goal_id and request["status"] == "goal_running":
            try:
                goal = await goals.goal(pool, client, access, goal_id)
            except Problem:
                goal = None  # started, not yet recorded
            rows = await pool.fetch(
                "SELECT task_id, title, approvers FROM tasks "
                "WHERE goal_id = $1 AND status = 'awaiting_approval' ORDER BY position",
                goal_id,
            )
            waiting = [Waiting(r["task_id"], r["title"], tuple(r["approvers"])) for r in rows]
            note = await latest_note(pool, goal_id)
        now = standing(request, goal, waiting, note)
        artifact = None
        if now.state is A2aState.COMPLETED:
            body = await read_deliverable(pool, goal_id) if goal_id else None
            if body is not None:
                artifact = ("deliverable", body)
            elif request.get("answer"):
                artifact = ("answer", str(request["answer"]))
        return now, artifact, goal_id

    async def stop(self, task_id: str, holder: TokenHolder) -> None:
        """Stop the task's work: a request in triage is canceled (its triage aborted, no
        goal started), a running goal is stopped, signed as the dashboard's delegate for the
        token's person; refused, saying why and changing nothing, once the request ended or
        when its goal refuses."""
        request_id = request_id_of(task_id)
        client = self.app.state.client
        try:
            request = await requests.request(
                self.app.state.pool, client, Access.of(holder), request_id
            )
        except Problem as exc:
            raise TaskNotCancelableError(message=exc.detail) from None
        goal_id = request.get("goal_id")
        if request["status"] == "triaging":
            try:
                await cancel_request(client, request_id)
            except RPCError as exc:
                raise TaskNotCancelableError(
                    message=f"request {request_id!r} could not be canceled: {exc.message}"
                ) from None
            self._stopped[task_id] = f"request {request_id!r} canceled while triaged"
            return
        if not goal_id or request["status"] != "goal_running":
            raise TaskNotCancelableError(
                message=f"request {request_id!r} is {request['status']}: expected one in "
                "triage or with a running goal"
            )
        payload = {"approver": holder.person, "comment": f"A2A task {task_id} canceled"}
        try:
            await send_update(
                client,
                goal_id,
                "stop",
                self._signed("stop", goal_id, payload),
                pool=self.app.state.pool,
                person=holder.person,
                goal_id=goal_id,
            )
        except Problem as exc:
            raise TaskNotCancelableError(message=exc.detail) from None
        self._stopped[task_id] = f"goal {goal_id!r} stopped"

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Say the task is canceled: `stop` has stopped its work."""
        task_id = str(context.task_id)
        said = self._stopped.pop(task_id, "canceled")
        updater = TaskUpdater(event_queue, task_id, str(context.context_id))
        await updater.cancel(new_text_message(said, role=Role.ROLE_AGENT))

    def forget_stopped(self, task_id: str) -> str | None:
        """What a cancel stopped, if `cancel` has not said it (no call held the task)."""
        return self._stopped.pop(task_id, None)

    def _signed(self, kind: str, goal_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """`payload` signed by the dashboard's key for the token's person, as the API's
        own actions are (interfaces.api.actions.delegated)."""
        payload = payload | {"signed_by": DELEGATE}
        model = CONTROLS[kind].model_validate(payload)
        signature = sign_control(self.app.state.signing_key, kind, goal_id, model)
        return payload | {"signature": signature}


class _Handler(DefaultRequestHandler):
    """The SDK's handler, stopping a task's goal before it cancels the task: a refusal
    then leaves the task as it was, still followed."""

    def __init__(self, executor: GoalkeeperExecutor) -> None:
        self.tasks = StoredTasks(lambda: executor.app.state.pool)
        base = agent_card("http://localhost", [])
        super().__init__(agent_executor=executor, task_store=self.tasks, agent_card=base)
        self.goalkeeper = executor

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Message | Task:
        _new_request(params)
        return await super().on_message_send(params, context)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        _new_request(params)
        async for event in super().on_message_send_stream(params, context):
            yield event

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        task = await self.tasks.get(params.id, context)  # only the token's own tasks
        if task is not None and task.status.state not in TERMINAL_TASK_STATES:
            await self.goalkeeper.stop(params.id, context.state["holder"])
        try:
            canceled = await super().on_cancel_task(params, context)
            said = self.goalkeeper.forget_stopped(params.id)
            if canceled is not None and said is not None:
                # No call of this process held the task (it was followed again after a
                # restart): the SDK canceled it in the store, keeping its last message.
                canceled.status.message.CopyFrom(new_text_message(said, role=Role.ROLE_AGENT))
                holder: TokenHolder = context.state["holder"]
                await a2a_tasks.say_canceled(
                    self.goalkeeper.app.state.pool,
                    params.id,
                    holder.token_id,
                    as_json(bounded(canceled)),
                )
            return canceled
        finally:
            self.goalkeeper.forget_stopped(params.id)


def _new_request(params: SendMessageRequest) -> None:
    """Refuse a message for an existing task: each message is a request of its own, and a
    goal's approvals are decided where approvers decide them."""
    if params.message.task_id:
        raise InvalidParamsError(
            message=f"taskId {params.message.task_id!r}: expected none; each message starts "
            "a request of its own, and approvals and budgets are decided on the dashboard, "
            "with the CLI or through the API"
        )


def install(app: FastAPI, settings: Settings) -> None:
    """Serve Goalkeeper's Agent Card and its A2A JSON-RPC endpoint on the API `app`."""
    handler = _Handler(GoalkeeperExecutor(app, settings.task_queue))
    dispatcher = JsonRpcDispatcher(request_handler=handler, context_builder=_TokenContext())

    async def rpc(request: Request) -> Response:
        request.state.holder = await authenticated(request)
        return await dispatcher.handle_requests(request)

    async def card(request: Request) -> Response:
        runbooks = await list_runbooks(request.app.state.pool)
        return JSONResponse(agent_card_to_dict(agent_card(str(request.base_url), runbooks)))

    opened = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with opened(app) as state:
            await handler.goalkeeper.resume()
            try:
                yield state
            finally:  # before the app's connections close: no task reads a closed pool
                await handler.goalkeeper.aclose()
                await handler.aclose()

    app.router.lifespan_context = lifespan
    app.router.routes.append(Route(RPC_PATH, rpc, methods=["POST"]))
    app.router.routes.append(Route(AGENT_CARD_WELL_KNOWN_PATH, card, methods=["GET"]))
