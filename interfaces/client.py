"""The one way Goalkeeper's processes connect to Temporal."""

import os
import sys
from typing import NoReturn

from temporalio.client import Client

from goalkeeper.errors import GoalkeeperError
from interfaces import codec, telemetry
from interfaces.config import Settings


class TemporalUnreachable(GoalkeeperError):
    """No Temporal server answered at the configured address."""

    def __init__(self, address: str, cause: BaseException) -> None:
        super().__init__(
            f"cannot reach Temporal at {address} ({cause}); start one with "
            "'python starter.py up' or set TEMPORAL_ADDRESS"
        )
        self.address = address


async def connect(settings: Settings, service: str = "goalkeeper") -> Client:
    """Connect with the converter every Goalkeeper client must share (pydantic, and the
    payload encryption when keys are configured), plus tracing."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=codec.data_converter(settings.codec_keys),
            interceptors=telemetry.tracing_interceptors(settings, service),
            runtime=telemetry.runtime(settings.metrics_address),
        )
    except RuntimeError as exc:
        raise TemporalUnreachable(settings.temporal_address, exc) from exc


def exit_process(code: int) -> NoReturn:
    """Exit without interpreter teardown, after flushing output and spans.

    The Temporal client's native threads can outlive the event loop; if they touch
    the interpreter while it finalizes, CPython aborts ("PyGILState_Release ...",
    temporalio/sdk-python#300). Short-lived commands therefore skip finalization.
    """
    telemetry.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
