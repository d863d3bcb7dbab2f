"""`GoalWorkflow`: a goal from its spec to its report, one child `TaskWorkflow` per task."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    import workflows.sealing as sealing
    from activities.deliverables import DeliverableActivities
    from activities.keys import KeyActivities
    from activities.read_model import ReadModelActivities
    from activities.runbooks import RunbookActivities
    from activities.suggestions import SuggestionActivities
    from goalkeeper import budgets, signing
    from goalkeeper.details import current_details, resumed_stage
    from goalkeeper.errors import InvalidGoalSpec
    from goalkeeper.ids import fact_id, started_by_goal
    from goalkeeper.judging import signed_control_problem
    from goalkeeper.limits import MAX_EVENT_MESSAGE_CHARS, MAX_SHORT_REASON_CHARS
    from goalkeeper.metrics import Rejected
    from goalkeeper.models import (
        Abort,
        Adopt,
        ApprovalDecision,
        ControlSigners,
        GoalCheckpoint,
        GoalRef,
        GoalReport,
        GoalSpec,
        PartitionState,
        PartitionUpdate,
        Progress,
        Signers,
        TaskPage,
        TaskSpec,
        TasksQuery,
        TaskSummary,
        TaskUpdate,
        WindowState,
    )
    from goalkeeper.plan_task import needs_plan
    from goalkeeper.planning import AddTasks
    from goalkeeper.progress import checkpoint_figures, compute_progress
    from goalkeeper.records import (
        CompileDeliverable,
        Event,
        EventKind,
        FinishGoal,
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
    from goalkeeper.reports import goal_error
    from goalkeeper.runbooks import Runbook, RunbookMatch, runbook_named
    from goalkeeper.scheduling import partition, topological_order
    from goalkeeper.statuses import GoalStatus, TaskStatus
    from goalkeeper.subgoals import progress_line, subgoal_id, told_end
    from goalkeeper.suggestions import SuggestFor
    from goalkeeper.validation import validate_goal_spec
    from monitoring import metrics
    from workflows import search_attributes as sa
    from workflows.budget import GoalBudget
    from workflows.messages import Undecodable, parse_message, reject_if, summarize_payload
    from workflows.options import DATABASE_RETRY, record, record_apart
    from workflows.partitions import PartitionSet
    from workflows.plans import FollowUp
    from workflows.runner import Added, TaskRunner
    from workflows.specs import load_specs
    from workflows.window import TaskWindow

PAGE_BYTES = 128 * 1024
"""Task specs written or read per activity call, as JSON."""

STORE_TIMEOUT = timedelta(minutes=10)
"""Validating and storing a spec stored by reference: 100,000 tasks take seconds."""
COMPILE_TIMEOUT = timedelta(minutes=5)
"""Compiling a deliverable: every result of a goal of any size, read a page at a time."""
SUGGEST_TIMEOUT = timedelta(minutes=1)
"""Reading a goal's record for suggestions: bounded queries, whatever its size."""

SIGNED_CONTROLS = "signed-controls"
"""The patch from which a goal's budget raises, stops, added tasks and retry decisions
are checked for signatures where it requires them."""

TELL_PARENT_EVERY = timedelta(seconds=1)
"""A sub-goal tells the goal it runs for how far it is at most this often."""

TOLD_AGENTS = 100
"""Agents a sub-goal names to its parent in one update (the parent counts agents)."""


