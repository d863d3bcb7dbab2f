"""What a person does through the API, as their token's person: decisions, budgets,
feedback, suggestions. Each goes through the same update or code path as the CLI, so the
workflows' validators answer the person, as problem details. A token acts only on goals of
its workspaces: any other goal is unknown to it."""

import uuid
from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from goalkeeper.controls import CONTROLS
from goalkeeper.feedback import InvalidFeedback, feedback
from goalkeeper.limits import MAX_COMMENT_CHARS, MAX_EVENT_MESSAGE_CHARS, clip
from goalkeeper.models import Id, TaskView, describe_validation_error
from goalkeeper.records import Event, EventKind
from goalkeeper.signing import digest, sign_control, sign_decision
from goalkeeper.statuses import Decision, TaskStatus
from goalkeeper.suggestions import InvalidSuggestionDecision, SuggestionStatus
from interfaces.api.auth import DELEGATE, Access, Actor, act
from interfaces.api.goals import UNKNOWN_GOAL, known_goal
from interfaces.api.problems import Problem, answers
from interfaces.api.state import Pool, Temporal
from interfaces.api.suggestions import own_suggestion
from store.feedback import give_feedback
from store.rows import insert_event
from store.suggestions import decide_suggestion
from workflows.task import TaskWorkflow

router = APIRouter(tags=["actions"], dependencies=[act])

NOT_RUNNING = {404: "no goal of that id that the token may see, or its workflow has ended"}
UNDECIDED = {409: "no open suggestion of that id (or prefix) that the token may see"}
REFUSED = {409: "refused by the workflow (its own message, `workflow_id`)"}


class DecisionBody(BaseModel):
    """An approver's decision on a task's result (or, on a failed task, on retrying it)."""

    decision: Decision
    comment: str = ""
    result_digest: str | None = None
    """The digest of the result the person saw (the inbox sends it): refused if the task's
    result has changed since."""


class BudgetBody(BaseModel):
    """A higher budget for a goal: USD, tokens or both."""

    usd: float | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)
    comment: str = ""


class CommentBody(BaseModel):
    """Why a person acts, for the audit trail."""

    comment: str = ""


class ReassignBody(BaseModel):
    """Take a task from its agent: to `agent` where named, else to another that can take it."""

    comment: str = Field(default="", max_length=MAX_COMMENT_CHARS)
    agent: Id | None = None


class CancelBody(BaseModel):
    """End a task that has not ended, without a result; why, for the audit trail."""

    comment: str = Field(default="", max_length=MAX_COMMENT_CHARS)


class FeedbackBody(BaseModel):
    """A rating from 1 to 5 and a comment on a goal's or one of its task's work."""

    goal_id: str
    task_id: str | None = None
    rating: int
    comment: str = ""


async def send_update(
    client: Client,
    workflow_id: str,
    name: str,
    payload: Any,
    *,
    pool: asyncpg.Pool,
    person: str | None,
    goal_id: str,
    task_id: str | None = None,
) -> Any:
    """Send an update as `person` and return its answer; its validator's refusal becomes a
    409, and an `action_refused` event in the goal's trail says who was refused and why."""
    try:
        return await client.get_workflow_handle(workflow_id).execute_update(name, payload)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        await insert_event(
            pool,
            Event(
                event_id=str(uuid.uuid4()),
                kind=EventKind.ACTION_REFUSED,
                message=f"{name} by {person!r} refused: {clip(message, MAX_EVENT_MESSAGE_CHARS)}",
                goal_id=goal_id,
                task_id=task_id,
                detail={"person": person, "update": name, "workflow_id": workflow_id},
            ),
        )
        raise Problem(409, "Refused by the workflow", message, workflow_id=workflow_id) from exc
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise Problem(
                404,
                "No running workflow",
                f"no running workflow {workflow_id!r}: it has ended or never started",
            ) from exc
        raise


