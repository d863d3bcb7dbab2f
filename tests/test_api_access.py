"""Who may read what through the HTTP API, tried over real HTTP as an outsider would: no
token, a token of another workspace, a foreign Host, streams by the dozen, a huge body."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from html import unescape
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from goalkeeper.statuses import TaskStatus
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer
from store.database import apply_schema
from store.tokens import InvalidToken, new_token, token_hash, token_holder
from tests import web
from tests.helpers import eventually, goal_spec, report, start_goal, wait_task

PROBLEM = "application/problem+json"
PROMPTLY = 60.0
"""A client's patience for an answer that should come at once: a request left waiting
behind open streams (which would wait for ever) fails the test by this timeout, not by a
measured duration; generous, so that a busy machine's slow answer never does."""


@contextmanager
def served(database_url: str, temporal: TemporalDevServer, **settings: Any) -> Iterator[str]:
    """The API and dashboard with `settings`, on uvicorn on loopback; its base URL."""
    chosen = Settings(database_url=database_url, temporal_address=temporal.address, **settings)
    with web.serve(create_app(chosen)) as url:
        yield url


async def bearer(pool: asyncpg.Pool, person: str, *workspaces: str) -> dict[str, str]:
    made = await new_token(pool, person, workspaces)
    return {"Authorization": f"Bearer {made['token']}"}


def problem(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM), (
        response.status_code,
        response.text,
    )
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], body
    return body


@pytest.fixture
async def finished_goal(client: Client, task_queue: str, workspace: str) -> AsyncIterator[str]:
    """A goal of `workspace` that ran to the end, with a secret in its deliverable."""
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, view, result="the vault's secret plan")
    await handle.result()
    yield handle.id


async def test_without_a_token_nothing_is_read_and_another_workspace_sees_nothing(
    dashboard: str, pool: asyncpg.Pool, finished_goal: str, workspace: str
) -> None:
    goal = finished_goal
    reads = [
        f"/api/v1/goals/{goal}",
        f"/api/v1/goals/{goal}/tasks",
        f"/api/v1/goals/{goal}/tasks/t1/result",
        f"/api/v1/goals/{goal}/events",
        "/api/v1/goals",
        f"/api/v1/costs?goal={goal}",
        "/api/v1/costs",
        "/api/v1/agents",
        "/api/v1/approvals",
        "/api/v1/suggestions",
        "/api/v1/health",
    ]
    owner = await bearer(pool, "owner", workspace)
    outsider = await bearer(pool, "outsider", f"other-{uuid.uuid4().hex[:6]}")
    async with httpx.AsyncClient(base_url=dashboard, timeout=60) as http:

        async def compiled() -> str | None:
            page = await http.get(f"/goals/{goal}", headers=owner)
            return page.text if "secret plan" in page.text else None

        assert "secret plan" in await eventually(compiled, what="the deliverable on its page")

        for path in reads:
            problem(await http.get(path), 401, "missing token")
        page = await http.get(f"/goals/{goal}")
        assert page.status_code == 401 and "secret plan" not in page.text
        assert 'action="/login"' in page.text  # the sign-in form, back to this page after
        assert f'name="next" value="/goals/{goal}"' in unescape(page.text)
        problem(await http.get("/api/v1/goals", headers={"Authorization": "Bearer nope"}), 401)

        # The goal's own workspace reads it all.
        for path in reads:
            if not path.endswith("/events"):
                answer = await http.get(path, headers=owner)
                assert answer.status_code == 200, (path, answer.text)
        listed = (await http.get("/api/v1/goals", headers=owner)).json()["items"]
        assert [g["workspace"] for g in listed] == [workspace] and goal in str(listed)

        # Another workspace's token: the goal is unknown, word for word.
        unknown = f"no-such-{uuid.uuid4().hex[:6]}"
        for path in (
            "/api/v1/goals/{}",
            "/api/v1/goals/{}/tasks",
            "/api/v1/goals/{}/tasks/t1/result",
            "/api/v1/goals/{}/events",
        ):
            hidden = problem(await http.get(path.format(goal), headers=outsider), 404)
            absent = problem(await http.get(path.format(unknown), headers=outsider), 404)
            assert hidden["detail"].replace(goal, unknown) == absent["detail"]
        problem(await http.get(f"/api/v1/costs?goal={goal}", headers=outsider), 404, goal)
        problem(await http.get(f"/api/v1/costs?workspace={workspace}", headers=outsider), 404)
        page = await http.get(f"/goals/{goal}", headers=outsider)
        assert page.status_code == 404 and "secret plan" not in page.text
        for path in ("/api/v1/goals", f"/api/v1/goals?workspace={workspace}", "/api/v1/agents"):
            seen = await http.get(path, headers=outsider)
            assert (seen.status_code, seen.json()["items"]) == (200, []), path
        assert goal not in (await http.get("/", headers=outsider)).text
        feedback = {"goal_id": goal, "rating": 1}
        problem(await http.post("/api/v1/feedback", json=feedback, headers=outsider), 404, goal)
    assert await pool.fetchval("SELECT count(*) FROM feedback WHERE goal_id = $1", goal) == 0


