"""Improvement suggestions: each rule on plain facts, then on a history planted in PostgreSQL."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.suggestions import SuggestionActivities
from goalkeeper.statuses import GoalStatus, TaskStatus
from goalkeeper.suggestions import (
    AgentRecord,
    ApprovalEvent,
    ApprovalWait,
    GoalFacts,
    Rejection,
    SkillAgents,
    SuggestFor,
    SuggestionKind,
    TaskCost,
    approval_waits,
    normalise,
    suggest,
    suggestion_id,
)
from tests.helpers import decide, goal_spec, report, start_goal, wait_task
from tests.starter import starter

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


# The rules, on plain facts.


def _kinds(facts: GoalFacts) -> list[tuple[str, str]]:
    return [(s.kind.value, s.subject) for s in suggest(facts)]


def test_an_agent_failing_most_of_at_least_three_attempts_of_a_skill() -> None:
    facts = GoalFacts(
        goal_id="g",
        agents=[
            AgentRecord(agent_id="a", skill="writing", attempts=3, failed=1, rejected=1),
            AgentRecord(agent_id="b", skill="writing", attempts=4, failed=1, timed_out=1),
            AgentRecord(agent_id="c", skill="data", attempts=2, failed=2),
        ],
    )
    assert _kinds(facts) == [("agent_failing", "a/writing")]
    found = suggest(facts)[0]
    assert found.evidence == {
        "agent_id": "a",
        "skill": "writing",
        "attempts": 3,
        "failed": 1,
        "timed_out": 0,
        "rejected": 1,
    }
    assert "failed 2 of its last 3 attempts of skill 'writing'" in found.message


def test_the_same_reason_twice_from_one_approver_goes_into_the_guidance() -> None:
    seen = [
        Rejection(goal_id="old", task_id="e1", approver="ops", comment="Mention the free trial."),
        Rejection(goal_id="g", task_id="e2", approver="ops", comment="  mention the FREE trial"),
        Rejection(goal_id="g", task_id="e3", approver="kim", comment="Mention the free trial"),
        Rejection(goal_id="g", task_id="e4", approver="kim", comment=""),
        Rejection(goal_id="g", task_id="e5", approver="kim", comment="..."),
    ]
    with_runbook = suggest(GoalFacts(goal_id="g", runbook="campaign", rejections=seen))
    assert [(s.kind, s.subject) for s in with_runbook] == [
        (SuggestionKind.REPEATED_REJECTION, "campaign/ops/mention the free trial")
    ]
    assert with_runbook[0].action == (
        "add to runbook 'campaign''s guidance: 'mention the FREE trial'"
    )
    assert with_runbook[0].evidence["tasks"] == ["old/e1", "g/e2"]
    alone = suggest(GoalFacts(goal_id="g", rejections=seen[1:2] * 2))
    assert alone[0].subject == "g/ops/mention the free trial"
    assert "goal 'g''s guidance" in alone[0].action
    # A pattern only in other goals is theirs to report.
    assert suggest(GoalFacts(goal_id="g", rejections=[seen[0], seen[0]])) == []
    assert normalise("Mention  the free-trial!") == "mention the free trial"


def test_a_skill_served_only_by_provisioned_agents() -> None:
    facts = GoalFacts(
        goal_id="g",
        workspace="acme",
        skills=[
            SkillAgents(skill="analytics", agents=["auto-1"], provisioned=["auto-1"], attempts=1),
            SkillAgents(
                skill="writing", agents=["a", "auto-2"], provisioned=["auto-2"], attempts=2
            ),
        ],
    )
    [found] = suggest(facts)
    assert (found.kind, found.subject) == (SuggestionKind.PROVISIONED_ONLY, "acme/analytics")
    assert "--skills analytics --workspace acme" in found.action


def test_approvals_that_waited_over_half_their_timeout_or_escalated() -> None:
    events = [
        ApprovalEvent(task_id="t1", kind="approval_requested", at=T0),
        ApprovalEvent(task_id="t2", kind="approval_requested", at=T0),
        ApprovalEvent(
            task_id="t1", kind="decision_accepted", at=T0 + timedelta(seconds=40), decided=True
        ),
        ApprovalEvent(task_id="t1", kind="approval_requested", at=T0 + timedelta(seconds=50)),
        ApprovalEvent(task_id="t3", kind="approval_requested", at=T0 + timedelta(seconds=50)),
        ApprovalEvent(task_id="t3", kind="approval_escalated", at=T0 + timedelta(seconds=60)),
        ApprovalEvent(
            task_id="t2", kind="task_failed", at=T0 + timedelta(seconds=60), decided=True
        ),
        ApprovalEvent(
            task_id="t1", kind="decision_accepted", at=T0 + timedelta(seconds=100), decided=True
        ),
    ]
    waits = approval_waits(events, 100)
    assert [(w.task_id, w.waited_seconds, w.escalated) for w in waits] == [
        ("t1", 40.0, 0),
        ("t2", 60.0, 0),
        ("t1", 50.0, 0),
        ("t3", 50.0, 1),  # undecided when the goal ended, but escalated
    ]
    [found] = suggest(GoalFacts(goal_id="g", approvals=waits))
    assert (found.kind, found.subject) == (SuggestionKind.SLOW_APPROVAL, "goal:g")
    assert found.message == "2 of 4 approvals waited more than half their timeout, 1 escalated"
    assert "add an escalation level" in found.action
    with_escalation = suggest(GoalFacts(goal_id="g", approvals=waits, escalation_levels=1))
    assert "add approvers to the first level" in with_escalation[0].action
    quick = [ApprovalWait(task_id="t", waited_seconds=50, timeout_seconds=100)]
    assert suggest(GoalFacts(goal_id="g", approvals=quick)) == []


def test_a_task_three_times_its_usual_cost_with_three_samples() -> None:
    facts = GoalFacts(
        goal_id="g",
        runbook="campaign",
        task_costs=[
            TaskCost(task_id="costly", cost_usd=0.3, earlier_usd=[0.1, 0.1, 0.5]),
            TaskCost(task_id="fine", cost_usd=0.29, earlier_usd=[0.1, 0.1, 0.1]),
            TaskCost(task_id="new", cost_usd=9.0, earlier_usd=[0.1, 0.1]),
            TaskCost(task_id="free", cost_usd=1.0, earlier_usd=[0.0, 0.0, 0.0]),
        ],
    )
    [found] = suggest(facts)
    assert (found.kind, found.subject) == (SuggestionKind.COSTLY_TASK, "g/costly")
    assert found.evidence["median_usd"] == 0.1 and found.evidence["samples"] == 3
    assert "3.0x the usual $0.1000 of runbook 'campaign'" in found.message


def test_ids_derive_from_goal_kind_and_subject() -> None:
    one = suggestion_id("g", SuggestionKind.COSTLY_TASK, "g/t")
    assert one == suggestion_id("g", SuggestionKind.COSTLY_TASK, "g/t")
    assert one != suggestion_id("g2", SuggestionKind.COSTLY_TASK, "g/t")
    assert one != suggestion_id("g", SuggestionKind.SLOW_APPROVAL, "g/t")


# The activity, on a history planted in PostgreSQL.


class History:
    """Rows planted as the engine would have written them, under ids of the test's own."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.tag = uuid.uuid4().hex[:8]
        self.workspace = f"ws-{self.tag}"
        self.runbook = f"rb-{self.tag}"

    def id(self, name: str) -> str:
        return f"{name}-{self.tag}"

    async def agent(self, name: str, skills: list[str], provisioned: bool = False) -> str:
        agent_id = self.id(name)
        await self.pool.execute(
            "INSERT INTO agents (agent_id, workspace, skills, provisioned) VALUES ($1, $2, $3, $4)",
            agent_id,
            self.workspace,
            skills,
            provisioned,
        )
        return agent_id

    async def goal(self, name: str, created_at: datetime, **spec: Any) -> str:
        goal_id = self.id(name)
        await self.pool.execute(
            "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec, status, "
            "created_at) VALUES ($1, 'run', $1, $2, $3, 'completed', $4)",
            goal_id,
            self.workspace,
            {"runbook": self.runbook, "approval_timeout_seconds": 100, **spec},
            created_at,
        )
        return goal_id

    async def task(
        self, goal_id: str, task_id: str, skill: str, outcomes: list[tuple[str, str, float]]
    ) -> list[str]:
        """A task and its attempts, each `(agent, assignment status, cost)`; their ids."""
        await self.pool.execute(
            "INSERT INTO tasks (goal_id, task_id, title, skill, status, agent_id, attempts) "
            "VALUES ($1, $2, $2, $3, 'completed', $4, $5)",
            goal_id,
            task_id,
            skill,
            outcomes[-1][0],
            len(outcomes),
        )
        ids = []
        for attempt, (agent, status, cost) in enumerate(outcomes, 1):
            ids.append(str(uuid.uuid4()))
            await self.pool.execute(
                "INSERT INTO assignments (assignment_id, goal_id, task_id, agent_id, attempt, "
                "status, context, cost_usd) VALUES ($1, $2, $3, $4, $5, $6, '{}', $7)",
                uuid.UUID(ids[-1]),
                goal_id,
                task_id,
                agent,
                attempt,
                status,
                cost,
            )
        return ids

    async def event(
        self, goal_id: str, task_id: str, kind: str, at: datetime, **detail: Any
    ) -> None:
        await self.pool.execute(
            "INSERT INTO events (event_id, goal_id, task_id, kind, message, detail, created_at) "
            "VALUES (gen_random_uuid(), $1, $2, $3, $3, $4, $5)",
            goal_id,
            task_id,
            kind,
            detail,
            at,
        )

    async def rejection(
        self, goal_id: str, task_id: str, assignment_id: str, comment: str, at: datetime = T0
    ) -> None:
        await self.event(
            goal_id,
            task_id,
            "decision_accepted",
            at,
            approver="ops-lead",
            decision="reject",
            comment=comment,
            assignment_id=assignment_id,
        )


