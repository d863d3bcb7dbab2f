"""`TaskWorkflow`: one task from assignment to an approved result, or to a visible failure."""

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import workflows.sealing as sealing
    from activities.assignment import AssignmentActivities
    from goalkeeper import attempts, signing
    from goalkeeper.ids import assignment_id as assignment_id_of
    from goalkeeper.ids import started_by_goal
    from goalkeeper.limits import (
        MAX_SHORT_REASON_CHARS,
    )
    from goalkeeper.metrics import Reassignment, Rejected
    from goalkeeper.models import (
        Abort,
        Adopt,
        AgentReport,
        ApprovalDecision,
        Reassign,
        TaskCheckpoint,
        TaskInput,
        TaskSummary,
        TaskView,
    )
    from goalkeeper.records import (
        AssignAgents,
        Assignment,
        AssignTask,
    )
    from goalkeeper.statuses import ReportOutcome, TaskStatus
    from monitoring import metrics
    from workflows.messages import parse_message, reject_if
    from workflows.options import (
        assign,
        record,
        refused_wait,
    )
    from workflows.task_inbox import TaskInbox
    from workflows.task_judge import TaskJudge
    from workflows.task_record import TaskRecord, bounded, reject_input


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
        self._judge = TaskJudge(self._record, checkpoint.signers if checkpoint else None)
        self._inbox = TaskInbox(self._record, self._judge)
        self._exclude: list[str] = []
        self._rework: list[dict[str, Any]] = []
        if checkpoint is not None:
            self._exclude = list(checkpoint.exclude)
            self._rework = list(checkpoint.rework)
            self._judge.reported = set(checkpoint.reported)
            return
        if input.assigned is not None:
            # The goal assigned the first attempt and recorded it; the task starts there.
            view = self._record.view
            self._record.view = self._assigned(view, input.assigned, view.attempts + 1)
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
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._record.adopted:  # the run that started it is gone: its result reaches nobody
            await self._record.notify_goal()
        return self._record.summary()

    @workflow.query
    def status(self) -> TaskView:
        """The task as it is now, its history and error bounded (goalkeeper.limits)."""
        return bounded(self._record.view)

    # Agents and approvers: each message has one receiving path, which a signal and an
    # update share; a signal records what it rejects, an update tells the caller.

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
        input = self._input
        prefer: str | None = None
        while True:
            if self._record.view.status is TaskStatus.PENDING and not await self._assign(prefer):
                await self._apply(
                    attempts.aborted_unassigned(self._record.standing(), self._inbox.abort or "")
                )
                return
            outcome = await self._await_report()
            standing = self._record.standing()
            if isinstance(outcome, Lapse):
                step = attempts.lapsed(standing, outcome, outcome.reason, self._inbox.abort)
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
            decision = await self._await_decision()
            if decision is None:  # aborted, or the chain ended and the policy is to fail
                return
            step = attempts.decided(attempts.after(standing, step), decision)
            prefer = await self._apply(step)
            if step.ended:
                return

    async def _apply(self, step: attempts.Step, report: AgentReport | None = None) -> str | None:
        """Carry out what an outcome means; returns the agent the next attempt prefers."""
        if step.exclude is not None:
            self._exclude.append(step.exclude)
        if step.rework is not None:
            self._rework.append(dict(step.rework))
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
        return {
            "tokens_used": self._record.view.tokens_used + report.tokens_used,
            "cost_usd": round(self._record.view.cost_usd + report.cost_usd, 6),
        }

    async def _assign(self, prefer: str | None) -> bool:
        """Get an agent for the next attempt; the activity retries until it has one.

        While a budget over the goal is spent, no agent is given: the task tells the goal
        what it has cost (so the goal pauses and asks its approvers) and asks again, ever
        less often, until the budget is raised. False if it was aborted meanwhile.
        """
        refusals = 0
        while (refused := await self._assign_once(prefer)) is not None:
            if refusals == 0:
                await self._record.notify_goal()
            refusals += 1
            workflow.set_current_details(
                f"**{self._record.view.title}**: pending, no agent may be given: {refused}"
            )
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._inbox.abort is not None,
                    timeout=refused_wait(refusals),
                    timeout_summary="budget raise",
                )
            if self._inbox.abort is not None:
                self._judge.assigning = None
                return False
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()
        return True

    async def _assign_once(self, prefer: str | None) -> str | None:
        """Assign the next attempt, or say why a spent budget allowed no agent."""
        input = self._input
        attempt = self._record.view.attempts + 1
        assignment_id = assignment_id_of(input.goal_run_id, self._record.view.task_id, attempt)
        self._judge.assigning = assignment_id
        assigned: list[Assignment] = await assign(
            AssignmentActivities.assign_agents,
            AssignAgents(
                goal_id=input.goal_id,
                goal_run_id=input.goal_run_id,
                workspace=input.workspace,
                tasks=[
                    AssignTask(
                        task_id=self._record.view.task_id,
                        skill=input.task.skill,
                        assignment_id=assignment_id,
                        attempt=attempt,
                        seq=self._record.view.seq + 1,
                        exclude_agent_ids=self._exclude,
                        prefer_agent_id=prefer,
                        rework=self._rework,
                        report_deadline_seconds=input.report_deadline_seconds,
                        heartbeat_timeout_seconds=input.heartbeat_timeout_seconds,
                    )
                ],
                require_signatures=input.require_signatures,
            ),
            f"assign an agent with skill {input.task.skill!r} (attempt {attempt})",
        )
        if assigned[0].refused is not None:
            return assigned[0].refused
        self._record.view = self._assigned(self._record.view, assigned[0], attempt)
        self._record.view.seq += 1
        self._inbox.assigned()
        await self._record.settle()
        return None

    def _assigned(self, view: TaskView, assigned: Any, attempt: int) -> TaskView:
        """The view once `assigned` holds the task's `attempt`-th assignment."""
        now = getattr(assigned, "assigned_at", None) or workflow.now()
        self._judge.signers = signing.Signers(
            required=assigned.signatures_required,
            agent_key=assigned.agent_key,
            agent_operator=assigned.agent_operator,
        )
        return view.model_copy(
            update={
                "status": TaskStatus.ASSIGNED,
                "attempts": attempt,
                "agent_id": assigned.agent_id,
                "assignment_id": assigned.assignment_id,
                "agent_ids": [*view.agent_ids, assigned.agent_id],
                "assigned_at": now,
                "report_due_at": now + timedelta(seconds=self._input.report_deadline_seconds),
                "last_heartbeat_at": None,
            }
        )

    async def _await_report(self) -> AgentReport | Lapse:
        """The agent's report, or why none will come: deadline, silence, reassignment, abort.

        One durable timer to the next moment that matters: the report deadline, or the
        end of the allowed silence, when heartbeats written to PostgreSQL are read.
        """
        input = self._input
        view = self._record.view
        assignment_id = view.assignment_id
        assert assignment_id is not None and view.report_due_at is not None
        silence = timedelta(seconds=input.heartbeat_timeout_seconds)
        due = view.report_due_at
        looked_at = view.assigned_at or workflow.now()

        def arrived() -> bool:
            report = self._inbox.report
            return report is not None and report.assignment_id == assignment_id

        while True:
            if arrived():
                assert self._inbox.report is not None
                return self._inbox.report
            if self._inbox.abort is not None:
                return self._lapse(assignment_id, f"aborted: {self._inbox.abort}")
            if self._inbox.reassign is not None:
                return self._lapse(assignment_id, self._inbox.reassign)
            now = workflow.now()
            if now >= due:
                return self._lapse(
                    assignment_id,
                    f"missed its report deadline ({input.report_deadline_seconds}s)",
                    Reassignment.DEADLINE,
                )
            heard = self._record.view.last_heartbeat_at
            if now >= looked_at + silence:
                # A regular activity: this read runs from a timer for as long as the task
                # does, and a local activity there can trip queries during replay.
                stored = await self._judge.stored_heartbeat(assignment_id)
                looked_at = now
                if stored is not None:
                    self._inbox.beat(stored)
                    heard = self._record.view.last_heartbeat_at
                if heard is not None and now >= heard + silence:
                    return self._lapse(
                        assignment_id,
                        f"went silent (no heartbeat for {input.heartbeat_timeout_seconds}s)",
                        Reassignment.SILENT,
                    )
            if (
                self._inbox.messages >= MESSAGES_PER_RUN
                or workflow.info().is_continue_as_new_suggested()
            ):
                await self._continue_as_new()
            look = (heard if heard is not None and heard > looked_at else looked_at) + silence
            beats = self._inbox.heartbeats

            def stirred(beats: int = beats) -> bool:
                return (
                    arrived()
                    or self._inbox.heartbeats != beats
                    or self._inbox.reassign is not None
                    or self._inbox.abort is not None
                )

            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    stirred,
                    timeout=max(min(due, look) - now, timedelta(seconds=1)),
                    timeout_summary=f"report or heartbeat from {self._record.view.agent_id}",
                )

    def _lapse(
        self, assignment_id: str, why: str, reason: Reassignment = Reassignment.HEALTH_CHECK
    ) -> Lapse:
        """End an assignment without a report: from now on nothing of it counts."""
        self._record.closed.add(assignment_id)
        return why if isinstance(why, Lapse) else Lapse.of(why, reason)

    async def _continue_as_new(self) -> None:
        """A long task starts a fresh history, keeping its assignment and its state."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            args=[
                self._input,
                TaskCheckpoint(
                    view=self._record.view,
                    attempts_before=self._record.attempts_before,
                    exclude=self._exclude,
                    rework=self._rework,
                    reported=sorted(self._judge.reported),
                    adopted=self._record.adopted,
                    signers=self._judge.signers,
                ),
            ]
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
                step = attempts.escalated(
                    self._record.standing(), level, approvers, input.approval_timeout_seconds
                )
                await self._apply(step)
            try:
                await workflow.wait_condition(
                    lambda: self._inbox.decision is not None or self._inbox.abort is not None,
                    timeout=timeout,
                    timeout_summary=f"decision by {', '.join(approvers)}",
                )
            except TimeoutError:
                continue
            if self._inbox.abort is not None:
                break
            return self._inbox.decision
        if self._inbox.abort is not None:
            await self._apply(attempts.aborted_awaiting(self._record.standing(), self._inbox.abort))
            return None
        end = attempts.unanswered(
            self._record.standing(), len(input.approval_levels), input.on_approval_timeout
        )
        if isinstance(end, ApprovalDecision):
            return end
        await self._apply(end)
        return None
