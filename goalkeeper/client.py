"""The one way Goalkeeper's processes connect to Temporal."""

import os
import sys
from typing import Any, NoReturn

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from goalkeeper import telemetry
from goalkeeper.config import Settings
from goalkeeper.errors import GoalkeeperError
from goalkeeper.models import TaskPage, TaskSummary
from goalkeeper.statuses import TaskStatus


class TemporalUnreachable(GoalkeeperError):
    """No Temporal server answered at the configured address."""

    def __init__(self, address: str, cause: BaseException) -> None:
        super().__init__(
            f"cannot reach Temporal at {address} ({cause}); start one with "
            "'python starter.py up' or set TEMPORAL_ADDRESS"
        )
        self.address = address


async def connect(settings: Settings, service: str = "goalkeeper") -> Client:
    """Connect with the pydantic converter every Goalkeeper client must share, plus tracing."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
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


async def goal_tasks(
    client: Client, goal_id: str, status: TaskStatus | None = None
) -> list[TaskSummary]:
    """Every task of a goal (of one status, if given), page by page, from its `tasks` query.

    A goal run in partitions names its partition workflows; their pages follow in order.
    """
    handle = client.get_workflow_handle(goal_id)
    tasks: list[TaskSummary] = []
    partitions: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = await _tasks_page(handle, offset, status)
        tasks += page.tasks
        partitions = page.partitions
        offset = page.next_offset
    for workflow_id in partitions:
        part = client.get_workflow_handle(workflow_id)
        offset = 0
        while offset is not None:
            page = await _tasks_page(part, offset, status)
            tasks += page.tasks
            offset = page.next_offset
    return tasks


async def _tasks_page(
    handle: WorkflowHandle[Any, Any], offset: int, status: TaskStatus | None
) -> TaskPage:
    page: TaskPage = await handle.query(
        "tasks", {"offset": offset, "limit": 1000, "status": status}, result_type=TaskPage
    )
    return page