async def _plant(pool: asyncpg.Pool) -> tuple[History, str]:
    """A goal whose record shows one of each kind, after three earlier goals of its runbook."""
    h = History(pool)
    steady = await h.agent("steady", ["writing"])
    shaky = await h.agent("shaky", ["writing"])
    auto = await h.agent("auto-analytics", ["analytics"], provisioned=True)
    for n in range(3):
        earlier = await h.goal(f"earlier-{n}", T0 - timedelta(days=3 - n))
        await h.task(earlier, "draft", "writing", [(steady, "completed", 0.01)])
        await h.task(earlier, "report", "analytics", [(auto, "completed", 0.02)])
    goal_id = await h.goal("now", T0)
    # shaky: failed, lapsed, then did work that was sent back, twice for the same reason.
    draft = await h.task(
        goal_id,
        "draft",
        "writing",
        [
            (shaky, "failed", 0.01),
            (shaky, "timed_out", 0.0),
            (shaky, "completed", 0.02),
            (steady, "completed", 0.02),
        ],
    )
    await h.rejection(goal_id, "draft", draft[2], "Mention the free trial.")
    email = await h.task(
        goal_id, "email", "writing", [(steady, "completed", 0.01), (steady, "completed", 0.01)]
    )
    await h.rejection(goal_id, "email", email[0], "mention the free trial", T0 + timedelta(1))
    await h.task(goal_id, "report", "analytics", [(auto, "completed", 0.02)])
    for task_id, waited in (("draft", 80), ("email", 10)):
        await h.event(goal_id, task_id, "approval_requested", T0)
        await h.event(
            goal_id,
            task_id,
            "decision_accepted",
            T0 + timedelta(seconds=waited),
            approver="ops-lead",
            decision="approve",
            comment="",
            assignment_id=None,
        )
    return h, goal_id


