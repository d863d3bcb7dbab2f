"""The public contract from the `temporal` CLI alone, with nothing of ours running but worker.py."""

import asyncio
import json
import signal
import uuid
from pathlib import Path
from typing import Any

from interfaces.stack import TemporalDevServer
from tests.helpers import run_temporal, start_worker_process


class TemporalCli:
    """Runs `temporal` commands against the test server, as a person at a shell would."""

    def __init__(self, server: TemporalDevServer) -> None:
        self.server = server

    async def run(self, *args: str) -> str:
        code, out = await run_temporal(self.server, *args)
        assert code == 0, f"temporal {' '.join(args)} failed: {out}"
        return out

    async def query(self, workflow_id: str, name: str) -> Any:
        out = await self.run("workflow", "query", "-w", workflow_id, "--name", name, "-o", "json")
        return json.loads(out)["queryResult"][0]

    async def signal(self, workflow_id: str, name: str, payload: dict[str, Any]) -> None:
        await self.run(
            "workflow", "signal", "-w", workflow_id, "--name", name, "--input", json.dumps(payload)
        )

    async def wait_task(self, goal_id: str, task_id: str, status: str) -> dict[str, Any]:
        for _ in range(300):
            page = await self.query(goal_id, "tasks")
            # A goal asked before its first workflow task has run may answer no page yet.
            tasks = {t["task_id"]: t for t in (page or {}).get("tasks") or []}
            if tasks.get(task_id, {}).get("status") == status:
                return tasks[task_id]
            await asyncio.sleep(0.1)
        raise AssertionError(f"{task_id} never became {status}: {tasks.get(task_id)}")


async def test_a_goal_driven_to_completion_with_the_temporal_cli(
    temporal_server: TemporalDevServer, database_url: str, tmp_path: Path
) -> None:
    queue = f"cli-{uuid.uuid4().hex[:8]}"
    worker = await start_worker_process(temporal_server, database_url, queue, tmp_path / "w.log")
    cli = TemporalCli(temporal_server)
    goal_id = f"q3-launch-{uuid.uuid4().hex[:6]}"
    spec = {
        "goal_id": goal_id,
        "title": "Q3 launch",
        "description": "Launch the Q3 campaign",
        "workspace": "acme",
        "approvers": ["ops-lead"],
        "tasks": [
            {"id": "csv", "title": "Import CSV", "skill": "data"},
            {
                "id": "email",
                "title": "Write email 1",
                "skill": "writing",
                "requires_approval": True,
                "depends_on": ["csv"],
            },
        ],
    }
    try:
        await cli.run(
            "workflow", "start", "--type", "GoalWorkflow", "--task-queue", queue,
            "--workflow-id", goal_id, "--input", json.dumps(spec),
        )  # fmt: skip
        csv = await cli.wait_task(goal_id, "csv", "assigned")
        await cli.signal(
            f"{goal_id}/csv",
            "agent_report",
            {
                "agent_id": csv["agent_id"],
                "assignment_id": csv["assignment_id"],
                "outcome": "completed",
                "result": "leads.csv",
                "tokens_used": 1200,
                "cost_usd": 0.012,
            },
        )
        email = await cli.wait_task(goal_id, "email", "assigned")
        half = await cli.query(goal_id, "progress")
        assert (half["tasks_completed"], half["tasks_total"], half["progress_percentage"]) == (
            1,
            2,
            50,
        )
        await cli.signal(
            f"{goal_id}/email",
            "agent_report",
            {
                "agent_id": email["agent_id"],
                "assignment_id": email["assignment_id"],
                "outcome": "completed",
                "result": "Dear customer...",
            },
        )
        await cli.wait_task(goal_id, "email", "awaiting_approval")
        waiting = await cli.query(goal_id, "progress")
        assert waiting["tasks_awaiting_approval"] == 1
        await cli.signal(
            f"{goal_id}/email", "approval_decision", {"approver": "ops-lead", "decision": "approve"}
        )
        result = json.loads(await cli.run("workflow", "result", "-w", goal_id, "-o", "json"))
        report = result["result"]
        assert report["status"] == "completed"
        assert report["progress"]["progress_percentage"] == 100
        assert report["progress"]["tokens_used"] == 1200
        final = await cli.query(goal_id, "progress")
        assert (final["status"], final["tasks_completed"]) == ("completed", 2)
        task = await cli.query(f"{goal_id}/email", "status")
        assert task["status"] == "completed"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait()
