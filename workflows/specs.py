"""Reading a goal's stored task specs back, a page at a time."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.read_model import ReadModelActivities
    from goalkeeper.models import TaskSpec
    from goalkeeper.records import LoadTasks, TaskSpecPage
    from workflows.options import record


async def load_specs(request: LoadTasks) -> list[TaskSpec]:
    """The specs at positions `start` to `end`, in pages of at most `max_bytes` each."""
    specs: list[TaskSpec] = []
    start: int | None = request.start
    while start is not None:
        page: TaskSpecPage = await record(
            ReadModelActivities.load_tasks,
            request.model_copy(update={"start": start}),
            f"load tasks from position {start}",
        )
        specs += page.tasks
        start = page.next_start
    return specs
