"""The OpenAPI document says what the API answers when it refuses: every error of every
operation is a problem (`application/problem+json`) of the one documented schema, and the
errors provoked over HTTP (no token, a bad one, a foreign Host, malformed input, an unknown
goal...) are statuses their operation lists, with bodies that validate against it."""

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import jsonschema
import pytest
from temporalio.client import Client

from interfaces.api.app import create_app
from interfaces.api.auth import COOKIE
from interfaces.config import Settings
from store.tokens import new_token

PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
ROOT = "http://localhost"
NOT_PROBLEMS = {("get", "/api/v1/health", "503")}
"""Error statuses answered with a body of their own: the health report, `unreachable`."""


@pytest.fixture
async def document(api: httpx.AsyncClient) -> dict[str, Any]:
    """The app's OpenAPI document, as a client reads it at /openapi.json."""
    response = await api.get(f"{ROOT}/openapi.json")
    assert response.status_code == 200, response.text
    spec: dict[str, Any] = response.json()
    return spec


@pytest.fixture
async def strict(pool: asyncpg.Pool, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The API with reads closed, a 64-byte body limit and no event stream allowed, so
    each of those refusals can be provoked in process, at its root."""
    settings = Settings(api_max_body_bytes=64, api_streams_per_token=0)
    app = create_app(settings, pool=pool, client=client)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=ROOT) as http,
    ):
        yield http


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def conforms(document: dict[str, Any], method: str, path: str, response: httpx.Response) -> Any:
    """The body of `response` to `method path` (a path as the document names it), after
    checking that the document lists its status and content type and that it validates
    against the schema documented for them."""
    listed = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in listed, (method, path, status, sorted(listed), response.text)
    media = response.headers["content-type"].split(";")[0]
    assert media in listed[status]["content"], (method, path, status, media)
    for header in listed[status].get("headers", {}):
        assert header in response.headers, (method, path, status, header)
    schema = listed[status]["content"][media]["schema"]
    body = response.json()
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(body)
    return body


def refusal(document: dict[str, Any], method: str, path: str, response: httpx.Response) -> Any:
    """A documented problem's body, of the status and path it says."""
    assert response.headers["content-type"] == PROBLEM, (response.status_code, response.text)
    body = conforms(document, method, path, response)
    assert body["status"] == response.status_code
    assert body["instance"] == response.request.url.path
    return body


def concrete(path: str) -> str:
    """A path of the document with each parameter filled in."""
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_error_of_every_operation_is_a_problem_of_the_documented_schema(
    document: dict[str, Any],
) -> None:
    assert "ValidationError" not in json.dumps(document)  # FastAPI's HTTPValidationError
    problem = document["components"]["schemas"]["Problem"]
    jsonschema.Draft202012Validator.check_schema(problem)
    assert problem["required"] == ["type", "title", "status", "detail", "instance"]
    assert {"errors", "workflow_id", "host", "limit", "setting"} <= problem["properties"].keys()

    seen = 0
    for method, path, operation in operations(document):
        responses = operation["responses"]
        errors = {status for status in responses if status[0] in "45"}
        for status in errors - {s for m, p, s in NOT_PROBLEMS if (m, p) == (method, path)}:
            assert responses[status]["content"] == {PROBLEM: {"schema": PROBLEM_REF}}, (
                method,
                path,
                status,
            )
            assert responses[status]["description"], (method, path, status)
            seen += 1
        # What every request goes through, and what an operation's inputs make possible.
        assert {"413", "421"} <= errors, (method, path)
        assert ("401" in errors) == ("security" in operation), (method, path)
        assert "403" not in errors or method != "get", (method, path)  # actions only
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in errors, (method, path)
        if "{goal_id}" in path:
            assert "404" in errors, (method, path)
    assert seen > 50
    for path in ("/api/v1/goals", "/api/v1/me"):
        operation = document["paths"][path]["get"]
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    streams = document["paths"]["/api/v1/goals/{goal_id}/events"]["get"]["responses"]["429"]
    assert "Retry-After" in streams["headers"]
    health = document["paths"]["/api/v1/health"]["get"]["responses"]["503"]
    assert list(health["content"]) == ["application/json"]


async def test_every_operation_refuses_a_bad_token_and_a_foreign_host_as_documented(
    api: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    guess = {"Authorization": f"Bearer not-a-token-{uuid.uuid4().hex}"}
    for method, path, operation in operations(document):
        url = f"{ROOT}{concrete(path)}"
        if "security" in operation:
            unknown = await api.request(method, url, headers=guess)
            body = refusal(document, method, path, unknown)
            assert (body["status"], body["title"]) == (401, "Unauthorized"), (method, path)
        foreign = await api.request(method, url, headers={"Host": "evil.example"})
        body = refusal(document, method, path, foreign)
        assert (body["status"], body["host"]) == (421, "evil.example"), (method, path)


@pytest.fixture
async def kept_goal(pool: asyncpg.Pool, workspace: str) -> AsyncIterator[str]:
    """A goal of `workspace` in the read model, with no workflow running it."""
    goal_id = f"goal-{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec) "
        "VALUES ($1, 'none', 'Kept', $2, '{}')",
        goal_id,
        workspace,
    )
    yield goal_id
    await pool.execute("DELETE FROM goals WHERE goal_id = $1", goal_id)


async def test_refusals_provoked_over_http_are_documented_problems(
    api: httpx.AsyncClient,
    strict: httpx.AsyncClient,
    document: dict[str, Any],
    pool: asyncpg.Pool,
    workspace: str,
    kept_goal: str,
) -> None:
    made = await new_token(pool, "auditor", [workspace])
    token = {"Authorization": f"Bearer {made['token']}"}
    feedback = {"goal_id": kept_goal, "rating": 5}

    async def check(http: httpx.AsyncClient, method: str, path: str, status: int, **kw: Any) -> Any:
        """Ask for `path` (a path of the document, `{goal_id}` the kept goal's unless
        `url` says another) and check it answers the documented problem `status`."""
        url = kw.pop("url", path.replace("{goal_id}", kept_goal).replace("{task_id}", "t"))
        response = await http.request(method, f"{ROOT}/api/v1{url}", **kw)
        assert response.status_code == status, (method, url, response.text)
        return refusal(document, method.lower(), f"/api/v1{path}", response)

    # No token (reads closed; actions always), or not a bearer token.
    await check(strict, "GET", "/goals", 401)
    await check(strict, "GET", "/goals/{goal_id}", 401)
    await check(api, "GET", "/me", 401)
    await check(api, "POST", "/feedback", 401, json=feedback)
    basic = {"Authorization": "Basic eDp5"}
    await check(api, "POST", "/goals/{goal_id}/stop", 401, headers=basic)

    # A signed-in browser's cookie acts only from the dashboard's own pages.
    cookie = {"Cookie": f"{COOKIE}={made['token']}"}
    await check(api, "POST", "/feedback", 403, json=feedback, headers=cookie)

    # Malformed input: a body that is no JSON, a field of the wrong type, bad parameters.
    broken = {**token, "Content-Type": "application/json"}
    await check(api, "POST", "/feedback", 422, content=b"{not json", headers=broken)
    typed = await check(
        api, "POST", "/feedback", 422, json={**feedback, "rating": "five"}, headers=token
    )
    assert [(e["in"], e["parameter"]) for e in typed["errors"]] == [("body", "rating")]
    paged = await check(api, "GET", "/goals", 422, params={"limit": "0"})
    assert [(e["in"], e["parameter"], e["value"]) for e in paged["errors"]] == [
        ("query", "limit", "0")
    ]
    await check(api, "GET", "/goals/{goal_id}/events", 422, params={"after": -1})
    await check(api, "POST", "/goals/{goal_id}/budget", 422, json={}, headers=token)
    rating = await check(
        api, "POST", "/feedback", 422, json={**feedback, "rating": 9}, headers=token
    )
    assert "got 9" in rating["detail"]
    await check(api, "GET", "/costs", 400, params={"by": "colour"})

    # Unknown goals (or no workflow running the goal), tasks and suggestions.
    unknown = f"no-such-goal-{uuid.uuid4().hex[:8]}"
    asked: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/goals/{goal_id}", {}),
        ("GET", "/goals/{goal_id}/tasks", {}),
        ("GET", "/goals/{goal_id}/tasks/{task_id}/result", {}),
        ("GET", "/goals/{goal_id}/events", {}),
        ("POST", "/goals/{goal_id}/stop", {"headers": token}),
        ("POST", "/goals/{goal_id}/budget", {"headers": token, "json": {"usd": 1}}),
        (
            "POST",
            "/goals/{goal_id}/tasks/{task_id}/decision",
            {"headers": token, "json": {"decision": "approve"}},
        ),
    ]
    for method, path, kw in asked:
        url = path.replace("{goal_id}", unknown).replace("{task_id}", "t")
        missing = await check(api, method, path, 404, url=url, **kw)
        assert unknown in missing["detail"]
    await check(api, "GET", "/goals/{goal_id}/tasks/{task_id}/result", 404)
    ended = await check(api, "POST", "/goals/{goal_id}/stop", 404, headers=token)
    assert ended["title"] == "No running workflow"
    await check(api, "POST", "/feedback", 404, json={**feedback, "goal_id": unknown}, headers=token)
    await check(api, "GET", "/costs", 404, params={"goal": unknown}, headers=token)
    await check(
        api,
        "POST",
        "/suggestions/{suggestion_id}/accept",
        409,
        headers=token,
        url="/suggestions/abcd1234/accept",
    )

    # The guards: a body over the limit, and a stream past the token's limit.
    long = {**feedback, "comment": "x" * 100}
    over = await check(strict, "POST", "/feedback", 413, json=long, headers=token)
    assert (over["limit"], over["setting"]) == (64, "GOALKEEPER_API_MAX_BODY_BYTES")
    streams = await check(strict, "GET", "/goals/{goal_id}/events", 429, headers=token)
    assert streams["setting"] == "GOALKEEPER_API_STREAMS_PER_TOKEN"
