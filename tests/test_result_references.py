"""A result is what its agent produced: a `$ref` counts only as a result stored for the
reporting agent's own assignment, holding the content its digest names; approvers see
that digest and the content. Each attack is sent over the wire as an outsider would, and
the goal still completes with its real agent's report afterwards."""

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deliverables import DeliverableActivities
from goalkeeper import signing
from goalkeeper.records import CompileDeliverable
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.agents import registry
from interfaces.agents.runner import AgentRunner, SimulatedWork, Work
from interfaces.stack import TemporalDevServer
from store import results
from store.deliverables import read_deliverable
from store.keys import register_approver_key
from tests.helpers import (
    events,
    eventually,
    goal_spec,
    new_goal_id,
    report,
    start_goal,
    wait_task,
)
from tests.starter import starter
from tests.test_least_privilege import agent_login, assignment_for
from tests.test_signatures import signed_decision, signed_report

BIG = "x" * (results.INLINE_LIMIT + 1)


async def sent_back(
    client: Client, pool: asyncpg.Pool, goal_id: str, task_id: str, words: str
) -> str:
    """Wait for the task's result to be refused as invalid and the task assigned again;
    the refusal's message, which must hold `words`."""
    await wait_task(client, goal_id, task_id, TaskStatus.ASSIGNED, attempt=2)
    [invalid] = await events(pool, goal_id, "result_invalid")
    assert words in invalid["message"], invalid["message"]
    return str(invalid["message"])


async def test_a_ref_to_another_workspaces_deliverable_is_sent_back_and_never_read(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    database_url: str,
    temporal_server: TemporalDevServer,
    workspace: str,
) -> None:
    secret = f"vault secret {uuid.uuid4().hex}"
    vault = await start_goal(client, goal_spec(1, f"{workspace}-vault"), task_queue)
    await report(
        client, await wait_task(client, vault.id, "t1", TaskStatus.ASSIGNED), result=secret
    )
    await vault.result()
    assert secret in (await read_deliverable(pool, vault.id) or "")

    goal = await start_goal(client, goal_spec(1, f"{workspace}-attacker"), task_queue)
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    stolen = {"$ref": f"deliverables/{vault.id}"}
    task = client.get_workflow_handle(f"{goal.id}/t1")
    await task.execute_update(
        "report",
        {
            "agent_id": view.agent_id,
            "assignment_id": view.assignment_id,
            "outcome": "completed",
            "result": stolen,
        },
    )
    await sent_back(client, pool, goal.id, "t1", f"deliverables/{vault.id}")

    again = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    await report(client, again, result="what the agent really found")
    assert (await goal.result()).status is GoalStatus.COMPLETED
    deliverable = await read_deliverable(pool, goal.id) or ""
    assert "what the agent really found" in deliverable and secret not in deliverable
    rows = await pool.fetch("SELECT result::text FROM tasks WHERE goal_id = $1", goal.id)
    assert all(secret not in (r["result"] or "") for r in rows)
    printed = await starter(
        database_url,
        "goal",
        "report",
        goal.id,
        "--deliverable",
        temporal_address=temporal_server.address,
    )
    assert printed.code == 0, printed.err
    assert "what the agent really found" in printed.out and secret not in printed.out


async def test_an_agent_login_never_reads_what_a_refused_ref_named(
    pool: asyncpg.Pool, database_url: str, workspace: str
) -> None:
    """A refused ref is handed back to its agent as the previous result of its rework:
    being in its context must not let its login read what it names."""
    victim = new_goal_id()
    await pool.execute(
        "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec) "
        "VALUES ($1, 'run', 'Vault', 'vault', '{}')",
        victim,
    )
    await pool.execute(
        "INSERT INTO deliverables (goal_id, goal_run_id, body, bytes) "
        "VALUES ($1, 'r', 'vault secret', 12)",
        victim,
    )
    async with agent_login(pool, database_url, workspace) as as_agent:
        agent_id = f"{workspace}-agent"
        await registry.register_agent(as_agent, agent_id, workspace, ["data"])
        named = {"$ref": f"deliverables/{victim}"}
        rework = [{"approver": "goalkeeper", "comment": "invalid", "previous_result": named}]
        await assignment_for(pool, agent_id, {"rework": rework, "task": {"inputs": named}})
        with pytest.raises(results.UnresolvedReference, match=f"deliverables/{victim}"):
            await results.resolve(as_agent, named)


