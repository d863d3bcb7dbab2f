"""`TaskWorkflow`: one task from assignment to an approved result, or to a visible failure."""

import contextlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.assignment import AssignmentActivities
    from activities.read_model import ReadModelActivities
    from goalkeeper import search_attributes as sa
    from goalkeeper.models import (
        AgentReport,
        ApprovalDecision,
        Heartbeat,
        TaskInput,
        TaskView,
    )
    from goalkeeper.records import (
        AssignAgent,
        Assignment,
        EndAssignment,
        Event,
        EventKind,
        RecordTask,
    )
    from goalkeeper.statuses import AssignmentStatus, Decision, ReportOutcome, TaskStatus
    from workflows.messages import parse_message, reject_if, summarize_payload
    from workflows.options import ACTIVITY_TIMEOUT, ASSIGN_RETRY, record

LATE_REPORT_WINDOW = timedelta(minutes=2)
"""How long an ended task stays open to record late or duplicate reports. After it,
Temporal itself refuses signals to the task ("workflow execution already completed")."""

INLINE_RESULT_LIMIT = 128 * 1024
"""Largest result, as JSON, carried in workflow history; larger ones go by reference."""

SYSTEM_APPROVER = "goalkeeper"
"""Who decides when the escalation chain ends without a decision."""


AgentMessage = TypeVar("AgentMessage", AgentReport, Heartbeat)
"""What an agent sends about its assignment."""


class Lapse(str):
    """Why an assignment ended without a report: deadline, silence, reassignment, abort."""