async def test_a_browser_signs_in_with_a_cookie_that_acts_only_from_the_dashboard(
    dashboard: str, pool: asyncpg.Pool, finished_goal: str, workspace: str
) -> None:
    token = (await new_token(pool, "reader", [workspace]))["token"]
    async with httpx.AsyncClient(base_url=dashboard, timeout=60) as http:
        wrong = await http.post("/login", data={"token": "not-a-token", "next": "/"})
        assert wrong.status_code == 401 and "unknown token" in wrong.text
        assert "set-cookie" not in wrong.headers
        foreign = {"Origin": "http://evil.example"}
        signed = await http.post("/login", data={"token": token}, headers=foreign)
        problem(signed, 403, "evil.example")

        back = f"/goals/{finished_goal}"
        signed = await http.post("/login", data={"token": token, "next": back})
        assert (signed.status_code, signed.headers["location"]) == (303, back)
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        away = await http.post("/login", data={"token": token, "next": "//evil.example/x"})
        assert away.headers["location"] == "/"

        page = await http.get(back)  # the cookie, kept by the client, reads
        assert page.status_code == 200 and "acting as reader" in page.text
        assert (await http.get("/api/v1/me")).json() == {
            "person": "reader",
            "workspaces": [workspace],
        }
        feedback = {"goal_id": finished_goal, "rating": 5}
        problem(await http.post("/api/v1/feedback", json=feedback), 403, "Origin")
        problem(await http.post("/api/v1/feedback", json=feedback, headers=foreign), 403)
        same = {"Origin": dashboard}
        given = await http.post("/api/v1/feedback", json=feedback, headers=same)
        assert given.status_code == 201, given.text

        await http.post("/logout", headers=same)
        problem(await http.get("/api/v1/me"), 401)
        assert (await http.get(back)).status_code == 401


async def test_open_reads_need_no_token_but_actions_do(
    database_url: str, temporal_server: TemporalDevServer, finished_goal: str, pool: asyncpg.Pool
) -> None:
    with served(database_url, temporal_server, api_open_reads=True) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            goal = await http.get(f"/api/v1/goals/{finished_goal}")
            assert goal.status_code == 200 and goal.json()["goal_id"] == finished_goal
            assert (await http.get(f"/goals/{finished_goal}")).status_code == 200
            assert finished_goal in (await http.get("/api/v1/goals", params={"limit": 1000})).text
            body = {"goal_id": finished_goal, "rating": 1, "comment": "from nobody"}
            problem(await http.post("/api/v1/feedback", json=body), 401, "missing token")
            stop = await http.post(f"/api/v1/goals/{finished_goal}/stop")
            problem(stop, 401, "missing token")
    recorded = "SELECT count(*) FROM feedback WHERE goal_id = $1"
    assert await pool.fetchval(recorded, finished_goal) == 0


