"""Which tasks run next, and what a task's end means for the others.

Pure Python, no Temporal and no I/O: a goal (or one partition of a large goal) keeps
a `Schedule` and applies what its methods return. Every method costs in proportion to
what changed, never to the size of the goal: ready tasks come from a dependents index,
and the counts that progress is made of are kept as tasks change.
"""

import base64
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from goalkeeper.statuses import TaskStatus

STATUSES: tuple[TaskStatus, ...] = tuple(TaskStatus)
"""Task statuses by their one-byte code in a schedule."""

_CODE = {status: code for code, status in enumerate(STATUSES)}
_PENDING = _CODE[TaskStatus.PENDING]
_COMPLETED = _CODE[TaskStatus.COMPLETED]
_LOST = (_CODE[TaskStatus.FAILED], _CODE[TaskStatus.SKIPPED])


@dataclass(frozen=True)
class Plan:
    """The tasks of a goal (or partition) in order, with the dependents index.

    `blocked` names tasks that can never start because a dependency outside the plan
    (in an earlier partition) did not complete, with the reason.
    """

    ids: tuple[str, ...]
    deps: tuple[tuple[int, ...], ...]
    dependents: tuple[tuple[int, ...], ...]
    index: dict[str, int] = field(repr=False)
    blocked: dict[int, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls, tasks: Iterable[tuple[str, Sequence[str]]], blocked: dict[str, str] | None = None
    ) -> "Plan":
        """A plan from `(task_id, depends_on)` pairs; dependencies outside it are ignored."""
        pairs = list(tasks)
        ids = tuple(task_id for task_id, _ in pairs)
        index = {task_id: i for i, task_id in enumerate(ids)}
        deps = tuple(tuple(index[d] for d in depends_on if d in index) for _, depends_on in pairs)
        dependents: list[list[int]] = [[] for _ in ids]
        for i, own in enumerate(deps):
            for d in own:
                dependents[d].append(i)
        return cls(
            ids=ids,
            deps=deps,
            dependents=tuple(tuple(d) for d in dependents),
            index=index,
            blocked={index[t]: why for t, why in (blocked or {}).items() if t in index},
        )

    def __len__(self) -> int:
        return len(self.ids)

    def extend(self, tasks: Iterable[tuple[str, Sequence[str]]]) -> "Plan":
        """The plan with more tasks at its end (they may depend on any task of it)."""
        return Plan.build(
            [
                *zip(self.ids, ([self.ids[d] for d in own] for own in self.deps), strict=True),
                *tasks,
            ],
            {self.ids[i]: why for i, why in self.blocked.items()},
        )


class ScheduleState(BaseModel):
    """A schedule in a form that crosses continue-as-new: a byte per task, not a model."""

    statuses: str
    """Base64 of one status code per task, in plan order."""
    running: list[int] = []
    retry_due: dict[int, datetime] = {}
    failing: str | None = None

    def counts(self) -> dict[TaskStatus, int]:
        """Tasks in each status, read from the bytes alone (no plan needed)."""
        codes = base64.b64decode(self.statuses)
        return {status: codes.count(code) for status, code in _CODE.items()}


@dataclass
class Ended:
    """What a task's end means for the others: each list is for the shell to act on."""

    skipped: list[tuple[int, str]] = field(default_factory=list)
    """Tasks that can no longer run, with why; now `skipped`."""
    abort: list[int] = field(default_factory=list)
    """Running tasks to stop because the goal is failing."""
    retry_requested: bool = False
    """The task failed and waits for an approver's retry decision."""


class ScheduleError(ValueError):
    """A change that the schedule's state does not allow (a bug in the caller)."""