@workflow.defn
class TaskWorkflow:
    """Gets the task an agent, holds it to its deadlines, waits for approval, keeps the goal told.

    Every change of state is written to PostgreSQL and signalled to the goal
    workflow (`task_update`) with a growing `seq`, so the goal's progress is exact.
    Failed reports, missed deadlines, silent agents and rejected work share one
    attempt budget; each lapse reassigns the task at once, from a durable timer.
    """

    @workflow.init
    def __init__(self, input: TaskInput) -> None:
        task = input.task
        self._input = input
        base = input.previous or TaskView(
            goal_id=input.goal_id, task_id=task.id or "", title="", skill=""
        )
        self._view = base.model_copy(
            update={
                "title": task.title,
                "skill": task.skill,
                "depends_on": task.depends_on,
                "requires_approval": task.requires_approval,
                "status": TaskStatus.PENDING,
                "error": None,
                "ended_at": None,
            }
        )
        self._attempts_before = self._view.attempts
        self._report: AgentReport | None = None
        self._decision: ApprovalDecision | None = None
        self._reported: set[str] = set()
        self._assigning: str | None = None
        self._heartbeats = 0
        self._quiet_rejections: set[str] = set()
        self._reassign: Lapse | None = None
        self._abort: str | None = None
        self._settled = 0
        self._shown: tuple[TaskStatus, str | None] | None = None
        self._rework: list[dict[str, Any]] = []

    @workflow.run
    async def run(self, input: TaskInput) -> TaskView:
        if not input.task.id:
            raise ApplicationError(
                "task input has no task id; start tasks through a GoalWorkflow",
                type="InvalidTaskInput",
                non_retryable=True,
            )
        self._view.started_at = self._view.started_at or workflow.now()
        await self._work()
        # Stay open a little so late and duplicate reports are recorded, not refused.
        await workflow.sleep(LATE_REPORT_WINDOW, summary="recording late reports")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._view

    @workflow.query
    def status(self) -> TaskView:
        """The task as it is now."""
        return self._view

    # Agents and approvers: a signal records what it rejects; an update tells the caller.

    @workflow.signal(name="agent_report")
    async def agent_report(self, *payload: Any) -> None:
        """An agent's report; only the assigned agent's, for its current assignment, counts."""
        report = await self._judge_report(payload)
        if isinstance(report, str):
            await self._record_rejection(EventKind.REPORT_REJECTED, report, payload)
        else:
            self._accept_report(report)

    @workflow.update(name="report")
    async def report(self, *payload: Any) -> TaskView:
        """`agent_report`, answered: the task after the report, or why it was rejected."""
        report = await self._judge_report(payload)
        if isinstance(report, str):
            raise ApplicationError(report, type="ReportRejected", non_retryable=True)
        settled = self._settled
        self._accept_report(report)
        await workflow.wait_condition(lambda: self._settled > settled)
        return self._view

    @report.validator
    def _validate_report(self, *payload: Any) -> None:
        reject_if(self._prejudge(payload, AgentReport, "agent report", self._report_problem))

    @workflow.signal(name="approval_decision")
    async def approval_decision(self, *payload: Any) -> None:
        """An approver's decision; only the approvers asked at this level may decide."""
        decision = self._judge_decision(payload)
        if isinstance(decision, str):
            await self._record_rejection(EventKind.DECISION_REJECTED, decision, payload)
        else:
            self._decision = decision

    @workflow.update(name="decide")
    async def decide(self, *payload: Any) -> TaskView:
        """`approval_decision`, answered: the task after the decision, or why it was rejected."""
        decision = self._judge_decision(payload)
        if isinstance(decision, str):
            raise ApplicationError(decision, type="DecisionRejected", non_retryable=True)
        settled = self._settled
        self._decision = decision
        await workflow.wait_condition(lambda: self._settled > settled)
        return self._view

    @decide.validator
    def _validate_decision(self, *payload: Any) -> None:
        reject_if(self._judge_decision(payload))

    @workflow.signal(name="agent_heartbeat")
    async def agent_heartbeat(self, *payload: Any) -> None:
        """An agent saying it still works on its assignment; silence past the timeout lapses it."""
        beat = await self._judge_heartbeat(payload)
        if isinstance(beat, str):
            # One record per assignment: a stale agent's every beat would flood the trail.
            sent = payload[0] if len(payload) == 1 and isinstance(payload[0], dict) else {}
            key = str(sent.get("assignment_id") or beat)
            if key not in self._quiet_rejections:
                self._quiet_rejections.add(key)
                await self._record_rejection(EventKind.HEARTBEAT_REJECTED, beat, payload)
        else:
            self._beat()

    @workflow.update(name="heartbeat")
    async def heartbeat(self, *payload: Any) -> TaskView:
        """`agent_heartbeat`, answered: rejected once the assignment is no longer the agent's."""
        beat = await self._judge_heartbeat(payload)
        if isinstance(beat, str):
            raise ApplicationError(beat, type="HeartbeatRejected", non_retryable=True)
        self._beat()
        return self._view

    @heartbeat.validator
    def _validate_heartbeat(self, *payload: Any) -> None:
        reject_if(self._prejudge(payload, Heartbeat, "heartbeat", self._heartbeat_problem))

    @workflow.signal(name="reassign")
    def reassign(self, reason: str = "reassigned on request") -> None:
        """Take the task from its current agent now (used by the health check)."""
        if self._view.status is TaskStatus.ASSIGNED:
            self._reassign = Lapse(str(reason)[:500])

    @workflow.signal(name="abort")
    def abort(self, reason: str = "aborted") -> None:
        """End the task without a result (the goal failed); its agent is released."""
        if not self._view.status.is_terminal:
            self._abort = str(reason)[:500]

    async def _judge_report(self, payload: tuple[Any, ...]) -> AgentReport | str:
        return await self._judge(payload, AgentReport, "agent report", self._report_problem)

    async def _judge_heartbeat(self, payload: tuple[Any, ...]) -> Heartbeat | str:
        return await self._judge(payload, Heartbeat, "heartbeat", self._heartbeat_problem)

    async def _judge(
        self,
        payload: tuple[Any, ...],
        model: type[AgentMessage],
        what: str,
        problem: Callable[[AgentMessage], str | None],
    ) -> AgentMessage | str:
        """The message, or why it is rejected; judged once its assignment is known."""
        message = parse_message(payload, model, what)
        if isinstance(message, str):
            return message
        if message.assignment_id == self._assigning:
            # The agent heard of its assignment before the workflow did: wait for it.
            await workflow.wait_condition(lambda: self._assigning is None)
        return problem(message) or message

    def _prejudge(
        self,
        payload: tuple[Any, ...],
        model: type[AgentMessage],
        what: str,
        problem: Callable[[AgentMessage], str | None],
    ) -> str | None:
        """An update validator's judgement: what `_judge` would say, unless it must wait."""
        message = parse_message(payload, model, what)
        if isinstance(message, str):
            return message
        return None if message.assignment_id == self._assigning else problem(message)

    def _accept_report(self, report: AgentReport) -> None:
        self._reported.add(report.assignment_id)
        self._report = report

    def _report_problem(self, report: AgentReport) -> str | None:
        problem = self._assignment_problem(report.agent_id, report.assignment_id, "report")
        if problem:
            return problem
        if report.assignment_id in self._reported:
            return (
                f"report rejected: assignment {report.assignment_id!r} was already reported; "
                "the first report counts"
            )
        size = len(json.dumps(report.result))
        if size > INLINE_RESULT_LIMIT:
            return (
                f"report rejected: a result of {size} bytes is over the {INLINE_RESULT_LIMIT} "
                "byte inline limit; store it and report a reference (agent.py does this)"
            )
        return None

    def _heartbeat_problem(self, beat: Heartbeat) -> str | None:
        return self._assignment_problem(beat.agent_id, beat.assignment_id, "heartbeat")

    def _beat(self) -> None:
        self._heartbeats += 1
        self._view.last_heartbeat_at = workflow.now()

    def _assignment_problem(self, agent_id: str, assignment_id: str, what: str) -> str | None:
        view = self._view
        where = f"task {view.task_id!r} of goal {view.goal_id!r}"
        if view.status.is_terminal:
            return f"{what} rejected: {where} already ended ({view.status})"
        if view.assignment_id is None:
            return f"{what} rejected: {where} has no assignment yet"
        if assignment_id != view.assignment_id:
            return (
                f"{what} rejected: assignment {assignment_id!r} (agent {agent_id!r}) is not "
                f"current for {where}; the current one is {view.assignment_id!r}, "
                f"held by {view.agent_id!r}"
            )
        if agent_id != view.agent_id:
            return (
                f"{what} rejected: agent {agent_id!r} does not hold assignment "
                f"{assignment_id!r} of {where}; {view.agent_id!r} does"
            )
        if view.status is not TaskStatus.ASSIGNED and what == "heartbeat":
            return f"{what} rejected: assignment {assignment_id!r} has ended ({view.status})"
        return None

    def _judge_decision(self, payload: tuple[Any, ...]) -> ApprovalDecision | str:
        decision = parse_message(payload, ApprovalDecision, "approval decision")
        if isinstance(decision, str):
            return decision
        view = self._view
        where = f"task {view.task_id!r} of goal {view.goal_id!r}"
        if view.status is not TaskStatus.AWAITING_APPROVAL or self._decision is not None:
            return f"decision rejected: {where} is not awaiting approval (it is {view.status})"
        if decision.task_id not in (None, view.task_id):
            return f"decision rejected: it names task {decision.task_id!r}, but this is {where}"
        if decision.approver not in view.waiting_on:
            return (
                f"decision rejected: {decision.approver!r} may not decide on {where}; "
                f"expected one of {view.waiting_on}"
            )
        return decision

    # The life of the task.

    async def _work(self) -> None:
        """Assign, wait, and repeat on failure, lapse or rework until the task ends."""
        input = self._input
        exclude: list[str] = []
        prefer: str | None = None
        while True:
            assignment = await self._assign(prefer, exclude)
            outcome = await self._await_report(assignment)
            lines = [*self._view.history]
            agent = assignment.agent_id
            attempt = self._view.attempts
            if isinstance(outcome, Lapse):
                if self._abort is not None:
                    await self._end_assignment(
                        AssignmentStatus.CANCELLED,
                        None,
                        EventKind.TASK_CANCELLED,
                        f"task {self._view.task_id!r} aborted: {self._abort}",
                        status=TaskStatus.SKIPPED,
                        error=self._abort,
                        ended_at=workflow.now(),
                        history=[*lines, f"attempt {attempt}: aborted ({self._abort})"],
                    )
                    return
                exclude.append(agent)
                lines.append(f"attempt {attempt}: agent {agent} {outcome}")
                if self._budget_spent():
                    await self._fail(lines, AssignmentStatus.TIMED_OUT, None)
                    return
                await self._end_assignment(
                    AssignmentStatus.TIMED_OUT,
                    None,
                    EventKind.AGENT_UNRESPONSIVE,
                    f"agent {agent!r} {outcome} on task {self._view.task_id!r}; reassigning",
                    history=lines,
                )
                prefer = None
                continue

            report = outcome
            spent = self._spent(report)
            if report.outcome is ReportOutcome.FAILED:
                exclude.append(agent)
                lines.append(
                    f"attempt {attempt}: agent {agent} failed: {report.error or 'no error given'}"
                )
                if self._budget_spent():
                    await self._fail(lines, AssignmentStatus.FAILED, report, **spent)
                    return
                await self._end_assignment(
                    AssignmentStatus.FAILED,
                    report,
                    EventKind.TASK_RETRIED,
                    f"agent {agent!r} failed task {self._view.task_id!r}; reassigning",
                    history=lines,
                    **spent,
                )
                prefer = None
                continue

            lines.append(f"attempt {attempt}: agent {agent} completed")
            if not input.task.requires_approval:
                await self._end_assignment(
                    AssignmentStatus.COMPLETED,
                    report,
                    EventKind.TASK_COMPLETED,
                    f"task {self._view.task_id!r} completed by agent {agent!r}",
                    status=TaskStatus.COMPLETED,
                    result=report.result,
                    history=lines,
                    ended_at=workflow.now(),
                    **spent,
                )
                return
            await self._end_assignment(
                AssignmentStatus.COMPLETED,
                report,
                EventKind.APPROVAL_REQUESTED,
                f"task {self._view.task_id!r} awaits approval by one of {input.approval_levels[0]}",
                status=TaskStatus.AWAITING_APPROVAL,
                result=report.result,
                waiting_on=input.approval_levels[0],
                approval_level=0,
                history=lines,
                **spent,
            )
            decision = await self._await_decision()
            if decision is None:  # aborted, or the chain ended and the policy is to fail
                return
            comment = f": {decision.comment}" if decision.comment else ""
            if decision.decision is Decision.APPROVE:
                lines.append(f"{decision.approver} approved{comment}")
                await self._change(
                    EventKind.DECISION_ACCEPTED,
                    f"task {self._view.task_id!r} approved by {decision.approver!r}",
                    status=TaskStatus.COMPLETED,
                    waiting_on=[],
                    history=lines,
                    ended_at=workflow.now(),
                )
                return
            lines.append(f"{decision.approver} rejected{comment}")
            reworks = self._view.reworks + 1
            if self._budget_spent():
                await self._change(
                    EventKind.TASK_FAILED,
                    f"task {self._view.task_id!r} rejected and out of attempts "
                    f"({input.max_attempts})",
                    status=TaskStatus.FAILED,
                    waiting_on=[],
                    reworks=reworks,
                    history=lines,
                    error="; ".join(lines),
                    ended_at=workflow.now(),
                )
                return
            self._rework.append(
                {
                    "approver": decision.approver,
                    "comment": decision.comment,
                    "previous_result": self._view.result,
                }
            )
            await self._change(
                EventKind.DECISION_ACCEPTED,
                f"task {self._view.task_id!r} sent back for rework by {decision.approver!r}",
                status=TaskStatus.ASSIGNED,
                waiting_on=[],
                reworks=reworks,
                history=lines,
            )
            prefer = agent

    def _budget_spent(self) -> bool:
        return self._view.attempts - self._attempts_before >= self._input.max_attempts

    def _spent(self, report: AgentReport) -> dict[str, Any]:
        return {
            "tokens_used": self._view.tokens_used + report.tokens_used,
            "cost_usd": round(self._view.cost_usd + report.cost_usd, 6),
        }

    async def _fail(
        self,
        lines: list[str],
        outcome: AssignmentStatus,
        report: AgentReport | None,
        **spent: Any,
    ) -> None:
        await self._end_assignment(
            outcome,
            report,
            EventKind.TASK_FAILED,
            f"task {self._view.task_id!r} failed after {self._input.max_attempts} attempts",
            status=TaskStatus.FAILED,
            error="; ".join(lines),
            history=lines,
            ended_at=workflow.now(),
            **spent,
        )

    async def _assign(self, prefer: str | None, exclude: list[str]) -> Assignment:
        """Get an agent for the next attempt; the activity retries until it has one."""
        input = self._input
        attempt = self._view.attempts + 1
        # Shown only once the agent is known, so no one sees an attempt without its agent.
        pending = self._view.model_copy(update={"attempts": attempt, "seq": self._view.seq + 1})
        assignment_id = str(workflow.uuid4())
        self._assigning = assignment_id
        context: dict[str, Any] = {
            "goal": {
                "goal_id": input.goal_id,
                "title": input.goal_title,
                "description": input.goal_description,
            },
            "task": input.task.model_dump(mode="json"),
            "attempt": attempt,
            "dependency_results": input.dependency_results,
            "rework": self._rework,
            "report_deadline_seconds": input.report_deadline_seconds,
            "heartbeat_timeout_seconds": input.heartbeat_timeout_seconds,
        }
        assignment = await workflow.execute_activity_method(
            AssignmentActivities.assign_agent,
            AssignAgent(
                assignment_id=assignment_id,
                workspace=input.workspace,
                skill=input.task.skill,
                exclude_agent_ids=exclude,
                prefer_agent_id=prefer,
                context=context,
                task=pending,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ASSIGN_RETRY,
            summary=f"assign an agent with skill {input.task.skill!r} (attempt {attempt})",
        )
        now = workflow.now()
        self._view = pending.model_copy(
            update={
                "status": TaskStatus.ASSIGNED,
                "agent_id": assignment.agent_id,
                "assignment_id": assignment.assignment_id,
                "agent_ids": [*self._view.agent_ids, assignment.agent_id],
                "assigned_at": now,
                "report_due_at": now + timedelta(seconds=input.report_deadline_seconds),
                "last_heartbeat_at": None,
            }
        )
        self._report = None
        self._decision = None
        self._reassign = None
        self._assigning = None
        await self._settle()
        return assignment

    async def _await_report(self, assignment: Assignment) -> AgentReport | Lapse:
        """The agent's report, or why none will come: deadline, silence, reassignment, abort.

        Durable timers: the wait survives worker restarts and fires on time regardless.
        """
        input = self._input
        silence = timedelta(seconds=input.heartbeat_timeout_seconds)
        due = self._view.report_due_at
        assert due is not None

        def arrived() -> bool:
            report = self._report
            return report is not None and report.assignment_id == assignment.assignment_id

        while True:
            if arrived():
                assert self._report is not None
                return self._report
            if self._abort is not None:
                return Lapse(f"aborted: {self._abort}")
            if self._reassign is not None:
                return self._reassign
            now = workflow.now()
            if now >= due:
                return Lapse(f"missed its report deadline ({input.report_deadline_seconds}s)")
            wait = due - now
            heard = self._view.last_heartbeat_at
            if heard is not None:
                if now >= heard + silence:
                    return Lapse(
                        f"went silent (no heartbeat for {input.heartbeat_timeout_seconds}s)"
                    )
                wait = min(wait, heard + silence - now)
            beats = self._heartbeats

            def stirred(beats: int = beats) -> bool:
                return (
                    arrived()
                    or self._heartbeats != beats
                    or self._reassign is not None
                    or self._abort is not None
                )

            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    stirred,
                    timeout=wait,
                    timeout_summary=f"report or heartbeat from {assignment.agent_id}",
                )

    async def _await_decision(self) -> ApprovalDecision | None:
        """A decision from the approvers of each level in turn, escalating on timeout.

        Returns None when the task ended here: aborted, or the chain ran out and the
        goal's policy is to fail the task.
        """
        input = self._input
        timeout = timedelta(seconds=input.approval_timeout_seconds)
        for level, approvers in enumerate(input.approval_levels):
            if level > 0:
                await self._change(
                    EventKind.APPROVAL_ESCALATED,
                    f"no decision on task {self._view.task_id!r} within "
                    f"{input.approval_timeout_seconds}s; escalated to {approvers}",
                    waiting_on=approvers,
                    approval_level=level,
                )
            try:
                await workflow.wait_condition(
                    lambda: self._decision is not None or self._abort is not None,
                    timeout=timeout,
                    timeout_summary=f"decision by {', '.join(approvers)}",
                )
            except TimeoutError:
                continue
            if self._abort is not None:
                break
            return self._decision
        lines = [*self._view.history]
        if self._abort is not None:
            await self._change(
                EventKind.TASK_CANCELLED,
                f"task {self._view.task_id!r} aborted: {self._abort}",
                status=TaskStatus.SKIPPED,
                error=self._abort,
                waiting_on=[],
                history=[*lines, f"aborted ({self._abort})"],
                ended_at=workflow.now(),
            )
            return None
        ran_out = f"no decision at any of {len(input.approval_levels)} approval levels"
        if input.on_approval_timeout == "reject":
            return ApprovalDecision(
                approver=SYSTEM_APPROVER, decision=Decision.REJECT, comment=ran_out
            )
        await self._change(
            EventKind.TASK_FAILED,
            f"task {self._view.task_id!r} failed: {ran_out}",
            status=TaskStatus.FAILED,
            waiting_on=[],
            error=ran_out,
            history=[*lines, ran_out],
            ended_at=workflow.now(),
        )
        return None

    async def _end_assignment(
        self,
        outcome: AssignmentStatus,
        report: AgentReport | None,
        kind: EventKind,
        message: str,
        **changes: Any,
    ) -> None:
        """Close the assignment and move the task on, atomically; a lapse marks the agent."""
        assignment_id, agent_id = self._view.assignment_id, self._view.agent_id
        assert assignment_id is not None
        self._advance(changes)
        await record(
            AssignmentActivities.end_assignment,
            EndAssignment(
                assignment_id=assignment_id,
                status=outcome,
                result=report.result if report else None,
                error=report.error if report else message,
                tokens_used=report.tokens_used if report else 0,
                cost_usd=report.cost_usd if report else 0.0,
                task=self._view,
                event=self._event(kind, message, agent_id),
            ),
            f"record assignment {outcome} for agent {agent_id}",
        )
        await self._settle()

    async def _change(self, kind: EventKind, message: str, **changes: Any) -> None:
        """Move the task to a new state, record it, and tell the goal."""
        self._advance(changes)
        await record(
            ReadModelActivities.record_task,
            RecordTask(task=self._view, event=self._event(kind, message, self._view.agent_id)),
            f"record task {self._view.status}",
        )
        await self._settle()

    def _advance(self, changes: dict[str, Any]) -> None:
        self._view = self._view.model_copy(update={**changes, "seq": self._view.seq + 1})

    async def _settle(self) -> None:
        self._show()
        await self._notify_goal()
        self._settled += 1

    async def _record_rejection(
        self, kind: EventKind, message: str, payload: tuple[Any, ...]
    ) -> None:
        """Record a rejected message in the audit trail; the task's state is unchanged."""
        workflow.logger.warning(message)
        agent_id = None
        if len(payload) == 1 and isinstance(payload[0], dict):
            agent_id = str(payload[0].get("agent_id") or "")[:128] or None
        await record(
            ReadModelActivities.record_event,
            self._event(kind, message, agent_id, {"payload": summarize_payload(payload)}),
            f"record {kind}",
        )

    def _event(
        self,
        kind: EventKind,
        message: str,
        agent_id: str | None,
        detail: dict[str, Any] | None = None,
    ) -> Event:
        return Event(
            event_id=str(workflow.uuid4()),
            kind=kind,
            message=message,
            goal_id=self._view.goal_id,
            task_id=self._view.task_id,
            agent_id=agent_id,
            detail=detail or {},
        )

    async def _notify_goal(self) -> None:
        """Send the goal workflow this task's state; the goal keeps only the newest `seq`."""
        parent = workflow.info().parent
        if parent is None:
            return
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "task_update", self._view
            )
        except Exception as exc:  # the goal ended or was terminated: nothing left to tell
            workflow.logger.warning(f"could not tell goal {parent.workflow_id!r}: {exc}")

    def _show(self) -> None:
        """Mirror the state in the Temporal UI: search attributes and a one-line summary."""
        view = self._view
        if (view.status, view.agent_id) != self._shown:  # each upsert is a history event
            self._shown = (view.status, view.agent_id)
            updates = [sa.TASK_STATUS.value_set(view.status.value)]
            if view.agent_id:
                updates.append(sa.ASSIGNED_AGENT.value_set(view.agent_id))
            workflow.upsert_search_attributes(updates)
        line = f"**{view.title}**: {view.status}"
        if view.agent_id:
            line += f", agent `{view.agent_id}` (attempt {view.attempts})"
        if view.waiting_on:
            line += f"; waiting on approver {', '.join(view.waiting_on)}"
        if view.history:
            line += "\n\n" + "\n\n".join(view.history[-5:])
        workflow.set_current_details(line)
