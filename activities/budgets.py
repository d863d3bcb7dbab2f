"""Budget activities: a goal's budget standing written, alerted and held to in PostgreSQL."""

import asyncpg
from temporalio import activity

from goalkeeper.records import RecordBudget
from monitoring.webhook import post_alerts
from store.rows import insert_event, open_alert


class BudgetActivities:
    """Writes budget changes and alerts; holds the pool and the alert webhook's URL."""

    def __init__(self, pool: asyncpg.Pool, webhook: str | None = None) -> None:
        self.pool, self.webhook = pool, webhook

    @activity.defn
    async def record_budget(self, record: RecordBudget) -> None:
        """Record an alert, pause, raise or stop in one transaction; post a new alert.

        A retry finds its alert open and does not post it again. A raised budget goes to
        the goal's row, which every assignment is held to (`goalkeeper_budget_hold`),
        so tasks waiting on it start again.
        """
        opened = False
        async with self.pool.acquire() as connection, connection.transaction():
            if record.set_budget:
                await connection.execute(
                    "UPDATE goals SET budget_usd = $2, budget_tokens = $3, updated_at = now() "
                    "WHERE goal_id = $1",
                    record.goal_id,
                    record.budget_usd,
                    record.budget_tokens,
                )
            for alert in record.close_alerts:
                await connection.execute(
                    "UPDATE alerts SET resolved_at = now() "
                    "WHERE kind = $1 AND subject = $2 AND resolved_at IS NULL",
                    alert.kind,
                    alert.subject,
                )
            if record.open_alert is not None:
                alert = record.open_alert
                opened = await open_alert(
                    connection, alert.kind, alert.subject, alert.message, alert.action
                )
            if record.event is not None:
                await insert_event(connection, record.event)
        if opened and record.open_alert is not None:
            await post_alerts(self.webhook, [record.open_alert.model_dump()])
