"""One LISTEN for every event stream the API serves: a single database connection hears
each new event's notice and hands it to the streams of that goal, in this process.

A stream therefore holds no database connection while it waits, so no number of open
streams can starve the API's pool. If the listening connection is lost, every stream is
ended: browsers reconnect with `Last-Event-ID` and miss nothing, and the next stream
listens again.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict

import anyio
import asyncpg

from store.events import EVENTS_CHANNEL, parse_notice
from store.listening import Listening

log = logging.getLogger("goalkeeper.api")

BACKLOG = 10_000
"""Announced events a stream may fall behind by; past that it is ended, and its client
resumes from the last event it got rather than this process keeping an unbounded queue."""


class Subscription:
    """What a stream hears of one goal: the seqs announced since it last looked."""

    def __init__(self, goal_id: str) -> None:
        self.goal_id = goal_id
        self.seqs: list[int] = []
        self.ended = False
        self._heard = asyncio.Event()

    def hear(self, seq: int) -> None:
        self.seqs.append(seq)
        if len(self.seqs) > BACKLOG:
            self.end()
        self._heard.set()

    def end(self) -> None:
        self.ended = True
        self._heard.set()

    async def wait(self, timeout: float) -> list[int]:
        """The seqs announced since the last call, once there are any (or none after
        `timeout` seconds, or once the subscription has ended)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._heard.wait(), timeout)
        self._heard.clear()
        seqs, self.seqs = self.seqs, []
        return seqs


class EventListener:
    """The API's one listening connection, taken from its pool while any stream is open."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._listening = Listening(pool, EVENTS_CHANNEL, self._hear, self._lost)
        self._subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._lock = asyncio.Lock()

    async def subscribe(self, goal_id: str) -> Subscription:
        """Hear a goal's new events from now on; `unsubscribe` when done."""
        subscription = Subscription(goal_id)
        async with self._lock:
            await self._listening.start()
            self._subscribers[goal_id].add(subscription)
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop hearing for `subscription`; the last one out gives the connection back."""
        subscription.end()
        # Shielded: a client's leaving cancels its stream, and with it every await here.
        with anyio.CancelScope(shield=True):
            async with self._lock:
                subscribers = self._subscribers.get(subscription.goal_id)
                if subscribers is not None:
                    subscribers.discard(subscription)
                    if not subscribers:
                        del self._subscribers[subscription.goal_id]
                if not self._subscribers:
                    await self._listening.stop()

    async def close(self) -> None:
        """End every subscription and give the connection back (the app is stopping)."""
        async with self._lock:
            self._end_all()
            await self._listening.stop()

    def _hear(self, payload: str) -> None:
        goal_id, seq = parse_notice(payload)
        for subscription in self._subscribers.get(goal_id, ()):
            subscription.hear(seq)

    def _lost(self) -> None:
        log.warning("the event listener's connection was lost; open event streams end")
        self._end_all()

    def _end_all(self) -> None:
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.end()
        self._subscribers.clear()