async def _suggestions(pool: asyncpg.Pool, goal_id: str) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch("SELECT * FROM suggestions WHERE goal_id = $1", goal_id)
    return {r["kind"]: r for r in rows}


async def test_a_planted_history_gives_one_suggestion_of_each_kind_once(
    pool: asyncpg.Pool,
) -> None:
    h, goal_id = await _plant(pool)
    activities = SuggestionActivities(pool, None)
    made = await ActivityEnvironment().run(
        activities.suggest_improvements, SuggestFor(goal_id=goal_id)
    )
    assert made == 5
    found = await _suggestions(pool, goal_id)
    assert sorted(found) == sorted(k.value for k in SuggestionKind)

    failing = found["agent_failing"]
    assert failing["subject"] == f"{h.id('shaky')}/writing"
    assert failing["evidence"] == {
        "agent_id": h.id("shaky"),
        "skill": "writing",
        "attempts": 3,
        "failed": 1,
        "timed_out": 1,
        "rejected": 1,
    }
    rejected = found["repeated_rejection"]
    assert rejected["subject"] == f"{h.runbook}/ops-lead/mention the free trial"
    assert rejected["evidence"]["times"] == 2
    assert rejected["action"] == (
        f"add to runbook {h.runbook!r}'s guidance: 'mention the free trial'"
    )
    provisioned = found["provisioned_only"]
    assert provisioned["subject"] == f"{h.workspace}/analytics"
    assert provisioned["evidence"]["provisioned"] == [h.id("auto-analytics")]
    slow = found["slow_approval"]
    assert [(a["task_id"], a["waited_seconds"]) for a in slow["evidence"]["approvals"]] == [
        ("draft", 80.0)
    ]
    costly = found["costly_task"]
    assert costly["subject"] == f"{goal_id}/draft"
    assert (costly["evidence"]["cost_usd"], costly["evidence"]["median_usd"]) == (0.05, 0.01)
    assert all(r["status"] == "open" for r in found.values())

    recorded = await pool.fetch(
        "SELECT detail->>'suggestion_id' AS id FROM events WHERE goal_id = $1 "
        "AND kind = 'suggestion_made'",
        goal_id,
    )
    assert sorted(r["id"] for r in recorded) == sorted(
        str(r["suggestion_id"]) for r in found.values()
    )

    # Analysed again (a retried activity, or a goal analysed twice): nothing new.
    assert await activities.suggest_improvements(SuggestFor(goal_id=goal_id)) == 0
    assert len(await _suggestions(pool, goal_id)) == 5
    again = await pool.fetchval(
        "SELECT count(*) FROM events WHERE goal_id = $1 AND kind = 'suggestion_made'", goal_id
    )
    assert again == 5


