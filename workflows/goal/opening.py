"""Opening a goal run: a new goal's spec validated and stored and its tasks given a runner,
or a later run's runner restored from its checkpoint.

A goal of up to `partition_size` tasks runs them in a `TaskWindow`, a larger one in a
`PartitionSet`. An invalid goal is recorded as rejected and fails at once (invariant 5).
"""

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.read_model import ReadModelActivities
    from activities.runbooks import RunbookActivities
    from goalkeeper.errors import InvalidGoalSpec
    from goalkeeper.ids import fact_id, started_by_goal
    from goalkeeper.limits import MAX_EVENT_MESSAGE_CHARS
    from goalkeeper.metrics import Rejected
    from goalkeeper.models import GoalCheckpoint, GoalSpec, PartitionState, TaskSpec, WindowState
    from goalkeeper.plan_task import needs_plan
    from goalkeeper.records import (
        EventKind,
        LoadTasks,
        MatchRunbooks,
        RecordGoal,
        RecordRejectedGoal,
        RecordTasks,
        RunbookRef,
        StoredGoal,
        StoreGoal,
        goal_event,
        goal_started_message,
    )
    from goalkeeper.runbooks import runbook_named
    from goalkeeper.scheduling import partition, topological_order
    from goalkeeper.subgoals import subgoal_id
    from goalkeeper.validation import validate_goal_spec
    from monitoring import metrics
    from workflows.goal.display import GoalDisplay
    from workflows.messages import Undecodable, summarize_payload
    from workflows.options import DATABASE_RETRY, record
    from workflows.runners.partitions import PartitionSet
    from workflows.runners.plans import FollowUp
    from workflows.runners.runner import TaskRunner
    from workflows.runners.window import TaskWindow
    from workflows.specs import load_specs

PAGE_BYTES = 128 * 1024
"""Task specs written or read per activity call, as JSON."""

STORE_TIMEOUT = timedelta(minutes=10)
"""Validating and storing a spec stored by reference: 100,000 tasks take seconds."""


