"""`TaskWorkflow`: one task from assignment to an approved result, or to a visible failure."""

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import workflows.sealing as sealing
    from activities.assignment import AssignmentActivities
    from goalkeeper import attempts
    from goalkeeper.ids import started_by_goal
    from goalkeeper.limits import MAX_SHORT_REASON_CHARS, MAX_SHOWN_TOOL_CALLS
    from goalkeeper.metrics import Rejected
    from goalkeeper.models import (
        Abort,
        Adopt,
        AgentReport,
        Reassign,
        TaskCheckpoint,
        TaskInput,
        TaskSummary,
        TaskView,
    )
    from goalkeeper.statuses import ReportOutcome, TaskStatus
    from monitoring import metrics
    from workflows.messages import parse_message, reject_if
    from workflows.options import record
    from workflows.task.assignment import TaskAssignment
    from workflows.task.inbox import TaskInbox
    from workflows.task.judge import TaskJudge
    from workflows.task.record import TaskRecord, bounded, reject_input
    from workflows.task.waiting import Lapse, TaskWaiting


TASK_CONTROLS = "task-controls"
"""The patch from which a person's reassign (through the goal's `reassign_task`) sends the
task on to the agent they named, or to another one, whatever its attempts."""


@workflow.defn
class TaskWorkflow:
    """Holds a task's agent to its deadlines, waits for approval, and returns how it ended.

    The goal usually assigns the first attempt before it starts the task; every later
    attempt is assigned here. Non-final changes (a new agent, a wait for approval) are
    signalled to the goal (`task_update`); the end is the workflow's result. Failed
    reports, missed deadlines, silent agents and rejected work share one attempt
    budget; each lapse reassigns the task at once, from a durable timer.
    """

    @workflow.init
    def __init__(self, raw_input: Any, raw_checkpoint: Any = None) -> None:
        # Decoded here, not by the SDK: a run of two arguments is started with one.
        parsed = parse_message((raw_input,), TaskInput, "task input")
        self._bad_input = parsed if isinstance(parsed, str) else None
        if isinstance(parsed, str):
            return  # run() fails the workflow, naming why; no workflow task fails over it
        input = parsed
        checkpoint = TaskCheckpoint.model_validate(raw_checkpoint) if raw_checkpoint else None
        self._input = input
        self._record = TaskRecord(input, checkpoint)
        self._judge = TaskJudge(self._record, checkpoint)
        self._inbox = TaskInbox(self._record, self._judge)
        self._assignment = TaskAssignment(
            self._record, self._judge, self._inbox, self._continue_as_new, checkpoint
        )
        self._waiting = TaskWaiting(
            self._record, self._judge, self._inbox, self._apply, self._continue_as_new
        )
        if checkpoint is None and input.assigned is not None:
            # The goal assigned the first attempt and recorded it; the task starts there.
            view = self._record.view
            self._record.view = self._assignment.assigned(view, input.assigned, view.attempts + 1)
            self._record.view.seq += 1
            self._record.shown = (self._record.view.status, self._record.view.agent_id)

    @workflow.run
    async def run(self, raw_input: Any, raw_checkpoint: Any = None) -> TaskSummary:
        if self._bad_input is not None:
            await reject_input(self._bad_input)
        if not self._input.task.id:
            raise ApplicationError(
                "task input has no task id; start tasks through a GoalWorkflow",
                type="InvalidTaskInput",
                non_retryable=True,
            )
        info = workflow.info()
        parent = info.parent.workflow_id if info.parent else None
        if not started_by_goal(self._input.goal_id, parent) or (
            info.workflow_id != f"{self._input.goal_id}/{self._input.task.id}"
        ):
            await reject_input(
                f"expected a task of goal {self._input.goal_id!r} started by that goal, "
                f"got one started by {parent or 'a client'}"
            )
        self._record.view.started_at = self._record.view.started_at or workflow.now()
        self._record.show()
        if self._input.assigned is not None and raw_checkpoint is None:
            await record(
                AssignmentActivities.activate_assignment,
                self._input.assigned.assignment_id,
                f"show the assignment to {self._input.assigned.agent_id}",
            )
        await self._work()
        self._record.settling = False
        await self._record.refusals.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._record.adopted:  # the run that started it is gone: its result reaches nobody
            await self._record.notify_goal()
        return self._record.summary()

    @workflow.query
    def status(self) -> TaskView:
        """The task as it is now, its history and error bounded (goalkeeper.limits)."""
        return bounded(self._record.view)

    # Agents and approvers: a signal and its update share one receiving path, the inbox's;
    # a signal records what it refuses, an update tells the caller.

    @workflow.signal(name="agent_report")
    async def agent_report(self, *payload: Any) -> None:
        """An agent's report; only the assigned agent's, for its current assignment, counts."""
        await self._inbox.take_report(payload, self._inbox.received())

    @workflow.update(name="report")
    async def report(self, *payload: Any) -> TaskView:
        """`agent_report`, answered: the task after the report, or why it was rejected."""
        settled = await self._inbox.take_report(payload)
        await workflow.wait_condition(lambda: settled is None or self._record.settled > settled)
        return self._record.view

    @report.validator
    def _validate_report(self, *payload: Any) -> None:
        problem = self._judge.prejudge_report(payload)
        reject_if(metrics.refused(workflow.metric_meter(), Rejected.REPORT, problem))

    @workflow.signal(name="approval_decision")
    async def approval_decision(self, *payload: Any) -> None:
        """An approver's decision; only the approvers asked at this level may decide."""
        await self._inbox.take_decision(payload, self._inbox.received())

    @workflow.update(name="decide")
    async def decide(self, *payload: Any) -> TaskView:
        """`approval_decision`, answered: the task after the decision, or why it was rejected."""
        settled = await self._inbox.take_decision(payload)
        await workflow.wait_condition(lambda: settled is None or self._record.settled > settled)
        return self._record.view

    @decide.validator
    def _validate_decision(self, *payload: Any) -> None:
        problem = self._inbox.prejudge_decision(payload)
        reject_if(metrics.refused(workflow.metric_meter(), Rejected.DECISION, problem))

    @workflow.signal(name="agent_heartbeat")
    async def agent_heartbeat(self, *payload: Any) -> None:
        """An agent saying it still works on its assignment; silence past the timeout lapses it.

        Agents may instead write their heartbeat to PostgreSQL (agent.py does), where
        the task looks at its deadline: such heartbeats never enter this history.
        """
        await self._inbox.take_heartbeat(payload, self._inbox.received())

    @workflow.update(name="heartbeat")
    async def heartbeat(self, *payload: Any) -> TaskView:
        """`agent_heartbeat`, answered: rejected once the assignment is no longer the agent's."""
        await self._inbox.take_heartbeat(payload)
        return self._record.view

    @heartbeat.validator
    def _validate_heartbeat(self, *payload: Any) -> None:
        problem = self._judge.prejudge_heartbeat(payload)
        reject_if(metrics.refused(workflow.metric_meter(), Rejected.HEARTBEAT, problem))

    # Goalkeeper's own messages: sealed by a worker, so nobody else can send them.

    @workflow.signal(name="reassign")
    async def reassign(self, *payload: Any) -> None:
        """Take the task from the agent of `assignment_id` now (the health check asks).

        Naming the assignment keeps a request about a slow agent from taking the task
        from the agent that replaced it.
        """
        received = self._inbox.received()
        request = sealing.opened(payload, Reassign, "reassign")
        if isinstance(request, str):
            await self._inbox.refuse_internal(request, payload, received)
        elif (
            self._record.view.status is TaskStatus.ASSIGNED
            and request.assignment_id == self._record.view.assignment_id
        ):
            self._inbox.reassign = request.reason[:MAX_SHORT_REASON_CHARS]
            if request.by is not None and workflow.patched(TASK_CONTROLS):
                self._inbox.reassigned_by = request
        elif request.by is not None:
            # The goal judged it on what it last heard; the task moved on since.
            workflow.logger.warning(
                f"reassign by {request.by!r} came after assignment {request.assignment_id!r} "
                f"ended; the task is {self._record.view.status}"
            )

    @workflow.signal
    async def adopt(self, *payload: Any) -> None:
        """A later run of the goal took this task over: tell it how the task ends."""
        received = self._inbox.received()
        request = sealing.opened(payload, Adopt, "adopt")
        if isinstance(request, str):
            await self._inbox.refuse_internal(request, payload, received)
        elif request.goal_run_id == self._input.goal_run_id:
            self._record.adopted = True
        else:
            workflow.logger.warning(f"adopt ignored, not this task's goal run: {request!r:.200}")

    @workflow.signal(name="abort")
    async def abort(self, *payload: Any) -> None:
        """End the task without a result (the goal failed); its agent is released."""
        received = self._inbox.received()
        request = sealing.opened(payload, Abort, "abort", legacy=lambda v: {"reason": str(v)})
        if isinstance(request, str):
            await self._inbox.refuse_internal(request, payload, received)
        elif not self._record.view.status.is_terminal:
            self._inbox.abort = request.reason[:MAX_SHORT_REASON_CHARS]

    # The life of the task.

    async def _work(self) -> None:
        """Assign, wait, and repeat on failure, lapse or rework until the task ends."""
        input, record, inbox = self._input, self._record, self._inbox
        prefer: str | None = None
        while True:
            pending = record.view.status is TaskStatus.PENDING
            if pending and not await self._assignment.assign(prefer):
                await self._apply(attempts.aborted_unassigned(record.standing(), inbox.abort or ""))
                return
            outcome = await self._waiting.report()
            standing = record.standing()
            if isinstance(outcome, Lapse):
                asked = inbox.reassigned_by
                if asked is not None and inbox.abort is None:
                    self._assignment.reassigned(standing.agent_id, asked.agent_id)
                    step = attempts.reassigned(standing, outcome, asked.agent_id)
                    prefer = await self._apply(step)
                    continue
                step = attempts.lapsed(standing, outcome, outcome.reason, inbox.abort)
                prefer = await self._apply(step)
                if step.ended:
                    return
                continue
            report = outcome
            self._count_report()
            if report.outcome is ReportOutcome.FAILED:
                step = attempts.failed(standing, report.error)
            elif (problem := await self._judge.result_problem(report)) is not None:
                step = attempts.invalid(standing, problem, input.task.expects)
            else:
                approvers = input.approval_levels[0] if input.task.requires_approval else None
                step = attempts.completed(standing, approvers)
                if approvers is not None and self._judge.signers.required:
                    await self._judge.load_approver_keys()
            prefer = await self._apply(step, report)
            if step.status is not TaskStatus.AWAITING_APPROVAL:
                if step.ended:
                    return
                continue
            decision = await self._waiting.decision()
            if decision is None:  # aborted, or the chain ended and the policy is to fail
                return
            step = attempts.decided(attempts.after(standing, step), decision)
            prefer = await self._apply(step)
            if step.ended:
                return

    async def _apply(self, step: attempts.Step, report: AgentReport | None = None) -> str | None:
        """Carry out what an outcome means; returns the agent the next attempt prefers."""
        self._assignment.remember(step)
        if step.reassigned is not None:
            metrics.reassigned(workflow.metric_meter(), step.reassigned)
        changes: dict[str, Any] = {"status": step.status, "history": list(step.history)}
        if step.error is not None:
            changes["error"] = step.error
        if step.waiting_on is not None:
            changes["waiting_on"] = list(step.waiting_on)
        if step.approval_level is not None:
            changes["approval_level"] = step.approval_level
        if step.reworks is not None:
            changes["reworks"] = step.reworks
        if step.ended:
            changes["ended_at"] = workflow.now()
        if report is not None:
            if step.keeps_result:
                changes["result"] = report.result
            changes.update(self._spent(report))
        if step.assignment is None:
            await self._record.change(step.kind, step.message, step.detail, **changes)
        else:
            await self._record.end_assignment(
                step.assignment, report, step.kind, step.message, **changes
            )
        return step.prefer

    def _count_report(self) -> None:
        """Count the report that arrived: how long after its assignment it came."""
        assigned_at = self._record.view.assigned_at
        if assigned_at is not None:
            took = workflow.now() - assigned_at
            metrics.report_arrived(workflow.metric_meter(), self._input.task.skill, took)

    def _spent(self, report: AgentReport) -> dict[str, Any]:
        view = self._record.view
        return {
            "tokens_used": view.tokens_used + report.tokens_used,
            "cost_usd": round(view.cost_usd + report.cost_usd, 6),
            "input_tokens": view.input_tokens + (report.input_tokens or 0),
            "output_tokens": view.output_tokens + (report.output_tokens or 0),
            "cost_unknown_attempts": view.cost_unknown_attempts + (not report.cost_known),
            "tool_calls": report.tool_calls[-MAX_SHOWN_TOOL_CALLS:],
            "tool_calls_total": len(report.tool_calls),
        }

    async def _continue_as_new(self) -> None:
        """A long task starts a fresh history, keeping its assignment and its state."""
        await self._record.refusals.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            args=[
                self._input,
                TaskCheckpoint(
                    view=self._record.view,
                    attempts_before=self._record.attempts_before,
                    exclude=self._assignment.exclude,
                    rework=self._assignment.rework,
                    reported=sorted(self._judge.reported),
                    adopted=self._record.adopted,
                    signers=self._judge.signers,
                ),
            ]
        )
