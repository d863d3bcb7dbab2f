"""Requests (questions asked), from the read model; one just asked, before its workflow
has recorded it, from the workflow's `status` query."""

from typing import Any

from fastapi import APIRouter
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from goalkeeper.requests import RequestView
from interfaces.api.auth import Reader
from interfaces.api.problems import answers, not_found
from interfaces.api.state import Pool, Temporal
from workflows.request import RequestWorkflow

router = APIRouter(tags=["requests"])


@router.get("/requests/{request_id}")
@answers({404: "no request of that id that the token may see"})
async def request(pool: Pool, client: Temporal, access: Reader, request_id: str) -> dict[str, Any]:
    """One request: its status, and the answer or the goal its triage chose. A request of
    another workspace answers 404, as an unknown one does."""
    row = await pool.fetchrow(
        """
        SELECT request_id, question, workspace, status, kind, answer, goal_id, reason, error,
               created_at, updated_at, ended_at
        FROM requests WHERE request_id = $1 AND ($2::text[] IS NULL OR workspace = ANY($2))
        """,
        request_id,
        access.scope,
    )
    if row is not None:
        return dict(row) | {"source": "read_model"}
    view = await _asked(client, request_id)
    if view is None or not access.sees(view.workspace):
        raise not_found("request", request_id, "the request_id that POST /api/v1/requests answered")
    return view.model_dump(mode="json") | {"source": "workflow"}


async def _asked(client: Client, request_id: str) -> RequestView | None:
    """The request workflow's own view, if `request_id` is one that has yet to be recorded."""
    handle = client.get_workflow_handle_for(RequestWorkflow.run, request_id)
    try:
        if (await handle.describe()).workflow_type != "RequestWorkflow":
            return None
        view: RequestView = await handle.query(RequestWorkflow.status)
    except (RPCError, WorkflowQueryFailedError):
        return None
    return view
