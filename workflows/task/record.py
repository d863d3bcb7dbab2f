"""`TaskRecord`: a task's view, and each change to it recorded, shown and told to the goal.

PostgreSQL's read model, the Temporal UI and the goal all learn of a change from here,
in that order, so none of them sees a state the others never will.
"""

import asyncio
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import workflows.sealing as sealing
    from activities.assignment import AssignmentActivities
    from activities.read_model import ReadModelActivities
    from goalkeeper import attempts
    from goalkeeper.ids import fact_id
    from goalkeeper.limits import (
        MAX_EVENT_MESSAGE_CHARS,
        MAX_ID_CHARS,
        MAX_SHORT_REASON_CHARS,
        MAX_VIEW_ERROR_CHARS,
        bounded_history,
        clip,
    )
    from goalkeeper.metrics import Rejected
    from goalkeeper.models import (
        AgentReport,
        TaskCheckpoint,
        TaskInput,
        TaskSummary,
        TaskUpdate,
        TaskView,
    )
    from goalkeeper.records import EndAssignment, Event, EventKind, RecordTask
    from goalkeeper.statuses import AssignmentStatus, TaskStatus
    from monitoring import metrics
    from workflows import search_attributes as sa
    from workflows.messages import summarize_payload
    from workflows.options import record, record_apart
    from workflows.refusals import RefusalLog


class TaskRecord:
    """The task as it stands, and the trail of its changes: one per `seq`, written once."""

    def __init__(self, input: TaskInput, checkpoint: TaskCheckpoint | None) -> None:
        self.input = input
        self.settling = False
        """A report is being applied: decisions wait for the status it leads to."""
        self.settled = 0
        """Changes this run has settled: an update's answer waits for the next one."""
        self.recording = asyncio.Lock()
        """Rejections are written one at a time, so the trail keeps their order."""
        self.refusals = RefusalLog()
        """Refused messages, written in batches apart from their handlers."""
        self._quiet_rejections: set[str] = set()
        """What rejections are recorded once for: an assignment, not each stale heartbeat."""
        self.closed: set[str] = set()
        """Assignments that ended: nothing of them counts any more."""
        self.adopted = False
        """A later run of the goal took this task over: it is told how the task ends."""
        self.shown: tuple[TaskStatus, str | None] | None = None
        if checkpoint is not None:
            self.adopted = checkpoint.adopted
            self.view = checkpoint.view
            self.attempts_before = checkpoint.attempts_before
            # What this run showed is what the last one left: no upsert needed.
            self.shown = (self.view.status, self.view.agent_id)
            return
        previous = input.previous or TaskSummary(task_id=input.task.id or "")
        self.view = first_view(input, previous)
        self.attempts_before = previous.attempts

    def standing(self) -> attempts.Standing:
        """Where the task stands now, as the rules of its attempts see it."""
        view = self.view
        return attempts.Standing(
            task_id=view.task_id,
            agent_id=view.agent_id or "",
            assignment_id=view.assignment_id,
            attempt=view.attempts,
            attempts_used=view.attempts - self.attempts_before,
            max_attempts=self.input.max_attempts,
            history=tuple(view.history),
            reworks=view.reworks,
        )

    async def end_assignment(
        self,
        outcome: AssignmentStatus,
        report: AgentReport | None,
        kind: EventKind,
        message: str,
        **changes: Any,
    ) -> None:
        """Close the assignment and move the task on, atomically; a lapse marks the agent."""
        assignment_id, agent_id = self.view.assignment_id, self.view.agent_id
        assert assignment_id is not None
        self.closed.add(assignment_id)
        self._advance(changes)
        await record(
            AssignmentActivities.end_assignment,
            EndAssignment(
                assignment_id=assignment_id,
                status=outcome,
                result=report.result if report else None,
                error=report.error if report else message,
                tokens_used=report.tokens_used if report else 0,
                cost_usd=report.cost_usd if report else 0.0,
                input_tokens=report.input_tokens if report else None,
                output_tokens=report.output_tokens if report else None,
                cost_known=report.cost_known if report else True,
                tool_calls=report.tool_calls if report else [],
                task=self.view,
                event=self.event(kind, message, agent_id),
            ),
            f"record assignment {outcome} for agent {agent_id}",
        )
        await self.settle()

    async def change(
        self,
        kind: EventKind,
        message: str,
        detail: dict[str, Any] | None = None,
        **changes: Any,
    ) -> None:
        """Move the task to a new state, record it, and tell the goal."""
        self._advance(changes)
        event = self.event(kind, message, self.view.agent_id, detail)
        await record(
            ReadModelActivities.record_task,
            RecordTask(task=self.view, event=event),
            f"record task {self.view.status}",
        )
        await self.settle()

    def _advance(self, changes: dict[str, Any]) -> None:
        self.view = bounded(self.view.model_copy(update={**changes, "seq": self.view.seq + 1}))
        self.settling = False  # what a report leads to is in the view now

    async def settle(self) -> None:
        """Show the change, tell the goal of it, and count it settled."""
        self.show()
        # The goal learns of the end from this workflow's result; of the rest, by signal.
        # A pending task is about to be assigned again: the goal hears of that instead.
        if not self.view.status.is_terminal and self.view.status is not TaskStatus.PENDING:
            await self.notify_goal()
        self.settled += 1

    def summary(self) -> TaskSummary:
        """The task as its goal keeps it."""
        view = self.view
        return TaskSummary(
            task_id=view.task_id,
            status=view.status,
            agent_id=view.agent_id,
            assignment_id=view.assignment_id,
            attempts=view.attempts,
            reworks=view.reworks,
            tokens_used=view.tokens_used,
            cost_usd=view.cost_usd,
            waiting_on=view.waiting_on,
            error=(view.error or "")[:MAX_SHORT_REASON_CHARS] or None,
            seq=view.seq,
            duration_seconds=self._duration(),
        )

    def _duration(self) -> float | None:
        """How long the task ran once it ended: this workflow's time and its retries' before."""
        view = self.view
        if not view.status.is_terminal or view.started_at is None or view.ended_at is None:
            return None
        before = self.input.previous.duration_seconds if self.input.previous else None
        return round((view.ended_at - view.started_at).total_seconds() + (before or 0.0), 3)

    async def record_rejection(
        self, kind: EventKind, message: str, payload: tuple[Any, ...], received: int
    ) -> None:
        """Record a rejected message in the audit trail; the task's state is unchanged."""
        workflow.logger.warning(message)
        agent_id = None
        if len(payload) == 1 and isinstance(payload[0], dict):
            agent_id = str(payload[0].get("agent_id") or "")[:MAX_ID_CHARS] or None
        event = self.event(kind, message, agent_id, {"payload": summarize_payload(payload)})
        # Named by this run and the signal's place in it: the same signal, the same row.
        event.event_id = fact_id("signal", workflow.info().run_id, received)
        if self.refusals.batched():
            self.refusals.add(event)
            return
        async with self.recording:
            await record_apart(ReadModelActivities.record_event, event, f"record {kind}")

    def first_rejection(self, key: str) -> bool:
        """True the first time a rejection recorded once for `key` comes."""
        first = key not in self._quiet_rejections
        self._quiet_rejections.add(key)
        return first

    def event(
        self,
        kind: EventKind,
        message: str,
        agent_id: str | None,
        detail: dict[str, Any] | None = None,
    ) -> Event:
        """An event about the task's change number `seq`: one id, however often written."""
        view = self.view
        return Event(
            event_id=fact_id("task", view.goal_run_id, view.task_id, view.seq, kind),
            kind=kind,
            message=message,
            goal_id=self.view.goal_id,
            task_id=self.view.task_id,
            agent_id=agent_id,
            detail=detail or {},
        )

    async def notify_goal(self) -> None:
        """Send the goal this task's state; it keeps only the newest `seq` of its own run."""
        parent = workflow.info().parent
        if parent is None:
            return
        try:
            update = TaskUpdate(
                goal_run_id=self.input.goal_run_id,
                task=self.summary(),
                agent_ids=self.view.agent_ids,
            )
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "task_update", sealing.sealed("task_update", parent.workflow_id, update)
            )
        except Exception as exc:  # the goal ended or was terminated: nothing left to tell
            workflow.logger.warning(f"could not tell goal {parent.workflow_id!r}: {exc}")

    def show(self) -> None:
        """Mirror the state in the Temporal UI: search attributes and a one-line summary."""
        view = self.view
        if (view.status, view.agent_id) != self.shown:  # each upsert is a history event
            self.shown = (view.status, view.agent_id)
            updates = [sa.TASK_STATUS.value_set(view.status.value)]
            if view.agent_id:
                updates.append(sa.ASSIGNED_AGENT.value_set(view.agent_id))
            workflow.upsert_search_attributes(updates)
        line = f"**{view.title}**: {view.status}"
        if view.agent_id:
            line += f", agent `{view.agent_id}` (attempt {view.attempts})"
        if view.waiting_on:
            line += f"; waiting on approver {', '.join(view.waiting_on)}"
        if view.history:
            line += "\n\n" + "\n\n".join(view.history[-5:])
        workflow.set_current_details(line)


