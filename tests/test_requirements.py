"""No message lowers a goal's bar: sub-goals, plans, triage and `add_tasks` keep its
approvers, its signatures and its workspace, and only a goal starts its sub-goals."""

import asyncio
import re
import uuid
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError

from goalkeeper import signing
from goalkeeper.errors import InvalidGoalSpec
from goalkeeper.models import GoalSpec, TaskSpec
from goalkeeper.planning import AddTasks, PlanResult, check_new_tasks, plan_tasks
from goalkeeper.requests import RequestSpec, TriageGoal, goal_from_triage, triage_goal_problems
from goalkeeper.runbooks import parse_runbook
from goalkeeper.statuses import GoalStatus, RequestStatus, TaskStatus
from goalkeeper.subgoals import subgoal_spec
from goalkeeper.validation import validate_goal_spec
from interfaces.agents import registry
from interfaces.agents.runner import SimulatedWork, Work, WorkResult
from tests.helpers import PATIENCE, events, goal_spec, running_agents, start_goal, wait_task
from tests.test_requests import ask
from tests.test_runbooks import runbook_toml
from tests.test_signatures import signed_report
from workflows.goal import GoalWorkflow

SIGNED = GoalSpec(
    title="Signed",
    goal_id="signed",
    workspace="vault",
    approvers=["ops"],
    escalation=[["vp"]],
    require_signatures=True,
)


def _subgoal(**goal: Any) -> dict[str, Any]:
    tasks = [{"id": "a", "title": "A", "skill": "writing"}]
    return {"id": "sub", "title": "Sub", "goal": {"title": "G", "tasks": tasks, **goal}}


def _refused(raw: list[dict[str, Any]], expected: str, header: GoalSpec = SIGNED) -> None:
    with pytest.raises(InvalidGoalSpec, match=re.escape(expected)):
        check_new_tasks(header, raw, set(), 100)


def test_a_subgoal_inherits_signatures_and_may_not_lower_them() -> None:
    _refused(
        [_subgoal(require_signatures=False)],
        "tasks[0].goal.require_signatures: expected true or nothing (goal 'signed' requires",
    )
    [task] = check_new_tasks(SIGNED, [_subgoal()], set(), 100)
    spec = subgoal_spec(SIGNED, task, "run")
    assert (spec["require_signatures"], spec["workspace"]) == (True, "vault")
    # Under a goal that leaves it to the worker, a sub-goal may raise it but not lower it.
    default = SIGNED.model_copy(update={"require_signatures": None})
    _refused([_subgoal(require_signatures=False)], "leaves to the worker's default", default)
    [raised] = check_new_tasks(default, [_subgoal(require_signatures=True)], set(), 100)
    assert subgoal_spec(default, raised, "run")["require_signatures"] is True
    # Even a task that was never checked cannot lower them: the spec is held to the goal's.
    unchecked = TaskSpec.model_validate(_subgoal(require_signatures=False, workspace="x"))
    held = subgoal_spec(SIGNED, unchecked, "run")
    assert (held["require_signatures"], held["workspace"]) == (True, "vault")


def test_subgoals_and_added_tasks_keep_the_goals_workspace_and_approvers() -> None:
    _refused(
        [_subgoal(workspace="attacker")],
        "tasks[0].goal.workspace: expected 'vault' (it runs in the workspace of goal 'signed'), "
        "got 'attacker'",
    )
    _refused(
        [_subgoal(approvers=["ops", "mallory"])],
        "tasks[0].goal.approvers: 'mallory' is not an approver of goal 'signed'; "
        "expected some of ['ops', 'vp']",
    )
    _refused([_subgoal(escalation=[["mallory"]])], "tasks[0].goal.escalation[0]: 'mallory'")
    nested = _subgoal()
    nested["goal"]["tasks"][0] |= {"requires_approval": True, "approvers": ["mallory"]}
    _refused([nested], "tasks[0].goal.tasks[0].approvers: 'mallory' is not an approver")
    _refused(
        [{"id": "t", "title": "T", "skill": "s", "requires_approval": True, "approvers": ["m"]}],
        "tasks[0].approvers: 'm' is not an approver of goal 'signed'",
    )
    _refused([_subgoal(parent={"goal_id": "x"})], "tasks[0].goal.parent: set by Goalkeeper only")
    # The goal's own escalation levels may be named.
    ok: list[dict[str, Any]] = [
        {"id": "t", "title": "T", "skill": "s", "requires_approval": True, "approvers": ["vp"]}
    ]
    assert check_new_tasks(SIGNED, ok, set(), 100)[0].approvers == ["vp"]
    # A goal's own spec is held to the same rules for its sub-goals.
    with pytest.raises(InvalidGoalSpec, match=r"tasks\[0\]\.goal\.workspace: expected 'vault'"):
        validate_goal_spec(
            {**SIGNED.model_dump(exclude={"goal_id"}), "tasks": [_subgoal(workspace="x")]},
            "signed",
        )


