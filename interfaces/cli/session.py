"""What every command needs: settings, output, and lazily opened Temporal and PostgreSQL."""

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg
from temporalio.client import Client

from goalkeeper.errors import GoalkeeperError
from goalkeeper.masking import mask_url
from interfaces.client import connect
from interfaces.config import Settings
from interfaces.stack import database_url
from interfaces.telemetry import masked
from store.database import create_pool

CLOSE_SECONDS = 10.0
"""How long a command waits for its database connections to come back as it ends."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
"""0 success; 1 the goal, task or request failed; 2 bad usage or input; 3 a server is
unreachable."""


class CliError(GoalkeeperError):
    """An error printed as one line, with the exit code it means."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Session:
    settings: Settings
    as_json: bool = False
    _client: Client | None = None
    _pool: asyncpg.Pool | None = None
    exit_code: int = EXIT_OK

    async def client(self) -> Client:
        if self._client is None:
            self._client = await connect(self.settings, service="goalkeeper-cli")
        return self._client

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            url = database_url(self.settings, start=False)
            try:
                self._pool = await create_pool(url, min_size=1, max_size=2)
            except (OSError, asyncpg.PostgresError) as exc:
                raise CliError(
                    f"cannot reach PostgreSQL at {mask_url(url)} ({masked(exc)}); start the stack "
                    "with 'python starter.py up' or set DATABASE_URL",
                    EXIT_UNREACHABLE,
                ) from exc
        return self._pool

    async def close(self) -> None:
        """Close the pool; a connection that does not come back in time (a query cut by
        Ctrl-C on a busy server, say) is dropped, so a command always ends when stopped."""
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), CLOSE_SECONDS)
            except TimeoutError:
                self._pool.terminate()

    def emit(self, data: Any, text: str) -> None:
        """Print `data` as JSON with --json, else the text for people."""
        print(json.dumps(data, indent=2, default=str) if self.as_json else text)
        sys.stdout.flush()

    def ui_link(self, workflow_id: str) -> str:
        namespace = self.settings.temporal_namespace
        return f"{self.settings.ui_url}/namespaces/{namespace}/workflows/{workflow_id}"

    def ui_goals_link(self) -> str:
        """The Temporal UI's list of goals alone, without their task workflows."""
        namespace = self.settings.temporal_namespace
        query = 'WorkflowType="GoalWorkflow"'
        return f"{self.settings.ui_url}/namespaces/{namespace}/workflows?query={quote(query)}"


def table(rows: list[list[Any]], header: list[str]) -> str:
    """Rows as aligned columns under a header."""
    cells = [[str(c) for c in header]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
