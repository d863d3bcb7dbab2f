"""A goal: its workflow, how it starts, its signed controls and budget, its report and
what the Temporal UI shows of it."""

from workflows.goal.workflow import GoalWorkflow

__all__ = ["GoalWorkflow"]
