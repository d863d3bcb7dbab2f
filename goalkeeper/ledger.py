"""`TaskLedger`: a window's record of its tasks, as its goal's queries, report and UI read it.

The specs, the `Schedule`, a compact summary per task that has left `pending`, what
the tasks spent and which agents did them. The window (`workflows.runners.window`) changes it
as tasks start and end; what it is asked is answered here, with no Temporal call.
"""

from typing import Any

from goalkeeper.details import task_note
from goalkeeper.judging import retry_problem
from goalkeeper.models import (
    ApprovalDecision,
    GoalSpec,
    Progress,
    TaskPage,
    TaskReport,
    TaskSpec,
    TasksQuery,
    TaskSummary,
    WindowState,
)
from goalkeeper.records import Event, EventKind, goal_event
from goalkeeper.reports import reported, task_report, unfinished_tasks
from goalkeeper.scheduling import STATUSES, Plan, Schedule, ScheduleState
from goalkeeper.statuses import TaskStatus


class TaskLedger:
    """A goal's tasks (all of them, or one partition's), their schedule and summaries."""

    def __init__(
        self,
        goal_id: str,
        goal_run_id: str,
        header: GoalSpec,
        specs: list[TaskSpec],
        state: ScheduleState | None = None,
        summaries: dict[int, TaskSummary] | None = None,
        blocked: dict[str, str] | None = None,
    ) -> None:
        self.goal_id, self.goal_run_id, self.header = goal_id, goal_run_id, header
        self.specs = specs
        plan = Plan.build(((t.id or "", t.depends_on) for t in specs), blocked)
        policy = header.on_task_failure
        self.schedule = Schedule.restore(plan, policy, state) if state else Schedule(plan, policy)
        self.summaries: dict[int, TaskSummary] = dict(summaries or {})
        self.agents: set[str] = set()
        self.agents_completed: set[str] = set()
        self.tokens_used = sum(s.tokens_used for s in self.summaries.values())
        self.cost_usd = sum(s.cost_usd for s in self.summaries.values())
        self.subgoals: dict[int, TaskSummary] = {}
        """Tasks whose sub-goal runs, each as it was when that run started."""
        self.tasks_added = 0
        """Tasks that joined while the goal ran (its plan, `add_tasks`)."""

    def page(self, query: TasksQuery) -> TaskPage:
        """One page of task summaries in plan order, optionally of one status."""
        matching = (
            i
            for i in range(len(self.specs))
            if query.status is None or self.schedule.status_of(i) is query.status
        )
        total = 0
        tasks: list[TaskSummary] = []
        for i in matching:
            if query.offset <= total < query.offset + query.limit:
                tasks.append(self.summary(i))
            total += 1
        end = query.offset + len(tasks)
        return TaskPage(
            goal_id=self.goal_id,
            offset=query.offset,
            limit=query.limit,
            status=query.status,
            total=total,
            tasks=tasks,
            next_offset=end if end < total else None,
        )

    def summary(self, i: int) -> TaskSummary:
        return self.summaries.get(i) or TaskSummary(task_id=self.schedule.plan.ids[i])

    def position(self, task_id: str) -> int | None:
        return self.schedule.plan.index.get(task_id)

    def keep(self, i: int, summary: TaskSummary) -> None:
        """Hold `summary` as task `i`'s, its spend in the totals in place of the last one's."""
        old = self.summaries.get(i)
        if old is not None:
            self.tokens_used -= old.tokens_used
            self.cost_usd -= old.cost_usd
        self.summaries[i] = summary
        self.tokens_used += summary.tokens_used
        self.cost_usd += summary.cost_usd

    def totals(self) -> dict[TaskStatus, int]:
        return {s: self.schedule.count(s) for s in STATUSES}

    def spent(self) -> tuple[float, int]:
        """What the tasks have cost so far, in USD and tokens."""
        return self.cost_usd, self.tokens_used

    def agent_ids(self) -> tuple[set[str], set[str]]:
        """The agents given tasks here, and those that completed one."""
        return self.agents, self.agents_completed

    @property
    def failing(self) -> str | None:
        return self.schedule.failing

    def awaiting_retry(self) -> list[str]:
        """Failed tasks awaiting an approver's retry decision, by id."""
        return sorted(self.schedule.plan.ids[i] for i in self.schedule.retry_due)

    def judge_retry(self, decision: ApprovalDecision) -> str | None:
        """Why an approver's retry decision cannot count, or None."""
        i = self.position(decision.task_id or "")
        problem = retry_problem(
            self.goal_id,
            decision,
            self.header.approvers,
            [self.schedule.plan.ids[n] for n in self.schedule.retry_due],
            None if i is None else self.schedule.status_of(i).value,
        )
        if problem is None and i is not None and decision.attempt is not None:
            attempts = self.summary(i).attempts
            if decision.attempt != attempts:
                problem = (
                    f"decision rejected: it decides attempt {decision.attempt} of task "
                    f"{decision.task_id!r}, which failed at attempt {attempts}"
                )
        return problem

    def task_notes(self) -> list[str]:
        """What the UI should say about the running tasks that need attention."""
        running = sorted(self.schedule.running)
        notes = (task_note(self.summary(i), self.specs[i].title) for i in running)
        return [n for n in notes if n]

    def unfinished(self, progress: Progress) -> str:
        """The tasks that did not complete, for the goal's report (each one, by id)."""
        status_of = self.schedule.status_of
        return unfinished_tasks([(self.schedule.plan.ids[i], status_of(i)) for i in self._lost()])

    def task_reports(self) -> list[TaskReport]:
        """The report's lines: every task, or those that did not complete in a large goal."""
        shown = reported(self._lost(), len(self.specs))
        status_of = self.schedule.status_of
        return [task_report(self.summary(i), self.specs[i].title, status_of(i)) for i in shown]

    def _lost(self) -> list[int]:
        status_of = self.schedule.status_of
        return [i for i in range(len(self.specs)) if status_of(i) is not TaskStatus.COMPLETED]

    def state(self) -> WindowState:
        """What crosses continue-as-new; the next run adopts the tasks still running."""
        return WindowState(
            schedule=self.schedule.state(),
            tasks_added=self.tasks_added,
            tasks=self.summaries,
            agents=sorted(self.agents),
            agents_completed=sorted(self.agents_completed),
            subgoals=self.subgoals,
        )

    def deadline(self, spec: TaskSpec) -> int:
        return spec.report_deadline_seconds or self.header.report_deadline_seconds

    def silence(self, spec: TaskSpec) -> int:
        return spec.heartbeat_timeout_seconds or self.header.heartbeat_timeout_seconds

    def workflow_id(self, i: int) -> str:
        return f"{self.goal_id}/{self.specs[i].id}"

    def event(
        self,
        kind: EventKind,
        message: str,
        task_id: str | None = None,
        detail: dict[str, Any] | None = None,
        key: tuple[object, ...] = (),
    ) -> Event:
        """An event of this goal run about one of its tasks (`goalkeeper.records.goal_event`)."""
        return goal_event(self.goal_id, self.goal_run_id, kind, message, task_id, detail, key)
