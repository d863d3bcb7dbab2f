"""`TaskWindow`: runs a bounded set of a goal's tasks as child workflows, in a sliding window.

Not a workflow itself: the goal workflow (and each partition of a large goal) holds
one and calls it from its own handlers. The decisions come from the `Schedule` of the
functional core, and what is asked of the tasks from its `TaskLedger`; this shell
runs the loop, applies what ended, writes cascades in bounded batches, and hands
starting tasks (`workflows.runners.starts`), sub-goals (`workflows.runners.subgoals`) and the tasks
that join while the goal runs (`workflows.runners.plans`) to their own modules.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import workflows.runners.plans as plans
    import workflows.runners.retries as retries
    import workflows.runners.starts as starts
    import workflows.runners.subgoals as subgoals
    import workflows.runners.task_controls as task_controls
    import workflows.sealing as sealing
    from activities.children import ChildActivities
    from activities.read_model import ReadModelActivities
    from goalkeeper.details import held_stage
    from goalkeeper.ids import fact_id
    from goalkeeper.ledger import TaskLedger
    from goalkeeper.models import (
        Abort,
        ApprovalDecision,
        GoalCheckpoint,
        GoalRef,
        GoalSpec,
        PartitionUpdate,
        TaskSpec,
        TaskSummary,
        TaskUpdate,
        WindowState,
    )
    from goalkeeper.planning import AddTasks
    from goalkeeper.records import AdoptTasks, EventKind, RecordSkips, SkippedTask
    from goalkeeper.scheduling import Ended, ScheduleState
    from goalkeeper.statuses import TaskStatus
    from goalkeeper.subgoals import subgoal_ended, subgoal_running
    from goalkeeper.task_controls import TaskCancel, TaskReassign
    from workflows.options import record, refused_wait
    from workflows.runners.runner import Added

BATCH = 100
"""Tasks assigned per activity call, and skipped tasks written per call."""


class TaskWindow(TaskLedger):
    """A goal's tasks (all of them, or one partition's), run a window's worth at a time.

    As the goal's `TaskRunner`, it runs all of a goal's tasks."""

    def __init__(
        self,
        goal_id: str,
        goal_run_id: str,
        header: GoalSpec,
        specs: list[TaskSpec],
        window: int,
        state: ScheduleState | None = None,
        summaries: dict[int, TaskSummary] | None = None,
        blocked: dict[str, str] | None = None,
    ) -> None:
        super().__init__(goal_id, goal_run_id, header, specs, state, summaries, blocked)
        self.window = window
        self.changed = False
        self.holding = False
        """Start nothing new (the goal is about to continue as new)."""
        self.paused = False
        """Start nothing new (the goal has spent its budget and waits for a decision)."""
        self.refused: str | None = None
        """Why PostgreSQL gave the last batch no agents: a budget over the goal is spent."""
        self.refused_by: str | None = None
        """Whose budget that is: a goal's id, or `workspace:` and its name."""
        self._refusals = 0
        self._retry_at: datetime | None = None
        self.ends: list[tuple[int, TaskSummary]] = []
        """Tasks that ended, with how, for the loop to apply in turn."""
        self._inbox: list[Callable[[], Awaitable[None]]] = []
        """Writes that handlers asked for, done by the loop in the order they were asked:
        only the loop runs local activities, so they resolve in one order, live or not."""
        self.closed = False
        """The loop has ended: nothing more is taken in."""
        self.watchers: dict[int, asyncio.Task[None]] = {}
        self._adopted: set[int] = set()
        """Tasks started by an earlier run of the goal: they tell this one how they end."""
        self._alarm: asyncio.Task[None] | None = None
        self.notes: dict[int, str] = {}
        """A line for the history of a task about to run again, by position."""
        self.controlled: dict[int, str] = {}
        """Running tasks a person reassigned or cancelled, by position: the assignment
        taken away, or `task_controls.CANCELLING`; so a request repeated before the task
        acts on it is refused. Kept until the task ends: no more than the tasks running."""
        self.follow_up: plans.FollowUp | None = None
        """Called when every task has ended; True when it added tasks to run."""

    @classmethod
    def restore(
        cls,
        goal_id: str,
        goal_run_id: str,
        header: GoalSpec,
        specs: list[TaskSpec],
        window: int,
        state: WindowState,
        blocked: dict[str, str] | None = None,
    ) -> "TaskWindow":
        restored = cls(
            goal_id, goal_run_id, header, specs, window, state.schedule, state.tasks, blocked
        )
        restored.agents.update(state.agents)
        restored._adopted = set(restored.schedule.running)
        restored.subgoals = dict(state.subgoals)
        restored.agents_completed.update(state.agents_completed)
        restored.tasks_added = state.tasks_added
        return restored

    # What task workflows tell.

    def task_update(self, update: TaskUpdate) -> None:
        """A running task's new state; stale, repeated or other runs' updates are ignored."""
        i = self.position(update.task.task_id)
        if update.goal_run_id != self.goal_run_id or i is None:
            workflow.logger.warning(
                f"ignored update for task {update.task.task_id!r} of run {update.goal_run_id!r}"
            )
            return
        if i not in self.schedule.running:
            return
        start = self.subgoals.get(i)
        if update.task.status.is_terminal:
            if i in self._adopted:  # its result went to the run that started it
                self._adopted.discard(i)
                ended = update.task
                if start is not None:
                    ended = subgoal_ended(self.subgoals.pop(i), ended, self.summary(i).seq)
                self.ends.append((i, ended))
                self.changed = True
            return
        task = update.task if start is None else subgoal_running(start, update.task)
        if task.seq <= self.summary(i).seq:
            return
        self.keep(i, task)
        self.agents.update(update.agent_ids)
        self.schedule.change(i, update.task.status)
        self.changed = True

    def partition_update(self, update: PartitionUpdate) -> None:
        """A window has no partitions: nothing to take in."""

    # The loop, each step in proportion to what changed.

    async def run(
        self,
        after_step: Callable[[], Awaitable[timedelta | None]],
        continue_as_new: Callable[[], Awaitable[None]],
    ) -> None:
        """Run the tasks until every one has ended.

        `after_step` shows or reports the state and may ask to be called again within
        a given time; when Temporal suggests it, new starts stop and, once no task
        runs, `continue_as_new` is called (it returns only if a handler asked for work
        meanwhile, which is done first).
        """
        if self._adopted:
            await self._adopt()
        while True:
            if self.schedule.ended and not self._inbox:
                more = self.follow_up is not None and await self.follow_up()
                if not more and not self._inbox:  # a handler may have asked meanwhile
                    break
            await self.step()
            await retries.expire(self)
            again = await after_step()
            if again is not None and self._alarm is None:
                # One timer for the whole wait: a timeout on every wait below would start
                # and cancel a timer (two history events) each time a task ends.
                self._alarm = asyncio.create_task(self._ring(again))
            if workflow.info().is_continue_as_new_suggested():
                # Running tasks and sub-goals go on; the next run adopts them.
                self.holding = True
                if not self._inbox and not self.ends:
                    await continue_as_new()
            due = min(
                (d for d in (self.schedule.next_due(), self._retry_at) if d is not None),
                default=None,
            )
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    self.woken,
                    timeout=max(due - workflow.now(), timedelta(seconds=1)) if due else None,
                    timeout_summary="retry decision or budget deadline",
                )
        self.closed = True
        await after_step()

    def later(self, work: Callable[[], Awaitable[None]]) -> None:
        """Have the loop do `work` (from a handler): before it starts anything else."""
        self._inbox.append(work)
        self.changed = True

    @property
    def asked(self) -> bool:
        """A handler asked for work the loop has not done yet."""
        return bool(self._inbox)

    async def _ring(self, after: timedelta) -> None:
        await workflow.sleep(max(after, timedelta(milliseconds=100)), summary="report counts")
        self._alarm = None
        self.changed = True

    async def step(self) -> None:
        """Start what is ready, apply what ended; the caller waits for `changed` between."""
        self.changed = False
        if self._inbox:
            while self._inbox:
                await self._inbox.pop(0)()
            self.changed = True  # look again at whether the tasks have all ended
        await self._apply_ended()
        if self._retry_at is not None and workflow.now() >= self._retry_at:
            self._retry_at = None
        if not self.holding and not self.paused and self._retry_at is None:
            ready = self.schedule.next_to_start(self.window)
            for n in range(0, len(ready), BATCH):
                if not await starts.start(self, ready[n : n + BATCH]):
                    self.schedule.hold_back(ready[n:])
                    break

    def woken(self) -> bool:
        return self.changed or bool(self.ends)

    def wake(self) -> None:
        self.changed = True

    # What holds it: a spent budget, a failing goal.

    def pause(self, paused: bool) -> None:
        self.paused = paused

    def raised(self) -> None:
        """A budget was raised: try the tasks it held back now, not at the next look."""
        self._retry_at = None
        self.refuse(None, None)
        self.changed = True

    def refuse(self, why: str | None, by: str | None) -> None:
        """No agents while a budget is spent (`why`): look again after a growing wait (a
        raise of the goal's own budget makes it look at once). None: agents again."""
        self.refused, self.refused_by = why, by
        self._refusals = self._refusals + 1 if why is not None else 0
        if why is not None:
            self._retry_at = workflow.now() + refused_wait(self._refusals)

    def halt(self, why: str) -> None:
        if not self.closed and self.schedule.failing is None:
            self.fail(why)

    def fail(self, reason: str) -> None:
        """The goal is failing: what runs is aborted and the rest skipped, by the loop."""
        cascade = self.schedule.fail(reason)
        self.later(lambda: self.apply(cascade))

    def stage(self, paused: str | None) -> str | None:
        if self.follow_up is not None and self.follow_up.stage is not None:
            return self.follow_up.stage
        return held_stage(self.failing, paused, self.refused, self.awaiting_retry(), self.holding)

    @property
    def unmet(self) -> str | None:
        return self.follow_up.unmet if self.follow_up is not None else None

    def checkpoint(self, ref: GoalRef) -> GoalCheckpoint:
        return GoalCheckpoint(spec_ref=ref, window=self.state())

    # What a failed task means under `ask_approver` (`workflows.runners.retries`).

    async def take_retry_decision(self, decision: ApprovalDecision) -> None:
        retries.take(self, decision)

    # A person's reassign or cancel of a task (`workflows.runners.task_controls`).

    def judge_reassign(self, request: TaskReassign) -> str | None:
        return task_controls.judge_reassign(self, request)

    def skill_of(self, task_id: str) -> str:
        return task_controls.skill_of(self, task_id)

    def take_reassign(self, request: TaskReassign) -> None:
        task_controls.take_reassign(self, request)

    def judge_cancel(self, request: TaskCancel) -> str | None:
        return task_controls.judge_cancel(self, request)

    def take_cancel(self, request: TaskCancel) -> None:
        task_controls.take_cancel(self, request)

    # Tasks that join while the goal runs.

    def judge_added(self, request: AddTasks, running: bool) -> list[TaskSpec] | str:
        return plans.judge_added(self, request, running and not self.closed)

    async def add_tasks(self, judge: Callable[[], Added]) -> str | None:
        return await plans.add_tasks(self, judge)

    async def join(self, specs: list[TaskSpec], why: str) -> None:
        """Tasks that join the running goal, already stored: they run as they get ready."""
        cascade = self.schedule.add([(t.id or "", t.depends_on) for t in specs])
        first = len(self.specs)
        self.specs.extend(specs)
        self.tasks_added += len(specs)
        await record(
            ReadModelActivities.record_event,
            self.event(
                EventKind.TASKS_ADDED,
                f"{len(specs)} task{'s' if len(specs) != 1 else ''} added to goal "
                f"{self.goal_id!r} ({why}); "
                f"it now has {len(self.specs)}",
                detail={"task_ids": [t.id for t in specs[:50]], "count": len(specs)},
                key=(first,),
            ),
            f"record {len(specs)} tasks added",
        )
        await self.apply(cascade)

    # What ended, and what follows from it.

    async def start_blocked(self) -> None:
        await self.apply(self.schedule.start_blocked())

    async def apply(self, ended: Ended, why: str = "") -> None:
        """Carry out a cascade: write its skips in bounded batches, stop what must stop."""
        for n in range(0, len(ended.skipped), BATCH):
            batch = ended.skipped[n : n + BATCH]
            skipped = []
            for i, reason in batch:
                summary = self.summary(i)
                self.keep(
                    i,
                    summary.model_copy(
                        update={
                            "status": TaskStatus.SKIPPED,
                            "error": reason,
                            "seq": summary.seq + 1,
                        }
                    ),
                )
                skipped.append(
                    SkippedTask(
                        task_id=summary.task_id,
                        reason=reason,
                        event_id=fact_id("goal", self.goal_run_id, "skipped", summary.task_id),
                    )
                )
            await record(
                ReadModelActivities.record_skips,
                RecordSkips(goal_id=self.goal_id, goal_run_id=self.goal_run_id, tasks=skipped),
                f"record {len(skipped)} skipped tasks",
            )
        for i in ended.abort:
            to = self.workflow_id(i)
            abort = Abort(reason=f"goal failed: {self.schedule.failing or why}")
            try:
                await workflow.get_external_workflow_handle(to).signal(
                    "abort", sealing.sealed("abort", to, abort)
                )
            except Exception as exc:  # its workflow is gone; its watcher records that
                workflow.logger.warning(f"could not abort task {self.specs[i].id!r}: {exc}")
        self.changed = True

    async def _apply_ended(self) -> None:
        ended, self.ends = self.ends, []
        for i, summary in ended:
            self.keep(i, summary)
            self.controlled.pop(i, None)
            if self.specs[i].goal is not None:
                await subgoals.record_end(self, i, summary)
            if summary.status is TaskStatus.COMPLETED and summary.agent_id:
                self.agents_completed.add(summary.agent_id)
            due = None
            if (
                summary.status is TaskStatus.FAILED
                and self.header.on_task_failure == "ask_approver"
            ):
                due = workflow.now() + timedelta(seconds=self.header.approval_timeout_seconds)
            cascade = self.schedule.end(i, summary.status, retry_due=due)
            if cascade.retry_requested:
                await retries.ask(self, summary)
            await self.apply(cascade)
            if summary.status is TaskStatus.COMPLETED and self.specs[i].expects == "plan":
                await plans.adopt_plan(self, i)

    async def _adopt(self) -> None:
        """Take over the tasks an earlier run started: each reports its end to this run,
        and those that ended before they could be asked are read from Temporal."""
        running = sorted(self._adopted)
        for n in range(0, len(running), BATCH):
            batch = running[n : n + BATCH]
            ended: list[TaskSummary] = await record(
                ChildActivities.adopt_tasks,
                AdoptTasks(
                    goal_id=self.goal_id,
                    goal_run_id=self.goal_run_id,
                    tasks=[self.summary(i) for i in batch],
                    subgoals={
                        self.summary(i).task_id: self.subgoals[i]
                        for i in batch
                        if i in self.subgoals
                    },
                ),
                f"adopt {len(batch)} running tasks",
            )
            for summary in ended:
                i = self.position(summary.task_id)
                if i is not None and i in self._adopted:
                    self._adopted.discard(i)
                    self.subgoals.pop(i, None)
                    self.ends.append((i, summary))
