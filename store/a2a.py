"""A2A agents' cards, and the questions they ask while working with the answers given."""

import uuid
from typing import Any

import asyncpg


class NoOpenQuestion(LookupError):
    """No question of an A2A agent waits for an answer on that task."""

    def __init__(self, goal_id: str, task_id: str) -> None:
        super().__init__(f"no question waits for an answer on {goal_id}/{task_id}")
        self.goal_id, self.task_id = goal_id, task_id


async def store_member(
    pool: asyncpg.Pool, agent_id: str, url: str, card: dict[str, Any], signed: bool
) -> None:
    """Keep the card an agent was registered from (the latest registration wins)."""
    await pool.execute(
        """
        INSERT INTO a2a_agents (agent_id, url, card, signed) VALUES ($1, $2, $3, $4)
        ON CONFLICT (agent_id) DO UPDATE
        SET url = EXCLUDED.url, card = EXCLUDED.card, signed = EXCLUDED.signed,
            registered_at = now()
        """,
        agent_id,
        url,
        card,
        signed,
    )


async def member(pool: asyncpg.Pool, agent_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM a2a_agents WHERE agent_id = $1", agent_id)


async def members(pool: asyncpg.Pool, workspace: str) -> list[asyncpg.Record]:
    """The A2A agents of a workspace, with what a bridge registers them with."""
    return await pool.fetch(
        """
        SELECT m.agent_id, m.url, g.skills, g.capacity FROM a2a_agents m JOIN agents g USING
        (agent_id) WHERE g.workspace = $1 ORDER BY m.agent_id
        """,
        workspace,
    )


async def ask(
    pool: asyncpg.Pool,
    question_id: uuid.UUID,
    work: dict[str, Any],
    a2a_task_id: str,
    question: str,
) -> None:
    """Record an agent's question and its event, once (a repeat of the same id is harmless)."""
    async with pool.acquire() as connection, connection.transaction():
        inserted = await connection.fetchval(
            """
            INSERT INTO a2a_questions
                (question_id, assignment_id, agent_id, goal_id, task_id, a2a_task_id, question)
            VALUES ($1, $2::uuid, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1
            """,
            question_id,
            work["assignment_id"],
            work["agent_id"],
            work["goal_id"],
            work["task_id"],
            a2a_task_id,
            question,
        )
        if inserted:
            await connection.execute(
                "SELECT goalkeeper_event($1)",
                (
                    {
                        "event_id": str(question_id),
                        "goal_id": work["goal_id"],
                        "task_id": work["task_id"],
                        "agent_id": work["agent_id"],
                        "kind": "agent_question",
                        "message": f"agent {work['agent_id']} asks: {question}",
                        "detail": {"question_id": str(question_id), "a2a_task_id": a2a_task_id},
                    }
                ),
            )


async def answer_of(pool: asyncpg.Pool, question_id: uuid.UUID) -> str | None:
    answer: str | None = await pool.fetchval(
        "SELECT answer FROM a2a_questions WHERE question_id = $1", question_id
    )
    return answer


async def answer(
    pool: asyncpg.Pool, goal_id: str, task_id: str, text: str, approver: str
) -> asyncpg.Record:
    """Answer the open question on a task, as `approver`; `NoOpenQuestion` if none waits."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            """
            UPDATE a2a_questions SET answer = $3, answered_by = $4, answered_at = now()
            WHERE question_id = (SELECT question_id FROM a2a_questions
                                 WHERE goal_id = $1 AND task_id = $2 AND answered_at IS NULL
                                 ORDER BY asked_at DESC LIMIT 1)
            RETURNING *
            """,
            goal_id,
            task_id,
            text,
            approver,
        )
        if row is None:
            raise NoOpenQuestion(goal_id, task_id)
        await connection.execute(
            "SELECT goalkeeper_event($1)",
            (
                {
                    "event_id": str(uuid.uuid5(row["question_id"], "answer")),
                    "goal_id": goal_id,
                    "task_id": task_id,
                    "agent_id": row["agent_id"],
                    "kind": "agent_question_answered",
                    "message": f"{approver} answered agent {row['agent_id']}: {text}",
                    "detail": {"question_id": str(row["question_id"]), "by": approver},
                }
            ),
        )
        return row


async def approvers_of(pool: asyncpg.Pool, goal_id: str, task_id: str) -> list[str] | None:
    """Who may answer on a task: its approvers and its goal's; None if there is no such task."""
    row = await pool.fetchrow(
        """
        SELECT t.approvers AS task, g.approvers AS goal FROM tasks t JOIN goals g USING (goal_id)
        WHERE t.goal_id = $1 AND t.task_id = $2
        """,
        goal_id,
        task_id,
    )
    if row is None:
        return None
    return list(dict.fromkeys([*row["task"], *row["goal"]]))


async def open_questions(
    pool: asyncpg.Pool, person: str, workspaces: list[str] | None, limit: int = 100
) -> list[asyncpg.Record]:
    """The questions A2A agents ask that `person` may answer (an approver of the task or its
    goal), in `workspaces` (None: every one), oldest first."""
    return await pool.fetch(
        """
        SELECT q.question_id, q.goal_id, q.task_id, q.agent_id, q.question, q.asked_at
        FROM a2a_questions q
        JOIN tasks t ON t.goal_id = q.goal_id AND t.task_id = q.task_id
        JOIN goals g ON g.goal_id = q.goal_id
        WHERE q.answered_at IS NULL AND ($2::text[] IS NULL OR g.workspace = ANY($2))
          AND ($1 = ANY(t.approvers) OR $1 = ANY(g.approvers))
        ORDER BY q.asked_at LIMIT $3
        """,
        person,
        workspaces,
        limit,
    )


async def keep_task(
    pool: asyncpg.Pool, assignment_id: str, agent_id: str, a2a_task_id: str
) -> None:
    """Remember the A2A task an assignment became, for a bridge that restarts."""
    await pool.execute(
        "INSERT INTO a2a_member_tasks (assignment_id, agent_id, a2a_task_id) VALUES ($1, $2, $3) "
        "ON CONFLICT (assignment_id) DO UPDATE SET a2a_task_id = EXCLUDED.a2a_task_id",
        uuid.UUID(assignment_id),
        agent_id,
        a2a_task_id,
    )


async def kept_task(pool: asyncpg.Pool, assignment_id: str) -> str | None:
    """The A2A task an assignment became before the bridge restarted, if any."""
    found: str | None = await pool.fetchval(
        "SELECT a2a_task_id FROM a2a_member_tasks WHERE assignment_id = $1",
        uuid.UUID(assignment_id),
    )
    return found


async def forget_task(pool: asyncpg.Pool, assignment_id: str) -> None:
    """The assignment's A2A task is over for Goalkeeper: nothing to resume."""
    await pool.execute(
        "DELETE FROM a2a_member_tasks WHERE assignment_id = $1", uuid.UUID(assignment_id)
    )


async def still_assigned(pool: asyncpg.Pool, assignment_id: str) -> bool:
    """Whether the assignment is still its agent's (not ended, taken away or reassigned)."""
    status = await pool.fetchval(
        "SELECT status::text FROM assignments WHERE assignment_id = $1", uuid.UUID(assignment_id)
    )
    return bool(status == "active")


async def questions_answered(pool: asyncpg.Pool, assignment_id: str) -> int:
    """How many of an assignment's questions were answered: a resumed bridge counts on."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM a2a_questions WHERE assignment_id = $1 AND answered_at IS NOT NULL",
        uuid.UUID(assignment_id),
    )
    return count
