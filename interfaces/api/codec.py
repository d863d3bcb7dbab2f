"""The codec server: the Temporal UI and CLI decode and encode payloads here.

It speaks Temporal's codec server protocol (POST /decode and /encode, each a JSON
`{"payloads": [...]}` of proto3-JSON payloads, answered in the same shape) for people
allowed to read everything: those with a personal token of all workspaces (`starter.py
token new --all-workspaces`), since a payload may be any workspace's. The CLI sends the
token as `Authorization: Bearer TOKEN` (`--codec-auth`); a browser signs in once at /login,
which keeps the token in a cookie that the UI's requests carry ("include credentials").
Encoding needs a token too: with it anyone could forge payloads the worker would trust.
"""

import html
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import parse_qs

import asyncpg
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from interfaces.api import problems
from interfaces.api.auth import remember_token, unauthorized
from interfaces.api.problems import Problem
from interfaces.api.state import Pool
from interfaces.codec import EncryptionCodec, Keyring, UndecryptablePayload
from store.database import create_pool
from store.tokens import InvalidToken, token_holder

COOKIE = "goalkeeper_codec_token"
"""The codec server's own sign-in cookie, apart from the dashboard's."""

log = logging.getLogger("goalkeeper.codec")


async def _reader(request: Request, pool: Pool) -> str:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized(
                f"expected 'Authorization: Bearer TOKEN' with a token from {MAKE_ONE}"
            )
    else:
        token = request.cookies.get(COOKIE, "")
        if not token:
            raise unauthorized(
                "missing token: send 'Authorization: Bearer TOKEN' (temporal --codec-auth) "
                f"with a token from {MAKE_ONE}, or sign in at /login for the Temporal UI"
            )
    try:
        return await _everything(pool, token.strip())
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc


MAKE_ONE = "'starter.py token new --as NAME --all-workspaces'"


async def _everything(pool: asyncpg.Pool, token: str) -> str:
    """The person of a token that may read every workspace; any other is refused."""
    holder = await token_holder(pool, token)
    if holder.workspaces is not None:
        raise InvalidToken(
            "the codec server decodes payloads of every workspace: expected a token of all "
            f"workspaces ({MAKE_ONE}), got one of {', '.join(sorted(holder.workspaces))}"
        )
    return holder.person


Reader = Annotated[str, Depends(_reader)]
"""The person a request reads as; a request without a valid token is answered 401."""


def create_codec_app(
    keyring: Keyring,
    origins: Sequence[str],
    *,
    database_url: str | None = None,
    pool: asyncpg.Pool | None = None,
) -> FastAPI:
    """The codec server over `keyring`, answering browsers from `origins` (CORS).

    It opens a pool on `database_url` for its lifetime unless given one (left open).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_pool = None
        if pool is None:
            assert database_url is not None, "a pool or a database URL"
            own_pool = await create_pool(database_url, min_size=1, max_size=4)
        try:
            app.state.pool = pool or own_pool
            yield
        finally:
            if own_pool is not None:
                await own_pool.close()

    app = FastAPI(
        title="Goalkeeper codec server",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    problems.install(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_credentials=True,
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        max_age=600,
    )
    _codec_routes(app, EncryptionCodec(keyring))
    _login_routes(app, origins)
    return app


def _codec_routes(app: FastAPI, codec: EncryptionCodec) -> None:
    """`/encode` and `/decode`, for anyone whose token may read every workspace."""

    @app.post("/encode")
    async def encode(request: Request, person: Reader) -> JSONResponse:
        payloads = await _payloads(request)
        log.info("%s encoded %d payload(s)", person, len(payloads.payloads))
        return _answer(await codec.encode(payloads.payloads))

    @app.post("/decode")
    async def decode(request: Request, person: Reader) -> JSONResponse:
        payloads = await _payloads(request)
        try:
            decoded = await codec.decode(payloads.payloads)
        except UndecryptablePayload as exc:
            raise Problem(422, "Cannot decrypt", str(exc)) from exc
        log.info("%s decoded %d payload(s)", person, len(payloads.payloads))
        return _answer(decoded)


def _login_routes(app: FastAPI, origins: Sequence[str]) -> None:
    """The login page that keeps a token in a cookie for the Temporal UI's requests."""

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/login")

    @app.get("/login")
    async def login_page(request: Request, pool: Pool) -> HTMLResponse:
        token = request.cookies.get(COOKIE)
        person = None
        if token:
            try:
                person = await _everything(pool, token)
            except InvalidToken:
                person = None
        return HTMLResponse(_page(origins, person))

    @app.post("/login")
    async def login(request: Request, pool: Pool) -> Response:
        form = parse_qs((await request.body()).decode(errors="replace"))
        token = (form.get("token") or [""])[0].strip()
        try:
            person = await _everything(pool, token)
        except InvalidToken as exc:
            return HTMLResponse(_page(origins, None, error=str(exc)), status_code=401)
        response = HTMLResponse(_page(origins, person))
        remember_token(response, request, token, COOKIE)
        return response

    @app.post("/logout")
    async def logout() -> HTMLResponse:
        response = HTMLResponse(_page(origins, None))
        response.delete_cookie(COOKIE)
        return response


async def _payloads(request: Request) -> Payloads:
    try:
        return json_format.Parse(await request.body(), Payloads(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise Problem(
            400,
            "Bad payloads",
            f'expected a JSON body {{"payloads": [...]}} of proto3-JSON payloads: {exc}',
        ) from exc


def _answer(payloads: Iterable[Payload]) -> JSONResponse:
    return JSONResponse(json_format.MessageToDict(Payloads(payloads=payloads)))


def _page(origins: Sequence[str], person: str | None, error: str | None = None) -> str:
    """The sign-in page: who is signed in, or a form for a token."""
    if person is not None:
        body = (
            f"<p>Signed in as <b>{html.escape(person)}</b>. The Temporal UI "
            f"({html.escape(', '.join(origins)) or 'no origin allowed'}) decodes payloads "
            "here when its codec server settings include cross-origin credentials.</p>"
            '<form method="post" action="/logout"><button>Sign out</button></form>'
        )
    else:
        body = (
            (f'<p role="alert">{html.escape(error)}</p>' if error else "")
            + '<form method="post" action="/login"><label>Personal token '
            '<input name="token" type="password" autocomplete="off" required></label> '
            "<button>Sign in</button></form>"
            "<p>Make one with <code>python starter.py token new --as NAME --all-workspaces"
            "</code>.</p>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Goalkeeper codec server</title></head>"
        f"<body><h1>Goalkeeper codec server</h1>{body}</body></html>"
    )
