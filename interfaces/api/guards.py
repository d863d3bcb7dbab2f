"""What the API refuses before any route sees a request: hosts it does not serve (a
DNS-rebinding page's requests name the attacker's host) and bodies over the size limit
(refused from `Content-Length`, or counted while they stream in)."""

import ipaddress
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interfaces.api.problems import answers, problem_response

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""The names a browser on this machine reaches a loopback server by, at any port."""


def is_loopback(host: str) -> bool:
    """Whether a listening address is this machine's own (127.0.0.1, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(configured: tuple[str, ...] | None, bind_host: str) -> tuple[str, ...]:
    """The Host names to answer: those configured, else the loopback names when listening
    on loopback; listening elsewhere, they must be configured (a guess could let any page
    reach the API through DNS rebinding)."""
    if configured is not None:
        return configured
    if is_loopback(bind_host):
        return LOOPBACK_HOSTS
    raise ValueError(
        f"GOALKEEPER_API_ALLOWED_HOSTS must name the hosts clients reach the API by when it "
        f"listens on {bind_host!r} (e.g. goalkeeper.example.com, or * behind a proxy that "
        "checks them), got nothing"
    )


@answers({421: "a Host header naming no host served (GOALKEEPER_API_ALLOWED_HOSTS)"})
class HostCheck:
    """Refuses (421) a request whose Host header is not one of `hosts` (`name` at any port,
    `name:port`, or `*` for any)."""

    def __init__(self, app: ASGIApp, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = frozenset(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.hosts:
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if host in self.hosts or name in self.hosts:
            await self.app(scope, receive, send)
            return
        response = problem_response(
            Request(scope),
            421,
            "Host not served",
            f"expected a Host header naming one of {', '.join(sorted(self.hosts))} "
            f"(GOALKEEPER_API_ALLOWED_HOSTS), got {host!r}",
            host=host,
            setting="GOALKEEPER_API_ALLOWED_HOSTS",
        )
        await response(scope, receive, send)


class BodyTooLarge(HTTPException):
    """A request body past the limit, noticed while it streamed in. An HTTPException, so
    FastAPI passes it on rather than calling it a malformed body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"expected a request body of at most {limit:,} bytes")
        self.limit = limit


OnRefused = Callable[[Scope, int, int | None, int | None], Awaitable[None]]
"""Told of each body refused as too large: the request's scope, the limit, the declared
Content-Length (None if absent or malformed) and the bytes counted (None if unread)."""


@answers({413: "a request body over GOALKEEPER_API_MAX_BODY_BYTES"})
class BodyLimit:
    """Refuses (413) a request whose body is over `limit` bytes, before it is read whole.

    A body at most twice the limit is read to its end (and dropped) before the answer, so
    its client, still sending, gets the 413 rather than a reset connection; a larger one
    is answered at once. `on_refused`, if given, is told of each refusal first (to record
    it), without the body.
    """

    def __init__(self, app: ASGIApp, limit: int, on_refused: OnRefused | None = None) -> None:
        self.app = app
        self.limit = limit
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        if declared is not None and (size is None or size > self.limit):
            if size is not None and size <= 2 * self.limit:
                await self._drop(receive, size)
            await self._told(scope, size, None)
            await self._refuse(scope, receive, send, f"got Content-Length {declared}")
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if message.get("more_body"):
                        await self._drop(receive, self.limit)
                    await self._told(scope, size, received)
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)

    async def _told(self, scope: Scope, declared: int | None, counted: int | None) -> None:
        if self.on_refused is not None:
            await self.on_refused(scope, self.limit, declared, counted)

    async def _drop(self, receive: Receive, at_most: int) -> None:
        """Read and drop the rest of a body, up to `at_most` bytes."""
        dropped = 0
        while dropped <= at_most:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body"):
                return

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, got: str) -> None:
        await _too_large(Request(scope), self.limit, got)(scope, receive, send)


async def body_too_large(request: Request, exc: Exception) -> Response:
    """The answer to a body found too large while a route read it."""
    assert isinstance(exc, BodyTooLarge)
    return _too_large(request, exc.limit, f"got more than {exc.limit:,}")


def _too_large(request: Request, limit: int, got: str) -> Response:
    response = problem_response(
        request,
        413,
        "Request body too large",
        f"expected a request body of at most {limit:,} bytes (GOALKEEPER_API_MAX_BODY_BYTES), "
        f"{got}",
        limit=limit,
        setting="GOALKEEPER_API_MAX_BODY_BYTES",
    )
    response.headers["Connection"] = "close"
    return response
