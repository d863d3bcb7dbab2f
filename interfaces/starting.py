"""Starting work as a person asks for it: a request (a question) or a goal (a spec, or a
runbook and its parameters). Each is checked first as its workflow will check it, so a
refusal starts nothing; the CLI and the HTTP API both start work here."""

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from goalkeeper.errors import GoalkeeperError, InvalidGoalSpec
from goalkeeper.models import GoalSpec, Id, describe_validation_error
from goalkeeper.requests import RequestSpec
from goalkeeper.runbooks import runbook_named
from goalkeeper.validation import validate_goal_spec
from store.runbooks import fetch_runbook
from workflows.goal import GoalWorkflow
from workflows.request import MAX_REQUEST_ID, RequestWorkflow

INLINE_SPEC_BYTES = 256 * 1024
"""Specs larger than this, as JSON, go to the goal by reference: nothing Goalkeeper
sends to Temporal is larger (Temporal itself caps a workflow's input at 2 MiB)."""

ClientSource = Callable[[], Awaitable[Client]]
PoolSource = Callable[[], Awaitable[asyncpg.Pool]]
"""Connect to Temporal or PostgreSQL only when needed: the CLI refuses bad input without
either, and opens a pool only for a runbook or a large spec."""

_ID = TypeAdapter(Id)


class InvalidRequest(GoalkeeperError):
    """A request that cannot start: the message names the bad value and what was expected."""

    def __init__(self, request_id: str, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id


class AlreadyStarted(GoalkeeperError):
    """A request or goal id already used: Temporal refuses to start it again."""

    def __init__(self, kind: str, workflow_id: str) -> None:
        super().__init__(f"{kind} {workflow_id!r} already exists; choose another id")
        self.kind, self.workflow_id = kind, workflow_id


def id_problem(field: str, value: str) -> str | None:
    """Why `value` is not an id (letters, digits and `_ . : @ -`), naming `field`."""
    try:
        _ID.validate_python(value)
    except ValidationError as exc:
        return f"{field}: {exc.errors()[0]['msg']}, got {value!r}"
    return None


def check_request(spec: dict[str, Any], request_id: str) -> RequestSpec:
    """The request `spec` as its workflow reads it, under the id `request_id`.

    Raises:
        InvalidRequest: naming the bad value (the id, or a field of the spec).
    """
    problem = id_problem("request_id", request_id)
    if problem is not None:
        raise InvalidRequest(request_id, f"invalid request: {problem}")
    if len(request_id) > MAX_REQUEST_ID:
        raise InvalidRequest(
            request_id,
            f"invalid request: request_id {request_id!r}: expected at most {MAX_REQUEST_ID} "
            f"characters (room for its goals' suffixes), got {len(request_id)}",
        )
    try:
        return RequestSpec.model_validate(spec)
    except ValidationError as exc:
        raise InvalidRequest(request_id, describe_validation_error(exc, "request")) from None


async def start_request(
    client: ClientSource, task_queue: str, spec: dict[str, Any], request_id: str | None = None
) -> str:
    """Start a `RequestWorkflow` for `spec` once it is checked; its id (generated if not
    given).

    Raises:
        InvalidRequest: the spec or id is invalid; nothing started.
        AlreadyStarted: a request of that id exists.
    """
    request_id = request_id or f"request-{uuid.uuid4().hex[:8]}"
    request = check_request(spec, request_id)  # the workflow checks again; this answers sooner
    try:
        await (await client()).start_workflow(
            RequestWorkflow.run,
            spec,
            id=request_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=request.question[:200],
        )
    except WorkflowAlreadyStartedError as exc:
        raise AlreadyStarted("request", request_id) from exc
    return request_id


async def cancel_request(client: Client, request_id: str) -> None:
    """Ask a request to end canceled: Temporal's cancellation, which `RequestWorkflow`
    takes by aborting the goal running for it (its triage or its work) and starting none."""
    await client.get_workflow_handle(request_id).cancel()


async def store_spec(pool: asyncpg.Pool, spec: dict[str, Any]) -> str:
    """Keep a goal spec in PostgreSQL; the goal is started with `{"spec_ref": <id>}`."""
    spec_id = str(uuid.uuid4())
    await pool.execute(
        "INSERT INTO goal_specs (spec_id, spec) VALUES ($1::uuid, $2)", spec_id, spec
    )
    return spec_id


async def check_goal(pool: PoolSource, spec: dict[str, Any], goal_id: str) -> GoalSpec:
    """The goal `spec` as its workflow reads it, with the stored runbook it names.

    Raises:
        InvalidGoalSpec: naming every problem and the value that caused it.
    """
    problem = id_problem("goal_id", goal_id)
    if problem is not None:
        raise InvalidGoalSpec(goal_id, f"invalid goal spec: {problem}")
    named = runbook_named(spec)
    runbook = None if named is None else await fetch_runbook(await pool(), *named)
    return validate_goal_spec(spec, goal_id, runbook)


async def start_goal(
    client: ClientSource,
    pool: PoolSource,
    task_queue: str,
    spec: dict[str, Any],
    goal_id: str | None = None,
) -> str:
    """Start a `GoalWorkflow` for `spec` once it is checked, by reference if it is large;
    its id: `goal_id` if given, else the spec's, else a new one.

    Raises:
        InvalidGoalSpec: the spec is invalid (its id included); nothing started.
        AlreadyStarted: a goal of that id exists.
    """
    if goal_id is not None and spec.get("goal_id") not in (None, goal_id):
        spec = {**spec, "goal_id": goal_id}
    named = spec.get("goal_id")
    if not goal_id:
        # A spec's goal_id that is no string is left for the spec's check to refuse.
        goal_id = named if isinstance(named, str) and named else f"goal-{uuid.uuid4().hex[:8]}"
    await check_goal(pool, spec, goal_id)  # the workflow checks again; this answers sooner
    argument: dict[str, Any] = spec
    if len(json.dumps(spec)) > INLINE_SPEC_BYTES:
        # Too large to pass to Temporal: stored, and the goal receives its reference.
        argument = {"spec_ref": await store_spec(await pool(), spec)}
    try:
        await (await client()).start_workflow(
            GoalWorkflow.run,
            argument,
            id=goal_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=str(spec.get("title", ""))[:200],
        )
    except WorkflowAlreadyStartedError as exc:
        raise AlreadyStarted("goal", goal_id) from exc
    return goal_id
