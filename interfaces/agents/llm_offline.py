"""The LLM agent without a model provider: a scripted `FunctionModel`, priced as
gpt-4o-mini, that searches the demo's MCP library before writing, and answers triage,
plans and deliverables as the simulated agents would. For `make demo ARGS=--llm-offline`:
real tool calls, notes and costs without a key.

`make demo ARGS=--llm-offline` starts its agents with this hook and `config()`.
"""

import random
import sys
from pathlib import Path
from typing import Any

from pydantic_ai import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from interfaces.agents.judgement import simulated_compile, simulated_plan, simulated_triage
from interfaces.agents.llm import LlmHook
from interfaces.agents.runner import Work, WorkResult

PRICED_AS = "gpt-4o-mini"
TOOLS = Path(__file__).with_name("demo_tools.py")


def config() -> dict[str, Any]:
    """The agents' configuration: the demo's MCP library, started per attempt over stdio."""
    server = {"name": "library", "command": sys.executable, "args": [str(TOOLS)]}
    return {"mcp_servers": [server], "tool_timeout_seconds": 20}


def answer_of(work: Work) -> dict[str, Any] | None:
    """The structured answer a task expects, as the simulated agents give it; None for text."""
    expects = work.task.get("expects")
    inputs = work.task.get("inputs") or {}
    if expects == "triage":
        rng = random.Random(f"offline:{work.task_id}:{work.attempt}")
        question = str(inputs.get("question", ""))
        return simulated_triage(question, inputs.get("runbook_candidates") or [], rng)
    if expects == "plan":
        return simulated_plan(work.goal, inputs)
    if expects == "deliverable":
        return simulated_compile(work.goal, work.context.get("dependency_results") or {})
    return None


def model_for(work: Work) -> FunctionModel:
    """A model scripted for `work`: search, count the draft's words, then answer."""
    answer = answer_of(work)
    title = str(work.task.get("title") or work.task_id)

    def respond(messages: list[Any], info: AgentInfo) -> ModelResponse:
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        returns = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts
                   if isinstance(p, ToolReturnPart)]  # fmt: skip
        read = 900 + 250 * turn + sum(len(str(p.content)) for p in returns) // 4
        usage = RequestUsage(input_tokens=read, output_tokens=60 + 40 * turn)
        if answer is not None:
            tools = info.output_tools
            kind = str(answer.get("kind", "")).title()
            tool = next((t for t in tools if kind and t.name.endswith(kind)), tools[0])
            return ModelResponse(parts=[ToolCallPart(tool.name, answer)], usage=usage)
        draft = f"{title}: drawn from " + "; ".join(str(p.content)[:200] for p in returns)
        if turn == 0:
            call = ToolCallPart("library_search", {"query": title, "limit": 3})
            return ModelResponse(parts=[call], usage=usage)
        if turn == 1:
            call = ToolCallPart("library_word_count", {"text": draft})
            return ModelResponse(parts=[call], usage=usage)
        return ModelResponse(parts=[TextPart(draft)], usage=usage)

    return FunctionModel(respond, model_name=PRICED_AS)


async def hook(work: Work) -> WorkResult:
    """For `agent.py --hook interfaces.agents.llm_offline:hook --config ...`."""
    return await LlmHook(model_for(work))(work)
