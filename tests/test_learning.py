"""Agents that learn: records kept exactly, choice weighed by them, configs passed on."""

import asyncio
import json
import os
import random
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.assignment import AssignmentActivities
from goalkeeper.learning import (
    AgentRecord,
    Candidate,
    check_selection_mode,
    choose_agent,
    selection_rng,
)
from goalkeeper.records import EndAssignment, Event, EventKind
from goalkeeper.runbooks import RunbookMatch, parse_runbook, score_match
from goalkeeper.statuses import AssignmentStatus, GoalStatus, TaskStatus
from interfaces.agents import registry
from interfaces.agents.runner import AgentRunner, SimulatedWork
from store.runbooks import add_runbook, match_runbooks
from tests.helpers import (
    PATIENCE,
    ROOT,
    decide,
    goal_spec,
    one_row,
    report,
    start_goal,
    task_view,
    wait_task,
)
from tests.test_assignment import _assign, _goal, _request
from tests.test_runbooks import _run_goal, runbook_toml
from worker import build_worker

counts = st.integers(min_value=0, max_value=10_000)
records = st.builds(
    AgentRecord,
    first_tries=counts,
    first_try_completions=counts,
    completions=counts,
    failures=counts,
    lapses=counts,
    reworks=counts,
    ratings_good=counts,
    ratings_bad=counts,
)
agent_ids = st.text(alphabet="abcdefgh-0123456789", min_size=1, max_size=12)
candidate_lists = st.lists(
    st.builds(Candidate, agent_id=agent_ids, record=records, load=st.floats(0, 0.99)),
    max_size=8,
    unique_by=lambda c: c.agent_id,
)


# The choice, as plain Python.


@given(candidate_lists, st.integers())
def test_the_choice_is_a_candidate_or_none_only_when_nobody_has_a_record(
    candidates: list[Candidate], seed: int
) -> None:
    chosen = choose_agent(candidates, random.Random(seed))
    if any(c.record.observations for c in candidates):
        assert chosen in {c.agent_id for c in candidates}
    else:
        assert chosen is None


@given(candidate_lists, st.text(max_size=20), st.randoms(use_true_random=False))
def test_one_seed_gives_one_choice_whatever_the_order_of_the_candidates(
    candidates: list[Candidate], assignment_id: str, shuffler: random.Random
) -> None:
    first = choose_agent(candidates, selection_rng("seed", assignment_id))
    shuffled = list(candidates)
    shuffler.shuffle(shuffled)
    assert choose_agent(shuffled, selection_rng("seed", assignment_id)) == first


@given(records)
def test_a_record_weighs_every_observation_once(record: AgentRecord) -> None:
    assert record.successes >= 0 and record.failures_seen >= 0
    assert 0 < record.posterior_mean < 1
    more_good = AgentRecord(**asdict(record) | {"ratings_good": record.ratings_good + 1})
    more_bad = AgentRecord(**asdict(record) | {"ratings_bad": record.ratings_bad + 1})
    assert more_bad.posterior_mean < record.posterior_mean < more_good.posterior_mean
    lapsed = AgentRecord(**asdict(record) | {"lapses": record.lapses + 1})
    assert lapsed.posterior_mean < record.posterior_mean


def test_the_proven_agent_wins_most_draws_and_a_newcomer_still_wins_some() -> None:
    proven = Candidate("proven", AgentRecord(completions=27, failures=3))
    poor = Candidate("poor", AgentRecord(completions=3, failures=27))
    newcomer = Candidate("newcomer")
    wins = Counter(
        choose_agent([proven, poor, newcomer], selection_rng("s", str(n))) for n in range(2000)
    )
    assert wins["proven"] > 0.8 * 2000
    assert wins["newcomer"] > 0.05 * 2000  # Beta(1, 1) beats Beta(28, 4) about 1 draw in 8
    assert wins["newcomer"] > wins["poor"]
    assert wins.keys() <= {"proven", "poor", "newcomer"}


def test_a_rework_undoes_a_completion_and_counts_against_it() -> None:
    record = AgentRecord(first_tries=2, first_try_completions=2, completions=3, reworks=1)
    assert (record.successes, record.failures_seen, record.first_try_rate) == (2, 1, 1.0)
    assert AgentRecord(reworks=4).successes == 0
    assert AgentRecord().first_try_rate is None and AgentRecord().posterior_mean == 0.5


