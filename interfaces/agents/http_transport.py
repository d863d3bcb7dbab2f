"""`HttpTransport`: an agent runner reaching Goalkeeper over the HTTP agent protocol
(/api/v1/agent/) with the agent's own credential: no PostgreSQL login, no Temporal."""

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from goalkeeper.errors import GoalkeeperError
from goalkeeper.references import holds_reference
from interfaces.agents.transport import Row
from store.results import INLINE_LIMIT
from store.token_rates import RateRefused

log = logging.getLogger("goalkeeper.agent")

CREDENTIAL_ENV = "GOALKEEPER_AGENT_CREDENTIAL"
"""Where agent.py --api reads the agent's credential when --credential is not given."""

WAIT_SECONDS = 30.0
"""How long one poll for work is held open by the API."""


RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 20.0)
"""Waits before sending a report again while the API cannot be reached or fails (5xx); a
report sent twice is harmless (the second is refused as already taken)."""


class ProtocolError(GoalkeeperError):
    """The API refused a request this runner cannot go on without (e.g. its credential)."""


class HttpTransport:
    """The agent protocol over HTTP, for the one agent its credential acts for."""

    def __init__(self, api: str, credential: str, wait: float = WAIT_SECONDS) -> None:
        self.base = api.rstrip("/") + "/api/v1/agent"
        self.wait = wait
        self._headers = {"Authorization": f"Bearer {credential}"}
        self._http: httpx.AsyncClient | None = None
        self._rates_unknown = False

    async def open(self) -> None:
        self._http = httpx.AsyncClient(
            base_url=self.base, headers=self._headers, timeout=httpx.Timeout(self.wait + 30)
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("the transport is not open")
        return self._http

    async def me(self) -> dict[str, Any]:
        """The agent the credential acts for, and its workspace."""
        answer = await self.http.get("/me")
        if answer.status_code != 200:
            raise ProtocolError(_problem(answer))
        me: dict[str, Any] = answer.json()
        return me

    async def register_key(self, public_key: str) -> None:
        """Register the agent's first public key (an operator replaces one it has)."""
        answer = await self.http.put("/key", json={"public_key": public_key})
        if answer.status_code != 200:
            raise ProtocolError(_problem(answer))

    async def assignments(
        self, agent_ids: Sequence[str], adopt_in: str | None, known: Sequence[str]
    ) -> list[Row]:
        try:
            answer = await self.http.get(
                "/assignments", params={"wait": self.wait, "seen": list(known)}
            )
        except httpx.TransportError as exc:  # the API away: the next poll tries again
            log.warning("could not reach the API for assignments: %r", exc)
            await asyncio.sleep(RETRY_SECONDS[1])
            return []
        if answer.status_code == 401:
            raise ProtocolError(_problem(answer))
        if answer.status_code == 503:  # the API is stopping: poll again when it says
            log.info("the API is not serving assignments now: %s", _problem(answer))
            await asyncio.sleep(_retry_after(answer))
            return []
        if answer.status_code != 200:
            log.warning("the API refused a poll for assignments: %s", _problem(answer))
            await asyncio.sleep(RETRY_SECONDS[1])
            return []
        found = answer.json()
        return [a | {"agent_id": found["agent_id"]} for a in found["assignments"]]

    async def heartbeat(
        self,
        goal_id: str,
        task_id: str,
        agent_id: str,
        assignment_id: str,
        at: datetime,
        signature: str | None,
    ) -> bool:
        body = {"at": at.isoformat()} | ({"signature": signature} if signature else {})
        answer = await self.http.post(f"/assignments/{assignment_id}/heartbeat", json=body)
        if answer.status_code == 200:
            return True
        problem = answer.json() if _is_problem(answer) else {}
        if problem.get("title") == "Task ended" or answer.status_code in (403, 404):
            return False
        log.warning(
            "agent %s: heartbeat on %s/%s refused: %s", agent_id, goal_id, task_id, _problem(answer)
        )
        return True  # not counted, but the assignment is still the agent's: work on

    async def by_reference(self, assignment_id: str, result: Any) -> Any:
        if len(json.dumps(result)) <= INLINE_LIMIT and not holds_reference(result):
            return result
        answer = await self.http.post(f"/assignments/{assignment_id}/results", json=result)
        if answer.status_code != 201:
            raise ProtocolError(_problem(answer))
        return answer.json()

    async def report(self, goal_id: str, task_id: str, report: dict[str, Any]) -> bool:
        path = f"/assignments/{report['assignment_id']}/report"
        for wait in (*RETRY_SECONDS, None):
            try:
                answer = await self.http.post(path, json=report)
            except httpx.TransportError as exc:
                failure = repr(exc)
            else:
                if answer.status_code < 500:
                    break
                failure = _problem(answer)
            if wait is None:
                log.warning(
                    "agent %s: report on %s/%s not sent: %s",
                    report["agent_id"],
                    goal_id,
                    task_id,
                    failure,
                )
                return False
            log.warning(
                "agent %s: report not sent yet (%s); again in %.0f s",
                report["agent_id"],
                failure,
                wait,
            )
            await asyncio.sleep(wait)
        if answer.status_code == 200:
            return True
        log.warning(
            "agent %s: report on %s/%s refused: %s",
            report["agent_id"],
            goal_id,
            task_id,
            _problem(answer),
        )
        return False

    async def resolve(self, value: Any) -> Any:
        return value  # the API sends dependencies' results already read

    async def claim_provisioned(self, agent_id: str, public_key: str) -> bool:
        return False  # a credential acts for its own agent only

    async def note(self, assignment_id: str, agent_id: str, text: str) -> None:
        answer = await self.http.post(f"/assignments/{assignment_id}/notes", json={"text": text})
        if answer.status_code != 201:
            raise ProtocolError(_problem(answer))

    async def token_rate(self, agent_id: str, provider: str, tokens: int) -> float:
        answer = await self.http.post("/token-rate", json={"provider": provider, "tokens": tokens})
        if answer.status_code == 404:  # an API from before token rates: none is enforced
            if not self._rates_unknown:
                self._rates_unknown = True
                log.warning("the API at %s has no token rates: model calls are not held back",
                            self.base)  # fmt: skip
            return 0.0
        if answer.status_code != 200:
            raise RateRefused(_problem(answer), answer.status_code)
        return float(answer.json()["wait_seconds"])


def _retry_after(answer: httpx.Response) -> float:
    """The seconds a 503's Retry-After asks for, within 1 to 60; 5 if it names none."""
    try:
        return min(max(float(answer.headers.get("retry-after", "5")), 1.0), 60.0)
    except ValueError:
        return 5.0


def _is_problem(answer: httpx.Response) -> bool:
    return answer.headers.get("content-type", "").startswith("application/problem+json")


def _problem(answer: httpx.Response) -> str:
    """What a refusal says: its problem's title and detail, or its status."""
    if _is_problem(answer):
        problem = answer.json()
        return f"{answer.status_code} {problem.get('title')}: {problem.get('detail')}"
    return f"{answer.status_code} {answer.text[:200]}"
