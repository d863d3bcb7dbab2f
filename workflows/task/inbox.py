"""`TaskInbox`: what a task's agents, approvers and goal send it, taken or refused.

Each message has one receiving path, which a signal and an update share: a signal
records what it refuses in the audit trail, an update tells its caller why.
"""

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from goalkeeper.metrics import Rejected
    from goalkeeper.models import AgentReport, ApprovalDecision, Heartbeat, Reassign
    from goalkeeper.records import EventKind
    from monitoring import metrics
    from workflows.task.judge import KEYS_PER_DECISION, TaskJudge
    from workflows.task.record import TaskRecord

REFUSED = {
    Rejected.REPORT: ("ReportRejected", EventKind.REPORT_REJECTED),
    Rejected.DECISION: ("DecisionRejected", EventKind.DECISION_REJECTED),
    Rejected.HEARTBEAT: ("HeartbeatRejected", EventKind.HEARTBEAT_REJECTED),
}
"""A refused message: the error type an update's caller sees, the event a signal leaves."""


class TaskInbox:
    """The report, decision, reassignment and abort the task has taken for its current
    assignment, and the heartbeats and messages counted this run."""

    def __init__(self, record: TaskRecord, judge: TaskJudge) -> None:
        self._record = record
        self._judge = judge
        self.report: AgentReport | None = None
        self.decision: ApprovalDecision | None = None
        self.reassign: str | None = None
        """Why the health check (or a person) takes the task from its agent, once asked."""
        self.reassigned_by: Reassign | None = None
        """A person's request to take it, through the goal: whom to, and who asked."""
        self.abort: str | None = None
        """Why the goal ends the task without a result, once it asks."""
        self.heartbeats = 0
        self.messages = 0
        """Reports and heartbeats this run received, and internal messages it refused:
        past `MESSAGES_PER_RUN` the task continues as new."""
        self._signals = 0
        """Signals this run received, counted as each arrives: names its rejections."""
        self._waiting = self._judged = 0
        """Decisions that waited for a report, and those of them judged since: in order."""

    def received(self) -> int:
        """Count a signal as it arrives (before any wait), in the order of the history."""
        self._signals += 1
        return self._signals

    def assigned(self) -> None:
        """A new assignment holds the task: nothing taken for the one before counts."""
        self.report = None
        self.decision = None
        self.reassign = None
        self.reassigned_by = None
        self._judge.assigning = None

    async def take_report(
        self, payload: tuple[Any, ...], received: int | None = None
    ) -> int | None:
        """Judge a report and apply it; returns how many changes had settled before it,
        None when refused."""
        self.messages += 1
        report = await self._judge.report(payload)
        if isinstance(report, str):
            await self._refuse(Rejected.REPORT, report, payload, received)
            return None
        settled = self._record.settled
        self._judge.reported.add(report.assignment_id)
        self.report = report
        self._record.settling = True
        return settled

    async def take_decision(
        self, payload: tuple[Any, ...], received: int | None = None
    ) -> int | None:
        """Judge a decision once a report before it is applied, and take it; returns how
        many changes had settled before it, None when refused."""
        await self._after_settling()
        decision = await self._decision_now(payload)
        if isinstance(decision, str):
            await self._refuse(Rejected.DECISION, decision, payload, received)
            return None
        settled = self._record.settled
        self.decision = decision
        return settled

    def prejudge_decision(self, payload: tuple[Any, ...]) -> str | None:
        """Why an update's decision is rejected at once, if it is; its signature is judged
        by the handler, against the keys as they are then."""
        if self._record.settling:  # the handler judges it once the report is applied
            return None
        decision = self._judge.decision(payload, self.decision is not None, signed=False)
        return decision if isinstance(decision, str) else None

    async def take_heartbeat(self, payload: tuple[Any, ...], received: int | None = None) -> None:
        """Judge a heartbeat and count it; a signal's stale ones are recorded once each."""
        self.messages += 1
        beat = await self._judge.heartbeat(payload)
        if isinstance(beat, str):
            recorded = True
            if received is not None:  # one record per assignment, not one per stale beat
                sent = payload[0] if len(payload) == 1 and isinstance(payload[0], dict) else {}
                recorded = self._record.first_rejection(str(sent.get("assignment_id") or beat))
            await self._refuse(Rejected.HEARTBEAT, beat, payload, received, recorded)
            return
        self.beat(workflow.now(), beat)

    def beat(self, at: datetime, beat: Heartbeat | None = None) -> None:
        """Count a heartbeat of the agent, sent at `at`."""
        if beat is not None and beat.at is not None:
            self._judge.signers.last_beat_at = beat.at
        self.heartbeats += 1
        view = self._record.view
        if view.last_heartbeat_at is None or at > view.last_heartbeat_at:
            view.last_heartbeat_at = at

    async def _refuse(
        self,
        what: Rejected,
        problem: str,
        payload: tuple[Any, ...],
        received: int | None,
        recorded: bool = True,
    ) -> None:
        """Refuse an agent's or approver's message: an update's caller is told why; a
        signal's refusal (number `received` of this run) goes to the audit trail."""
        metrics.rejected(workflow.metric_meter(), what)
        error_type, kind = REFUSED[what]
        if received is None:
            raise ApplicationError(problem, type=error_type, non_retryable=True)
        if recorded:
            await self._record.record_rejection(kind, problem, payload, received)

    async def refuse_internal(self, problem: str, payload: tuple[Any, ...], received: int) -> None:
        """A message that poses as Goalkeeper's own: counted, and recorded like any refusal."""
        self.messages += 1
        metrics.rejected(workflow.metric_meter(), Rejected.INTERNAL)
        await self._record.record_rejection(EventKind.MESSAGE_REJECTED, problem, payload, received)

    async def _after_settling(self) -> None:
        """Let a report that came first be applied before a decision is judged; decisions
        that had to wait are then judged in the order they came."""
        if not self._record.settling and self._waiting == self._judged:
            return
        ticket, self._waiting = self._waiting, self._waiting + 1
        await workflow.wait_condition(lambda: not self._record.settling and self._judged == ticket)
        self._judged += 1

    async def _decision_now(self, payload: tuple[Any, ...]) -> ApprovalDecision | str:
        """Judged against the approvers' keys as they are now: a replaced key no longer
        decides, and a new one does, for a task already waiting."""
        judge = self._judge
        decision = judge.decision(payload, self.decision is not None, signed=False)
        if isinstance(decision, str) or not judge.signers.required:
            return decision
        if workflow.patched(KEYS_PER_DECISION):
            await judge.load_approver_keys(apart=True)
        return judge.decision(payload, self.decision is not None)