def first_view(input: TaskInput, previous: TaskSummary) -> TaskView:
    """The view a task starts from: its spec, and what its earlier runs spent."""
    task = input.task
    return TaskView(
        goal_id=input.goal_id,
        goal_run_id=input.goal_run_id,
        task_id=task.id or "",
        title=task.title,
        skill=task.skill,
        depends_on=task.depends_on,
        requires_approval=task.requires_approval,
        attempts=previous.attempts,
        reworks=previous.reworks,
        tokens_used=previous.tokens_used,
        cost_usd=previous.cost_usd,
        seq=previous.seq,
        history=[input.note] if input.note else [],
    )


async def reject_input(problem: str) -> NoReturn:
    """Fail at once on input that is no task's, recorded under the goal its id names:
    a task workflow started by hand, not by its goal."""
    info = workflow.info()
    goal_id, _, task_id = info.workflow_id.partition("/")
    message = (
        f"task workflow {info.workflow_id!r} rejected: {problem}; tasks are started "
        "by their GoalWorkflow"
    )[:MAX_EVENT_MESSAGE_CHARS]
    metrics.rejected(workflow.metric_meter(), Rejected.TASK_INPUT)
    await record(
        ReadModelActivities.record_event,
        Event(
            event_id=fact_id("task-input", info.run_id),
            kind=EventKind.TASK_INPUT_REJECTED,
            goal_id=goal_id,
            task_id=task_id or None,
            message=message,
        ),
        "record the rejected task input",
    )
    raise ApplicationError(message, type="InvalidTaskInput", non_retryable=True)


def bounded(view: TaskView) -> TaskView:
    """The view with its history and error bounded, so no agent input takes the `status`
    query near Temporal's message limit (goalkeeper.limits.MAX_VIEW_BYTES)."""
    history = bounded_history(view.history)
    error = None if view.error is None else clip(view.error, MAX_VIEW_ERROR_CHARS)
    if history == view.history and error == view.error:
        return view
    return view.model_copy(update={"history": history, "error": error})
