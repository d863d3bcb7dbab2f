"""`GoalWorkflow`: a goal from its spec to its report, one child `TaskWorkflow` per task."""

import asyncio
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
        GoalCheckpoint,
        GoalReport,
        GoalSpec,
        Progress,
        TaskInput,
        TaskReport,
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
    from goalkeeper.statuses import GoalStatus, TaskStatus
    from goalkeeper.validation import validate_goal_spec
    from workflows.options import ACTIVITY_TIMEOUT, DATABASE_RETRY
    from workflows.task import TaskWorkflow


_DETAIL_LINES = 10
"""Approvals and failures listed in the UI's current details; the rest are counted."""


@workflow.defn
class GoalWorkflow:
    """Validates a goal, runs its tasks as they become ready, and reports the outcome.

    The goal learns of every task's state from `task_update` signals, so its
    `progress` query is exact at every moment. It keeps at most
    `max_running_tasks` task workflows running and continues-as-new when Temporal
    suggests it; running tasks carry on and keep signalling the new run.
    """

    @workflow.init
    def __init__(self, spec: Any = None, checkpoint: Any = None) -> None:
        self._goal_id = workflow.info().workflow_id
        self._spec: GoalSpec | None = None
        self._tasks: dict[str, TaskView] = {}
        self._started: set[str] = set()
        self._status = GoalStatus.RUNNING
        self._stage = "validating"
        self._changed = False
        self._shown: tuple[str, float] | None = None
        self._watchers: dict[str, asyncio.Task[None]] = {}
        if checkpoint is not None:
            # Restored here, not in run(), so task updates in the first activation find it.
            restored = GoalCheckpoint.model_validate(checkpoint)
            self._spec = GoalSpec.model_validate(spec)
            self._tasks = restored.tasks
            self._started = set(restored.started)
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
            await self._write(
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
            await self._skip_blocked()
            await self._start_ready()
            self._show()
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()
            await workflow.wait_condition(lambda: self._changed or self._all_ended())
        return await self._finish()

    def _all_ended(self) -> bool:
        return all(task.status.is_terminal for task in self._tasks.values())

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

    @workflow.query
    def progress(self) -> Progress:
        """Progress derived from the task states now: completed / total, failures included."""
        return compute_progress(self._goal_id, self._status, self._stage, self._tasks.values())

    @workflow.query
    def tasks(self) -> list[TaskView]:
        """Every task with its status, agent and assignment."""
        return list(self._tasks.values())

    async def _validate(self, spec: Any) -> GoalSpec:
        """Check the spec before anything runs; an invalid goal is recorded and fails at once."""
        try:
            return validate_goal_spec(spec, self._goal_id)
        except InvalidGoalSpec as exc:
            self._status, self._stage = GoalStatus.REJECTED, "rejected"
            workflow.upsert_search_attributes([sa.GOAL_STATUS.value_set(self._status.value)])
            workflow.set_current_details(f"**Rejected**: {exc}")
            await self._write(
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

    async def _skip_blocked(self) -> None:
        """Skip pending tasks whose dependencies failed or were skipped, transitively."""
        blocked = True
        while blocked:
            blocked = False
            for task in list(self._tasks.values()):
                if task.status is not TaskStatus.PENDING:
                    continue
                lost = [
                    d
                    for d in task.depends_on
                    if self._tasks[d].status in (TaskStatus.FAILED, TaskStatus.SKIPPED)
                ]
                if not lost:
                    continue
                blocked = True
                reason = f"skipped: dependency {lost[0]!r} {self._tasks[lost[0]].status}"
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
                await self._write(
                    ReadModelActivities.record_task,
                    RecordTask(
                        task=skipped,
                        event=self._event(
                            EventKind.TASK_SKIPPED, f"task {task.task_id!r} {reason}", task.task_id
                        ),
                    ),
                    f"record task {task.task_id} skipped",
                )

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
            handle = await workflow.start_child_workflow(
                TaskWorkflow.run,
                TaskInput(
                    goal_id=self._goal_id,
                    goal_title=self._spec.title,
                    goal_description=self._spec.description,
                    workspace=self._spec.workspace,
                    task=task,
                    approvers=self._spec.approvers_of(task),
                    dependency_results={d: self._tasks[d].result for d in task.depends_on},
                    max_attempts=self._spec.max_attempts,
                    max_rework=self._spec.max_rework,
                ),
                id=f"{self._goal_id}/{view.task_id}",
                # Tasks outlive a continue-as-new of their goal and signal the new run.
                parent_close_policy=ParentClosePolicy.ABANDON,
                # A task left open by an earlier goal of the same id must not block this one.
                id_reuse_policy=WorkflowIDReusePolicy.TERMINATE_IF_RUNNING,
                static_summary=f"{view.title} ({view.skill})",
            )
            self._started.add(view.task_id)
            running += 1
            workflow.logger.info(f"started task {view.task_id!r}")
            self._watchers[view.task_id] = asyncio.create_task(self._watch(view.task_id, handle))

    async def _watch(self, task_id: str, handle: workflow.ChildWorkflowHandle) -> None:
        """Fail a task visibly if its workflow ends without having said how it ended."""
        try:
            await handle
        except ChildWorkflowError as exc:
            current = self._tasks[task_id]
            if current.status.is_terminal:
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
            await self._write(
                ReadModelActivities.record_task,
                RecordTask(task=failed, event=self._event(EventKind.TASK_FAILED, error, task_id)),
                f"record task {task_id} failed",
            )

    async def _continue_as_new(self) -> None:
        """Start a fresh run with the same state; running tasks signal the new run."""
        assert self._spec is not None
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._write(
            ReadModelActivities.record_event,
            self._event(
                EventKind.GOAL_CONTINUED,
                f"goal {self._goal_id!r} continued as new after "
                f"{workflow.info().get_current_history_length()} history events",
            ),
            "record continue-as-new",
        )
        checkpoint = GoalCheckpoint(
            spec=self._spec, tasks=self._tasks, started=sorted(self._started)
        )
        workflow.continue_as_new(
            args=[self._spec.model_dump(mode="json"), checkpoint.model_dump(mode="json")]
        )

    async def _finish(self) -> GoalReport:
        """Settle the goal's status, record the report, and return it."""
        assert self._spec is not None
        failed = [t for t in self._tasks.values() if t.status is not TaskStatus.COMPLETED]
        self._status = GoalStatus.FAILED if failed else GoalStatus.COMPLETED
        self._stage = "done"
        error = None
        if failed:
            error = f"{len(failed)} of {len(self._tasks)} tasks did not complete: " + "; ".join(
                f"{t.task_id} {t.status}" for t in failed
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
        await self._write(
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
        return report

    async def _write(self, activity: Any, arg: Any, summary: str) -> None:
        """Run one read-model activity with the database retry policy."""
        await workflow.execute_activity_method(
            activity,
            arg,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DATABASE_RETRY,
            summary=summary,
        )

    def _event(self, kind: EventKind, message: str, task_id: str | None = None) -> Event:
        return Event(
            event_id=str(workflow.uuid4()),
            kind=kind,
            message=message,
            goal_id=self._goal_id,
            task_id=task_id,
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
        notes = [
            f"waiting on approver {' or '.join(task.waiting_on)} for '{task.title}'"
            if task.status is TaskStatus.AWAITING_APPROVAL
            else f"{task.status}: '{task.title}' ({task.error})"
            for task in self._tasks.values()
            if task.status in (TaskStatus.AWAITING_APPROVAL, TaskStatus.FAILED, TaskStatus.SKIPPED)
        ]
        lines += notes[:_DETAIL_LINES]
        if len(notes) > _DETAIL_LINES:
            lines.append(f"and {len(notes) - _DETAIL_LINES} more")
        workflow.set_current_details("\n\n".join(lines))
