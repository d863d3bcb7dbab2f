"""A goal's deliverable: by default, one document of its tasks' results in plan order."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MAX_DELIVERABLE_BYTES = 16 * 1024 * 1024
"""Past this, further tasks are listed by title only: the document stays readable."""


@dataclass(frozen=True)
class TaskOutcome:
    """One task as the deliverable shows it."""

    task_id: str
    title: str
    status: str
    agent_id: str | None
    result: Any
    error: str | None


def render_document(
    title: str, description: str, tasks: Iterable[TaskOutcome], completed: int, total: int
) -> str:
    """Markdown: the goal, then each task's result (or why it has none), in plan order."""
    parts = [document_header(title, description, completed, total)]
    size = len(parts[0])
    for n, task in enumerate(tasks, start=1):
        parts.append(document_section(n, task, full=size > MAX_DELIVERABLE_BYTES))
        size += len(parts[-1])
    return "\n".join(parts)


def document_header(title: str, description: str, completed: int, total: int) -> str:
    lines = [f"# {title}\n"] + ([f"{description}\n"] if description else [])
    return "\n".join([*lines, f"_{completed} of {total} tasks completed._\n"])


def document_section(n: int, task: TaskOutcome, full: bool = False) -> str:
    """One task's part of the document; once the document is `full`, its title alone."""
    heading = f"## {n}. {task.title}\n\n`{task.task_id}`" + (
        f", by agent `{task.agent_id}`" if task.agent_id else ""
    )
    if full:
        return f"{heading}: {task.status} (result left out: the document is full)\n"
    if task.status == "completed":
        return f"{heading}\n\n{render_result(task.result)}\n"
    return f"{heading}: **{task.status}**" + (f": {task.error}\n" if task.error else "\n")


def render_result(result: Any) -> str:
    """Text as written; anything else as a JSON block."""
    if isinstance(result, str):
        return result.strip() or "_(empty result)_"
    if result is None:
        return "_(no result)_"
    return "```json\n" + json.dumps(result, indent=2, ensure_ascii=False) + "\n```"
