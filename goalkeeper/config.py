"""Settings read from the environment, with the defaults of the embedded dev stack."""

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where Temporal and PostgreSQL are, and which task queue the workers poll."""

    # Field defaults double as the documented defaults of the environment variables.

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "goals"
    database_url: str | None = None
    """None means the embedded PostgreSQL of the dev stack, under `data_dir`."""
    data_dir: Path = field(default_factory=lambda: Path(".goalkeeper"))
    ui_url: str = "http://localhost:8233"
    """Temporal Web UI, for the links the CLI prints."""
    traces: str = "none"
    """Where spans go: `none`, `console`, or `otlp` (to OTEL_EXPORTER_OTLP_ENDPOINT)."""
    metrics_address: str | None = None
    """host:port to serve Temporal SDK metrics for Prometheus on, or None for none."""

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        return cls(
            temporal_address=env.get("TEMPORAL_ADDRESS") or cls.temporal_address,
            temporal_namespace=env.get("TEMPORAL_NAMESPACE") or cls.temporal_namespace,
            task_queue=env.get("GOALKEEPER_TASK_QUEUE") or cls.task_queue,
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env.get("GOALKEEPER_DATA_DIR") or ".goalkeeper"),
            ui_url=(env.get("GOALKEEPER_UI_URL") or cls.ui_url).rstrip("/"),
            traces=(env.get("GOALKEEPER_TRACES") or cls.traces).lower(),
            metrics_address=env.get("GOALKEEPER_METRICS_ADDRESS") or None,
        )
