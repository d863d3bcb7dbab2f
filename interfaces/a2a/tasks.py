"""Goalkeeper's A2A tasks kept in PostgreSQL (store.a2a_tasks), per token, each bounded in
size, so they outlive the API process; and the writer that follows a task again after a
restart, when no protocol call holds it."""

import uuid
from collections.abc import Callable

import asyncpg
from a2a.helpers import new_text_part
from a2a.server.agent_execution.active_task import TERMINAL_TASK_STATES
from a2a.server.context import ServerCallContext
from a2a.server.tasks import TaskStore
from a2a.types.a2a_pb2 import (
    Artifact,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.timestamp_pb2 import Timestamp

from store import a2a_tasks

MAX_HISTORY = 20
"""Messages a stored task keeps: the one that asked, and the latest status messages
before the current one (a goal followed for days says something at each change)."""

MAX_ARTIFACT_CHARS = 512 * 1024
"""An artifact's text kept at most; a longer deliverable is read whole from the API."""

MAX_PAGE = 100
"""Tasks one ListTasks page holds at most."""


def bounded(task: Task) -> Task:
    """A copy of `task` no larger than a stored task may be: its first message and the
    latest ones, and each artifact's text clipped, saying where the whole of it is."""
    kept = Task()
    kept.CopyFrom(task)
    if len(kept.history) > MAX_HISTORY:
        del kept.history[1 : len(kept.history) - (MAX_HISTORY - 1)]
    for artifact in kept.artifacts:
        for part in artifact.parts:
            if part.HasField("text") and len(part.text) > MAX_ARTIFACT_CHARS:
                part.text = (
                    part.text[:MAX_ARTIFACT_CHARS] + f"\n\n[clipped at {MAX_ARTIFACT_CHARS} "
                    "characters: read the whole deliverable at GET /api/v1/goals/GOAL/deliverable]"
                )
    return kept


def as_json(task: Task) -> dict[str, object]:
    return MessageToDict(task)


def as_task(raw: dict[str, object]) -> Task:
    return ParseDict(raw, Task(), ignore_unknown_fields=True)


class StoredTasks(TaskStore):
    """a2a-sdk's task store on Goalkeeper's PostgreSQL: a task is its token's own (the
    call's user), so another token's task is not found."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    async def save(self, task: Task, context: ServerCallContext) -> None:
        state = task.status.state
        await a2a_tasks.save(
            self._pool(),
            task.id,
            context.user.user_name,
            TaskState.Name(state),
            state in TERMINAL_TASK_STATES,
            as_json(bounded(task)),
        )

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        raw = await a2a_tasks.task_of(self._pool(), task_id, context.user.user_name)
        return None if raw is None else as_task(raw)

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        token = params.page_token or "0"
        if not token.isdigit():
            raise InvalidParamsError(message=f"pageToken {token!r}: expected one from a ListTasks")
        size = min(params.page_size or DEFAULT_LIST_TASKS_PAGE_SIZE, MAX_PAGE)
        offset = int(token)
        state = TaskState.Name(params.status) if params.status else None
        raws, total = await a2a_tasks.tasks_of(
            self._pool(),
            context.user.user_name,
            context_id=params.context_id or None,
            state=state,
            offset=offset,
            limit=size,
        )
        after = offset + len(raws)
        return ListTasksResponse(
            tasks=[as_task(r) for r in raws],
            next_page_token=str(after) if after < total else "",
            total_size=total,
            page_size=size,
        )

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        await a2a_tasks.forget(self._pool(), task_id, context.user.user_name)


class StoredTaskWriter:
    """Writes a followed task's new states straight to the store, as a restarted API does
    for the tasks it follows again; a write that repeats the stored state is skipped, so
    two followers of one task say each change once."""

    def __init__(self, pool: asyncpg.Pool, task_id: str, token_id: str) -> None:
        self.pool, self.task_id, self.token_id = pool, task_id, token_id

    async def publish(
        self,
        state: TaskState,
        message: Message,
        artifact: tuple[str, str] | None,
        goal_id: str | None,
    ) -> bool:
        """Keep the task's new state (and its artifact); False once the task has ended."""
        raw = await a2a_tasks.task_of(self.pool, self.task_id, self.token_id)
        if raw is None:
            return False
        task = as_task(raw)
        if task.status.state in TERMINAL_TASK_STATES:
            return False
        if task.status.state == state and task.status.message.parts == message.parts:
            return True
        if task.status.HasField("message"):
            task.history.append(task.status.message)
        if artifact is not None:
            name, text = artifact
            task.artifacts.append(
                Artifact(artifact_id=str(uuid.uuid4()), name=name, parts=[new_text_part(text)])
            )
        message.task_id, message.context_id = task.id, task.context_id
        stamp = Timestamp()
        stamp.GetCurrentTime()
        task.status.CopyFrom(TaskStatus(state=state, message=message, timestamp=stamp))
        return await a2a_tasks.save(
            self.pool,
            self.task_id,
            self.token_id,
            TaskState.Name(state),
            state in TERMINAL_TASK_STATES,
            as_json(bounded(task)),
            goal_id,
        )
