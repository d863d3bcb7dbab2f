"""`GoalWorkflow`: a goal from its spec to its report, one child `TaskWorkflow` per task."""

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.read_model import ReadModelActivities
    from goalkeeper import search_attributes as sa
    from goalkeeper.errors import InvalidGoalSpec
    from goalkeeper.models import (
        ApprovalDecision,
        GoalCheckpoint,
        GoalRef,
        GoalReport,
        GoalSpec,
        Progress,
        TaskPage,
        TaskReport,
        TaskSpec,
        TasksQuery,
        TaskUpdate,
    )
    from goalkeeper.progress import compute_progress
    from goalkeeper.records import (
        Event,
        EventKind,
        FinishGoal,
        LoadTasks,
        RecordGoal,
        RecordRejectedGoal,
        RecordTasks,
        TaskSpecPage,
    )
    from goalkeeper.scheduling import STATUSES
    from goalkeeper.statuses import Decision, GoalStatus, TaskStatus
    from goalkeeper.validation import validate_goal_spec
    from workflows.messages import parse_message, reject_if, summarize_payload
    from workflows.options import record
    from workflows.window import TaskWindow

_DETAIL_LINES = 10
"""Tasks that need attention listed in the UI's current details; the rest are counted."""

PAGE_BYTES = 128 * 1024
"""Task specs written or read per activity call, as JSON."""

REPORT_TASKS = 500
"""Tasks listed in a goal's report; beyond it, completed ones are only counted."""


