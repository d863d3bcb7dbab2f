"""Who reads and acts through the API: the holder of a personal token (`token new`), sent
as `Authorization: Bearer TOKEN` or kept by a browser signed in at /login, and the
workspaces that token may see.

Reads need a token unless reads are open (`GOALKEEPER_API_OPEN_READS`); actions always
do. A signed-in browser's cookie acts only for requests from the dashboard's own pages
(their `Origin`), so no other site can act with it.
"""

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from interfaces.api.problems import Problem, answers
from interfaces.api.state import Pool
from store.tokens import InvalidToken, TokenHolder, token_holder

DELEGATE = "dashboard"
"""The name the API's decisions are signed by, on behalf of their token's person."""

COOKIE = "goalkeeper_token"
"""The cookie a browser signed in at /login keeps its token in (HttpOnly, SameSite=Strict)."""

MAKE_ONE = "'starter.py token new --as NAME --workspace W'"

_bearer = HTTPBearer(auto_error=False, description=f"a token from {MAKE_ONE}")
_cookie = APIKeyCookie(
    name=COOKIE, auto_error=False, description="set by signing in on the dashboard (/login)"
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Access:
    """What a request may see: its token's workspaces, or every one (an all-workspaces
    token, or open reads without a token, when `person` is None)."""

    person: str | None
    token_id: str | None
    workspaces: frozenset[str] | None
    """None: every workspace."""

    @classmethod
    def of(cls, holder: TokenHolder) -> "Access":
        return cls(holder.person, holder.token_id, holder.workspaces)

    @property
    def scope(self) -> list[str] | None:
        """The workspaces as a query parameter (`$n::text[] IS NULL OR w = ANY($n)`)."""
        return None if self.workspaces is None else sorted(self.workspaces)

    def sees(self, workspace: str) -> bool:
        return self.workspaces is None or workspace in self.workspaces


CHALLENGE = {"WWW-Authenticate": "'Bearer': send a token as 'Authorization: Bearer TOKEN'"}
"""What a 401 says of how to authenticate, as the OpenAPI document shows it."""


def unauthorized(detail: str) -> Problem:
    """A 401 saying what was wrong with the credentials, never repeating them."""
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def same_origin(request: Request) -> bool:
    """Whether a browser sent the request from a page of this very host (its `Origin`)."""
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc == request.headers.get("host")


async def _holder(pool: Pool, token: str) -> TokenHolder:
    try:
        return await token_holder(pool, token.strip())
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc


BearerToken = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
CookieToken = Annotated[str | None, Depends(_cookie)]


@answers(
    {401: "no valid token: unknown or revoked, another scheme, or none while reads need one"},
    headers=CHALLENGE,
)
async def reader(request: Request, pool: Pool, bearer: BearerToken, cookie: CookieToken) -> Access:
    """The request's access; no token at all is refused before any database work."""
    token = bearer.credentials if bearer is not None else cookie
    if not token:
        if request.headers.get("authorization"):
            raise unauthorized(
                f"expected 'Authorization: Bearer TOKEN' with a token from {MAKE_ONE}"
            )
        if request.app.state.open_reads:
            return _seen(request, Access(None, None, None))
        raise unauthorized(
            "missing token: reading needs one too; send 'Authorization: Bearer TOKEN' with a "
            f"token from {MAKE_ONE}, or sign in on the dashboard at /login"
        )
    return _seen(request, Access.of(await _holder(pool, token)))


@answers({401: "no valid token: missing, unknown or revoked, or another scheme"}, headers=CHALLENGE)
@answers(
    {403: "a signed-in browser acting from a page of another origin"}, except_methods=SAFE_METHODS
)
async def _actor(request: Request, pool: Pool, bearer: BearerToken, cookie: CookieToken) -> Access:
    """The request's person, from its header, or from a signed-in browser's own pages."""
    if bearer is not None:
        return _seen(request, Access.of(await _holder(pool, bearer.credentials)))
    if cookie:
        if request.method not in SAFE_METHODS and not same_origin(request):
            raise Problem(
                403,
                "Cross-origin action",
                f"a signed-in browser acts only from this dashboard's pages: expected Origin "
                f"http(s)://{request.headers.get('host')}, got {request.headers.get('origin')!r}; "
                "other clients send 'Authorization: Bearer TOKEN'",
            )
        return _seen(request, Access.of(await _holder(pool, cookie)))
    raise unauthorized(
        f"missing token: expected an 'Authorization: Bearer TOKEN' header with a token from "
        f"{MAKE_ONE}, or a browser signed in on the dashboard"
    )


def _seen(request: Request, access: Access) -> Access:
    request.state.access = access  # for pages: whom the header names
    return access


Reader = Annotated[Access, Depends(reader)]
"""What a request may read; without a valid token it is answered 401 (unless reads are open)."""

Actor = Annotated[Access, Depends(_actor)]
"""Whom a request acts as (its `person` is set); without a valid token it is answered 401."""

read = Depends(reader)
"""For a router's `dependencies`: every route of it needs read access."""

act = Depends(_actor)
"""For a router's `dependencies`: every route of it needs a person's token."""


COOKIE_SECONDS = 8 * 3600
"""How long a browser stays signed in; the token itself is checked on every request."""


def remember_token(response: Response, request: Request, token: str, cookie: str = COOKIE) -> None:
    """Keep a signed-in token in the browser: HttpOnly and SameSite=Strict, so no script
    reads it and no other site sends it; Secure over https."""
    response.set_cookie(
        cookie,
        token,
        max_age=COOKIE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
