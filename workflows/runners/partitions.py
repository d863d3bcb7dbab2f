"""`PartitionSet`: how a large goal runs its tasks, as a tree of partition workflows.

Not a workflow itself: the goal holds one, as its `TaskRunner`, when it has more tasks
than a partition holds. Partitions cover ranges of the goal's tasks in dependency order, so each
depends only on partitions before it; a few run at once, each with its share of the
goal's window, and each rolls its exact counts up to the goal by signal.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    import workflows.sealing as sealing
    from activities.read_model import ReadModelActivities
    from goalkeeper.details import held_stage
    from goalkeeper.ids import fact_id, partition_workflow_id
    from goalkeeper.judging import retry_problem
    from goalkeeper.models import (
        ApprovalDecision,
        GoalCheckpoint,
        GoalRef,
        GoalSpec,
        PartitionFail,
        PartitionInput,
        PartitionState,
        PartitionUpdate,
        Progress,
        TaskPage,
        TaskReport,
        TaskSpec,
        TasksQuery,
        TaskUpdate,
    )
    from goalkeeper.planning import AddTasks
    from goalkeeper.records import SkipRange
    from goalkeeper.reports import unfinished_partitions
    from goalkeeper.scheduling import STATUSES
    from goalkeeper.statuses import TaskStatus
    from goalkeeper.task_controls import TaskCancel, TaskReassign
    from workflows.options import record
    from workflows.runners.partition import PartitionWorkflow
    from workflows.runners.runner import Added

RUNNING_PARTITIONS = 4
"""Partitions running at once; the goal's window is shared among them."""


