"""Writing a goal's tasks to the read model, in pages."""

from goalkeeper.models import TaskSpec
from store.rows import Connection


async def insert_tasks(
    connection: Connection,
    goal_id: str,
    approvers: list[str],
    first_position: int,
    tasks: list[TaskSpec],
) -> None:
    """Insert tasks as `pending` at their plan positions; ones already there stay as they are."""
    await connection.executemany(
        """
        INSERT INTO tasks (goal_id, task_id, title, skill, requires_approval,
                           approvers, depends_on, position, spec)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (goal_id, task_id) DO NOTHING
        """,
        [
            (
                goal_id,
                t.id,
                t.title,
                t.skill,
                t.requires_approval,
                sorted({*approvers, *t.approvers}) if t.requires_approval else [],
                t.depends_on,
                first_position + n,
                t.model_dump(mode="json"),
            )
            for n, t in enumerate(tasks)
        ],
    )


MAX_SKILLS_OFFERED = 200
"""Skills a form offers at most: a hint, not a limit on what may be asked for."""


async def workspace_skills(connection: Connection, workspace: str) -> list[str]:
    """The skills the workspace's agents have, for a form to offer when adding a task."""
    rows = await connection.fetch(
        "SELECT DISTINCT skill FROM agents, unnest(skills) AS skill WHERE workspace = $1 "
        "ORDER BY skill LIMIT $2",
        workspace,
        MAX_SKILLS_OFFERED,
    )
    return [r["skill"] for r in rows]