class Schedule:
    """The state of every task of a plan, the ready queue, and counts by status.

    `policy` is the goal's `on_task_failure`: `continue` skips what depended on a
    failed task, `fail_goal` stops everything, `ask_approver` holds the failed task's
    dependents until an approver decides whether to retry it.
    """

    def __init__(self, plan: Plan, policy: str = "continue") -> None:
        self.plan = plan
        self.policy = policy
        self.status = bytearray(len(plan))
        self.waiting = [len(d) for d in plan.deps]
        self.counts = [0] * len(STATUSES)
        self.counts[_PENDING] = len(plan)
        self.running: set[int] = set()
        self.retry_due: dict[int, datetime] = {}
        self.failing: str | None = None
        self.ready: deque[int] = deque(
            i for i in range(len(plan)) if self.waiting[i] == 0 and i not in plan.blocked
        )

    # Reading.

    def status_of(self, i: int) -> TaskStatus:
        return STATUSES[self.status[i]]

    def count(self, status: TaskStatus) -> int:
        return self.counts[_CODE[status]]

    @property
    def ended(self) -> bool:
        """Every task ended, and no failed one waits for a retry decision."""
        done = sum(self.counts[_CODE[s]] for s in STATUSES if s.is_terminal)
        return done == len(self.plan) and not self.retry_due

    # Changing.

    def start_blocked(self) -> Ended:
        """Skip the tasks whose outside dependencies were lost; call once, before starting."""
        ended = Ended()
        for i, why in sorted(self.plan.blocked.items()):
            if self.status[i] == _PENDING and i not in self.running:
                self._set(i, TaskStatus.SKIPPED)
                ended.skipped.append((i, why))
                self._lose(i, ended)
        return ended

    def add(self, tasks: Sequence[tuple[str, Sequence[str]]]) -> Ended:
        """Tasks added to a running goal (a plan, `add_tasks`): pending, and ready if their
        dependencies have completed; skipped at once if one will never complete."""
        if self.failing is not None:
            raise ScheduleError(f"the goal is failing ({self.failing}); nothing can be added")
        start = len(self.plan)
        self.plan = self.plan.extend(tasks)
        self.status.extend(bytes(len(tasks)))
        self.counts[_PENDING] += len(tasks)
        self.waiting.extend(
            sum(1 for d in self.plan.deps[i] if self.status[d] != _COMPLETED)
            for i in range(start, len(self.plan))
        )
        ended = Ended()
        for i in range(start, len(self.plan)):
            lost = [
                d for d in self.plan.deps[i] if self.status[d] in _LOST and d not in self.retry_due
            ]
            if self.status[i] != _PENDING:
                continue  # skipped already, by a cascade from an earlier one of these
            if lost:
                self._set(i, TaskStatus.SKIPPED)
                why = f"skipped: dependency {self.plan.ids[lost[0]]!r} {self.status_of(lost[0])}"
                ended.skipped.append((i, why))
                self._lose(i, ended)
            elif self.waiting[i] == 0:
                self.ready.append(i)
        return ended

    def next_to_start(self, window: int) -> list[int]:
        """Tasks to start now, oldest ready first, keeping `window` tasks running at most."""
        started: list[int] = []
        while self.ready and len(self.running) < window and self.failing is None:
            i = self.ready.popleft()
            if self.status[i] != _PENDING or i in self.running:
                continue  # skipped, or granted a retry twice over: already handled
            self.running.add(i)
            started.append(i)
        return started

    def hold_back(self, positions: Sequence[int]) -> None:
        """Tasks taken to start that could not (no agent may be given): ready again, first
        in line, in their order."""
        for i in reversed(positions):
            if i in self.running and self.status[i] == _PENDING:
                self.running.discard(i)
                self.ready.appendleft(i)

    def change(self, i: int, status: TaskStatus) -> None:
        """A running task moved to another non-terminal status (assigned, awaiting approval)."""
        if status.is_terminal:
            raise ScheduleError(f"use end() for the terminal status {status}")
        if i not in self.running:
            raise ScheduleError(f"task {self.plan.ids[i]!r} is not running")
        self._set(i, status)

    def end(self, i: int, status: TaskStatus, retry_due: datetime | None = None) -> Ended:
        """A task ended: free its place, and work out what follows for its dependents.

        Args:
            retry_due: under `ask_approver`, when the approvers' retry decision is due.
        """
        if not status.is_terminal:
            raise ScheduleError(f"end() needs a terminal status, got {status}")
        if i not in self.running:
            raise ScheduleError(f"task {self.plan.ids[i]!r} is not running; it cannot end")
        self.running.discard(i)
        self._set(i, status)
        ended = Ended()
        if status is TaskStatus.COMPLETED:
            for d in self.plan.dependents[i]:
                self.waiting[d] -= 1
                if self.waiting[d] == 0 and self.status[d] == _PENDING:
                    self.ready.append(d)
        elif status is TaskStatus.FAILED and self.policy == "fail_goal":
            self.fail(f"task {self.plan.ids[i]!r} failed", ended)
        elif status is TaskStatus.FAILED and self.policy == "ask_approver":
            if retry_due is None:
                raise ScheduleError("ask_approver needs the retry decision's due time")
            self.retry_due[i] = retry_due
            ended.retry_requested = True
        else:
            self._lose(i, ended)
        return ended

    def fail(self, reason: str, ended: Ended | None = None) -> Ended:
        """Stop the goal: abort what runs, skip what has not started."""
        ended = ended or Ended()
        if self.failing is not None:
            return ended
        self.failing = reason
        ended.abort.extend(sorted(self.running))
        why = f"skipped: goal failed ({reason})"
        for i in range(len(self.plan)):
            if self.status[i] == _PENDING and i not in self.running:
                self._set(i, TaskStatus.SKIPPED)
                ended.skipped.append((i, why))
        # Failed tasks still waiting for a retry decision will not get one.
        self.retry_due.clear()
        return ended

    def retry(self, i: int) -> None:
        """An approver granted a retry: the failed task is pending again, ready at once."""
        if i not in self.retry_due:
            raise ScheduleError(f"task {self.plan.ids[i]!r} is not awaiting a retry decision")
        del self.retry_due[i]
        self._set(i, TaskStatus.PENDING)
        self.ready.appendleft(i)

    def give_up(self, i: int) -> Ended:
        """An approver declined a retry, or nobody decided in time: the task stays failed."""
        if i not in self.retry_due:
            raise ScheduleError(f"task {self.plan.ids[i]!r} is not awaiting a retry decision")
        del self.retry_due[i]
        ended = Ended()
        self._lose(i, ended)
        return ended

    def cancel(self, i: int, why: str) -> Ended:
        """A person cancelled a task that has not started: skipped, and what depends on it
        too, as when a failed task is given up. A running task ends through `end`."""
        if self.status[i] != _PENDING or i in self.running:
            raise ScheduleError(
                f"task {self.plan.ids[i]!r} is {self.status_of(i)} and "
                f"{'running' if i in self.running else 'not running'}; expected one not started"
            )
        self._set(i, TaskStatus.SKIPPED)
        ended = Ended(skipped=[(i, why)])
        self._lose(i, ended)
        return ended

    def overdue(self, now: datetime) -> list[int]:
        """Failed tasks whose retry decision is past due, oldest first."""
        due = self.retry_due
        return sorted((i for i, at in due.items() if at <= now), key=lambda i: due[i])

    def next_due(self) -> datetime | None:
        return min(self.retry_due.values(), default=None)

    def _lose(self, i: int, ended: Ended) -> None:
        """Skip everything that depended, directly or not, on a task that will not complete."""
        stack = [i]
        while stack:
            lost = stack.pop()
            for d in self.plan.dependents[lost]:
                if self.status[d] == _PENDING and d not in self.running:
                    self._set(d, TaskStatus.SKIPPED)
                    why = f"skipped: dependency {self.plan.ids[lost]!r} {self.status_of(lost)}"
                    ended.skipped.append((d, why))
                    stack.append(d)

    def _set(self, i: int, status: TaskStatus) -> None:
        self.counts[self.status[i]] -= 1
        self.status[i] = _CODE[status]
        self.counts[self.status[i]] += 1

    # Crossing continue-as-new.

    def state(self) -> ScheduleState:
        return ScheduleState(
            statuses=base64.b64encode(bytes(self.status)).decode(),
            running=sorted(self.running),
            retry_due=dict(self.retry_due),
            failing=self.failing,
        )

    @classmethod
    def restore(cls, plan: Plan, policy: str, state: ScheduleState) -> "Schedule":
        """The schedule as it was; waiting counts and the ready queue are derived again."""
        schedule = cls.__new__(cls)
        schedule.plan, schedule.policy = plan, policy
        schedule.status = bytearray(base64.b64decode(state.statuses))
        if len(schedule.status) != len(plan):
            raise ScheduleError(
                f"a state of {len(schedule.status)} tasks does not fit a plan of {len(plan)}"
            )
        schedule.counts = [0] * len(STATUSES)
        for code in schedule.status:
            schedule.counts[code] += 1
        schedule.running = set(state.running)
        schedule.retry_due = dict(state.retry_due)
        schedule.failing = state.failing
        schedule.waiting = [
            sum(1 for d in deps if schedule.status[d] != _COMPLETED) for deps in plan.deps
        ]
        schedule.ready = deque(
            i
            for i in range(len(plan))
            if schedule.status[i] == _PENDING
            and schedule.waiting[i] == 0
            and i not in schedule.running
            and i not in plan.blocked
        )
        return schedule


