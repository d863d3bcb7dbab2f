"""A sub-goal's side of the goal it runs for: how far it is, told as its task's state.

The parent counts the sub-goal as one of its tasks; these `task_update` signals keep
that task's progress, spend and agents current there, numbered across runs.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import workflows.sealing as sealing
    from goalkeeper.models import GoalReport, GoalSpec, Progress, TaskSummary, TaskUpdate
    from goalkeeper.statuses import TaskStatus
    from goalkeeper.subgoals import progress_line, told_end

TELL_PARENT_EVERY = timedelta(seconds=1)
"""A sub-goal tells the goal it runs for how far it is at most this often."""

TOLD_AGENTS = 100
"""Agents a sub-goal names to its parent in one update (the parent counts agents)."""


class ParentLink:
    """What a sub-goal told the goal it runs for, and which run of it took it over."""

    def __init__(
        self,
        progress: Callable[[], Progress],
        agents: Callable[[], set[str]],
        told: int = 0,
        adopted_by: str | None = None,
    ) -> None:
        self._progress, self._agents = progress, agents
        self.told = told
        """Updates sent to the goal this one is a sub-goal of, in all runs."""
        self.adopted_by = adopted_by
        """The run of the parent goal that took this sub-goal over, if one did."""
        self._last_told: tuple[str, int, float] | None = None
        self._told_at: datetime | None = None

    async def tell_progress(self, header: GoalSpec | None) -> timedelta | None:
        """Tell the goal this one runs for how far it is, when that changed, at most once
        per `TELL_PARENT_EVERY`; returns how long to wait when it is too soon."""
        parent = workflow.info().parent
        if header is None or header.parent is None or parent is None:
            return None
        progress = self._progress()
        told = (progress_line(progress), progress.tokens_used, progress.cost_usd)
        if told == self._last_told:
            return None
        now = workflow.now()
        if self._told_at is not None and now < self._told_at + TELL_PARENT_EVERY:
            return self._told_at + TELL_PARENT_EVERY - now
        self._last_told, self._told_at = told, now
        await self._tell(
            header,
            TaskSummary(
                task_id=header.parent.task_id,
                status=TaskStatus.ASSIGNED,
                tokens_used=progress.tokens_used,
                cost_usd=progress.cost_usd,
                goal_progress=told[0],
            ),
        )
        return None

    async def tell_end(self, header: GoalSpec, report: GoalReport) -> None:
        """Tell the end, when the parent run that started this one is gone: its result
        reaches nobody, and the run that took this one over waits for it."""
        if header.parent is not None and self.adopted_by == header.parent.goal_run_id:
            await self._tell(header, told_end(header.parent.task_id, report, ""))

    async def _tell(self, header: GoalSpec, task: TaskSummary) -> None:
        """Send the goal this one is a sub-goal of its task's state, numbered in turn."""
        parent = workflow.info().parent
        assert header.parent is not None and parent is not None
        self.told += 1
        task.seq = self.told
        update = TaskUpdate(
            goal_run_id=header.parent.goal_run_id,
            task=task,
            agent_ids=sorted(self._agents())[:TOLD_AGENTS],
        )
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "task_update", sealing.sealed("task_update", parent.workflow_id, update)
            )
        except Exception as exc:  # the parent ended or was terminated: nothing to tell
            workflow.logger.warning(f"could not tell goal {parent.workflow_id!r}: {exc}")