class PartitionSet:
    """The partitions of one goal, what each last reported, and which may start.

    The goal holds no task of its own: its figures are the sums of its partitions'.
    """

    tasks_added = 0
    """Tasks join only a goal that runs them itself."""
    unmet = None
    """Only a goal that runs its tasks itself compiles a deliverable against its criteria."""
    asked = False
    """Handlers ask no work of the loop: what they decide goes to the partitions."""

    def __init__(
        self,
        goal_id: str,
        goal_run_id: str,
        header: GoalSpec,
        partitions: list[PartitionState],
        failing: str | None = None,
    ) -> None:
        self.goal_id, self.goal_run_id, self.header = goal_id, goal_run_id, header
        self.partitions = partitions
        self.failing = failing
        self.changed = False
        self.refused: str | None = None
        """Never set: PostgreSQL refuses the partitions' assignments, which wait there."""
        self.refused_by: str | None = None
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._stopped: set[int] = set()

    async def run(
        self,
        after_step: Callable[[], Awaitable[timedelta | None]],
        continue_as_new: Callable[[], Awaitable[None]],
    ) -> None:
        """Start partitions as they may start until every one has ended."""
        while not self.ended:
            await self.step()
            await after_step()
            if workflow.info().is_continue_as_new_suggested():
                await continue_as_new()  # partitions signal the new run
            await workflow.wait_condition(lambda: self.changed)

    def workflow_id(self, index: int) -> str:
        return partition_workflow_id(self.goal_id, index)

    @property
    def ended(self) -> bool:
        return all(p.update is not None and p.update.ended for p in self.partitions)

    @property
    def closed(self) -> bool:
        return self.ended

    @property
    def window(self) -> int:
        return max(1, self.header.max_running_tasks // RUNNING_PARTITIONS)

    def totals(self) -> dict[TaskStatus, int]:
        totals = dict.fromkeys(STATUSES, 0)
        for p in self.partitions:
            if p.update is None:
                totals[TaskStatus.PENDING] += p.end - p.start
            else:
                for status, n in p.update.counts.items():
                    totals[status] += n
        return totals

    def agent_ids(self) -> tuple[set[str], set[str]]:
        agents: set[str] = set()
        completed: set[str] = set()
        for p in self.partitions:
            if p.update is not None:
                agents.update(p.update.agents)
                completed.update(p.update.agents_completed)
        return agents, completed

    def spent(self) -> tuple[float, int]:
        """What the partitions' tasks have cost so far, in USD and tokens."""
        updates = [p.update for p in self.partitions if p.update is not None]
        return sum(u.cost_usd for u in updates), sum(u.tokens_used for u in updates)

    def retry_due(self) -> dict[str, int]:
        """Failed tasks awaiting a retry decision, and the partition holding each."""
        return {
            task_id: p.index
            for p in self.partitions
            if p.update is not None
            for task_id in p.update.retry_due
        }

    def page(self, query: TasksQuery) -> TaskPage:
        """No task of the goal's own: the partition workflows, whose `tasks` queries page."""
        return TaskPage(
            goal_id=self.goal_id,
            offset=query.offset,
            limit=query.limit,
            total=0,
            tasks=[],
            partitions=[self.workflow_id(p.index) for p in self.partitions],
        )

    def checkpoint(self, ref: GoalRef) -> GoalCheckpoint:
        return GoalCheckpoint(spec_ref=ref, partitions=self.partitions, failing=self.failing)

    # Stage, report and UI.

    def stage(self, paused: str | None) -> str | None:
        awaiting = sorted(self.retry_due())
        return held_stage(self.failing, paused, None, awaiting, False)

    def task_notes(self) -> list[str]:
        return []

    def unfinished(self, progress: Progress) -> str:
        return unfinished_partitions(progress)

    def task_reports(self) -> list[TaskReport]:
        return []

    # What changes it.

    def task_update(self, update: TaskUpdate) -> None:
        """Tasks tell their partition, not the goal: an update here is ignored."""
        workflow.logger.warning(f"ignored update for task {update.task.task_id!r}")

    def partition_update(self, update: PartitionUpdate) -> None:
        """A partition's newest counts; stale, repeated or other runs' updates are ignored."""
        if update.goal_run_id != self.goal_run_id or not 0 <= update.index < len(self.partitions):
            workflow.logger.warning(f"ignored update for partition {update.index}")
            return
        state = self.partitions[update.index]
        if state.update is not None and (state.update.ended or update.seq <= state.update.seq):
            return
        state.update = update
        if update.failing and self.failing is None:
            self.failing = update.failing
        self.changed = True

    def halt(self, why: str) -> None:
        if self.failing is None:
            self.failing = why
            self.changed = True

    def wake(self) -> None:
        self.changed = True

    def pause(self, paused: bool) -> None:
        """PostgreSQL holds the partitions' assignments to the budget: nothing to do here."""

    def raised(self) -> None:
        self.changed = True

    def judge_retry(self, decision: ApprovalDecision) -> str | None:
        awaiting = self.retry_due()
        # The goal holds no task's status: a task not awaiting a decision is "not failed".
        state = "failed" if decision.task_id in awaiting else "not failed, or not in this goal"
        return retry_problem(self.goal_id, decision, self.header.approvers, awaiting, state)

    async def take_retry_decision(self, decision: ApprovalDecision) -> None:
        await self.forward(decision)

    def judge_added(self, request: AddTasks, running: bool) -> list[TaskSpec] | str:
        return self._no_tasks()

    async def add_tasks(self, judge: Callable[[], Added]) -> str | None:
        problem = judge()
        return problem if isinstance(problem, str) else self._no_tasks()

    def judge_reassign(self, request: TaskReassign) -> str | None:
        return self._no_control("reassign", request.task_id)

    def skill_of(self, task_id: str) -> str:
        raise NotImplementedError("a goal run in partitions takes no reassign")

    def take_reassign(self, request: TaskReassign) -> None:
        raise NotImplementedError("a goal run in partitions takes no reassign")

    def judge_cancel(self, request: TaskCancel) -> str | None:
        return self._no_control("cancel", request.task_id)

    def take_cancel(self, request: TaskCancel) -> None:
        raise NotImplementedError("a goal run in partitions takes no cancel")

    def _no_control(self, kind: str, task_id: str) -> str:
        return (
            f"{kind} of task {task_id!r} of goal {self.goal_id!r} rejected: the goal runs in "
            "partitions; a task can be reassigned or cancelled only in a goal of at most "
            "partition_size tasks"
        )

    def _no_tasks(self) -> str:
        return (
            f"goal {self.goal_id!r} runs in partitions; tasks can be added only to a goal "
            f"of at most partition_size tasks"
        )

    async def step(self) -> None:
        """Start the partitions that may start, or stop everything if the goal is failing."""
        self.changed = False
        if self.failing is not None:
            await self._stop()
            return
        running = sum(1 for p in self.partitions if p.started and not _ended(p))
        for p in self.partitions:
            if running >= RUNNING_PARTITIONS:
                return
            if p.started or not all(_ended(self.partitions[a]) for a in p.after):
                continue
            await self._start(p)
            running += 1

    async def forward(self, decision: ApprovalDecision) -> None:
        """Pass a retry decision to the partition holding its failed task."""
        to = self.workflow_id(self.retry_due()[decision.task_id or ""])
        await workflow.get_external_workflow_handle(to).signal(
            "approval_decision", sealing.sealed("approval_decision", to, decision)
        )

    async def _start(self, p: PartitionState) -> None:
        handle = await workflow.start_child_workflow(
            PartitionWorkflow.run,
            args=[
                PartitionInput(
                    goal_id=self.goal_id,
                    goal_run_id=self.goal_run_id,
                    index=p.index,
                    start=p.start,
                    end=p.end,
                    window=self.window,
                ),
                None,
            ],
            id=self.workflow_id(p.index),
            # Partitions outlive a continue-as-new of their goal and signal the new run.
            parent_close_policy=ParentClosePolicy.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.TERMINATE_IF_RUNNING,
            static_summary=f"tasks {p.start + 1} to {p.end}",
        )
        p.started = True
        self.changed = True
        self._watchers[p.index] = asyncio.create_task(self._watch(p, handle))

    async def _watch(
        self, p: PartitionState, handle: workflow.ChildWorkflowHandle[Any, Any]
    ) -> None:
        """Take a partition's end from its result; an end without one fails the goal."""
        try:
            self.partition_update(PartitionUpdate.model_validate(await handle))
        except ChildWorkflowError as exc:
            if not _ended(p):
                self.failing = self.failing or (
                    f"partition {p.index} (tasks {p.start + 1} to {p.end}) ended without an "
                    f"outcome: {exc.cause or exc}"
                )
                counts = (
                    dict(p.update.counts) if p.update else {TaskStatus.PENDING: p.end - p.start}
                )
                unfinished = sum(n for s, n in counts.items() if not s.is_terminal)
                counts = {s: n for s, n in counts.items() if s.is_terminal}
                counts[TaskStatus.FAILED] = counts.get(TaskStatus.FAILED, 0) + unfinished
                p.update = PartitionUpdate(
                    goal_run_id=self.goal_run_id,
                    index=p.index,
                    seq=(p.update.seq if p.update else 0) + 1,
                    counts=counts,
                    failing=self.failing,
                    ended=True,
                )
                self.changed = True
        self._watchers.pop(p.index, None)

    async def _stop(self) -> None:
        """Under a failing goal: running partitions stop their tasks; the rest are skipped."""
        reason = f"skipped: goal failed ({self.failing})"
        for p in self.partitions:
            if _ended(p) or p.index in self._stopped:
                continue
            self._stopped.add(p.index)
            if p.started:
                try:
                    to = self.workflow_id(p.index)
                    fail = PartitionFail(reason=str(self.failing))
                    await workflow.get_external_workflow_handle(to).signal(
                        "fail", sealing.sealed("fail", to, fail)
                    )
                except Exception as exc:  # it ended meanwhile; its watcher says how
                    workflow.logger.warning(f"could not stop partition {p.index}: {exc}")
                continue
            await record(
                ReadModelActivities.skip_range,
                SkipRange(
                    goal_id=self.goal_id,
                    goal_run_id=self.goal_run_id,
                    start=p.start,
                    end=p.end,
                    reason=reason,
                    event_id=fact_id("goal", self.goal_run_id, "skipped", p.start, p.end),
                ),
                f"skip tasks {p.start + 1} to {p.end}",
            )
            p.started = True
            p.update = PartitionUpdate(
                goal_run_id=self.goal_run_id,
                index=p.index,
                seq=1,
                counts={TaskStatus.SKIPPED: p.end - p.start},
                failing=self.failing,
                ended=True,
            )
        self.changed = True


def _ended(p: PartitionState) -> bool:
    return p.update is not None and p.update.ended
