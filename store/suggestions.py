"""Suggestions in PostgreSQL: the facts the rules read, what they find, and decisions on it."""

import uuid
from typing import Any

import asyncpg

from goalkeeper.suggestions import (
    COSTLY_FACTOR,
    MIN_COST_SAMPLES,
    SUGGESTION_ACCEPTED,
    SUGGESTION_DISMISSED,
    SUGGESTION_MADE,
    AgentRecord,
    ApprovalEvent,
    GoalFacts,
    InvalidSuggestionDecision,
    Rejection,
    SkillAgents,
    Suggestion,
    SuggestionStatus,
    TaskCost,
    approval_waits,
)
from store.rows import Connection

RECENT_ATTEMPTS = 50
"""An agent's record in a skill: its latest attempts of it, across all goals."""


RECENT_GOALS = 50
"""Earlier goals of the same runbook compared with: the latest this many."""


async def goal_facts(connection: Connection, goal_id: str) -> GoalFacts | None:
    """What the rules look at for `goal_id`, or None if the goal is not recorded."""
    goal = await connection.fetchrow(
        """
        SELECT workspace, spec->>'runbook' AS runbook, created_at,
               CASE WHEN jsonb_typeof(spec->'escalation') = 'array'
                    THEN jsonb_array_length(spec->'escalation') ELSE 0 END AS escalation,
               coalesce((spec->>'approval_timeout_seconds')::int, 86400) AS approval_timeout
        FROM goals WHERE goal_id = $1
        """,
        goal_id,
    )
    if goal is None:
        return None
    runbook = goal["runbook"]
    return GoalFacts(
        goal_id=goal_id,
        workspace=goal["workspace"],
        runbook=runbook,
        escalation_levels=goal["escalation"],
        agents=await _agent_records(connection, goal_id),
        rejections=await _rejections(connection, goal_id, runbook),
        skills=await _skills(connection, goal_id),
        approvals=approval_waits(
            await _approval_events(connection, goal_id), goal["approval_timeout"]
        ),
        task_costs=await _task_costs(connection, goal_id, runbook, goal["created_at"]),
    )


async def _agent_records(connection: Connection, goal_id: str) -> list[AgentRecord]:
    """How each agent of the goal did lately at each of its skills, in any goal."""
    rows = await connection.fetch(
        """
        WITH pairs AS (
            SELECT DISTINCT a.agent_id, t.skill FROM assignments a
            JOIN tasks t ON t.goal_id = a.goal_id AND t.task_id = a.task_id
            WHERE a.goal_id = $1 LIMIT 200
        )
        SELECT p.agent_id, p.skill, count(*) AS attempts,
               count(*) FILTER (WHERE r.status = 'failed') AS failed,
               count(*) FILTER (WHERE r.status = 'timed_out') AS timed_out,
               count(*) FILTER (WHERE r.rejected) AS rejected
        FROM pairs p CROSS JOIN LATERAL (
            SELECT a.status, EXISTS (SELECT 1 FROM feedback f
                                     WHERE f.assignment_id = a.assignment_id
                                       AND f.source = 'rejection') AS rejected
            FROM assignments a
            JOIN tasks t ON t.goal_id = a.goal_id AND t.task_id = a.task_id
            WHERE a.agent_id = p.agent_id AND t.skill = p.skill
              AND a.status IN ('completed', 'failed', 'timed_out')
            ORDER BY a.created_at DESC LIMIT $2
        ) r
        GROUP BY p.agent_id, p.skill
        """,
        goal_id,
        RECENT_ATTEMPTS,
    )
    return [AgentRecord(**dict(r)) for r in rows]


async def _rejections(connection: Connection, goal_id: str, runbook: str | None) -> list[Rejection]:
    """The latest rejections in this goal and in recent goals from the same runbook."""
    rows = await connection.fetch(
        """
        WITH peers AS (
            SELECT $1::text AS goal_id
            UNION
            (SELECT goal_id FROM goals WHERE $2::text IS NOT NULL AND spec->>'runbook' = $2
             ORDER BY created_at DESC LIMIT $3)
        )
        SELECT * FROM (
            SELECT f.goal_id, f.task_id, f.person AS approver, f.comment, f.created_at
            FROM feedback f JOIN peers USING (goal_id)
            WHERE f.source = 'rejection'
            ORDER BY f.created_at DESC LIMIT 500
        ) latest ORDER BY created_at
        """,
        goal_id,
        runbook,
        RECENT_GOALS,
    )
    return [
        Rejection(
            goal_id=r["goal_id"], task_id=r["task_id"], approver=r["approver"], comment=r["comment"]
        )
        for r in rows
    ]