def delegated(request: Request, kind: str, goal_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` signed by the dashboard's own key on behalf of the token's person, as it
    signs decisions: a goal that requires signatures takes it from the person it names."""
    payload = payload | {"signed_by": DELEGATE}
    model = CONTROLS[kind].model_validate(payload)
    signature = sign_control(request.app.state.signing_key, kind, goal_id, model)
    return payload | {"signature": signature}


@router.get("/me")
async def me(actor: Actor) -> dict[str, Any]:
    """Whom the request's token acts as, and the workspaces it sees (null: all): a way to
    check a token before acting with it."""
    return {"person": actor.person, "workspaces": actor.scope}


@router.post("/goals/{goal_id:path}/tasks/{task_id}/decision")
@answers(
    {
        404: "no goal of that id that the token may see, no such started task, or its "
        "workflow has ended",
        409: "refused by the workflow, the task has ended, or its result changed",
    }
)
async def decide(
    request: Request,
    pool: Pool,
    client: Temporal,
    actor: Actor,
    goal_id: str,
    task_id: str,
    body: DecisionBody,
) -> dict[str, Any]:
    """Approve or reject a task's result as the token's person; a failed task's decision
    (retry it or give up) goes to its goal, as `starter.py approve|reject` does."""
    await known_goal(pool, actor, goal_id)
    payload = {"approver": actor.person, "decision": body.decision.value, "comment": body.comment}
    task = f"{goal_id}/{task_id}"
    try:
        view = await client.get_workflow_handle(task).query(TaskWorkflow.status)
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        raise Problem(
            404, "Unknown task", f"no task workflow {task!r}: expected a started task"
        ) from exc
    if view.status is TaskStatus.FAILED:  # retry it or give up, on the attempt that failed
        retry = {**payload, "task_id": task_id, "attempt": view.attempts}
        retry = delegated(request, "retry", goal_id, retry)
        answer = await send_update(
            client, goal_id, "decide", retry, pool=pool, person=actor.person, goal_id=goal_id
        )
        return {"goal": answer}
    if view.status.is_terminal:
        raise Problem(409, "Task ended", f"task {task!r} already ended ({view.status})")
    seen, now = body.result_digest, digest(view.result)
    if seen is not None and seen != now:
        raise Problem(
            409,
            "Result changed",
            f"task {task!r} has a new result (digest {now[:12]}) since the one you saw "
            f"({seen[:12]}); read it again before deciding",
        )
    payload |= {"signed_by": DELEGATE}
    payload["signature"] = sign_decision(request.app.state.signing_key, view, payload)
    answer = await send_update(
        client,
        task,
        "decide",
        payload,
        pool=pool,
        person=actor.person,
        goal_id=goal_id,
        task_id=task_id,
    )
    return {"task": answer}


@router.post("/goals/{goal_id:path}/budget")
@answers(NOT_RUNNING | REFUSED | {422: "neither usd nor tokens"})
async def raise_budget(
    request: Request, pool: Pool, client: Temporal, actor: Actor, goal_id: str, body: BudgetBody
) -> dict[str, Any]:
    """Raise a goal's budget as one of its approvers; a goal paused at its budget goes on."""
    await known_goal(pool, actor, goal_id)
    if body.usd is None and body.tokens is None:
        raise Problem(422, "Invalid request body", "expected usd, tokens or both, got neither")
    payload: dict[str, Any] = {"approver": actor.person, "comment": body.comment}
    payload |= {k: v for k, v in (("usd", body.usd), ("tokens", body.tokens)) if v is not None}
    payload = delegated(request, "raise_budget", goal_id, payload)
    answer: dict[str, Any] = await send_update(
        client, goal_id, "raise_budget", payload, pool=pool, person=actor.person, goal_id=goal_id
    )
    return answer


@router.post("/goals/{goal_id:path}/stop")
@answers(NOT_RUNNING | REFUSED)
async def stop(
    request: Request,
    pool: Pool,
    client: Temporal,
    actor: Actor,
    goal_id: str,
    body: CommentBody | None = None,
) -> dict[str, Any]:
    """Stop a goal as one of its approvers: running tasks are aborted, the rest skipped."""
    await known_goal(pool, actor, goal_id)
    payload = {"approver": actor.person, "comment": (body or CommentBody()).comment}
    payload = delegated(request, "stop", goal_id, payload)
    answer: dict[str, Any] = await send_update(
        client, goal_id, "stop", payload, pool=pool, person=actor.person, goal_id=goal_id
    )
    return answer


TASK_CONTROL = {
    404: "no goal of that id that the token may see, no such task in it, or its workflow has ended",
    409: "refused by the workflow: the person may not, the task has ended or is not held "
    "by an agent, or the agent named cannot take it",
}


@router.post("/goals/{goal_id:path}/tasks/{task_id}/reassign")
@answers(TASK_CONTROL)
async def reassign(
    request: Request,
    pool: Pool,
    client: Temporal,
    actor: Actor,
    goal_id: str,
    task_id: str,
    body: ReassignBody,
) -> dict[str, Any]:
    """Take a task from its agent as one of the goal's approvers, as `starter.py task
    reassign` does: to `agent` where named, else to another agent that can take it. The
    agent's later report for the assignment it lost is refused as stale."""
    await known_goal(pool, actor, goal_id)
    await _known_task(pool, goal_id, task_id)
    payload: dict[str, Any] = {"task_id": task_id, "approver": actor.person}
    payload |= {"agent": body.agent, "comment": body.comment}
    view = await _task_now(client, goal_id, task_id)
    if view is not None and view.assignment_id is not None:  # the one it takes, so once
        payload["assignment_id"] = view.assignment_id
    return await _task_control(request, pool, client, actor, "reassign", goal_id, task_id, payload)


@router.post("/goals/{goal_id:path}/tasks/{task_id}/cancel")
@answers(TASK_CONTROL)
async def cancel(
    request: Request,
    pool: Pool,
    client: Temporal,
    actor: Actor,
    goal_id: str,
    task_id: str,
    body: CancelBody | None = None,
) -> dict[str, Any]:
    """Cancel a task that has not ended as one of the goal's approvers, as `starter.py task
    cancel` does: it ends skipped, its agent released, and what depends on it is skipped,
    as when a failed task is given up; the goal goes on with the rest, or ends."""
    await known_goal(pool, actor, goal_id)
    await _known_task(pool, goal_id, task_id)
    comment = (body or CancelBody()).comment
    payload = {"task_id": task_id, "approver": actor.person, "comment": comment}
    return await _task_control(request, pool, client, actor, "cancel", goal_id, task_id, payload)


async def _task_control(
    request: Request,
    pool: Pool,
    client: Temporal,
    actor: Actor,
    kind: str,
    goal_id: str,
    task_id: str,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """Send a reassign or cancel to the goal as its `kind`_task update, signed as delegate."""
    payload = _delegated(request, kind, goal_id, payload)
    answer: dict[str, Any] = await send_update(
        client,
        goal_id,
        f"{kind}_task",
        payload,
        pool=pool,
        person=actor.person,
        goal_id=goal_id,
        task_id=task_id,
    )
    return answer


async def _known_task(pool: Pool, goal_id: str, task_id: str) -> None:
    """A 404 naming the goal's tasks, unless it has `task_id`."""
    known = await pool.fetchval(
        "SELECT true FROM tasks WHERE goal_id = $1 AND task_id = $2", goal_id, task_id
    )
    if known:
        return
    some = await pool.fetch(
        "SELECT task_id FROM tasks WHERE goal_id = $1 ORDER BY task_id LIMIT 20", goal_id
    )
    raise Problem(
        404,
        "Unknown task",
        f"goal {goal_id!r} has no task {clip(task_id, 200)!r}; expected one of "
        f"{[r['task_id'] for r in some]}" + (" (the first 20)" if len(some) == 20 else ""),
    )


async def _task_now(client: Client, goal_id: str, task_id: str) -> TaskView | None:
    """The task as its workflow holds it now; None before it starts."""
    try:
        view: TaskView = await client.get_workflow_handle(f"{goal_id}/{task_id}").query(
            TaskWorkflow.status
        )
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        return None
    return view


def _delegated(
    request: Request, kind: str, goal_id: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """`delegated`, with a request the goal could never take (a person's name that is no
    id) said as a 422 rather than failing the call."""
    try:
        return delegated(request, kind, goal_id, payload)
    except ValidationError as exc:
        raise Problem(422, "Invalid request", describe_validation_error(exc, kind)) from exc


@router.post("/feedback", status_code=201)
@answers(UNKNOWN_GOAL | {422: "a rating out of 1-5, or a task or comment that cannot be kept"})
async def give(pool: Pool, actor: Actor, body: FeedbackBody) -> dict[str, Any]:
    """Rate a goal's or a task's work as the token's person, as `starter.py feedback` does."""
    await known_goal(pool, actor, body.goal_id)
    try:
        given = feedback(body.goal_id, body.task_id, str(actor.person), body.rating, body.comment)
        return await give_feedback(pool, given)
    except InvalidFeedback as exc:
        raise Problem(422, "Invalid feedback", str(exc)) from exc


@router.post("/suggestions/{suggestion_id}/accept")
@answers(UNDECIDED)
async def accept(
    pool: Pool, actor: Actor, suggestion_id: str, body: CommentBody | None = None
) -> dict[str, Any]:
    """Accept an open suggestion (its id or first 4+ characters) as the token's person."""
    chosen = await own_suggestion(pool, actor, suggestion_id)
    return await _decide_suggestion(pool, actor, chosen, SuggestionStatus.ACCEPTED, body)


@router.post("/suggestions/{suggestion_id}/dismiss")
@answers(UNDECIDED)
async def dismiss(
    pool: Pool, actor: Actor, suggestion_id: str, body: CommentBody | None = None
) -> dict[str, Any]:
    """Dismiss an open suggestion (its id or first 4+ characters) as the token's person."""
    chosen = await own_suggestion(pool, actor, suggestion_id)
    return await _decide_suggestion(pool, actor, chosen, SuggestionStatus.DISMISSED, body)


async def _decide_suggestion(
    pool: Pool,
    actor: Access,
    suggestion_id: str,
    status: SuggestionStatus,
    body: CommentBody | None,
) -> dict[str, Any]:
    comment = (body or CommentBody()).comment
    try:
        return await decide_suggestion(pool, suggestion_id, status, str(actor.person), comment)
    except InvalidSuggestionDecision as exc:
        raise Problem(409, "Suggestion not decided", str(exc)) from exc
