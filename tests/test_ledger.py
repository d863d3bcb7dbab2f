"""A window's record of its tasks, read without Temporal: pages, spend, agents, the
retry decisions it may take, and what its goal's report lists."""

from datetime import UTC, datetime
from typing import Any, Literal

from goalkeeper.ledger import TaskLedger
from goalkeeper.models import ApprovalDecision, GoalSpec, TaskSpec, TasksQuery, TaskSummary
from goalkeeper.progress import compute_progress
from goalkeeper.records import EventKind
from goalkeeper.statuses import Decision, GoalStatus, TaskStatus


def _ledger(policy: Literal["continue", "ask_approver"] = "continue") -> TaskLedger:
    header = GoalSpec(title="g", approvers=["ops"], on_task_failure=policy)
    specs = [
        TaskSpec(id="a", title="A", skill="s"),
        TaskSpec(id="b", title="B", skill="s", depends_on=["a"]),
        TaskSpec(id="c", title="C", skill="s"),
    ]
    return TaskLedger("g", "run", header, specs)


def _end(ledger: TaskLedger, i: int, status: TaskStatus, **fields: Any) -> None:
    ledger.schedule.next_to_start(10)
    ledger.schedule.change(i, TaskStatus.ASSIGNED)
    summary = TaskSummary(task_id=ledger.specs[i].id or "", status=status, **fields)
    ledger.keep(i, summary)
    due = (
        datetime(2030, 1, 1, tzinfo=UTC)
        if ledger.header.on_task_failure == "ask_approver"
        else None
    )
    ledger.schedule.end(i, status, retry_due=due)


def test_pages_spend_and_agents_follow_what_is_kept() -> None:
    ledger = _ledger()
    ledger.keep(0, TaskSummary(task_id="a", cost_usd=0.25, tokens_used=5))
    ledger.keep(0, TaskSummary(task_id="a", cost_usd=0.5, tokens_used=7))
    ledger.agents.add("bot")
    assert ledger.spent() == (0.5, 7)
    assert ledger.agent_ids() == ({"bot"}, set())
    page = ledger.page(TasksQuery(offset=1, limit=1))
    assert (page.total, [t.task_id for t in page.tasks], page.next_offset) == (3, ["b"], 2)
    assert ledger.totals()[TaskStatus.PENDING] == 3
    assert ledger.state().tasks[0].cost_usd == 0.5


def test_the_report_lists_every_task_and_names_those_that_did_not_complete() -> None:
    ledger = _ledger()
    _end(ledger, 0, TaskStatus.COMPLETED, agent_id="bot", attempts=1)
    _end(ledger, 2, TaskStatus.FAILED, error="boom")
    reports = ledger.task_reports()
    assert [(r.task_id, r.outcome) for r in reports] == [
        ("a", TaskStatus.COMPLETED),
        ("b", TaskStatus.PENDING),
        ("c", TaskStatus.FAILED),
    ]
    progress = compute_progress(
        "g", GoalStatus.RUNNING, "running", ledger.totals(),
        agents_total=1, agents_completed=1, cost_usd=0, tokens_used=0,
    )  # fmt: skip
    assert ledger.unfinished(progress) == "b pending; c failed"


def test_a_retry_decision_counts_only_on_a_task_awaiting_one_at_its_attempt() -> None:
    ledger = _ledger("ask_approver")
    _end(ledger, 2, TaskStatus.FAILED, attempts=2)
    decide = ApprovalDecision(approver="ops", decision=Decision.APPROVE, task_id="c")
    assert ledger.awaiting_retry() == ["c"]
    assert ledger.judge_retry(decide) is None
    assert "attempt 1" in str(ledger.judge_retry(decide.model_copy(update={"attempt": 1})))
    assert "not awaiting" in str(ledger.judge_retry(decide.model_copy(update={"task_id": "a"})))
    assert "may not decide" in str(ledger.judge_retry(decide.model_copy(update={"approver": "x"})))


def test_a_running_task_that_needs_attention_is_noted_and_events_are_facts() -> None:
    ledger = _ledger()
    ledger.schedule.next_to_start(10)
    ledger.schedule.change(0, TaskStatus.AWAITING_APPROVAL)
    ledger.keep(
        0, TaskSummary(task_id="a", status=TaskStatus.AWAITING_APPROVAL, waiting_on=["ops"])
    )
    assert ledger.task_notes() == ["waiting on approver ops for 'A'"]
    first = ledger.event(EventKind.TASK_FAILED, "x", "a", key=(1,))
    assert first.event_id == ledger.event(EventKind.TASK_FAILED, "y", "a", key=(1,)).event_id
    assert first.event_id != ledger.event(EventKind.TASK_FAILED, "x", "a", key=(2,)).event_id
    assert ledger.workflow_id(1) == "g/b"
