"""`GoalWorkflow`: a goal from its spec to its report, one child `TaskWorkflow` per task."""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import workflows.sealing as sealing
    from activities.read_model import ReadModelActivities
    from goalkeeper.details import resumed_stage
    from goalkeeper.limits import MAX_SHORT_REASON_CHARS
    from goalkeeper.metrics import Rejected
    from goalkeeper.models import (
        Abort,
        Adopt,
        GoalCheckpoint,
        GoalRef,
        GoalReport,
        GoalSpec,
        PartitionUpdate,
        Progress,
        TaskPage,
        TasksQuery,
        TaskUpdate,
    )
    from goalkeeper.progress import checkpoint_figures, compute_progress
    from goalkeeper.records import EventKind, goal_event
    from goalkeeper.reports import goal_error
    from goalkeeper.statuses import GoalStatus, TaskStatus
    from monitoring import metrics
    from workflows.goal.budget import GoalBudget
    from workflows.goal.controls import GoalControls, record_refusal
    from workflows.goal.display import GoalDisplay
    from workflows.goal.opening import GoalOpening
    from workflows.goal.parent import ParentLink
    from workflows.goal.report import record_report, suggest
    from workflows.options import record
    from workflows.refusals import RefusalLog
    from workflows.runners.runner import TaskRunner


LOOK_AGAIN = "look-again-after-refusals"
"""Goals that started before a refused message could wake an idle loop."""


