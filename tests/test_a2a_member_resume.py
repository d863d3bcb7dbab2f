"""A bridge that restarts while an A2A agent works follows the agent's A2A task again:
the work is sent once, not cancelled by the stop, and its result still counts."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import uvicorn
from a2a.helpers.proto_helpers import new_task, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import TaskState
from starlette.applications import Starlette
from temporalio.client import Client

from goalkeeper.statuses import GoalStatus
from interfaces.a2a.member import register, serve_members
from interfaces.a2a.reach import Reach
from interfaces.agents import registry
from interfaces.stack import free_port
from tests.helpers import PATIENCE, eventually, goal_spec, start_goal
from tests.test_a2a_member import LOOPBACK, card_of


@dataclass
class Slow(AgentExecutor):
    """An A2A agent that works until the test lets it finish."""

    messages: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id and context.message
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        task = new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED)
        await event_queue.enqueue_event(task)
        self.messages.append(context.message.message_id)
        await updater.start_work()
        await self.release.wait()
        await updater.add_artifact([new_text_part("written once")])
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        self.cancelled.append(context.task_id)
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


@asynccontextmanager
async def slow_agent() -> AsyncIterator[tuple[str, Slow]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    card = card_of(url)
    agent = Slow()
    handler = DefaultRequestHandler(agent, InMemoryTaskStore(), card)
    routes = [*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/rpc")]
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=routes), port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: asyncio.sleep(0, server.started), what="the A2A agent to listen")
    try:
        yield url, agent
    finally:
        server.should_exit = True
        agent.release.set()
        await serving


async def test_a_restarted_bridge_follows_the_a2a_task_it_had_sent(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    agent_id = f"{workspace}-slow"
    reach = Reach.parse([LOOPBACK])
    async with slow_agent() as (url, agent):
        await register(pool, agent_id, url, workspace, reach=reach)
        spec = goal_spec(workspace=workspace, heartbeat_timeout_seconds=60)
        goal = await start_goal(client, spec, task_queue)

        first_stop = asyncio.Event()
        first = asyncio.create_task(
            serve_members(client, pool, workspace, first_stop, sweep_interval=0.5, reach=reach)
        )
        kept = await eventually(
            lambda: pool.fetchrow(
                "SELECT assignment_id, a2a_task_id FROM a2a_member_tasks WHERE agent_id = $1",
                agent_id,
            ),
            what="the A2A task the assignment became",
        )
        assert agent.messages == [str(kept["assignment_id"])]
        first_stop.set()
        await asyncio.wait_for(first, PATIENCE)
        # Stopping the bridge is no reason to stop the agent's work.
        assert agent.cancelled == []
        status = await pool.fetchval(
            "SELECT status::text FROM assignments WHERE assignment_id = $1",
            kept["assignment_id"],
        )
        assert status == "active"

        second_stop = asyncio.Event()
        second = asyncio.create_task(
            serve_members(client, pool, workspace, second_stop, sweep_interval=0.5, reach=reach)
        )
        try:
            agent.release.set()
            report = await asyncio.wait_for(goal.result(), PATIENCE)
        finally:
            second_stop.set()
            await asyncio.wait_for(second, PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert agent.messages == [str(kept["assignment_id"])]  # sent once, followed twice
    result = await pool.fetchval(
        "SELECT result FROM assignments WHERE assignment_id = $1", kept["assignment_id"]
    )
    assert result == "written once"
    left = await pool.fetchval(
        "SELECT count(*) FROM a2a_member_tasks WHERE assignment_id = $1",
        uuid.UUID(str(kept["assignment_id"])),
    )
    assert left == 0  # nothing left to resume
    await registry.take_offline(pool, [agent_id])
