"""The LLM agent's tools: its configuration (model, MCP servers, limits), the MCP toolsets
it names, and a record of every tool call of an attempt, with a live note for each."""

import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

import anyio
from fastmcp.client.transports import StdioTransport
from mcp.shared.exceptions import MCPError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_ai import ModelRetry, RunContext, ToolCallPart
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import ToolFailedError, ToolRetryError
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool

MAX_SERVERS = 10
MAX_KEPT_CALLS = 100
"""Tool calls kept per attempt; later ones are counted, not kept."""
MAX_TOOL_ERROR_CHARS = 300

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,30}$")]
Text = Annotated[str, StringConstraints(max_length=4000)]


class McpServer(BaseModel):
    """An MCP server whose tools the model may call: a command over stdio, or a URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(description="prefixes its tools: files_read for the files server")
    command: Text | None = None
    args: list[Text] = Field(default=[], max_length=100)
    env: dict[Text, Text] = Field(default={}, max_length=100)
    cwd: Text | None = None
    url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)] | None = None
    headers: dict[Text, Text] = Field(default={}, max_length=50)

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server {self.name!r} needs a command or a url, not both")
        if self.url is None and self.headers:
            raise ValueError(f"MCP server {self.name!r}: headers go with a url")
        if self.command is None and (self.args or self.env or self.cwd):
            raise ValueError(f"MCP server {self.name!r}: args, env and cwd go with a command")
        return self


class LlmConfig(BaseModel):
    """The LLM agent's part of its configuration; keys it does not know are others'."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    mcp_servers: list[McpServer] = Field(default=[], max_length=MAX_SERVERS)
    tool_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    start_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """How long an MCP server may take to start and answer its handshake."""
    max_tool_calls: int = Field(default=50, ge=0, le=MAX_KEPT_CALLS)
    expected_output_tokens: int = Field(default=500, gt=0, le=1_000_000)
    """What the budget check expects a model call to write before any call has."""

    @model_validator(mode="after")
    def _names_apart(self) -> Self:
        names = [s.name for s in self.mcp_servers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"MCP server names must differ, got {', '.join(twice)} twice")
        return self


class BadConfig(ValueError):
    """The agent's configuration cannot be used; the message names the field."""


def parse_config(config: dict[str, Any]) -> LlmConfig:
    """The configuration checked, or `BadConfig` naming each bad field and what it expected."""
    try:
        return LlmConfig.model_validate(config)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise BadConfig(f"bad agent config: {problems}") from None


class ToolsetFailed(RuntimeError):
    """An MCP server could not be started or reached, or did not speak MCP."""


def toolset_of(server: McpServer, config: LlmConfig) -> MCPToolset:
    """The MCP toolset for `server`; a stdio server's process ends with the attempt."""
    # The per-call bound is `TimeoutToolset`'s; this one only keeps a dead connection finite.
    read_timeout = config.tool_timeout_seconds + 5
    common: dict[str, Any] = {
        "id": server.name,
        "init_timeout": config.start_timeout_seconds,
        "read_timeout": read_timeout,
        "tool_error_behavior": "failed",
    }
    if server.url is not None:
        return MCPToolset(server.url, headers=dict(server.headers) or None, **common)
    assert server.command is not None
    transport = StdioTransport(
        server.command, list(server.args), env=dict(server.env), cwd=server.cwd, keep_alive=False
    )
    return MCPToolset(transport, **common)


@asynccontextmanager
async def started(config: LlmConfig) -> AsyncIterator[dict[str, MCPToolset]]:
    """Each configured MCP server started (or reached) and listed, by name; one that cannot
    be fails with `ToolsetFailed` naming it."""
    async with AsyncExitStack() as stack:
        toolsets: dict[str, MCPToolset] = {}
        for server in config.mcp_servers:
            toolset = toolset_of(server, config)
            try:
                await stack.enter_async_context(toolset)
                await toolset.list_tools()
            except (OSError, RuntimeError, MCPError, ExceptionGroup, TimeoutError) as exc:
                where = server.url or server.command
                raise ToolsetFailed(
                    f"MCP server {server.name!r} ({where}) could not start: {_reason(exc)}"
                ) from None
            toolsets[server.name] = toolset
        yield toolsets


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:MAX_TOOL_ERROR_CHARS]


@dataclass
class TimeoutToolset(WrapperToolset[Any]):
    """Cuts any call of the wrapped toolset at `seconds` and tells the model it timed out."""

    seconds: float = 30.0
    timed_out: set[str] = field(default_factory=set)
    """Ids of the calls that were cut, for the record."""

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        try:
            with anyio.fail_after(self.seconds):
                return await super().call_tool(name, tool_args, ctx, tool)
        except TimeoutError:
            if ctx.tool_call_id:
                self.timed_out.add(ctx.tool_call_id)
            raise ModelRetry(f"tool {name} timed out after {self.seconds:g} s") from None


def toolsets_for(
    started: dict[str, MCPToolset], config: LlmConfig, timed_out: set[str]
) -> list[AbstractToolset[Any]]:
    """The started toolsets, each prefixed by its server's name and bounded per call."""
    return [
        TimeoutToolset(toolset.prefixed(name), seconds=config.tool_timeout_seconds,
                       timed_out=timed_out)
        for name, toolset in started.items()
    ]  # fmt: skip


def args_digest(args: Any) -> str:
    """SHA-256 of the arguments as canonical JSON: the call is recognisable, its data not kept."""
    canonical = json.dumps(
        args, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class ToolCallRecorder(AbstractCapability[Any]):
    """Records every tool call of a run, whichever toolset it comes from, and posts a note
    for each; keeps `MAX_KEPT_CALLS` and counts the rest."""

    note: Callable[[str], Awaitable[None]] | None = None
    timed_out: set[str] = field(default_factory=set)
    calls: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: Any,
        handler: Any,
    ) -> Any:
        started_at = time.monotonic()
        error: str | None = None
        try:
            result = await handler(args)
        except ToolRetryError as exc:
            outcome, error = "failed", _tool_error(str(exc))
            raise
        except ToolFailedError as exc:
            outcome, error = "failed", _tool_error(str(exc))
            raise
        except Exception as exc:
            outcome, error = "failed", _tool_error(f"{type(exc).__name__}: {exc}")
            raise
        else:
            outcome = "success"
            return result
        finally:
            if call.tool_call_id in self.timed_out:
                outcome = "timeout"
            await self._record(call, outcome, error, time.monotonic() - started_at)

    async def _record(
        self, call: ToolCallPart, outcome: str, error: str | None, seconds: float
    ) -> None:
        if len(self.calls) >= MAX_KEPT_CALLS:
            self.dropped += 1
            return
        duration_ms = round(seconds * 1000)
        self.calls.append(
            {
                "tool": call.tool_name[:200],
                "args_digest": args_digest(call.args_as_dict()),
                "duration_ms": duration_ms,
                "outcome": outcome,
                "error": None if error is None else error[:MAX_TOOL_ERROR_CHARS],
            }
        )
        if self.note is not None:
            said = {"success": "ok", "failed": "failed", "timeout": "timed out"}[outcome]
            await self.note(f"called {call.tool_name[:80]} ({said}, {duration_ms} ms)")


def _tool_error(text: str) -> str:
    return text[:MAX_TOOL_ERROR_CHARS]
