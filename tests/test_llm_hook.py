"""The `pydantic-ai` agent hook, against pydantic-ai's offline test model: no network."""

import asyncio
import uuid
from collections.abc import Mapping

import asyncpg
import pytest
from pydantic_ai.models.test import TestModel
from temporalio.client import Client

from goalkeeper.planning import parse_plan
from goalkeeper.requests import parse_triage
from goalkeeper.statuses import RequestStatus
from interfaces.agents import llm
from interfaces.agents.runner import Work
from tests.helpers import PATIENCE, running_agents
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
