"""`GoalWorkflow`: a goal from its spec to its report, one child `TaskWorkflow` per task."""

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.read_model import ReadModelActivities
    from goalkeeper import search_attributes as sa
    from goalkeeper.errors import InvalidGoalSpec
    from goalkeeper.models import (
        ApprovalDecision,
        GoalCheckpoint,
        GoalReport,
        GoalSpec,
        Progress,
        TaskInput,
        TaskReport,
        TaskSpec,
        TaskView,
    )
    from goalkeeper.progress import compute_progress
    from goalkeeper.records import (
        Event,
        EventKind,
        FinishGoal,
        RecordGoal,
        RecordRejectedGoal,
        RecordTask,
    )
    from goalkeeper.statuses import Decision, GoalStatus, TaskStatus
    from goalkeeper.validation import validate_goal_spec
    from workflows.messages import parse_message, reject_if, summarize_payload
    from workflows.options import record
    from workflows.task import TaskWorkflow

_DETAIL_LINES = 10
"""Approvals and failures listed in the UI's current details; the rest are counted."""


@workflow.defn
class GoalWorkflow:
    """Validates a goal, runs its tasks as they become ready, and reports the outcome.

    The goal learns of every task's state from `task_update` signals, so its
    `progress` query is exact at every moment. It keeps at most
    `max_running_tasks` task workflows running and continues-as-new when Temporal
    suggests it; running tasks carry on and keep signalling the new run. When a task
    fails for good, the goal's `on_task_failure` policy decides what follows.
    """

    @workflow.init
    def __init__(self, spec: Any = None, checkpoint: Any = None) -> None:
        self._goal_id = workflow.info().workflow_id
        self._spec: GoalSpec | None = None
        self._tasks: dict[str, TaskView] = {}
        self._started: set[str] = set()
        self._failures_handled: set[str] = set()
        self._retry_due: dict[str, datetime] = {}
        self._retry_granted: dict[str, ApprovalDecision] = {}
        self._failing: str | None = None
        self._aborted: set[str] = set()
        self._status = GoalStatus.RUNNING
        self._stage = "validating"
        self._changed = False
        self._shown: tuple[str, float] | None = None
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._watched: dict[str, str | None] = {}
        if checkpoint is not None:
            # Restored here, not in run(), so task updates in the first activation find it.
            restored = GoalCheckpoint.model_validate(checkpoint)
            self._spec = GoalSpec.model_validate(spec)
            self._tasks = restored.tasks
            self._started = set(restored.started)
            self._failures_handled = set(restored.failures_handled)
            self._retry_due = dict(restored.retry_due)
            self._failing = restored.failing
            self._stage = "running"

    @workflow.run
    async def run(self, spec: Any = None, checkpoint: Any = None) -> GoalReport:
        if self._spec is None:
            self._spec = await self._validate(spec)
            self._tasks = {
                task.id: TaskView(
                    goal_id=self._goal_id,
                    task_id=task.id,
                    title=task.title,
                    skill=task.skill,
                    depends_on=task.depends_on,
                    requires_approval=task.requires_approval,
                )
                for task in self._spec.tasks
                if task.id is not None
            }
            await record(
                ReadModelActivities.record_goal,
                RecordGoal(
                    goal_id=self._goal_id,
                    first_run_id=workflow.info().first_execution_run_id,
                    spec=self._spec,
                    event=self._event(
                        EventKind.GOAL_STARTED,
                        f"goal {self._goal_id!r} started with {len(self._tasks)} tasks",
                    ),
                ),
                "record goal and tasks",
            )
            self._stage = "running"
        workflow.upsert_search_attributes([sa.GOAL_WORKSPACE.value_set(self._spec.workspace)])
        while not self._all_ended():
            # Cleared before the work, so an update that arrives during it wakes the wait.
            self._changed = False
            await self._apply_failure_policy()
            await self._start_retries()
            await self._skip_blocked()
            if self._failing is None:
                await self._start_ready()
            self._show()
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()
            try:
                await workflow.wait_condition(
                    lambda: self._changed or self._all_ended(),
                    timeout=self._next_retry_deadline(),
                    timeout_summary="retry decision deadline",
                )
            except TimeoutError:
                await self._expire_retry_decisions()
        return await self._finish()

    def _all_ended(self) -> bool:
        return all(
            task.status.is_terminal and task.task_id not in self._retry_due
            for task in self._tasks.values()
        )

    @workflow.signal
    def task_update(self, view: TaskView) -> None:
        """A task's new state, sent by its `TaskWorkflow`; stale or repeated updates are ignored."""
        current = self._tasks.get(view.task_id)
        if current is None or view.goal_id != self._goal_id:
            workflow.logger.warning(f"ignored update for unknown task {view.task_id!r}")
            return
        if view.seq <= current.seq or current.status.is_terminal:
            return
        self._tasks[view.task_id] = view
        self._changed = True

    @workflow.signal(name="approval_decision")
    async def approval_decision(self, *payload: Any) -> None:
        """Under `ask_approver`: retry (approve) or give up (reject) a failed `task_id`."""
        decision = self._judge_retry(payload)
        if isinstance(decision, str):
            workflow.logger.warning(decision)
            await record(
                ReadModelActivities.record_event,
                self._event(
                    EventKind.DECISION_REJECTED,
                    decision,
                    None,
                    {"payload": summarize_payload(payload)},
                ),
                "record rejected decision",
            )
            return
        await self._take_retry_decision(decision)

    @workflow.update(name="decide")
    async def decide(self, *payload: Any) -> Progress:
        """`approval_decision`, answered: the goal's progress after it, or why it was rejected."""
        decision = self._judge_retry(payload)
        if isinstance(decision, str):
            raise ApplicationError(decision, type="DecisionRejected", non_retryable=True)
        await self._take_retry_decision(decision)
        return self.progress()

    @decide.validator
    def _validate_decision(self, *payload: Any) -> None:
        reject_if(self._judge_retry(payload))

    @workflow.query
    def progress(self) -> Progress:
        """Progress derived from the task states now: completed / total, failures included."""
        policy = self._spec.on_task_failure if self._spec else "continue"
        return compute_progress(
            self._goal_id, self._status, self._stage_now(), self._tasks.values(), policy
        )

    @workflow.query
    def tasks(self) -> list[TaskView]:
        """Every task with its status, agent and assignment."""
        return list(self._tasks.values())

    def _stage_now(self) -> str:
        if self._status is not GoalStatus.RUNNING or self._stage != "running":
            return self._stage
        if self._failing:
            return f"failing: {self._failing}"
        if self._retry_due:
            return "awaiting a retry decision on " + ", ".join(sorted(self._retry_due))
        return self._stage

    async def _validate(self, spec: Any) -> GoalSpec:
        """Check the spec before anything runs; an invalid goal is recorded and fails at once."""
        try:
            return validate_goal_spec(spec, self._goal_id)
        except InvalidGoalSpec as exc:
            self._status, self._stage = GoalStatus.REJECTED, "rejected"
            workflow.upsert_search_attributes([sa.GOAL_STATUS.value_set(self._status.value)])
            workflow.set_current_details(f"**Rejected**: {exc}")
            await record(
                ReadModelActivities.record_rejected_goal,
                RecordRejectedGoal(
                    goal_id=self._goal_id,
                    first_run_id=workflow.info().first_execution_run_id,
                    raw_spec=spec,
                    error=str(exc),
                    event=self._event(EventKind.GOAL_REJECTED, str(exc)),
                ),
                "record rejected goal",
            )
            raise ApplicationError(str(exc), type="InvalidGoalSpec", non_retryable=True) from None

    # What a failed task means for the goal.

    async def _apply_failure_policy(self) -> None:
        """Act once on each task that failed for good, as `on_task_failure` says."""
        assert self._spec is not None
        policy = self._spec.on_task_failure
        for task in self._tasks.values():
            if task.status is not TaskStatus.FAILED or task.task_id in self._failures_handled:
                continue
            self._failures_handled.add(task.task_id)
            if policy == "fail_goal" and self._failing is None:
                self._failing = f"task {task.task_id!r} failed"
            elif policy == "ask_approver":
                due = workflow.now() + timedelta(seconds=self._spec.approval_timeout_seconds)
                self._retry_due[task.task_id] = due
                await record(
                    ReadModelActivities.record_event,
                    self._event(
                        EventKind.RETRY_REQUESTED,
                        f"task {task.task_id!r} failed; asking {self._spec.approvers} whether "
                        "to retry it (approve) or give it up (reject)",
                        task.task_id,
                    ),
                    f"ask whether to retry {task.task_id}",
                )
        if self._failing is not None:
            await self._abort_running()

    async def _abort_running(self) -> None:
        """Under `fail_goal`: stop every running task, releasing its agent."""
        for task_id in sorted(self._started - self._aborted):
            if not self._tasks[task_id].status.is_terminal:
                self._aborted.add(task_id)
                handle = workflow.get_external_workflow_handle(f"{self._goal_id}/{task_id}")
                try:
                    await handle.signal("abort", f"goal failed: {self._failing}")
                except Exception as exc:  # its workflow is gone; the watcher records that
                    workflow.logger.warning(f"could not abort task {task_id!r}: {exc}")

    def _judge_retry(self, payload: tuple[Any, ...]) -> ApprovalDecision | str:
        decision = parse_message(payload, ApprovalDecision, "approval decision")
        if isinstance(decision, str):
            return decision
        assert self._spec is not None
        goal = f"goal {self._goal_id!r}"
        if decision.task_id is None:
            return (
                f"decision rejected: a decision on {goal} needs a task_id naming a failed task; "
                "decisions on a task's result go to the task's workflow"
            )
        if decision.task_id not in self._tasks:
            return (
                f"decision rejected: {goal} has no task {decision.task_id!r}; "
                f"its tasks: {', '.join(self._tasks)}"
            )
        if decision.task_id not in self._retry_due:
            state = self._tasks[decision.task_id].status
            return (
                f"decision rejected: task {decision.task_id!r} of {goal} is not awaiting a "
                f"retry decision (it is {state})"
            )
        if decision.approver not in self._spec.approvers:
            return (
                f"decision rejected: {decision.approver!r} may not decide on {goal}; "
                f"expected one of {self._spec.approvers}"
            )
        return decision

    async def _take_retry_decision(self, decision: ApprovalDecision) -> None:
        task_id = decision.task_id or ""
        self._retry_due.pop(task_id, None)
        retry = decision.decision is Decision.APPROVE
        if retry:
            self._retry_granted[task_id] = decision
        self._changed = True
        await record(
            ReadModelActivities.record_event,
            self._event(
                EventKind.DECISION_ACCEPTED,
                f"{decision.approver!r} chose to {'retry' if retry else 'give up'} failed task "
                f"{task_id!r}" + (f": {decision.comment}" if decision.comment else ""),
                task_id,
            ),
            f"record retry decision on {task_id}",
        )

    def _next_retry_deadline(self) -> timedelta | None:
        if not self._retry_due:
            return None
        return max(min(self._retry_due.values()) - workflow.now(), timedelta(seconds=1))

    async def _expire_retry_decisions(self) -> None:
        """Give up on failed tasks whose approvers did not decide in time."""
        now = workflow.now()
        for task_id, due in sorted(self._retry_due.items()):
            if due <= now:
                del self._retry_due[task_id]
                await record(
                    ReadModelActivities.record_event,
                    self._event(
                        EventKind.DECISION_ACCEPTED,
                        f"no retry decision on failed task {task_id!r} in time; giving it up",
                        task_id,
                    ),
                    f"give up {task_id}",
                )

    async def _start_retries(self) -> None:
        """Start a granted retry: the same task, its history kept, a fresh attempt budget."""
        assert self._spec is not None
        for task_id, decision in sorted(self._retry_granted.items()):
            view = self._tasks[task_id]
            again = view.model_copy(
                update={
                    "status": TaskStatus.PENDING,
                    "error": None,
                    "ended_at": None,
                    "seq": view.seq + 1,
                    "history": [*view.history, f"{decision.approver} asked for a retry"],
                }
            )
            self._tasks[task_id] = again
            await record(
                ReadModelActivities.record_task,
                RecordTask(
                    task=again,
                    event=self._event(
                        EventKind.TASK_RETRIED, f"retrying failed task {task_id!r}", task_id
                    ),
                ),
                f"record retry of {task_id}",
            )
            spec = next(t for t in self._spec.tasks if t.id == task_id)
            await self._start_task(spec, previous=again)
            self._failures_handled.discard(task_id)
        self._retry_granted.clear()

    async def _skip_blocked(self) -> None:
        """Skip pending tasks that cannot run: a dependency was lost, or the goal is failing."""
        blocked = True
        while blocked:
            blocked = False
            for task in list(self._tasks.values()):
                if task.status is not TaskStatus.PENDING or task.task_id in self._started:
                    continue
                if self._failing is not None:
                    reason = f"skipped: goal failed ({self._failing})"
                else:
                    lost = [d for d in task.depends_on if self._lost(d)]
                    if not lost:
                        continue
                    reason = f"skipped: dependency {lost[0]!r} {self._tasks[lost[0]].status}"
                blocked = True
                skipped = task.model_copy(
                    update={
                        "status": TaskStatus.SKIPPED,
                        "error": reason,
                        "history": [reason],
                        "ended_at": workflow.now(),
                        "seq": task.seq + 1,
                    }
                )
                self._tasks[task.task_id] = skipped
                await record(
                    ReadModelActivities.record_task,
                    RecordTask(
                        task=skipped,
                        event=self._event(
                            EventKind.TASK_SKIPPED, f"task {task.task_id!r} {reason}", task.task_id
                        ),
                    ),
                    f"record task {task.task_id} skipped",
                )

    def _lost(self, task_id: str) -> bool:
        """A dependency that will never complete (not one awaiting a retry decision)."""
        status = self._tasks[task_id].status
        return status in (TaskStatus.FAILED, TaskStatus.SKIPPED) and task_id not in self._retry_due

    async def _start_ready(self) -> None:
        """Start tasks whose dependencies completed, keeping within the running window."""
        assert self._spec is not None
        running = sum(
            1
            for t in self._tasks.values()
            if t.task_id in self._started and not t.status.is_terminal
        )
        for task in self._spec.tasks:
            if running >= self._spec.max_running_tasks:
                return
            view = self._tasks[task.id or ""]
            if view.task_id in self._started or view.status is not TaskStatus.PENDING:
                continue
            if any(self._tasks[d].status is not TaskStatus.COMPLETED for d in task.depends_on):
                continue
            await self._start_task(task)
            running += 1

    async def _start_task(self, task: TaskSpec, previous: TaskView | None = None) -> None:
        assert self._spec is not None
        spec = self._spec
        task_id = task.id or ""
        handle = await workflow.start_child_workflow(
            TaskWorkflow.run,
            TaskInput(
                goal_id=self._goal_id,
                goal_title=spec.title,
                goal_description=spec.description,
                workspace=spec.workspace,
                task=task,
                approval_levels=[spec.approvers_of(task), *spec.escalation],
                dependency_results={d: self._tasks[d].result for d in task.depends_on},
                max_attempts=spec.max_attempts,
                report_deadline_seconds=task.report_deadline_seconds
                or spec.report_deadline_seconds,
                heartbeat_timeout_seconds=task.heartbeat_timeout_seconds
                or spec.heartbeat_timeout_seconds,
                approval_timeout_seconds=spec.approval_timeout_seconds,
                on_approval_timeout=spec.on_approval_timeout,
                previous=previous,
            ),
            id=f"{self._goal_id}/{task_id}",
            # Tasks outlive a continue-as-new of their goal and signal the new run.
            parent_close_policy=ParentClosePolicy.ABANDON,
            # A task left open by an earlier run (late-report window) must not block this one.
            id_reuse_policy=WorkflowIDReusePolicy.TERMINATE_IF_RUNNING,
            static_summary=f"{task.title} ({task.skill})",
        )
        self._started.add(task_id)
        workflow.logger.info(f"started task {task_id!r}")
        # The newest run is the one watched: a retry terminates the run it replaces.
        self._watched[task_id] = handle.first_execution_run_id
        self._watchers[task_id] = asyncio.create_task(self._watch(task_id, handle))

    async def _watch(self, task_id: str, handle: workflow.ChildWorkflowHandle) -> None:
        """Fail a task visibly if its workflow ends without having said how it ended."""
        try:
            await handle
        except ChildWorkflowError as exc:
            current = self._tasks[task_id]
            if (
                current.status.is_terminal
                or self._watched[task_id] != handle.first_execution_run_id
            ):
                return
            error = f"task workflow ended without an outcome: {exc.cause or exc}"
            failed = current.model_copy(
                update={
                    "status": TaskStatus.FAILED,
                    "error": error,
                    "history": [*current.history, error],
                    "ended_at": workflow.now(),
                    "seq": current.seq + 1,
                }
            )
            self._tasks[task_id] = failed
            self._changed = True
            await record(
                ReadModelActivities.record_task,
                RecordTask(task=failed, event=self._event(EventKind.TASK_FAILED, error, task_id)),
                f"record task {task_id} failed",
            )

    async def _continue_as_new(self) -> None:
        """Start a fresh run with the same state; running tasks signal the new run."""
        assert self._spec is not None
        await workflow.wait_condition(workflow.all_handlers_finished)
        await record(
            ReadModelActivities.record_event,
            self._event(
                EventKind.GOAL_CONTINUED,
                f"goal {self._goal_id!r} continued as new after "
                f"{workflow.info().get_current_history_length()} history events",
            ),
            "record continue-as-new",
        )
        checkpoint = GoalCheckpoint(
            spec=self._spec,
            tasks=self._tasks,
            started=sorted(self._started),
            failures_handled=sorted(self._failures_handled),
            retry_due=self._retry_due,
            failing=self._failing,
        )
        workflow.continue_as_new(
            args=[self._spec.model_dump(mode="json"), checkpoint.model_dump(mode="json")]
        )

    async def _finish(self) -> GoalReport:
        """Settle the goal's status, record the report, and return it (or fail with it)."""
        assert self._spec is not None
        failed = [t for t in self._tasks.values() if t.status is not TaskStatus.COMPLETED]
        self._status = GoalStatus.FAILED if failed else GoalStatus.COMPLETED
        self._stage = "done"
        error = None
        if failed:
            error = (
                f"{len(failed)} of {len(self._tasks)} tasks did not complete "
                f"(on_task_failure={self._spec.on_task_failure}"
                + (f", {self._failing}" if self._failing else "")
                + "): "
                + "; ".join(f"{t.task_id} {t.status}" for t in failed)
            )
        report = GoalReport(
            goal_id=self._goal_id,
            title=self._spec.title,
            status=self._status,
            progress=self.progress(),
            tasks=[
                TaskReport(
                    task_id=t.task_id,
                    title=t.title,
                    outcome=t.status,
                    agent_id=t.agent_id,
                    attempts=t.attempts,
                    reworks=t.reworks,
                    tokens_used=t.tokens_used,
                    cost_usd=t.cost_usd,
                    duration_seconds=(
                        (t.ended_at - t.started_at).total_seconds()
                        if t.started_at and t.ended_at
                        else None
                    ),
                    error=t.error,
                )
                for t in self._tasks.values()
            ],
            error=error,
        )
        await record(
            ReadModelActivities.finish_goal,
            FinishGoal(
                goal_id=self._goal_id,
                status=self._status,
                report=report,
                event=self._event(
                    EventKind.GOAL_FINISHED,
                    f"goal {self._goal_id!r} {self._status}: "
                    f"{report.progress.tasks_completed} of {report.progress.tasks_total} tasks "
                    "completed",
                ),
            ),
            "record goal report",
        )
        self._show()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._failing is not None:
            raise ApplicationError(
                f"goal {self._goal_id!r} failed: {error}",
                report,
                type="GoalFailed",
                non_retryable=True,
            )
        return report

    def _event(
        self,
        kind: EventKind,
        message: str,
        task_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Event:
        return Event(
            event_id=str(workflow.uuid4()),
            kind=kind,
            message=message,
            goal_id=self._goal_id,
            task_id=task_id,
            detail=detail or {},
        )

    def _show(self) -> None:
        """Mirror progress in the Temporal UI: search attributes and a one-glance status."""
        progress = self.progress()
        shown = (self._status.value, progress.progress_percentage)
        if shown != self._shown:
            self._shown = shown
            workflow.upsert_search_attributes(
                [
                    sa.GOAL_STATUS.value_set(self._status.value),
                    sa.GOAL_PROGRESS.value_set(progress.progress_percentage),
                ]
            )
        lines = [
            f"**{progress.tasks_completed} of {progress.tasks_total} tasks done** "
            f"({progress.progress_percentage}%), {progress.agents_total} agents, "
            f"${progress.cost_usd:.4f}"
        ]
        if progress.stage not in ("running", "done"):
            lines.append(progress.stage)
        notes = [note for note in map(_note, self._tasks.values()) if note]
        lines += notes[:_DETAIL_LINES]
        if len(notes) > _DETAIL_LINES:
            lines.append(f"and {len(notes) - _DETAIL_LINES} more")
        workflow.set_current_details("\n\n".join(lines))


def _note(task: TaskView) -> str:
    """What the UI should say about a task that needs attention, if anything."""
    if task.status is TaskStatus.AWAITING_APPROVAL:
        return f"waiting on approver {' or '.join(task.waiting_on)} for '{task.title}'"
    if task.status in (TaskStatus.FAILED, TaskStatus.SKIPPED):
        return f"{task.status}: '{task.title}' ({task.error})"
    if task.status is TaskStatus.ASSIGNED and task.attempts > 1:
        return f"'{task.title}' reassigned to {task.agent_id} (attempt {task.attempts})"
    return ""