async def test_a_ref_to_an_unknown_result_is_sent_back_naming_it(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    goal = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    unknown = f"results/{uuid.uuid4()}"
    await report(client, view, result={"$ref": unknown, "bytes": 10, "sha256": "0" * 64})
    await sent_back(client, pool, goal.id, "t1", f"{unknown!r} is not stored")

    again = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    await report(client, again)
    assert (await goal.result()).status is GoalStatus.COMPLETED


@pytest.mark.parametrize(
    "result, words",
    [
        ({"$ref": "results/not-a-uuid", "bytes": 1, "sha256": "0" * 64}, "results/<uuid>"),
        ({"$ref": "results/" + str(uuid.uuid4())}, "expected a reference as"),
        ({"$ref": 7}, "expected $ref to be a string"),
        ({"summary": "ok", "appendix": [{"$ref": "deliverables/x"}]}, "$.appendix[0]"),
    ],
)
async def test_malformed_and_nested_refs_are_sent_back(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    result: Any,
    words: str,
) -> None:
    goal = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    await report(client, view, result=result)
    await sent_back(client, pool, goal.id, "t1", words)
    await report(client, await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2))
    assert (await goal.result()).status is GoalStatus.COMPLETED


async def test_a_ref_to_another_assignments_result_is_sent_back(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    goal = await start_goal(client, goal_spec(2, workspace), task_queue)
    first = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    second = await wait_task(client, goal.id, "t2", TaskStatus.ASSIGNED)
    assert first.assignment_id is not None
    theirs = await results.by_reference(pool, first.assignment_id, BIG)

    await report(client, second, result=theirs)
    await sent_back(client, pool, goal.id, "t2", f"stored for assignment {first.assignment_id}")

    await report(client, first, result=theirs)  # its own: it counts
    await report(client, await wait_task(client, goal.id, "t2", TaskStatus.ASSIGNED, attempt=2))
    assert (await goal.result()).status is GoalStatus.COMPLETED
    assert BIG in (await read_deliverable(pool, goal.id) or "")


async def test_a_ref_whose_digest_is_not_of_its_content_is_sent_back(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    goal = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    assert view.assignment_id is not None
    stored = await results.by_reference(pool, view.assignment_id, BIG)
    claimed = signing.digest("what the approver was told")
    await report(client, view, result=stored | {"sha256": claimed})
    await sent_back(client, pool, goal.id, "t1", f"expected the {claimed} its reference names")

    again = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert again.assignment_id is not None
    await report(client, again, result=await results.by_reference(pool, again.assignment_id, BIG))
    assert (await goal.result()).status is GoalStatus.COMPLETED


async def test_no_other_login_pre_empts_or_overwrites_an_assignments_result(
    client: Client, pool: asyncpg.Pool, task_queue: str, database_url: str, workspace: str
) -> None:
    async with (
        agent_login(pool, database_url, workspace) as as_agent,
        agent_login(pool, database_url, "elsewhere") as attacker,
    ):
        agent_id = f"{workspace}-agent"
        await registry.register_agent(as_agent, agent_id, workspace, ["writing"])
        await registry.register_agent(attacker, f"{workspace}-mallory", "elsewhere", ["writing"])
        goal = await start_goal(client, goal_spec(1, workspace), task_queue)
        view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
        assert view.agent_id == agent_id and view.assignment_id is not None
        held = uuid.UUID(view.assignment_id)
        _, own = await assignment_for(pool, f"{workspace}-mallory")
        predictable = uuid.uuid5(held, "result")  # where results used to be stored
        async with attacker.acquire() as connection:
            for statement, args in [
                ("SELECT goalkeeper_store_result($1, '\"forged\"')", [held]),
                (
                    "INSERT INTO results (result_id, assignment_id, body, bytes) "
                    "VALUES ($1, $2, '\"forged\"', 8)",
                    [predictable, uuid.UUID(own)],
                ),
                ("UPDATE results SET body = '\"forged\"' WHERE assignment_id = $1", [held]),
            ]:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await connection.execute(statement, *args)

        reference = await results.by_reference(as_agent, view.assignment_id, BIG)
        assert reference["$ref"] != f"results/{predictable}"
        await report(client, view, result=reference)
        assert (await goal.result()).status is GoalStatus.COMPLETED
        stored = await pool.fetch("SELECT assignment_id, body FROM results WHERE body = $1", BIG)
        assert [(r["assignment_id"], r["body"]) for r in stored if r["assignment_id"] == held] == [
            (held, BIG)
        ]
        assert not await pool.fetchval(
            "SELECT count(*) FROM results WHERE body = '\"forged\"'::jsonb"
        )


async def test_a_compile_that_meets_an_unresolvable_ref_fails_for_good_naming_it(
    pool: asyncpg.Pool, workspace: str
) -> None:
    goal_id, run_id = new_goal_id(), str(uuid.uuid4())
    await pool.execute(
        "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec) "
        "VALUES ($1, $2, 'A goal', $3, '{}')",
        goal_id,
        run_id,
        workspace,
    )
    missing = f"results/{uuid.uuid4()}"
    agent_id = f"{workspace}-agent"
    await registry.register_agent(pool, agent_id, workspace, ["data"])
    await pool.execute(
        "INSERT INTO tasks (goal_id, task_id, title, skill, status, agent_id, result, position) "
        "VALUES ($1, 't1', 'A task', 'data', 'completed', $2, $3, 0)",
        goal_id,
        agent_id,
        {"$ref": missing},
    )
    compiling = DeliverableActivities(pool).compile_deliverable
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(
            compiling, CompileDeliverable(goal_id=goal_id, goal_run_id=run_id)
        )
    assert failure.value.non_retryable and failure.value.type == "UnresolvedReference"
    assert missing in str(failure.value)


async def test_approvers_see_the_content_and_its_digest(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    database_url: str,
    api: httpx.AsyncClient,
    workspace: str,
) -> None:
    tasks = [
        {"id": "big", "title": "Big", "skill": "writing", "requires_approval": True},
        {"id": "small", "title": "Small", "skill": "writing", "requires_approval": True},
    ]
    spec = goal_spec(workspace=workspace, tasks=tasks, approvers=["ops-lead"])
    goal = await start_goal(client, spec, task_queue)
    big = await wait_task(client, goal.id, "big", TaskStatus.ASSIGNED)
    small = await wait_task(client, goal.id, "small", TaskStatus.ASSIGNED)
    assert big.assignment_id is not None
    content = "the whole report " + BIG
    await report(client, big, result=await results.by_reference(pool, big.assignment_id, content))
    await report(client, small, result={"summary": "ship it"})
    for task_id in ("big", "small"):
        await wait_task(client, goal.id, task_id, TaskStatus.AWAITING_APPROVAL)

    async def listed() -> dict[str, Any] | None:
        found = (await api.get("/approvals", params={"approver": "ops-lead"})).json()
        items = {i["task_id"]: i for i in found["items"] if i["goal_id"] == goal.id}
        return items if len(items) == 2 else None

    items = await eventually(listed, what="both tasks in the approvals")
    assert items["small"]["content_digest"] == signing.digest({"summary": "ship it"})
    assert items["small"]["content"] == {"summary": "ship it"}
    assert items["big"]["content_digest"] == signing.digest(content)
    assert items["big"]["content"] == content[:4000]
    whole = (await api.get(items["big"]["content_url"].removeprefix("/api/v1"))).json()
    assert (whole["content"], whole["content_digest"]) == (content, signing.digest(content))

    page = (await api.get("http://localhost/approvals", params={"approver": "ops-lead"})).text
    assert signing.digest(content) in page and items["big"]["content_url"] in page
    assert signing.digest({"summary": "ship it"}) in page

    listing = await starter(database_url, "approvals", "--as", "ops-lead")
    assert listing.code == 0, listing.err
    assert signing.digest(content)[:16] in listing.out
    full = await starter(database_url, "approvals", "--as", "ops-lead", "--full")
    assert f"content sha256 {signing.digest(content)}" in full.out and content in full.out

    for task_id in ("big", "small"):
        await client.get_workflow_handle(f"{goal.id}/{task_id}").signal(
            "approval_decision", {"approver": "ops-lead", "decision": "approve"}
        )
    assert (await goal.result()).status is GoalStatus.COMPLETED


async def test_an_agent_that_cannot_read_a_dependencys_result_fails_its_attempt_naming_it(
    client: Client, pool: asyncpg.Pool
) -> None:
    missing = f"results/{uuid.uuid4()}"
    context = {"task": {"title": "T"}, "dependency_results": {"t1": {"$ref": missing}}}
    runner = AgentRunner(client, pool, ["agent"], SimulatedWork(delay=(0, 0)))
    report = await runner._do(Work(str(uuid.uuid4()), "agent", "goal", "t2", 1, context))
    assert report["outcome"] == "failed" and missing in report["error"]


async def test_signatures_over_a_stored_result_bind_its_content(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    agent_key, agent_public = signing.new_keys()
    approver_key, approver_public = signing.new_keys()
    await pool.execute(
        "INSERT INTO agents (agent_id, workspace, skills, public_key) "
        "VALUES ($1, $2, '{writing}', $3)",
        f"{workspace}-agent",
        workspace,
        agent_public,
    )
    await register_approver_key(pool, f"{workspace}-lead", approver_public)
    tasks = [{"id": "memo", "title": "Memo", "skill": "writing", "requires_approval": True}]
    spec = goal_spec(
        workspace=workspace, tasks=tasks, approvers=[f"{workspace}-lead"], require_signatures=True
    )
    goal = await start_goal(client, spec, task_queue)
    view = await wait_task(client, goal.id, "memo", TaskStatus.ASSIGNED)
    assert view.assignment_id is not None
    reference = await results.by_reference(pool, view.assignment_id, BIG)
    task = client.get_workflow_handle(f"{goal.id}/memo")

    # The signature names the reference and so its digest: another content's is refused.
    signed = signed_report(view, agent_key, result=reference)
    swapped = signed | {"result": reference | {"sha256": signing.digest("other content")}}
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await task.execute_update("report", swapped)
    assert "signature" in str(refused.value.cause)

    await task.execute_update("report", signed)
    await wait_task(client, goal.id, "memo", TaskStatus.AWAITING_APPROVAL)
    decision = signed_decision(view, f"{workspace}-lead", "approve", reference, approver_key)
    await task.execute_update("decide", decision)
    assert (await goal.result()).status is GoalStatus.COMPLETED
