"""Ids named by the fact they stand for, so every attempt at recording a fact writes it once.

A workflow task can run twice before it completes (it timed out, or Temporal refused
its commands because a message arrived meanwhile); the writes it made the first time
are made again. Ids drawn from the workflow's random sequence differ on the second
attempt whenever handlers drew from it in another order, so the same event was
written twice and the same attempt assigned twice. An id derived from what it names
(a goal run, a task, an attempt, a change number) is the same every time.
"""

import uuid

_NAMESPACE = uuid.UUID("5d8f4c2e-7b0a-4e59-9c61-2f3a8b7d1e04")


def fact_id(*parts: object) -> str:
    """A UUID that is the same whenever it is made from the same parts."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def assignment_id(goal_run_id: str, task_id: str, attempt: int) -> str:
    """The one assignment of a task's `attempt` in a run of its goal."""
    return fact_id("assignment", goal_run_id, task_id, attempt)


def partition_workflow_id(goal_id: str, index: int) -> str:
    """The workflow id of a goal's partition; '#' is not allowed in task ids, so it never
    clashes with a task's."""
    return f"{goal_id}#partition-{index}"


def started_by_goal(goal_id: str, parent_id: str | None) -> bool:
    """Whether a workflow was started, as Temporal records it, by the goal `goal_id` or
    one of its partitions: the only workflows that start tasks and partitions."""
    return parent_id is not None and (
        parent_id == goal_id or parent_id.startswith(f"{goal_id}#partition-")
    )