@workflow.defn
class GoalWorkflow:
    """Validates a goal, runs its tasks as they become ready, and reports the outcome.

    Task workflows report their end as their result, and other changes by `task_update`
    signals, so the `progress` query is exact at every moment. At most
    `max_running_tasks` task workflows run at once. When Temporal suggests it, the goal
    continues as new with a compact state (a byte per task; the specs stay in
    PostgreSQL), and its next run adopts the tasks still running: they tell it how they
    end. When a task fails for good, the goal's `on_task_failure` policy decides what
    follows. How it runs its tasks, in one window or in partitions, is its `TaskRunner`'s.
    """

    @workflow.init
    def __init__(self, spec: Any = None, checkpoint: Any = None) -> None:
        info = workflow.info()
        self._goal_id = info.workflow_id
        self._run_id = info.first_execution_run_id
        self._header: GoalSpec | None = None
        self._runner: TaskRunner | None = None
        self._status = GoalStatus.RUNNING
        self._stage = "validating"
        self._shown: tuple[str, int] | None = None
        self._early_updates: list[TaskUpdate] = []
        self._signals = 0
        """Signals this run received, counted as each arrives: names its rejections."""
        self._checkpoint = GoalCheckpoint.model_validate(checkpoint) if checkpoint else None
        self._told = 0
        """Updates sent to the goal this one is a sub-goal of, in all runs."""
        self._last_told: tuple[str, int, float] | None = None
        self._told_at: datetime | None = None
        self._adopted_by: str | None = None
        """The run of the parent goal that took this sub-goal over, if one did."""
        self._budget: GoalBudget | None = None
        if self._checkpoint is not None:
            self._stage = "running"
            self._run_id = self._checkpoint.spec_ref.goal_run_id
            self._told = self._checkpoint.told
            self._adopted_by = self._checkpoint.adopted_by

    @workflow.run
    async def run(self, spec: Any = None, checkpoint: Any = None) -> GoalReport:
        if self._checkpoint is None:
            await self._begin(spec)
        else:
            await self._resume(self._checkpoint)
        assert self._header is not None
        runner = self._runner
        assert runner is not None
        self._budget = budget = GoalBudget(
            self._goal_id,
            self._run_id,
            self._header,
            self._checkpoint.budget if self._checkpoint else None,
            runner.halt,
            runner.wake,
        )
        self._stage = "running"
        runner.pause(budget.paused)  # a pause goes on after continue-as-new
        await runner.run(self._after_step, self._continue_as_new)
        return await self._finish()

    async def _after_step(self) -> timedelta | None:
        """Show the goal, hold it to its budget, tell the goal it runs for; returns how
        soon to look again when a deadline is due."""
        budget, runner = self._budget, self._runner
        assert budget is not None and runner is not None
        if not runner.closed:  # what the last task spent cannot pause a goal that has ended
            refused = runner.refused
            # PostgreSQL may count a report before the goal hears of it: its word holds.
            own = refused is not None and runner.refused_by == self._goal_id
            await budget.watch(*runner.spent(), refused=own)
            await budget.held(None if own else refused)
        runner.pause(budget.paused)
        self._show()
        return await self._tell_parent()

    def _agents(self) -> tuple[set[str], set[str]]:
        return self._runner.agent_ids() if self._runner else (set(), set())

    async def _tell_parent(self) -> timedelta | None:
        """A sub-goal tells the goal it runs for how far it is, when that changed, at most
        once per `TELL_PARENT_EVERY`; returns how long to wait when it is too soon."""
        header, parent = self._header, workflow.info().parent
        if header is None or header.parent is None or parent is None:
            return None
        progress = self.progress()
        told = (progress_line(progress), progress.tokens_used, progress.cost_usd)
        if told == self._last_told:
            return None
        now = workflow.now()
        if self._told_at is not None and now < self._told_at + TELL_PARENT_EVERY:
            return self._told_at + TELL_PARENT_EVERY - now
        self._last_told, self._told_at = told, now
        await self._tell(
            TaskSummary(
                task_id=header.parent.task_id,
                status=TaskStatus.ASSIGNED,
                tokens_used=progress.tokens_used,
                cost_usd=progress.cost_usd,
                goal_progress=told[0],
            )
        )
        return None

    async def _tell(self, task: TaskSummary) -> None:
        """Send the goal this one is a sub-goal of its task's state, numbered in turn."""
        header, parent = self._header, workflow.info().parent
        assert header is not None and header.parent is not None and parent is not None
        self._told += 1
        task.seq = self._told
        update = TaskUpdate(
            goal_run_id=header.parent.goal_run_id,
            task=task,
            agent_ids=sorted(self._agents()[0])[:TOLD_AGENTS],
        )
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "task_update", sealing.sealed("task_update", parent.workflow_id, update)
            )
        except Exception as exc:  # the parent ended or was terminated: nothing to tell
            workflow.logger.warning(f"could not tell goal {parent.workflow_id!r}: {exc}")

    @workflow.signal
    async def adopt(self, *payload: Any) -> None:
        """A later run of the goal this is a sub-goal of took it over: tell it the end."""
        request = sealing.opened(payload, Adopt, "adopt")
        if isinstance(request, str):
            await self._refuse_internal(request, payload)
        else:
            self._adopted_by = request.goal_run_id or None

    # Queries, signals and updates.

    @workflow.query
    def progress(self) -> Progress:
        """Progress derived from the task states now: completed / total, failures included."""
        header, runner, checkpoint = self._header, self._runner, self._checkpoint
        counts: dict[TaskStatus, int] = {}
        agents, completed = self._agents()
        cost, tokens = runner.spent() if runner else (0.0, 0)
        if runner is not None:
            counts = runner.totals()
        elif checkpoint is not None:  # the next run, its state not loaded yet
            counts, agents, completed, cost, tokens = checkpoint_figures(checkpoint)
        return compute_progress(
            self._goal_id,
            self._status,
            self._stage_now(),
            counts,
            agents_total=len(agents),
            agents_completed=len(completed),
            cost_usd=cost,
            tokens_used=tokens,
            on_task_failure=header.on_task_failure if header else "continue",
            tasks_added=runner.tasks_added if runner else 0,
            budget=self._budget.state
            if self._budget
            else (checkpoint.budget if checkpoint else None),
        )

    @workflow.query
    def tasks(self, query: Any = None) -> TaskPage:
        """A page of tasks with status, agent and assignment: `{"offset", "limit", "status"}`.

        Pages hold up to 1,000 tasks (100 by default); `total` and `next_offset` say
        what is left. Totals by status come from `progress`. A goal run in partitions
        lists its partition workflows instead, whose `tasks` queries page the same way.
        """
        parsed = TasksQuery.model_validate(query or {})
        if self._runner is not None:
            return self._runner.page(parsed)
        return TaskPage(
            goal_id=self._goal_id, offset=parsed.offset, limit=parsed.limit, total=0, tasks=[]
        )

    @workflow.signal
    async def task_update(self, *payload: Any) -> None:
        """A running task's new state, from its `TaskWorkflow`."""
        update = sealing.opened(payload, TaskUpdate, "task_update")
        if isinstance(update, str):
            await self._refuse_internal(update, payload)
        elif self._runner is None:
            self._early_updates.append(update)
        else:
            self._runner.task_update(update)

    @workflow.signal
    async def abort(self, *payload: Any) -> None:
        """Stop the goal and fail it: its running tasks are aborted, the rest skipped.

        The goal a sub-goal runs for sends this when it fails, as it would to a task.
        """
        request = sealing.opened(payload, Abort, "abort", legacy=lambda v: {"reason": str(v)})
        if isinstance(request, str):
            await self._refuse_internal(request, payload)
            return
        await workflow.wait_condition(self._ready)
        assert self._runner is not None
        self._runner.halt(f"aborted: {request.reason[:MAX_SHORT_REASON_CHARS]}")

    @workflow.signal
    async def partition_update(self, *payload: Any) -> None:
        """A partition's counts, from its `PartitionWorkflow`."""
        update = sealing.opened(payload, PartitionUpdate, "partition_update")
        if isinstance(update, str):
            await self._refuse_internal(update, payload)
        elif self._runner is not None:
            self._runner.partition_update(update)

    async def _refuse_internal(self, problem: str, payload: tuple[Any, ...]) -> None:
        """A message that poses as Goalkeeper's own: counted, and recorded like any refusal."""
        self._signals += 1
        received = self._signals
        metrics.rejected(workflow.metric_meter(), Rejected.INTERNAL)
        workflow.logger.warning(problem)
        await record_apart(
            ReadModelActivities.record_event,
            self._event(
                EventKind.MESSAGE_REJECTED,
                problem,
                {"payload": summarize_payload(payload)},
                key=(workflow.info().run_id, received),
            ),
            "record a refused message",
        )

    @workflow.signal(name="approval_decision")
    async def approval_decision(self, *payload: Any) -> None:
        """Under `ask_approver`: retry (approve) or give up (reject) a failed `task_id`."""
        self._signals += 1
        received = self._signals
        await workflow.wait_condition(self._ready)
        decision = await self._judge_signed_retry(payload)
        if isinstance(decision, str):
            metrics.rejected(workflow.metric_meter(), Rejected.DECISION)
            workflow.logger.warning(decision)
            await record_apart(
                ReadModelActivities.record_event,
                self._event(
                    EventKind.DECISION_REJECTED,
                    decision,
                    {"payload": summarize_payload(payload)},
                    key=(workflow.info().run_id, received),
                ),
                "record rejected decision",
            )
            return
        assert self._runner is not None
        await self._runner.take_retry_decision(decision)

    @workflow.update(name="decide")
    async def decide(self, *payload: Any) -> Progress:
        """`approval_decision`, answered: the goal's progress after it, or why it was rejected."""
        await workflow.wait_condition(self._ready)
        decision = await self._judge_signed_retry(payload)
        if isinstance(decision, str):
            metrics.rejected(workflow.metric_meter(), Rejected.DECISION)
            raise ApplicationError(decision, type="DecisionRejected", non_retryable=True)
        assert self._runner is not None
        await self._runner.take_retry_decision(decision)
        return self.progress()

    @decide.validator
    def _validate_decision(self, *payload: Any) -> None:
        if self._ready():  # before that, the handler judges once it can
            problem = self._judge_retry(payload)
            reject_if(metrics.refused(workflow.metric_meter(), Rejected.DECISION, problem))

    @workflow.update
    async def add_tasks(self, *payload: Any) -> Progress:
        """More work found while the goal runs: `{"tasks", "added_by", "reason"}`, checked
        like a spec's tasks; the goal's progress after them, or why they were refused."""
        await workflow.wait_condition(self._ready)
        runner = self._runner
        assert runner is not None
        first = self._judge_added(payload)
        if not isinstance(first, str):
            request = first[0]
            working = runner.agent_ids()[0]
            agents = [request.added_by] if request.added_by in working else []
            unsigned = await self._unsigned("add_tasks", request, request.added_by, agents)
            if unsigned is not None:
                metrics.rejected(workflow.metric_meter(), Rejected.ADD_TASKS)
                raise ApplicationError(unsigned, type="TasksRejected", non_retryable=True)
        problem = await runner.add_tasks(lambda: self._judge_added(payload))
        if problem is not None:
            metrics.rejected(workflow.metric_meter(), Rejected.ADD_TASKS)
            raise ApplicationError(problem, type="TasksRejected", non_retryable=True)
        return self.progress()

    @add_tasks.validator
    def _validate_add_tasks(self, *payload: Any) -> None:
        if self._ready():  # before that, the handler judges once it can
            problem = self._judge_added(payload)
            reject_if(metrics.refused(workflow.metric_meter(), Rejected.ADD_TASKS, problem))

    def _judge_added(self, payload: tuple[Any, ...]) -> Added:
        request = parse_message(payload, AddTasks, "add_tasks request")
        if isinstance(request, str):
            return request
        assert self._runner is not None
        tasks = self._runner.judge_added(request, self._status is GoalStatus.RUNNING)
        return tasks if isinstance(tasks, str) else (request, tasks)

    def _ready(self) -> bool:
        return self._budget is not None

    # Budgets: a raise or a stop, by one of the goal's approvers.

    @workflow.update
    async def raise_budget(self, *payload: Any) -> Progress:
        """`{"approver", "usd", "tokens", "comment"}`: a higher budget; a goal paused at its
        budget goes on. Only the goal's approvers (escalation levels included) may."""
        await workflow.wait_condition(self._ready)
        budget = self._budget
        assert budget is not None
        request = self._judge_raise(payload)
        if not isinstance(request, str):
            request = await self._unsigned("raise_budget", request, request.approver) or request
        if not isinstance(request, str):
            request = (
                await budget.take_raise(request, lambda: self._judge_raise(payload)) or request
            )
        if isinstance(request, str):
            metrics.rejected(workflow.metric_meter(), Rejected.BUDGET)
            raise ApplicationError(request, type="BudgetRaiseRejected", non_retryable=True)
        assert self._runner is not None
        self._runner.pause(budget.paused)
        self._runner.raised()
        return self.progress()

    @raise_budget.validator
    def _validate_raise_budget(self, *payload: Any) -> None:
        if self._ready():  # before that, the handler judges once it can
            problem = self._judge_raise(payload)
            reject_if(metrics.refused(workflow.metric_meter(), Rejected.BUDGET, problem))

    def _judge_raise(self, payload: tuple[Any, ...]) -> Any:
        assert self._budget is not None and self._runner is not None
        return self._budget.judge_raise(payload, self._status, self._runner.spent())

    @workflow.update
    async def stop(self, *payload: Any) -> Progress:
        """`{"approver", "comment"}`: stop the goal (at its budget, or any time); running
        tasks are aborted, the rest skipped, and the goal fails, saying who stopped it."""
        await workflow.wait_condition(self._ready)
        budget = self._budget
        assert budget is not None
        request = budget.judge_stop(payload, self._status)
        if not isinstance(request, str):
            request = await self._unsigned("stop", request, request.approver) or request
        if not isinstance(request, str):
            judge = lambda: budget.judge_stop(payload, self._status)  # noqa: E731
            request = await budget.take_stop(request, judge) or request
        if isinstance(request, str):
            metrics.rejected(workflow.metric_meter(), Rejected.BUDGET)
            raise ApplicationError(request, type="StopRejected", non_retryable=True)
        return self.progress()

    @stop.validator
    def _validate_stop(self, *payload: Any) -> None:
        if self._ready():
            assert self._budget is not None
            problem = self._budget.judge_stop(payload, self._status)
            reject_if(metrics.refused(workflow.metric_meter(), Rejected.BUDGET, problem))

    def _judge_retry(self, payload: tuple[Any, ...]) -> ApprovalDecision | str:
        decision = parse_message(payload, ApprovalDecision, "approval decision")
        if isinstance(decision, str):
            return decision
        assert self._runner is not None
        return self._runner.judge_retry(decision) or decision

    async def _judge_signed_retry(self, payload: tuple[Any, ...]) -> ApprovalDecision | str:
        """A retry decision judged, and its signature too where the goal requires one."""
        decision = self._judge_retry(payload)
        if isinstance(decision, str):
            return decision
        return await self._unsigned("retry", decision, decision.approver) or decision

    async def _unsigned(
        self, kind: str, request: Any, signer: str, agents: Sequence[str] = ()
    ) -> str | None:
        """Why a change to this goal is not signed by someone allowed to make it, where the
        goal requires signatures; the keys are read as they are now."""
        header = self._header
        assert header is not None
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
        problem = signed_control_problem(kind, self._goal_id, request, signer, approvers, agents)
        return problem or signing.control_problem(
            signers, kind, self._goal_id, request, signer, request.signed_by, request.signature
        )

    def _stage_now(self) -> str:
        if self._status is not GoalStatus.RUNNING or self._stage != "running":
            return self._stage
        runner, budget = self._runner, self._budget
        if runner is None:  # the next run, its state not loaded yet
            held = resumed_stage(self._checkpoint) if self._checkpoint else None
            return held or self._stage
        paused = budget.stage(*runner.spent()) if budget else None
        return runner.stage(paused) or self._stage

    # Starting, and starting again after continue-as-new.

    async def _begin(self, raw: Any) -> None:
        """Validate the spec, store it, and run its tasks itself or in partitions."""
        if isinstance(raw, Undecodable):
            await self._reject(f"invalid goal spec: {raw}", str(raw))
        if isinstance(raw, dict) and set(raw) == {"spec_ref"}:
            await self._begin_stored(str(raw["spec_ref"]))
            return
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
        spec = await self._validate(raw, runbook, candidates)
        await self._check_parent(spec, raw)
        self._header = header = spec.header()
        tasks = spec.tasks
        partitioned = len(tasks) > header.partition_size
        if partitioned:  # stored in dependency order, so partitions only look back
            pairs = [(t.id or "", t.depends_on) for t in tasks]
            tasks = [tasks[i] for i in topological_order(pairs)]
        pages = _pages(tasks)
        await record(
            ReadModelActivities.record_goal,
            RecordGoal(
                goal_id=self._goal_id,
                goal_run_id=self._run_id,
                header=header,
                tasks_total=len(tasks),
                tasks=pages[0][1],
                event=self._event(
                    EventKind.GOAL_STARTED,
                    goal_started_message(self._goal_id, header, len(tasks), partitioned),
                ),
            ),
            "record the goal",
        )
        for first, page in pages[1:]:
            await record(
                ReadModelActivities.record_tasks,
                RecordTasks(
                    goal_id=self._goal_id,
                    goal_run_id=self._run_id,
                    first_position=first,
                    tasks=page,
                ),
                f"record tasks {first + 1} to {first + len(page)}",
            )
        if partitioned:
            pairs = [(t.id or "", t.depends_on) for t in tasks]
            self._open(self._partitions_of(header, partition(pairs, header.partition_size)))
            return
        self._open(self._window_of(header, tasks))

    async def _resume(self, checkpoint: GoalCheckpoint) -> None:
        """Load the stored spec again and restore the state from the checkpoint."""
        ref = checkpoint.spec_ref
        self._header = header = await record(
            ReadModelActivities.load_goal, ref, "load the goal's spec"
        )
        if checkpoint.window is None:
            self._open(
                PartitionSet(
                    self._goal_id, self._run_id, header, checkpoint.partitions, checkpoint.failing
                )
            )
            return
        specs = await load_specs(
            LoadTasks(goal_id=self._goal_id, goal_run_id=self._run_id, start=0, end=ref.tasks_total)
        )
        self._open(self._window_of(header, specs, checkpoint.window))

    def _open(self, runner: TaskRunner) -> None:
        self._runner = runner
        for update in self._early_updates:
            runner.task_update(update)
        self._early_updates.clear()

    def _window_of(
        self, header: GoalSpec, specs: list[TaskSpec], state: WindowState | None = None
    ) -> TaskWindow:
        """The goal's tasks in one window; a compiling goal follows its last task up."""
        args = (self._goal_id, self._run_id, header, specs, header.max_running_tasks)
        window = TaskWindow(*args) if state is None else TaskWindow.restore(*args, state)
        if header.compile:
            window.follow_up = FollowUp(window)
        return window

    async def _validate(
        self, spec: Any, runbook: Runbook | None, candidates: list[RunbookMatch]
    ) -> GoalSpec:
        """Check the spec before anything runs; an invalid goal is recorded and fails at once."""
        try:
            return validate_goal_spec(spec, self._goal_id, runbook, candidates)
        except InvalidGoalSpec as exc:
            await self._reject(str(exc), spec)
            raise  # not reached: _reject fails the workflow

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
        if not started_by_goal(parent.goal_id, by) or self._goal_id != expected:
            await self._reject(
                f"invalid goal spec: parent: expected sub-goal {expected!r} started by goal "
                f"{parent.goal_id!r}, got {self._goal_id!r} started by "
                f"{'workflow ' + repr(by) if by else 'a client'}; sub-goals are started by "
                "their goal",
                raw,
            )

    async def _reject(self, error: str, spec: Any) -> NoReturn:
        self._status, self._stage = GoalStatus.REJECTED, "rejected"
        metrics.rejected(workflow.metric_meter(), Rejected.GOAL_INPUT)
        workflow.upsert_search_attributes([sa.GOAL_STATUS.value_set(self._status.value)])
        workflow.set_current_details(f"**Rejected**: {error}")
        await record(
            ReadModelActivities.record_rejected_goal,
            RecordRejectedGoal(
                goal_id=self._goal_id,
                first_run_id=self._run_id,
                raw_spec=summarize_payload((spec,), 4000),
                error=error[:MAX_EVENT_MESSAGE_CHARS],
                event=self._event(EventKind.GOAL_REJECTED, error[:MAX_EVENT_MESSAGE_CHARS]),
            ),
            "record rejected goal",
        )
        raise ApplicationError(error, type="InvalidGoalSpec", non_retryable=True) from None

    async def _begin_stored(self, spec_ref: str) -> None:
        """A spec stored by reference: an activity validates and stores it, the goal never
        holds it; its tasks run in partitions (or in a window, if few)."""
        stored: StoredGoal = await workflow.execute_activity_method(
            ReadModelActivities.store_goal,
            StoreGoal(
                spec_id=spec_ref,
                goal_id=self._goal_id,
                goal_run_id=self._run_id,
                event_id=fact_id("goal", self._run_id, EventKind.GOAL_STARTED, None),
            ),
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
            summary="validate and store the goal's spec",
        )
        if stored.error is not None or stored.header is None:
            await self._reject(stored.error or "invalid goal spec", {"spec_ref": spec_ref})
        header = stored.header
        assert header is not None
        await self._check_parent(header, {"spec_ref": spec_ref})
        self._header = header
        if stored.tasks_total <= header.partition_size:
            specs = await load_specs(
                LoadTasks(
                    goal_id=self._goal_id,
                    goal_run_id=self._run_id,
                    start=0,
                    end=stored.tasks_total,
                )
            )
            self._open(self._window_of(header, specs))
            return
        self._open(self._partitions_of(header, stored.partitions))

    def _partitions_of(
        self, header: GoalSpec, ranges: Sequence[tuple[int, int, list[int]]]
    ) -> PartitionSet:
        """The goal's tasks in partitions, each task range (start, end, after) its own."""
        return PartitionSet(
            self._goal_id,
            self._run_id,
            header,
            [
                PartitionState(index=n, start=start, end=end, after=after)
                for n, (start, end, after) in enumerate(ranges)
            ],
        )

    async def _continue_as_new(self) -> None:
        """Start a fresh run with the same state; no task of the goal's own runs across it.

        Returns instead when a handler asked the runner for work meanwhile: that first.
        """
        runner = self._runner
        assert runner is not None
        await record(
            ReadModelActivities.record_event,
            self._event(
                EventKind.GOAL_CONTINUED,
                f"goal {self._goal_id!r} continued as new after "
                f"{workflow.info().get_current_history_length()} history events",
                key=(workflow.info().run_id,),
            ),
            "record continue-as-new",
        )
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or runner.asked)
        if runner.asked:
            return
        total = self.progress().tasks_total
        ref = GoalRef(goal_id=self._goal_id, goal_run_id=self._run_id, tasks_total=total)
        checkpoint = runner.checkpoint(ref).model_copy(
            update={
                "told": self._told,
                "adopted_by": self._adopted_by,
                "budget": self._budget.state if self._budget else None,
            }
        )
        workflow.continue_as_new(args=[None, checkpoint.model_dump(mode="json")])

    # The end.

    async def _finish(self) -> GoalReport:
        """Settle the goal's status, record the report, and return it (or fail with it)."""
        header, runner = self._header, self._runner
        assert header is not None and runner is not None
        progress = self.progress()
        total = progress.tasks_total
        failing, unfinished = runner.failing, runner.unfinished(progress)
        error = goal_error(progress, header.on_task_failure, failing, unfinished, runner.unmet)
        self._status = GoalStatus.FAILED if error else GoalStatus.COMPLETED
        self._stage = "done"
        tasks = runner.task_reports()
        deliverable_bytes: int = await record(
            DeliverableActivities.compile_deliverable,
            CompileDeliverable(goal_id=self._goal_id, goal_run_id=self._run_id),
            "compile the deliverable",
            COMPILE_TIMEOUT,
        )
        report = GoalReport(
            goal_id=self._goal_id,
            title=header.title,
            status=self._status,
            progress=self.progress(),
            tasks=tasks,
            tasks_omitted=total - len(tasks),
            error=error,
            deliverable_bytes=deliverable_bytes,
        )
        await record(
            ReadModelActivities.finish_goal,
            FinishGoal(
                goal_id=self._goal_id,
                status=self._status,
                report=report,
                event=self._event(
                    EventKind.GOAL_FINISHED,
                    f"goal {self._goal_id!r} {self._status}: "
                    f"{report.progress.tasks_completed} of {report.progress.tasks_total} tasks "
                    "completed",
                ),
            ),
            "record goal report",
        )
        if self._budget is not None:
            await self._budget.close()
        await self._suggest()
        self._show()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if header.parent is not None and self._adopted_by == header.parent.goal_run_id:
            # The parent run that started this one is gone: the result reaches nobody.
            await self._tell(told_end(header.parent.task_id, report, ""))
        if failing:
            raise ApplicationError(
                f"goal {self._goal_id!r} failed: {error}",
                report,
                type="GoalFailed",
                non_retryable=True,
            )
        return report

    async def _suggest(self) -> None:
        """Look for improvements in the goal's record; advice never holds up its end."""
        if not workflow.patched("suggestions-at-end"):  # goals that ended before it
            return
        try:
            await workflow.execute_local_activity_method(
                SuggestionActivities.suggest_improvements,
                SuggestFor(goal_id=self._goal_id),
                start_to_close_timeout=SUGGEST_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="look for improvements",
            )
        except ActivityError as exc:
            workflow.logger.warning(f"no suggestions for goal {self._goal_id!r}: {exc.cause}")

    def _event(
        self,
        kind: EventKind,
        message: str,
        detail: dict[str, Any] | None = None,
        key: tuple[object, ...] = (),
    ) -> Event:
        """An event of this goal run, named by its kind and `key`, like a window's."""
        return goal_event(self._goal_id, self._run_id, kind, message, detail=detail, key=key)

    def _show(self) -> None:
        """Mirror progress in the Temporal UI: search attributes and a one-glance status."""
        progress = self.progress()
        # In halves: each upsert is a history event, so a goal makes three, not one per
        # task; the details below show the exact figure at every moment.
        shown = (self._status.value, int(progress.progress_percentage // 50))
        if shown != self._shown:
            updates: list[SearchAttributeUpdate[Any]] = [
                sa.GOAL_STATUS.value_set(self._status.value),
                sa.GOAL_PROGRESS.value_set(progress.progress_percentage),
            ]
            if self._shown is None and self._header is not None:
                updates.append(sa.GOAL_WORKSPACE.value_set(self._header.workspace))
            self._shown = shown
            workflow.upsert_search_attributes(updates)
        budget = self._budget
        spent = None
        if budget is not None and budget.limited:
            spent = budget.describe(progress.cost_usd, progress.tokens_used)
        notes = self._runner.task_notes() if self._runner else []
        workflow.set_current_details(current_details(progress, spent, notes))


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
