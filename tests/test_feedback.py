"""Feedback: people's ratings of goals and tasks, and approvers' rejections, kept with the work."""

import uuid
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from goalkeeper.feedback import InvalidFeedback, feedback
from goalkeeper.statuses import GoalStatus, TaskStatus
from tests.helpers import decide, events, goal_spec, report, start_goal, wait_task
from tests.starter import starter


async def _feedback(pool: asyncpg.Pool, goal_id: str) -> list[dict[str, object]]:
    rows = await pool.fetch(
        "SELECT feedback_id, task_id, assignment_id::text, agent_id, person, rating, comment, "
        "source FROM feedback WHERE goal_id = $1 ORDER BY created_at, feedback_id",
        goal_id,
    )
    return [dict(r) for r in rows]


async def test_rejections_become_feedback_on_the_attempt_sent_back(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec = goal_spec(1, workspace, approvers=["ops-lead"], max_attempts=2)
    spec["tasks"][0]["requires_approval"] = True
    handle = await start_goal(client, spec, task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, first)
    await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, "t1", "ops-lead", "reject", "Mention the free trial")
    second = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    await report(client, second)
    await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL, attempt=2)
    # Out of attempts: this rejection fails the task, and is feedback all the same.
    await decide(client, handle.id, "t1", "ops-lead", "reject", "Still no trial")
    assert (await handle.result()).status is GoalStatus.FAILED

    rows = await _feedback(pool, handle.id)
    decisions = await events(pool, handle.id, "decision_accepted") + await events(
        pool, handle.id, "task_failed"
    )
    assert [r["feedback_id"] for r in rows] == [e["event_id"] for e in decisions]
    assert [{k: v for k, v in r.items() if k != "feedback_id"} for r in rows] == [
        {
            "task_id": "t1",
            "assignment_id": first.assignment_id,
            "agent_id": first.agent_id,
            "person": "ops-lead",
            "rating": None,
            "comment": "Mention the free trial",
            "source": "rejection",
        },
        {
            "task_id": "t1",
            "assignment_id": second.assignment_id,
            "agent_id": second.agent_id,
            "person": "ops-lead",
            "rating": None,
            "comment": "Still no trial",
            "source": "rejection",
        },
    ]


async def test_an_event_written_twice_gives_one_feedback_and_approvals_give_none(
    pool: asyncpg.Pool,
) -> None:
    goal_id = f"fb-{uuid.uuid4().hex[:8]}"
    detail: dict[str, Any] = {"approver": "ops-lead", "decision": "reject", "comment": "again",
                              "assignment_id": None}  # fmt: skip

    def event(**changes: Any) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "kind": "decision_accepted",
            "goal_id": goal_id,
            "task_id": "t1",
            "message": "decided",
            "detail": {**detail, **changes},
        }

    rejected = event()
    await pool.execute("SELECT goalkeeper_event($1)", rejected)
    await pool.execute("SELECT goalkeeper_event($1)", rejected)  # a retried activity
    await pool.execute("SELECT goalkeeper_event($1)", event(decision="approve"))
    # No approver decided in time: the engine's own rejection is no one's judgement.
    await pool.execute("SELECT goalkeeper_event($1)", event(approver="goalkeeper"))
    # A malformed detail loses the attempt it is about, never the event or the feedback.
    odd = event(assignment_id="not-a-uuid")
    await pool.execute("SELECT goalkeeper_event($1)", odd)

    rows = await _feedback(pool, goal_id)
    assert {str(r["feedback_id"]) for r in rows} == {rejected["event_id"], odd["event_id"]}
    assert {r["assignment_id"] for r in rows} == {None}
    assert len(await events(pool, goal_id)) == 4


async def test_people_rate_goals_and_tasks_and_each_rating_is_an_event(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool, database_url: str
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, view)
    await handle.result()

    on_task = await starter(database_url, "feedback", handle.id, "t1", "--rating", "4",
                            "--comment", "Good, a bit long", "--as", "dana", "--json")  # fmt: skip
    assert on_task.code == 0, on_task.err
    stored = on_task.json()
    assert (stored["assignment_id"], stored["agent_id"]) == (view.assignment_id, view.agent_id)
    assert (stored["person"], stored["rating"], stored["source"]) == ("dana", 4, "person")
    on_goal = await starter(database_url, "feedback", handle.id, "--rating", "2", "--as", "lee")
    assert on_goal.code == 0, on_goal.err
    assert on_goal.out.startswith(f"lee rated {handle.id} 2 of 5; feedback ")

    rows = await _feedback(pool, handle.id)
    assert [(r["task_id"], r["person"], r["rating"], r["agent_id"]) for r in rows] == [
        ("t1", "dana", 4, view.agent_id),
        (None, "lee", 2, None),
    ]
    given = await events(pool, handle.id, "feedback_given")
    assert [e["event_id"] for e in given] == [r["feedback_id"] for r in rows]
    assert given[0]["detail"]["comment"] == "Good, a bit long"
    assert given[0]["agent_id"] == view.agent_id

    cases = [
        (["no-such-goal", "--rating", "3"], "no goal 'no-such-goal' in the read model"),
        ([handle.id, "t9", "--rating", "3"], f"goal {handle.id!r} has no task 't9'"),
        ([handle.id, "--rating", "6"], "expected a rating from 1 to 5, got 6"),
        ([handle.id, "--rating", "0"], "expected a rating from 1 to 5, got 0"),
        ([handle.id, "--comment", "meh"], "a rating is required: expected --rating from 1 to 5"),
    ]
    for args, message in cases:
        refused = await starter(database_url, "feedback", *args, "--as", "dana")
        assert (refused.code, refused.out) == (2, ""), (args, refused)
        assert message in refused.err and refused.err.count("\n") == 1, refused.err
    assert len(await _feedback(pool, handle.id)) == 2


def test_feedback_is_checked_before_it_is_kept() -> None:
    assert feedback("g", None, " dana ", 5).person == "dana"
    with pytest.raises(InvalidFeedback, match="expected the name of who gives feedback"):
        feedback("g", None, "  ", 3)
    with pytest.raises(InvalidFeedback, match="at most 2000 characters, got 2001"):
        feedback("g", "t", "dana", 3, "x" * 2001)
