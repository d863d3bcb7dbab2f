"""Starting a window's tasks: agents assigned in batches, then one task workflow each,
whose result tells the window how its task ended.

Tasks that are goals start their sub-goals instead (`workflows.runners.subgoals`).
"""

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    import workflows.runners.subgoals as subgoals
    from activities.assignment import AssignmentActivities
    from activities.read_model import ReadModelActivities
    from goalkeeper.ids import assignment_id
    from goalkeeper.limits import MAX_SHORT_REASON_CHARS
    from goalkeeper.models import TaskInput, TaskSummary
    from goalkeeper.records import AssignAgents, Assignment, AssignTask, EventKind
    from goalkeeper.statuses import TaskStatus
    from workflows import search_attributes as sa
    from workflows.options import assign, record
    from workflows.task.workflow import TaskWorkflow

if TYPE_CHECKING:
    from workflows.runners.window import TaskWindow


async def start(window: "TaskWindow", positions: list[int]) -> bool:
    """Assign agents to a batch of tasks in one activity, then start their workflows;
    tasks that are goals start their sub-goals instead. False when a spent budget
    refused some: those wait, and the window looks again later."""
    for i in positions:
        if window.specs[i].goal is not None:
            await subgoals.start(window, i)
    positions = [i for i in positions if window.specs[i].goal is None]
    if not positions:
        return True
    assigned = await _assign(window, positions)
    refusal = assigned[-1].refused if assigned else None
    refused_by = assigned[-1].refused_by if assigned else None
    if refusal is not None:
        assigned = assigned[:-1]
        positions = positions[: len(assigned)]
    window.refuse(refusal, refused_by)
    for i, assignment in zip(positions, assigned, strict=True):
        before = window.summary(i)
        window.keep(
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
        window.agents.add(assignment.agent_id)
        window.schedule.change(i, TaskStatus.ASSIGNED)
    await asyncio.gather(
        *(_start_one(window, i, a, prior) for i, a, prior in _starts(window, positions, assigned))
    )
    return refusal is None


async def _assign(window: "TaskWindow", positions: list[int]) -> list[Assignment]:
    """Agents for the tasks at `positions`, in order; a spent budget refuses the rest,
    said by a last assignment that names the refusal."""
    requests = []
    for i in positions:
        spec, before = window.specs[i], window.summary(i)
        requests.append(
            AssignTask(
                task_id=before.task_id,
                skill=spec.skill,
                assignment_id=assignment_id(
                    window.goal_run_id, before.task_id, before.attempts + 1
                ),
                attempt=before.attempts + 1,
                seq=before.seq + 1,
                report_deadline_seconds=window.deadline(spec),
                heartbeat_timeout_seconds=window.silence(spec),
                deferred=True,
            )
        )
    assigned: list[Assignment] = await assign(
        AssignmentActivities.assign_agents,
        AssignAgents(
            goal_id=window.goal_id,
            goal_run_id=window.goal_run_id,
            workspace=window.header.workspace,
            tasks=requests,
            require_signatures=window.header.require_signatures,
        ),
        f"assign agents to {len(requests)} tasks",
    )
    return assigned


def _starts(
    window: "TaskWindow", positions: list[int], assigned: list[Assignment]
) -> Iterable[tuple[int, Assignment, TaskSummary | None]]:
    for i, assignment in zip(positions, assigned, strict=True):
        summary = window.summary(i)
        # A retried task starts from where its last attempt left it.
        prior = summary.model_copy(
            update={"attempts": summary.attempts - 1, "seq": summary.seq - 1}
        )
        yield i, assignment, prior if prior.attempts > 0 else None


async def _start_one(
    window: "TaskWindow", i: int, assigned: Assignment, prior: TaskSummary | None
) -> None:
    spec, header = window.specs[i], window.header
    handle = await workflow.start_child_workflow(
        TaskWorkflow.run,
        TaskInput(
            goal_id=window.goal_id,
            goal_run_id=window.goal_run_id,
            workspace=header.workspace,
            task=spec,
            approval_levels=[header.approvers_of(spec), *header.escalation],
            max_attempts=header.max_attempts,
            report_deadline_seconds=window.deadline(spec),
            heartbeat_timeout_seconds=window.silence(spec),
            approval_timeout_seconds=header.approval_timeout_seconds,
            on_approval_timeout=header.on_approval_timeout,
            previous=prior,
            note=window.notes.pop(i, None),
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
        id=window.workflow_id(i),
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
    window.watchers[i] = asyncio.create_task(_watch(window, i, handle))


async def _watch(
    window: "TaskWindow", i: int, handle: workflow.ChildWorkflowHandle[Any, Any]
) -> None:
    """Take the task's end from its workflow's result; an end without one is a failure."""
    try:
        summary = TaskSummary.model_validate(await handle)
    except ChildWorkflowError as exc:
        error = f"task workflow ended without an outcome: {exc.cause or exc}"
        before = window.summary(i)
        summary = before.model_copy(
            update={
                "status": TaskStatus.FAILED,
                "error": error[:MAX_SHORT_REASON_CHARS],
                "seq": before.seq + 1,
            }
        )
        event = window.event(EventKind.TASK_FAILED, error, before.task_id, key=(summary.seq,))
        window.later(
            lambda: record(
                ReadModelActivities.record_event, event, f"record task {before.task_id} failed"
            )
        )
    window.ends.append((i, summary))
    window.watchers.pop(i, None)  # kept only while it runs: the window stays bounded
