"""The HTTP API's application: its routes under /api/v1, its connections, its errors."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from temporalio.client import Client

from activities.database import create_pool
from interfaces.api import (
    actions,
    agents,
    costs,
    events,
    goals,
    health,
    problems,
    suggestions,
)
from interfaces.client import connect
from interfaces.config import Settings
from interfaces.stack import database_url
from interfaces.web import pages

PREFIX = "/api/v1"


def create_app(
    settings: Settings, *, pool: asyncpg.Pool | None = None, client: Client | None = None
) -> FastAPI:
    """The API app; it opens a pool and a Temporal client for its lifetime unless given them.

    Given connections stay open when the app stops: whoever made them closes them.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_pool = None
        if pool is None:
            own_pool = await create_pool(database_url(settings, start=False), max_size=10)
        try:
            app.state.pool = pool or own_pool
            app.state.client = client or await connect(settings, service="goalkeeper-api")
            yield
        finally:
            if own_pool is not None:
                await own_pool.close()

    app = FastAPI(
        title="Goalkeeper",
        summary="Goals for teams of AI agents, on Temporal: read goals, tasks, agents and costs; "
        "decide, budget and give feedback with a personal token.",
        version="1",
        lifespan=lifespan,
    )
    problems.install(app)
    # events before goals: GET /goals/{goal_id:path} would take /goals/X/events as a goal id
    for module in (actions, events, goals, agents, costs, suggestions, health):
        app.include_router(module.router, prefix=PREFIX)
    app.include_router(pages.router)
    app.mount("/static", pages.static, name="static")
    return app
