"""An agent hook built on `pydantic-ai`: an LLM does the work, and answers in Goalkeeper's
own models where a task expects them (a triage verdict, a plan), so its output is checked
by pydantic before it is reported and by Goalkeeper after.

    GOALKEEPER_LLM_MODEL=openai:gpt-4o-mini python agent.py --skills triage,planning,writing \\
        --hook interfaces.agents.llm:hook

The model is any that `pydantic-ai` knows by name (`openai:...`, `anthropic:...`,
`google-gla:...`, with the provider's package and key installed), or a local
OpenAI-compatible server: `GOALKEEPER_LLM_BASE_URL=http://localhost:11434/v1` with
`GOALKEEPER_LLM_MODEL=llama3.1`.
"""

import json
import os
from typing import Any

from pydantic import BaseModel, Field
from pydantic_ai import Agent
from pydantic_ai.models import Model

from goalkeeper.compiling import Compiled
from goalkeeper.models import TaskSpec
from goalkeeper.requests import TriageAnswer, TriageGoal
from interfaces.agents.runner import Work, WorkResult

INSTRUCTIONS = (
    "You are an agent on a team that Goalkeeper runs. Do the task you are given for the "
    "goal it belongs to, following the guidance, using the results of the tasks it "
    "depends on, and fixing what earlier feedback asked for. Answer with the result only."
)


class LlmPlan(BaseModel):
    """A plan as an LLM writes it: tasks, or a runbook from the candidates."""

    tasks: list[TaskSpec] = []
    runbook: str | None = None
    parameters: dict[str, str] = {}
    reason: str = Field(default="", description="why this plan reaches the goal")


OUTPUTS: dict[str | None, Any] = {
    "triage": TriageAnswer | TriageGoal,
    "plan": LlmPlan,
    "deliverable": Compiled,
    None: str,
}


class LlmHook:
    """Does each assignment with one `pydantic-ai` agent run; reports its token use."""

    def __init__(self, model: Model | str) -> None:
        self.model = model

    async def __call__(self, work: Work) -> WorkResult:
        expects = work.task.get("expects")
        agent: Agent[None, Any] = Agent(
            self.model, output_type=OUTPUTS.get(expects, str), instructions=INSTRUCTIONS
        )
        run = await agent.run(prompt(work))
        output = run.output
        result = (
            output.model_dump(mode="json", exclude_defaults=expects == "plan")
            if isinstance(output, BaseModel)
            else output
        )
        return WorkResult(result=result, tokens_used=run.usage.total_tokens or 0)


def prompt(work: Work) -> str:
    """What the agent is told: the goal, its task, and everything its context carries."""
    goal, task, context = work.goal, work.task, work.context
    parts = [
        f"Goal: {goal.get('title', '')}\n{goal.get('description', '')}".strip(),
        f"Goal guidance: {goal.get('guidance')}" if goal.get("guidance") else "",
        f"Your task ({task.get('id')}, skill {task.get('skill')}): {task.get('title', '')}",
        task.get("description") or "",
        f"Task guidance: {task.get('guidance')}" if task.get("guidance") else "",
        _section("Inputs", task.get("inputs")),
        _section("The plan of the goal", goal.get("plan")),
        _section("Results of the tasks this one depends on", context.get("dependency_results")),
        _section("Feedback on earlier attempts", context.get("rework")),
    ]
    return "\n\n".join(p for p in parts if p)


def _section(title: str, value: Any) -> str:
    return f"{title}:\n{json.dumps(value, indent=2, ensure_ascii=False)}" if value else ""


def model_from_env() -> Model | str:
    """The model named by GOALKEEPER_LLM_MODEL, at GOALKEEPER_LLM_BASE_URL if given."""
    name = os.environ.get("GOALKEEPER_LLM_MODEL")
    if not name:
        raise RuntimeError(
            "set GOALKEEPER_LLM_MODEL to a pydantic-ai model name, e.g. openai:gpt-4o-mini "
            "(and GOALKEEPER_LLM_BASE_URL for a local OpenAI-compatible server)"
        )
    base_url = os.environ.get("GOALKEEPER_LLM_BASE_URL")
    if not base_url:
        return name
    from pydantic_ai.models.openai import OpenAIChatModel  # needs the `openai` package
    from pydantic_ai.providers.openai import OpenAIProvider

    key = os.environ.get("GOALKEEPER_LLM_API_KEY", "none")
    return OpenAIChatModel(name, provider=OpenAIProvider(base_url=base_url, api_key=key))


_hook: LlmHook | None = None


async def hook(work: Work) -> WorkResult:
    """For `agent.py --hook interfaces.agents.llm:hook`: the model comes from the environment."""
    global _hook
    if _hook is None:
        _hook = LlmHook(model_from_env())
    return await _hook(work)
