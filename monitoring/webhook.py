"""The alert webhook: new alerts are POSTed as JSON to the URL people configured."""

import asyncio
import json
import logging
import urllib.request
from typing import Any

log = logging.getLogger("goalkeeper.webhook")


async def post_alerts(url: str | None, alerts: list[dict[str, Any]]) -> None:
    """POST `{"source": "goalkeeper", "alerts": [...]}`; a webhook that fails is logged,
    never fatal (the alerts table holds every alert either way)."""
    if url and alerts:
        await asyncio.to_thread(_post, url, alerts)


def _post(url: str, alerts: list[dict[str, Any]]) -> None:
    body = json.dumps({"source": "goalkeeper", "alerts": alerts}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except OSError as exc:
        log.warning("alert webhook failed: %s", exc)
