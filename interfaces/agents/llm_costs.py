"""What an LLM run costs, and stopping it before a model call would overspend: prices come
from the provider where it reports one, else from `genai-prices`' bundled table; a model
the table lacks is said once and its cost left unknown, never taken as free."""

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from genai_prices import Usage, calc_price
from pydantic_ai import ModelRequest, ModelResponse, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.usage import RunUsage

log = logging.getLogger("goalkeeper.agent.llm")

_unpriced: set[str] = set()
"""Models already said to be missing from the price table, so each is said once."""

CHARS_PER_TOKEN = 4
"""A rough count of a text's tokens before the model has counted them."""


def price(usage: Any, model_name: str, provider: str | None = None) -> Decimal | None:
    """The USD price of `usage` on the model from the bundled table; None if it lacks it."""
    for provider_id in (provider, None) if provider else (None,):
        try:
            return calc_price(usage, model_name, provider_id=provider_id).total_price
        except LookupError:
            continue
    if model_name not in _unpriced:
        _unpriced.add(model_name)
        log.warning("no price known for model %r: its cost is left unknown", model_name)
    return None


def run_cost(usage: RunUsage, model_name: str, provider: str | None) -> Decimal | None:
    """The run's cost: the provider's figure if it gave one, else the table's; None if unknown."""
    if usage.cost is not None:
        return usage.cost
    if not usage.input_tokens and not usage.output_tokens:
        return Decimal(0)
    return price(usage, model_name, provider)


class OverBudget(Exception):
    """The next model call would spend more than the assignment has left."""


class TokenLimiter(Protocol):
    """Holds model calls back to a tokens-per-minute rate shared by a workspace's agents."""

    async def acquire(self, tokens: int) -> None:
        """Return once `tokens` more may be spent; raise if they never could."""
        ...


@dataclass
class InProcessLimiter:
    """A tokens-per-minute limit over a sliding minute, within one process."""

    tokens_per_minute: int
    window: float = 60.0
    spent: deque[tuple[float, int]] = field(default_factory=deque)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def acquire(self, tokens: int) -> None:
        if tokens > self.tokens_per_minute:
            raise OverBudget(
                f"rate limit: a call of about {tokens} tokens exceeds the limit of "
                f"{self.tokens_per_minute} tokens a minute"
            )
        async with self.lock:
            while True:
                now = time.monotonic()
                while self.spent and self.spent[0][0] <= now - self.window:
                    self.spent.popleft()
                used = sum(n for _, n in self.spent)
                if used + tokens <= self.tokens_per_minute:
                    self.spent.append((now, tokens))
                    return
                await asyncio.sleep(self.spent[0][0] + self.window - now)


def budget_left(context: dict[str, Any]) -> tuple[Decimal | None, int | None]:
    """USD and tokens the assignment may still spend, from its context; None where unbounded."""
    budget = context.get("budget") or {}
    usd = budget.get("usd_left")
    tokens = budget.get("tokens_left")
    return (
        Decimal(str(usd)) if isinstance(usd, int | float) else None,
        int(tokens) if isinstance(tokens, int | float) else None,
    )


def projected_tokens(messages: list[Any], expected_output: int) -> tuple[int, int]:
    """Tokens the next model call will likely read and write: the last call's reading plus
    what came since, and as much writing as last time (or `expected_output` at first)."""
    last = next(
        (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], ModelResponse)),
        None,
    )
    if last is None:
        return _chars(messages) // CHARS_PER_TOKEN + 1, expected_output
    response: ModelResponse = messages[last]
    since = _chars(messages[last + 1 :]) // CHARS_PER_TOKEN
    read = response.usage.input_tokens + response.usage.output_tokens + since
    return read, response.usage.output_tokens or expected_output


def _chars(messages: list[Any]) -> int:
    total = 0
    for message in messages:
        if isinstance(message, ModelRequest | ModelResponse):
            total += sum(len(str(getattr(p, "content", "") or "")) for p in message.parts)
            total += sum(len(str(getattr(p, "args", "") or "")) for p in message.parts)
        if isinstance(message, ModelRequest) and message.instructions:
            total += len(message.instructions)
    return total


@dataclass
class Budget(AbstractCapability[Any]):
    """Checks each model call before it is made against what the assignment has left, and
    waits for the workspace's token rate where one is set."""

    model_name: str
    provider: str | None
    usd_left: Decimal | None
    tokens_left: int | None
    expected_output: int = 500
    limiter: TokenLimiter | None = None

    async def before_model_request(
        self, ctx: RunContext[Any], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        read, write = projected_tokens(request_context.messages, self.expected_output)
        spent_tokens = ctx.usage.input_tokens + ctx.usage.output_tokens
        if self.tokens_left is not None and spent_tokens + read + write > self.tokens_left:
            raise OverBudget(
                f"budget: {self.tokens_left - spent_tokens} tokens left, the next model call "
                f"would use about {read + write}"
            )
        if self.usd_left is not None:
            spent = run_cost(ctx.usage, self.model_name, self.provider)
            next_call = price(Usage(input_tokens=read, output_tokens=write), self.model_name,
                              self.provider)  # fmt: skip
            if spent is not None and next_call is not None and spent + next_call > self.usd_left:
                raise OverBudget(
                    f"budget: USD {_usd(self.usd_left - spent)} left, the next model call "
                    f"would cost about {_usd(next_call)}"
                )
        if self.limiter is not None:
            await self.limiter.acquire(read + write)
        return request_context


def _usd(amount: Decimal) -> str:
    return f"{max(amount, Decimal(0)):.6f}".rstrip("0").rstrip(".")
