"""Only the real agent and the real approver count: every forgery is refused, and said so."""

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from goalkeeper import signing
from goalkeeper.models import AgentReport, ApprovalDecision, GoalReport, TaskView
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.agents import registry
from interfaces.agents.runner import AgentRunner, Work, WorkResult
from interfaces.stack import TemporalDevServer
from store.keys import register_approver_key
from store.tokens import new_token
from tests.helpers import events, eventually, goal_spec, start_goal, wait_task
from tests.starter import starter

KEYS = {name: signing.new_keys() for name in ("alpha", "beta", "ops-lead", "qa-lead", "intern")}
"""Private and public keys of two agents and three people, made once for the module."""


def private(name: str) -> str:
    return KEYS[name][0]


def public(name: str) -> str:
    return KEYS[name][1]


def signed_report(view: TaskView, key: str, **fields: Any) -> dict[str, Any]:
    """A report on `view`'s assignment, as its agent would send it, signed with `key`."""
    payload: dict[str, Any] = {
        "agent_id": view.agent_id,
        "assignment_id": view.assignment_id,
        "outcome": "completed",
        "result": f"result of {view.task_id}",
        "tokens_used": 10,
        "cost_usd": 0.001,
    } | fields
    content = signing.report_content(view.goal_id, view.task_id, AgentReport(**payload))
    return payload | {"signature": signing.sign(key, content)}


def signed_decision(
    view: TaskView, approver: str, decision: str, result: Any, key: str, comment: str = ""
) -> dict[str, Any]:
    """A decision on `result` of `view`'s assignment and attempt as `approver`, signed
    with `key`."""
    payload = {"approver": approver, "decision": decision, "comment": comment}
    seen = view.model_copy(update={"result": result})
    content = signing.decision_content(seen, ApprovalDecision.model_validate(payload))
    return payload | {"signature": signing.sign(key, content)}


async def slow(work: Work) -> WorkResult:
    """Work longer than the tests' allowed silence (3 s): only heartbeats keep the task."""
    await asyncio.sleep(5)
    return WorkResult(result=f"{work.task_id} done", tokens_used=5, cost_usd=0.001)


async def run_goal(
    client: Client, runner: AgentRunner, spec: dict[str, Any], task_queue: str
) -> tuple[WorkflowHandle[Any, Any], GoalReport]:
    """Run a goal to its end with `runner` serving it; bounded, for were a signed message
    not to count, its tasks would lapse and wait on."""
    stop = asyncio.Event()
    serving = asyncio.create_task(runner.run(stop))
    try:
        goal = await start_goal(client, spec, task_queue)
        return goal, await asyncio.wait_for(goal.result(), 180)
    finally:
        stop.set()
        await serving


async def refused(handle: WorkflowHandle[Any, Any], update: str, payload: Any, words: str) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(update, payload)
    message = str(failure.value.cause)
    assert words in message, message
    return message


