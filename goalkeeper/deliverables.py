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


class Document:
    """A goal's deliverable as it is written, a task at a time, in plan order: once it
    passes `MAX_DELIVERABLE_BYTES`, later tasks are listed without their results."""

    def __init__(self, title: str, description: str, completed: int, total: int) -> None:
        self.parts = [document_header(title, description, completed, total)]
        self.size = len(self.parts[0])

    @property
    def full(self) -> bool:
        """Whether results are left out from here on (so need not be read)."""
        return self.size > MAX_DELIVERABLE_BYTES

    def add(self, task: TaskOutcome) -> None:
        self.parts.append(document_section(len(self.parts), task, self.full))
        self.size += len(self.parts[-1])

    def text(self) -> str:
        return "\n".join(self.parts)


def render_document(
    title: str, description: str, tasks: Iterable[TaskOutcome], completed: int, total: int
) -> str:
    """Markdown: the goal, then each task's result (or why it has none), in plan order."""
    document = Document(title, description, completed, total)
    for task in tasks:
        document.add(task)
    return document.text()


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
