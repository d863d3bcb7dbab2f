"""`TaskWaiting`: a task's waits for its agent's report and its approvers' decision.

Each wait is one durable timer to the next moment that matters (a deadline, the end of
an allowed silence, an approval level's timeout), never one per heartbeat.
"""

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from goalkeeper import attempts
    from goalkeeper.metrics import Reassignment
    from goalkeeper.models import AgentReport, ApprovalDecision
    from workflows.task.inbox import TaskInbox
    from workflows.task.judge import TaskJudge
    from workflows.task.record import TaskRecord

MESSAGES_PER_RUN = 1000
"""Heartbeats and reports one run takes before it continues as new, well inside
Temporal's limits of 2,000 updates and 10,000 signals per run."""


class Lapse(str):
    """Why an assignment ended without a report: deadline, silence, reassignment, abort."""

    reason = Reassignment.HEALTH_CHECK
    """How the reassignment it leads to is counted: as the `reassign` signal's, unless set."""

    @classmethod
    def of(cls, why: str, reason: Reassignment) -> "Lapse":
        """A lapse counted as `reason`."""
        lapse = cls(why)
        lapse.reason = reason
        return lapse


class TaskWaiting:
    """Waits for what the inbox takes, holding the agent to its deadline and its
    heartbeats, and escalating an unanswered approval level by level."""

    def __init__(
        self,
        record: TaskRecord,
        judge: TaskJudge,
        inbox: TaskInbox,
        apply: Callable[[attempts.Step], Awaitable[object]],
        continue_as_new: Callable[[], Awaitable[None]],
    ) -> None:
        self._record = record
        self._judge = judge
        self._inbox = inbox
        self._apply = apply
        """Carries out a step of the attempt rules: an escalation, or the task's end."""
        self._continue_as_new = continue_as_new

    async def report(self) -> AgentReport | Lapse:
        """The agent's report, or why none will come: deadline, silence, reassignment, abort.

        One durable timer to the next moment that matters: the report deadline, or the
        end of the allowed silence, when heartbeats written to PostgreSQL are read.
        """
        input, inbox = self._record.input, self._inbox
        view = self._record.view
        assignment_id = view.assignment_id
        assert assignment_id is not None and view.report_due_at is not None
        silence = timedelta(seconds=input.heartbeat_timeout_seconds)
        due = view.report_due_at
        looked_at = view.assigned_at or workflow.now()

        def arrived() -> bool:
            report = inbox.report
            return report is not None and report.assignment_id == assignment_id

        while True:
            if arrived():
                assert inbox.report is not None
                return inbox.report
            if inbox.abort is not None:
                return self._lapse(assignment_id, f"aborted: {inbox.abort}")
            if inbox.reassign is not None:
                asked = Reassignment.REQUESTED if inbox.reassigned_by else Reassignment.HEALTH_CHECK
                return self._lapse(assignment_id, inbox.reassign, asked)
            now = workflow.now()
            if now >= due:
                return self._lapse(
                    assignment_id,
                    f"missed its report deadline ({input.report_deadline_seconds}s)",
                    Reassignment.DEADLINE,
                )
            heard = self._record.view.last_heartbeat_at
            if now >= looked_at + silence:
                heard = await self._last_heard(assignment_id, heard)
                looked_at = now
                if heard is not None and now >= heard + silence:
                    return self._lapse(
                        assignment_id,
                        f"went silent (no heartbeat for {input.heartbeat_timeout_seconds}s)",
                        Reassignment.SILENT,
                    )
            if inbox.messages >= MESSAGES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()
            look = (heard if heard is not None and heard > looked_at else looked_at) + silence
            beats = inbox.heartbeats

            def stirred(beats: int = beats) -> bool:
                return (
                    arrived()
                    or inbox.heartbeats != beats
                    or inbox.reassign is not None
                    or inbox.abort is not None
                )

            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    stirred,
                    timeout=max(min(due, look) - now, timedelta(seconds=1)),
                    timeout_summary=f"report or heartbeat from {self._record.view.agent_id}",
                )

    async def _last_heard(self, assignment_id: str, heard: datetime | None) -> datetime | None:
        """The agent's last heartbeat once the one it wrote to PostgreSQL is counted."""
        # A regular activity: this read runs from a timer for as long as the task
        # does, and a local activity there can trip queries during replay.
        stored = await self._judge.stored_heartbeat(assignment_id)
        if stored is None:
            return heard
        self._inbox.beat(stored)
        return self._record.view.last_heartbeat_at

    def _lapse(
        self, assignment_id: str, why: str, reason: Reassignment = Reassignment.HEALTH_CHECK
    ) -> Lapse:
        """End an assignment without a report: from now on nothing of it counts."""
        self._record.closed.add(assignment_id)
        return Lapse.of(why, reason)

    async def decision(self) -> ApprovalDecision | None:
        """A decision from the approvers of each level in turn, escalating on timeout.

        Returns None when the task ended here: aborted, or the chain ran out and the
        goal's policy is to fail the task.
        """
        input, inbox, record = self._record.input, self._inbox, self._record
        timeout = timedelta(seconds=input.approval_timeout_seconds)
        for level, approvers in enumerate(input.approval_levels):
            if level > 0:
                step = attempts.escalated(
                    record.standing(), level, approvers, input.approval_timeout_seconds
                )
                await self._apply(step)
            try:
                await workflow.wait_condition(
                    lambda: inbox.decision is not None or inbox.abort is not None,
                    timeout=timeout,
                    timeout_summary=f"decision by {', '.join(approvers)}",
                )
            except TimeoutError:
                continue
            if inbox.abort is not None:
                break
            return inbox.decision
        if inbox.abort is not None:
            await self._apply(attempts.aborted_awaiting(record.standing(), inbox.abort))
            return None
        end = attempts.unanswered(
            record.standing(), len(input.approval_levels), input.on_approval_timeout
        )
        if isinstance(end, ApprovalDecision):
            return end
        await self._apply(end)
        return None