@workflow.defn
class GoalWorkflow:
    """Validates a goal, runs its tasks as they become ready, and reports the outcome.

    Task workflows report their end as their result, and other changes by `task_update`
    signals, so the `progress` query is exact at every moment. At most
    `max_running_tasks` task workflows run at once. When Temporal suggests it, the goal
    continues as new with a compact state (a byte per task; the specs stay in
    PostgreSQL), and its next run adopts the tasks still running: they tell it how they
    end. When a task fails for good, the goal's `on_task_failure` policy decides what
    follows. How it runs its tasks, in one window or in partitions, is its `TaskRunner`'s.
    """

    @workflow.init
    def __init__(self, spec: Any = None, checkpoint: Any = None) -> None:
        info = workflow.info()
        self._goal_id = info.workflow_id
        self._run_id = info.first_execution_run_id
        self._header: GoalSpec | None = None
        self._runner: TaskRunner | None = None
        self._status = GoalStatus.RUNNING
        self._stage = "validating"
        self._display = GoalDisplay()
        self._early_updates: list[TaskUpdate] = []
        self._signals = 0
        """Signals this run received, counted as each arrives: names its rejections."""
        self._refusals = RefusalLog()
        """Refused messages, written in batches apart from their handlers."""
        self._checkpoint = GoalCheckpoint.model_validate(checkpoint) if checkpoint else None
        self._budget: GoalBudget | None = None
        self._controls: GoalControls | None = None
        """The signed changes to the goal, taken once it runs (its budget known)."""
        self._parent = ParentLink(self.progress, lambda: self._agents()[0])
        if self._checkpoint is not None:
            self._stage = "running"
            self._run_id = self._checkpoint.spec_ref.goal_run_id
            self._parent.told = self._checkpoint.told
            self._parent.adopted_by = self._checkpoint.adopted_by

    @workflow.run
    async def run(self, spec: Any = None, checkpoint: Any = None) -> GoalReport:
        opening = GoalOpening(self._goal_id, self._run_id, self._known, self._rejected)
        if self._checkpoint is None:
            runner = await opening.begin(spec)
        else:
            runner = await opening.resume(self._checkpoint)
        self._open(runner)
        assert self._header is not None
        self._budget = budget = GoalBudget(
            self._goal_id,
            self._run_id,
            self._header,
            self._checkpoint.budget if self._checkpoint else None,
            runner.halt,
            runner.wake,
        )
        self._controls = GoalControls(
            self._goal_id,
            self._run_id,
            self._header,
            runner,
            budget,
            lambda: self._status,
            self._refusals,
        )
        self._stage = "running"
        runner.pause(budget.paused)  # a pause goes on after continue-as-new
        await runner.run(self._after_step, self._continue_as_new)
        return await self._finish()

    def _known(self, header: GoalSpec) -> None:
        """The spec is valid: its header shows in progress from now on."""
        self._header = header

    def _rejected(self) -> None:
        self._status, self._stage = GoalStatus.REJECTED, "rejected"

    def _open(self, runner: TaskRunner) -> None:
        """Run the tasks with `runner`, which takes the updates that came before it."""
        self._runner = runner
        for update in self._early_updates:
            runner.task_update(update)
        self._early_updates.clear()

    async def _after_step(self) -> timedelta | None:
        """Show the goal, hold it to its budget, tell the goal it runs for; returns how
        soon to look again when a deadline is due."""
        budget, runner = self._budget, self._runner
        assert budget is not None and runner is not None
        if not runner.closed:  # what the last task spent cannot pause a goal that has ended
            refused = runner.refused
            # PostgreSQL may count a report before the goal hears of it: its word holds.
            own = refused is not None and runner.refused_by == self._goal_id
            await budget.watch(*runner.spent(), refused=own)
            await budget.held(None if own else refused)
        runner.pause(budget.paused)
        self._show()
        return await self._parent.tell_progress(self._header)

    def _agents(self) -> tuple[set[str], set[str]]:
        return self._runner.agent_ids() if self._runner else (set(), set())

    @workflow.signal
    async def adopt(self, *payload: Any) -> None:
        """A later run of the goal this is a sub-goal of took it over: tell it the end."""
        request = sealing.opened(payload, Adopt, "adopt")
        if isinstance(request, str):
            await self._refuse_internal(request, payload)
        else:
            self._parent.adopted_by = request.goal_run_id or None

    # Queries, signals and updates.

    @workflow.query
    def progress(self) -> Progress:
        """Progress derived from the task states now: completed / total, failures included."""
        header, runner, checkpoint = self._header, self._runner, self._checkpoint
        counts: dict[TaskStatus, int] = {}
        agents, completed = self._agents()
        cost, tokens = runner.spent() if runner else (0.0, 0)
        if runner is not None:
            counts = runner.totals()
        elif checkpoint is not None:  # the next run, its state not loaded yet
            counts, agents, completed, cost, tokens = checkpoint_figures(checkpoint)
        return compute_progress(
            self._goal_id,
            self._status,
            self._stage_now(),
            counts,
            agents_total=len(agents),
            agents_completed=len(completed),
            cost_usd=cost,
            tokens_used=tokens,
            on_task_failure=header.on_task_failure if header else "continue",
            tasks_added=runner.tasks_added if runner else 0,
            budget=self._budget.state
            if self._budget
            else (checkpoint.budget if checkpoint else None),
        )

    @workflow.query
    def tasks(self, query: Any = None) -> TaskPage:
        """A page of tasks with status, agent and assignment: `{"offset", "limit", "status"}`.

        Pages hold up to 1,000 tasks (100 by default); `total` and `next_offset` say
        what is left. Totals by status come from `progress`. A goal run in partitions
        lists its partition workflows instead, whose `tasks` queries page the same way.
        """
        parsed = TasksQuery.model_validate(query or {})
        if self._runner is not None:
            return self._runner.page(parsed)
        return TaskPage(
            goal_id=self._goal_id, offset=parsed.offset, limit=parsed.limit, total=0, tasks=[]
        )

    @workflow.signal
    async def task_update(self, *payload: Any) -> None:
        """A running task's new state, from its `TaskWorkflow`."""
        update = sealing.opened(payload, TaskUpdate, "task_update")
        if isinstance(update, str):
            await self._refuse_internal(update, payload)
        elif self._runner is None:
            self._early_updates.append(update)
        else:
            self._runner.task_update(update)

    @workflow.signal
    async def abort(self, *payload: Any) -> None:
        """Stop the goal and fail it: its running tasks are aborted, the rest skipped.

        The goal a sub-goal runs for sends this when it fails, as it would to a task.
        """
        request = sealing.opened(payload, Abort, "abort", legacy=lambda v: {"reason": str(v)})
        if isinstance(request, str):
            await self._refuse_internal(request, payload)
            return
        await workflow.wait_condition(self._ready)
        assert self._runner is not None
        self._runner.halt(f"aborted: {request.reason[:MAX_SHORT_REASON_CHARS]}")

    @workflow.signal
    async def partition_update(self, *payload: Any) -> None:
        """A partition's counts, from its `PartitionWorkflow`."""
        update = sealing.opened(payload, PartitionUpdate, "partition_update")
        if isinstance(update, str):
            await self._refuse_internal(update, payload)
        elif self._runner is not None:
            self._runner.partition_update(update)

    async def _refuse_internal(self, problem: str, payload: tuple[Any, ...]) -> None:
        """A message that poses as Goalkeeper's own: counted, and recorded like any refusal."""
        self._signals += 1
        received = self._signals
        metrics.rejected(workflow.metric_meter(), Rejected.INTERNAL)
        workflow.logger.warning(problem)
        await record_refusal(
            self._refusals,
            self._goal_id,
            self._run_id,
            EventKind.MESSAGE_REJECTED,
            problem,
            payload,
            received,
        )
        self._look_again()

    def _look_again(self) -> None:
        """Refused messages grow the history of a goal that may be idle (paused at its
        budget, say): its loop looks again, to continue as new once Temporal suggests it."""
        suggested = workflow.info().is_continue_as_new_suggested()
        if self._runner is not None and suggested and workflow.patched(LOOK_AGAIN):
            self._runner.wake()

    # The signed changes: each waits until the goal runs, then `workflows.goal.controls` takes it.

    def _ready(self) -> bool:
        return self._controls is not None

    def _control(self) -> GoalControls:
        """The goal's controls, once it is `_ready` for them."""
        assert self._controls is not None
        return self._controls

    @workflow.signal(name="approval_decision")
    async def approval_decision(self, *payload: Any) -> None:
        """Under `ask_approver`: retry (approve) or give up (reject) a failed `task_id`."""
        self._signals += 1
        received = self._signals
        await workflow.wait_condition(self._ready)
        await self._control().approval_decision(payload, received)
        self._look_again()

    @workflow.update(name="decide")
    async def decide(self, *payload: Any) -> Progress:
        """`approval_decision`, answered: the goal's progress after it, or why it was rejected."""
        await workflow.wait_condition(self._ready)
        await self._control().decide(payload)
        return self.progress()

    @decide.validator
    def _validate_decision(self, *payload: Any) -> None:
        if self._controls is not None:  # before that, the handler judges once it can
            self._controls.validate_retry(payload)

    @workflow.update
    async def add_tasks(self, *payload: Any) -> Progress:
        """More work found while the goal runs: `{"tasks", "added_by", "reason"}`, checked
        like a spec's tasks; the goal's progress after them, or why they were refused."""
        await workflow.wait_condition(self._ready)
        await self._control().add_tasks(payload)
        return self.progress()

    @add_tasks.validator
    def _validate_add_tasks(self, *payload: Any) -> None:
        if self._controls is not None:  # before that, the handler judges once it can
            self._controls.validate_added(payload)

    @workflow.update
    async def raise_budget(self, *payload: Any) -> Progress:
        """`{"approver", "usd", "tokens", "comment"}`: a higher budget; a goal paused at its
        budget goes on. Only the goal's approvers (escalation levels included) may."""
        await workflow.wait_condition(self._ready)
        await self._control().raise_budget(payload)
        return self.progress()

    @raise_budget.validator
    def _validate_raise_budget(self, *payload: Any) -> None:
        if self._controls is not None:  # before that, the handler judges once it can
            self._controls.validate_raise(payload)

    @workflow.update
    async def stop(self, *payload: Any) -> Progress:
        """`{"approver", "comment"}`: stop the goal (at its budget, or any time); running
        tasks are aborted, the rest skipped, and the goal fails, saying who stopped it."""
        await workflow.wait_condition(self._ready)
        await self._control().stop(payload)
        return self.progress()

    @stop.validator
    def _validate_stop(self, *payload: Any) -> None:
        if self._controls is not None:
            self._controls.validate_stop(payload)

    @workflow.update
    async def reassign_task(self, *payload: Any) -> Progress:
        """`{"task_id", "approver", "agent", "assignment_id", "comment"}`: take a task from
        its agent, to `agent` where named (one that has its skill and takes work), else to
        another that can take it. Only the goal's approvers may; the task is left as it
        was, and the reason said, where it cannot be."""
        await workflow.wait_condition(self._ready)
        await self._control().reassign_task(payload)
        return self.progress()

    @reassign_task.validator
    def _validate_reassign_task(self, *payload: Any) -> None:
        if self._controls is not None:  # before that, the handler judges once it can
            self._controls.validate_reassign(payload)

    @workflow.update
    async def cancel_task(self, *payload: Any) -> Progress:
        """`{"task_id", "approver", "comment"}`: end a task that has not ended, without a
        result; it ends skipped, its agent released, and what depends on it is skipped, as
        when a failed task is given up. Only the goal's approvers may."""
        await workflow.wait_condition(self._ready)
        await self._control().cancel_task(payload)
        return self.progress()

    @cancel_task.validator
    def _validate_cancel_task(self, *payload: Any) -> None:
        if self._controls is not None:
            self._controls.validate_cancel(payload)

    # What the goal shows.

    def _stage_now(self) -> str:
        if self._status is not GoalStatus.RUNNING or self._stage != "running":
            return self._stage
        runner, budget = self._runner, self._budget
        if runner is None:  # the next run, its state not loaded yet
            held = resumed_stage(self._checkpoint) if self._checkpoint else None
            return held or self._stage
        paused = budget.stage(*runner.spent()) if budget else None
        return runner.stage(paused) or self._stage

    def _show(self) -> None:
        """Mirror progress in the Temporal UI: search attributes and a one-glance status."""
        progress, budget, header = self.progress(), self._budget, self._header
        spent = None
        if budget is not None and budget.limited:
            spent = budget.describe(progress.cost_usd, progress.tokens_used)
        notes = self._runner.task_notes() if self._runner else []
        workspace = header.workspace if header else None
        self._display.show(self._status, progress, workspace, spent, notes)

    # Continuing as new, and the end.

    async def _continue_as_new(self) -> None:
        """Start a fresh run with the same state; no task of the goal's own runs across it.

        Returns instead when a handler asked the runner for work meanwhile: that first.
        """
        runner = self._runner
        assert runner is not None
        await record(
            ReadModelActivities.record_event,
            goal_event(
                self._goal_id,
                self._run_id,
                EventKind.GOAL_CONTINUED,
                f"goal {self._goal_id!r} continued as new after "
                f"{workflow.info().get_current_history_length()} history events",
                key=(workflow.info().run_id,),
            ),
            "record continue-as-new",
        )
        await self._refusals.flush()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or runner.asked)
        if runner.asked:
            return
        total = self.progress().tasks_total
        ref = GoalRef(goal_id=self._goal_id, goal_run_id=self._run_id, tasks_total=total)
        checkpoint = runner.checkpoint(ref).model_copy(
            update={
                "told": self._parent.told,
                "adopted_by": self._parent.adopted_by,
                "budget": self._budget.state if self._budget else None,
            }
        )
        workflow.continue_as_new(args=[None, checkpoint.model_dump(mode="json")])

    async def _finish(self) -> GoalReport:
        """Settle the goal's status, record the report, and return it (or fail with it)."""
        header, runner = self._header, self._runner
        assert header is not None and runner is not None
        progress = self.progress()
        failing, unfinished = runner.failing, runner.unfinished(progress)
        error = goal_error(progress, header.on_task_failure, failing, unfinished, runner.unmet)
        self._status = GoalStatus.FAILED if error else GoalStatus.COMPLETED
        self._stage = "done"
        report = await record_report(
            self._goal_id,
            self._run_id,
            header,
            self._status,
            error,
            runner.task_reports(),
            progress.tasks_total,
            self.progress,
        )
        if self._budget is not None:
            await self._budget.close()
        await suggest(self._goal_id)
        self._show()
        await self._refusals.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._parent.tell_end(header, report)
        if failing:
            raise ApplicationError(
                f"goal {self._goal_id!r} failed: {error}",
                report,
                type="GoalFailed",
                non_retryable=True,
            )
        return report
