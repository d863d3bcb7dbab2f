"""Bare Temporal doing what a goal does, with nothing of Goalkeeper: the benchmark's yardstick.

A parent workflow starts one child per task, a sliding window of them at a time; each
child runs one activity (it tells an agent of its work) and waits for one signal (the
agent's report). The same server, the same worker settings, the same process.
"""

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


class BareAgents:
    """The activity hands work to in-process agents, which signal the child back."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()

    @activity.defn(name="bare_assign")
    async def assign(self, workflow_id: str) -> str:
        await self.inbox.put(workflow_id)
        return "bare-agent"


@workflow.defn(name="BareTask")
class BareTask:
    def __init__(self) -> None:
        self.reported = False

    @workflow.run
    async def run(self, task_id: str) -> str:
        await workflow.execute_activity(
            "bare_assign", workflow.info().workflow_id, start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.wait_condition(lambda: self.reported)
        return task_id

    @workflow.signal
    def report(self, result: str) -> None:
        self.reported = True


@workflow.defn(name="BareGoal")
class BareGoal:
    @workflow.run
    async def run(self, tasks: int, window: int) -> int:
        running: set[asyncio.Task[str]] = set()
        done = 0
        for n in range(tasks):
            if len(running) >= window:
                finished, pending = await workflow.wait(running, return_when="FIRST_COMPLETED")
                running = set(pending)
                done += len(finished)
            running.add(
                asyncio.ensure_future(
                    workflow.execute_child_workflow(
                        BareTask.run, f"t{n}", id=f"{workflow.info().workflow_id}/t{n}"
                    )
                )
            )
        if running:
            await workflow.wait(running)
        return done + len(running)
