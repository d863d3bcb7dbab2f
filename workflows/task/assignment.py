"""`TaskAssignment`: getting an agent for a task's next attempt, however long it takes.

The activity retries until an agent is given (a task never proceeds without one); only
a spent budget over the goal refuses, and the task then asks again, ever less often.
"""

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.assignment import AssignmentActivities
    from goalkeeper import attempts, signing
    from goalkeeper.ids import assignment_id as assignment_id_of
    from goalkeeper.models import TaskCheckpoint, TaskView
    from goalkeeper.records import AssignAgents, Assignment, AssignTask
    from goalkeeper.statuses import TaskStatus
    from workflows.options import assign, refused_wait
    from workflows.task.inbox import TaskInbox
    from workflows.task.judge import TaskJudge
    from workflows.task.record import TaskRecord


class TaskAssignment:
    """Assigns a task's attempts, each avoiding the agents that failed it before."""

    def __init__(
        self,
        record: TaskRecord,
        judge: TaskJudge,
        inbox: TaskInbox,
        continue_as_new: Callable[[], Awaitable[None]],
        checkpoint: TaskCheckpoint | None = None,
    ) -> None:
        self._record = record
        self._judge = judge
        self._inbox = inbox
        self._continue_as_new = continue_as_new
        self.exclude: list[str] = list(checkpoint.exclude) if checkpoint else []
        """Agents no later attempt is given."""
        self.rework: list[dict[str, Any]] = list(checkpoint.rework) if checkpoint else []
        """What the next agent is told to do again, and why."""
        self.avoid: list[str] = []
        """Agents the next attempt goes to only where no other can take it."""

    def reassigned(self, agent_id: str, to: str | None) -> None:
        """A person took the task from `agent_id`: the next attempt goes to `to` (even one
        passed over before: a person chose it), else to another agent where one can take it."""
        if to is not None:
            self.exclude = [a for a in self.exclude if a != to]
        self.avoid = [] if to is not None else [agent_id]

    def remember(self, step: attempts.Step) -> None:
        """Keep what an attempt's end says the next assignment avoids or reworks."""
        if step.exclude is not None:
            self.exclude.append(step.exclude)
        if step.rework is not None:
            self.rework.append(dict(step.rework))

    async def assign(self, prefer: str | None) -> bool:
        """Get an agent for the next attempt; the activity retries until it has one.

        While a budget over the goal is spent, no agent is given: the task tells the goal
        what it has cost (so the goal pauses and asks its approvers) and asks again, ever
        less often, until the budget is raised. False if it was aborted meanwhile.
        """
        refusals = 0
        while (refused := await self._assign_once(prefer)) is not None:
            if refusals == 0:
                await self._record.notify_goal()
            refusals += 1
            workflow.set_current_details(
                f"**{self._record.view.title}**: pending, no agent may be given: {refused}"
            )
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._inbox.abort is not None,
                    timeout=refused_wait(refusals),
                    timeout_summary="budget raise",
                )
            if self._inbox.abort is not None:
                self._judge.assigning = None
                return False
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()
        return True

    async def _assign_once(self, prefer: str | None) -> str | None:
        """Assign the next attempt, or say why a spent budget allowed no agent."""
        input = self._record.input
        view = self._record.view
        attempt = view.attempts + 1
        assignment_id = assignment_id_of(input.goal_run_id, view.task_id, attempt)
        self._judge.assigning = assignment_id
        assigned: list[Assignment] = await assign(
            AssignmentActivities.assign_agents,
            AssignAgents(
                goal_id=input.goal_id,
                goal_run_id=input.goal_run_id,
                workspace=input.workspace,
                tasks=[
                    AssignTask(
                        task_id=view.task_id,
                        skill=input.task.skill,
                        assignment_id=assignment_id,
                        attempt=attempt,
                        seq=view.seq + 1,
                        exclude_agent_ids=self.exclude,
                        prefer_agent_id=prefer,
                        avoid_agent_ids=self.avoid,
                        rework=self.rework,
                        report_deadline_seconds=input.report_deadline_seconds,
                        heartbeat_timeout_seconds=input.heartbeat_timeout_seconds,
                    )
                ],
                require_signatures=input.require_signatures,
            ),
            f"assign an agent with skill {input.task.skill!r} (attempt {attempt})",
        )
        if assigned[0].refused is not None:
            return assigned[0].refused
        self.avoid = []
        self._record.view = self.assigned(self._record.view, assigned[0], attempt)
        self._record.view.seq += 1
        self._inbox.assigned()
        await self._record.settle()
        return None

    def assigned(self, view: TaskView, assigned: Any, attempt: int) -> TaskView:
        """The view once `assigned` holds the task's `attempt`-th assignment; its signers
        are the ones that count from now on."""
        now = getattr(assigned, "assigned_at", None) or workflow.now()
        self._judge.signers = signing.Signers(
            required=assigned.signatures_required,
            agent_key=assigned.agent_key,
            agent_operator=assigned.agent_operator,
        )
        deadline = timedelta(seconds=self._record.input.report_deadline_seconds)
        return view.model_copy(
            update={
                "status": TaskStatus.ASSIGNED,
                "attempts": attempt,
                "agent_id": assigned.agent_id,
                "assignment_id": assigned.assignment_id,
                "agent_ids": [*view.agent_ids, assigned.agent_id],
                "assigned_at": now,
                "report_due_at": now + deadline,
                "last_heartbeat_at": None,
                "tool_calls": [],
                "tool_calls_total": 0,
            }
        )
