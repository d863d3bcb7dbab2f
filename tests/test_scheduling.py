"""The scheduling core, directly and by property: no Temporal, no database."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.progress import percentage
from goalkeeper.scheduling import Plan, Schedule, ScheduleError, topological_order
from goalkeeper.statuses import TaskStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TERMINAL = [s for s in TaskStatus if s.is_terminal]


def random_tasks(n: int, seed: int, max_deps: int = 3) -> list[tuple[str, list[str]]]:
    """`n` tasks, each depending on up to `max_deps` earlier ones (so no cycle)."""
    rng = random.Random(seed)
    tasks: list[tuple[str, list[str]]] = []
    for i in range(n):
        k = rng.randint(0, min(i, max_deps))
        deps = sorted({f"t{rng.randrange(max(0, i - 50), i)}" for _ in range(k)}) if i else []
        tasks.append((f"t{i}", deps))
    rng.shuffle(tasks)  # any order: the schedule must not rely on it
    return tasks


def drive(
    tasks: list[tuple[str, list[str]]], policy: str, seed: int, window: int
) -> tuple[Schedule, dict[int, int]]:
    """Run a schedule to its end with random outcomes, checking every invariant on the way."""
    rng = random.Random(seed)
    plan = Plan.build(tasks)
    schedule = Schedule(plan, policy)
    ends: dict[int, int] = {}
    retries: dict[int, int] = {}
    completed_before = 0
    steps = 0
    while not schedule.ended:
        steps += 1
        assert steps < 20 * len(plan) + 100, "the schedule does not make progress"
        for i in schedule.next_to_start(window):
            for d in plan.deps[i]:
                assert schedule.status_of(d) is TaskStatus.COMPLETED, "started before a dependency"
            schedule.change(i, TaskStatus.ASSIGNED)
        assert len(schedule.running) <= window
        if schedule.retry_due and (not schedule.running or rng.random() < 0.3):
            i = rng.choice(sorted(schedule.retry_due))
            if rng.random() < 0.5 and retries.get(i, 0) < 2:
                retries[i] = retries.get(i, 0) + 1
                schedule.retry(i)
            else:
                for s, _ in schedule.give_up(i).skipped:
                    ends[s] = ends.get(s, 0) + 1
            continue
        if not schedule.running:
            assert schedule.ended or schedule.ready, "nothing runs, nothing is ready"
            continue
        i = rng.choice(sorted(schedule.running))
        outcome = TaskStatus.COMPLETED if rng.random() < 0.8 else TaskStatus.FAILED
        ended = schedule.end(i, outcome, retry_due=NOW + timedelta(hours=1))
        ends[i] = ends.get(i, 0) + 1
        for s, why in ended.skipped:
            assert why.startswith("skipped:")
            ends[s] = ends.get(s, 0) + 1
        for a in ended.abort:
            schedule.end(a, TaskStatus.SKIPPED)
            ends[a] = ends.get(a, 0) + 1
        completed = schedule.count(TaskStatus.COMPLETED)
        assert completed >= completed_before, "progress went back"
        completed_before = completed
        assert sum(schedule.counts) == len(plan)
    for i in range(len(plan)):
        assert schedule.status_of(i).is_terminal
        assert ends.get(i, 0) == 1 + retries.get(i, 0), f"task {plan.ids[i]} ended {ends.get(i)}x"
    recount = {s: sum(1 for i in range(len(plan)) if schedule.status_of(i) is s) for s in TERMINAL}
    assert all(schedule.count(s) == n for s, n in recount.items()), "totals are not exact"
    return schedule, ends


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=120),
    seed=st.integers(min_value=0, max_value=2**32),
    policy=st.sampled_from(["continue", "fail_goal", "ask_approver"]),
    window=st.integers(min_value=1, max_value=20),
)
def test_every_task_ends_once_after_its_dependencies(
    n: int, seed: int, policy: str, window: int
) -> None:
    drive(random_tasks(n, seed), policy, seed, window)


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), policy=st.sampled_from(["continue"]))
def test_a_hundred_thousand_tasks(seed: int, policy: str) -> None:
    tasks = random_tasks(100_000, seed, max_deps=2)
    schedule, _ = drive(tasks, policy, seed, window=100)
    total = len(tasks)
    done = schedule.count(TaskStatus.COMPLETED)
    assert 0 < done <= total
    assert percentage(done, total) == round(100 * done / total + 1e-9, 1)


def test_restore_gives_the_same_schedule() -> None:
    tasks = random_tasks(300, 7)
    plan = Plan.build(tasks)
    schedule = Schedule(plan, "ask_approver")
    rng = random.Random(1)
    for _ in range(40):
        for i in schedule.next_to_start(10):
            schedule.change(i, TaskStatus.ASSIGNED)
        i = rng.choice(sorted(schedule.running))
        schedule.end(i, rng.choice([TaskStatus.COMPLETED, TaskStatus.FAILED]), NOW)
    state = schedule.state()
    again = Schedule.restore(
        Plan.build(tasks), "ask_approver", state.model_validate_json(state.model_dump_json())
    )
    assert again.status == schedule.status and again.counts == schedule.counts
    assert again.running == schedule.running and again.retry_due == schedule.retry_due
    assert again.waiting == schedule.waiting
    assert sorted(again.ready) == sorted(i for i in schedule.ready if schedule.status[i] == 0)
    # A state of 100,000 tasks stays far below Temporal's payload limits.
    big = Schedule(Plan.build(random_tasks(100_000, 3)), "continue").state()
    assert len(big.model_dump_json()) < 150 * 1024


def test_a_lost_dependency_skips_the_chain_in_one_batch() -> None:
    plan = Plan.build([("a", []), ("b", ["a"]), ("c", ["b"]), ("d", [])])
    schedule = Schedule(plan)
    assert schedule.next_to_start(5) == [0, 3]
    ended = schedule.end(0, TaskStatus.FAILED)
    assert [(plan.ids[i], why) for i, why in ended.skipped] == [
        ("b", "skipped: dependency 'a' failed"),
        ("c", "skipped: dependency 'b' skipped"),
    ]
    assert not schedule.ended
    schedule.end(3, TaskStatus.COMPLETED)
    assert schedule.ended


def test_retry_of_the_last_failed_task_keeps_the_goal_open() -> None:
    plan = Plan.build([("a", []), ("b", [])])
    schedule = Schedule(plan, "ask_approver")
    schedule.next_to_start(5)
    schedule.end(0, TaskStatus.COMPLETED)
    schedule.end(1, TaskStatus.FAILED, retry_due=NOW)
    assert not schedule.ended
    schedule.retry(1)
    assert not schedule.ended and schedule.next_to_start(5) == [1]
    with pytest.raises(ScheduleError):
        schedule.retry(1)


def test_two_retries_granted_back_to_back_both_run() -> None:
    plan = Plan.build([("a", []), ("b", []), ("c", ["a", "b"])])
    schedule = Schedule(plan, "ask_approver")
    schedule.next_to_start(5)
    schedule.end(0, TaskStatus.FAILED, retry_due=NOW)
    schedule.end(1, TaskStatus.FAILED, retry_due=NOW)
    schedule.retry(0)
    schedule.retry(1)
    assert sorted(schedule.next_to_start(5)) == [0, 1]
    schedule.end(0, TaskStatus.COMPLETED)
    schedule.end(1, TaskStatus.COMPLETED)
    assert schedule.next_to_start(5) == [2]


def test_fail_goal_aborts_running_and_skips_the_rest() -> None:
    plan = Plan.build([(f"t{i}", []) for i in range(5)])
    schedule = Schedule(plan, "fail_goal")
    assert schedule.next_to_start(2) == [0, 1]
    ended = schedule.end(0, TaskStatus.FAILED)
    assert ended.abort == [1]
    assert [i for i, _ in ended.skipped] == [2, 3, 4]
    assert schedule.next_to_start(5) == []
    schedule.end(1, TaskStatus.SKIPPED)
    assert schedule.ended and schedule.count(TaskStatus.SKIPPED) == 4


def test_blocked_tasks_are_skipped_with_their_dependents() -> None:
    plan = Plan.build([("x", ["outside"]), ("y", ["x"]), ("z", [])], blocked={"x": "lost"})
    schedule = Schedule(plan)
    ended = schedule.start_blocked()
    assert [plan.ids[i] for i, _ in ended.skipped] == ["x", "y"]
    assert schedule.next_to_start(5) == [2]


def test_topological_order_puts_dependencies_first() -> None:
    tasks = random_tasks(2_000, 11)
    order = topological_order(tasks)
    position = {tasks[i][0]: p for p, i in enumerate(order)}
    assert sorted(order) == list(range(len(tasks)))
    for task_id, deps in tasks:
        assert all(position[d] < position[task_id] for d in deps)
    with pytest.raises(ScheduleError):
        topological_order([("a", ["b"]), ("b", ["a"])])
