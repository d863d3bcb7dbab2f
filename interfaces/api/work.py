"""Work started as the token's person: a question (a request), a goal from a spec or from
a runbook and its parameters, and tasks added to a running goal. Each goes through the
CLI's own code path (interfaces.starting, the goal's `add_tasks` update), and a token
starts work only in its own workspaces."""

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from temporalio.client import Client

from goalkeeper.errors import InvalidGoalSpec
from goalkeeper.models import describe_validation_error
from interfaces.api.actions import REFUSED, delegated, send_update
from interfaces.api.auth import Access, Actor, act
from interfaces.api.goals import UNKNOWN_GOAL, known_goal
from interfaces.api.problems import Problem, answers
from interfaces.api.state import Pool, Temporal
from interfaces.config import Settings
from interfaces.starting import (
    AlreadyStarted,
    InvalidRequest,
    start_goal,
    start_request,
)

API = "/api/v1"


class RequestBody(BaseModel):
    """A question, as `starter.py ask` takes it; checked as its workflow checks it."""

    model_config = ConfigDict(extra="forbid")

    question: str
    workspace: str | None = None
    """Default: the token's workspace if it has one only, else `default`."""
    approvers: list[str] = []
    request_id: str | None = None
    """Default: generated."""


class AddedTasksBody(BaseModel):
    """Tasks for a running goal, each as a spec's task, and why they are added."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[dict[str, JsonValue]] = Field(min_length=1)
    reason: str


def workspace_for(actor: Access, asked: Any) -> Any:
    """The workspace work starts in: the one asked for, else the token's only one, else
    `default`; refused (403) unless the token may act there. (What is not a name at all
    is left for the spec's own check to refuse.)"""
    if asked is None:
        only = sorted(actor.workspaces or ())
        asked = only[0] if len(only) == 1 else "default"
    if isinstance(asked, str) and not actor.sees(asked):
        raise Problem(
            403,
            "Workspace not yours",
            f"workspace {asked!r}: expected one of this token's workspaces {actor.scope}",
            workspace=asked,
        )
    return asked


NOT_YOURS = {403: "a workspace that is not one of the token's"}


def router_for(settings: Settings) -> APIRouter:
    """The routes that start work, on `settings`' task queue; each needs a person's token."""
    router = APIRouter(tags=["work"], dependencies=[act])
    queue = settings.task_queue

    @router.post("/requests", status_code=202)
    @answers(NOT_YOURS | {409: "a request id used before"})
    async def ask(
        client: Temporal, actor: Actor, body: RequestBody, response: Response
    ) -> dict[str, Any]:
        """Ask a question as the token's person, as `starter.py ask` does: a triage agent
        answers it or sets a goal. Read it at the `Location` answered."""
        spec = {
            "question": body.question,
            "workspace": workspace_for(actor, body.workspace),
            "approvers": body.approvers,
        }
        try:
            request_id = await start_request(_given(client), queue, spec, body.request_id)
        except InvalidRequest as exc:
            raise Problem(422, "Invalid request", str(exc), request_id=exc.request_id) from None
        except AlreadyStarted as exc:
            raise Problem(409, "Already exists", str(exc), request_id=exc.workflow_id) from None
        location = f"{API}/requests/{request_id}"
        response.headers["Location"] = location
        return {"request_id": request_id, "location": location}

    @router.post("/goals", status_code=202)
    @answers(NOT_YOURS | {409: "a goal id used before"})
    async def start(
        pool: Pool,
        client: Temporal,
        actor: Actor,
        spec: dict[str, JsonValue],
        response: Response,
    ) -> dict[str, Any]:
        """Start a goal as `starter.py goal start` does, from a goal spec: its tasks, or a
        stored `runbook` and its `parameters`, or a description to plan from. Read it at
        the `Location` answered."""
        spec = {**spec, "workspace": workspace_for(actor, spec.get("workspace"))}
        try:
            goal_id = await start_goal(_given(client), _given(pool), queue, spec)
        except InvalidGoalSpec as exc:
            raise Problem(422, "Invalid goal spec", str(exc), goal_id=exc.goal_id) from None
        except AlreadyStarted as exc:
            raise Problem(409, "Already exists", str(exc), goal_id=exc.workflow_id) from None
        location = f"{API}/goals/{goal_id}"
        response.headers["Location"] = location
        return {"goal_id": goal_id, "location": location}

    @router.post("/goals/{goal_id:path}/tasks", status_code=201)
    @answers(UNKNOWN_GOAL | REFUSED)
    async def add_tasks(
        request: Request,
        pool: Pool,
        client: Temporal,
        actor: Actor,
        goal_id: str,
        body: AddedTasksBody,
        response: Response,
    ) -> dict[str, Any]:
        """Add tasks to a running goal as the token's person, through its `add_tasks` update,
        signed on their behalf (a goal that requires signatures takes them only from
        its approvers or its tasks' agents); the goal's progress after them."""
        await known_goal(pool, actor, goal_id)
        payload: dict[str, Any] = {
            "tasks": body.tasks,
            "added_by": actor.person,
            "reason": body.reason,
        }
        try:
            payload = delegated(request, "add_tasks", goal_id, payload)
        except ValidationError as exc:
            detail = describe_validation_error(exc, "add_tasks request")
            raise Problem(422, "Invalid tasks", detail, goal_id=goal_id) from None
        answer = await send_update(
            client, goal_id, "add_tasks", payload, pool=pool, person=actor.person, goal_id=goal_id
        )
        location = f"{API}/goals/{goal_id}/tasks"
        response.headers["Location"] = location
        return {"goal_id": goal_id, "location": location, "progress": answer}

    return router


def _given(value: Client | asyncpg.Pool) -> Callable[[], Awaitable[Any]]:
    """A connection the app already holds, as the lazy source interfaces.starting takes."""

    async def source() -> Client | asyncpg.Pool:
        return value

    return source
