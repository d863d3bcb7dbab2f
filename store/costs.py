"""Cost reports from the attempts in PostgreSQL: one query, bounded, for the CLI and the API."""

from typing import Any

from goalkeeper.costs import CostGrouping, CostLine, CostQuery, CostReport, InvalidCostQuery
from store.rows import Connection

_KEYS = {
    CostGrouping.GOAL: "a.goal_id",
    CostGrouping.TASK: "a.goal_id || '/' || a.task_id",
    CostGrouping.ATTEMPT: "a.goal_id || '/' || a.task_id || ' #' || a.attempt",
    CostGrouping.AGENT: "a.agent_id",
    CostGrouping.SKILL: "t.skill",
    CostGrouping.RUNBOOK: "s.runbook",
    CostGrouping.WORKSPACE: "s.workspace",
    CostGrouping.DAY: "to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
"""What each grouping adds up, as a SQL expression over an attempt (`a`), its task (`t`)
and its goal (`s`)."""

_REPORT = """
WITH scope AS (
    SELECT g.goal_id, g.spec->>'runbook' AS runbook, g.workspace FROM goals g
    WHERE ($1::text IS NULL OR g.goal_id = $1 OR g.goal_id LIKE $2)
      AND ($3::text IS NULL OR g.workspace = $3)
), attempts AS (
    SELECT {key} AS key, a.tokens_used, a.cost_usd, a.input_tokens, a.output_tokens,
           NOT a.cost_known AS cost_unknown,
           (a.status IN ('failed', 'timed_out', 'cancelled')
            OR (a.attempt < t.attempts AND a.status NOT IN ('active', 'starting'))
            OR t.status = 'failed') AS wasted
    FROM scope s
    JOIN assignments a ON a.goal_id = s.goal_id
    JOIN tasks t ON t.goal_id = a.goal_id AND t.task_id = a.task_id
    WHERE $4::date IS NULL OR a.created_at >= ($4::date)::timestamp AT TIME ZONE 'UTC'
), lines AS (
    SELECT key, count(*) AS attempts, count(*) FILTER (WHERE wasted) AS wasted_attempts,
           sum(tokens_used) AS tokens_used, sum(cost_usd) AS cost_usd,
           coalesce(sum(tokens_used) FILTER (WHERE wasted), 0) AS wasted_tokens,
           coalesce(sum(cost_usd) FILTER (WHERE wasted), 0) AS wasted_usd,
           coalesce(sum(input_tokens), 0) AS input_tokens,
           coalesce(sum(output_tokens), 0) AS output_tokens,
           count(*) FILTER (WHERE cost_unknown) AS cost_unknown_attempts
    FROM attempts GROUP BY key
)
SELECT key, attempts, wasted_attempts, tokens_used::bigint, cost_usd::float8,
       wasted_tokens::bigint, wasted_usd::float8, input_tokens::bigint, output_tokens::bigint,
       cost_unknown_attempts,
       count(*) OVER () AS groups,
       sum(attempts) OVER ()::bigint AS all_attempts,
       sum(wasted_attempts) OVER ()::bigint AS all_wasted_attempts,
       sum(tokens_used) OVER ()::bigint AS all_tokens_used,
       sum(cost_usd) OVER ()::float8 AS all_cost_usd,
       sum(wasted_tokens) OVER ()::bigint AS all_wasted_tokens,
       sum(wasted_usd) OVER ()::float8 AS all_wasted_usd,
       sum(input_tokens) OVER ()::bigint AS all_input_tokens,
       sum(output_tokens) OVER ()::bigint AS all_output_tokens,
       sum(cost_unknown_attempts) OVER ()::bigint AS all_cost_unknown_attempts
FROM lines
ORDER BY {order}
LIMIT $5
"""


async def cost_report(connection: Connection, query: CostQuery) -> CostReport:
    """What the attempts matching `query` cost, a line per group and the totals.

    A goal's report includes its sub-goals' attempts; the task that runs a sub-goal has
    no attempts of its own, so nothing counts twice.
    """
    if query.goal_id is not None:
        known = await connection.fetchval("SELECT 1 FROM goals WHERE goal_id = $1", query.goal_id)
        if not known:
            raise InvalidCostQuery(
                query.goal_id,
                f"no goal {query.goal_id!r} in the read model: expected a goal id from 'goal list'",
            )
    order = "key DESC" if query.by is CostGrouping.DAY else "cost_usd DESC, key"
    sql = _REPORT.format(key=_KEYS[query.by], order=order)
    rows = await connection.fetch(
        sql,
        query.goal_id,
        None if query.goal_id is None else _escape_like(query.goal_id) + "/%",
        query.workspace,
        query.since,
        query.limit,
    )
    lines = [CostLine(**_line(row)) for row in rows]
    if not rows:
        total = CostLine(
            key=None,
            attempts=0,
            wasted_attempts=0,
            tokens_used=0,
            cost_usd=0.0,
            wasted_tokens=0,
            wasted_usd=0.0,
        )
        return CostReport(by=query.by, lines=[], total=total)
    first = rows[0]
    total = CostLine(
        key=None,
        attempts=first["all_attempts"],
        wasted_attempts=first["all_wasted_attempts"],
        tokens_used=first["all_tokens_used"],
        cost_usd=round(first["all_cost_usd"], 6),
        wasted_tokens=first["all_wasted_tokens"],
        wasted_usd=round(first["all_wasted_usd"], 6),
        input_tokens=first["all_input_tokens"],
        output_tokens=first["all_output_tokens"],
        cost_unknown_attempts=first["all_cost_unknown_attempts"],
    )
    return CostReport(by=query.by, lines=lines, total=total, more_lines=first["groups"] - len(rows))


def _line(row: Any) -> dict[str, Any]:
    return {
        "key": row["key"],
        "attempts": row["attempts"],
        "wasted_attempts": row["wasted_attempts"],
        "tokens_used": row["tokens_used"],
        "cost_usd": round(row["cost_usd"], 6),
        "wasted_tokens": row["wasted_tokens"],
        "wasted_usd": round(row["wasted_usd"], 6),
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cost_unknown_attempts": row["cost_unknown_attempts"],
    }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
