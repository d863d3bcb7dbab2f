"""Whether the API reaches PostgreSQL and Temporal, and the health check's open alerts."""

from typing import Any

import asyncpg
from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from temporalio.client import Client
from temporalio.service import RPCError

from interfaces.api.auth import Access, Reader
from interfaces.api.state import Pool, Temporal
from interfaces.health import latest
from interfaces.telemetry import masked

router = APIRouter(tags=["health"])


_UNREACHABLE = {
    "description": "PostgreSQL or Temporal unreachable: the same body, `status` 'unreachable'",
    "content": {"application/json": {}},  # not a problem: the health report itself
}


@router.get("/health", responses={503: _UNREACHABLE})
async def health(pool: Pool, client: Temporal, access: Reader) -> JSONResponse:
    """`ok`, `alerts` (open alerts) or `unreachable` (503): what the health check last found
    (its alerts about the token's workspaces)."""
    body = await health_report(pool, client, access)
    status = 503 if body["status"] == "unreachable" else 200
    return JSONResponse(jsonable_encoder(body), status_code=status)


async def health_report(pool: asyncpg.Pool, client: Client, access: Access) -> dict[str, Any]:
    """What `/health` answers: reachability, status, the open alerts the token may see and
    the last check."""
    body: dict[str, Any] = {"postgres": {"reachable": True}, "temporal": {"reachable": True}}
    try:
        last, alerts = await latest(pool, access.scope)
    except (OSError, asyncpg.PostgresError) as exc:
        body["postgres"] = {"reachable": False, "error": masked(exc)}
        last, alerts = None, []
    try:
        await client.service_client.check_health()
    except (RPCError, RuntimeError) as exc:
        body["temporal"] = {"reachable": False, "error": masked(exc)}
    reachable = body["postgres"]["reachable"] and body["temporal"]["reachable"]
    body["status"] = "unreachable" if not reachable else "alerts" if alerts else "ok"
    body["open_alerts"] = len(alerts)
    body["alerts"] = [dict(a) | {"alert_id": str(a["alert_id"])} for a in alerts]
    body["last_check"] = dict(last) if last else None
    return body
