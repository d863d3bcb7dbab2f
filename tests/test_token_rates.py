"""Workspaces' token rates: agents in different processes (two pools) and over HTTP hold
each other to one tokens-per-minute limit of a provider, kept in PostgreSQL on its clock;
a call larger than the whole limit is refused, no limit costs nothing, the ledger keeps
only the window, and the LLM hook waits for room before its model call."""

import argparse
import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic_ai import ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from interfaces.agents import registry
from interfaces.agents.http_transport import HttpTransport
from interfaces.agents.llm import LlmHook
from interfaces.agents.llm_costs import OverBudget
from interfaces.agents.llm_rates import SharedLimiter, limiter_for
from interfaces.agents.runner import AgentRunner, Work
from interfaces.cli.workspaces import tokens_per_minute
from store.agent_credentials import new_credential
from store.database import create_pool
from store.token_rates import (
    RateRefused,
    clear_token_rate,
    set_token_rate,
    spend_tokens,
    token_rates,
)
from tests.helpers import PATIENCE
from tests.starter import starter
from tests.test_agent_notes import served  # noqa: F401  (a fixture)
from tests.test_least_privilege import agent_login

PROBLEM = "application/problem+json"


@pytest.fixture
async def second_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Another process's connections to the same PostgreSQL."""
    other = await create_pool(database_url, max_size=2)
    yield other
    await other.close()


