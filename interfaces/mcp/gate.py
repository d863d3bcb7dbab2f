"""Who calls /mcp: a request without a valid personal token is refused (401, as problem
details) before the MCP SDK reads a byte of it; a valid one is passed on with its access."""

from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from interfaces.api.auth import MAKE_ONE, Access
from interfaces.api.problems import problem_response
from store.tokens import InvalidToken, token_holder

ACCESS = "goalkeeper.access"
"""Where a request's scope keeps its token's `Access` for the tools to act as."""


def access_of(request: Any) -> Access:
    """The access of an MCP request the gate let through."""
    access: Access = request.scope[ACCESS]
    return access


class TokenGate:
    """Passes a request to `app` only with a valid `Authorization: Bearer TOKEN`; the
    token's person and workspaces go with it (and name its MCP session's owner)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await self._refuse(
                request,
                send,
                receive,
                "missing token: expected an 'Authorization: Bearer TOKEN' header with a token "
                f"from {MAKE_ONE}",
            )
            return
        try:
            holder = await token_holder(request.app.state.pool, token.strip())
        except InvalidToken as exc:
            await self._refuse(request, send, receive, str(exc))
            return
        scope[ACCESS] = Access.of(holder)
        # The SDK binds a session to the credential that opened it: another token's
        # request for it is answered as if it did not exist.
        principal = AccessToken(
            token=holder.token_id, client_id=holder.token_id, scopes=[], subject=holder.person
        )
        scope["user"] = AuthenticatedUser(principal)
        await self.app(scope, receive, send)

    async def _refuse(self, request: Request, send: Send, receive: Receive, detail: str) -> None:
        response = problem_response(request, 401, "Unauthorized", detail)
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(request.scope, receive, send)
