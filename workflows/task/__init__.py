"""A task: its workflow, its assignment, the messages it takes and how it judges them,
its waits and its record."""

from workflows.task.workflow import TaskWorkflow

__all__ = ["TaskWorkflow"]
