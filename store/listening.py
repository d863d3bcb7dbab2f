"""One pooled connection that LISTENs on a channel while anyone waits on it: taken by the
first who waits, given back by the last, or when PostgreSQL drops it (the pool replaces
it, and the next to wait listens again)."""

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
from asyncpg.pool import PoolConnectionProxy


class Listening:
    """LISTEN on `channel`: each notice's payload goes to `heard`; a lost connection to `lost`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        channel: str,
        heard: Callable[[str], None],
        lost: Callable[[], None],
    ) -> None:
        self._pool, self._channel, self._heard, self._lost = pool, channel, heard, lost
        self._connection: PoolConnectionProxy | None = None
        self._releasing: asyncio.Task[None] | None = None
        """A dropped connection being given back (held so the task is not collected)."""

    async def start(self) -> None:
        """Listen, unless already listening."""
        if self._connection is not None:
            return
        connection = await self._pool.acquire()
        try:
            await connection.add_listener(self._channel, self._notice)
            connection.add_termination_listener(self._dropped)
        except BaseException:
            await self._pool.release(connection)
            raise
        self._connection = connection

    async def stop(self) -> None:
        """Stop listening and give the connection back to the pool."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        connection.remove_termination_listener(self._dropped)
        with contextlib.suppress(Exception):
            await connection.remove_listener(self._channel, self._notice)
        await self._pool.release(connection)

    def _notice(self, _: object, __: object, ___: object, payload: object) -> None:
        self._heard(str(payload))

    def _dropped(self, _: object) -> None:
        dropped, self._connection = self._connection, None
        self._lost()
        if dropped is not None:
            self._releasing = asyncio.get_running_loop().create_task(self._pool.release(dropped))