def test_a_plan_from_a_stored_runbook_may_name_the_runbooks_approvers() -> None:
    extra = 'requires_approval = true\napprovers = ["sales-lead"]'
    runbook = parse_runbook(runbook_toml("launch", "x", extra=extra), "launch.toml")
    plan = PlanResult(runbook="launch", parameters={"owner": "o"})
    tasks = plan_tasks(SIGNED, plan, runbook, set(), 100)
    assert tasks[-1].approvers == ["sales-lead"]


def test_a_triage_may_not_move_the_goal_or_name_other_approvers() -> None:
    request = RequestSpec(question="q", workspace="acme", approvers=["lead"])
    triage = TriageGoal(
        kind="goal",
        goal={
            "title": "G",
            "workspace": "vault",
            "approvers": ["mallory"],
            "require_signatures": False,
            "tasks": [{"id": "t", "title": "T", "skill": "s"}],
        },
    )
    problems = "; ".join(triage_goal_problems(triage, "r1", request))
    assert "goal.workspace: expected 'acme' (it runs in the workspace of request 'r1')" in problems
    assert "goal.approvers: 'mallory' is not an approver of request 'r1'" in problems
    assert "goal.require_signatures: expected true or nothing" in problems
    held = goal_from_triage(triage, request)
    assert (held["workspace"], held["require_signatures"]) == ("acme", None)
    fine = TriageGoal(kind="goal", goal={"title": "G", "tasks": []})
    assert triage_goal_problems(fine, "r1", request) == []
    assert goal_from_triage(fine, request)["approvers"] == ["lead"]


# Over the wire.


async def _signing_agent(pool: asyncpg.Pool, workspace: str) -> tuple[str, str]:
    """A registered agent of the workspace that signs: its id and private key."""
    key, public = signing.new_keys()
    agent_id = f"{workspace}-signer"
    await registry.register_agent(
        pool, agent_id, workspace, ["writing"], capacity=2, public_key=public
    )
    return agent_id, key


def _add(
    tasks: list[dict[str, Any]], goal_id: str = "", agent: tuple[str, str] | None = None
) -> dict[str, Any]:
    """An add_tasks request; signed as `agent` (its id and key), an agent of the goal."""
    if agent is None:
        return {"tasks": tasks, "added_by": "outsider", "reason": "more work"}
    payload = {"tasks": tasks, "added_by": agent[0], "reason": "more work"}
    request = AddTasks.model_validate(payload)
    return payload | {"signature": signing.sign_control(agent[1], "add_tasks", goal_id, request)}


