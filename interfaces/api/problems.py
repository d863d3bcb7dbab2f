"""Errors as RFC 9457 problem details (`application/problem+json`), naming the bad value."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """A request the API cannot answer: what went wrong, for the client to show as is."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


def not_found(kind: str, value: str, expected: str) -> Problem:
    """A 404 naming the unknown id and where to find the known ones."""
    return Problem(404, f"Unknown {kind}", f"no {kind} {value!r}: expected {expected}")


def problem_response(
    request: Request, status: int, title: str, detail: str, **extensions: Any
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(request.url.path),
        **extensions,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    response = problem_response(request, exc.status, exc.title, exc.detail, **exc.extensions)
    response.headers.update(exc.headers)
    return response


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "parameter": str(error["loc"][-1]),
            "in": str(error["loc"][0]),
            "value": error.get("input"),
            "expected": error["msg"],
        }
        for error in exc.errors()
    ]
    detail = "; ".join(
        f"{e['in']} parameter {e['parameter']!r}: expected {_lower(e['expected'])}, "
        f"got {e['value']!r}"
        for e in errors
    )
    return problem_response(request, 422, "Invalid request parameter", detail, errors=errors)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    title = "Not found" if exc.status_code == 404 else "HTTP error"
    return problem_response(request, exc.status_code, title, str(exc.detail))


def _lower(message: str) -> str:
    # Pydantic says "Input should be ..."; the detail reads "expected ..." instead.
    for prefix in ("Input should be ", "input should be "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message[:1].lower() + message[1:]


def install(app: FastAPI) -> None:
    """Answer every error of `app` with problem details, validation errors included."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