async def test_below_every_threshold_nothing_is_suggested(pool: asyncpg.Pool) -> None:
    h = History(pool)
    steady = await h.agent("steady", ["writing", "analytics"])
    shaky = await h.agent("shaky", ["writing"])
    auto = await h.agent("auto-analytics", ["analytics"], provisioned=True)
    for n in range(2):  # two earlier goals: too few to say what is usual
        earlier = await h.goal(f"earlier-{n}", T0 - timedelta(days=3 - n))
        await h.task(earlier, "draft", "writing", [(steady, "completed", 0.01)])
    goal_id = await h.goal("now", T0)
    draft = await h.task(
        goal_id, "draft", "writing", [(shaky, "failed", 0.5), (shaky, "completed", 0.5)]
    )
    await h.rejection(goal_id, "draft", draft[1], "Shorter")
    await h.task(goal_id, "report", "analytics", [(auto, "failed", 0), (steady, "completed", 0)])
    await h.event(goal_id, "draft", "approval_requested", T0)
    await h.event(
        goal_id,
        "draft",
        "decision_accepted",
        T0 + timedelta(seconds=50),
        approver="ops-lead",
        decision="approve",
        comment="",
        assignment_id=None,
    )
    assert await SuggestionActivities(pool).suggest_improvements(SuggestFor(goal_id=goal_id)) == 0