async def test_a_request_for_a_foreign_host_is_refused(
    dashboard: str, database_url: str, temporal_server: TemporalDevServer
) -> None:
    port = dashboard.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=dashboard, timeout=60) as http:
        for path in ("/api/v1/health", "/", "/login", "/static/live.js"):
            refused = problem(await http.get(path, headers={"Host": "evil.example"}), 421)
            assert (refused["host"], refused["setting"]) == (
                "evil.example",
                "GOALKEEPER_API_ALLOWED_HOSTS",
            )
            assert "evil.example" in refused["detail"]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            login = await http.get("/login", headers={"Host": host})
            assert login.status_code == 200, host
    with served(database_url, temporal_server, api_allowed_hosts=("goalkeeper.example",)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            problem(await http.get("/login"), 421, "127.0.0.1")
            named = await http.get("/login", headers={"Host": "goalkeeper.example:443"})
            assert named.status_code == 200
    with pytest.raises(ValueError, match="GOALKEEPER_API_ALLOWED_HOSTS must name"):
        create_app(Settings(), bind_host="0.0.0.0")


async def test_an_oversized_body_is_refused_unread_and_nothing_is_recorded(
    dashboard: str, pool: asyncpg.Pool, finished_goal: str, workspace: str
) -> None:
    person = await bearer(pool, "rater", workspace)
    limit = 1024 * 1024
    huge = {"goal_id": finished_goal, "rating": 5, "comment": "x" * (limit + limit // 2)}

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"goal_id": "' + finished_goal.encode() + b'", "rating": 5, "comment": "'
        for _ in range(34):
            yield b"y" * 32768
        yield b'"}'

    async with httpx.AsyncClient(base_url=dashboard, timeout=60, headers=person) as http:
        declared = await http.post("/api/v1/feedback", json=huge)
        body = problem(declared, 413, "1,048,576 bytes", "GOALKEEPER_API_MAX_BODY_BYTES")
        assert body["limit"] == limit
        streamed = await http.post("/api/v1/feedback", content=chunked())
        problem(streamed, 413, "1,048,576 bytes", "got more than")
        small = await http.post("/api/v1/feedback", json={**huge, "comment": "fine"})
        assert small.status_code == 201, small.text

    # A gigabyte announced is refused at once, before a byte of it is sent.
    host, port = dashboard.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /api/v1/feedback HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: {person['Authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {1024**3}\r\n\r\n".encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), PROMPTLY)
    writer.close()
    assert status.startswith(b"HTTP/1.1 413 "), status

    comments = await pool.fetch("SELECT comment FROM feedback WHERE goal_id = $1", finished_goal)
    assert [r["comment"] for r in comments] == ["fine"]


async def test_open_streams_hold_no_connection_so_requests_are_answered_at_once(
    database_url: str,
    temporal_server: TemporalDevServer,
    pool: asyncpg.Pool,
    finished_goal: str,
    workspace: str,
) -> None:
    token = await bearer(pool, "watcher", workspace)
    events = f"/api/v1/goals/{finished_goal}/events"
    limits = {"api_streams_per_token": 4, "api_streams_per_address": 16}
    with served(database_url, temporal_server, api_open_reads=True, **limits) as url:
        pool_size = 10  # the API's own pool: today, twelve streams took all of it
        async with (
            AsyncExitStack() as streams,
            httpx.AsyncClient(
                base_url=url, timeout=PROMPTLY, limits=httpx.Limits(max_connections=64)
            ) as http,
        ):

            async def open_stream(headers: dict[str, str] | None = None) -> httpx.Response:
                response = await streams.enter_async_context(
                    http.stream("GET", events, headers=headers)
                )
                if response.status_code == 200:
                    lines = response.aiter_lines()
                    assert (await anext(lines)).startswith("id: ")  # kept events flow
                    reading.append(lines)  # a reader let go of would close its stream
                return response

            reading: list[AsyncIterator[str]] = []

            opened = await asyncio.gather(*(open_stream() for _ in range(pool_size + 2)))
            assert [r.status_code for r in opened] == [200] * (pool_size + 2)

            # While all of them stay open, a request with a token is answered at once...
            goal = await http.get(f"/api/v1/goals/{finished_goal}", headers=token)
            assert goal.status_code == 200, goal.text
            # ...and so is a refusal.
            body = {"goal_id": finished_goal, "rating": 1}
            problem(await http.post("/api/v1/feedback", json=body), 401, "missing token")

            mine = [await open_stream(token) for _ in range(4)]
            assert [r.status_code for r in mine] == [200] * 4
            refused = await open_stream(token)
            await refused.aread()
            problem(refused, 429, "GOALKEEPER_API_STREAMS_PER_TOKEN")
            anyone = await open_stream()  # 16 from this address already
            await anyone.aread()
            problem(anyone, 429, "GOALKEEPER_API_STREAMS_PER_ADDRESS")

            # A stream closed makes room for another.
            await mine[0].aclose()

            async def room() -> bool:
                again = await open_stream(token)
                return again.status_code == 200

            await eventually(room, what="room for a stream once one closed")
            assert (await http.get("/api/v1/health", headers=token)).status_code in (200, 503)


async def test_token_less_streams_are_refused_at_once_when_reads_need_a_token(
    dashboard: str, pool: asyncpg.Pool, finished_goal: str, workspace: str
) -> None:
    events = f"{dashboard}/api/v1/goals/{finished_goal}/events"
    async with httpx.AsyncClient(timeout=PROMPTLY) as http:
        refused = await asyncio.gather(*(http.get(events) for _ in range(24)))
        for response in refused:
            problem(response, 401, "missing token")
        token = await bearer(pool, "watcher", workspace)
        goal = await http.get(f"{dashboard}/api/v1/goals/{finished_goal}", headers=token)
        assert goal.status_code == 200


async def test_tokens_made_before_workspaces_keep_every_workspace_and_new_ones_name_some(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute("ALTER TABLE api_tokens DROP CONSTRAINT api_token_sees_something")
    await pool.execute("ALTER TABLE api_tokens DROP COLUMN workspaces, DROP COLUMN all_workspaces")
    old = f"old-{uuid.uuid4().hex}"
    await pool.execute(
        "INSERT INTO api_tokens (token_id, person, token_hash) VALUES ($1, 'old-timer', $2)",
        uuid.uuid4(),
        token_hash(old),
    )
    await apply_schema(pool)  # as the next worker to start does
    held = await token_holder(pool, old)
    assert (held.person, held.workspaces) == ("old-timer", None)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO api_tokens (token_id, person, token_hash) VALUES ($1, 'p', $2)",
            uuid.uuid4(),
            token_hash(f"new-{uuid.uuid4().hex}"),
        )
    with pytest.raises(InvalidToken, match="not neither"):
        await new_token(pool, "p")
    with pytest.raises(InvalidToken, match="not both"):
        await new_token(pool, "p", ["ws"], all_workspaces=True)
