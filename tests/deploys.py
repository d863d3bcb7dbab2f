"""A task workflow as a deploy that breaks determinism would change it (its own module,
so the workflow sandbox imports nothing of the tests)."""

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.task import TaskWorkflow


@workflow.defn(name="TaskWorkflow")
class ChangedTaskWorkflow(TaskWorkflow):
    """A new first command that the histories of running tasks lack."""

    @workflow.run
    async def run(self, raw_input: Any, raw_checkpoint: Any = None) -> Any:
        await workflow.sleep(timedelta(hours=1))
        return await super().run(raw_input, raw_checkpoint)
