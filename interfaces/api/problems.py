"""Errors as RFC 9457 problem details (`application/problem+json`), naming the bad value,
and the OpenAPI document saying so: each operation lists the problems it may answer."""

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request, routing
from fastapi.dependencies.models import Dependant
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
            "value": _shown(error.get("input")),
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


def _shown(value: Any) -> Any:
    """A refused input as JSON can carry it: a body that is no JSON at all comes as bytes."""
    return value.decode(errors="replace") if isinstance(value, bytes | bytearray) else value


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
    """Answer every error of `app` with problem details, validation errors included, and
    say so in its OpenAPI document (`document`)."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    document(app)


SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "An error, as RFC 9457 problem details: what went wrong, naming the bad "
    "value. The members after `instance` come only with the problems that name them.",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"const": "about:blank", "description": "`title` says what kind of problem"},
        "title": {"type": "string", "description": "the kind of problem, e.g. 'Unknown goal'"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "what was wrong: expected X, got Y"},
        "instance": {"type": "string", "description": "the path asked for"},
        "errors": {
            "type": "array",
            "description": "422 for input that does not validate: each bad value",
            "items": {
                "type": "object",
                "required": ["parameter", "in", "value", "expected"],
                "properties": {
                    "parameter": {
                        "type": "string",
                        "description": "its name: a body's field, 'body' when there is "
                        "none, or where its JSON broke",
                    },
                    "in": {"enum": ["path", "query", "header", "cookie", "body"]},
                    "value": {"description": "what was sent (for a missing field, its object)"},
                    "expected": {"type": "string", "description": "what it should be"},
                },
            },
        },
        "workflow_id": {"type": "string", "description": "409: the workflow that refused"},
        "host": {"type": "string", "description": "421: the Host header refused"},
        "limit": {"type": "integer", "description": "413 and 429: the limit reached"},
        "setting": {
            "type": "string",
            "description": "413, 421 and 429: the environment variable that sets it",
        },
    },
}
"""The body of every error of the API, as its OpenAPI document shows it."""

INVALID_INPUT = "a parameter or the body that does not validate (`errors` names each)"

_ANSWERS = "_problems_answered"
_Declared = TypeVar("_Declared")


@dataclass(frozen=True)
class Answer:
    """A problem an operation may answer, as its OpenAPI document lists it."""

    status: int
    description: str
    except_methods: frozenset[str] = frozenset()
    """Methods it is never answered to (e.g. a check that only actions go through)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Headers it always comes with, and what each says."""


def answers(
    problems: Mapping[int, str],
    *,
    except_methods: Collection[str] = (),
    headers: Mapping[str, str] | None = None,
) -> Callable[[_Declared], _Declared]:
    """Declare the problems (status: when) a route, a dependency or a middleware class may
    answer, with the `headers` (name: what it says) they come with: every operation it
    runs for lists them in the OpenAPI document.

    Declared where the refusal is made, a new route gets its middleware's and its
    dependencies' problems without a word; it names only its own (an unknown goal...).
    """
    sent = tuple((headers or {}).items())
    declared = tuple(Answer(s, d, frozenset(except_methods), sent) for s, d in problems.items())

    def declare(thing: _Declared) -> _Declared:
        setattr(thing, _ANSWERS, (*getattr(thing, _ANSWERS, ()), *declared))
        return thing

    return declare


def document(app: FastAPI) -> None:
    """Make `app`'s OpenAPI document describe its real errors: on each operation, the
    problems its middleware, dependencies and route declare (`answers`), and 422 where
    FastAPI validates input, all as `application/problem+json` with the `Problem` schema,
    in place of FastAPI's own `HTTPValidationError` (never sent).

    A response a route declares with a body of its own (the health check's 503) is left as
    it is. Routes added later are included when FastAPI makes its document again.
    """
    generate = app.openapi
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        spec = generate()  # FastAPI's own, made again when routes were added since
        if not documented or documented[0] is not spec:
            documented[:] = [_with_problems(spec, app)]
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _with_problems(spec: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    everywhere = [a for m in app.user_middleware for a in getattr(m.cls, _ANSWERS, ())]
    for route in _api_routes(app):
        declared = everywhere + [
            a for call in _calls(route.dependant) for a in getattr(call, _ANSWERS, ())
        ]
        for method in route.methods:
            operation = spec["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            invalid = responses.get("422", {})
            if "HTTPValidationError" in str(invalid.get("content")):  # FastAPI's, never sent
                responses["422"] = {"description": INVALID_INPUT}
            for answer in declared:
                if method not in answer.except_methods:
                    _describe(responses, str(answer.status), answer.description)
                    for name, says in answer.headers:
                        sent = responses[str(answer.status)].setdefault("headers", {})
                        sent[name] = {"description": says, "schema": {"type": "string"}}
            for status, response in responses.items():
                if status[:1] in "45" and "content" not in response:
                    response["content"] = {
                        MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }
            operation["responses"] = dict(sorted(responses.items()))
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for default in ("HTTPValidationError", "ValidationError"):
        schemas.pop(default, None)
    schemas["Problem"] = SCHEMA
    return spec


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's API routes in its document, each with its path and dependencies as
    included (recent FastAPI keeps an included router whole in `app.routes`)."""
    contexts = getattr(routing, "iter_route_contexts", None)
    routes: Iterable[Any] = app.routes if contexts is None else contexts(app.routes)
    for route in routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, routing.APIRoute) and route.include_in_schema:
            yield route


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """The route and every dependency it runs, however deep."""
    if dependant.call is not None:
        yield dependant.call
    for dependency in dependant.dependencies:
        yield from _calls(dependency)


def _describe(responses: dict[str, Any], status: str, description: str) -> None:
    """Add `description` to the response of `status`, joined to those it has already."""
    response = responses.setdefault(status, {})
    known = response.get("description")
    if not known:
        response["description"] = description
    elif description not in known.split("; "):
        response["description"] = f"{known}; {description}"
