"""A2A agents as members of a team: registered from their card, given work as A2A messages.

The bridge is a hook of the ordinary agent runner (`agent.py --a2a-bridge`), so an A2A
agent's assignments take the same path as any agent's: woken by NOTIFY, heartbeats while
its A2A task runs, reports signed with a key the bridge holds for it, and the assignment
taken away (at a deadline, on reassignment or when the goal stops) cancels its A2A task.
Every call, at registration and by the bridge, goes only where GOALKEEPER_A2A_ALLOWED_HOSTS
lets it (interfaces/a2a/reach.py).
"""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import parse_agent_card
from a2a.client.client import Client as A2AClient
from a2a.helpers.proto_helpers import get_data_parts, get_text_parts, new_data_part, new_text_part
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    Task,
    TaskState,
)
from pydantic import JsonValue
from temporalio.client import Client as TemporalClient

from goalkeeper.errors import GoalkeeperError
from goalkeeper.limits import MAX_ERROR_CHARS, MAX_NOTE_CHARS, clip
from goalkeeper.signing import public_key_of
from interfaces.a2a.cards import Card, CardRefused, card_json, fetch_card
from interfaces.a2a.reach import AddressRefused, Reach, checked_addresses, guarded_client
from interfaces.agents import registry
from interfaces.agents.runner import SWEEP_INTERVAL, AgentRunner, Work, WorkResult
from interfaces.config import Settings
from interfaces.keyring import key_for
from store import a2a

log = logging.getLogger("goalkeeper.a2a")

MAX_RESULT_CHARS = 4 * 1024 * 1024
"""An A2A agent's artifacts longer than this (as JSON) fail the attempt, named."""
MAX_QUESTION_CHARS = 4000
"""A question longer than this is clipped before approvers see it."""
MAX_ANSWER_CHARS = 4000
POLL_SECONDS = 0.5
"""How often the bridge reads an A2A task's state, and a question's answer."""
CALL_SECONDS = 30.0
"""Longest wait for one call to an A2A agent."""

_DONE = {TaskState.TASK_STATE_COMPLETED}
_FAILED = {
    TaskState.TASK_STATE_FAILED: "failed",
    TaskState.TASK_STATE_REJECTED: "rejected the task",
    TaskState.TASK_STATE_CANCELED: "cancelled the task",
    TaskState.TASK_STATE_AUTH_REQUIRED: "asked for authentication, which Goalkeeper cannot give",
}


class A2AFailure(GoalkeeperError):
    """An A2A agent failed its task, or answered in a way that cannot count as a result."""


async def register(
    pool: asyncpg.Pool,
    agent_id: str,
    url: str,
    workspace: str,
    capacity: int = 1,
    pinned_key: dict[str, Any] | None = None,
    reach: Reach | None = None,
) -> Card:
    """Register the A2A agent at `url` from its card: its skills become the agent's.

    `CardRefused` (nothing registered) when the card cannot be fetched, is malformed, is
    signed and does not verify, or it or an interface it names is at an address `reach`
    (by default GOALKEEPER_A2A_ALLOWED_HOSTS) does not allow.
    """
    reach = reach if reach is not None else Settings.from_env().a2a_reach
    async with guarded_client(reach) as http:
        card = await fetch_card(url, http, pinned_key)
    for interface in card.card.supported_interfaces:
        try:
            await checked_addresses(httpx.URL(interface.url), reach)
        except (AddressRefused, httpx.InvalidURL) as exc:
            raise CardRefused(card.url, f"its interface {interface.url!r}: {exc}") from None
    await registry.register_agent(pool, agent_id, workspace, card.skills, capacity)
    await a2a.store_member(pool, agent_id, card.url, card_json(card.card), card.signed)
    return card


def message_of(work: Work) -> Message:
    """The A2A message that gives an assignment: what to do, in words and as data."""
    task, goal = work.task, work.goal
    text = f"{task.get('title', work.task_id)}\n\n{task.get('description') or ''}".strip()
    text += f"\n\nGoal: {goal.get('title', work.goal_id)}. {goal.get('description') or ''}".rstrip()
    context = {
        "goal_id": work.goal_id,
        "task_id": work.task_id,
        "assignment_id": work.assignment_id,
        "attempt": work.attempt,
        **work.context,
    }
    return Message(
        role=Role.ROLE_USER,
        message_id=work.assignment_id,
        parts=[new_text_part(text), new_data_part(json.loads(json.dumps(context, default=str)))],
    )


def result_of(parts: Sequence[Part], agent_id: str) -> JsonValue:
    """What an A2A agent produced as one result: a lone text or data part as itself, several
    as a list; none, or more than MAX_RESULT_CHARS, fails the attempt."""
    values: list[JsonValue] = [*get_text_parts(parts), *get_data_parts(parts)]
    if not values:
        raise A2AFailure(f"A2A agent {agent_id} completed with no text or data in its artifacts")
    result: JsonValue = values[0] if len(values) == 1 else values
    size = len(json.dumps(result))
    if size > MAX_RESULT_CHARS:
        raise A2AFailure(
            f"A2A agent {agent_id} answered with {size} characters of artifacts, "
            f"expected at most {MAX_RESULT_CHARS}"
        )
    return result


