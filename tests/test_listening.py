"""The one LISTEN connection the API's event streams and waiting agents share: it hears
notices, survives PostgreSQL dropping it, and goes back to the pool when nobody waits."""

import asyncio
import uuid

import asyncpg

from store.listening import Listening
from tests.helpers import eventually

LISTENERS = "SELECT pid FROM pg_stat_activity WHERE query = $1"


async def test_it_hears_notices_is_dropped_and_listens_again(pool: asyncpg.Pool) -> None:
    channel = f"test_{uuid.uuid4().hex[:8]}"
    heard: list[str] = []
    lost = asyncio.Event()
    listening = Listening(pool, channel, heard.append, lost.set)

    async def heard_all(*payloads: str) -> bool | None:
        return heard == list(payloads) or None

    await listening.start()
    await listening.start()  # already listening: one connection still
    await pool.execute("SELECT pg_notify($1, 'one')", channel)
    await eventually(lambda: heard_all("one"), what="the notice")

    listen = f'LISTEN "{channel}"'
    [pid] = [r["pid"] for r in await pool.fetch(LISTENERS, listen)]
    await pool.execute("SELECT pg_terminate_backend($1)", pid)
    await asyncio.wait_for(lost.wait(), 30)  # the connection dropped: whoever waits is told

    await listening.start()  # the next to wait listens again, on a fresh connection
    await pool.execute("SELECT pg_notify($1, 'two')", channel)
    await eventually(lambda: heard_all("one", "two"), what="the notice after the drop")
    await listening.stop()
    await listening.stop()  # nothing to give back twice
    assert await pool.fetch(LISTENERS, listen) == []