async def test_an_open_or_dismissed_suggestion_is_not_made_again_for_another_goal(
    pool: asyncpg.Pool, database_url: str
) -> None:
    h = History(pool)
    auto = await h.agent("auto-analytics", ["analytics"], provisioned=True)
    goals = [await h.goal(f"g{n}", T0 + timedelta(hours=n), runbook=None) for n in range(4)]
    for goal_id in goals:
        await h.task(goal_id, "report", "analytics", [(auto, "completed", 0.01)])
    activities = SuggestionActivities(pool)

    assert await activities.suggest_improvements(SuggestFor(goal_id=goals[0])) == 1
    assert await activities.suggest_improvements(SuggestFor(goal_id=goals[1])) == 0  # still open
    [first] = (await _suggestions(pool, goals[0])).values()
    accepted = await starter(
        database_url,
        "suggestions",
        "accept",
        str(first["suggestion_id"]),
        "--as",
        "ops-lead",
        "--comment",
        "registered one",
    )
    assert accepted.code == 0, accepted.err
    # Accepted, and seen again: the problem came back, so it is worth saying again.
    assert await activities.suggest_improvements(SuggestFor(goal_id=goals[2])) == 1
    [second] = (await _suggestions(pool, goals[2])).values()
    dismissed = await starter(
        database_url, "suggestions", "dismiss", str(second["suggestion_id"])[:8], "--as", "ops-lead"
    )
    assert dismissed.code == 0, dismissed.err
    assert await activities.suggest_improvements(SuggestFor(goal_id=goals[3])) == 0  # a no


async def test_people_list_accept_and_dismiss_suggestions(
    pool: asyncpg.Pool, database_url: str
) -> None:
    _, goal_id = await _plant(pool)
    await SuggestionActivities(pool).suggest_improvements(SuggestFor(goal_id=goal_id))
    found = await _suggestions(pool, goal_id)
    costly, slow = (
        str(found["costly_task"]["suggestion_id"]),
        str(found["slow_approval"]["suggestion_id"]),
    )

    listed = await starter(database_url, "suggestions", "--json", "--limit", "500")
    assert listed.code == 0, listed.err
    mine = {r["suggestion_id"]: r for r in listed.json() if r["goal_id"] == goal_id}
    assert len(mine) == 5 and {r["status"] for r in mine.values()} == {"open"}
    text = await starter(database_url, "suggestions", "--limit", "500")
    assert f"{costly[:8]}  costly_task  goal {goal_id}" in text.out
    assert f"  -> see where it went: python starter.py costs --goal {goal_id}" in text.out

    accepted = await starter(
        database_url,
        "suggestions",
        "accept",
        costly[:8],
        "--as",
        "dana",
        "--comment",
        "looking into it",
        "--json",
    )
    assert accepted.code == 0, accepted.err
    body = accepted.json()
    assert (body["status"], body["decided_by"], body["decision_comment"]) == (
        "accepted",
        "dana",
        "looking into it",
    )
    dismissed = await starter(database_url, "suggestions", "dismiss", slow, "--as", "lee")
    assert dismissed.code == 0, dismissed.err
    assert dismissed.out.startswith(f"lee dismissed suggestion {slow} (slow_approval): ")

    decisions = await pool.fetch(
        "SELECT kind, detail FROM events WHERE goal_id = $1 AND kind IN "
        "('suggestion_accepted', 'suggestion_dismissed') ORDER BY seq",
        goal_id,
    )
    assert [
        (d["kind"], d["detail"]["suggestion_id"], d["detail"]["person"]) for d in decisions
    ] == [
        ("suggestion_accepted", costly, "dana"),
        ("suggestion_dismissed", slow, "lee"),
    ]
    accepted_only = await starter(
        database_url, "suggestions", "--status", "accepted", "--json", "--limit", "500"
    )
    assert costly in [r["suggestion_id"] for r in accepted_only.json()]
    assert slow not in [r["suggestion_id"] for r in accepted_only.json()]

    cases = [
        (["accept", costly, "--as", "kim"], f"suggestion {costly} is already accepted by dana"),
        (["dismiss", "ffffffff", "--as", "kim"], "no suggestion 'ffffffff'"),
        (["dismiss", "x1", "--as", "kim"], "expected a suggestion id (or its first 4 or more"),
    ]
    for args, message in cases:
        refused = await starter(database_url, "suggestions", *args)
        assert (refused.code, refused.out) == (2, ""), (args, refused)
        assert message in refused.err and refused.err.count("\n") == 1, refused.err
    status = await starter(database_url, "suggestions", "--status", "maybe")
    assert status.code == 2 and "invalid choice: 'maybe'" in status.err