async def agents(pool: asyncpg.Pool, workspace: str, count: int = 2) -> list[str]:
    ids = [f"rate-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    for agent_id in ids:
        await registry.register_agent(pool, agent_id, workspace, ["writing"])
    return ids


async def ledger(pool: asyncpg.Pool, workspace: str, provider: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT at, tokens FROM token_spends WHERE workspace = $1 AND provider = $2 ORDER BY at",
        workspace,
        provider,
    )


async def test_two_processes_share_one_rate(
    pool: asyncpg.Pool, second_pool: asyncpg.Pool, workspace: str
) -> None:
    one, two = await agents(pool, workspace)
    await set_token_rate(pool, workspace, "openai", 100, window_seconds=3600)
    assert await spend_tokens(pool, one, "openai", 60) == 0
    # The other process's agent is told to wait until the first spend leaves the window.
    wait = await spend_tokens(second_pool, two, "openai", 60)
    assert 3500 < wait <= 3600
    assert await spend_tokens(second_pool, two, "openai", 40) == 0  # what is left fits
    assert [r["tokens"] for r in await ledger(pool, workspace, "openai")] == [60, 40]

    # Asked at once from both processes, the limit still holds: one caller at a time.
    await pool.execute("DELETE FROM token_spends WHERE workspace = $1", workspace)
    burst = await asyncio.gather(
        *(spend_tokens(p, a, "openai", 30) for p, a in [(pool, one), (second_pool, two)] * 4)
    )
    assert sorted(w == 0 for w in burst) == [False] * 5 + [True] * 3

    # With a one-second window, each limiter waits as long as it is told, then spends.
    await set_token_rate(pool, workspace, "openai", 100, window_seconds=1)
    await pool.execute("DELETE FROM token_spends WHERE workspace = $1", workspace)
    first = SharedLimiter(partial(spend_tokens, pool, one), "openai")
    second = SharedLimiter(partial(spend_tokens, second_pool, two), "openai")
    await first.acquire(80)
    (granted_first,) = await ledger(pool, workspace, "openai")
    await asyncio.wait_for(second.acquire(80), PATIENCE)
    (granted_second,) = await ledger(pool, workspace, "openai")  # the first one pruned
    assert (granted_second["at"] - granted_first["at"]).total_seconds() >= 1


async def test_a_call_larger_than_the_limit_is_refused(pool: asyncpg.Pool, workspace: str) -> None:
    (agent,) = await agents(pool, workspace, 1)
    await set_token_rate(pool, workspace, "anthropic", 100)
    with pytest.raises(RateRefused, match=r"101 tokens exceeds .* limit of 100 tokens a minute"):
        await spend_tokens(pool, agent, "anthropic", 101)
    limiter = SharedLimiter(partial(spend_tokens, pool, agent), "anthropic")
    with pytest.raises(OverBudget, match=r"rate limit: .*could never be made"):
        await limiter.acquire(101)
    for bad in (0, -5):
        with pytest.raises(RateRefused, match=f"expected 1 or more tokens to spend, got {bad}"):
            await spend_tokens(pool, agent, "anthropic", bad)
    with pytest.raises(RateRefused, match="no agent 'nobody'"):
        await spend_tokens(pool, "nobody", "anthropic", 1)
    assert await ledger(pool, workspace, "anthropic") == []


async def test_no_limit_costs_nothing(pool: asyncpg.Pool, workspace: str) -> None:
    (agent,) = await agents(pool, workspace, 1)
    await set_token_rate(pool, f"{workspace}-other", "openai", 1)  # another workspace's
    limiter = SharedLimiter(partial(spend_tokens, pool, agent), "openai")
    for _ in range(3):
        await asyncio.wait_for(limiter.acquire(1_000_000), PATIENCE)
    assert await pool.fetchval("SELECT count(*) FROM token_spends WHERE workspace = $1",
                               workspace) == 0  # fmt: skip
    # A provider with a name no limit can have, or a runner that gives no rate: no limiter.
    work = Work("a", agent, "g", "t", 1, {}, token_rate=partial(spend_tokens, pool, agent))
    assert limiter_for(work, "Not A Provider!") is None
    assert limiter_for(Work("a", agent, "g", "t", 1, {}), "openai") is None
    assert isinstance(limiter_for(work, "openai"), SharedLimiter)


async def test_the_ledger_keeps_only_the_window(pool: asyncpg.Pool, workspace: str) -> None:
    (agent,) = await agents(pool, workspace, 1)
    await set_token_rate(pool, workspace, "groq", 1000, window_seconds=3600)
    for _ in range(5):
        assert await spend_tokens(pool, agent, "groq", 10) == 0
    # The window passes (on PostgreSQL's clock, as every spend is dated).
    await pool.execute(
        "UPDATE token_spends SET at = at - interval '2 hours' WHERE workspace = $1", workspace
    )
    assert await spend_tokens(pool, agent, "groq", 10) == 0
    assert [r["tokens"] for r in await ledger(pool, workspace, "groq")] == [10]
    assert await clear_token_rate(pool, workspace, "groq")
    assert await ledger(pool, workspace, "groq") == []
    assert not await clear_token_rate(pool, workspace, "groq")
    assert await token_rates(pool, workspace) == []


async def test_an_agents_login_spends_only_for_its_own_agents(
    pool: asyncpg.Pool, database_url: str, workspace: str
) -> None:
    (theirs,) = await agents(pool, f"{workspace}-other", 1)
    await set_token_rate(pool, f"{workspace}-other", "openai", 100)
    async with agent_login(pool, database_url, workspace) as login:
        await registry.register_agent(login, mine := f"rate-{uuid.uuid4().hex[:8]}", workspace,
                                      ["writing"])  # fmt: skip
        assert await spend_tokens(login, mine, "openai", 50) == 0
        with pytest.raises(RateRefused, match="may not spend tokens for agent") as refused:
            await spend_tokens(login, theirs, "openai", 50)
        assert refused.value.status == 403
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await login.fetch("SELECT * FROM token_spends")


async def test_over_http(pool: asyncpg.Pool, served: str, workspace: str) -> None:  # noqa: F811
    one, two = await agents(pool, workspace)
    await set_token_rate(pool, workspace, "openai", 100, window_seconds=3600)
    credential = (await new_credential(pool, one))["credential"]
    auth = {"Authorization": f"Bearer {credential}"}
    async with httpx.AsyncClient(base_url=f"{served}/api/v1/agent", timeout=PATIENCE) as http:
        answer = await http.post("/token-rate", json={"provider": "openai", "tokens": 70},
                                 headers=auth)  # fmt: skip
        assert answer.status_code == 200 and answer.json() == {"granted": True, "wait_seconds": 0}
        # A process with a database login shares the same limit.
        assert await spend_tokens(pool, two, "openai", 30) == 0
        answer = await http.post("/token-rate", json={"provider": "openai", "tokens": 1},
                                 headers=auth)  # fmt: skip
        assert answer.json()["granted"] is False and 3500 < answer.json()["wait_seconds"] <= 3600

        async def refused(body: Any, *, status: int = 422, headers: Any = auth) -> str:
            answer = await http.post("/token-rate", json=body, headers=headers)
            assert answer.status_code == status, answer.text
            assert answer.headers["content-type"].startswith(PROBLEM)
            return str(answer.json()["detail"])

        assert "got -5" in await refused({"provider": "openai", "tokens": -5})
        assert "got 0" in await refused({"provider": "openai", "tokens": 0})
        assert "got str" in await refused({"provider": "openai", "tokens": "100"})
        assert "got bool" in await refused({"provider": "openai", "tokens": True})
        assert "got float" in await refused({"provider": "openai", "tokens": 1.5})
        assert "got none" in await refused({"provider": "openai"})
        assert "got 2000000001" in await refused({"provider": "openai", "tokens": 2_000_000_001})
        long = await refused({"provider": "x" * 10_240, "tokens": 1})
        assert "got 10240 characters" in long and "xxxx" not in long
        assert "got 'Open AI'" in await refused({"provider": "Open AI", "tokens": 1})
        assert "got int" in await refused({"provider": 7, "tokens": 1})
        assert "limit of 100" in await refused({"provider": "openai", "tokens": 101})
        assert "missing agent credential" in await refused(
            {"provider": "openai", "tokens": 1}, status=401, headers={}
        )
        await refused({"provider": "openai", "tokens": 1}, status=401,
                      headers={"Authorization": "Bearer gk_agent_forged"})  # fmt: skip
        assert (await http.post("/token-rate", content=b"[1]", headers=auth)).status_code == 422

    # The agent's runner asks through its transport, as the LLM hook's limiter does.
    transport = HttpTransport(served, credential)
    runner = AgentRunner(None, None, [one], LlmHook("test"), transport=transport)
    await transport.open()
    try:
        row = {"assignment_id": "a", "agent_id": one, "goal_id": "g", "task_id": "t",
               "attempt": 1, "context": {}, "config": {}}  # fmt: skip
        work = runner._work_of(row)
        assert work.token_rate is not None
        assert await work.token_rate("mistral", 1_000) == 0  # no limit on it
        assert await work.token_rate("openai", 1) > 0
        limiter = limiter_for(work, "openai")
        assert limiter is not None
        with pytest.raises(OverBudget, match="could never be made"):
            await limiter.acquire(101)
    finally:
        await transport.close()


async def test_the_llm_hook_waits_for_room(pool: asyncpg.Pool, workspace: str) -> None:
    agent, neighbour = await agents(pool, workspace)
    await set_token_rate(pool, workspace, "function", 1000, window_seconds=2)
    answers: list[float] = []
    filled: list[Any] = []
    calls: list[float] = []

    async def ask(provider: str, tokens: int) -> float:
        if not filled:  # the neighbour spends nearly all just before the hook's first call
            await spend_tokens(pool, neighbour, provider, 990)
            filled.append(await pool.fetchval(
                "SELECT max(at) FROM token_spends WHERE workspace = $1", workspace))  # fmt: skip
        answers.append(await spend_tokens(pool, agent, provider, tokens))
        return answers[-1]

    def respond(messages: list[Any], info: AgentInfo) -> ModelResponse:
        calls.append(len(answers))
        return ModelResponse(parts=[TextPart("done")],
                             usage=RequestUsage(input_tokens=100, output_tokens=20))  # fmt: skip

    task = {"id": "t", "title": "Write", "skill": "writing"}
    work = Work("a1", agent, "g", "t", 1, {"goal": {"title": "Wait"}, "task": task},
                token_rate=ask)  # fmt: skip
    done = await asyncio.wait_for(LlmHook(FunctionModel(respond, model_name="x"))(work), PATIENCE)
    assert done.result == "done"
    assert answers[0] > 0 and answers[-1] == 0  # held back, then granted
    assert calls == [len(answers)]  # the model was called once, after the grant
    (spent,) = await ledger(pool, workspace, "function")  # the neighbour's left the window
    assert (spent["at"] - filled[0]).total_seconds() >= 2


async def test_an_operator_sets_and_lifts_a_rate(
    pool: asyncpg.Pool, database_url: str, workspace: str
) -> None:
    made = await starter(database_url, "workspace", "token-rate", workspace, "openai", "200000")
    assert made.code == 0, made.err
    assert f"workspace {workspace}: its agents share 200,000 tokens a minute of openai" in made.out
    (rate,) = await token_rates(pool, workspace)
    assert (rate.provider, rate.tokens_per_minute, rate.window_seconds) == ("openai", 200000, 60)
    shown = await starter(database_url, "workspace", "token-rates", "--workspace", workspace,
                          "--json")  # fmt: skip
    assert [r["tokens_per_minute"] for r in json.loads(shown.out)] == [200000]

    bad = await starter(database_url, "workspace", "token-rate", workspace, "Open AI", "10")
    assert bad.code == 2 and "got 'Open AI'" in bad.err
    for text, expected in (("0", "got 0"), ("1e3", "got '1e3'"), ("-5", "got -5")):
        with pytest.raises(argparse.ArgumentTypeError, match=expected):
            tokens_per_minute(text)

    lifted = await starter(database_url, "workspace", "token-rate", workspace, "openai", "--clear")
    assert lifted.code == 0 and "no limit on openai tokens now" in lifted.out
    assert await token_rates(pool, workspace) == []
