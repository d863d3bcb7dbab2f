"""A goal's events as a Server-Sent Events stream: those already kept, then each new one.

Streams hear of new events through the API's one `EventListener`, so an open stream
holds no database connection; each token and each client address may hold only so many
open at once (`GOALKEEPER_API_STREAMS_PER_TOKEN`, `..._PER_ADDRESS`).
"""

import json
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from interfaces.api.auth import Access, Reader
from interfaces.api.goals import UNKNOWN_GOAL, known_goal
from interfaces.api.listener import EventListener
from interfaces.api.problems import Problem, answers
from interfaces.api.state import Pool
from store.events import events_after, events_by_seq

router = APIRouter(tags=["goals"])

PAGE = 500
"""Kept events are read this many at a time, so no read is unbounded."""

KEEPALIVE_SECONDS = 15.0
"""A comment line this long after the last message keeps proxies from closing the stream."""


class StreamLimits:
    """Counts open streams per token and per client address, refusing one past either."""

    def __init__(self, per_token: int, per_address: int) -> None:
        self.per_token, self.per_address = per_token, per_address
        self._tokens: Counter[str] = Counter()
        self._addresses: Counter[str] = Counter()

    def open(self, access: Access, address: str) -> Callable[[], None]:
        """Count a stream in, or refuse it with a 429; the answer counts it out again."""
        token = access.token_id
        if token is not None and self._tokens[token] >= self.per_token:
            raise _too_many(
                f"this token holds {self.per_token} event streams already",
                "GOALKEEPER_API_STREAMS_PER_TOKEN",
                self.per_token,
            )
        if self._addresses[address] >= self.per_address:
            raise _too_many(
                f"address {address} holds {self.per_address} event streams already",
                "GOALKEEPER_API_STREAMS_PER_ADDRESS",
                self.per_address,
            )
        if token is not None:
            self._tokens[token] += 1
        self._addresses[address] += 1

        def close() -> None:
            if token is not None:
                self._tokens[token] -= 1
                if not self._tokens[token]:
                    del self._tokens[token]
            self._addresses[address] -= 1
            if not self._addresses[address]:
                del self._addresses[address]

        return close


def _too_many(held: str, setting: str, limit: int) -> Problem:
    return Problem(
        429,
        "Too many event streams",
        f"{held} (at most {limit}, {setting}): close one first",
        headers={"Retry-After": "5"},
        limit=limit,
        setting=setting,
    )


@router.get(
    "/goals/{goal_id:path}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
@answers(UNKNOWN_GOAL)
@answers(
    {429: "too many event streams open for the token or the client's address"},
    headers={"Retry-After": "seconds to wait before opening one again"},
)
async def goal_events(
    request: Request,
    pool: Pool,
    access: Reader,
    goal_id: str,
    after: Annotated[int | None, Query(ge=0, description="send events after this seq")] = None,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> StreamingResponse:
    """A goal's events after `Last-Event-ID` (or `after`), then each new one as it is kept:
    `id: SEQ`, `event: KIND`, `data: JSON`. A reconnecting client misses nothing. Too many
    streams open for the token or the client's address are refused (429)."""
    await known_goal(pool, access, goal_id)
    start = last_event_id if last_event_id is not None else after or 0
    address = request.client.host if request.client else "unknown"
    close = request.app.state.stream_limits.open(access, address)
    return _EventStream(
        stream(pool, request.app.state.listener, goal_id, start),
        on_close=close,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def stream(
    pool: asyncpg.Pool, listener: EventListener, goal_id: str, after: int = 0
) -> AsyncGenerator[str]:
    """The SSE messages of a goal's events after seq `after`, kept ones first, then live.

    It listens before reading what is kept, so an event committed meanwhile is announced
    rather than lost; one kept and announced both is sent once. It ends when the listener
    does (the client reconnects and resumes).
    """
    subscription = await listener.subscribe(goal_id)
    try:
        sent: set[int] = set()
        last = after
        while page := await events_after(pool, goal_id, last, PAGE):
            for event in page:
                sent.add(event["seq"])
                yield message(event)
            last = page[-1]["seq"]
            if len(page) < PAGE:
                break
        while not subscription.ended:
            seqs = await subscription.wait(KEEPALIVE_SECONDS)
            if not seqs:
                if not subscription.ended:
                    yield ": keepalive\n\n"
                continue
            fresh = [s for s in seqs if s > after and s not in sent]
            sent.difference_update(seqs)  # each seq is announced once: forget it after
            for event in await events_by_seq(pool, goal_id, fresh):
                yield message(event)
    finally:
        await listener.unsubscribe(subscription)


class _EventStream(StreamingResponse):
    """A stream that closes its events when the client goes (Starlette stops reading them
    but leaves the generator to the garbage collector), and counts itself out of its
    token's and address's streams, whether or not it ever started."""

    def __init__(self, content: AsyncGenerator[str], on_close: Callable[[], None], **kw: Any):
        super().__init__(content, **kw)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
            body = self.body_iterator
            if isinstance(body, AsyncGenerator):
                await body.aclose()


def message(event: dict[str, Any]) -> str:
    """One event as an SSE message; its seq is the id a client resumes from."""
    data = json.dumps(event, default=str, separators=(",", ":"))
    return f"id: {event['seq']}\nevent: {event['kind']}\ndata: {data}\n\n"