def test_bad_counts_and_modes_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"expected lapses to be a count >= 0, got -1"):
        AgentRecord(lapses=-1)
    with pytest.raises(ValueError, match=r"expected agent selection .* got 'best'"):
        check_selection_mode("best")
    with pytest.raises(ValueError, match=r"got 'best'"):
        AssignmentActivities(None, selection="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"for flaky, got 1.5"):
        SimulatedWork(success_rates={"flaky": 1.5})


async def test_the_schema_weighs_a_record_as_the_core_does(pool: asyncpg.Pool) -> None:
    samples = [
        AgentRecord(),
        AgentRecord(completions=5, reworks=7, ratings_good=2, failures=1),
        AgentRecord(completions=9, failures=2, lapses=1, ratings_bad=3, ratings_good=1),
    ]
    for record in samples:
        columns = ", ".join(f"{value} AS {name}" for name, value in asdict(record).items())
        mean = await pool.fetchval(
            "SELECT goalkeeper_record_mean(r) FROM (SELECT NULL::text AS agent_id, "
            f"NULL::text AS skill, {columns}, now() AS updated_at) r"
        )
        assert mean == pytest.approx(record.posterior_mean)


# Records, kept by the schema as attempts end and people give feedback.


async def _records(pool: asyncpg.Pool, workspace: str) -> dict[tuple[str, str], dict[str, int]]:
    rows = await pool.fetch(
        "SELECT r.* FROM agent_records r JOIN agents g USING (agent_id) WHERE g.workspace = $1",
        workspace,
    )
    return {(r["agent_id"], r["skill"]): {k: r[k] for k in asdict(AgentRecord())} for r in rows}


def _counts(**fields: int) -> dict[str, int]:
    return asdict(AgentRecord(**fields))


async def test_attempts_are_counted_once_each_however_they_end(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    for name in ("a", "b"):
        await registry.register_agent(pool, f"{workspace}-{name}", workspace, ["data"])
    spec = goal_spec(
        workspace=workspace,
        tasks=[
            {"id": "first", "title": "Done at once", "skill": "data"},
            {"id": "retry", "title": "Failed, then done", "skill": "data", "depends_on": ["first"]},
            {
                "id": "lapse",
                "title": "Never reported, then done",
                "skill": "data",
                "depends_on": ["retry"],
                # Silence, not a report deadline: only an attempt that heartbeated can go
                # silent, so the attempt after it keeps however long its report takes.
                "heartbeat_timeout_seconds": 1,
            },
        ],
    )
    handle = await start_goal(client, spec, task_queue)
    expected: dict[str, Counter[str]] = {f"{workspace}-{n}": Counter() for n in ("a", "b")}

    view = await wait_task(client, handle.id, "first", TaskStatus.ASSIGNED)
    await report(client, view)
    expected[view.agent_id or ""].update(first_tries=1, first_try_completions=1, completions=1)

    failed = await wait_task(client, handle.id, "retry", TaskStatus.ASSIGNED, attempt=1)
    await report(client, failed, "failed", error="could not")
    again = await wait_task(client, handle.id, "retry", TaskStatus.ASSIGNED, attempt=2)
    assert again.agent_id != failed.agent_id  # who failed it is not asked again
    await report(client, again)
    expected[failed.agent_id or ""].update(first_tries=1, failures=1)
    expected[again.agent_id or ""].update(completions=1)

    silent = await wait_task(client, handle.id, "lapse", TaskStatus.ASSIGNED, attempt=1)
    await client.get_workflow_handle(f"{handle.id}/lapse").signal(
        "agent_heartbeat", {"agent_id": silent.agent_id, "assignment_id": silent.assignment_id}
    )
    after = await wait_task(client, handle.id, "lapse", TaskStatus.ASSIGNED, attempt=2)
    await report(client, after)
    expected[silent.agent_id or ""].update(first_tries=1, lapses=1)
    expected[after.agent_id or ""].update(completions=1)
    assert (await handle.result()).status is GoalStatus.COMPLETED

    # A retried end of an attempt changes no count.
    done = await task_view(client, handle.id, "first")
    retried = EndAssignment(
        assignment_id=done.assignment_id or "",
        status=AssignmentStatus.COMPLETED,
        task=done,
        event=Event(event_id=str(uuid.uuid4()), kind=EventKind.TASK_COMPLETED, message="again"),
    )
    await ActivityEnvironment().run(AssignmentActivities(pool).end_assignment, retried)
    assert await _records(pool, workspace) == {
        (agent_id, "data"): _counts(**seen) for agent_id, seen in expected.items() if seen
    }


async def test_rejections_and_ratings_count_for_the_agent_whose_work_it_was(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    agent_id = f"{workspace}-writer"
    await registry.register_agent(pool, agent_id, workspace, ["writing"])
    spec = goal_spec(
        workspace=workspace,
        approvers=["ops-lead"],
        tasks=[{"id": "t1", "title": "Draft", "skill": "writing", "requires_approval": True}],
    )
    handle = await start_goal(client, spec, task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=1)
    await report(client, view)
    await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, "t1", "ops-lead", "reject", "too long")
    rework = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert rework.agent_id == agent_id  # rework goes back to the agent that did the work
    await report(client, rework)
    await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, "t1", "ops-lead", "approve")
    assert (await handle.result()).status is GoalStatus.COMPLETED

    async def feedback(task_id: str | None, rating: int | None, **fields: Any) -> None:
        await pool.execute(
            "INSERT INTO feedback (feedback_id, goal_id, task_id, assignment_id, agent_id, "
            "person, rating, comment, source) VALUES ($1, $2, $3, $4::uuid, $5, 'ana', $6, '', "
            "'person')",
            uuid.uuid4(),
            handle.id,
            task_id,
            fields.get("assignment_id"),
            fields.get("agent_id"),
            rating,
        )

    await feedback("t1", 5, assignment_id=rework.assignment_id)  # the agent found by attempt
    await feedback("t1", 4, agent_id=agent_id)
    await feedback("t1", 1, agent_id=agent_id)
    await feedback("t1", 3, agent_id=agent_id)  # neither good nor bad
    await feedback("t1", None, agent_id=agent_id)  # a comment alone
    await feedback(None, 1)  # about the whole goal: no agent's record
    await feedback("t1", 2, agent_id="nobody-we-know")

    assert await _records(pool, workspace) == {
        (agent_id, "writing"): _counts(
            first_tries=1,
            first_try_completions=1,
            completions=2,
            reworks=1,
            ratings_good=2,
            ratings_bad=1,
        )
    }


# Choice on the real stack, with simulated agents of known success rates.


@asynccontextmanager
async def _team(
    client: Client, pool: asyncpg.Pool, workspace: str, rates: Mapping[str, float]
) -> AsyncIterator[None]:
    """Agents of the given success rates, room for every task, answering at once."""
    ids = [f"{workspace}-{name}" for name in rates]
    for agent_id in ids:
        await registry.register_agent(pool, agent_id, workspace, ["data"], capacity=4)
    hook = SimulatedWork(
        delay=(0, 0),
        seed=workspace,
        success_rates={f"{workspace}-{name}": rate for name, rate in rates.items()},
    )
    runner = AgentRunner(client, pool, ids, hook, sweep_interval=3600)
    stop = asyncio.Event()
    serving = asyncio.create_task(runner.run(stop))
    try:
        yield
    finally:
        stop.set()
        await serving
        await registry.take_offline(pool, ids)


async def _first_tries(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str, tasks: int
) -> Counter[str]:
    """Run a goal of `tasks` tasks one at a time; who made each task's first attempt."""
    spec = goal_spec(
        workspace=workspace,
        max_running_tasks=1,  # each choice sees every record before it
        max_attempts=2,  # a task two agents failed fails, rather than wait for a new agent
        tasks=[{"id": f"t{i}", "title": f"T{i}", "skill": "data"} for i in range(tasks)],
    )
    handle = await start_goal(client, spec, task_queue)
    await asyncio.wait_for(handle.result(), PATIENCE)
    rows = await pool.fetch(
        "SELECT agent_id FROM assignments WHERE goal_id = $1 AND attempt = 1", handle.id
    )
    return Counter(r["agent_id"].removeprefix(f"{workspace}-") for r in rows)


async def test_learned_choice_gives_the_better_agent_most_work_and_tries_a_newcomer(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    # In 20,000 simulated runs of these two goals (the same choice, outcomes drawn at
    # random), no run missed either bar.
    async with _team(client, pool, workspace, {"good": 0.7, "poor": 0.1}):
        before = await _first_tries(client, pool, task_queue, workspace, 50)
    assert before["good"] > 25, before
    async with _team(client, pool, workspace, {"good": 0.7, "poor": 0.1, "new": 0.95}):
        after = await _first_tries(client, pool, task_queue, workspace, 50)
    assert after["new"] >= 3, after
    records = await _records(pool, workspace)
    assert sum(r["first_tries"] for r in records.values()) == 100


async def test_least_loaded_choice_ignores_records(
    client: Client, workspace: str, pool: asyncpg.Pool
) -> None:
    queue = f"test-least-{workspace}"
    team = _team(client, pool, workspace, {"good": 1.0, "poor": 1.0})
    async with build_worker(client, pool, queue, selection="least_loaded"), team:
        for name, field in (("good", "completions"), ("poor", "failures")):
            await pool.execute(
                f"INSERT INTO agent_records (agent_id, skill, {field}) VALUES ($1, 'data', 100)",
                f"{workspace}-{name}",
            )
        tries = await _first_tries(client, pool, queue, workspace, 12)
    # Each task goes to whoever was assigned longest ago, turn and turn about.
    assert tries == {"good": 6, "poor": 6}


# Provisioning copies the configuration of the skill's best agent.


async def test_a_provisioned_agent_copies_the_config_of_its_skills_best_agent(
    pool: asyncpg.Pool, workspace: str
) -> None:
    configs = {"ace": {"model": "large", "prompt": "be brief"}, "rookie": {"model": "small"}}
    for name, config in configs.items():
        await registry.register_agent(pool, f"{workspace}-{name}", workspace, ["data"], 1, config)
    await registry.register_agent(pool, f"{workspace}-other", workspace, ["sales"], 1, {"x": 1})

    async def record(name: str, skill: str, **fields: int) -> None:
        values = asdict(AgentRecord(**fields))
        await pool.execute(
            f"INSERT INTO agent_records (agent_id, skill, {', '.join(values)}) "
            f"VALUES ($1, $2, {', '.join(f'${i + 3}' for i in range(len(values)))})",
            f"{workspace}-{name}",
            skill,
            *values.values(),
        )

    await record("ace", "data", completions=8, failures=1)
    await record("rookie", "data", completions=2)  # a perfect record, too short to copy
    await record("other", "sales", completions=50)

    async def provision(skill: str) -> asyncpg.Record:
        agent_id = f"auto-{skill}-{uuid.uuid4().hex[:8]}"
        await pool.execute(
            "INSERT INTO agents (agent_id, workspace, skills, provisioned) "
            "VALUES ($1, $2, $3, true)",
            agent_id,
            workspace,
            [skill],
        )
        return await one_row(pool, "SELECT * FROM agents WHERE agent_id = $1", agent_id)

    copied = await provision("data")
    assert (copied["config"], copied["config_from"]) == (configs["ace"], f"{workspace}-ace")
    assert (await provision("research"))["config"] == {}  # nobody to learn from
    # A registered agent keeps the config it was given, and the one it had when given none.
    await registry.register_agent(pool, f"{workspace}-rookie", workspace, ["data"])
    rookie = await one_row(
        pool, "SELECT config FROM agents WHERE agent_id = $1", f"{workspace}-rookie"
    )
    assert rookie["config"] == configs["rookie"]


async def test_an_agent_provisioned_by_assignment_works_with_the_copied_config(
    pool: asyncpg.Pool, workspace: str
) -> None:
    ace = f"{workspace}-ace"
    await registry.register_agent(pool, ace, workspace, ["data"], 1, {"model": "large"})
    await pool.execute(
        "INSERT INTO agent_records (agent_id, skill, completions) VALUES ($1, 'data', 5)", ace
    )
    await registry.take_offline(pool, [ace])  # so the task needs a new agent
    goal_id = await _goal(pool, workspace, 1)
    assignment = await _assign(pool, _request(goal_id, "t0", workspace))
    assert assignment.provisioned
    agent = await one_row(
        pool, "SELECT config, config_from FROM agents WHERE agent_id = $1", assignment.agent_id
    )
    assert (agent["config"], agent["config_from"]) == ({"model": "large"}, ace)
    [row] = await registry.active_assignments(pool, [], workspace)
    assert row["config"] == {"model": "large"}  # what its runner hands the hook


# Runbooks learn from their goals' outcomes and ratings.


def test_ratings_weigh_on_a_runbooks_score_like_its_outcomes() -> None:
    def scored(ratings: int, rating_sum: int) -> RunbookMatch:
        return score_match(
            name="r",
            version=1,
            title="",
            text_rank=0.5,
            runs=4,
            completed=2,
            failed=2,
            ratings=ratings,
            rating_sum=rating_sum,
        )

    unrated, loved, hated = scored(0, 0), scored(8, 40), scored(8, 8)
    assert unrated.rating_factor == 1.0 and unrated.average_rating is None
    assert hated.score < unrated.score < loved.score < 3 * hated.score
    assert (loved.average_rating, hated.average_rating) == (5.0, 1.0)
    assert scored(2, 6).score == unrated.score  # rated a neutral 3: as if unrated


async def _cli(database_url: str, *args: str, as_json: bool = True) -> Any:
    """Run `starter.py ...` as a person would; its output (parsed, with `--json`)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        *args,
        *(["--json"] if as_json else []),
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), PATIENCE)
    assert process.returncode == 0, err.decode()
    return json.loads(out) if as_json else out.decode()


async def test_a_runbooks_rating_comes_from_feedback_on_its_goals_and_feeds_matching(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str, database_url: str
) -> None:
    word = f"q{uuid.uuid4().hex[:8]}"
    liked = parse_runbook(runbook_toml(f"{word}-liked", word), "liked.toml")
    disliked = liked.model_copy(update={"name": f"{word}-disliked"})  # the same text
    goals = {}
    for runbook in (liked, disliked):
        await add_runbook(pool, runbook)
        await _run_goal(client, pool, task_queue, runbook, workspace)
        goals[runbook.name] = await pool.fetchval(
            "SELECT goal_id FROM goals WHERE spec->>'runbook' = $1", runbook.name
        )
    for name, task_id, rating in (
        (liked.name, None, 5),  # the whole goal
        (liked.name, "announce", 4),
        (liked.name, "plan", None),  # a comment alone
        (disliked.name, None, 1),
    ):
        await pool.execute(
            "INSERT INTO feedback (feedback_id, goal_id, task_id, person, rating, source) "
            "VALUES ($1, $2, $3, 'ana', $4, 'person')",
            uuid.uuid4(),
            goals[name],
            task_id,
            rating,
        )
    found = {m.name: m for m in await match_runbooks(pool, f"the {word} rollout", limit=10)}
    best, worst = found[liked.name], found[disliked.name]
    assert best.text_rank == worst.text_rank and best.success_rate == worst.success_rate
    assert (best.ratings, best.average_rating, worst.ratings, worst.average_rating) == (
        2,
        4.5,
        1,
        1.0,
    )
    assert best.score == pytest.approx(best.text_rank * (0.5 + 2 / 3) * (0.5 + 2.75 / 4))
    assert worst.score < best.score

    listed = {r["name"]: r for r in await _cli(database_url, "runbook", "list")}
    assert (listed[liked.name]["average_rating"], listed[liked.name]["success_rate"]) == (
        4.5,
        pytest.approx(2 / 3),
    )
    matched = await _cli(database_url, "runbook", "match", f"the {word} rollout")
    # Other tests' runbooks may match "rollout" too: the order of this test's two counts.
    ours = [m["name"] for m in matched if m["name"] in (liked.name, disliked.name)]
    assert ours == [liked.name, disliked.name]


async def test_agent_list_shows_each_agents_record_per_skill(
    pool: asyncpg.Pool, workspace: str, database_url: str
) -> None:
    agent_id = f"{workspace}-ana"
    await registry.register_agent(pool, agent_id, workspace, ["data", "writing"], 2, {"m": 1})
    await pool.execute(
        "INSERT INTO agent_records (agent_id, skill, first_tries, first_try_completions, "
        "completions, failures, reworks) VALUES ($1, 'data', 4, 3, 5, 1, 1)",
        agent_id,
    )
    [listed] = await _cli(database_url, "agent", "list", "--workspace", workspace)
    assert (listed["agent_id"], listed["config"]) == (agent_id, {"m": 1})
    [record] = listed["records"]
    assert record | {"score": 0} == {
        "skill": "data",
        **_counts(first_tries=4, first_try_completions=3, completions=5, failures=1, reworks=1),
        "first_try_rate": 0.75,
        "successes": 4,
        "failures_seen": 2,
        "score": 0,
    }
    assert record["score"] == pytest.approx(5 / 8)
    text = await _cli(database_url, "agent", "list", "--workspace", workspace, as_json=False)
    [line] = [line for line in text.splitlines() if line.startswith(f"{agent_id}  data")]
    assert line.split() == [agent_id, "data", "75%", "3/4", "5", "1", "0", "1", "0/0", "0.62"]
