"""Improvement suggestions: the facts of a goal that ended, read; the suggestions, kept.

The rules live in goalkeeper/suggestions.py; this module reads what they look at, stores
what they find (once: ids derive from goal, kind and subject), records an event per new
suggestion, and posts new ones to the alert webhook.
"""

import logging

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from goalkeeper.suggestions import (
    SuggestFor,
    suggest,
)
from monitoring.webhook import post_alerts
from store.suggestions import (
    goal_facts,
    store_suggestions,
)

log = logging.getLogger("activities.suggestions")


class SuggestionActivities:
    """Finds improvements when a goal ends; holds the worker's pool and alert webhook."""

    def __init__(self, pool: asyncpg.Pool, alert_webhook: str | None = None) -> None:
        self.pool, self.webhook = pool, alert_webhook

    @activity.defn
    async def suggest_improvements(self, request: SuggestFor) -> int:
        """Store what the goal's record suggests, once; return how many suggestions are new."""
        facts = await goal_facts(self.pool, request.goal_id)
        if facts is None:
            raise ApplicationError(
                f"no goal {request.goal_id!r} in the read model: expected a goal that has "
                "been recorded",
                type="UnknownGoal",
                non_retryable=True,
            )
        new = await store_suggestions(self.pool, suggest(facts))
        for made in new:
            log.info("suggestion %s on %s: %s", made.kind, made.subject, made.message)
        # Posted as alerts are (kind, subject, message, action), so one receiver takes both.
        await post_alerts(self.webhook, [s.model_dump(mode="json") for s in new])
        return len(new)
