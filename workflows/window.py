"""`TaskWindow`: runs a bounded set of a goal's tasks as child workflows, in a sliding window.

Not a workflow itself: the goal workflow (and each partition of a large goal) holds
one and calls it from its own handlers. The decisions come from the `Schedule` of the
functional core; this shell assigns agents in batches, starts and watches task
workflows, writes cascades in bounded batches, and keeps a compact summary per task.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    import workflows.sealing as sealing
    from activities.assignment import AssignmentActivities
    from activities.children import ChildActivities
    from activities.plans import PlanActivities
    from activities.read_model import ReadModelActivities
    from goalkeeper.ids import assignment_id, fact_id
    from goalkeeper.judging import retry_problem
    from goalkeeper.limits import MAX_SHORT_REASON_CHARS
    from goalkeeper.metrics import Reassignment
    from goalkeeper.models import (
        Abort,
        ApprovalDecision,
        GoalReport,
        GoalSpec,
        TaskInput,
        TaskPage,
        TaskSpec,
        TasksQuery,
        TaskSummary,
        TaskUpdate,
        TaskView,
        WindowState,
    )
    from goalkeeper.records import (
        AdoptedPlan,
        AdoptPlan,
        AdoptTasks,
        AssignAgents,
        Assignment,
        AssignTask,
        Event,
        EventKind,
        LoadTasks,
        RecordSkips,
        RecordTask,
        SkippedTask,
    )
    from goalkeeper.scheduling import STATUSES, Ended, Plan, Schedule, ScheduleState
    from goalkeeper.statuses import Decision, TaskStatus
    from goalkeeper.subgoals import (
        subgoal_ended,
        subgoal_id,
        subgoal_outcome,
        subgoal_running,
        subgoal_spec,
    )
    from monitoring import metrics
    from workflows import search_attributes as sa
    from workflows.options import assign, record, refused_wait
    from workflows.specs import load_specs
    from workflows.task import TaskWorkflow

BATCH = 100
"""Tasks assigned per activity call, and skipped tasks written per call."""


class TaskWindow:
    """A goal's tasks (all of them, or one partition's), their schedule and summaries."""

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
        self.goal_id, self.goal_run_id, self.header = goal_id, goal_run_id, header
        self.specs = specs
        self.window = window
        plan = Plan.build(((t.id or "", t.depends_on) for t in specs), blocked)
        policy = header.on_task_failure
        self.schedule = Schedule.restore(plan, policy, state) if state else Schedule(plan, policy)
        self.summaries: dict[int, TaskSummary] = dict(summaries or {})
        self.agents: set[str] = set()
        self.agents_completed: set[str] = set()
        self.tokens_used = sum(s.tokens_used for s in self.summaries.values())
        self.cost_usd = sum(s.cost_usd for s in self.summaries.values())
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
        self._ended: list[tuple[int, TaskSummary]] = []
        self._inbox: list[Callable[[], Awaitable[None]]] = []
        """Writes that handlers asked for, done by the loop in the order they were asked:
        only the loop runs local activities, so they resolve in one order, live or not."""
        self.closed = False
        """The loop has ended: nothing more is taken in."""
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._subgoals: dict[int, TaskSummary] = {}
        """Tasks whose sub-goal runs, each as it was when that run started."""
        self._adopted: set[int] = set()
        """Tasks started by an earlier run of the goal: they tell this one how they end."""
        self._alarm: asyncio.Task[None] | None = None
        self.notes: dict[int, str] = {}
        """A line for the history of a task about to run again, by position."""
        self.tasks_added = 0
        """Tasks that joined while the goal ran (its plan, `add_tasks`)."""
        self.follow_up: Callable[[], Awaitable[bool]] | None = None
        """Called when every task has ended; True when it added tasks to run."""

    # What others ask.

    def page(self, query: TasksQuery) -> TaskPage:
        """One page of task summaries in plan order, optionally of one status."""
        matching = (
            i
            for i in range(len(self.specs))
            if query.status is None or self.schedule.status_of(i) is query.status
        )
        total = 0
        tasks: list[TaskSummary] = []
        for i in matching:
            if query.offset <= total < query.offset + query.limit:
                tasks.append(self.summary(i))
            total += 1
        end = query.offset + len(tasks)
        return TaskPage(
            goal_id=self.goal_id,
            offset=query.offset,
            limit=query.limit,
            status=query.status,
            total=total,
            tasks=tasks,
            next_offset=end if end < total else None,
        )

    def summary(self, i: int) -> TaskSummary:
        return self.summaries.get(i) or TaskSummary(task_id=self.schedule.plan.ids[i])

    def position(self, task_id: str) -> int | None:
        return self.schedule.plan.index.get(task_id)

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
        start = self._subgoals.get(i)
        if update.task.status.is_terminal:
            if i in self._adopted:  # its result went to the run that started it
                self._adopted.discard(i)
                ended = update.task
                if start is not None:
                    ended = subgoal_ended(self._subgoals.pop(i), ended, self.summary(i).seq)
                self._ended.append((i, ended))
                self.changed = True
            return
        task = update.task if start is None else subgoal_running(start, update.task)
        if task.seq <= self.summary(i).seq:
            return
        self._keep(i, task)
        self.agents.update(update.agent_ids)
        self.schedule.change(i, update.task.status)
        self.changed = True

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
            await self.expire_retry_decisions()
            again = await after_step()
            if again is not None and self._alarm is None:
                # One timer for the whole wait: a timeout on every wait below would start
                # and cancel a timer (two history events) each time a task ends.
                self._alarm = asyncio.create_task(self._ring(again))
            if workflow.info().is_continue_as_new_suggested():
                # Running tasks and sub-goals go on; the next run adopts them.
                self.holding = True
                if not self._inbox and not self._ended:
                    await continue_as_new()
            due = min(
                (d for d in (self.schedule.next_due(), self._retry_at) if d is not None),
                default=None,
            )
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    self.wake,
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

    # What a failed task means under `ask_approver`.

    def judge_retry(self, decision: ApprovalDecision) -> str | None:
        """Why an approver's retry decision cannot count, or None."""
        i = self.position(decision.task_id or "")
        problem = retry_problem(
            self.goal_id,
            decision,
            self.header.approvers,
            [self.schedule.plan.ids[n] for n in self.schedule.retry_due],
            None if i is None else self.schedule.status_of(i).value,
        )
        if problem is None and i is not None and decision.attempt is not None:
            attempts = self.summary(i).attempts
            if decision.attempt != attempts:
                problem = (
                    f"decision rejected: it decides attempt {decision.attempt} of task "
                    f"{decision.task_id!r}, which failed at attempt {attempts}"
                )
        return problem

    def take_retry_decision(self, decision: ApprovalDecision) -> None:
        """Retry the failed task (approve) or give it up (reject), as the approver said.

        Applied to the schedule at once, so the decision is part of any checkpoint and
        of the progress its sender reads next; the loop records it.
        """
        assert decision.task_id is not None
        i = self.position(decision.task_id)
        assert i is not None
        retry = decision.decision is Decision.APPROVE
        if retry:
            self.schedule.retry(i)
            self.notes[i] = f"{decision.approver} asked for a retry"
            metrics.reassigned(workflow.metric_meter(), Reassignment.RETRY_APPROVED)
        cascade = None if retry else self.schedule.give_up(i)
        event = self.event(
            EventKind.TASK_RETRIED if retry else EventKind.DECISION_ACCEPTED,
            f"{decision.approver!r} chose to {'retry' if retry else 'give up'} failed task "
            f"{decision.task_id!r}" + (f": {decision.comment}" if decision.comment else ""),
            decision.task_id,
            key=(self.summary(i).seq,),
        )

        async def write() -> None:
            await record(
                ReadModelActivities.record_event,
                event,
                f"record retry decision on {decision.task_id}",
            )
            if cascade is not None:
                await self.apply(cascade)

        self.later(write)

    def fail(self, reason: str) -> None:
        """The goal is failing: what runs is aborted and the rest skipped, by the loop."""
        cascade = self.schedule.fail(reason)
        self.later(lambda: self.apply(cascade))

    async def expire_retry_decisions(self) -> None:
        """Give up on failed tasks whose approvers did not decide in time."""
        for i in self.schedule.overdue(workflow.now()):
            task_id = self.schedule.plan.ids[i]
            cascade = self.schedule.give_up(i)
            await record(
                ReadModelActivities.record_event,
                self.event(
                    EventKind.DECISION_ACCEPTED,
                    f"no retry decision on failed task {task_id!r} in time; giving it up",
                    task_id,
                    key=(self.summary(i).seq,),
                ),
                f"give up {task_id}",
            )
            await self.apply(cascade)

    def totals(self) -> dict[TaskStatus, int]:
        return {s: self.schedule.count(s) for s in STATUSES}

    def state(self) -> WindowState:
        """What crosses continue-as-new; the next run adopts the tasks still running."""
        return WindowState(
            schedule=self.schedule.state(),
            tasks_added=self.tasks_added,
            tasks=self.summaries,
            agents=sorted(self.agents),
            agents_completed=sorted(self.agents_completed),
            subgoals=self._subgoals,
        )

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
        restored._subgoals = dict(state.subgoals)
        restored.agents_completed.update(state.agents_completed)
        restored.tasks_added = state.tasks_added
        return restored

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
                if not await self._start(ready[n : n + BATCH]):
                    self.schedule.hold_back(ready[n:])
                    break

    def retry_refused(self) -> None:
        """A budget was raised: try the tasks it held back now, not at the next look."""
        self._retry_at = None
        self._refused(None, None)
        self.changed = True

    def wake(self) -> bool:
        return self.changed or bool(self._ended)

    async def start_blocked(self) -> None:
        await self.apply(self.schedule.start_blocked())

    async def apply(self, ended: Ended, why: str = "") -> None:
        """Carry out a cascade: write its skips in bounded batches, stop what must stop."""
        for n in range(0, len(ended.skipped), BATCH):
            batch = ended.skipped[n : n + BATCH]
            skipped = []
            for i, reason in batch:
                summary = self.summary(i)
                self._keep(
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
            to = self._workflow_id(i)
            abort = Abort(reason=f"goal failed: {self.schedule.failing or why}")
            try:
                await workflow.get_external_workflow_handle(to).signal(
                    "abort", sealing.sealed("abort", to, abort)
                )
            except Exception as exc:  # its workflow is gone; its watcher records that
                workflow.logger.warning(f"could not abort task {self.specs[i].id!r}: {exc}")
        self.changed = True

    async def add(self, specs: list[TaskSpec], why: str) -> None:
        """Tasks that join the running goal, already stored: they run as they get ready."""
        cascade = self.schedule.add([(t.id or "", t.depends_on) for t in specs])
        first = len(self.specs)
        self.specs.extend(specs)
        self.tasks_added += len(specs)
        await record(
            ReadModelActivities.record_event,
            self.event(
                EventKind.TASKS_ADDED,
                f"{len(specs)} tasks added to goal {self.goal_id!r} ({why}); "
                f"it now has {len(self.specs)}",
                detail={"task_ids": [t.id for t in specs[:50]], "count": len(specs)},
                key=(first,),
            ),
            f"record {len(specs)} tasks added",
        )
        await self.apply(cascade)

    async def _adopt_plan(self, i: int) -> None:
        """A plan completed: its tasks join the goal (they were checked when reported)."""
        task_id, first = self.specs[i].id or "", len(self.specs)
        adopted: AdoptedPlan = await record(
            PlanActivities.adopt_plan,
            AdoptPlan(
                goal_id=self.goal_id,
                goal_run_id=self.goal_run_id,
                task_id=task_id,
                first_position=first,
            ),
            "adopt the plan",
        )
        if adopted.error is not None:
            await record(
                ReadModelActivities.record_event,
                self.event(
                    EventKind.TASK_FAILED,
                    f"plan could not be adopted: {adopted.error}",
                    task_id,
                    key=("plan",),
                ),
                "record the plan not adopted",
            )
            return
        specs = await load_specs(
            LoadTasks(
                goal_id=self.goal_id,
                goal_run_id=self.goal_run_id,
                start=first,
                end=first + adopted.count,
            )
        )
        await self.add(specs, f"planned in task {task_id!r}")

    async def _apply_ended(self) -> None:
        ended, self._ended = self._ended, []
        for i, summary in ended:
            self._keep(i, summary)
            if self.specs[i].goal is not None:
                await self._record_subgoal_end(i, summary)
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
                await record(
                    ReadModelActivities.record_event,
                    self.event(
                        EventKind.RETRY_REQUESTED,
                        f"task {summary.task_id!r} failed; asking {self.header.approvers} "
                        "whether to retry it (approve) or give it up (reject)",
                        summary.task_id,
                        key=(summary.seq,),
                    ),
                    f"ask whether to retry {summary.task_id}",
                )
            await self.apply(cascade)
            if summary.status is TaskStatus.COMPLETED and self.specs[i].expects == "plan":
                await self._adopt_plan(i)

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
                        self.summary(i).task_id: self._subgoals[i]
                        for i in batch
                        if i in self._subgoals
                    },
                ),
                f"adopt {len(batch)} running tasks",
            )
            for summary in ended:
                i = self.position(summary.task_id)
                if i is not None and i in self._adopted:
                    self._adopted.discard(i)
                    self._subgoals.pop(i, None)
                    self._ended.append((i, summary))

    async def _start(self, positions: list[int]) -> bool:
        """Assign agents to a batch of tasks in one activity, then start their workflows;
        tasks that are goals start their sub-goals instead. False when a spent budget
        refused some: those wait, and the window looks again later."""
        for i in positions:
            if self.specs[i].goal is not None:
                await self._start_subgoal(i)
        positions = [i for i in positions if self.specs[i].goal is None]
        if not positions:
            return True
        requests = []
        for i in positions:
            spec, before = self.specs[i], self.summary(i)
            requests.append(
                AssignTask(
                    task_id=before.task_id,
                    skill=spec.skill,
                    assignment_id=assignment_id(
                        self.goal_run_id, before.task_id, before.attempts + 1
                    ),
                    attempt=before.attempts + 1,
                    seq=before.seq + 1,
                    report_deadline_seconds=self._deadline(spec),
                    heartbeat_timeout_seconds=self._silence(spec),
                    deferred=True,
                )
            )
        assigned: list[Assignment] = await assign(
            AssignmentActivities.assign_agents,
            AssignAgents(
                goal_id=self.goal_id,
                goal_run_id=self.goal_run_id,
                workspace=self.header.workspace,
                tasks=requests,
                require_signatures=self.header.require_signatures,
            ),
            f"assign agents to {len(requests)} tasks",
        )
        refusal = assigned[-1].refused if assigned else None
        refused_by = assigned[-1].refused_by if assigned else None
        if refusal is not None:
            assigned = assigned[:-1]
            positions = positions[: len(assigned)]
        self._refused(refusal, refused_by)
        for i, assignment in zip(positions, assigned, strict=True):
            before = self.summary(i)
            self._keep(
                i,
                before.model_copy(
                    update={
                        "status": TaskStatus.ASSIGNED,
                        "agent_id": assignment.agent_id,
                        "assignment_id": assignment.assignment_id,
                        "attempts": before.attempts + 1,
                        "waiting_on": [],
                        "error": None,
                        "seq": before.seq + 1,
                    }
                ),
            )
            self.agents.add(assignment.agent_id)
            self.schedule.change(i, TaskStatus.ASSIGNED)
        await asyncio.gather(
            *(self._start_one(i, a, prior) for i, a, prior in self._starts(positions, assigned))
        )
        return refusal is None

    def _refused(self, why: str | None, by: str | None) -> None:
        """No agents while a budget is spent (`why`): look again after a growing wait (a
        raise of the goal's own budget makes it look at once). None: agents again."""
        self.refused, self.refused_by = why, by
        self._refusals = self._refusals + 1 if why is not None else 0
        if why is not None:
            self._retry_at = workflow.now() + refused_wait(self._refusals)

    def _starts(
        self, positions: list[int], assigned: list[Assignment]
    ) -> Iterable[tuple[int, Assignment, TaskSummary | None]]:
        for i, assignment in zip(positions, assigned, strict=True):
            summary = self.summary(i)
            # A retried task starts from where its last attempt left it.
            prior = summary.model_copy(
                update={"attempts": summary.attempts - 1, "seq": summary.seq - 1}
            )
            yield i, assignment, prior if prior.attempts > 0 else None

    async def _start_one(self, i: int, assigned: Assignment, prior: TaskSummary | None) -> None:
        spec, header = self.specs[i], self.header
        handle = await workflow.start_child_workflow(
            TaskWorkflow.run,
            TaskInput(
                goal_id=self.goal_id,
                goal_run_id=self.goal_run_id,
                workspace=header.workspace,
                task=spec,
                approval_levels=[header.approvers_of(spec), *header.escalation],
                max_attempts=header.max_attempts,
                report_deadline_seconds=self._deadline(spec),
                heartbeat_timeout_seconds=self._silence(spec),
                approval_timeout_seconds=header.approval_timeout_seconds,
                on_approval_timeout=header.on_approval_timeout,
                previous=prior,
                note=self.notes.pop(i, None),
                assigned={
                    "assignment_id": assigned.assignment_id,
                    "agent_id": assigned.agent_id,
                    "assigned_at": workflow.now(),
                    "agent_key": assigned.agent_key,
                    "agent_operator": assigned.agent_operator,
                    "signatures_required": assigned.signatures_required,
                },
                require_signatures=header.require_signatures,
            ),
            id=self._workflow_id(i),
            # The goal waits for its tasks before it continues as new; ABANDON keeps a
            # task alive if the goal itself is terminated, so its agent's work is kept.
            parent_close_policy=ParentClosePolicy.ABANDON,
            # A task left by an earlier goal of the same id must not block this one.
            id_reuse_policy=WorkflowIDReusePolicy.TERMINATE_IF_RUNNING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.TASK_STATUS, TaskStatus.ASSIGNED.value),
                    SearchAttributePair(sa.ASSIGNED_AGENT, assigned.agent_id),
                ]
            ),
            static_summary=f"{spec.title} ({spec.skill})",
        )
        self._watchers[i] = asyncio.create_task(self._watch(i, handle))

    async def _watch(self, i: int, handle: workflow.ChildWorkflowHandle[Any, Any]) -> None:
        """Take the task's end from its workflow's result; an end without one is a failure."""
        try:
            summary = TaskSummary.model_validate(await handle)
        except ChildWorkflowError as exc:
            error = f"task workflow ended without an outcome: {exc.cause or exc}"
            before = self.summary(i)
            summary = before.model_copy(
                update={
                    "status": TaskStatus.FAILED,
                    "error": error[:MAX_SHORT_REASON_CHARS],
                    "seq": before.seq + 1,
                }
            )
            event = self.event(EventKind.TASK_FAILED, error, before.task_id, key=(summary.seq,))
            self.later(
                lambda: record(
                    ReadModelActivities.record_event, event, f"record task {before.task_id} failed"
                )
            )
        self._ended.append((i, summary))
        self._watchers.pop(i, None)  # kept only while it runs: the window stays bounded

    async def _start_subgoal(self, i: int) -> None:
        """Start a task's sub-goal: a child goal that inherits this goal's approvers and
        policies, counted here as one task, its progress shown beside it."""
        spec, before = self.specs[i], self.summary(i)
        child = subgoal_id(self.goal_id, spec.id or "")
        start = before.model_copy(
            update={
                "status": TaskStatus.ASSIGNED,
                "agent_id": None,
                "assignment_id": None,
                "attempts": before.attempts + 1,
                "waiting_on": [],
                "error": None,
                "goal_progress": None,
                "seq": before.seq + 1,
            }
        )
        self._keep(i, start)
        self._subgoals[i] = start
        self.schedule.change(i, TaskStatus.ASSIGNED)
        await record(
            ReadModelActivities.record_task,
            RecordTask(
                task=self._view(i, start, started_at=workflow.now()),
                event=self.event(
                    EventKind.SUBGOAL_STARTED,
                    f"task {spec.id!r} runs as sub-goal {child!r}",
                    spec.id,
                    key=(start.seq,),
                ),
            ),
            f"record sub-goal {child}",
        )
        header = self.header.model_copy(update={"goal_id": self.goal_id})
        handle = await workflow.start_child_workflow(
            "GoalWorkflow",
            subgoal_spec(header, spec, self.goal_run_id),
            id=child,
            result_type=GoalReport,
            parent_close_policy=ParentClosePolicy.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.TERMINATE_IF_RUNNING,
            static_summary=f"{spec.title} (sub-goal)",
        )
        self._watchers[i] = asyncio.create_task(self._watch_subgoal(i, handle))

    async def _watch_subgoal(self, i: int, handle: workflow.ChildWorkflowHandle[Any, Any]) -> None:
        """Take the task's end from its sub-goal's report, which its failure carries too."""
        report: GoalReport | None = None
        error = ""
        try:
            report = GoalReport.model_validate(await handle)
        except ChildWorkflowError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == "GoalFailed":
                with contextlib.suppress(Exception):  # a report of another shape: none
                    report = GoalReport.model_validate(cause.details[0])
            error = f"sub-goal ended without an outcome: {cause or exc}"
        start = self._subgoals.pop(i)
        self._ended.append((i, subgoal_outcome(start, report, error, self.summary(i).seq)))
        self._watchers.pop(i, None)

    async def _record_subgoal_end(self, i: int, summary: TaskSummary) -> None:
        """Write how a task that is a goal ended; its result is its sub-goal's deliverable."""
        task_id = summary.task_id
        child = subgoal_id(self.goal_id, task_id)
        done = summary.status is TaskStatus.COMPLETED
        view = self._view(i, summary, ended_at=workflow.now())
        view.result = {"$ref": f"deliverables/{child}"}
        await record(
            ReadModelActivities.record_task,
            RecordTask(
                task=view,
                event=self.event(
                    EventKind.TASK_COMPLETED if done else EventKind.TASK_FAILED,
                    f"task {task_id!r} {summary.status}: sub-goal {child!r} "
                    + (summary.goal_progress or "ended")
                    + ("" if done else f" ({summary.error})"),
                    task_id,
                    key=(summary.seq,),
                ),
            ),
            f"record sub-goal {child} {summary.status}",
        )

    def _view(self, i: int, summary: TaskSummary, **changes: Any) -> TaskView:
        """The read model's row of a task that is a goal (one with no agent of its own)."""
        spec = self.specs[i]
        return TaskView(
            goal_id=self.goal_id,
            goal_run_id=self.goal_run_id,
            task_id=summary.task_id,
            title=spec.title,
            skill=spec.skill,
            depends_on=spec.depends_on,
            status=summary.status,
            attempts=summary.attempts,
            tokens_used=summary.tokens_used,
            cost_usd=summary.cost_usd,
            error=summary.error,
            seq=summary.seq,
            subgoal_id=subgoal_id(self.goal_id, summary.task_id),
            **changes,
        )

    def _keep(self, i: int, summary: TaskSummary) -> None:
        old = self.summaries.get(i)
        if old is not None:
            self.tokens_used -= old.tokens_used
            self.cost_usd -= old.cost_usd
        self.summaries[i] = summary
        self.tokens_used += summary.tokens_used
        self.cost_usd += summary.cost_usd

    def _deadline(self, spec: TaskSpec) -> int:
        return spec.report_deadline_seconds or self.header.report_deadline_seconds

    def _silence(self, spec: TaskSpec) -> int:
        return spec.heartbeat_timeout_seconds or self.header.heartbeat_timeout_seconds

    def _workflow_id(self, i: int) -> str:
        return f"{self.goal_id}/{self.specs[i].id}"

    def event(
        self,
        kind: EventKind,
        message: str,
        task_id: str | None = None,
        detail: dict[str, Any] | None = None,
        key: tuple[object, ...] = (),
    ) -> Event:
        """An event of this goal run, named by its kind, its task and `key`: what makes
        it one fact (a change number, a position), so it is written once however often
        the writing is repeated."""
        return Event(
            event_id=fact_id("goal", self.goal_run_id, kind, task_id, *key),
            kind=kind,
            message=message,
            goal_id=self.goal_id,
            task_id=task_id,
            detail=detail or {},
        )
