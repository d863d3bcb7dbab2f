"""No secret in output or logs: passwords in URLs, the webhook's path, keys and tokens are
masked wherever Goalkeeper prints or logs them, and the commands people run show none."""

import asyncio
import io
import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from goalkeeper.masking import SecretFilter, mask, mask_url, secrets_of
from interfaces import telemetry
from interfaces.api.auth import Access
from interfaces.api.health import health_report
from interfaces.stack import TemporalDevServer, free_port
from tests.helpers import PATIENCE, ROOT, start_worker_process
from tests.starter import Ran, printed_until, run_starter

SLACK = "https://hooks.slack.com/services/T0AAAA/B0BBBB/xoxbSECRETwebhook"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://goalkeeper:s3cret@db:5432/goalkeeper",
            "postgresql://goalkeeper:****@db:5432/goalkeeper",
        ),
        ("postgresql://nobody@127.0.0.1:5432/none", "postgresql://nobody@127.0.0.1:5432/none"),
        ("postgres://db.internal/goalkeeper", "postgres://db.internal/goalkeeper"),
        (  # the embedded PostgreSQL's: no password, nothing to hide, still usable as printed
            "postgresql://postgres:@/postgres?host=/tmp/data/postgres",
            "postgresql://postgres:@/postgres?host=/tmp/data/postgres",
        ),
        ("postgresql://gk:s3cret@[::1]:5432/gk", "postgresql://gk:****@[::1]:5432/gk"),
        ("postgresql://gk:p%40ss%2Fw%3Ard@[fe80::1%25eth0]/gk", "postgresql://gk:****@[fe80::1%25eth0]/gk"),
        ("postgresql://gk:p@ss@db/gk", "postgresql://gk:****@db/gk"),  # an unescaped @
        (
            "postgresql:///gk?host=/run/pg&password=s3cret&sslpassword=x",
            "postgresql:///gk?host=/run/pg&password=****&sslpassword=****",
        ),
        (SLACK, "https://hooks.slack.com/****"),
        ("https://alerts.example.com/hook?token=abc123&x=1", "https://alerts.example.com/****"),
        ("https://alerts.example.com?token=abc123", "https://alerts.example.com/****"),
        ("http://user:pw@alerts.example.com:8080/in", "http://user:****@alerts.example.com:8080/****"),
        ("https://alerts.example.com/", "https://alerts.example.com/"),
    ],
)  # fmt: skip
def test_a_url_is_printed_without_its_password_or_a_webhooks_path(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_text_loses_every_secret_and_keeps_the_rest() -> None:
    env = {
        "DATABASE_URL": "postgresql://gk:Tr1cky%21pass@db.internal:5432/gk",
        "GOALKEEPER_ALERT_WEBHOOK": SLACK,
        "GOALKEEPER_LLM_API_KEY": "sk-live-0123456789abcdef",
        "GOALKEEPER_CODEC_KEYS": "2024-a:QUJDREVGR0hJSktMTU5PUA==, 2024-b:WFlaWFlaWFlaWFlaWFla",
        "PGPASSWORD": "another-secret",
        "GOALKEEPER_TASK_QUEUE": "goals-and-keys",  # not a secret, though it says "keys"
        "TEMPORAL_ADDRESS": "localhost:7233",
    }
    secrets = secrets_of(env)
    text = (
        "connecting to postgresql://gk:Tr1cky%21pass@db.internal:5432/gk as gk "
        "(password Tr1cky!pass); alerts to " + SLACK + "; model key sk-live-0123456789abcdef; "
        "codec key WFlaWFlaWFlaWFlaWFla; PGPASSWORD=another-secret; "
        "another URL postgresql://ops:unnamed-pw@replica/gk; dsn 'host=db password=hunter2'; "
        "queue goals-and-keys on localhost:7233; dashboard http://127.0.0.1:8000/goals"
    )
    assert mask(text, secrets) == (
        "connecting to postgresql://gk:****@db.internal:5432/gk as gk "
        "(password ****); alerts to https://hooks.slack.com/****; model key ****; "
        "codec key ****; PGPASSWORD=****; "
        "another URL postgresql://ops:****@replica/gk; dsn 'host=db password=****'; "
        "queue goals-and-keys on localhost:7233; dashboard http://127.0.0.1:8000/goals"
    )


def test_a_password_that_is_also_a_name_is_masked_only_in_its_url() -> None:
    """docker-compose's `goalkeeper:goalkeeper`: masking the word everywhere would hide the
    logger names and the database name, and protect nothing."""
    url = "postgresql://goalkeeper:goalkeeper@postgres:5432/goalkeeper"
    secrets = secrets_of({"DATABASE_URL": url, "SHORT_TOKEN": "abc"})
    assert secrets == ()
    assert mask(f"goalkeeper.worker: {url}", secrets) == (
        "goalkeeper.worker: postgresql://goalkeeper:****@postgres:5432/goalkeeper"
    )


def test_log_records_are_masked_in_message_arguments_and_traceback() -> None:
    logger, out = _logger_into_text("test.masking.filter")
    logger.addFilter(SecretFilter(["sk-live-0123456789abcdef"]))
    url = "postgresql://gk:s3cret-pw@db/gk"
    logger.info("connecting to %s with key %s", url, "sk-live-0123456789abcdef")
    try:
        raise OSError(f"cannot reach {url}")
    except OSError:
        logger.exception("failed with %r", {"dsn": url})
    logged = out.getvalue()
    assert "s3cret-pw" not in logged and "sk-live" not in logged, logged
    assert "connecting to postgresql://gk:****@db/gk with key ****" in logged
    assert "OSError: cannot reach postgresql://gk:****@db/gk" in logged
    assert "failed with {'dsn': 'postgresql://gk:****@db/gk'}" in logged


def test_hide_secrets_covers_loggers_with_their_own_handlers_and_uncaught_errors(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    telemetry.hide_secrets({"GOALKEEPER_ALERT_WEBHOOK": SLACK})
    logger, out = _logger_into_text("uvicorn.test-masking")  # added after hide_secrets
    logger.warning("posting to %s failed", SLACK)
    assert out.getvalue() == "posting to https://hooks.slack.com/**** failed\n"
    try:
        raise RuntimeError(f"webhook {SLACK} answered 500")
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    err = capsys.readouterr().err
    assert "RuntimeError: webhook https://hooks.slack.com/**** answered 500" in err
    assert "xoxbSECRET" not in err


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Logging and the exception hook as they were, after a test that installs masking."""
    factory, hook = logging.getLogRecordFactory(), sys.excepthook
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)
        sys.excepthook = hook


def _logger_into_text(name: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger(f"{name}.{uuid.uuid4().hex[:6]}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


@dataclass
class Secrets:
    """An environment that holds secrets, and the values no output may show."""

    env: dict[str, str]
    values: list[str]
    password: str
    webhook_port: int

    def assert_none_in(self, said: dict[str, str]) -> None:
        for what, text in said.items():
            leaked = [value for value in self.values if value in text]
            assert not leaked, f"{what} shows a secret ({leaked}): {text}"


@pytest.fixture
def secrets(temporal_server: TemporalDevServer, database_url: str) -> Secrets:
    """A password in DATABASE_URL (the test PostgreSQL trusts local connections, so any
    password works), a webhook whose path is its secret, and an API key."""
    password = f"pw-{uuid.uuid4().hex[:12]}%21x"
    webhook_secret = f"services/T0/B0/{uuid.uuid4().hex}"
    api_key = f"sk-{uuid.uuid4().hex}"
    webhook_port = free_port()  # nothing listens: no alert is posted in these tests
    env = {
        "TEMPORAL_ADDRESS": temporal_server.address,
        "DATABASE_URL": _with_password(database_url, password),
        "GOALKEEPER_ALERT_WEBHOOK": f"http://127.0.0.1:{webhook_port}/{webhook_secret}",
        "GOALKEEPER_LLM_API_KEY": api_key,
    }
    values = [password, unquote(password), webhook_secret, api_key]
    return Secrets(env, values, password, webhook_port)


async def test_commands_and_processes_print_and_log_no_secret(
    secrets: Secrets,
    temporal_server: TemporalDevServer,
    pool: asyncpg.Pool,
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = secrets.env
    said: dict[str, str] = {}
    person = f"scan-{uuid.uuid4().hex[:6]}"
    made = await run_starter(env, "token", "new", "--as", person, "--workspace", "scan")
    assert made.code == 0, made.err
    token = made.out.splitlines()[0]
    said["token new (apart from the token, shown once by design)"] = made.out.replace(token, "")
    said["token new, stderr"] = made.err
    secrets.values.append(token)
    for args in (("token", "list"), ("token", "list", "--json"), ("goal", "list", "--json")):
        ran = await run_starter(env, *args)
        assert ran.code == 0, ran.err
        said[" ".join(args)] = ran.out + ran.err

    unreachable = f"postgresql://postgres:{secrets.password}@127.0.0.1:{free_port()}/none"
    ran = await run_starter({**env, "DATABASE_URL": unreachable}, "goal", "list")
    assert ran.code == 3
    assert "cannot reach PostgreSQL at postgresql://postgres:****@127.0.0.1:" in ran.err
    said["goal list, PostgreSQL unreachable"] = ran.out + ran.err
    ran = await _agent({**env, "DATABASE_URL": unreachable})
    assert ran.code == 3, ran.err
    said["agent.py, PostgreSQL unreachable"] = ran.out + ran.err

    for name, value in env.items():  # what the worker and the API read
        monkeypatch.setenv(name, value)
    log = tmp_path / "worker.log"
    queue = f"scan-{uuid.uuid4().hex}"
    worker = await start_worker_process(temporal_server, env["DATABASE_URL"], queue, log)
    worker.send_signal(signal.SIGTERM)
    await asyncio.to_thread(worker.wait, 30)
    said["worker log"] = log.read_text()
    webhook = f"http://127.0.0.1:{secrets.webhook_port}/****"
    assert f"new alerts are POSTed to {webhook}" in said["worker log"]

    unreachable_pool = await asyncpg.create_pool(unreachable, min_size=0)
    try:
        answer = await health_report(unreachable_pool, client, Access(None, None, None))
    finally:
        await unreachable_pool.close()
    assert answer["postgres"]["reachable"] is False
    said["GET /health, PostgreSQL unreachable"] = str(answer)
    secrets.assert_none_in(said)


async def test_up_prints_and_logs_no_secret(secrets: Secrets, tmp_path: Path) -> None:
    """`up` says how to connect to its PostgreSQL (whose URL has no password: it trusts
    connections on its socket in the data folder) and shows none of the environment's
    secrets, nor does its dashboard's health answer."""
    api_port = free_port()
    up = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "starter.py"), "up", "--port", str(free_port()),
        "--ui-port", str(free_port()), "--api-port", str(api_port),
        env={**os.environ, **secrets.env, "GOALKEEPER_DATA_DIR": str(tmp_path / "data")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        printed = await printed_until(up, "Ctrl-C stops the stack", timeout=PATIENCE)
        assert f"PostgreSQL  postgresql://postgres:@/postgres?host={tmp_path}" in printed
        async with httpx.AsyncClient(timeout=60) as http:
            health = await http.get(f"http://127.0.0.1:{api_port}/api/v1/health")
        assert health.status_code == 200, health.text
    finally:
        if up.returncode is None:
            up.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(up.communicate(), PATIENCE)
    assert up.returncode == 0, err.decode()
    secrets.assert_none_in(
        {"up": printed + out.decode() + err.decode(), "up's GET /health": health.text}
    )


async def _agent(env: dict[str, str]) -> Ran:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "agent.py"),
        "--count",
        "1",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), PATIENCE)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def _with_password(url: str, password: str) -> str:
    scheme, _, rest = url.partition("://")
    userinfo, _, host = rest.partition("@")
    return f"{scheme}://{userinfo.partition(':')[0]}:{password}@{host}"