def topological_order(tasks: Sequence[tuple[str, Sequence[str]]]) -> list[int]:
    """Positions of the tasks with every task after its dependencies, stable otherwise.

    Large goals are cut into partitions along this order, so a partition only ever
    depends on partitions before it. Assumes no cycle (validation rejects those).
    """
    index = {task_id: i for i, (task_id, _) in enumerate(tasks)}
    waiting = [len(deps) for _, deps in tasks]
    dependents: list[list[int]] = [[] for _ in tasks]
    for i, (_, deps) in enumerate(tasks):
        for dep in deps:
            dependents[index[dep]].append(i)
    queue: deque[int] = deque(i for i, n in enumerate(waiting) if n == 0)
    order: list[int] = []
    while queue:
        i = queue.popleft()
        order.append(i)
        for d in dependents[i]:
            waiting[d] -= 1
            if waiting[d] == 0:
                queue.append(d)
    if len(order) != len(tasks):
        raise ScheduleError("the tasks' dependencies form a cycle")
    return order


def partition(
    tasks: Sequence[tuple[str, Sequence[str]]], size: int
) -> list[tuple[int, int, list[int]]]:
    """Cut tasks, already in topological order, into ranges of `size`.

    Returns `(start, end, after)` per partition, `after` naming the earlier partitions
    that hold dependencies of its tasks: it may start once they have ended.
    """
    home = {task_id: n // size for n, (task_id, _) in enumerate(tasks)}
    parts: list[tuple[int, int, list[int]]] = []
    for start in range(0, len(tasks), size):
        end = min(start + size, len(tasks))
        index = start // size
        after = {home[d] for _, deps in tasks[start:end] for d in deps} - {index}
        parts.append((start, end, sorted(after)))
    return parts


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """Return one dependency cycle as a path that ends where it starts, or None.

    Iterative, so a goal with a long chain of tasks cannot exhaust the stack.
    """
    done: set[str] = set()
    for root in graph:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        pending = [iter(graph.get(root, []))]
        while pending:
            dependency = next(pending[-1], None)
            if dependency is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                pending.pop()
                continue
            if dependency in on_path:
                return [*path[path.index(dependency) :], dependency]
            if dependency not in done:
                path.append(dependency)
                on_path.add(dependency)
                pending.append(iter(graph.get(dependency, [])))
    return None
