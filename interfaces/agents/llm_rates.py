"""Holding an LLM agent's model calls to its workspace's shared tokens-per-minute rate of
the model's provider (`starter.py workspace token-rate`), which PostgreSQL keeps for every
agent of the workspace wherever it runs. The runner's transport asks: PostgreSQL itself
for agents with a database login, the HTTP agent protocol for those without one."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from interfaces.agents.llm_costs import OverBudget, TokenLimiter
from interfaces.agents.runner import Work
from store.token_rates import PROVIDER, RateRefused

Ask = Callable[[str, int], Awaitable[float]]
"""Spend (provider, tokens): 0 once granted (or with no limit set), else seconds to wait."""

PATIENCE_SECONDS = 600.0
"""The longest a model call waits for room before its attempt fails, saying so."""

SHORTEST_WAIT = 0.05
"""The least time between two asks, whatever the answer said: never a busy loop."""


@dataclass
class SharedLimiter:
    """A `TokenLimiter` over the workspace's shared rate: asks, and waits as long as the
    answer says until the spend is granted."""

    ask: Ask
    provider: str
    patience: float = PATIENCE_SECONDS

    async def acquire(self, tokens: int) -> None:
        waited = 0.0
        while True:
            try:
                wait = await self.ask(self.provider, tokens)
            except RateRefused as exc:
                raise OverBudget(f"rate limit: {exc}") from None
            except Exception as exc:  # the rate could not be asked: say so, spend nothing
                raise OverBudget(
                    f"rate limit: could not ask the workspace's rate of {self.provider!r}: {exc}"
                ) from None
            if wait <= 0:
                return
            if waited >= self.patience:
                raise OverBudget(
                    f"rate limit: no room for about {tokens} tokens of {self.provider!r} in "
                    f"the workspace's rate after waiting {waited:.0f} s"
                )
            pause = min(max(wait, SHORTEST_WAIT), self.patience - waited + SHORTEST_WAIT)
            await asyncio.sleep(pause)
            waited += pause


def limiter_for(work: Work, provider: str | None) -> TokenLimiter | None:
    """The limiter of the work's workspace for the provider; None where the runner gives
    no rate to ask, or the provider has a name no limit can be set for."""
    if work.token_rate is None or not provider or not PROVIDER.fullmatch(provider):
        return None
    return SharedLimiter(work.token_rate, provider)
