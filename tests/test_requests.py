"""Requests end to end: a question triaged by an agent into an answer or a goal."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError

from goalkeeper.requests import RequestView
from goalkeeper.runbooks import parse_runbook
from goalkeeper.statuses import GoalStatus, RequestStatus
from interfaces.agents.runner import SimulatedWork, Work, WorkResult
from interfaces.starting import cancel_request
from store.runbooks import add_runbook
from tests.helpers import PATIENCE, events, eventually, one_row, running_agents
from tests.test_runbooks import runbook_toml
from workflows.request import RequestWorkflow

SKILLS = ("triage", "research", "writing", "writing-x")


async def ask(client: Client, task_queue: str, question: str, **fields: Any) -> RequestView:
    request_id = f"request-{uuid.uuid4().hex[:8]}"
    spec = {"question": question, **fields}
    handle = await client.start_workflow(
        RequestWorkflow.run, spec, id=request_id, task_queue=task_queue
    )
    return await asyncio.wait_for(handle.result(), PATIENCE)


async def test_a_simple_question_is_answered_without_a_goal(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), SKILLS):
        view = await ask(client, task_queue, "What is our refund policy?", workspace=workspace)
    assert (view.status, view.kind, view.goal_id) == (RequestStatus.ANSWERED, "answer", None)
    assert view.answer and "refund policy" in view.answer
    row = await one_row(pool, "SELECT * FROM requests WHERE request_id = $1", view.request_id)
    assert (row["status"], row["kind"], row["answer"]) == ("answered", "answer", view.answer)
    assert row["reason"] == view.reason and "words" in row["reason"]
    ended = await events(pool, view.request_id, "request_ended")
    assert f"why: {view.reason}" in ended[0]["message"]
    goals = [w async for w in client.list_workflows(f'WorkflowId = "{view.request_id}.goal"')]
    assert goals == []


async def test_a_complex_question_becomes_a_goal_from_the_matching_runbook(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    word = f"w{uuid.uuid4().hex[:8]}"
    runbook = parse_runbook(runbook_toml(f"{word}-rollout", word), "r.toml")
    await add_runbook(pool, runbook)
    skills = (*SKILLS, f"planning-{word}")
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), skills):
        view = await ask(
            client,
            task_queue,
            # Only this runbook holds the word: others made by tests share the rest.
            f"Do the {word} work for all of the people, please, as soon as it can be done",
            workspace=workspace,
        )
    assert (view.status, view.kind, view.goal_status) == (
        RequestStatus.COMPLETED,
        "goal",
        GoalStatus.COMPLETED.value,
    )
    assert view.goal_id == f"{view.request_id}.goal"
    assert view.reason and runbook.name in view.reason
    goal = await one_row(pool, "SELECT * FROM goals WHERE goal_id = $1", view.goal_id)
    assert goal["spec"]["runbook"] == runbook.name and goal["workspace"] == workspace
    tasks = await pool.fetch("SELECT task_id, status FROM tasks WHERE goal_id = $1", view.goal_id)
    assert {(t["task_id"], t["status"]) for t in tasks} == {
        ("plan", "completed"),
        ("announce", "completed"),
    }
    triage = await one_row(
        pool,
        "SELECT context FROM assignments WHERE goal_id = $1 AND task_id = 'triage'",
        f"{view.request_id}.triage",
    )
    candidates = triage["context"]["task"]["inputs"]["runbook_candidates"]
    assert candidates[0]["name"] == runbook.name and candidates[0]["parameters"]
    kinds = [e["kind"] for e in await events(pool, view.request_id)]
    assert kinds == ["request_started", "request_triaged", "request_ended"]


async def test_a_question_no_runbook_fits_becomes_a_goal_of_its_own_tasks(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    # Words no runbook holds, so the simulated triage proposes tasks of its own.
    question = f"Zorblat the {uuid.uuid4().hex} quux with vorpal snickersnee and jabberwock"
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), SKILLS):
        view = await ask(client, task_queue, question, workspace=workspace)
    assert view.status is RequestStatus.COMPLETED and view.kind == "goal"
    assert view.reason == "it needs several steps and no runbook fits it"
    ids = await pool.fetch("SELECT task_id FROM tasks WHERE goal_id = $1", view.goal_id)
    assert {r["task_id"] for r in ids} == {"research", "write-up"}


class InvalidThenValid:
    """A triage agent whose first verdict proposes a goal with no tasks."""

    def __init__(self, valid_from: int) -> None:
        self.valid_from = valid_from
        self.seen: list[Work] = []

    async def __call__(self, work: Work) -> WorkResult:
        self.seen.append(work)
        if work.attempt < self.valid_from:
            return WorkResult({"kind": "goal", "goal": {"title": "No tasks"}})
        return WorkResult({"kind": "answer", "answer": "fixed", "reason": "on second thought"})


async def test_an_invalid_triage_is_sent_back_with_the_reason_then_accepted(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    hook = InvalidThenValid(valid_from=2)
    async with running_agents(client, pool, workspace, hook, SKILLS):
        view = await ask(client, task_queue, "Is this fine?", workspace=workspace)
    assert view.status is RequestStatus.ANSWERED and view.answer == "fixed"
    second = hook.seen[-1]
    assert second.attempt == 2 and second.agent_id == hook.seen[0].agent_id
    feedback = second.context["rework"][0]
    assert feedback["approver"] == "goalkeeper"
    assert (
        "expected at least one task, a runbook, or a description to plan from"
        in feedback["comment"]
    )
    invalid = await events(pool, f"{view.request_id}.triage", "result_invalid")
    assert len(invalid) == 1 and "the proposed goal is invalid" in invalid[0]["message"]


async def test_a_triage_that_never_validates_fails_the_request_visibly(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    hook = InvalidThenValid(valid_from=99)
    async with running_agents(client, pool, workspace, hook, SKILLS):
        view = await ask(client, task_queue, "Is this fine?", workspace=workspace, max_attempts=2)
    assert view.status is RequestStatus.FAILED and view.kind is None
    assert view.error and "triage failed" in view.error
    assert "a description to plan from" in view.error
    row = await one_row(pool, "SELECT * FROM requests WHERE request_id = $1", view.request_id)
    assert row["status"] == "failed" and row["error"] == view.error
    assert len(hook.seen) == 2


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"question": "  "}, "question: String should have at least 1 character"),
        ({"question": "q", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ("just text", "Input should be a valid dictionary or instance of RequestSpec"),
    ],
)
async def test_an_invalid_request_is_rejected_and_recorded(
    client: Client, pool: asyncpg.Pool, task_queue: str, spec: Any, expected: str
) -> None:
    request_id = f"request-{uuid.uuid4().hex[:8]}"
    with pytest.raises(WorkflowFailureError) as failed:
        await client.execute_workflow(
            RequestWorkflow.run, spec, id=request_id, task_queue=task_queue
        )
    assert expected in str(failed.value.cause)
    row = await one_row(pool, "SELECT * FROM requests WHERE request_id = $1", request_id)
    assert row["status"] == "rejected" and expected in row["error"]
    assert (await events(pool, request_id, "request_rejected"))[0]["message"] == row["error"]


async def test_a_request_whose_goal_id_is_taken_fails_and_says_so(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    request_id = f"request-{uuid.uuid4().hex[:8]}"
    squatter = await client.start_workflow(
        "GoalWorkflow",
        {"title": "Left running", "workspace": workspace, "tasks": [{"title": "t", "skill": "x"}]},
        id=f"{request_id}.triage",
        task_queue=task_queue,
    )
    handle = await client.start_workflow(
        RequestWorkflow.run,
        {"question": "Anything?", "workspace": workspace},
        id=request_id,
        task_queue=task_queue,
    )
    view = await asyncio.wait_for(handle.result(), PATIENCE)
    assert view.status is RequestStatus.FAILED
    assert view.error and f"goal '{request_id}.triage' is already running" in view.error
    await squatter.terminate("test over")


async def test_a_canceled_request_aborts_its_running_goal_and_ends_canceled(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    word = f"w{uuid.uuid4().hex[:8]}"
    runbook = parse_runbook(
        runbook_toml(f"{word}-rollout", word, extra="requires_approval = true"), "r.toml"
    )
    await add_runbook(pool, runbook)
    skills = (*SKILLS, f"planning-{word}")
    request_id = f"request-{uuid.uuid4().hex[:8]}"
    goal_id = f"{request_id}.goal"
    spec = {
        "question": f"Do the {word} work for all of the people, please, as soon as it can be done",
        "workspace": workspace,
        "approvers": ["lead"],
    }
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), skills):
        handle = await client.start_workflow(
            RequestWorkflow.run, spec, id=request_id, task_queue=task_queue
        )

        async def awaiting() -> bool:
            status = await pool.fetchval(
                "SELECT status FROM tasks WHERE goal_id = $1 AND task_id = 'announce'", goal_id
            )
            return bool(status == "awaiting_approval")

        await eventually(awaiting, what="the goal waiting for its approval")
        await cancel_request(client, request_id)
        view = await asyncio.wait_for(handle.result(), PATIENCE)
    assert view.status is RequestStatus.CANCELED
    assert view.error == f"canceled by its caller while its goal ran: goal {goal_id!r} aborted"
    goal = await one_row(pool, "SELECT status, error FROM goals WHERE goal_id = $1", goal_id)
    assert goal["status"] == "failed" and f"request {request_id!r} canceled" in goal["error"]
    row = await one_row(
        pool, "SELECT status, error FROM requests WHERE request_id = $1", request_id
    )
    assert (row["status"], row["error"]) == ("canceled", view.error)
    ended = await events(pool, request_id, "request_ended")
    assert ended[0]["message"] == f"request {request_id!r} canceled: {view.error}"
