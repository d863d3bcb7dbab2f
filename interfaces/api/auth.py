"""Who acts through the API: the person of the request's personal token (`token new`)."""

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from activities.tokens import InvalidToken, token_person
from interfaces.api.problems import Problem
from interfaces.api.state import Pool

DELEGATE = "dashboard"
"""The name the API's decisions are signed by, on behalf of their token's person."""

_bearer = HTTPBearer(auto_error=False, description="a token from 'starter.py token new'")


def unauthorized(detail: str) -> Problem:
    """A 401 saying what was wrong with the credentials, never repeating them."""
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def _person(
    pool: Pool, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    if credentials is None:
        raise unauthorized(
            "missing token: expected an 'Authorization: Bearer TOKEN' header with a token "
            "from 'starter.py token new --as NAME'"
        )
    try:
        return await token_person(pool, credentials.credentials)
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc


Person = Annotated[str, Depends(_person)]
"""The person a request acts as; a request without a valid token is answered 401."""