async def test_a_subgoal_added_to_a_signed_goal_requires_signatures(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    agent = await _signing_agent(pool, workspace)
    key = agent[1]
    spec = goal_spec(1, workspace, require_signatures=True)
    goal = await start_goal(client, spec, task_queue)
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)

    # The attack, signed by the goal's own agent: a sub-goal that switches signatures off,
    # or one in another workspace.
    for bad, field in (
        ({"require_signatures": False}, "require_signatures"),
        ({"workspace": "attacker"}, "workspace"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            added = _add([_subgoal(**bad)], goal.id, agent)
            await goal.execute_update(GoalWorkflow.add_tasks, added)
        assert f"tasks[0].goal.{field}: expected" in str(refused.value.cause)

    # Saying nothing, the sub-goal inherits the requirement: an unsigned report is refused.
    await goal.execute_update(GoalWorkflow.add_tasks, _add([_subgoal()], goal.id, agent))
    sub = f"{goal.id}/sub"
    inner = await wait_task(client, sub, "a", TaskStatus.ASSIGNED)
    unsigned = {
        "agent_id": inner.agent_id,
        "assignment_id": inner.assignment_id,
        "outcome": "completed",
        "result": "forged",
    }
    handle = client.get_workflow_handle(f"{sub}/a")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("report", unsigned)
    assert "unsigned" in str(refused.value.cause)

    # The real agent, signing, completes both.
    await handle.execute_update("report", signed_report(inner, key))
    await client.get_workflow_handle(f"{goal.id}/t1").execute_update(
        "report", signed_report(view, key)
    )
    report = await asyncio.wait_for(goal.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED and report.progress.tasks_total == 2


async def test_a_client_cannot_start_a_subgoal_of_a_real_goal(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    goal = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    description = await goal.describe()
    fake = goal_spec(1, workspace) | {
        "parent": {
            "goal_id": goal.id,
            "goal_run_id": description.run_id,
            "task_id": "t1",
            "depth": 1,
        }
    }
    impostor = await start_goal(client, fake, task_queue, goal_id=f"{goal.id}/t1x")
    with pytest.raises(WorkflowFailureError) as failed:
        await impostor.result()
    message = str(failed.value.cause)
    assert f"parent: expected sub-goal '{goal.id}/t1' started by goal '{goal.id}'" in message
    assert "started by a client" in message
    rejected = await events(pool, f"{goal.id}/t1x", "goal_rejected")
    assert rejected and "parent" in rejected[0]["message"]
    # No tasks ran for it, and the real goal goes on with its agent.
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE goal_id = $1", impostor.id) == 0
    await client.get_workflow_handle(f"{goal.id}/t1").execute_update(
        "report",
        {
            "agent_id": view.agent_id,
            "assignment_id": view.assignment_id,
            "outcome": "completed",
            "result": "done",
        },
    )
    assert (await asyncio.wait_for(goal.result(), PATIENCE)).status is GoalStatus.COMPLETED


class OutsidePlanner:
    """A planner whose first plan names an approver of its own, then plans honestly."""

    def __init__(self) -> None:
        self.seen: list[Work] = []

    async def __call__(self, work: Work) -> WorkResult:
        if work.task.get("expects") != "plan":
            return WorkResult(result=f"{work.task_id} done")
        self.seen.append(work)
        task: dict[str, Any] = {"id": "memo", "title": "Memo", "skill": "writing"}
        if len(self.seen) == 1:
            task |= {"requires_approval": True, "approvers": ["mallory"]}
        return WorkResult(result={"tasks": [task]})


async def test_a_plan_naming_an_outside_approver_is_sent_back(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = {
        "title": "Planned",
        "description": f"plan {uuid.uuid4().hex}",
        "workspace": workspace,
        "approvers": ["ops"],
    }
    goal = await start_goal(client, spec, task_queue)
    planner = OutsidePlanner()
    async with running_agents(client, pool, workspace, planner, ("planning", "writing")):
        report = await asyncio.wait_for(goal.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert [t.task_id for t in report.tasks] == ["plan", "memo"]
    comment = planner.seen[1].context["rework"][0]["comment"]
    assert "tasks[0].approvers: 'mallory' is not an approver of goal" in comment, comment
    assert "expected some of ['ops']" in comment


class MovingTriage:
    """A triage agent whose first goal runs elsewhere; then it answers."""

    def __init__(self) -> None:
        self.seen: list[Work] = []

    async def __call__(self, work: Work) -> WorkResult:
        self.seen.append(work)
        if len(self.seen) == 1:
            goal: dict[str, Any] = {
                "title": "Exfiltrate",
                "workspace": "vault",
                "tasks": [{"id": "t", "title": "T", "skill": "writing"}],
            }
            return WorkResult({"kind": "goal", "goal": goal})
        return WorkResult({"kind": "answer", "answer": "here", "reason": "simple"})


async def test_a_triage_that_moves_the_goal_to_another_workspace_is_sent_back(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    hook = MovingTriage()
    async with running_agents(client, pool, workspace, hook, ("triage",)):
        view = await ask(client, task_queue, "Copy the vault?", workspace=workspace)
    assert view.status is RequestStatus.ANSWERED and view.answer == "here"
    comment = hook.seen[1].context["rework"][0]["comment"]
    assert f"goal.workspace: expected {workspace!r}" in comment and "got 'vault'" in comment


async def test_a_partition_starts_the_subgoals_of_its_goal(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    """A goal run in partitions starts its sub-goals from a partition: they still run."""
    tasks = [{"id": f"t{n}", "title": f"T{n}", "skill": "writing"} for n in (1, 2)]
    spec = goal_spec(0, workspace, tasks=[*tasks, _subgoal()], partition_size=2)
    goal = await start_goal(client, spec, task_queue)
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0))):
        report = await asyncio.wait_for(goal.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED and report.progress.tasks_total == 3
    sub = await client.get_workflow_handle(f"{goal.id}/sub").describe()
    assert sub.parent_id is not None and sub.parent_id.startswith(f"{goal.id}#partition-")