class GoalOpening:
    """How one run of a goal gets its spec and its runner.

    `known` is told the goal's spec (its header) as soon as it is valid; `rejected`, that
    the goal is rejected, before the rejection is recorded and the run fails.
    """

    def __init__(
        self,
        goal_id: str,
        goal_run_id: str,
        known: Callable[[GoalSpec], None],
        rejected: Callable[[], None],
    ) -> None:
        self.goal_id, self.goal_run_id = goal_id, goal_run_id
        self._known, self._rejected = known, rejected

    async def begin(self, raw: Any) -> TaskRunner:
        """Validate the spec, store it, and run its tasks in a window or in partitions."""
        if isinstance(raw, Undecodable):
            await self.reject(f"invalid goal spec: {raw}", str(raw))
        if isinstance(raw, dict) and set(raw) == {"spec_ref"}:
            return await self._begin_stored(str(raw["spec_ref"]))
        spec = await self._validate(raw)
        await self._check_parent(spec, raw)
        header = spec.header()
        self._known(header)
        return await self._store(header, spec.tasks)

    async def resume(self, checkpoint: GoalCheckpoint) -> TaskRunner:
        """Load the stored spec again and restore the runner from the checkpoint."""
        ref = checkpoint.spec_ref
        header: GoalSpec = await record(ReadModelActivities.load_goal, ref, "load the goal's spec")
        self._known(header)
        if checkpoint.window is None:
            return PartitionSet(
                self.goal_id, self.goal_run_id, header, checkpoint.partitions, checkpoint.failing
            )
        specs = await load_specs(
            LoadTasks(
                goal_id=self.goal_id, goal_run_id=self.goal_run_id, start=0, end=ref.tasks_total
            )
        )
        return self._window(header, specs, checkpoint.window)

    async def _validate(self, raw: Any) -> GoalSpec:
        """Check the spec, with its runbook, before anything runs."""
        named = runbook_named(raw)
        runbook, candidates = None, []
        if needs_plan(raw):
            candidates = await record(
                RunbookActivities.match_runbooks,
                MatchRunbooks(text=f"{raw.get('title', '')} {raw.get('description', '')}"),
                "find runbooks for the planner",
            )
        if named is not None:
            name, version = named
            runbook = await record(
                RunbookActivities.load_runbook,
                RunbookRef(name=name, version=version),
                f"load runbook {name!r}",
            )
        try:
            return validate_goal_spec(raw, self.goal_id, runbook, candidates)
        except InvalidGoalSpec as exc:
            await self.reject(str(exc), raw)
            raise  # not reached: reject fails the workflow

    async def _store(self, header: GoalSpec, tasks: list[TaskSpec]) -> TaskRunner:
        """Record the goal and its tasks, in pages; a large goal's in dependency order,
        so that its partitions only look back."""
        partitioned = len(tasks) > header.partition_size
        if partitioned:
            pairs = [(t.id or "", t.depends_on) for t in tasks]
            tasks = [tasks[i] for i in topological_order(pairs)]
        pages = _pages(tasks)
        await record(
            ReadModelActivities.record_goal,
            RecordGoal(
                goal_id=self.goal_id,
                goal_run_id=self.goal_run_id,
                header=header,
                tasks_total=len(tasks),
                tasks=pages[0][1],
                event=goal_event(
                    self.goal_id,
                    self.goal_run_id,
                    EventKind.GOAL_STARTED,
                    goal_started_message(self.goal_id, header, len(tasks), partitioned),
                ),
            ),
            "record the goal",
        )
        for first, page in pages[1:]:
            await record(
                ReadModelActivities.record_tasks,
                RecordTasks(
                    goal_id=self.goal_id,
                    goal_run_id=self.goal_run_id,
                    first_position=first,
                    tasks=page,
                ),
                f"record tasks {first + 1} to {first + len(page)}",
            )
        if partitioned:
            pairs = [(t.id or "", t.depends_on) for t in tasks]
            return self._partitions(header, partition(pairs, header.partition_size))
        return self._window(header, tasks)

    async def _begin_stored(self, spec_ref: str) -> TaskRunner:
        """A spec stored by reference: an activity validates and stores it, the goal never
        holds it; its tasks run in partitions (or in a window, if few)."""
        stored: StoredGoal = await workflow.execute_activity_method(
            ReadModelActivities.store_goal,
            StoreGoal(
                spec_id=spec_ref,
                goal_id=self.goal_id,
                goal_run_id=self.goal_run_id,
                event_id=fact_id("goal", self.goal_run_id, EventKind.GOAL_STARTED, None),
            ),
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
            summary="validate and store the goal's spec",
        )
        if stored.error is not None or stored.header is None:
            await self.reject(stored.error or "invalid goal spec", {"spec_ref": spec_ref})
        header = stored.header
        assert header is not None
        await self._check_parent(header, {"spec_ref": spec_ref})
        self._known(header)
        if stored.tasks_total > header.partition_size:
            return self._partitions(header, stored.partitions)
        specs = await load_specs(
            LoadTasks(
                goal_id=self.goal_id,
                goal_run_id=self.goal_run_id,
                start=0,
                end=stored.tasks_total,
            )
        )
        return self._window(header, specs)

    def _window(
        self, header: GoalSpec, specs: list[TaskSpec], state: WindowState | None = None
    ) -> TaskWindow:
        """The goal's tasks in one window; a compiling goal follows its last task up."""
        args = (self.goal_id, self.goal_run_id, header, specs, header.max_running_tasks)
        window = TaskWindow(*args) if state is None else TaskWindow.restore(*args, state)
        if header.compile:
            window.follow_up = FollowUp(window)
        return window

    def _partitions(
        self, header: GoalSpec, ranges: Sequence[tuple[int, int, list[int]]]
    ) -> PartitionSet:
        """The goal's tasks in partitions, each task range (start, end, after) its own."""
        return PartitionSet(
            self.goal_id,
            self.goal_run_id,
            header,
            [
                PartitionState(index=n, start=start, end=end, after=after)
                for n, (start, end, after) in enumerate(ranges)
            ],
        )

    async def _check_parent(self, spec: GoalSpec, raw: Any) -> None:
        """Reject a spec naming a `parent` unless that goal (or one of its partitions)
        started this one, as Temporal records it: no client starts a "sub-goal" that
        reports into a real goal or passes for one."""
        parent = spec.parent
        if parent is None:
            return
        info = workflow.info().parent
        by = info.workflow_id if info else None
        expected = subgoal_id(parent.goal_id, parent.task_id)
        if not started_by_goal(parent.goal_id, by) or self.goal_id != expected:
            await self.reject(
                f"invalid goal spec: parent: expected sub-goal {expected!r} started by goal "
                f"{parent.goal_id!r}, got {self.goal_id!r} started by "
                f"{'workflow ' + repr(by) if by else 'a client'}; sub-goals are started by "
                "their goal",
                raw,
            )

    async def reject(self, error: str, spec: Any) -> NoReturn:
        """Record the goal as rejected, saying why, and fail its run."""
        self._rejected()
        metrics.rejected(workflow.metric_meter(), Rejected.GOAL_INPUT)
        GoalDisplay.rejected(error)
        message = error[:MAX_EVENT_MESSAGE_CHARS]
        await record(
            ReadModelActivities.record_rejected_goal,
            RecordRejectedGoal(
                goal_id=self.goal_id,
                first_run_id=self.goal_run_id,
                raw_spec=summarize_payload((spec,), 4000),
                error=message,
                event=goal_event(self.goal_id, self.goal_run_id, EventKind.GOAL_REJECTED, message),
            ),
            "record rejected goal",
        )
        raise ApplicationError(error, type="InvalidGoalSpec", non_retryable=True) from None


def _pages(tasks: list[TaskSpec]) -> list[tuple[int, list[TaskSpec]]]:
    """The tasks in pages of at most `PAGE_BYTES` as JSON, each with its first position."""
    pages: list[tuple[int, list[TaskSpec]]] = []
    page: list[TaskSpec] = []
    first = size = 0
    for position, task in enumerate(tasks):
        bytes_ = len(task.model_dump_json())
        if page and size + bytes_ > PAGE_BYTES:
            pages.append((first, page))
            page, first, size = [], position, 0
        page.append(task)
        size += bytes_
    if page:
        pages.append((first, page))
    return pages
