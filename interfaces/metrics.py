"""The worker's gauge collector: the read model's counts on the metrics endpoint, every
few seconds, beside the counters and histograms that workflows and activities record.

Every worker that serves metrics runs one, so each exports the same gauges: read them
with `max` across workers, not `sum`.
"""

import asyncio
import contextlib
import logging

import asyncpg
from temporalio.common import MetricMeter

from monitoring.gauges import Gauges, read_counts

COLLECT_EVERY = 5.0
"""Seconds between two reads of the read model's counts."""

READ_TIMEOUT = 30.0
"""Seconds a read may take before it is given up for the next turn."""

log = logging.getLogger("goalkeeper.metrics")


async def collect(
    pool: asyncpg.Pool, meter: MetricMeter, every: float, stop: asyncio.Event
) -> None:
    """Set the gauges from PostgreSQL every `every` seconds until `stop` is set.

    Returns at once on the no-op meter (no metrics address: nothing to read for). A read
    that fails (PostgreSQL restarting) is logged and tried again at the next turn.
    """
    if meter is MetricMeter.noop:
        return
    gauges = Gauges(meter)
    failing = False
    while not stop.is_set():
        try:
            async with asyncio.timeout(READ_TIMEOUT), pool.acquire() as connection:
                gauges.set(await read_counts(connection))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if not failing:
                log.warning("gauges not read from PostgreSQL, trying again: %s", exc)
            failing = True
        else:
            failing = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