@workflow.defn
class GoalWorkflow:
    """Validates a goal, runs its tasks as they become ready, and reports the outcome.

    Task workflows report their end as their result, and other changes by `task_update`
    signals, so the `progress` query is exact at every moment. At most
    `max_running_tasks` task workflows run at once. When Temporal suggests it, the goal
    lets its running tasks finish, starts nothing new meanwhile, and continues as new
    with a compact state (a byte per task); the specs stay in PostgreSQL. When a task
    fails for good, the goal's `on_task_failure` policy decides what follows.
    """

    @workflow.init
    def __init__(self, spec: Any = None, checkpoint: Any = None) -> None:
        info = workflow.info()
        self._goal_id = info.workflow_id
        self._run_id = info.first_execution_run_id
        self._header: GoalSpec | None = None
        self._window: TaskWindow | None = None
        self._status = GoalStatus.RUNNING
        self._stage = "validating"
        self._shown: tuple[str, int] | None = None
        self._early_updates: list[TaskUpdate] = []
        self._checkpoint = GoalCheckpoint.model_validate(checkpoint) if checkpoint else None
        if self._checkpoint is not None:
            self._run_id = self._checkpoint.spec_ref.goal_run_id

    @workflow.run
    async def run(self, spec: Any = None, checkpoint: Any = None) -> GoalReport:
        if self._checkpoint is None:
            window = await self._begin(spec)
        else:
            window = await self._resume(self._checkpoint)
        self._stage = "running"
        while not window.schedule.ended:
            await window.step()
            await self._expire_retry_decisions(window)
            self._show()
            if workflow.info().is_continue_as_new_suggested():
                window.holding = True  # let running tasks end, start nothing new
                if not window.schedule.running:
                    await self._continue_as_new(window)
            due = window.schedule.next_due()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    window.wake,
                    timeout=max(due - workflow.now(), timedelta(seconds=1)) if due else None,
                    timeout_summary="retry decision deadline",
                )
        return await self._finish(window)

    # Queries, signals and updates.

    @workflow.query
    def progress(self) -> Progress:
        """Progress derived from the task states now: completed / total, failures included."""
        window = self._window
        header = self._header
        counts = {s: window.schedule.count(s) for s in STATUSES} if window else {}
        if window is None and self._checkpoint is not None:
            counts = {TaskStatus.PENDING: self._checkpoint.spec_ref.tasks_total}
        return compute_progress(
            self._goal_id,
            self._status,
            self._stage_now(),
            counts,
            agents_total=len(window.agents) if window else 0,
            agents_completed=len(window.agents_completed) if window else 0,
            cost_usd=window.cost_usd if window else 0.0,
            tokens_used=window.tokens_used if window else 0,
            on_task_failure=header.on_task_failure if header else "continue",
        )

    @workflow.query
    def tasks(self, query: Any = None) -> TaskPage:
        """A page of tasks with status, agent and assignment: `{"offset", "limit", "status"}`.

        Pages hold up to 1,000 tasks (100 by default); `total` and `next_offset` say
        what is left. Totals by status come from `progress`.
        """
        parsed = TasksQuery.model_validate(query or {})
        if self._window is None:
            return TaskPage(
                goal_id=self._goal_id, offset=parsed.offset, limit=parsed.limit, total=0, tasks=[]
            )
        return self._window.page(parsed)

    @workflow.signal
    def task_update(self, update: TaskUpdate) -> None:
        """A running task's new state, from its `TaskWorkflow`."""
        if self._window is None:
            self._early_updates.append(update)
        else:
            self._window.task_update(update)

    @workflow.signal(name="approval_decision")
    async def approval_decision(self, *payload: Any) -> None:
        """Under `ask_approver`: retry (approve) or give up (reject) a failed `task_id`."""
        await workflow.wait_condition(lambda: self._window is not None)
        decision = self._judge_retry(payload)
        if isinstance(decision, str):
            workflow.logger.warning(decision)
            assert self._window is not None
            await record(
                ReadModelActivities.record_event,
                self._window.event(
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
        await workflow.wait_condition(lambda: self._window is not None)
        decision = self._judge_retry(payload)
        if isinstance(decision, str):
            raise ApplicationError(decision, type="DecisionRejected", non_retryable=True)
        await self._take_retry_decision(decision)
        return self.progress()

    @decide.validator
    def _validate_decision(self, *payload: Any) -> None:
        if self._window is not None:  # before that, the handler judges once it can
            reject_if(self._judge_retry(payload))

    def _stage_now(self) -> str:
        window = self._window
        if self._status is not GoalStatus.RUNNING or self._stage != "running" or not window:
            return self._stage
        schedule = window.schedule
        if schedule.failing:
            return f"failing: {schedule.failing}"
        if schedule.retry_due:
            waiting = sorted(schedule.plan.ids[i] for i in schedule.retry_due)
            shown = ", ".join(waiting[:_DETAIL_LINES])
            more = (
                f" and {len(waiting) - _DETAIL_LINES} more" if len(waiting) > _DETAIL_LINES else ""
            )
            return f"awaiting a retry decision on {shown}{more}"
        if window.holding:
            return "running: letting running tasks finish before continuing as new"
        return self._stage

    # Starting, and starting again after continue-as-new.

    async def _begin(self, raw: Any) -> TaskWindow:
        """Validate the spec, store it, and hold its tasks in a window."""
        spec = await self._validate(raw)
        self._header = header = spec.header()
        pages = _pages(spec.tasks)
        await record(
            ReadModelActivities.record_goal,
            RecordGoal(
                goal_id=self._goal_id,
                goal_run_id=self._run_id,
                header=header,
                tasks_total=len(spec.tasks),
                tasks=pages[0][1],
                event=self._event(
                    EventKind.GOAL_STARTED,
                    f"goal {self._goal_id!r} started with {len(spec.tasks)} tasks",
                ),
            ),
            "record the goal",
        )
        for first, page in pages[1:]:
            await record(
                ReadModelActivities.record_tasks,
                RecordTasks(
                    goal_id=self._goal_id,
                    goal_run_id=self._run_id,
                    first_position=first,
                    tasks=page,
                ),
                f"record tasks {first + 1} to {first + len(page)}",
            )
        window = self._open(header, spec.tasks)
        await window.start_blocked()
        return window

    async def _resume(self, checkpoint: GoalCheckpoint) -> TaskWindow:
        """Load the stored spec again and restore the window from the checkpoint."""
        ref = checkpoint.spec_ref
        self._header = header = await record(
            ReadModelActivities.load_goal, ref, "load the goal's spec"
        )
        specs: list[TaskSpec] = []
        start: int | None = 0
        while start is not None:
            page: TaskSpecPage = await record(
                ReadModelActivities.load_tasks,
                LoadTasks(
                    goal_id=self._goal_id,
                    goal_run_id=self._run_id,
                    start=start,
                    end=ref.tasks_total,
                    max_bytes=PAGE_BYTES,
                ),
                f"load tasks from {start + 1}",
            )
            specs += page.tasks
            start = page.next_start
        window = self._open(header, specs, checkpoint)
        window.agents.update(checkpoint.agents)
        window.agents_completed.update(checkpoint.agents_completed)
        return window

    def _open(
        self, header: GoalSpec, specs: list[TaskSpec], checkpoint: GoalCheckpoint | None = None
    ) -> TaskWindow:
        window = TaskWindow(
            self._goal_id,
            self._run_id,
            header,
            specs,
            header.max_running_tasks,
            state=checkpoint.schedule if checkpoint else None,
            summaries=checkpoint.tasks if checkpoint else None,
        )
        self._window = window
        for update in self._early_updates:
            window.task_update(update)
        self._early_updates.clear()
        return window

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
                    first_run_id=self._run_id,
                    raw_spec=summarize_payload((spec,), 4000),
                    error=str(exc)[:4000],
                    event=self._event(EventKind.GOAL_REJECTED, str(exc)[:4000]),
                ),
                "record rejected goal",
            )
            raise ApplicationError(str(exc), type="InvalidGoalSpec", non_retryable=True) from None

    async def _continue_as_new(self, window: TaskWindow) -> None:
        """Start a fresh run with the same state; no task runs across it."""
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
            spec_ref=GoalRef(
                goal_id=self._goal_id, goal_run_id=self._run_id, tasks_total=len(window.specs)
            ),
            schedule=window.schedule.state(),
            tasks=window.summaries,
            agents=sorted(window.agents),
            agents_completed=sorted(window.agents_completed),
        )
        workflow.continue_as_new(args=[None, checkpoint.model_dump(mode="json")])

    # What a failed task means under `ask_approver`.

    def _judge_retry(self, payload: tuple[Any, ...]) -> ApprovalDecision | str:
        decision = parse_message(payload, ApprovalDecision, "approval decision")
        if isinstance(decision, str):
            return decision
        window = self._window
        assert window is not None
        goal = f"goal {self._goal_id!r}"
        if decision.task_id is None:
            return (
                f"decision rejected: a decision on {goal} needs a task_id naming a failed task; "
                "decisions on a task's result go to the task's workflow"
            )
        i = window.position(decision.task_id)
        if i is None:
            return f"decision rejected: {goal} has no task {decision.task_id!r}"
        if i not in window.schedule.retry_due:
            return (
                f"decision rejected: task {decision.task_id!r} of {goal} is not awaiting a "
                f"retry decision (it is {window.schedule.status_of(i)})"
            )
        if decision.approver not in window.header.approvers:
            return (
                f"decision rejected: {decision.approver!r} may not decide on {goal}; "
                f"expected one of {window.header.approvers}"
            )
        return decision

    async def _take_retry_decision(self, decision: ApprovalDecision) -> None:
        window = self._window
        assert window is not None and decision.task_id is not None
        i = window.position(decision.task_id)
        assert i is not None
        retry = decision.decision is Decision.APPROVE
        # Applied to the schedule at once, so the decision is part of any checkpoint.
        if retry:
            window.schedule.retry(i)
            window.notes[i] = f"{decision.approver} asked for a retry"
            window.changed = True
        cascade = None if retry else window.schedule.give_up(i)
        await record(
            ReadModelActivities.record_event,
            window.event(
                EventKind.TASK_RETRIED if retry else EventKind.DECISION_ACCEPTED,
                f"{decision.approver!r} chose to {'retry' if retry else 'give up'} failed task "
                f"{decision.task_id!r}" + (f": {decision.comment}" if decision.comment else ""),
                decision.task_id,
            ),
            f"record retry decision on {decision.task_id}",
        )
        if cascade is not None:
            await window.apply(cascade)

    async def _expire_retry_decisions(self, window: TaskWindow) -> None:
        """Give up on failed tasks whose approvers did not decide in time."""
        for i in window.schedule.overdue(workflow.now()):
            task_id = window.schedule.plan.ids[i]
            cascade = window.schedule.give_up(i)
            await record(
                ReadModelActivities.record_event,
                window.event(
                    EventKind.DECISION_ACCEPTED,
                    f"no retry decision on failed task {task_id!r} in time; giving it up",
                    task_id,
                ),
                f"give up {task_id}",
            )
            await window.apply(cascade)

    # The end.

    async def _finish(self, window: TaskWindow) -> GoalReport:
        """Settle the goal's status, record the report, and return it (or fail with it)."""
        header = window.header
        schedule = window.schedule
        total = len(window.specs)
        not_done = total - schedule.count(TaskStatus.COMPLETED)
        self._status = GoalStatus.FAILED if not_done else GoalStatus.COMPLETED
        self._stage = "done"
        error = None
        lost = [i for i in range(total) if schedule.status_of(i) is not TaskStatus.COMPLETED]
        if not_done:
            listed = "; ".join(
                f"{schedule.plan.ids[i]} {schedule.status_of(i)}" for i in lost[:_DETAIL_LINES]
            )
            more = f"; and {len(lost) - _DETAIL_LINES} more" if len(lost) > _DETAIL_LINES else ""
            error = (
                f"{not_done} of {total} tasks did not complete "
                f"(on_task_failure={header.on_task_failure}"
                + (f", {schedule.failing}" if schedule.failing else "")
                + f"): {listed}{more}"
            )
        shown = lost[:REPORT_TASKS] if total > REPORT_TASKS else range(total)
        report = GoalReport(
            goal_id=self._goal_id,
            title=header.title,
            status=self._status,
            progress=self.progress(),
            tasks=[self._task_report(window, i) for i in shown],
            tasks_omitted=total - len(shown),
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
        if schedule.failing is not None:
            raise ApplicationError(
                f"goal {self._goal_id!r} failed: {error}",
                report,
                type="GoalFailed",
                non_retryable=True,
            )
        return report

    @staticmethod
    def _task_report(window: TaskWindow, i: int) -> TaskReport:
        summary = window.summary(i)
        return TaskReport(
            task_id=summary.task_id,
            title=window.specs[i].title,
            outcome=window.schedule.status_of(i),
            agent_id=summary.agent_id,
            attempts=summary.attempts,
            reworks=summary.reworks,
            tokens_used=summary.tokens_used,
            cost_usd=summary.cost_usd,
            duration_seconds=None,
            error=summary.error,
        )

    def _event(self, kind: EventKind, message: str) -> Event:
        return Event(
            event_id=str(workflow.uuid4()), kind=kind, message=message, goal_id=self._goal_id
        )

    def _show(self) -> None:
        """Mirror progress in the Temporal UI: search attributes and a one-glance status."""
        progress = self.progress()
        # In halves: each upsert is a history event, so a goal makes three, not one per
        # task; the details below show the exact figure at every moment.
        shown = (self._status.value, int(progress.progress_percentage // 50))
        if shown != self._shown:
            updates: list[SearchAttributeUpdate[Any]] = [
                sa.GOAL_STATUS.value_set(self._status.value),
                sa.GOAL_PROGRESS.value_set(progress.progress_percentage),
            ]
            if self._shown is None and self._header is not None:
                updates.append(sa.GOAL_WORKSPACE.value_set(self._header.workspace))
            self._shown = shown
            workflow.upsert_search_attributes(updates)
        lines = [
            f"**{progress.tasks_completed} of {progress.tasks_total} tasks done** "
            f"({progress.progress_percentage}%), {progress.agents_total} agents, "
            f"${progress.cost_usd:.4f}"
        ]
        if progress.stage not in ("running", "done"):
            lines.append(progress.stage)
        if progress.tasks_failed or progress.tasks_skipped:
            lines.append(f"{progress.tasks_failed} failed, {progress.tasks_skipped} skipped")
        window = self._window
        if window is not None:
            notes = [
                n for n in (self._note(window, i) for i in sorted(window.schedule.running)) if n
            ]
            lines += notes[:_DETAIL_LINES]
            if len(notes) > _DETAIL_LINES:
                lines.append(f"and {len(notes) - _DETAIL_LINES} more")
        workflow.set_current_details("\n\n".join(lines))

    @staticmethod
    def _note(window: TaskWindow, i: int) -> str:
        """What the UI should say about a running task that needs attention, if anything."""
        summary, title = window.summary(i), window.specs[i].title
        if summary.status is TaskStatus.AWAITING_APPROVAL:
            return f"waiting on approver {' or '.join(summary.waiting_on)} for '{title}'"
        if summary.status is TaskStatus.ASSIGNED and summary.attempts > 1:
            return f"'{title}' reassigned to {summary.agent_id} (attempt {summary.attempts})"
        return ""


def _pages(tasks: list[TaskSpec]) -> list[tuple[int, list[TaskSpec]]]:
    """The tasks in pages of at most `PAGE_BYTES` as JSON, each with its first position."""
    pages: list[tuple[int, list[TaskSpec]]] = []
    page: list[TaskSpec] = []
    first = size = 0
    for position, task in enumerate(tasks):
        bytes_ = len(task.model_dump_json())
        if page and size + bytes_ > PAGE_BYTES:
            pages.append((first, page))
            page, first, size = [], position, 0
        page.append(task)
        size += bytes_
    if page:
        pages.append((first, page))
    return pages
