"""The signed changes to a running goal: tasks added, its budget raised, the goal stopped,
a failed task retried or given up, a task reassigned or cancelled.

Each is judged, its signature checked where the goal requires one (invariant 9), then
taken; a refusal says why. `GoalWorkflow`'s updates and signals hand their payloads
here once the goal is ready for them.
"""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.assignment import AssignmentActivities
    from activities.keys import KeyActivities
    from activities.read_model import ReadModelActivities
    from goalkeeper import budgets, signing
    from goalkeeper.budgets import BudgetRaise, GoalStop
    from goalkeeper.judging import signed_control_problem
    from goalkeeper.metrics import Rejected
    from goalkeeper.models import ApprovalDecision, ControlSigners, GoalSpec, Signers
    from goalkeeper.planning import AddTasks
    from goalkeeper.records import EventKind, goal_event
    from goalkeeper.statuses import GoalStatus
    from goalkeeper.task_controls import AgentQuery, TaskCancel, TaskReassign, agent_problem
    from monitoring import metrics
    from workflows.goal.budget import GoalBudget
    from workflows.messages import parse_message, reject_if, summarize_payload
    from workflows.options import record_apart
    from workflows.refusals import RefusalLog
    from workflows.runners.runner import Added, TaskRunner

ControlOfTask = TypeVar("ControlOfTask", TaskReassign, TaskCancel)

SIGNED_CONTROLS = "signed-controls"
"""The patch from which a goal's budget raises, stops, added tasks and retry decisions
are checked for signatures where it requires them."""

TASK_CONTROLS = "task-controls"
"""The patch from which a goal takes a person's reassign or cancel of one of its tasks."""


async def record_refusal(
    refusals: RefusalLog,
    goal_id: str,
    goal_run_id: str,
    kind: EventKind,
    problem: str,
    payload: tuple[Any, ...],
    received: int,
) -> None:
    """Record a message the goal refused, named by its run and the `received`-th signal."""
    event = goal_event(
        goal_id,
        goal_run_id,
        kind,
        problem,
        detail={"payload": summarize_payload(payload)},
        key=(workflow.info().run_id, received),
    )
    if refusals.batched():
        refusals.add(event)
        return
    await record_apart(
        ReadModelActivities.record_event,
        event,
        "record rejected decision"
        if kind is EventKind.DECISION_REJECTED
        else "record a refused message",
    )


