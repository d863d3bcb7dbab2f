"""Runbooks: parsing and expansion in the core, storage and matching in PostgreSQL, and
goals expanded from them by the real workflow."""

import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError

from goalkeeper.errors import InvalidGoalSpec, InvalidRunbook
from goalkeeper.runbooks import Runbook, parse_runbook, score_match
from goalkeeper.statuses import GoalStatus
from goalkeeper.validation import validate_goal_spec
from store.runbooks import add_runbook, fetch_runbook, match_runbooks
from tests.helpers import ROOT, SimulatedAgents, events, new_goal_id, start_goal

SHIPPED = sorted((ROOT / "runbooks").glob("*.toml"))


def runbook_toml(name: str, word: str, version: int = 1, extra: str = "") -> str:
    """A small runbook whose text holds `word`, so a test can match it alone."""
    return f"""
name = "{name}"
version = {version}
title = "Prepare the {word} rollout"
description = "Everything a {word} rollout needs."
tags = ["{word}", "rollout"]
guidance = "Mention {{region}} in every result."

[[parameters]]
name = "region"
default = "EU"

[[parameters]]
name = "owner"

[[tasks]]
id = "plan"
title = "Plan the {word} rollout in {{region}} for {{owner}}"
skill = "planning-{word}"
guidance = "Name a date."

[[tasks]]
id = "announce"
title = "Announce the {word} rollout"
skill = "writing"
depends_on = ["plan"]
{extra}
"""


def test_shipped_runbooks_parse_and_expand_with_their_defaults() -> None:
    assert {p.stem for p in SHIPPED} >= {"campaign", "research-report", "data-import"}
    for path in SHIPPED:
        runbook = parse_runbook(path.read_text(), str(path))
        required = {p.name: "x" for p in runbook.parameters if p.default is None}
        spec = validate_goal_spec(
            {"title": "t", "runbook": runbook.name, "parameters": required}, "g", runbook
        )
        assert [t.id for t in spec.tasks] == [t.id for t in runbook.tasks]
        assert all("{" not in t.title for t in spec.tasks)


def test_expansion_fills_parameters_and_records_version_and_guidance() -> None:
    runbook = parse_runbook(runbook_toml("rb", "zebra"), "rb.toml")
    spec = validate_goal_spec(
        {"title": "t", "runbook": "rb", "parameters": {"owner": "ops", "region": "US"}},
        "g",
        runbook,
    )
    assert spec.tasks[0].title == "Plan the zebra rollout in US for ops"
    assert spec.tasks[0].guidance == "Name a date."
    assert spec.guidance == "Mention US in every result."
    assert spec.runbook_version == 1
    assert spec.parameters == {"owner": "ops", "region": "US"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"parameters": {"owner": "x", "colour": "red"}}, "['colour'] are not parameters"),
        ({"parameters": {}}, "needs ['owner'], which have no default"),
        ({"parameters": {"owner": "x"}, "runbook_version": 2}, "expected runbook 'rb' version 2"),
        (
            {"parameters": {"owner": "x"}, "tasks": [{"title": "a", "skill": "b"}]},
            "expected no tasks of its own, got 1",
        ),
        ({"parameters": {"owner": "x" * 600}}, "at most 500 characters"),
    ],
)
def test_bad_uses_of_a_runbook_name_the_problem(fields: dict[str, Any], expected: str) -> None:
    runbook = parse_runbook(runbook_toml("rb", "zebra"), "rb.toml")
    with pytest.raises(InvalidGoalSpec, match=re.escape(expected)):
        validate_goal_spec({"title": "t", "runbook": "rb", **fields}, "g", runbook)


def test_a_goal_naming_no_stored_runbook_is_invalid() -> None:
    with pytest.raises(InvalidGoalSpec, match="no runbook 'nope' is stored"):
        validate_goal_spec({"title": "t", "runbook": "nope"}, "g", None)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("{owner}", "{ownr}"), r"uses \{ownr\}, which is not a parameter"),
        (('depends_on = ["plan"]', 'depends_on = ["plann"]'), "'plann' is not another task"),
        (("version = 1", "version = 0"), "version: Input should be greater than or equal to 1"),
        (('id = "announce"', 'id = "plan"'), "duplicate task id 'plan'"),
        (("[[tasks]]", "[[tasks"), "not valid TOML"),
        (("{region} for", "{region for"), r"tasks\[0\]\.title: unexpected '\{' in field name"),
    ],
)
def test_bad_runbooks_name_file_and_field(change: tuple[str, str], expected: str) -> None:
    text = runbook_toml("rb", "zebra").replace(*change, 1)
    with pytest.raises(InvalidRunbook, match=expected) as raised:
        parse_runbook(text, "runbooks/rb.toml")
    assert str(raised.value).startswith("runbooks/rb.toml: ")


def test_history_weighs_on_text_but_never_makes_a_match() -> None:
    fresh = score_match(name="a", version=1, title="", text_rank=0.5, runs=0, completed=0, failed=0)
    proven = score_match(
        name="b", version=1, title="", text_rank=0.5, runs=8, completed=8, failed=0
    )
    failing = score_match(
        name="c", version=1, title="", text_rank=0.5, runs=8, completed=0, failed=8
    )
    assert failing.score < fresh.score < proven.score
    assert proven.score < 3 * failing.score
    assert fresh.success_rate == 0.5
    unmatched = score_match(
        name="d", version=1, title="", text_rank=0.0, runs=9, completed=9, failed=0
    )
    assert unmatched.score == 0


