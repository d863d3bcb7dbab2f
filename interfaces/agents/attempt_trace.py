"""An attempt's place in its goal's trace, by OpenTelemetry's GenAI semantic conventions.

The worker puts the W3C `traceparent` of the span that assigned the work into the
assignment's context (`monitoring.traces`); an attempt's spans are its children, so one
trace runs from the request through the goal and the task to the agent's model calls and
tools. Each attempt is one `invoke_agent <agent>` span: the LLM hook's comes from
`pydantic-ai`'s instrumentation (with `chat` and `execute_tool` spans below it), and the
runner makes one for every other hook. A hook of your own that opens its own calls
`traced_by_hook()` inside it.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from goalkeeper.limits import MAX_ERROR_CHARS, clip

if TYPE_CHECKING:
    from interfaces.agents.runner import Work, WorkResult

TRACEPARENT = "traceparent"
"""The key of an assignment's context that carries its goal's trace (activities/assignment.py)."""

TRACER = "goalkeeper.agent"

_PROPAGATOR = TraceContextTextMapPropagator()
_ATTEMPT = otel_context.create_key("goalkeeper.attempt")


def goal_context(work: "Work") -> otel_context.Context:
    """The context of the span that assigned `work`: the parent of the attempt's spans.

    Without a valid `traceparent` it is an empty context, so the attempt's spans make a
    trace of their own rather than join whatever span happened to be current.
    """
    value = work.context.get(TRACEPARENT)
    if not isinstance(value, str):
        return otel_context.Context()
    return _PROPAGATOR.extract({TRACEPARENT: value}, context=otel_context.Context())


@contextmanager
def in_goal_trace(work: "Work") -> Iterator[None]:
    """Make `work`'s goal trace the current context for the code inside, and undo it after,
    whatever happens there. An attempt the runner opened stays known inside."""
    current = otel_context.get_current()
    joined = goal_context(work)
    attempt = otel_context.get_value(_ATTEMPT, current)
    if attempt is not None:
        joined = otel_context.set_value(_ATTEMPT, attempt, joined)
    token = otel_context.attach(joined)
    try:
        yield
    finally:
        otel_context.detach(token)


def attempt_attributes(work: "Work") -> dict[str, AttributeValue]:
    """What an attempt's `invoke_agent` span says of it, beyond the conventions' own."""
    return {
        "gen_ai.agent.id": work.agent_id,
        "goalkeeper.goal.id": work.goal_id,
        "goalkeeper.task.id": work.task_id,
        "goalkeeper.attempt": work.attempt,
        "goalkeeper.assignment.id": work.assignment_id,
    }


@dataclass
class Attempt:
    """One attempt the runner is making, as its span will say it."""

    traced: bool = False
    """Whether the hook opened the attempt's `invoke_agent` span itself."""
    done: "WorkResult | None" = None


def traced_by_hook() -> None:
    """Tell the runner that the hook opened this attempt's `invoke_agent` span itself, so
    the runner does not make another."""
    attempt = otel_context.get_value(_ATTEMPT)
    if isinstance(attempt, Attempt):
        attempt.traced = True


@contextmanager
def attempt_span(work: "Work", provider: TracerProvider | None = None) -> Iterator[Attempt]:
    """Run an attempt in its goal's trace; at its end, its `invoke_agent` span, unless the
    hook made one (`traced_by_hook`).

    The span is made when the attempt ends, timed from its start: only then is it known
    whether the hook traced itself. Spans a hook of its own opens are therefore children of
    the assigning span, beside this one. Set `done` on what is yielded to record the
    attempt's token use.
    """
    attempt = Attempt()
    started = time.time_ns()
    parent = goal_context(work)
    token = otel_context.attach(otel_context.set_value(_ATTEMPT, attempt, parent))
    failure: BaseException | None = None
    try:
        yield attempt
    except BaseException as exc:
        failure = exc
        raise
    finally:
        otel_context.detach(token)
        if not attempt.traced:
            _record(work, attempt, failure, started, parent, provider)


def _record(
    work: "Work",
    attempt: Attempt,
    failure: BaseException | None,
    started: int,
    parent: otel_context.Context,
    provider: TracerProvider | None,
) -> None:
    tracer = (provider or trace.get_tracer_provider()).get_tracer(TRACER)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": work.agent_id,
        **attempt_attributes(work),
    }
    # A failure may say what it spent (the LLM hook's does).
    done = attempt.done if failure is None else getattr(failure, "done", None)
    read, written = getattr(done, "input_tokens", None), getattr(done, "output_tokens", None)
    if isinstance(read, int) and isinstance(written, int):
        attributes["gen_ai.usage.input_tokens"] = read
        attributes["gen_ai.usage.output_tokens"] = written
    span = tracer.start_span(
        f"invoke_agent {work.agent_id}",
        context=parent,
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        start_time=started,
    )
    if failure is not None:
        span.set_attribute("error.type", type(failure).__name__)
        message = str(failure) or type(failure).__name__
        span.set_status(Status(StatusCode.ERROR, clip(message, MAX_ERROR_CHARS)))
    span.end()
