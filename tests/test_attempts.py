"""The rules of a task's attempts (goalkeeper.attempts), directly and by property:
no Temporal, no database."""

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper import attempts
from goalkeeper.attempts import Standing, Step
from goalkeeper.metrics import Reassignment
from goalkeeper.models import ApprovalDecision
from goalkeeper.records import EventKind
from goalkeeper.statuses import AssignmentStatus, Decision, TaskStatus

AGENTS = [f"agent-{i}" for i in range(12)]

LAPSES = {
    "deadline": ("missed its report deadline (60s)", Reassignment.DEADLINE),
    "silent": ("went silent (no heartbeat for 30s)", Reassignment.SILENT),
    "reassigned": ("stuck", Reassignment.HEALTH_CHECK),
}
REPORTS = ["deadline", "silent", "reassigned", "failed", "invalid", "completed", "abort"]
DECISIONS = ["approve", "reject", "timeout", "abort"]


@dataclass
class Task:
    """A small simulator of what `TaskWorkflow` keeps of a task, applying each `Step`
    as the workflow does and checking the rules on the way."""

    max_attempts: int
    attempts_before: int
    levels: list[list[str]]
    policy: str
    attempt: int = 0
    agent: str = ""
    status: TaskStatus = TaskStatus.PENDING
    history: tuple[str, ...] = ()
    reworks: int = 0
    excluded: list[str] = field(default_factory=list)
    rework: list[dict[str, Any]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    passed_over: set[str] = field(default_factory=set)

    def standing(self) -> Standing:
        return Standing(
            task_id="t1",
            agent_id=self.agent,
            assignment_id=f"a{self.attempt}",
            attempt=self.attempt,
            attempts_used=self.attempt - self.attempts_before,
            max_attempts=self.max_attempts,
            history=self.history,
            reworks=self.reworks,
        )

    def assign(self, prefer: str | None) -> None:
        """What the assignment activity does with `exclude` and `prefer`."""
        if prefer is not None and prefer not in self.excluded:
            agent = prefer
        else:
            agent = next(a for a in AGENTS if a not in self.excluded and a != prefer)
        assert agent not in self.passed_over, f"{agent} failed or lapsed, yet was chosen again"
        self.attempt += 1
        assert self.attempt - self.attempts_before <= self.max_attempts
        self.agent = agent
        self.agents.append(agent)
        self.status = TaskStatus.ASSIGNED

    def apply(self, step: Step) -> str | None:
        assert not self.status.is_terminal, "a step after the task ended"
        self.steps.append(step)
        if step.exclude is not None:
            self.excluded.append(step.exclude)
        if step.rework is not None:
            self.rework.append(step.rework)
        self.status = step.status
        self.history = step.history
        self.reworks = step.reworks if step.reworks is not None else self.reworks
        assert step.ended is step.status.is_terminal
        return step.prefer


def run(task: Task, script: list[str]) -> Task:
    """Drive the task through `script` (outcomes of attempts and of approval levels),
    then by completions and approvals to its end, as `TaskWorkflow._work` does."""
    outcomes = iter(script)

    def next_outcome(kinds: list[str], default: str) -> str:
        for outcome in outcomes:
            if outcome in kinds:
                return outcome
        return default

    prefer: str | None = None
    for _ in range(200):
        if task.status is TaskStatus.PENDING:
            task.assign(prefer)
        standing = task.standing()
        agent = task.agent
        outcome = next_outcome(REPORTS, "completed")
        if outcome == "abort":
            task.apply(
                attempts.lapsed(standing, "aborted: stop", Reassignment.HEALTH_CHECK, "stop")
            )
            return task
        if outcome in LAPSES:
            why, reason = LAPSES[outcome]
            step = attempts.lapsed(standing, why, reason)
        elif outcome == "failed":
            step = attempts.failed(standing, "boom")
        elif outcome == "invalid":
            step = attempts.invalid(standing, "not JSON", "json")
        else:
            step = attempts.completed(standing, task.levels[0] if task.levels else None)
        if outcome in ("failed", *LAPSES):
            assert step.exclude == agent and step.prefer is None
            task.passed_over.add(agent)
        if outcome == "invalid" and not step.spent:
            assert step.prefer == agent and step.rework is not None
        prefer = task.apply(step)
        if step.ended:
            return task
        if step.status is not TaskStatus.AWAITING_APPROVAL:
            continue
        decision = None
        for level, approvers in enumerate(task.levels):
            if level > 0:
                task.apply(attempts.escalated(task.standing(), level, approvers, 60))
            choice = next_outcome(DECISIONS, "approve")
            if choice == "abort":
                task.apply(attempts.aborted_awaiting(task.standing(), "stop"))
                return task
            if choice != "timeout":
                kind = Decision.APPROVE if choice == "approve" else Decision.REJECT
                decision = ApprovalDecision(approver=approvers[0], decision=kind, comment="why")
                break
        if decision is None:
            end = attempts.unanswered(task.standing(), len(task.levels), task.policy)
            if isinstance(end, Step):
                task.apply(end)
                return task
            decision = end
        step = attempts.decided(attempts.after(standing, step), decision)
        if decision.decision is Decision.REJECT and not step.spent:
            assert step.prefer == agent
        prefer = task.apply(step)
        if step.ended:
            return task
    raise AssertionError("the task never ended")


tasks = st.builds(
    Task,
    max_attempts=st.integers(1, 6),
    attempts_before=st.integers(0, 4),
    levels=st.lists(
        st.lists(st.sampled_from(["ann", "bob", "cy"]), min_size=1, max_size=2),
        max_size=3,
    ),
    policy=st.sampled_from(["reject", "fail"]),
)
scripts = st.lists(st.sampled_from(REPORTS + DECISIONS), max_size=40)


@settings(max_examples=400, deadline=None)
@given(task=tasks, script=scripts)
def test_every_path_ends_once_within_its_attempts(task: Task, script: list[str]) -> None:
    task.attempt = task.attempts_before  # earlier runs of the goal used these
    run(task, script)
    ends = [s for s in task.steps if s.ended]
    assert len(ends) == 1 and task.steps[-1] is ends[0]
    assert task.status.is_terminal
    terminal_kinds = {
        EventKind.TASK_COMPLETED,
        EventKind.TASK_FAILED,
        EventKind.TASK_CANCELLED,
    }
    # One terminal event: the kinds an end uses never mark a step that is not one.
    assert all(s.ended for s in task.steps if s.kind in terminal_kinds)
    assert task.attempt - task.attempts_before <= task.max_attempts
    if any(s.spent for s in task.steps):
        assert task.status is TaskStatus.FAILED
        assert task.attempt - task.attempts_before == task.max_attempts


@settings(max_examples=200, deadline=None)
@given(task=tasks, script=scripts)
def test_failed_and_lapsed_agents_are_never_chosen_again(task: Task, script: list[str]) -> None:
    task.attempt = task.attempts_before
    run(task, script)  # `assign` checks each choice against the agents passed over
    assert set(task.passed_over) <= set(task.excluded)


@settings(max_examples=200, deadline=None)
@given(task=tasks, script=scripts)
def test_rework_goes_back_to_its_author(task: Task, script: list[str]) -> None:
    task.attempt = task.attempts_before
    run(task, script)
    sent_back = [i for i, s in enumerate(task.steps) if s.rework is not None]
    assert len(task.rework) == len(sent_back)
    for feedback in task.rework:
        # The feedback names the assignment it is about; the next one is the same agent's.
        attempt = int(str(feedback["assignment_id"])[1:])
        assert (
            task.agents[attempt - task.attempts_before]
            == task.agents[attempt - task.attempts_before - 1]
        )


def standing(**overrides: Any) -> Standing:
    values: dict[str, Any] = {
        "task_id": "csv",
        "agent_id": "alice",
        "assignment_id": "g/csv/2",
        "attempt": 2,
        "attempts_used": 2,
        "max_attempts": 3,
        "history": ("attempt 1: agent bob failed: boom",),
        "reworks": 0,
    }
    return Standing(**{**values, **overrides})


def test_a_lapse_reassigns_and_excludes_the_agent() -> None:
    step = attempts.lapsed(standing(), "missed its report deadline (60s)", Reassignment.DEADLINE)
    assert step.status is TaskStatus.PENDING and step.assignment is AssignmentStatus.TIMED_OUT
    assert step.kind is EventKind.AGENT_UNRESPONSIVE
    assert step.message == (
        "agent 'alice' missed its report deadline (60s) on task 'csv'; reassigning"
    )
    assert step.history[-1] == "attempt 2: agent alice missed its report deadline (60s)"
    assert (step.exclude, step.prefer, step.reassigned) == ("alice", None, Reassignment.DEADLINE)


def test_the_last_attempt_failing_fails_the_task() -> None:
    step = attempts.failed(standing(attempts_used=3), None)
    assert step.status is TaskStatus.FAILED and step.kind is EventKind.TASK_FAILED
    assert step.message == "task 'csv' failed after 3 attempts"
    assert (
        step.error
        == "attempt 1: agent bob failed: boom; attempt 2: agent alice failed: no error given"
    )
    assert step.spent and step.ended and step.assignment is AssignmentStatus.FAILED


def test_an_aborted_attempt_is_cancelled() -> None:
    step = attempts.lapsed(
        standing(), "aborted: goal failed", Reassignment.HEALTH_CHECK, "goal failed"
    )
    assert step.status is TaskStatus.SKIPPED and step.assignment is AssignmentStatus.CANCELLED
    assert step.message == "task 'csv' aborted: goal failed"
    assert step.history[-1] == "attempt 2: aborted (goal failed)"
    assert step.exclude is None


def test_an_invalid_result_goes_back_to_its_agent() -> None:
    step = attempts.invalid(standing(), "expected an object, got a list", "json")
    assert step.kind is EventKind.RESULT_INVALID and step.prefer == "alice"
    assert step.message == (
        "agent 'alice' gave task 'csv' an invalid json result; asking again: "
        "expected an object, got a list"
    )
    assert step.rework == {
        "approver": "goalkeeper",
        "comment": "expected an object, got a list",
        "assignment_id": "g/csv/2",
    }


def test_completion_asks_the_first_approvers() -> None:
    step = attempts.completed(standing(), ["ops-lead"])
    assert step.status is TaskStatus.AWAITING_APPROVAL and step.keeps_result
    assert step.message == "task 'csv' awaits approval by one of ['ops-lead']"
    assert (step.waiting_on, step.approval_level) == (("ops-lead",), 0)
    done = attempts.completed(standing(), None)
    assert done.message == "task 'csv' completed by agent 'alice'" and done.ended


def test_decisions_and_the_end_of_the_chain() -> None:
    reject = ApprovalDecision(approver="ops-lead", decision=Decision.REJECT, comment="redo")
    step = attempts.decided(standing(), reject)
    assert step.message == "task 'csv' sent back for rework by 'ops-lead'"
    assert step.history[-1] == "ops-lead rejected: redo" and step.reworks == 1
    assert step.detail == {
        "approver": "ops-lead",
        "decision": "reject",
        "comment": "redo",
        "assignment_id": "g/csv/2",
    }
    out = attempts.decided(standing(attempts_used=3), reject)
    assert out.message == "task 'csv' rejected and out of attempts (3)" and out.ended
    approve = ApprovalDecision(approver="ops-lead", decision=Decision.APPROVE, signed_by="deputy")
    step = attempts.decided(standing(), approve)
    assert step.message == (
        "task 'csv' approved by 'ops-lead' (signed by 'deputy' on their behalf)"
    )
    assert step.status is TaskStatus.COMPLETED and step.history[-1] == "ops-lead approved"
    escalated = attempts.escalated(standing(), 1, ["cto"], 60)
    assert escalated.message == "no decision on task 'csv' within 60s; escalated to ['cto']"
    failed = attempts.unanswered(standing(), 2, "fail")
    assert isinstance(failed, Step) and failed.error == "no decision at any of 2 approval levels"
    rejected = attempts.unanswered(standing(), 2, "reject")
    assert isinstance(rejected, ApprovalDecision) and rejected.approver == "goalkeeper"
