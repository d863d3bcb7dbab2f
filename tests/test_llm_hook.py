"""The `pydantic-ai` agent hook, against pydantic-ai's offline test model: no network."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg
import pytest
from pydantic_ai.models.test import TestModel
from temporalio.client import Client

from goalkeeper.planning import parse_plan
from goalkeeper.requests import parse_triage
from goalkeeper.statuses import GoalStatus, RequestStatus
from interfaces.agents import llm, registry
from interfaces.agents.runner import AgentRunner, Work
from tests.helpers import PATIENCE, eventually, goal_spec, running_agents, start_goal
from tests.test_llm_tools import STDIO, USAGE, expected_cost, scripted
from workflows.request import RequestWorkflow


def work(task: Mapping[str, object], **context: object) -> Work:
    goal = {"title": "Q3 launch", "description": "500 leads", "guidance": "Be brief"}
    return Work("a1", "agent-1", "g", str(task["id"]), 1, {"goal": goal, "task": task, **context})


async def test_a_triage_comes_back_as_goalkeepers_own_verdict() -> None:
    hook = llm.LlmHook(TestModel(custom_output_args={"kind": "answer", "answer": "Yes."}))
    done = await hook(work({"id": "triage", "title": "t", "skill": "triage", "expects": "triage"}))
    assert done.result == {"kind": "answer", "answer": "Yes.", "reason": ""}
    assert not isinstance(parse_triage(done.result), str) and done.tokens_used > 0


async def test_a_plan_comes_back_as_task_specs_that_goalkeeper_accepts() -> None:
    tasks = [{"id": "a", "title": "A", "skill": "s"}, {"id": "b", "title": "B", "skill": "s",
                                                       "depends_on": ["a"]}]  # fmt: skip
    hook = llm.LlmHook(TestModel(custom_output_args={"tasks": tasks, "reason": "two steps"}))
    done = await hook(work({"id": "plan", "title": "p", "skill": "planning", "expects": "plan"}))
    plan = parse_plan(done.result)
    assert not isinstance(plan, str) and [t["id"] for t in plan.tasks] == ["a", "b"]


async def test_other_work_is_text_and_the_prompt_carries_the_context() -> None:
    hook = llm.LlmHook(TestModel(custom_output_text="Three emails, drafted."))
    task = {"id": "email", "title": "Write", "skill": "writing", "guidance": "Under 120 words"}
    rework = [{"approver": "ops-lead", "comment": "shorter", "previous_result": "long"}]
    item = work(task, dependency_results={"csv": "500 rows"}, rework=rework)
    done = await hook(item)
    assert done.result == "Three emails, drafted."
    prompt = llm.prompt(item)
    for expected in ("Q3 launch", "Be brief", "Under 120 words", "500 rows", "shorter"):
        assert expected in prompt


def test_the_model_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOALKEEPER_LLM_MODEL", raising=False)
    with pytest.raises(RuntimeError, match="set GOALKEEPER_LLM_MODEL"):
        llm.model_from_env()
    monkeypatch.setenv("GOALKEEPER_LLM_MODEL", "openai:gpt-4o-mini")
    assert llm.model_from_env() == "openai:gpt-4o-mini"
    monkeypatch.setenv("GOALKEEPER_LLM_MODEL", "llama3.1")
    monkeypatch.setenv("GOALKEEPER_LLM_BASE_URL", "http://localhost:11434/v1")
    model = llm.model_from_env()
    assert not isinstance(model, str) and model.model_name == "llama3.1"


async def test_a_request_triaged_by_the_llm_hook_on_the_real_stack(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    verdict = {"kind": "answer", "answer": "Refunds within 30 days.", "reason": "policy"}
    hook = llm.LlmHook(TestModel(custom_output_args=verdict))
    async with running_agents(client, pool, workspace, hook, ("triage",)):
        handle = await client.start_workflow(
            RequestWorkflow.run,
            {"question": "What is our refund policy?", "workspace": workspace},
            id=f"request-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        view = await asyncio.wait_for(handle.result(), PATIENCE)
    assert (view.status, view.answer) == (RequestStatus.ANSWERED, "Refunds within 30 days.")


@asynccontextmanager
async def llm_agents(
    client: Client, pool: asyncpg.Pool, workspace: str, hook: llm.LlmHook
) -> AsyncIterator[None]:
    """Two LLM agents whose config names the test's MCP server over stdio."""
    config = {"mcp_servers": [STDIO], "tool_timeout_seconds": 30}
    agent_ids = [f"{workspace}-llm-{n}" for n in range(2)]
    for agent_id in agent_ids:
        await registry.register_agent(pool, agent_id, workspace, ("writing",), 2, config=config)
    runner = AgentRunner(client, pool, agent_ids, hook, sweep_interval=3600)
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        yield
    finally:
        stop.set()
        await running
        await registry.take_offline(pool, agent_ids)


async def test_a_goal_done_by_the_llm_hook_with_mcp_tools_counts_its_tokens_and_cost(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    model = scripted([("calc_add", {"a": 20, "b": 22})], answer="the sum")
    spec = goal_spec(1, workspace, budget_usd=1.0, approvers=["boss"])
    async with llm_agents(client, pool, workspace, llm.LlmHook(model)):
        handle = await start_goal(client, spec, task_queue)
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status == GoalStatus.COMPLETED, report
    (task,) = report.tasks
    assert task.tokens_used == 2 * sum(USAGE)  # input and output of both model calls
    assert task.cost_usd == pytest.approx(expected_cost(2))
    row = await pool.fetchrow(
        "SELECT spent_tokens, spent_usd, (SELECT result FROM tasks t WHERE t.goal_id = g.goal_id)"
        " FROM goals g WHERE goal_id = $1",
        handle.id,
    )
    assert row is not None and row["spent_tokens"] == 2 * sum(USAGE)
    assert float(row["spent_usd"]) == pytest.approx(expected_cost(2))
    assert "the sum: calc_add=42" in row["result"]


async def test_an_attempt_stopped_by_its_goals_budget_fails_with_the_reason_and_its_spend_counts(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    model = scripted([("calc_add", {"a": 1, "b": 1})])
    spec = goal_spec(1, workspace, budget_usd=0.0004, approvers=["boss"])
    async with llm_agents(client, pool, workspace, llm.LlmHook(model)):
        handle = await start_goal(client, spec, task_queue)

        async def first_attempt() -> asyncpg.Record | None:
            return await pool.fetchrow(
                "SELECT status::text, error, tokens_used, cost_usd FROM assignments"
                " WHERE goal_id = $1 AND attempt = 1 AND status IN ('failed', 'completed')",
                handle.id,
            )

        attempt = await eventually(first_attempt, what="the first attempt to end")
        await handle.terminate("seen enough")
    assert attempt["status"] == "failed"
    assert attempt["error"] == (
        "budget: USD 0.000172 left, the next model call would cost about 0.000249"
    )
    assert attempt["tokens_used"] == sum(USAGE)  # the one model call made is counted
    assert float(attempt["cost_usd"]) == pytest.approx(expected_cost(1), abs=1e-6)
    spent = await pool.fetchval("SELECT spent_tokens FROM goals WHERE goal_id = $1", handle.id)
    assert spent >= sum(USAGE)
