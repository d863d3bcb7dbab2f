"""An agent hook built on `pydantic-ai`: an LLM does the work, and answers in Goalkeeper's
own models where a task expects them (a triage verdict, a plan), so its output is checked
by pydantic before it is reported and by Goalkeeper after.

    GOALKEEPER_LLM_MODEL=openai:gpt-4o-mini python agent.py --skills triage,planning,writing \\
        --hook interfaces.agents.llm:hook

The model is any that `pydantic-ai` knows by name (`openai:...`, `anthropic:...`,
`google-gla:...`, with the provider's package and key installed), or a local
OpenAI-compatible server: `GOALKEEPER_LLM_BASE_URL=http://localhost:11434/v1` with
`GOALKEEPER_LLM_MODEL=llama3.1`.

The agent's configuration (`agent.py --config`) may name a model and MCP servers whose
tools the model may call (`llm_tools.LlmConfig`). Each attempt reports its input and output
tokens, its cost (`llm_costs`) and every tool call, posts a note per tool call, and stops
before a model call that would spend more than the assignment's budget has left. Its spans
join the goal's trace (`attempt_trace`): `invoke_agent <agent>` for the attempt, with a
`chat <model>` span per model call and an `execute_tool <tool>` span per tool call below it.
"""

import json
import logging
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from opentelemetry.trace import TracerProvider, get_current_span
from pydantic import BaseModel, Field
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability, Instrumentation
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.models import Model, infer_model
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.usage import RunUsage, UsageLimits

from goalkeeper.compiling import Compiled
from goalkeeper.models import TaskSpec
from goalkeeper.requests import TriageAnswer, TriageGoal
from interfaces.agents.attempt_trace import attempt_attributes, in_goal_trace, traced_by_hook
from interfaces.agents.llm_costs import Budget, OverBudget, TokenLimiter, budget_left, run_cost
from interfaces.agents.llm_rates import limiter_for
from interfaces.agents.llm_tools import (
    BadConfig,
    LlmConfig,
    ToolCallRecorder,
    ToolsetFailed,
    parse_config,
    started,
    toolsets_for,
)
from interfaces.agents.runner import SimulatedFailure, Work, WorkResult

log = logging.getLogger("goalkeeper.agent.llm")

MAX_MODEL_CALLS = 50

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


class LlmFailure(SimulatedFailure):
    """An attempt of the LLM agent that failed, with what it had spent and the tool calls it
    made (the runner counts the spend of a failure that carries it)."""

    def __init__(self, message: str, done: WorkResult) -> None:
        super().__init__(message, done.tokens_used, done.cost_usd)
        self.done = done


class LlmHook:
    """Does each assignment with one `pydantic-ai` agent run, with the MCP tools its
    configuration names; reports its tokens, its cost and every tool call. Its spans go to
    `tracer_provider`, or to the process's own if None."""

    def __init__(
        self,
        model: Model | str,
        limiter: TokenLimiter | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.model = model
        self.limiter = limiter
        self.tracer_provider = tracer_provider

    async def __call__(self, work: Work) -> WorkResult:
        try:
            config = parse_config(work.config)
        except BadConfig as exc:
            raise LlmFailure(str(exc), WorkResult(result=None)) from None
        model = infer_model(config.model or self.model)
        expects = work.task.get("expects")
        output_type = OUTPUTS.get(expects, str)
        usd_left, tokens_left = budget_left(work.context)
        recorder = ToolCallRecorder(note=work.note)
        budget = Budget(model.model_name, model.system, usd_left, tokens_left,
                        config.expected_output_tokens,
                        self.limiter or limiter_for(work, model.system))  # fmt: skip
        usage = RunUsage()
        traced = Instrumentation(settings=instrumentation(self.tracer_provider))
        try:
            with in_goal_trace(work):
                async with started(config) as servers:
                    agent: Agent[None, Any] = Agent(
                        model,
                        name=work.agent_id,
                        output_type=output_type,
                        instructions=INSTRUCTIONS,
                        toolsets=toolsets_for(servers, config, recorder.timed_out),
                        capabilities=[traced, AttemptAttributes(work), recorder, budget],
                    )
                    async with agent.iter(prompt(work), usage=usage,
                                          usage_limits=limits(config)) as run:  # fmt: skip
                        async for _node in run:
                            pass
                    assert run.result is not None
                    output = run.result.output
        except (ToolsetFailed, OverBudget) as exc:
            raise LlmFailure(str(exc), self._done(None, usage, model, recorder)) from None
        except UsageLimitExceeded as exc:
            raise LlmFailure(f"limit: {exc}", self._done(None, usage, model, recorder)) from None
        except UnexpectedModelBehavior as exc:
            wanted = getattr(output_type, "__name__", str(output_type))
            raise LlmFailure(
                f"the model did not answer as expected ({wanted}): {exc}",
                self._done(None, usage, model, recorder),
            ) from None
        result = (
            output.model_dump(mode="json", exclude_defaults=expects == "plan")
            if isinstance(output, BaseModel)
            else output
        )
        return self._done(result, usage, model, recorder)

    def _done(
        self, result: Any, usage: RunUsage, model: Model, recorder: ToolCallRecorder
    ) -> WorkResult:
        cost = run_cost(usage, model.model_name, model.system)
        if recorder.dropped:
            log.info("%d tool calls past the first %d were counted, not kept",
                     recorder.dropped, len(recorder.calls))  # fmt: skip
        return WorkResult(
            result=result,
            tokens_used=usage.input_tokens + usage.output_tokens,
            cost_usd=float(cost or 0),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_known=cost is not None,
            tool_calls=tuple(recorder.calls),
        )


@dataclass
class AttemptAttributes(AbstractCapability[Any]):
    """Says which goal, task, attempt and assignment the run's `invoke_agent` span is for
    (the instrumentation opens that span outermost, so it is current here), and that the
    runner need not make one of its own."""

    work: Work

    async def before_run(self, ctx: RunContext[Any]) -> None:
        get_current_span().set_attributes(attempt_attributes(self.work))
        traced_by_hook()


@cache
def instrumentation(provider: TracerProvider | None) -> InstrumentationSettings:
    """`pydantic-ai`'s spans by the GenAI semantic conventions (version 6: tool results in
    the `tool` role), without prompts, answers or tool arguments: those are the goal's data,
    kept in PostgreSQL under its access rules, not copied to whoever reads the traces. The
    tools' definitions are named once per model call (`gen_ai.tool.definitions`), not again
    with the rest of the request's parameters."""
    return InstrumentationSettings(
        tracer_provider=provider,
        include_content=False,
        include_model_request_parameters=False,
        version=6,
    )


def limits(config: LlmConfig) -> UsageLimits:
    """The run's own bounds: model calls, and tool calls as configured."""
    return UsageLimits(request_limit=MAX_MODEL_CALLS, tool_calls_limit=config.max_tool_calls)


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