async def _skills(connection: Connection, goal_id: str) -> list[SkillAgents]:
    """Which agents, provisioned ones among them, worked at each skill of the goal."""
    rows = await connection.fetch(
        """
        SELECT t.skill, array_agg(DISTINCT a.agent_id) AS agents,
               coalesce(array_agg(DISTINCT a.agent_id) FILTER (WHERE g.provisioned), '{}')
                   AS provisioned,
               count(*) AS attempts
        FROM assignments a
        JOIN tasks t ON t.goal_id = a.goal_id AND t.task_id = a.task_id
        JOIN agents g ON g.agent_id = a.agent_id
        WHERE a.goal_id = $1
        GROUP BY t.skill ORDER BY t.skill
        """,
        goal_id,
    )
    return [
        SkillAgents(
            skill=r["skill"],
            agents=list(r["agents"]),
            provisioned=list(r["provisioned"]),
            attempts=r["attempts"],
        )
        for r in rows
    ]


async def _approval_events(connection: Connection, goal_id: str) -> list[ApprovalEvent]:
    """The goal's approval requests, escalations and decisions, in order."""
    rows = await connection.fetch(
        """
        SELECT task_id, kind, created_at, detail ? 'decision' AS decided FROM events
        WHERE goal_id = $1 AND task_id IS NOT NULL
          AND kind IN ('approval_requested', 'approval_escalated', 'decision_accepted',
                       'task_failed')
        ORDER BY seq LIMIT 20000
        """,
        goal_id,
    )
    return [
        ApprovalEvent(
            task_id=r["task_id"], kind=r["kind"], at=r["created_at"], decided=r["decided"]
        )
        for r in rows
    ]


MAX_COSTLY_TASKS = 20
"""Costly tasks one goal's analysis reads and suggests about, the costliest first."""


async def _task_costs(
    connection: Connection, goal_id: str, runbook: str | None, created_at: Any
) -> list[TaskCost]:
    """The goal's tasks' costs beside the same runbook tasks' in earlier goals that ended."""
    if runbook is None:
        return []
    rows = await connection.fetch(
        """
        WITH earlier AS (
            SELECT goal_id FROM goals
            WHERE spec->>'runbook' = $2 AND goal_id <> $1 AND created_at < $3
              AND status IN ('completed', 'failed')
            ORDER BY created_at DESC LIMIT $4
        ), own AS (
            SELECT task_id, sum(cost_usd)::float8 AS cost_usd FROM assignments
            WHERE goal_id = $1 GROUP BY task_id
        ), theirs AS (
            SELECT a.task_id, a.goal_id, sum(a.cost_usd)::float8 AS cost_usd
            FROM assignments a JOIN earlier USING (goal_id)
            WHERE a.task_id IN (SELECT task_id FROM own)
            GROUP BY a.task_id, a.goal_id
        )
        SELECT own.task_id, own.cost_usd, array_agg(theirs.cost_usd) AS earlier_usd
        FROM own JOIN theirs USING (task_id)
        GROUP BY own.task_id, own.cost_usd
        -- Only the likely costly ones, the costliest first: a goal of any size reads a few.
        HAVING count(*) >= $5
           AND own.cost_usd >= $6 * percentile_cont(0.5) WITHIN GROUP (ORDER BY theirs.cost_usd)
                               - 0.000001
        ORDER BY own.cost_usd / nullif(percentile_cont(0.5) WITHIN GROUP
                                       (ORDER BY theirs.cost_usd), 0) DESC NULLS LAST,
                 own.task_id
        LIMIT $7
        """,
        goal_id,
        runbook,
        created_at,
        RECENT_GOALS,
        MIN_COST_SAMPLES,
        COSTLY_FACTOR,
        MAX_COSTLY_TASKS,
    )
    return [
        TaskCost(task_id=r["task_id"], cost_usd=r["cost_usd"], earlier_usd=list(r["earlier_usd"]))
        for r in rows
    ]


