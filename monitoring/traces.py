"""The trace an agent's work joins: the W3C `traceparent` of the span running now (the
activity that assigns the work, within its goal's trace), for the agent to carry on."""

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


def traceparent() -> str | None:
    """The current span as a `traceparent` header's value; None where nothing is traced."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")
