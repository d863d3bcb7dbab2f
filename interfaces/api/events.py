"""A goal's events as a Server-Sent Events stream: those already kept, then each new one."""

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import anyio
import asyncpg
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from activities.event_feed import EVENTS_CHANNEL, events_after, events_by_seq, parse_notice
from interfaces.api.goals import known_goal
from interfaces.api.state import Pool

router = APIRouter(tags=["goals"])

PAGE = 500
"""Kept events are read this many at a time, so no read is unbounded."""

KEEPALIVE_SECONDS = 15.0
"""A comment line this long after the last message keeps proxies from closing the stream."""


@router.get(
    "/goals/{goal_id:path}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def goal_events(
    pool: Pool,
    goal_id: str,
    after: Annotated[int | None, Query(ge=0, description="send events after this seq")] = None,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> StreamingResponse:
    """A goal's events after `Last-Event-ID` (or `after`), then each new one as it is kept:
    `id: SEQ`, `event: KIND`, `data: JSON`. A reconnecting client misses nothing."""
    await known_goal(pool, goal_id)
    start = last_event_id if last_event_id is not None else after or 0
    return _EventStream(
        stream(pool, goal_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def stream(pool: asyncpg.Pool, goal_id: str, after: int = 0) -> AsyncGenerator[str]:
    """The SSE messages of a goal's events after seq `after`, kept ones first, then live.

    It listens before reading what is kept, so an event committed meanwhile is announced
    rather than lost; one kept and announced both is sent once.
    """
    announced: asyncio.Queue[int] = asyncio.Queue()

    def notice(_: object, __: object, ___: object, payload: object) -> None:
        event_goal, seq = parse_notice(str(payload))
        if event_goal == goal_id:
            announced.put_nowait(seq)

    connection = await pool.acquire()
    try:
        await connection.add_listener(EVENTS_CHANNEL, notice)
        sent: set[int] = set()
        last = after
        while page := await events_after(pool, goal_id, last, PAGE):
            for event in page:
                sent.add(event["seq"])
                yield message(event)
            last = page[-1]["seq"]
            if len(page) < PAGE:
                break
        while True:
            try:
                seqs = [await asyncio.wait_for(announced.get(), KEEPALIVE_SECONDS)]
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            while not announced.empty():
                seqs.append(announced.get_nowait())
            fresh = [s for s in seqs if s > after and s not in sent]
            sent.difference_update(seqs)  # each seq is announced once: forget it after
            for event in await events_by_seq(pool, goal_id, fresh):
                yield message(event)
    finally:
        # Shielded: a client's leaving cancels this stream, and its cleanup's every await.
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(Exception):
                await connection.remove_listener(EVENTS_CHANNEL, notice)
            await pool.release(connection)


class _EventStream(StreamingResponse):
    """A stream that closes its events when the client goes: Starlette stops reading them
    but leaves the generator, and with it a pool connection, to the garbage collector."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            body = self.body_iterator
            if isinstance(body, AsyncGenerator):
                await body.aclose()


def message(event: dict[str, Any]) -> str:
    """One event as an SSE message; its seq is the id a client resumes from."""
    data = json.dumps(event, default=str, separators=(",", ":"))
    return f"id: {event['seq']}\nevent: {event['kind']}\ndata: {data}\n\n"
