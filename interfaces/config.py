"""Settings read from the environment, with the defaults of the embedded dev stack."""

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from goalkeeper.learning import check_selection_mode
from goalkeeper.seals import SealKeys
from interfaces.a2a.reach import Reach
from interfaces.codec import Keyring, parse_keys, read_keys_file
from interfaces.secret import parse_secret, read_secret_file, stack_secret

K = TypeVar("K")


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
    trace_url: str | None = None
    """A trace viewer's address with `{trace_id}` in it (Jaeger's
    `http://localhost:16686/trace/{trace_id}`): a task's page links each attempt's trace."""
    metrics_address: str | None = None
    """host:port to serve Temporal SDK metrics for Prometheus on, or None for none."""
    health_interval_seconds: int = 60
    """How often the health check runs; 0 leaves the schedule alone."""
    watch_interval_seconds: int = 5
    """How often each worker looks for wedged workflows and stalled goals; 0 turns it off."""
    stall_after_seconds: int = 120
    """How long a goal's ready tasks may wait with none assigned before it is stalled."""
    alert_webhook: str | None = None
    """URL the health check and the watch POST new and cleared alerts to, as JSON."""
    agent_selection: str = "learned"
    """How agents are picked: `learned` (their records weighed) or `least_loaded`."""
    selection_seed: str = "goalkeeper"
    """Seeds the learned choice, with each assignment's id."""
    codec_keys: Keyring | None = None
    """Keys that encrypt payloads in Temporal (the first) and decrypt them (all); None: off."""
    codec_accept_plaintext: bool = False
    """With keys, whether workers still take unencrypted messages (while migrating)."""
    require_signatures: bool = False
    """Goals that do not say refuse unsigned reports, heartbeats and decisions."""
    api_open_reads: bool | None = None
    """Whether the API and dashboard answer reads without a token; None (unset) means no
    for `serve`, yes for `up` and the demo on loopback. Actions always need one."""
    api_allowed_hosts: tuple[str, ...] | None = None
    """Host names (`name` for any port, or `name:port`; `*` for any) the API answers;
    None means the loopback names when it listens on loopback, and must be set otherwise."""
    api_max_body_bytes: int = 1024 * 1024
    """The largest request body the API reads; a larger one is refused (413) unread."""
    api_streams_per_token: int = 4
    """Event streams one token may hold open at once."""
    api_streams_per_address: int = 8
    """Event streams one client address may hold open at once."""
    a2a_reach: Reach = field(default_factory=Reach)
    """The non-public hosts (names, name:port, CIDR ranges) A2A agents' cards, keys and
    interfaces may be fetched from; public addresses are always allowed."""
    worker_secret: SealKeys | None = None
    """The keys that seal the workers' own messages; None: the embedded stack's file."""

    def seal_keys(self) -> SealKeys:
        """The workers' secret: as configured, else the embedded stack's own; a worker on
        another PostgreSQL must be given it, since every worker must hold the same."""
        if self.worker_secret is not None:
            return self.worker_secret
        if self.database_url is None:
            return stack_secret(self.data_dir)
        raise ValueError(
            "GOALKEEPER_WORKER_SECRET or GOALKEEPER_WORKER_SECRET_FILE must be set when "
            "DATABASE_URL is: every worker needs the same secret to seal the messages "
            "between its workflows; make one with 'python starter.py worker-secret new'"
        )

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
            trace_url=_trace_url(env, "GOALKEEPER_TRACE_URL"),
            metrics_address=env.get("GOALKEEPER_METRICS_ADDRESS") or None,
            health_interval_seconds=_seconds(env, "GOALKEEPER_HEALTH_INTERVAL", 60),
            watch_interval_seconds=_seconds(env, "GOALKEEPER_WATCH_INTERVAL", 5),
            stall_after_seconds=_seconds(env, "GOALKEEPER_STALL_AFTER", 120),
            alert_webhook=env.get("GOALKEEPER_ALERT_WEBHOOK") or None,
            agent_selection=check_selection_mode(
                env.get("GOALKEEPER_AGENT_SELECTION") or cls.agent_selection
            ),
            selection_seed=env.get("GOALKEEPER_SELECTION_SEED") or cls.selection_seed,
            codec_keys=_codec_keys(env),
            codec_accept_plaintext=_switch(env, "GOALKEEPER_CODEC_ACCEPT_PLAINTEXT", False),
            require_signatures=_switch(env, "GOALKEEPER_REQUIRE_SIGNATURES", False),
            api_open_reads=_said(env, "GOALKEEPER_API_OPEN_READS"),
            api_allowed_hosts=_hosts(env, "GOALKEEPER_API_ALLOWED_HOSTS"),
            api_max_body_bytes=_count(env, "GOALKEEPER_API_MAX_BODY_BYTES", cls.api_max_body_bytes),
            api_streams_per_token=_count(
                env, "GOALKEEPER_API_STREAMS_PER_TOKEN", cls.api_streams_per_token
            ),
            api_streams_per_address=_count(
                env, "GOALKEEPER_API_STREAMS_PER_ADDRESS", cls.api_streams_per_address
            ),
            a2a_reach=Reach.parse((env.get("GOALKEEPER_A2A_ALLOWED_HOSTS") or "").split(",")),
            worker_secret=_worker_secret(env),
        )


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    said = _said(env, name)
    return default if said is None else said


def _said(env: Mapping[str, str], name: str) -> bool | None:
    """An on/off setting, or None where it is not set."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "on", "yes"):
        return True
    if raw in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{name} must be on or off (1/0, true/false), got {raw!r}")


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name} must be a whole number of 1 or more, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a whole number of 1 or more, got {raw!r}")
    return value


def _trace_url(env: Mapping[str, str], name: str) -> str | None:
    """A trace viewer's http(s) address with `{trace_id}` where the id goes."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.lower().startswith(("http://", "https://")) or "{trace_id}" not in raw:
        raise ValueError(
            f"{name} must be an http(s) address with {{trace_id}} where the trace id goes "
            f"(http://localhost:16686/trace/{{trace_id}}), got {raw!r}"
        )
    return raw


def _hosts(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    """Host names as a client's Host header gives them: `name`, `name:port`, `[::1]`, `*`."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    for host in hosts:
        if host != "*" and not _HOST.fullmatch(host):
            raise ValueError(
                f"{name} must be host names, comma-separated (example.com, example.com:8000, "
                f"[::1] or *), got {host!r} in {raw!r}"
            )
    return hosts


_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:[0-9]{1,5})?")


def _seconds(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be whole seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be 0 (off) or more seconds, got {raw!r}")
    return value


def _codec_keys(env: Mapping[str, str]) -> Keyring | None:
    return _keys(env, "GOALKEEPER_CODEC_KEYS", parse_keys, read_keys_file)


def _worker_secret(env: Mapping[str, str]) -> SealKeys | None:
    return _keys(env, "GOALKEEPER_WORKER_SECRET", parse_secret, read_secret_file)


def _keys(
    env: Mapping[str, str],
    name: str,
    parse: Callable[[str, str], K],
    read: Callable[[Path], K],
) -> K | None:
    """Keys from the variable `name`, or from the file its `_FILE` variable names."""
    inline, path = env.get(name), env.get(f"{name}_FILE")
    if inline and path:
        raise ValueError(
            f"set {name} or {name}_FILE, not both: which keys are meant would be a guess"
        )
    if path:
        return read(Path(path))
    return parse(inline, name) if inline else None
