"""What every endpoint reads from: the app's PostgreSQL pool and Temporal client."""

from typing import Annotated

import asyncpg
from fastapi import Depends, Query, Request
from temporalio.client import Client

MAX_LIMIT = 1000
"""Rows per page at most: every list is paged, so no request reads an unbounded set."""


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def _client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


Pool = Annotated[asyncpg.Pool, Depends(_pool)]
Temporal = Annotated[Client, Depends(_client)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page (1-1000)")]
Offset = Annotated[int, Query(ge=0, description="rows to skip")]


def page(items: list, total: int, offset: int, limit: int) -> dict:
    """A page of a list: its items, how many there are in all, and where the next page starts."""
    end = offset + len(items)
    return {"items": items, "total": total, "next_offset": end if end < total else None}
