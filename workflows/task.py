"""`TaskWorkflow`: one task from assignment to an approved result, or to a visible failure."""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.assignment import AssignmentActivities
    from activities.read_model import ReadModelActivities
    from goalkeeper import search_attributes as sa
    from goalkeeper.models import AgentReport, ApprovalDecision, TaskInput, TaskView
    from goalkeeper.records import (
        AssignAgent,
        Assignment,
        EndAssignment,
        Event,
        EventKind,
        RecordTask,
    )
    from goalkeeper.statuses import AssignmentStatus, Decision, ReportOutcome, TaskStatus
    from workflows.messages import parse_message, summarize_payload
    from workflows.options import ACTIVITY_TIMEOUT, ASSIGN_RETRY, DATABASE_RETRY

LATE_REPORT_WINDOW = timedelta(minutes=2)
"""How long an ended task stays open to record late or duplicate reports. After it,
Temporal itself refuses signals to the task ("workflow execution already completed")."""


@workflow.defn
class TaskWorkflow:
    """Gets the task an agent, waits for its report and for approval, and keeps the goal told.

    Every change of state is written to PostgreSQL and signalled to the goal
    workflow (`task_update`) with a growing `seq`, so the goal's progress is exact.
    """

    @workflow.init
    def __init__(self, input: TaskInput) -> None:
        task = input.task
        self._input = input
        self._view = TaskView(
            goal_id=input.goal_id,
            task_id=task.id or "",
            title=task.title,
            skill=task.skill,
            depends_on=task.depends_on,
            requires_approval=task.requires_approval,
        )
        self._report: AgentReport | None = None
        self._decision: ApprovalDecision | None = None
        self._reported: set[str] = set()
        self._assigning: str | None = None
        self._rework: list[dict[str, Any]] = []

    @workflow.run
    async def run(self, input: TaskInput) -> TaskView:
        if not input.task.id:
            raise ApplicationError(
                "task input has no task id; start tasks through a GoalWorkflow",
                type="InvalidTaskInput",
                non_retryable=True,
            )
        self._view.started_at = workflow.now()
        await self._work()
        # Stay open a little so late and duplicate reports are recorded, not refused.
        await workflow.sleep(LATE_REPORT_WINDOW, summary="recording late reports")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._view

    @workflow.query
    def status(self) -> TaskView:
        """The task as it is now."""
        return self._view

    @workflow.signal(name="agent_report")
    async def agent_report(self, *payload: Any) -> None:
        """An agent's report; only the assigned agent's, for its current assignment, counts."""
        report = parse_message(payload, AgentReport, "agent report")
        if not isinstance(report, str) and report.assignment_id == self._assigning:
            # The agent heard of its assignment before the workflow did: judge it once known.
            await workflow.wait_condition(lambda: self._assigning is None)
        problem = report if isinstance(report, str) else self._report_problem(report)
        if problem is not None:
            agent_id = None if isinstance(report, str) else report.agent_id
            await self._record(
                EventKind.REPORT_REJECTED,
                problem,
                agent_id,
                {"payload": summarize_payload(payload)},
            )
            return
        assert not isinstance(report, str)
        self._reported.add(report.assignment_id)
        self._report = report

    @workflow.signal(name="approval_decision")
    async def approval_decision(self, *payload: Any) -> None:
        """An approver's decision; only approvers named on the goal or the task may decide."""
        decision = parse_message(payload, ApprovalDecision, "approval decision")
        problem = decision if isinstance(decision, str) else self._decision_problem(decision)
        if problem is not None:
            await self._record(
                EventKind.DECISION_REJECTED, problem, None, {"payload": summarize_payload(payload)}
            )
            return
        assert not isinstance(decision, str)
        self._decision = decision

    def _report_problem(self, report: AgentReport) -> str | None:
        view = self._view
        where = f"task {view.task_id!r} of goal {view.goal_id!r}"
        if view.status.is_terminal:
            return f"report rejected: {where} already ended ({view.status})"
        if report.assignment_id in self._reported:
            return (
                f"report rejected: assignment {report.assignment_id!r} was already reported; "
                "the first report counts"
            )
        if view.assignment_id is None:
            return f"report rejected: {where} has no assignment yet"
        if report.agent_id != view.agent_id:
            return (
                f"report rejected: agent {report.agent_id!r} is not assigned to {where}; "
                f"expected {view.agent_id!r}"
            )
        if report.assignment_id != view.assignment_id:
            return (
                f"report rejected: assignment {report.assignment_id!r} is not current for "
                f"{where}; expected {view.assignment_id!r}"
            )
        return None

    def _decision_problem(self, decision: ApprovalDecision) -> str | None:
        view = self._view
        where = f"task {view.task_id!r} of goal {view.goal_id!r}"
        if view.status is not TaskStatus.AWAITING_APPROVAL or self._decision is not None:
            return f"decision rejected: {where} is not awaiting approval (it is {view.status})"
        if decision.approver not in self._input.approvers:
            return (
                f"decision rejected: {decision.approver!r} may not decide on {where}; "
                f"expected one of {self._input.approvers}"
            )
        return None

    async def _work(self) -> None:
        """Assign, wait, and repeat on failure or rework until the task ends."""
        input = self._input
        failures: list[str] = []
        prefer: str | None = None
        while True:
            assignment = await self._assign(prefer, exclude=failures)
            report = await self._await_report(assignment)
            lines = [*self._view.history]
            spent = {
                "tokens_used": self._view.tokens_used + report.tokens_used,
                "cost_usd": round(self._view.cost_usd + report.cost_usd, 6),
            }
            if report.outcome is ReportOutcome.FAILED:
                failures.append(assignment.agent_id)
                lines.append(
                    f"attempt {self._view.attempts}: agent {assignment.agent_id} failed: "
                    f"{report.error or 'no error given'}"
                )
                if len(failures) >= input.max_attempts:
                    await self._end_assignment(
                        report,
                        EventKind.TASK_FAILED,
                        f"task {self._view.task_id!r} failed after {len(failures)} attempts",
                        status=TaskStatus.FAILED,
                        error="; ".join(lines),
                        history=lines,
                        ended_at=workflow.now(),
                        **spent,
                    )
                    return
                await self._end_assignment(
                    report,
                    EventKind.TASK_RETRIED,
                    f"agent {assignment.agent_id!r} failed task {self._view.task_id!r}; "
                    "reassigning",
                    history=lines,
                    **spent,
                )
                continue

            lines.append(f"attempt {self._view.attempts}: agent {assignment.agent_id} completed")
            if not input.task.requires_approval:
                await self._end_assignment(
                    report,
                    EventKind.TASK_COMPLETED,
                    f"task {self._view.task_id!r} completed by agent {assignment.agent_id!r}",
                    status=TaskStatus.COMPLETED,
                    result=report.result,
                    history=lines,
                    ended_at=workflow.now(),
                    **spent,
                )
                return
            await self._end_assignment(
                report,
                EventKind.APPROVAL_REQUESTED,
                f"task {self._view.task_id!r} awaits approval by one of {input.approvers}",
                status=TaskStatus.AWAITING_APPROVAL,
                result=report.result,
                waiting_on=input.approvers,
                history=lines,
                **spent,
            )
            decision = await self._await_decision()
            verdict = "approved" if decision.decision is Decision.APPROVE else "rejected"
            comment = f": {decision.comment}" if decision.comment else ""
            lines.append(f"{decision.approver} {verdict}{comment}")
            if decision.decision is Decision.APPROVE:
                await self._change(
                    EventKind.DECISION_ACCEPTED,
                    f"task {self._view.task_id!r} approved by {decision.approver!r}",
                    status=TaskStatus.COMPLETED,
                    waiting_on=[],
                    history=lines,
                    ended_at=workflow.now(),
                )
                return
            reworks = self._view.reworks + 1
            if reworks > input.max_rework:
                await self._change(
                    EventKind.TASK_FAILED,
                    f"task {self._view.task_id!r} rejected {reworks} times; "
                    f"the limit is {input.max_rework} reworks",
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
            prefer = assignment.agent_id

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
        self._view = pending.model_copy(
            update={
                "status": TaskStatus.ASSIGNED,
                "agent_id": assignment.agent_id,
                "assignment_id": assignment.assignment_id,
                "agent_ids": [*self._view.agent_ids, assignment.agent_id],
            }
        )
        self._report = None
        self._decision = None
        self._assigning = None
        self._show()
        await self._notify_goal()
        return assignment

    async def _await_report(self, assignment: Assignment) -> AgentReport:
        await workflow.wait_condition(
            lambda: (
                self._report is not None and self._report.assignment_id == assignment.assignment_id
            )
        )
        assert self._report is not None
        return self._report

    async def _await_decision(self) -> ApprovalDecision:
        await workflow.wait_condition(lambda: self._decision is not None)
        assert self._decision is not None
        return self._decision

    async def _end_assignment(
        self, report: AgentReport, kind: EventKind, message: str, **changes: Any
    ) -> None:
        """Close the assignment with the agent's report and move the task on, atomically."""
        assignment_id = self._view.assignment_id
        assert assignment_id is not None
        self._advance(changes)
        await workflow.execute_activity_method(
            AssignmentActivities.end_assignment,
            EndAssignment(
                assignment_id=assignment_id,
                status=AssignmentStatus(report.outcome.value),
                result=report.result,
                error=report.error,
                tokens_used=report.tokens_used,
                cost_usd=report.cost_usd,
                task=self._view,
                event=self._event(kind, message, report.agent_id),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DATABASE_RETRY,
            summary=f"record {report.outcome} report of agent {report.agent_id}",
        )
        self._show()
        await self._notify_goal()

    async def _change(self, kind: EventKind, message: str, **changes: Any) -> None:
        """Move the task to a new state, record it, and tell the goal."""
        self._advance(changes)
        await workflow.execute_activity_method(
            ReadModelActivities.record_task,
            RecordTask(task=self._view, event=self._event(kind, message, self._view.agent_id)),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DATABASE_RETRY,
            summary=f"record task {self._view.status}",
        )
        self._show()
        await self._notify_goal()

    def _advance(self, changes: dict[str, Any]) -> None:
        self._view = self._view.model_copy(update={**changes, "seq": self._view.seq + 1})

    async def _record(
        self, kind: EventKind, message: str, agent_id: str | None, detail: dict[str, Any]
    ) -> None:
        """Record a rejected message in the audit trail; the task's state is unchanged."""
        workflow.logger.warning(message)
        await workflow.execute_activity_method(
            ReadModelActivities.record_event,
            self._event(kind, message, agent_id, detail),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DATABASE_RETRY,
            summary=f"record {kind}",
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
        updates = [sa.TASK_STATUS.value_set(view.status.value)]
        if view.agent_id:
            updates.append(sa.ASSIGNED_AGENT.value_set(view.agent_id))
        workflow.upsert_search_attributes(updates)
        line = f"**{view.title}**: {view.status}"
        if view.agent_id:
            line += f", agent `{view.agent_id}` (attempt {view.attempts})"
        if view.waiting_on:
            line += f"; waiting on approver {', '.join(view.waiting_on)}"
        workflow.set_current_details(line)
