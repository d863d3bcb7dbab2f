"""`PartitionWorkflow`: one bounded range of a large goal's tasks, rolled up to its goal."""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import workflows.sealing as sealing
    from activities.read_model import ReadModelActivities
    from goalkeeper.ids import fact_id, partition_workflow_id
    from goalkeeper.limits import MAX_SHORT_REASON_CHARS
    from goalkeeper.metrics import Rejected
    from goalkeeper.models import (
        ApprovalDecision,
        GoalRef,
        GoalSpec,
        PartitionFail,
        PartitionInput,
        PartitionUpdate,
        TaskPage,
        TasksQuery,
        TaskUpdate,
        WindowState,
    )
    from goalkeeper.records import Event, EventKind, LoadTasks
    from monitoring import metrics
    from workflows.messages import parse_message, summarize_payload
    from workflows.options import record, record_apart
    from workflows.refusals import RefusalLog
    from workflows.runners.window import TaskWindow
    from workflows.specs import load_specs

ROLLUP_EVERY = timedelta(seconds=1)
"""Counts go to the goal at most this often (and at once when the partition ends)."""


@workflow.defn
class PartitionWorkflow:
    """Runs up to a partition's worth of a goal's tasks in a window, like a small goal.

    Its tasks depend only on tasks in it or in partitions that ended before it
    started (the goal orders them so); those that depend on an earlier task that did
    not complete are skipped at once. It tells the goal its counts by
    `partition_update` signals, so the goal's progress stays exact.
    """

    @workflow.init
    def __init__(self, raw_input: Any, raw_state: Any = None) -> None:
        # Decoded here, not by the SDK, so input that is no partition's fails the workflow
        # with the reason instead of its every workflow task.
        parsed = parse_message((raw_input,), PartitionInput, "partition input")
        self._bad_input = parsed if isinstance(parsed, str) else None
        self._state = WindowState.model_validate(raw_state) if raw_state else None
        self._input = parsed if not isinstance(parsed, str) else None
        self._window: TaskWindow | None = None
        self._seq = 0
        self._sent: tuple[Any, ...] | None = None
        self._last_sent = workflow.now()
        self._early: list[TaskUpdate] = []
        self._signals = 0
        self._refusals = RefusalLog()
        """Signals this run received, counted as each arrives: names its rejections."""

    @workflow.run
    async def run(self, raw_input: Any, raw_state: Any = None) -> PartitionUpdate:
        input, state = self._input, self._state
        if input is None:
            raise ApplicationError(
                f"partition {workflow.info().workflow_id!r} rejected: {self._bad_input}; "
                "partitions are started by their GoalWorkflow",
                type="InvalidPartitionInput",
                non_retryable=True,
            )
        info = workflow.info()
        parent = info.parent.workflow_id if info.parent else None
        expected = partition_workflow_id(input.goal_id, input.index)
        if parent != input.goal_id or info.workflow_id != expected:
            raise ApplicationError(
                f"partition {info.workflow_id!r} rejected: expected {expected!r} started by "
                f"goal {input.goal_id!r}, got one started by {parent or 'a client'}",
                type="InvalidPartitionInput",
                non_retryable=True,
            )
        ref = LoadTasks(
            goal_id=input.goal_id, goal_run_id=input.goal_run_id, start=input.start, end=input.end
        )
        header: GoalSpec = await record(
            ReadModelActivities.load_goal,
            GoalRef(goal_id=input.goal_id, goal_run_id=input.goal_run_id, tasks_total=input.end),
            "load the goal's spec",
        )
        specs = await load_specs(ref)
        if state is None:
            blocked: dict[str, str] = await record(
                ReadModelActivities.lost_dependencies, ref, "find dependencies that were lost"
            )
            window = TaskWindow(
                input.goal_id, input.goal_run_id, header, specs, input.window, blocked=blocked
            )
        else:
            window = TaskWindow.restore(
                input.goal_id, input.goal_run_id, header, specs, input.window, state
            )
        self._window = window
        for update in self._early:
            window.task_update(update)
        if state is None:
            await window.start_blocked()
        await window.run(self._roll_up, self._continue_as_new)
        await self._refusals.flush()
        return self._update(ended=True)

    @workflow.query
    def tasks(self, query: Any = None) -> TaskPage:
        """A page of this partition's tasks, as the goal's `tasks` query pages."""
        parsed = TasksQuery.model_validate(query or {})
        if self._window is None:
            return TaskPage(
                goal_id=self._input.goal_id if self._input else workflow.info().workflow_id,
                offset=parsed.offset,
                limit=parsed.limit,
                total=0,
                tasks=[],
            )
        return self._window.page(parsed)

    @workflow.signal
    async def task_update(self, *payload: Any) -> None:
        """A running task's new state, from its `TaskWorkflow`."""
        update = sealing.opened(payload, TaskUpdate, "task_update")
        if isinstance(update, str):
            await self._refuse(update, payload)
        elif self._window is None:
            self._early.append(update)
        else:
            self._window.task_update(update)

    @workflow.signal(name="approval_decision")
    async def approval_decision(self, *payload: Any) -> None:
        """A retry decision the goal judged and passed on: its task is in this partition.

        Sealed by the goal: a decision sent here directly would skip the goal's judging.
        """
        decision = sealing.opened(payload, ApprovalDecision, "approval_decision")
        if isinstance(decision, str):
            await self._refuse(decision, payload)
            return
        await workflow.wait_condition(lambda: self._window is not None)
        window = self._window
        assert window is not None
        problem = window.judge_retry(decision)
        if problem is not None:
            await self._refuse(problem, payload, EventKind.DECISION_REJECTED)
            return
        await window.take_retry_decision(decision)

    @workflow.signal
    async def fail(self, *payload: Any) -> None:
        """The goal is failing: abort what runs here and skip the rest."""
        request = sealing.opened(payload, PartitionFail, "fail", legacy=lambda v: {"reason": v})
        if isinstance(request, str):
            await self._refuse(request, payload)
            return
        await workflow.wait_condition(lambda: self._window is not None)
        window = self._window
        assert window is not None
        window.fail(request.reason[:MAX_SHORT_REASON_CHARS])

    async def _refuse(
        self, problem: str, payload: tuple[Any, ...], kind: EventKind = EventKind.MESSAGE_REJECTED
    ) -> None:
        """Count and record a refused message, under the goal this partition runs for."""
        self._signals += 1
        received = self._signals
        internal = kind is EventKind.MESSAGE_REJECTED
        what = Rejected.INTERNAL if internal else Rejected.DECISION
        metrics.rejected(workflow.metric_meter(), what)
        workflow.logger.warning(problem)
        info = workflow.info()
        goal_id = self._input.goal_id if self._input else info.workflow_id
        event = Event(
            event_id=fact_id("partition", info.run_id, kind, received),
            kind=kind,
            message=problem,
            goal_id=goal_id,
            detail={"payload": summarize_payload(payload)},
        )
        if self._refusals.batched():
            self._refusals.add(event)
            return
        await record_apart(ReadModelActivities.record_event, event, f"record {kind}")

    async def _roll_up(self) -> timedelta | None:
        """Tell the goal the counts if they changed, at most once per `ROLLUP_EVERY`."""
        window = self._window
        assert window is not None
        update = self._update(ended=window.schedule.ended)
        shown = (tuple(update.counts.items()), update.retry_due, update.failing, update.ended)
        if shown == self._sent:
            return None
        wait = self._last_sent + ROLLUP_EVERY - workflow.now()
        if wait > timedelta(0) and not update.ended and update.failing is None:
            return wait
        self._sent, self._last_sent = shown, workflow.now()
        self._seq += 1
        update.seq = self._seq
        parent = workflow.info().parent
        assert parent is not None
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "partition_update", sealing.sealed("partition_update", parent.workflow_id, update)
            )
        except Exception as exc:  # the goal ended or was terminated: nothing left to tell
            workflow.logger.warning(f"could not tell goal {parent.workflow_id!r}: {exc}")
        return None

    def _update(self, ended: bool) -> PartitionUpdate:
        window, input = self._window, self._input
        assert window is not None and input is not None
        schedule = window.schedule
        return PartitionUpdate(
            goal_run_id=input.goal_run_id,
            index=input.index,
            seq=self._seq,
            counts=window.totals(),
            tokens_used=window.tokens_used,
            cost_usd=round(window.cost_usd, 6),
            agents=sorted(window.agents),
            agents_completed=sorted(window.agents_completed),
            retry_due=sorted(schedule.plan.ids[i] for i in schedule.retry_due),
            failing=schedule.failing,
            ended=ended,
        )

    async def _continue_as_new(self) -> None:
        """A fresh history with the same state; no task runs across it."""
        window = self._window
        assert window is not None
        await self._refusals.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(args=[self._input, window.state()])