async def test_forged_reports_heartbeats_and_decisions_are_refused_and_recorded(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    for agent in ("alpha", "beta"):
        await pool.execute(
            "INSERT INTO agents (agent_id, workspace, skills, public_key, operator) "
            "VALUES ($1, $2, '{writing}', $3, $4)",
            f"{workspace}-{agent}",
            workspace,
            public(agent),
            "qa-lead",
        )
    for person in ("ops-lead", "qa-lead", "intern"):
        await register_approver_key(pool, person, public(person))
    tasks = [{"id": "memo", "title": "Memo", "skill": "writing", "requires_approval": True}]
    spec = goal_spec(
        workspace=workspace,
        tasks=tasks,
        approvers=["ops-lead", "qa-lead"],
        require_signatures=True,
    )
    goal = await start_goal(client, spec, task_queue)
    view = await wait_task(client, goal.id, "memo", TaskStatus.ASSIGNED)
    task = client.get_workflow_handle(f"{goal.id}/memo")
    holder = view.agent_id
    assert holder is not None
    other = "beta" if holder.endswith("alpha") else "alpha"
    mine = "alpha" if other == "beta" else "beta"

    # Reports: the other agent's key with the right ids; unsigned; a copied signature.
    await refused(task, "report", signed_report(view, private(other)), f"not agent {holder!r}")
    unsigned = signed_report(view, private(mine)) | {"signature": None}
    await refused(task, "report", unsigned, "unsigned")
    elsewhere = view.model_copy(update={"assignment_id": "00000000-0000-0000-0000-000000000000"})
    copied = signed_report(view, private(mine)) | {
        "signature": signed_report(elsewhere, private(mine))["signature"]
    }
    await refused(task, "report", copied, "another assignment")
    await task.signal("agent_report", signed_report(view, private(other)))

    async def recorded() -> Any:
        found = await events(pool, goal.id, "report_rejected")
        return found if any("signature" in e["message"] for e in found) else None

    await eventually(recorded, what="the forged report signalled, in the trail")

    # Heartbeats: signed ones count once; a replay of the same one is refused.
    at = datetime.now(UTC).isoformat()
    content = signing.heartbeat_content(goal.id, "memo", holder, view.assignment_id or "", at)
    beat = {
        "agent_id": holder,
        "assignment_id": view.assignment_id,
        "at": at,
        "signature": signing.sign(private(mine), content),
    }
    await task.execute_update("heartbeat", beat)
    await refused(task, "heartbeat", beat, "not after the last one")
    await refused(task, "heartbeat", beat | {"signature": None, "at": None}, "names no time")

    # The real report counts.
    first = "the memo, first draft"
    await task.execute_update("report", signed_report(view, private(mine), result=first))
    await wait_task(client, goal.id, "memo", TaskStatus.AWAITING_APPROVAL)

    # Decisions: someone not named; the agent's operator; unsigned; another's key.
    await refused(
        task,
        "decide",
        signed_decision(view, "intern", "approve", first, private("intern")),
        "may not decide",
    )
    await refused(
        task,
        "decide",
        signed_decision(view, "qa-lead", "approve", first, private("qa-lead")),
        "operates the agent",
    )
    await refused(task, "decide", {"approver": "ops-lead", "decision": "approve"}, "sent none")
    await refused(
        task,
        "decide",
        signed_decision(view, "ops-lead", "approve", first, private("intern")),
        "not 'ops-lead''s",
    )

    # A rework, then an approval signed over the first draft does not approve the second.
    rework = signed_decision(view, "ops-lead", "reject", first, private("ops-lead"), "shorter")
    await task.execute_update("decide", rework)
    second_view = await wait_task(client, goal.id, "memo", TaskStatus.ASSIGNED)
    second = "the memo, shorter"
    await task.execute_update("report", signed_report(second_view, private(mine), result=second))
    await wait_task(client, goal.id, "memo", TaskStatus.AWAITING_APPROVAL)
    stale = signed_decision(view, "ops-lead", "approve", first, private("ops-lead"))
    await refused(task, "decide", stale, "earlier result")
    # The same draft again on a later attempt: the first attempt's approval does not count.
    replayed = signed_decision(view, "ops-lead", "approve", second, private("ops-lead"))
    await refused(task, "decide", replayed, "of assignment")
    await task.execute_update(
        "decide", signed_decision(second_view, "ops-lead", "approve", second, private("ops-lead"))
    )
    assert (await goal.result()).status is GoalStatus.COMPLETED


async def test_a_replaced_approver_key_no_longer_decides_a_waiting_task(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    """The key read when the task came to wait is read again for each decision."""
    await pool.execute(
        "INSERT INTO agents (agent_id, workspace, skills, public_key) "
        "VALUES ($1, $2, '{writing}', $3)",
        f"{workspace}-alpha",
        workspace,
        public("alpha"),
    )
    approver = f"{workspace}-lead"
    await register_approver_key(pool, approver, public("ops-lead"))
    tasks = [{"id": "memo", "title": "Memo", "skill": "writing", "requires_approval": True}]
    spec = goal_spec(
        workspace=workspace, tasks=tasks, approvers=[approver], require_signatures=True
    )
    goal = await start_goal(client, spec, task_queue)
    view = await wait_task(client, goal.id, "memo", TaskStatus.ASSIGNED)
    task = client.get_workflow_handle(f"{goal.id}/memo")
    await task.execute_update("report", signed_report(view, private("alpha"), result="memo"))
    waiting = await wait_task(client, goal.id, "memo", TaskStatus.AWAITING_APPROVAL)
    await register_approver_key(pool, approver, public("qa-lead"))  # the old key was lost
    old = signed_decision(waiting, approver, "approve", "memo", private("ops-lead"))
    await refused(task, "decide", old, "replaced or another key")
    await task.signal("approval_decision", old)

    async def recorded() -> Any:
        return await events(pool, goal.id, "decision_rejected")

    [signalled] = await eventually(recorded, what="the signalled decision, in the trail")
    assert "replaced or another key" in signalled["message"]
    new = signed_decision(waiting, approver, "approve", "memo", private("qa-lead"))
    await task.execute_update("decide", new)
    assert (await goal.result()).status is GoalStatus.COMPLETED


async def test_signatures_are_not_required_unless_asked(
    client: Client, task_queue: str, workspace: str
) -> None:
    goal = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    report = {
        "agent_id": view.agent_id,
        "assignment_id": view.assignment_id,
        "outcome": "completed",
        "result": "done",
    }
    await client.get_workflow_handle(f"{goal.id}/t1").execute_update("report", report)
    assert (await goal.result()).status is GoalStatus.COMPLETED


def test_keys_and_signatures_round_trip_and_bad_keys_are_named() -> None:
    key, pub = signing.new_keys()
    assert signing.public_key_of(key) == pub
    signature = signing.sign(key, b"content")
    assert signing.verify(pub, b"content", signature)
    assert not signing.verify(pub, b"other content", signature)
    assert not signing.verify(public("alpha"), b"content", signature)
    assert not signing.verify(pub, b"content", "not base64!")
    with pytest.raises(signing.InvalidKey, match="32-byte"):
        signing.check_public_key("c2hvcnQ=")
    with pytest.raises(signing.InvalidKey) as bad:
        signing.sign("private-key-material!", b"x")
    assert "private-key-material" not in str(bad.value)  # never echo a private key
    assert signing.digest({"b": 1, "a": [1, 2]}) == signing.digest({"a": [1, 2], "b": 1})


async def test_the_cli_and_the_dashboard_sign_decisions_on_the_result_seen(
    api: httpx.AsyncClient,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    database_url: str,
    temporal_server: TemporalDevServer,
) -> None:
    address = temporal_server.address
    approver = f"lead-{workspace}"
    made = await starter(database_url, "approver", "key", "new", "--as", approver, "--json")
    assert made.code == 0, made.err
    assert made.json()["key_file"].startswith(os.environ["GOALKEEPER_KEY_DIR"])
    again = await starter(database_url, "approver", "key", "new", "--as", approver)
    assert again.code == 2 and "--replace" in again.err
    await pool.execute(
        "INSERT INTO agents (agent_id, workspace, skills, capacity, public_key) "
        "VALUES ($1, $2, '{writing}', 3, $3)",
        f"{workspace}-alpha",
        workspace,
        public("alpha"),
    )
    tasks = [
        {"id": f"t{n}", "title": f"Task {n}", "skill": "writing", "requires_approval": True}
        for n in (1, 2, 3)
    ]
    spec = goal_spec(workspace=workspace, tasks=tasks, approvers=[approver])
    spec["require_signatures"] = True
    goal = await start_goal(client, spec, task_queue)
    views = {}
    for task_id in ("t1", "t2", "t3"):
        view = await wait_task(client, goal.id, task_id, TaskStatus.ASSIGNED)
        await client.get_workflow_handle(f"{goal.id}/{task_id}").execute_update(
            "report", signed_report(view, private("alpha"))
        )
        views[task_id] = await wait_task(client, goal.id, task_id, TaskStatus.AWAITING_APPROVAL)

    # The CLI signs with the approver's key on this machine.
    approved = await starter(
        database_url, "approve", f"{goal.id}/t1", "--as", approver, temporal_address=address
    )
    assert approved.code == 0, approved.err

    # `sign` prints the input for the temporal CLI; it counts as the approver's.
    printed = await starter(
        database_url,
        *("sign", f"{goal.id}/t2", "--decision", "approve", "--as", approver, "--json"),
        temporal_address=address,
    )
    assert printed.code == 0, printed.err
    await client.get_workflow_handle(f"{goal.id}/t2").execute_update("decide", printed.json())

    # The dashboard signs with its own key, on the person's behalf, over what they saw.
    headers = {"Authorization": f"Bearer {(await new_token(pool, approver, [workspace]))['token']}"}
    path = f"/goals/{goal.id}/tasks/t3/decision"
    stale = {"decision": "approve", "result_digest": signing.digest("an older result")}
    changed = await api.post(path, json=stale, headers=headers)
    assert changed.status_code == 409 and "new result" in changed.json()["detail"]
    seen = signing.digest(views["t3"].result)
    done = await api.post(path, json=stale | {"result_digest": seen}, headers=headers)
    assert done.status_code == 200, done.text

    assert (await goal.result()).status is GoalStatus.COMPLETED
    accepted = [e["message"] for e in await events(pool, goal.id, "decision_accepted")]
    assert any("t3" in m and "signed by 'dashboard'" in m for m in accepted), accepted


async def test_agents_sign_their_reports_and_heartbeats_by_themselves(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    agent_ids = [f"{workspace}-signer-{n}" for n in range(2)]
    keys = {agent_id: signing.new_keys()[0] for agent_id in agent_ids}
    for agent_id in agent_ids:
        public_key = signing.public_key_of(keys[agent_id])
        await registry.register_agent(
            pool, agent_id, workspace, ["writing"], public_key=public_key, operator="qa-lead"
        )
    with pytest.raises(registry.RegistrationRefused, match="agent rekey"):
        await registry.register_agent(
            pool, agent_ids[0], workspace, ["writing"], public_key=public("beta")
        )

    spec = goal_spec(2, workspace, require_signatures=True, heartbeat_timeout_seconds=3)
    runner = AgentRunner(client, pool, agent_ids, slow, sweep_interval=3600, keys=keys)
    try:
        goal, result = await run_goal(client, runner, spec, task_queue)
    finally:
        await registry.take_offline(pool, agent_ids)
    assert result.status is GoalStatus.COMPLETED
    assert [t.attempts for t in result.tasks] == [1, 1]  # none lapsed for silence
    assert not await events(pool, goal.id, "report_rejected")


async def test_a_runner_that_adopts_a_provisioned_agent_gives_it_a_key_and_signs(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(1, workspace, require_signatures=True, heartbeat_timeout_seconds=3)
    # No agent of its own: the task gets a provisioned agent, which this runner adopts.
    runner = AgentRunner(client, pool, [], slow, workspace, sweep_interval=3600)
    goal, result = await run_goal(client, runner, spec, task_queue)
    assert result.status is GoalStatus.COMPLETED
    [task] = result.tasks
    assert task.attempts == 1 and task.agent_id and task.agent_id.startswith("auto-")
    key = await pool.fetchval("SELECT public_key FROM agents WHERE agent_id = $1", task.agent_id)
    assert key == signing.public_key_of(runner.keys[task.agent_id])
    assert not await events(pool, goal.id, "report_rejected")
    # The key is kept: another runner cannot give the agent its own.
    assert not await registry.claim_provisioned(pool, task.agent_id, public("beta"))
