"""Refused messages recorded in batches by one coroutine of the workflow, apart from the
handlers that refused them.

A handler that refuses a message returns at once. Were it to wait for its own write, a
steady flood of forged messages would always leave one handler running, and a run waits
for its handlers before it continues as new: the flood would grow one run's history to
Temporal's limit. Here each write takes up to `MAX_BATCH` refusals, and a run about to
continue as new or end writes what is pending first.
"""

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.read_model import ReadModelActivities
    from goalkeeper.records import Event
    from workflows.options import record_apart

IN_BATCHES = "refusals-in-batches"
"""The patch from which refusals are recorded in batches, not one write per handler."""

MAX_BATCH = 100
"""Refusals per write: each holds at most a 2,000-character summary of its payload, so a
write's input stays far below Temporal's 2 MiB."""
MAX_PENDING = 5_000
"""Refusals waiting to be written; beyond, they are counted (metrics, log) only. Half of
the 10,000 signals Temporal takes per run by default."""
FLUSH_ROUNDS = MAX_PENDING // MAX_BATCH + 1
"""Writes a run makes of what is pending before it moves on: all that was pending when it
began, and no more, so a flood cannot hold it."""


class RefusalLog:
    """A run's refused messages, written to the audit trail in batches."""

    def __init__(self) -> None:
        self._pending: list[Event] = []
        self._writing = False
        self._dropped = 0
        self._recorder: asyncio.Task[None] | None = None
        self._batched: bool | None = None

    def batched(self) -> bool:
        """Whether this run records refusals here (histories from before record each in
        its handler, and replay so)."""
        if self._batched is None:
            self._batched = workflow.patched(IN_BATCHES)
        return self._batched

    def add(self, event: Event) -> None:
        """Keep a refusal for the next write; its handler need not wait."""
        if len(self._pending) >= MAX_PENDING:
            self._dropped += 1
            return
        self._pending.append(event)
        if self._recorder is None:
            self._recorder = asyncio.create_task(self._keep_writing())

    async def flush(self) -> None:
        """Write what is pending before the run moves on or ends, in a few writes at most."""
        if self._recorder is None:
            return
        await workflow.wait_condition(lambda: not self._writing)
        for _ in range(FLUSH_ROUNDS):
            if not self._pending:
                break
            await self._write()
        left, self._pending = len(self._pending) + self._dropped, []
        if left:
            workflow.logger.warning(
                "%d refused messages came while this run moved on: counted, not recorded", left
            )
        self._dropped = 0

    async def _keep_writing(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._pending) and not self._writing)
            await self._write()

    async def _write(self) -> None:
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        self._writing = True
        try:
            await record_apart(
                ReadModelActivities.record_events, batch, f"record {len(batch)} refused messages"
            )
        finally:
            self._writing = False