async def test_new_suggestions_are_posted_to_the_alert_webhook_once(
    pool: asyncpg.Pool, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, posted = webhook
    _, goal_id = await _plant(pool)
    activities = SuggestionActivities(pool, url)
    assert await activities.suggest_improvements(SuggestFor(goal_id=goal_id)) == 5
    assert await activities.suggest_improvements(SuggestFor(goal_id=goal_id)) == 0
    [body] = posted
    assert body["source"] == "goalkeeper"
    assert sorted(a["kind"] for a in body["alerts"]) == sorted(k.value for k in SuggestionKind)
    for alert in body["alerts"]:
        assert alert["goal_id"] == goal_id and alert["message"] and alert["action"]


async def test_an_unknown_goal_is_an_error_that_retrying_cannot_fix(pool: asyncpg.Pool) -> None:
    with pytest.raises(ApplicationError, match="no goal 'no-such-goal'") as raised:
        await SuggestionActivities(pool).suggest_improvements(SuggestFor(goal_id="no-such-goal"))
    assert raised.value.non_retryable


async def test_a_real_goals_record_is_read_as_the_engine_wrote_it(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    """Sent back twice for the same reason, by provisioned agents: what the rules see."""
    spec = goal_spec(1, workspace, approvers=["ops-lead"])
    spec["tasks"][0]["requires_approval"] = True
    handle = await start_goal(client, spec, task_queue)
    agents = set()
    for attempt, comment in ((1, "Mention the free trial."), (2, "mention the FREE trial")):
        view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=attempt)
        await report(client, view)
        await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL, attempt=attempt)
        await decide(client, handle.id, "t1", "ops-lead", "reject", comment)
        agents.add(view.agent_id)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=3)
    await report(client, view)
    await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL, attempt=3)
    await decide(client, handle.id, "t1", "ops-lead", "approve")
    agents.add(view.agent_id)
    assert (await handle.result()).status is GoalStatus.COMPLETED

    # The goal may have looked already when it ended; looking again adds nothing twice.
    await SuggestionActivities(pool).suggest_improvements(SuggestFor(goal_id=handle.id))
    found = await _suggestions(pool, handle.id)
    rejected = found["repeated_rejection"]
    assert rejected["subject"] == f"{handle.id}/ops-lead/mention the free trial"
    assert rejected["evidence"]["tasks"] == [f"{handle.id}/t1", f"{handle.id}/t1"]
    provisioned = found["provisioned_only"]
    assert provisioned["subject"] == f"{workspace}/writing"
    assert set(provisioned["evidence"]["provisioned"]) == agents
    assert await pool.fetchval(
        "SELECT count(*) FROM events WHERE goal_id = $1 AND kind = 'suggestion_made'", handle.id
    ) == len(found)
