"""What the Temporal UI shows of a goal: its search attributes, and its current details.

The text is the core's (`goalkeeper.details`); this sets it on the goal's run.
"""

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from goalkeeper.details import current_details
    from goalkeeper.models import Progress
    from goalkeeper.statuses import GoalStatus
    from workflows import search_attributes as sa


class GoalDisplay:
    """A goal's face in the Temporal UI, changed only where it changed."""

    def __init__(self) -> None:
        self._shown: tuple[str, int] | None = None

    def show(
        self,
        status: GoalStatus,
        progress: Progress,
        workspace: str | None,
        budget: str | None,
        notes: list[str],
    ) -> None:
        """Mirror progress in the Temporal UI: search attributes and a one-glance status."""
        # In halves: each upsert is a history event, so a goal makes three, not one per
        # task; the details below show the exact figure at every moment.
        shown = (status.value, int(progress.progress_percentage // 50))
        if shown != self._shown:
            updates: list[SearchAttributeUpdate[Any]] = [
                sa.GOAL_STATUS.value_set(status.value),
                sa.GOAL_PROGRESS.value_set(progress.progress_percentage),
            ]
            if self._shown is None and workspace is not None:
                updates.append(sa.GOAL_WORKSPACE.value_set(workspace))
            self._shown = shown
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(current_details(progress, budget, notes))

    @staticmethod
    def rejected(error: str) -> None:
        """A goal rejected before it ran: its status, and why."""
        workflow.upsert_search_attributes([sa.GOAL_STATUS.value_set(GoalStatus.REJECTED.value)])
        workflow.set_current_details(f"**Rejected**: {error}")