class GoalControls:
    """One running goal's signed controls, judged against its runner and budget now."""

    def __init__(
        self,
        goal_id: str,
        goal_run_id: str,
        header: GoalSpec,
        runner: TaskRunner,
        budget: GoalBudget,
        status: Callable[[], GoalStatus],
        refusals: RefusalLog,
    ) -> None:
        self.goal_id, self.goal_run_id, self.header = goal_id, goal_run_id, header
        self.runner, self.budget = runner, budget
        self._status = status
        self.refusals = refusals

    # Tasks added: `add_tasks`.

    def judge_added(self, payload: tuple[Any, ...]) -> Added:
        request = parse_message(payload, AddTasks, "add_tasks request")
        if isinstance(request, str):
            return request
        tasks = self.runner.judge_added(request, self._status() is GoalStatus.RUNNING)
        return tasks if isinstance(tasks, str) else (request, tasks)

    def validate_added(self, payload: tuple[Any, ...]) -> None:
        problem = self.judge_added(payload)
        reject_if(metrics.refused(workflow.metric_meter(), Rejected.ADD_TASKS, problem))

    async def add_tasks(self, payload: tuple[Any, ...]) -> None:
        """Add the tasks, once signed where the goal requires it; raise why not."""
        first = self.judge_added(payload)
        if not isinstance(first, str):
            request = first[0]
            working = self.runner.agent_ids()[0]
            agents = [request.added_by] if request.added_by in working else []
            unsigned = await self._unsigned("add_tasks", request, request.added_by, agents)
            if unsigned is not None:
                metrics.rejected(workflow.metric_meter(), Rejected.ADD_TASKS)
                raise ApplicationError(unsigned, type="TasksRejected", non_retryable=True)
        problem = await self.runner.add_tasks(lambda: self.judge_added(payload))
        if problem is not None:
            metrics.rejected(workflow.metric_meter(), Rejected.ADD_TASKS)
            raise ApplicationError(problem, type="TasksRejected", non_retryable=True)

    # The budget: `raise_budget` and `stop`.

    def judge_raise(self, payload: tuple[Any, ...]) -> BudgetRaise | str:
        return self.budget.judge_raise(payload, self._status(), self.runner.spent())

    def validate_raise(self, payload: tuple[Any, ...]) -> None:
        problem = self.judge_raise(payload)
        reject_if(metrics.refused(workflow.metric_meter(), Rejected.BUDGET, problem))

    async def raise_budget(self, payload: tuple[Any, ...]) -> None:
        """Raise the budget; a goal paused at it goes on. Raise why not."""
        budget = self.budget
        request: Any = self.judge_raise(payload)
        if not isinstance(request, str):
            request = await self._unsigned("raise_budget", request, request.approver) or request
        if not isinstance(request, str):
            request = await budget.take_raise(request, lambda: self.judge_raise(payload)) or request
        if isinstance(request, str):
            metrics.rejected(workflow.metric_meter(), Rejected.BUDGET)
            raise ApplicationError(request, type="BudgetRaiseRejected", non_retryable=True)
        self.runner.pause(budget.paused)
        self.runner.raised()

    def judge_stop(self, payload: tuple[Any, ...]) -> GoalStop | str:
        return self.budget.judge_stop(payload, self._status())

    def validate_stop(self, payload: tuple[Any, ...]) -> None:
        problem = self.judge_stop(payload)
        reject_if(metrics.refused(workflow.metric_meter(), Rejected.BUDGET, problem))

    async def stop(self, payload: tuple[Any, ...]) -> None:
        """Stop the goal: running tasks aborted, the rest skipped. Raise why not."""
        request: Any = self.judge_stop(payload)
        if not isinstance(request, str):
            request = await self._unsigned("stop", request, request.approver) or request
        if not isinstance(request, str):
            request = (
                await self.budget.take_stop(request, lambda: self.judge_stop(payload)) or request
            )
        if isinstance(request, str):
            metrics.rejected(workflow.metric_meter(), Rejected.BUDGET)
            raise ApplicationError(request, type="StopRejected", non_retryable=True)

    # Retry decisions under `ask_approver`: `decide` and `approval_decision`.

    def judge_retry(self, payload: tuple[Any, ...]) -> ApprovalDecision | str:
        decision = parse_message(payload, ApprovalDecision, "approval decision")
        if isinstance(decision, str):
            return decision
        return self.runner.judge_retry(decision) or decision

    def validate_retry(self, payload: tuple[Any, ...]) -> None:
        problem = self.judge_retry(payload)
        reject_if(metrics.refused(workflow.metric_meter(), Rejected.DECISION, problem))

    async def decide(self, payload: tuple[Any, ...]) -> None:
        """Take a retry decision; raise why it was rejected."""
        decision = await self._judge_signed_retry(payload)
        if isinstance(decision, str):
            metrics.rejected(workflow.metric_meter(), Rejected.DECISION)
            raise ApplicationError(decision, type="DecisionRejected", non_retryable=True)
        await self.runner.take_retry_decision(decision)

    async def approval_decision(self, payload: tuple[Any, ...], received: int) -> None:
        """Take a retry decision sent as a signal; a rejected one is counted and recorded."""
        decision = await self._judge_signed_retry(payload)
        if isinstance(decision, str):
            metrics.rejected(workflow.metric_meter(), Rejected.DECISION)
            workflow.logger.warning(decision)
            await record_refusal(
                self.refusals,
                self.goal_id,
                self.goal_run_id,
                EventKind.DECISION_REJECTED,
                decision,
                payload,
                received,
            )
            return
        await self.runner.take_retry_decision(decision)

    # A task reassigned or cancelled: `reassign_task` and `cancel_task`.

    def judge_reassign(self, payload: tuple[Any, ...]) -> TaskReassign | str:
        return self._judge_task_control(
            payload, TaskReassign, "reassign", self.runner.judge_reassign
        )

    def _judge_task_control(
        self,
        payload: tuple[Any, ...],
        model: type[ControlOfTask],
        kind: str,
        judge: Callable[[ControlOfTask], str | None],
    ) -> ControlOfTask | str:
        """A reassign or cancel as the payload asks, or why it cannot count: not one of the
        goal's deciders, or not what the task's state allows now."""
        request = parse_message(payload, model, f"{kind} request")
        if isinstance(request, str):
            return request
        problem = budgets.decider_problem(
            f"goal {self.goal_id!r}",
            self.header,
            self._status(),
            request.approver,
            f"{kind} a task of",
        )
        return problem or judge(request) or request

    def validate_reassign(self, payload: tuple[Any, ...]) -> None:
        problem = self.judge_reassign(payload)
        reject_if(metrics.refused(workflow.metric_meter(), Rejected.TASK_CONTROL, problem))

    async def reassign_task(self, payload: tuple[Any, ...]) -> None:
        """Take the task from its agent, once signed where the goal requires it and the
        agent it names may take it; raise why not, the task left as it was."""
        request: Any = self.judge_reassign(payload)
        if not isinstance(request, str):
            request = await self._unsigned("reassign", request, request.approver) or request
        if not isinstance(request, str) and request.agent is not None:
            request = await self._agent_refusal(request) or request
        if not isinstance(request, str):
            # The task may have moved on while the keys and the agent were read.
            request = self.judge_reassign(payload)
        if not isinstance(request, str) and not workflow.patched(TASK_CONTROLS):
            request = f"goal {self.goal_id!r} runs code from before a task could be reassigned"
        if isinstance(request, str):
            metrics.rejected(workflow.metric_meter(), Rejected.TASK_CONTROL)
            raise ApplicationError(request, type="ReassignRejected", non_retryable=True)
        self.runner.take_reassign(request)

    async def _agent_refusal(self, request: TaskReassign) -> str | None:
        """Why the agent a reassign names cannot take the task, as PostgreSQL holds it now."""
        assert request.agent is not None
        standing = await record_apart(
            AssignmentActivities.agent_standing,
            AgentQuery(agent_id=request.agent, workspace=self.header.workspace),
            f"read agent {request.agent}",
        )
        skill = self.runner.skill_of(request.task_id)
        return agent_problem(self.goal_id, request.task_id, skill, standing)

    def judge_cancel(self, payload: tuple[Any, ...]) -> TaskCancel | str:
        return self._judge_task_control(payload, TaskCancel, "cancel", self.runner.judge_cancel)

    def validate_cancel(self, payload: tuple[Any, ...]) -> None:
        problem = self.judge_cancel(payload)
        reject_if(metrics.refused(workflow.metric_meter(), Rejected.TASK_CONTROL, problem))

    async def cancel_task(self, payload: tuple[Any, ...]) -> None:
        """Cancel the task, once signed where the goal requires it; raise why not."""
        request: Any = self.judge_cancel(payload)
        if not isinstance(request, str):
            request = await self._unsigned("cancel", request, request.approver) or request
        if not isinstance(request, str):
            request = self.judge_cancel(payload)  # it may have ended while keys were read
        if not isinstance(request, str) and not workflow.patched(TASK_CONTROLS):
            request = f"goal {self.goal_id!r} runs code from before a task could be cancelled"
        if isinstance(request, str):
            metrics.rejected(workflow.metric_meter(), Rejected.TASK_CONTROL)
            raise ApplicationError(request, type="CancelRejected", non_retryable=True)
        self.runner.take_cancel(request)

    async def _judge_signed_retry(self, payload: tuple[Any, ...]) -> ApprovalDecision | str:
        """A retry decision judged, and its signature too where the goal requires one."""
        decision = self.judge_retry(payload)
        if isinstance(decision, str):
            return decision
        return await self._unsigned("retry", decision, decision.approver) or decision

    async def _unsigned(
        self, kind: str, request: Any, signer: str, agents: Sequence[str] = ()
    ) -> str | None:
        """Why a change to this goal is not signed by someone allowed to make it, where the
        goal requires signatures; the keys are read as they are now."""
        header = self.header
        if header.require_signatures is False or not workflow.patched(SIGNED_CONTROLS):
            return None
        approvers = sorted({name for level in budgets.deciders(header) for name in level})
        signers: Signers = await record_apart(
            KeyActivities.control_signers,
            ControlSigners(
                approvers=approvers,
                agents=list(agents),
                require_signatures=header.require_signatures,
            ),
            f"read the keys that may sign {kind}",
        )
        if not signers.required:
            return None
        problem = signed_control_problem(kind, self.goal_id, request, signer, approvers, agents)
        return problem or signing.control_problem(
            signers, kind, self.goal_id, request, signer, request.signed_by, request.signature
        )