def _text(message: Message | None) -> str:
    return " ".join(get_text_parts(message.parts)) if message is not None else ""


@dataclass
class A2ABridge:
    """The hook that does an A2A agent's assignment by giving it to the agent over A2A."""

    pool: asyncpg.Pool
    http: httpx.AsyncClient
    poll_seconds: float = POLL_SECONDS

    async def __call__(self, work: Work) -> WorkResult:
        row = await a2a.member(self.pool, work.agent_id)
        if row is None:
            raise A2AFailure(f"agent {work.agent_id} is not an A2A agent: register it with --a2a")
        config = ClientConfig(streaming=False, polling=True, httpx_client=self.http)
        client = ClientFactory(config).create(parse_agent_card(dict(row["card"])))
        task_id: str | None = None
        ended = True  # False while the A2A task may go on for a bridge that restarts
        try:
            task = await self._resumed(client, work)
            if task is None:
                reply = await self._send(client, work, message_of(work))
                if reply.HasField("message"):  # an answer at once, with no task to follow
                    return WorkResult(result=result_of(reply.message.parts, work.agent_id))
                task = reply.task
                await a2a.keep_task(self.pool, work.assignment_id, work.agent_id, task.id)
            task_id = task.id
            asked = await a2a.questions_answered(self.pool, work.assignment_id)
            return await self._follow(client, work, task, asked)
        except asyncio.CancelledError:
            if task_id is not None:
                ended = await asyncio.shield(self._taken_away(client, work, task_id))
            raise
        except A2AFailure:
            raise
        except AddressRefused as exc:  # the card names an address not allowed (any longer)
            raise A2AFailure(f"A2A agent {work.agent_id}: {exc}") from None
        except Exception as exc:
            # Whatever the agent sent that the SDK cannot read fails the attempt, named.
            raise A2AFailure(
                f"A2A agent {work.agent_id} at {row['url']}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            if ended and task_id is not None:
                await asyncio.shield(a2a.forget_task(self.pool, work.assignment_id))

    async def _resumed(self, client: A2AClient, work: Work) -> Task | None:
        """The A2A task this assignment became before the bridge restarted, read again;
        None if there is none, or the agent no longer knows it (the work is sent anew)."""
        kept = await a2a.kept_task(self.pool, work.assignment_id)
        if kept is None:
            return None
        try:
            async with asyncio.timeout(CALL_SECONDS):
                task = await client.get_task(GetTaskRequest(id=kept))
        except Exception as exc:
            log.warning(
                "A2A agent %s no longer knows task %s of %s/%s (%s): sending the work again",
                work.agent_id,
                kept,
                work.goal_id,
                work.task_id,
                exc,
            )
            return None
        log.info("following A2A task %s of %s again after a restart", kept, work.agent_id)
        return task

    async def _taken_away(self, client: A2AClient, work: Work, task_id: str) -> bool:
        """Cancel the agent's A2A task if its assignment was taken away; True if so. A
        bridge stopping leaves it running, for the next bridge to follow."""
        if await a2a.still_assigned(self.pool, work.assignment_id):
            log.info("leaving A2A task %s of %s to the next bridge", task_id, work.agent_id)
            return False
        await self._cancel(client, work, task_id)
        return True

    async def _send(self, client: A2AClient, work: Work, message: Message) -> Any:
        request = SendMessageRequest(
            message=message, configuration=SendMessageConfiguration(return_immediately=True)
        )
        async with asyncio.timeout(CALL_SECONDS):
            async for reply in client.send_message(request):
                return reply
        raise A2AFailure(f"A2A agent {work.agent_id} sent no reply to its assignment")

    async def _follow(self, client: A2AClient, work: Work, task: Task, asked: int) -> WorkResult:
        """Read the A2A task until it ends, passing its questions to the approvers (`asked`
        of them answered already, before a restart). What it says while working becomes
        the assignment's notes, each once."""
        said = ""
        while True:
            state = task.status.state
            if state == TaskState.TASK_STATE_WORKING and _text(task.status.message) != said:
                said = _text(task.status.message)
                if said.strip():
                    await work.note(clip(said, MAX_NOTE_CHARS))
            if state in _DONE:
                parts = [part for artifact in task.artifacts for part in artifact.parts]
                return WorkResult(result=result_of(parts, work.agent_id))
            if state in _FAILED:
                why = _text(task.status.message) or "no reason given"
                raise A2AFailure(
                    f"A2A agent {work.agent_id} {_FAILED[state]}: {clip(why, MAX_ERROR_CHARS)}"
                )
            if state == TaskState.TASK_STATE_INPUT_REQUIRED:
                asked += 1
                answer = await self._ask(work, task, asked)
                message = Message(
                    role=Role.ROLE_USER,
                    message_id=str(uuid.uuid5(uuid.UUID(work.assignment_id), f"answer/{asked}")),
                    task_id=task.id,
                    context_id=task.context_id,
                    parts=[new_text_part(answer)],
                )
                reply = await self._send(client, work, message)
                if reply.HasField("task"):
                    task = reply.task
                    continue
            await asyncio.sleep(self.poll_seconds)
            async with asyncio.timeout(CALL_SECONDS):
                task = await client.get_task(GetTaskRequest(id=task.id))

    async def _ask(self, work: Work, task: Task, asked: int) -> str:
        """Record the agent's question and wait for an approver's answer."""
        question = clip(_text(task.status.message) or "(no question given)", MAX_QUESTION_CHARS)
        question_id = uuid.uuid5(uuid.UUID(work.assignment_id), f"question/{asked}")
        await a2a.ask(
            self.pool,
            question_id,
            {
                "assignment_id": work.assignment_id,
                "agent_id": work.agent_id,
                "goal_id": work.goal_id,
                "task_id": work.task_id,
            },
            task.id,
            question,
        )
        log.info(
            "A2A agent %s asks on %s/%s: %s", work.agent_id, work.goal_id, work.task_id, question
        )
        while True:
            answer = await a2a.answer_of(self.pool, question_id)
            if answer is not None:
                return answer
            await asyncio.sleep(self.poll_seconds)

    async def _cancel(self, client: A2AClient, work: Work, task_id: str) -> None:
        """Cancel the agent's A2A task: its assignment was taken away."""
        try:
            async with asyncio.timeout(CALL_SECONDS):
                await client.cancel_task(CancelTaskRequest(id=task_id))
        except Exception as exc:  # the agent is gone or the task ended: nothing to stop
            log.warning("could not cancel A2A task %s of %s: %s", task_id, work.agent_id, exc)
        else:
            log.info("cancelled A2A task %s of %s", task_id, work.agent_id)


async def serve_members(
    client: TemporalClient,
    pool: asyncpg.Pool,
    workspace: str,
    stop: asyncio.Event,
    sweep_interval: float = SWEEP_INTERVAL,
    reach: Reach | None = None,
) -> AgentRunner:
    """Serve the assignments of every A2A agent of a workspace until stopped, taking on
    those registered meanwhile at each sweep; the bridge calls only what `reach` (by
    default GOALKEEPER_A2A_ALLOWED_HOSTS) allows.

    Each agent gets a key of its own, kept on this machine and registered as `agent.py`
    registers its agents' keys, so the reports made for it are signed as any agent's.
    """
    agent_ids: list[str] = []
    keys: dict[str, str] = {}
    refused: set[str] = set()
    await _join(pool, workspace, agent_ids, keys, refused)
    if not agent_ids:
        log.warning(
            "no A2A agents in workspace %r yet: register one with "
            "'python starter.py agent register NAME --a2a URL'",
            workspace,
        )
    reach = reach if reach is not None else Settings.from_env().a2a_reach
    async with guarded_client(reach) as http:
        # The runner reads these same list and dict, so agents joined later are served.
        runner = AgentRunner(
            client, pool, agent_ids, A2ABridge(pool, http), sweep_interval=sweep_interval, keys=keys
        )
        joining = asyncio.create_task(
            _keep_joining(pool, workspace, agent_ids, keys, refused, stop, sweep_interval)
        )
        try:
            await runner.run(stop)
        finally:
            joining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await joining
            await registry.take_offline(pool, agent_ids)
    return runner


async def _join(
    pool: asyncpg.Pool,
    workspace: str,
    agent_ids: list[str],
    keys: dict[str, str],
    refused: set[str],
) -> None:
    """Take on the workspace's A2A agents not yet served, registering a key for each."""
    for row in await a2a.members(pool, workspace):
        agent_id = row["agent_id"]
        if agent_id in keys or agent_id in refused:
            continue
        key = key_for("agent", agent_id)
        try:
            await registry.register_agent(
                pool,
                agent_id,
                workspace,
                row["skills"],
                row["capacity"],
                public_key=public_key_of(key),
            )
        except registry.RegistrationRefused as exc:  # e.g. another bridge holds its key
            refused.add(agent_id)  # not asked again: its work is left to whoever holds its key
            log.warning("not bridging A2A agent %s: %s", agent_id, exc)
            continue
        keys[agent_id] = key
        agent_ids.append(agent_id)
        log.info("bridging A2A agent %s (%s) of workspace %r", agent_id, row["url"], workspace)


async def _keep_joining(
    pool: asyncpg.Pool,
    workspace: str,
    agent_ids: list[str],
    keys: dict[str, str],
    refused: set[str],
    stop: asyncio.Event,
    interval: float,
) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            await _join(pool, workspace, agent_ids, keys, refused)
        except (OSError, asyncpg.PostgresError, GoalkeeperError) as exc:
            log.warning("could not take on new A2A agents: %s", exc)
