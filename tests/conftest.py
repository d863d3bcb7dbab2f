"""Session fixtures: a real Temporal dev server and a real PostgreSQL, on free ports.

Each test gets its own task queue (and worker) and its own goal ids, so tests
never see each other's work. Browser tests get the dashboard served over HTTP and a
headless Chromium (`dashboard`, `browser`; helpers in tests/web.py).
"""

import http.server
import json
import os
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from selenium import webdriver
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from goalkeeper.seals import SealKeys
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.secret import new_secret_entry, parse_secret
from interfaces.stack import EmbeddedPostgres, TemporalDevServer, free_port
from interfaces.telemetry import interceptor_for
from store.database import apply_schema, create_pool, login_url, scram_verifier
from tests import web
from worker import build_worker
from workflows import sealing

SERVICES_GROUP = "goalkeeper_worker"
"""The group of docker-compose.yml's service logins (ops/postgres/roles.sh makes it)."""


@pytest.fixture(scope="session", autouse=True)
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Signing keys the suite makes (the dashboard's, approvers') stay in a temporary
    directory, never the user's own; processes the tests start inherit it."""
    path = tmp_path_factory.mktemp("keys")
    before = os.environ.get("GOALKEEPER_KEY_DIR")
    os.environ["GOALKEEPER_KEY_DIR"] = str(path)
    yield path
    if before is None:
        os.environ.pop("GOALKEEPER_KEY_DIR", None)
    else:
        os.environ["GOALKEEPER_KEY_DIR"] = before


@pytest.fixture(scope="session", autouse=True)
def worker_secret() -> Iterator[SealKeys]:
    """The workers' secret of the suite: workers built in process use it, and worker
    processes the tests start inherit it."""
    entry = new_secret_entry("test")
    keys = parse_secret(entry, "the suite's worker secret")
    sealing.use(keys)
    before = os.environ.get("GOALKEEPER_WORKER_SECRET")
    os.environ["GOALKEEPER_WORKER_SECRET"] = entry
    yield keys
    if before is None:
        os.environ.pop("GOALKEEPER_WORKER_SECRET", None)
    else:
        os.environ["GOALKEEPER_WORKER_SECRET"] = before


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def temporal_server(stack_dir: Path) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(stack_dir / "temporal.db", port=free_port(), ui_port=None)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres(stack_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(stack_dir / "postgres")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres) -> str:
    return postgres.url


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=20)
    await apply_schema(pool)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def client(temporal_server: TemporalDevServer) -> Client:
    return await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)


@pytest.fixture
async def task_queue(client: Client, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A fresh task queue with a Goalkeeper worker polling it for the test's duration."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, pool, queue):
        yield queue


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Where a traced client's and its worker's spans are kept, for the test to read."""
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """A tracer provider whose spans go to `exporter`: the worker's and the agents' alike."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
async def traced_client(temporal_server: TemporalDevServer, provider: TracerProvider) -> Client:
    """A client that traces, its spans to `exporter`; its workers inherit the tracing."""
    return await Client.connect(
        temporal_server.address,
        data_converter=pydantic_data_converter,
        interceptors=[interceptor_for(provider)],
    )


@pytest.fixture
async def traced_queue(traced_client: Client, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A fresh task queue with a traced Goalkeeper worker polling it."""
    queue = f"traced-{uuid.uuid4().hex[:8]}"
    async with build_worker(traced_client, pool, queue):  # the worker inherits the interceptor
        yield queue


@pytest.fixture
async def worker_login(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[str]:
    """The DATABASE_URL of a fresh member of goalkeeper_worker (docker-compose.yml's
    `worker` and `api` logins), after the owner applied the schema, which grants the group
    what it may do. Roles are cluster-wide: the login is dropped after the test, the group
    stays, as compose's would."""
    await pool.execute(
        f"DO $$ BEGIN CREATE ROLE {SERVICES_GROUP} NOLOGIN; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    await apply_schema(pool)
    name, password = f"test_worker_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    await pool.execute(
        f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{scram_verifier(password)}' "
        f"IN ROLE {SERVICES_GROUP}"
    )
    try:
        yield login_url(database_url, name, password)
    finally:
        await pool.execute(f'DROP ROLE "{name}"')


@pytest.fixture
def workspace() -> str:
    """A workspace of the test's own, so its agents are not shared with other tests."""
    return f"ws-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP endpoint that keeps what is POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    server.shutdown()


@pytest.fixture
async def api(pool: asyncpg.Pool, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API on the test's stack, called in process, at its `/api/v1` root, with
    reads open (as `up` serves it); actions need a token. Tests of closed reads, hosts and
    limits serve their own app over HTTP (tests/test_api_access.py)."""
    app = create_app(Settings(api_open_reads=True), pool=pool, client=client)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost/api/v1") as http,
    ):
        yield http


@pytest.fixture(scope="session")
def dashboard(
    pool: asyncpg.Pool, database_url: str, temporal_server: TemporalDevServer
) -> Iterator[str]:
    """The web dashboard and HTTP API on the test stack, served by uvicorn; its base URL.

    It runs in a thread with its own event loop, pool and Temporal client (on the same
    PostgreSQL and Temporal as `pool` and `client`), so it answers a browser even while
    a test blocks its own loop on a Selenium call. Asking for `pool` applies the schema.
    As `serve` does, it needs a token to read: sign in with `web.sign_in`.
    """
    settings = Settings(database_url=database_url, temporal_address=temporal_server.address)
    with web.serve(create_app(settings)) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium at laptop size (1280x800), fresh for each test, quit after it.

    Chromium and chromedriver are installed (`.ci/browser`) if missing. Selenium blocks:
    from an async test, wait for a page with `await web.wait_until(browser, ...)`, which
    leaves the test's event loop (and its workers) running.
    """
    driver = web.chrome()
    try:
        yield driver
    finally:
        driver.quit()
