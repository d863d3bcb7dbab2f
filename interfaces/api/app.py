"""The HTTP API's application: its routes under /api/v1, its connections, its errors, and
what it refuses before any route (hosts it does not serve, bodies too large)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from temporalio.client import Client

from goalkeeper.signing import public_key_of
from interfaces.a2a import server as a2a
from interfaces.api import (
    actions,
    agent_keys,
    agent_notes,
    agent_protocol,
    agent_rates,
    agents,
    costs,
    events,
    goals,
    health,
    problems,
    questions,
    requests,
    suggestions,
    work,
)
from interfaces.api.auth import DELEGATE, read
from interfaces.api.events import StreamLimits
from interfaces.api.guards import (
    BodyLimit,
    BodyTooLarge,
    HostCheck,
    allowed_hosts,
    body_too_large,
)
from interfaces.api.listener import EventListener
from interfaces.client import connect
from interfaces.config import Settings
from interfaces.keyring import key_for
from interfaces.mcp import server as mcp
from interfaces.stack import database_url
from interfaces.web import pages
from store.database import create_pool
from store.keys import ensure_delegate_key

PREFIX = "/api/v1"


def create_app(
    settings: Settings,
    *,
    pool: asyncpg.Pool | None = None,
    client: Client | None = None,
    bind_host: str = "127.0.0.1",
) -> FastAPI:
    """The API app; it opens a pool and a Temporal client for its lifetime unless given them.

    Given connections stay open when the app stops: whoever made them closes them.
    `bind_host` is the address it listens on, which sets the Host names it answers unless
    `settings` names them (ValueError when it must and does not).
    """
    hosts = allowed_hosts(settings.api_allowed_hosts, bind_host)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_pool = None
        if pool is None:
            own_pool = await create_pool(database_url(settings, start=False), max_size=10)
        try:
            app.state.pool = pool or own_pool
            app.state.listener = EventListener(app.state.pool)
            # The dashboard signs decisions with its own key, on behalf of the person.
            app.state.signing_key = key_for("delegate", DELEGATE)
            await ensure_delegate_key(
                app.state.pool, DELEGATE, public_key_of(app.state.signing_key)
            )
            app.state.client = client or await connect(settings, service="goalkeeper-api")
            yield
        finally:
            if hasattr(app.state, "listener"):
                await app.state.listener.close()
            if own_pool is not None:
                await own_pool.close()

    app = FastAPI(
        title="Goalkeeper",
        summary="Goals for teams of AI agents, on Temporal: read goals, tasks, agents and costs; "
        "decide, budget and give feedback with a personal token.",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.open_reads = bool(settings.api_open_reads)
    app.state.trace_url = settings.trace_url
    app.state.stream_limits = StreamLimits(
        settings.api_streams_per_token, settings.api_streams_per_address
    )
    problems.install(app)
    app.add_exception_handler(BodyTooLarge, body_too_large)
    pages.install(app)
    a2a.install(app, settings)  # the Agent Card and A2A's JSON-RPC, with the tokens
    app.include_router(actions.router, prefix=PREFIX)  # each route needs a person's token
    app.include_router(questions.router, prefix=PREFIX)
    app.include_router(work.router_for(settings), prefix=PREFIX)  # so does each of these
    app.include_router(agent_protocol.router, prefix=PREFIX)  # an agent's own credential
    app.include_router(agent_keys.router, prefix=PREFIX)  # so does this one
    app.include_router(agent_notes.router, prefix=PREFIX)  # and this one
    app.include_router(agent_rates.router, prefix=PREFIX)  # and this one
    # events before goals: GET /goals/{goal_id:path} would take /goals/X/events as a goal id
    for module in (events, goals, requests, agents, costs, suggestions, health):
        app.include_router(module.router, prefix=PREFIX, dependencies=[read])
    app.include_router(pages.signing_in)
    app.include_router(pages.router)
    app.mount("/static", pages.static, name="static")
    _docs(app)
    mcp.install(app, settings)
    # The last added runs first: a foreign Host is refused before a body is even counted.
    app.add_middleware(
        BodyLimit,
        limit=settings.api_max_body_bytes,
        on_refused=agent_protocol.record_oversized,  # an agent's refusals are recorded
    )
    app.add_middleware(HostCheck, hosts=hosts)
    return app


def _docs(app: FastAPI) -> None:
    """The OpenAPI docs at /docs, with Swagger UI from the installed package, not a CDN."""
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path))

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="Goalkeeper API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )
