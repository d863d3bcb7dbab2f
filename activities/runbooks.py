"""What workflows read of runbooks; the runbooks themselves are in `store.runbooks`."""

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from goalkeeper.errors import InvalidRunbook
from goalkeeper.records import MatchRunbooks, RunbookRef
from goalkeeper.runbooks import (
    Runbook,
    RunbookMatch,
)
from store.runbooks import fetch_runbook, match_runbooks


class RunbookActivities:
    """What workflows read of runbooks; holds the worker's connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def load_runbook(self, ref: RunbookRef) -> Runbook | None:
        """The runbook a goal names (None when none is stored), for the goal to expand."""
        try:
            return await fetch_runbook(self.pool, ref.name, ref.version)
        except InvalidRunbook as exc:  # stored by an older Goalkeeper with other rules
            raise ApplicationError(str(exc), type="InvalidRecord", non_retryable=True) from None

    @activity.defn
    async def match_runbooks(self, request: MatchRunbooks) -> list[RunbookMatch]:
        """The runbooks that might fit a text, best first (see `match_runbooks`)."""
        return await match_runbooks(self.pool, request.text, request.limit)
