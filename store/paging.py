"""Reading a goal's tasks through its `tasks` query, page by page, partitions included."""

from typing import Any

from temporalio.client import Client, WorkflowHandle

from goalkeeper.models import TaskPage, TaskSummary
from goalkeeper.statuses import TaskStatus


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