async def test_versions_are_kept_and_never_change(pool: asyncpg.Pool) -> None:
    name = f"rb-{uuid.uuid4().hex[:8]}"
    first = parse_runbook(runbook_toml(name, "walrus"), "a.toml")
    assert await add_runbook(pool, first) is True
    assert await add_runbook(pool, first) is False  # the same version again: unchanged
    changed = parse_runbook(runbook_toml(name, "walrus", extra="requires_approval = false"), "b")
    changed = changed.model_copy(update={"title": "Another title"})
    with pytest.raises(InvalidRunbook, match="versions never change, so expected version 2"):
        await add_runbook(pool, changed)
    await add_runbook(pool, changed.model_copy(update={"version": 2}))
    latest = await fetch_runbook(pool, name)
    assert latest is not None and (latest.version, latest.title) == (2, "Another title")
    older = await fetch_runbook(pool, name, 1)
    assert older is not None and older.title == first.title


async def test_match_ranks_by_text_and_success_history(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    word = f"q{uuid.uuid4().hex[:8]}"
    strong = parse_runbook(runbook_toml(f"{word}-strong", word), "s.toml")
    weak_text = strong.model_copy(
        update={"name": f"{word}-weak", "title": "Prepare a rollout", "tags": ["rollout"]}
    )
    for runbook in (strong, weak_text):
        await add_runbook(pool, runbook)
    matches = await match_runbooks(pool, f"we need the {word} rollout done", limit=10)
    names = [m.name for m in matches if m.name.startswith(word)]
    assert names == [strong.name, weak_text.name]
    before = {m.name: m for m in matches}
    assert all(before[n].runs == 0 and before[n].success_rate == 0.5 for n in names)

    # Two completed goals from the weaker text raise its score; its text rank stays.
    for _ in range(2):
        await _run_goal(client, pool, task_queue, weak_text, workspace)
    matches = await match_runbooks(pool, f"we need the {word} rollout done", limit=10)
    after = {m.name: m for m in matches}
    weak = after[weak_text.name]
    assert (weak.runs, weak.completed, weak.failed, weak.success_rate) == (2, 2, 0, 0.75)
    assert weak.text_rank == before[weak_text.name].text_rank
    assert weak.score == pytest.approx(before[weak_text.name].score * 1.25, rel=1e-3)
    assert after[strong.name] == before[strong.name]
    assert await match_runbooks(pool, "xylophone-nothing-matches") == []


async def _run_goal(
    client: Client, pool: asyncpg.Pool, task_queue: str, runbook: Runbook, workspace: str
) -> None:
    goal_id = new_goal_id()
    spec = {
        "title": "From a runbook",
        "workspace": workspace,
        "runbook": runbook.name,
        "parameters": {"owner": "ops"},
    }
    handle = await start_goal(client, spec, task_queue, goal_id)
    async with SimulatedAgents(client, pool, goal_id):
        report = await handle.result()
    assert report.status is GoalStatus.COMPLETED


async def test_goal_from_a_runbook_runs_its_tasks_and_agents_get_its_guidance(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    name = f"rb-{uuid.uuid4().hex[:8]}"
    await add_runbook(pool, parse_runbook(runbook_toml(name, "okapi"), "r.toml"))
    goal_id = new_goal_id()
    spec = {
        "title": "Okapi rollout",
        "workspace": workspace,
        "runbook": name,
        "parameters": {"owner": "ops", "region": "APAC"},
    }
    handle = await start_goal(client, spec, task_queue, goal_id)
    async with SimulatedAgents(client, pool, goal_id):
        report = await handle.result()
    assert report.status is GoalStatus.COMPLETED
    assert [t.task_id for t in report.tasks] == ["plan", "announce"]
    context = await pool.fetchval(
        "SELECT context FROM assignments WHERE goal_id = $1 AND task_id = 'plan'", goal_id
    )
    assert context["goal"]["guidance"] == "Mention APAC in every result."
    assert (context["goal"]["runbook"], context["goal"]["runbook_version"]) == (name, 1)
    assert context["task"]["title"] == "Plan the okapi rollout in APAC for ops"
    assert context["task"]["guidance"] == "Name a date."
    started = await events(pool, goal_id, "goal_started")
    assert f"from runbook '{name}' version 1" in started[0]["message"]


async def test_a_goal_naming_an_unknown_runbook_is_rejected_and_recorded(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    goal_id = new_goal_id()
    handle = await start_goal(
        client, {"title": "t", "runbook": "no-such-runbook"}, task_queue, goal_id
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "no runbook 'no-such-runbook' is stored" in str(failed.value.cause)
    row = await pool.fetchrow("SELECT status, error FROM goals WHERE goal_id = $1", goal_id)
    assert row is not None and row["status"] == "rejected"
    assert "no-such-runbook" in row["error"]


def test_shipped_files_are_what_the_docs_name() -> None:
    concepts = Path(ROOT / "docs" / "concepts.md").read_text()
    for path in SHIPPED:
        assert f"runbooks/{path.name}" in concepts
