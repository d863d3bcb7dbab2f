"""A minimal A2A agent (the official a2a-sdk) that Goalkeeper can take on as a team member.

    python a2a_agent.py 9999        # serves its card at http://127.0.0.1:9999/.well-known/agent-card.json
    python starter.py agent register scribe --a2a http://127.0.0.1:9999 --workspace acme
    python agent.py --a2a-bridge --workspace acme

Each assignment comes as a message whose data part is the task's context (the goal, the
task, the results of the tasks it depends on); the artifacts of the completed A2A task
become the task's result.
"""

import sys

import uvicorn
from a2a.helpers.proto_helpers import get_data_parts, new_task, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, TaskState
from starlette.applications import Starlette


class Scribe(AgentExecutor):
    """Does each task it is given: here, a line naming it."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id and context.message
        await event_queue.enqueue_event(
            new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED)
        )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.start_work()
        work = get_data_parts(context.message.parts)[0]
        await updater.add_artifact([new_text_part(f"{work['task']['title']}: done over A2A")])
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def app(url: str) -> Starlette:
    """The agent's card at the well-known path and its JSON-RPC endpoint at /rpc."""
    card = AgentCard(
        name="Scribe",
        description="writes what it is asked to",
        version="1.0",
        supported_interfaces=[
            AgentInterface(url=f"{url}/rpc", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="writing", name="Writing", description="prose", tags=["prose"])],
    )
    handler = DefaultRequestHandler(Scribe(), InMemoryTaskStore(), card)
    routes = [*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/rpc")]
    return Starlette(routes=routes)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
    uvicorn.run(app(f"http://127.0.0.1:{port}"), host="127.0.0.1", port=port)
