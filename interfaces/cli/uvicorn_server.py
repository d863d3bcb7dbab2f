"""uvicorn as `Dashboard` runs it: a task of the command's own event loop, which keeps
Ctrl-C and SIGTERM for itself."""

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from interfaces.api.agent_protocol import stop_waiting


class SignalFreeServer(uvicorn.Server):
    """uvicorn without its own Ctrl-C handling, which would stop the app and not the rest,
    and with `settled`: set once it serves, or once it has failed to."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.settled = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.settled.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Waiting agents are answered before the grace period starts, not cut off after it.
        stop_waiting(self.config.app)
        await super().shutdown(sockets)


async def serve_on(server: SignalFreeServer, listening: socket.socket) -> None:
    """Serve on `listening` until told to stop; `settled` is set however that ends."""
    try:
        # SystemExit is how uvicorn says the app failed to start; it has logged why.
        with contextlib.suppress(SystemExit):
            await server.serve(sockets=[listening])
    finally:
        server.settled.set()
