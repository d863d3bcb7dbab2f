"""The trace an agent's work joins: the W3C `traceparent` of the span running now (the
activity that assigns the work, within its goal's trace), for the agent to carry on; and the
trace id an assignment's recorded `traceparent` names."""

import re

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


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_id_of(value: object) -> str | None:
    """The trace id a W3C `traceparent` names (32 hex digits), to link an attempt to its
    trace; None for anything else, or the all-zero id the standard calls invalid."""
    if not isinstance(value, str):
        return None
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None or found[1] == "0" * 32:
        return None
    return found[1]