async def store_suggestions(pool: asyncpg.Pool, found: list[Suggestion]) -> list[Suggestion]:
    """Keep the suggestions not kept before, each with its event; return those.

    One still open, or dismissed, about the same thing from another goal is not made
    again: people see it once, and a "no" stays a no.
    """
    new = []
    async with pool.acquire() as connection, connection.transaction():
        for suggestion in found:
            made = await connection.fetchval(
                """
                INSERT INTO suggestions (suggestion_id, goal_id, kind, subject, message,
                                         action, evidence)
                SELECT $1, $2, $3, $4, $5, $6, $7
                WHERE NOT EXISTS (SELECT 1 FROM suggestions s
                                  WHERE s.kind = $3 AND s.subject = $4 AND s.goal_id <> $2
                                    AND s.status IN ('open', 'dismissed'))
                ON CONFLICT (suggestion_id) DO NOTHING
                RETURNING true
                """,
                uuid.UUID(suggestion.suggestion_id),
                suggestion.goal_id,
                suggestion.kind.value,
                suggestion.subject,
                suggestion.message,
                suggestion.action,
                suggestion.evidence,
            )
            if not made:
                continue
            await _event(
                connection,
                str(uuid.uuid5(uuid.UUID(suggestion.suggestion_id), SUGGESTION_MADE)),
                SUGGESTION_MADE,
                suggestion.goal_id,
                f"suggestion ({suggestion.kind.value}): {suggestion.message}",
                {
                    "suggestion_id": suggestion.suggestion_id,
                    "kind": suggestion.kind.value,
                    "subject": suggestion.subject,
                    "action": suggestion.action,
                },
            )
            new.append(suggestion)
    return new


async def list_suggestions(
    connection: Connection,
    status: SuggestionStatus | None,
    limit: int = 50,
    goal_id: str | None = None,
) -> list[dict[str, Any]]:
    """Suggestions, newest first, of one status or (None) all, and of one goal if given."""
    rows = await connection.fetch(
        """
        SELECT suggestion_id::text, goal_id, kind, subject, message, action, evidence, status,
               decided_by, decided_at, decision_comment, created_at
        FROM suggestions
        WHERE ($1::text IS NULL OR status = $1) AND ($3::text IS NULL OR goal_id = $3)
        ORDER BY created_at DESC, kind, suggestion_id LIMIT $2
        """,
        None if status is None else status.value,
        limit,
        goal_id,
    )
    return [dict(r) for r in rows]


async def decide_suggestion(
    pool: asyncpg.Pool,
    suggestion_id: str,
    status: SuggestionStatus,
    person: str,
    comment: str = "",
) -> dict[str, Any]:
    """Accept or dismiss an open suggestion, given by its id or the start of it; record it."""
    prefix = suggestion_id.strip().lower()
    if len(prefix) < 4 or not all(c in "0123456789abcdef-" for c in prefix):
        raise InvalidSuggestionDecision(
            suggestion_id,
            f"expected a suggestion id (or its first 4 or more characters), got {suggestion_id!r}",
        )
    if not person.strip():
        raise InvalidSuggestionDecision(
            suggestion_id, f"expected the name of who decides (--as), got {person!r}"
        )
    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(
            "SELECT suggestion_id::text, status, decided_by FROM suggestions "
            "WHERE suggestion_id::text LIKE $1 || '%' LIMIT 2 FOR UPDATE",
            prefix,
        )
        if not rows:
            raise InvalidSuggestionDecision(
                suggestion_id, f"no suggestion {suggestion_id!r}: expected an id from 'suggestions'"
            )
        if len(rows) > 1:
            raise InvalidSuggestionDecision(
                suggestion_id,
                f"{suggestion_id!r} starts more than one suggestion's id: give more of it",
            )
        found = rows[0]
        if found["status"] != SuggestionStatus.OPEN:
            raise InvalidSuggestionDecision(
                found["suggestion_id"],
                f"suggestion {found['suggestion_id']} is already {found['status']} "
                f"by {found['decided_by']}: expected an open one",
            )
        row = await connection.fetchrow(
            """
            UPDATE suggestions SET status = $2, decided_by = $3, decided_at = now(),
                   decision_comment = $4
            WHERE suggestion_id = $1::uuid
            RETURNING suggestion_id::text, goal_id, kind, subject, message, action, evidence,
                      status, decided_by, decided_at, decision_comment, created_at
            """,
            found["suggestion_id"],
            status.value,
            person.strip(),
            comment,
        )
        assert row is not None
        verb = "accepted" if status is SuggestionStatus.ACCEPTED else "dismissed"
        await _event(
            connection,
            str(uuid.uuid4()),
            SUGGESTION_ACCEPTED if status is SuggestionStatus.ACCEPTED else SUGGESTION_DISMISSED,
            row["goal_id"],
            f"{person.strip()} {verb} suggestion ({row['kind']}): {row['message']}",
            {
                "suggestion_id": row["suggestion_id"],
                "kind": row["kind"],
                "subject": row["subject"],
                "person": person.strip(),
                "comment": comment,
            },
        )
    return dict(row)


async def _event(
    connection: Connection,
    event_id: str,
    kind: str,
    goal_id: str,
    message: str,
    detail: dict[str, Any],
) -> None:
    """Append an event once: a retried activity carries the same `event_id`."""
    await connection.execute(
        "SELECT goalkeeper_event($1)",
        {
            "event_id": event_id,
            "kind": kind,
            "goal_id": goal_id,
            "message": message,
            "detail": detail,
        },
    )
