"""`TaskRunner`: how a goal runs its tasks, whichever way it runs them.

A goal of up to `partition_size` tasks runs them itself, in a `TaskWindow` of task
workflows; a larger one in a `PartitionSet` of partition workflows. `GoalWorkflow`
holds one runner and calls it through this interface alone.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from goalkeeper.models import (
        ApprovalDecision,
        GoalCheckpoint,
        GoalRef,
        PartitionUpdate,
        Progress,
        TaskPage,
        TaskReport,
        TaskSpec,
        TasksQuery,
        TaskUpdate,
    )
    from goalkeeper.planning import AddTasks
    from goalkeeper.statuses import TaskStatus
    from goalkeeper.task_controls import TaskCancel, TaskReassign

Added = tuple[AddTasks, list[TaskSpec]] | str
"""An `add_tasks` request and the tasks it adds, as checked; or why it was refused."""


class TaskRunner(Protocol):
    """How a goal runs its tasks: its loop, its figures, what holds or stops it, and what
    crosses continue-as-new."""

    refused: str | None
    """Why PostgreSQL gave the last assignments no agents: a budget over the goal is spent."""
    refused_by: str | None
    """Whose budget that is: a goal's id, or `workspace:` and its name."""

    # The loop.

    async def run(
        self,
        after_step: Callable[[], Awaitable[timedelta | None]],
        continue_as_new: Callable[[], Awaitable[None]],
    ) -> None:
        """Run the tasks until every one has ended, calling `after_step` after each step
        and `continue_as_new` when Temporal suggests it."""

    @property
    def closed(self) -> bool:
        """The loop has ended: every task has, and nothing more is taken in."""

    @property
    def asked(self) -> bool:
        """A handler asked for work the loop has not done yet: a new run waits for it."""

    def checkpoint(self, ref: GoalRef) -> GoalCheckpoint:
        """The runner's state for the goal's next run, which goes on from it."""

    # Progress, spend and agents.

    def totals(self) -> dict[TaskStatus, int]:
        """The goal's tasks by status."""

    def spent(self) -> tuple[float, int]:
        """What the goal's tasks have cost so far, in USD and tokens."""

    def agent_ids(self) -> tuple[set[str], set[str]]:
        """The agents given the goal's tasks, and those that completed one."""

    @property
    def tasks_added(self) -> int:
        """Tasks that joined while the goal ran (its plan, `add_tasks`)."""

    def page(self, query: TasksQuery) -> TaskPage:
        """A page of the goal's tasks (or of the partitions that hold them)."""

    # Stage, report and UI.

    @property
    def failing(self) -> str | None:
        """Why the goal is failing, once it is: its tasks are stopped and skipped."""

    @property
    def unmet(self) -> str | None:
        """Why the goal's success criteria are not met, when its judge said so last."""

    def stage(self, paused: str | None) -> str | None:
        """What holds the running goal up, if anything; `paused`: its budget's word."""

    def task_notes(self) -> list[str]:
        """What the UI should say about running tasks that need attention."""

    def unfinished(self, progress: Progress) -> str:
        """The tasks that did not complete, as the goal's report names them."""

    def task_reports(self) -> list[TaskReport]:
        """The lines of the goal's report, one per task listed."""

    # What changes it.

    def task_update(self, update: TaskUpdate) -> None:
        """A running task's new state, from its `TaskWorkflow`."""

    def partition_update(self, update: PartitionUpdate) -> None:
        """A partition's counts, from its `PartitionWorkflow`."""

    def halt(self, why: str) -> None:
        """Stop the goal: running tasks are aborted, the rest skipped."""

    def wake(self) -> None:
        """Have the loop look again: a deadline has come."""

    def pause(self, paused: bool) -> None:
        """Start no new task while the goal's budget is spent, or again once it is not."""

    def raised(self) -> None:
        """A budget over the goal was raised: look again at once for what it held back."""

    def judge_retry(self, decision: ApprovalDecision) -> str | None:
        """Why an approver's retry decision on a failed task cannot count, or None."""

    async def take_retry_decision(self, decision: ApprovalDecision) -> None:
        """Retry the failed task, or give it up, as the approver decided."""

    def judge_added(self, request: AddTasks, running: bool) -> list[TaskSpec] | str:
        """The tasks an `add_tasks` request adds, checked like a spec's; or why not."""

    async def add_tasks(self, judge: Callable[[], Added]) -> str | None:
        """Add the tasks `judge` accepts when their turn comes; why not, if it refused."""

    def judge_reassign(self, request: TaskReassign) -> str | None:
        """Why a person's reassign of a task cannot count now, or None."""

    def skill_of(self, task_id: str) -> str:
        """The skill a task's agent needs (of a task `judge_reassign` accepted)."""

    def take_reassign(self, request: TaskReassign) -> None:
        """Take the task from its agent, to the one named or to another."""

    def judge_cancel(self, request: TaskCancel) -> str | None:
        """Why a person's cancel of a task cannot count now, or None."""

    def take_cancel(self, request: TaskCancel) -> None:
        """End the task without a result; what depends on it is skipped."""
