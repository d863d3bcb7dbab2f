"""What an A2A task says of a request Goalkeeper works on: its A2A state and the status
message, from the request's status and its goal's progress and waiting tasks. Pure, so
the A2A server and its tests read a request the same way."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from goalkeeper.limits import MAX_NOTE_CHARS, clip
from goalkeeper.statuses import GoalStatus, RequestStatus


class A2aState(StrEnum):
    """The A2A task states Goalkeeper uses (the protocol's own names)."""

    WORKING = "working"
    INPUT_REQUIRED = "input-required"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (A2aState.COMPLETED, A2aState.FAILED, A2aState.CANCELED)


@dataclass(frozen=True)
class Waiting:
    """A goal's task that awaits approval, and who may decide on it."""

    task_id: str
    title: str
    approvers: tuple[str, ...]


@dataclass(frozen=True)
class Standing:
    """An A2A task's state and the status message that explains it."""

    state: A2aState
    message: str


API = "/api/v1"


def standing(
    request: Mapping[str, Any],
    goal: Mapping[str, Any] | None = None,
    waiting: Sequence[Waiting] = (),
    note: Mapping[str, Any] | None = None,
) -> Standing:
    """The A2A standing of `request` (its `status`, `answer`, `goal_id`, `error`), given
    its goal's progress (`status`, `stage`, `progress_percentage`, task counts, and its
    `approvers`), the goal's tasks that await approval, and its agents' newest note
    (`agent_id`, `task_id`, `message`), which a working goal's message ends with."""
    status = RequestStatus(request["status"])
    request_id = request["request_id"]
    goal_id = request.get("goal_id")
    if status is RequestStatus.TRIAGING:
        return Standing(A2aState.WORKING, f"request {request_id!r}: triaging the question")
    if status is RequestStatus.ANSWERED:
        return Standing(A2aState.COMPLETED, str(request.get("answer") or ""))
    if status is RequestStatus.COMPLETED:
        return Standing(A2aState.COMPLETED, f"goal {goal_id!r} completed")
    if status is RequestStatus.CANCELED:
        return Standing(
            A2aState.CANCELED, f"request {request_id!r} {request.get('error') or 'canceled'}"
        )
    if status in (RequestStatus.FAILED, RequestStatus.REJECTED):
        why = request.get("error") or (goal or {}).get("error") or f"request {status.value}"
        return Standing(A2aState.FAILED, f"request {request_id!r} {status.value}: {why}")
    if goal is None:
        return Standing(A2aState.WORKING, f"goal {goal_id!r} starting")
    return _goal_standing(str(goal_id), goal, waiting, note)


def _goal_standing(
    goal_id: str,
    goal: Mapping[str, Any],
    waiting: Sequence[Waiting],
    note: Mapping[str, Any] | None = None,
) -> Standing:
    """A running goal's standing (one just ended waits for its request to record it)."""
    status = GoalStatus(goal["status"])
    if status is not GoalStatus.RUNNING:  # the request ends next, with its artifact
        return Standing(A2aState.WORKING, f"goal {goal_id!r} {status.value}; finishing")
    stage = str(goal.get("stage") or "running")
    done, total = goal.get("tasks_completed", 0), goal.get("tasks_total", 0)
    percentage = float(goal.get("progress_percentage") or 0)
    progress = f"goal {goal_id!r}: {percentage:.0f}% ({done} of {total} tasks completed)"
    approvers = ", ".join(goal.get("approvers") or ()) or "its approvers"
    if stage.startswith("paused: budget") and stage.endswith("once it is raised"):
        return Standing(  # another budget (its workspace's) holds it: not its approvers' call
            A2aState.INPUT_REQUIRED,
            f"{progress}; {stage}. Asked of an operator: raise that budget (starter.py budget set)",
        )
    if stage.startswith("paused: budget"):
        return Standing(
            A2aState.INPUT_REQUIRED,
            f"{progress}; {stage}. Asked of {approvers}: raise its budget "
            f"(POST {API}/goals/{goal_id}/budget) or stop it (POST {API}/goals/{goal_id}/stop)",
        )
    if waiting:
        asks = "; ".join(
            f"task {w.task_id!r} ({w.title}) awaits approval by "
            f"{', '.join(w.approvers) or approvers}"
            for w in waiting
        )
        return Standing(
            A2aState.INPUT_REQUIRED,
            f"{progress}; {asks}. Decide at POST {API}/goals/{goal_id}/tasks/TASK/decision",
        )
    said = ""
    if note is not None:
        text = clip(str(note.get("message") or ""), MAX_NOTE_CHARS)
        said = f"; agent {note.get('agent_id')!r} on task {note.get('task_id')!r}: {text}"
    return Standing(A2aState.WORKING, f"{progress}; {stage}{said}")
