"""Compiling by an agent: the deliverable judged against the success criteria, re-planned
within `max_replans` when they are not met."""

import asyncio

import asyncpg
from temporalio.client import Client

from goalkeeper.compiling import Verdict, next_step, parse_compiled
from goalkeeper.models import GoalSpec, TaskSpec
from goalkeeper.statuses import GoalStatus
from interfaces.agents.runner import SimulatedWork, Work, WorkResult
from store.deliverables import read_deliverable
from tests.helpers import PATIENCE, events, goal_spec, running_agents, start_goal

SKILLS = ("writing", "compile", "planning")


def test_the_steps_compile_then_replan_until_met_or_out_of_replans() -> None:
    header = GoalSpec(title="g", compile=True, success_criteria="has prices", max_replans=1)
    work = [TaskSpec(id="a", title="A", skill="s"), TaskSpec(id="b", title="B", skill="s")]
    first = next_step(header, work, {"a"}, None)
    assert first.action == "compile" and first.task is not None
    assert (first.task.id, first.task.depends_on) == ("compile-1", ["a"])
    assert first.task.inputs["success_criteria"] == "has prices"
    compiled = [*work, first.task]
    unmet = Verdict(met=False, reasons="no prices")
    replan = next_step(header, compiled, {"a", "compile-1"}, unmet)
    assert replan.action == "replan" and replan.task is not None and replan.task.id == "replan-1"
    again = [*compiled, replan.task, TaskSpec(id="prices", title="P", skill="s")]
    second = next_step(header, again, {"a", "prices"}, None)
    assert second.task is not None and second.task.id == "compile-2"
    final = next_step(header, [*again, second.task], set(), unmet)
    assert final.action == "done" and final.unmet is not None and "after 1 re-plans" in final.unmet
    assert next_step(header, [*again, second.task], set(), Verdict(met=True)).unmet is None
    assert "expected" in str(parse_compiled({"deliverable": "x"}))


async def test_an_agent_compiles_the_deliverable_and_the_goal_is_met(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(2, workspace, compile=True, success_criteria="Both tasks are in it")
    handle = await start_goal(client, spec, task_queue)
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), SKILLS):
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert [t.task_id for t in report.tasks] == ["t1", "t2", "compile-1"]
    document = await read_deliverable(pool, handle.id)
    assert document is not None and document.startswith("# Test goal\n\n## t1\n\nTask 1 done")
    assert report.deliverable_bytes == len(document.encode())


class StrictJudge:
    """Judges the criteria unmet until a revision exists; plans one revision."""

    def __init__(self) -> None:
        self.rounds = 0

    async def __call__(self, work: Work) -> WorkResult:
        expects = work.task.get("expects")
        if expects == "deliverable":
            self.rounds += 1
            revised = any(k.startswith("add-") for k in work.context["dependency_results"])
            return WorkResult(
                {"deliverable": f"round {self.rounds}", "met": revised, "reasons": "no prices"}
            )
        if expects == "plan":
            round = work.task["inputs"]["round"]
            return WorkResult(
                {"tasks": [{"id": f"add-{round}", "title": "Add", "skill": "writing"}]}
            )
        return WorkResult(f"{work.task_id} done")


async def test_criteria_not_met_re_plan_with_the_reasons_then_compile_again(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(1, workspace, compile=True, success_criteria="prices", max_replans=2)
    handle = await start_goal(client, spec, task_queue)
    judge = StrictJudge()
    async with running_agents(client, pool, workspace, judge, SKILLS):
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert [t.task_id for t in report.tasks] == [
        "t1",
        "compile-1",
        "replan-1",
        "add-1",
        "compile-2",
    ]
    assert await read_deliverable(pool, handle.id) == "round 2"
    added = [e["message"] for e in await events(pool, handle.id, "tasks_added")]
    assert any("re-planning (replan-1): no prices" in m for m in added)


async def test_criteria_never_met_fail_the_goal_with_the_judges_reasons(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(1, workspace, compile=True, success_criteria="prices", max_replans=0)
    handle = await start_goal(client, spec, task_queue)
    async with running_agents(client, pool, workspace, StrictJudge(), SKILLS):
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.FAILED
    assert report.error == "success criteria not met after 0 re-plans: no prices"
    assert report.progress.tasks_completed == report.progress.tasks_total == 2
