"""`costs`: what a real goal's attempts cost, what was wasted, and every grouping and error."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from goalkeeper.costs import CostGrouping, InvalidCostQuery, cost_query
from goalkeeper.statuses import GoalStatus, TaskStatus
from store.costs import cost_report
from tests.helpers import decide, goal_spec, report, start_goal, wait_task
from tests.starter import starter


async def _run_goal(client: Client, task_queue: str, workspace: str) -> tuple[str, float]:
    """A goal whose attempts are known: a failure, a rework, and a sub-goal of two tasks.

    Returns its id and the cost its own `progress` query reports.
    """
    spec = goal_spec(
        0,
        workspace,
        approvers=["ops-lead"],
        tasks=[
            {"id": "t1", "title": "Import", "skill": "data"},
            {"id": "t2", "title": "Draft", "skill": "writing", "requires_approval": True},
            {
                "id": "research",
                "title": "Research",
                "goal": {
                    "title": "Research",
                    "tasks": [
                        {"id": "r1", "title": "Source 1", "skill": "research"},
                        {"id": "r2", "title": "Source 2", "skill": "research"},
                    ],
                },
            },
        ],
    )
    handle = await start_goal(client, spec, task_queue)
    goal_id = handle.id
    first = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    await report(client, first, "failed", error="bad CSV", tokens_used=200, cost_usd=0.02)
    second = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED, attempt=2)
    await report(client, second, tokens_used=100, cost_usd=0.01)

    draft = await wait_task(client, goal_id, "t2", TaskStatus.ASSIGNED)
    await report(client, draft, tokens_used=300, cost_usd=0.03)
    await wait_task(client, goal_id, "t2", TaskStatus.AWAITING_APPROVAL)
    await decide(client, goal_id, "t2", "ops-lead", "reject", "shorter please")
    redraft = await wait_task(client, goal_id, "t2", TaskStatus.ASSIGNED, attempt=2)
    await report(client, redraft, tokens_used=400, cost_usd=0.04)
    await wait_task(client, goal_id, "t2", TaskStatus.AWAITING_APPROVAL, attempt=2)
    await decide(client, goal_id, "t2", "ops-lead", "approve")

    for task_id in ("r1", "r2"):
        view = await wait_task(client, f"{goal_id}/research", task_id, TaskStatus.ASSIGNED)
        await report(client, view)  # 100 tokens, $0.01
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    return goal_id, result.progress.cost_usd


def _lines(body: dict[str, Any]) -> dict[str | None, tuple[int, int, float, float]]:
    return {
        line["key"]: (line["attempts"], line["tokens_used"], line["cost_usd"], line["wasted_usd"])
        for line in body["lines"]
    }


async def test_a_goals_costs_include_its_subgoals_once_and_show_what_was_wasted(
    client: Client, task_queue: str, workspace: str, database_url: str
) -> None:
    goal_id, progress_cost = await _run_goal(client, task_queue, workspace)
    sub = f"{goal_id}/research"

    by_goal = await starter(database_url, "costs", "--goal", goal_id, "--json")
    assert by_goal.code == 0, by_goal.err
    body = by_goal.json()
    # The failed attempt (0.02) and the draft sent back (0.03) were wasted.
    assert _lines(body) == {goal_id: (4, 1000, 0.1, 0.05), sub: (2, 200, 0.02, 0.0)}
    total = body["total"]
    assert (total["attempts"], total["wasted_attempts"], total["tokens_used"]) == (6, 2, 1200)
    assert (total["cost_usd"], total["wasted_usd"], total["wasted_tokens"]) == (0.12, 0.05, 500)
    # The task that runs the sub-goal carries the sub-goal's cost in the goal's progress, but
    # has no attempts of its own: the report adds up to the same figure, not to more.
    assert round(progress_cost, 6) == total["cost_usd"]

    by_task = _lines(
        (await starter(database_url, "costs", "--goal", goal_id, "--by", "task", "--json")).json()
    )
    assert by_task == {
        f"{goal_id}/t2": (2, 700, 0.07, 0.03),
        f"{goal_id}/t1": (2, 300, 0.03, 0.02),
        f"{sub}/r1": (1, 100, 0.01, 0.0),
        f"{sub}/r2": (1, 100, 0.01, 0.0),
    }
    assert f"{goal_id}/research" not in by_task

    by_skill = _lines(
        (
            await starter(
                database_url, "costs", "--workspace", workspace, "--by", "skill", "--json"
            )
        ).json()
    )
    assert by_skill == {
        "writing": (2, 700, 0.07, 0.03),
        "data": (2, 300, 0.03, 0.02),
        "research": (2, 200, 0.02, 0.0),
    }
    by_agent = (
        await starter(database_url, "costs", "--goal", goal_id, "--by", "agent", "--json")
    ).json()
    assert sum(line["attempts"] for line in by_agent["lines"]) == 6
    assert all(line["key"].startswith("auto-") for line in by_agent["lines"])
    by_runbook = _lines(
        (
            await starter(database_url, "costs", "--goal", goal_id, "--by", "runbook", "--json")
        ).json()
    )
    assert by_runbook == {None: (6, 1200, 0.12, 0.05)}

    today = datetime.now(UTC).date()
    by_day = _lines(
        (
            await starter(
                database_url,
                "costs",
                "--goal",
                goal_id,
                "--by",
                "day",
                "--since",
                today.isoformat(),
                "--json",
            )
        ).json()
    )
    assert by_day == {today.isoformat(): (6, 1200, 0.12, 0.05)}
    tomorrow = (today + timedelta(days=1)).isoformat()
    later = await starter(database_url, "costs", "--goal", goal_id, "--since", tomorrow, "--json")
    assert later.json()["lines"] == [] and later.json()["total"]["attempts"] == 0

    text = await starter(database_url, "costs", "--goal", goal_id, "--by", "task")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0].split() == [
        "task",
        "attempts",
        "tokens",
        "cost_usd",
        "wasted_usd",
        "wasted%",
        "wasted_attempts",
    ]
    assert lines[2].split() == [f"{goal_id}/t2", "2", "700", "0.0700", "0.0300", "43%", "1"]
    assert lines[-1].split() == ["total", "6", "1200", "0.1200", "0.0500", "42%", "2"]

    limited = await starter(
        database_url, "costs", "--goal", goal_id, "--by", "task", "--limit", "1"
    )
    assert "(3 more task lines in the total; see --limit)" in limited.out
    assert limited.out.splitlines()[-2].split()[:2] == ["total", "6"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--by", "colour"],
            "cannot group costs by 'colour': expected one of goal, task, attempt, agent, "
            "skill, runbook, workspace, day",
        ),
        (
            ["--since", "31/01/2025"],
            "expected --since as a day, YYYY-MM-DD (e.g. 2025-01-31), got '31/01/2025'",
        ),
        (["--since", "20250131"], "got '20250131'"),
        (["--goal", "no-such-goal"], "no goal 'no-such-goal' in the read model"),
        (["--limit", "0"], "expected --limit of 1 or more, got 0"),
    ],
)
async def test_bad_values_are_named_with_what_was_expected(
    database_url: str, pool: asyncpg.Pool, args: list[str], message: str
) -> None:
    result = await starter(database_url, "costs", *args)
    assert (result.code, result.out) == (2, ""), result
    assert message in result.err and result.err.count("\n") == 1, result.err


async def test_the_report_is_one_bounded_query_over_planted_attempts(pool: asyncpg.Pool) -> None:
    """Every grouping of the same planted attempts adds up to the same total."""
    goal_id = f"costs-{uuid.uuid4().hex[:8]}"
    runbook = f"rb-{goal_id}"
    agent = f"agent-{goal_id}"
    await pool.execute(
        "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec, status) "
        "VALUES ($1, 'run', 'Planted', $2, $3, 'completed')",
        goal_id,
        f"ws-{goal_id}",
        {"runbook": runbook},
    )
    await pool.execute(
        "INSERT INTO agents (agent_id, workspace, skills) VALUES ($1, $2, '{writing}')",
        agent,
        f"ws-{goal_id}",
    )
    # a: failed then completed; b: timed out, then its task failed for good; c: cancelled.
    tasks = [("a", "completed", 2), ("b", "failed", 1), ("c", "skipped", 1)]
    for task_id, status, attempts in tasks:
        await pool.execute(
            "INSERT INTO tasks (goal_id, task_id, title, skill, status, agent_id, attempts) "
            "VALUES ($1, $2, $2, 'writing', $3, $4, $5)",
            goal_id,
            task_id,
            status,
            agent,
            attempts,
        )
    planted = [
        ("a", 1, "failed", 0.5),
        ("a", 2, "completed", 1.0),
        ("b", 1, "timed_out", 0.25),
        ("c", 1, "cancelled", 0.125),
    ]
    for task_id, attempt, status, cost in planted:
        await pool.execute(
            "INSERT INTO assignments (assignment_id, goal_id, task_id, agent_id, attempt, status, "
            "context, tokens_used, cost_usd) "
            "VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, '{}', 10, $6)",
            goal_id,
            task_id,
            agent,
            attempt,
            status,
            cost,
        )
    for grouping in CostGrouping:
        got = await cost_report(pool, cost_query(goal_id=goal_id, by=grouping.value))
        assert (got.total.attempts, got.total.cost_usd) == (4, 1.875), grouping
        assert (got.total.wasted_attempts, got.total.wasted_usd) == (3, 0.875), grouping
        assert sum(line.cost_usd for line in got.lines) == 1.875
    by_runbook = await cost_report(pool, cost_query(goal_id=goal_id, by="runbook"))
    assert [line.key for line in by_runbook.lines] == [runbook]
    by_attempt = await cost_report(pool, cost_query(goal_id=goal_id, by="attempt"))
    assert {line.key: line.wasted_usd for line in by_attempt.lines} == {
        f"{goal_id}/a #2": 0.0,
        f"{goal_id}/a #1": 0.5,
        f"{goal_id}/b #1": 0.25,
        f"{goal_id}/c #1": 0.125,
    }
    by_workspace = await cost_report(pool, cost_query(goal_id=goal_id, by="workspace"))
    assert len(by_workspace.lines) == 1 and by_workspace.lines[0].cost_usd == 1.875
    with pytest.raises(InvalidCostQuery, match="no goal 'costs-none'"):
        await cost_report(pool, cost_query(goal_id="costs-none"))
