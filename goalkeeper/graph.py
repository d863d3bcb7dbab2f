"""A goal's tasks laid out as a graph of their dependencies, for the goal page to draw:
each task in the column of its depth (how many tasks it waits for, one after the other),
an edge from each dependency to the task that waits for it."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_GRAPH_TASKS = 200
"""Tasks drawn at most: a larger goal's graph would be unreadable, and the page says so."""

COLUMN, ROW, NODE_WIDTH, NODE_HEIGHT = 190, 44, 160, 30
"""Pixels: a column's and a row's pitch, and a task's box."""


@dataclass(frozen=True)
class Node:
    task_id: str
    title: str
    status: str
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def depths(after: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each task's depth: 0 without dependencies, else one more than its deepest one.
    Dependencies outside `after` (not drawn) do not count; a cycle (which a goal spec never
    has) is cut where it closes."""
    found: dict[str, int] = {}

    def depth(task: str, path: set[str]) -> int:
        if task in found:
            return found[task]
        if task in path:
            return -1
        path.add(task)
        deepest = max((depth(d, path) + 1 for d in after[task] if d in after), default=0)
        path.discard(task)
        found[task] = max(deepest, 0)
        return found[task]

    for task in after:
        depth(task, set())
    return found


def layout(tasks: Sequence[Mapping[str, Any]]) -> Graph | None:
    """The graph of `tasks` (each with `task_id`, `title`, `status`, `depends_on`), in
    plan order within each column; None past MAX_GRAPH_TASKS or with no dependency."""
    if len(tasks) > MAX_GRAPH_TASKS:
        return None
    after = {str(t["task_id"]): [str(d) for d in t.get("depends_on") or ()] for t in tasks}
    if not any(after.values()):
        return None
    depth = depths(after)
    rows: dict[int, int] = {}
    nodes: dict[str, Node] = {}
    for t in tasks:
        task_id = str(t["task_id"])
        column = depth[task_id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        nodes[task_id] = Node(
            task_id, str(t.get("title") or ""), str(t["status"]), column * COLUMN, row * ROW
        )
    edges = [
        Edge(
            nodes[d].x + NODE_WIDTH,
            nodes[d].y + NODE_HEIGHT // 2,
            node.x,
            node.y + NODE_HEIGHT // 2,
        )
        for task_id, node in nodes.items()
        for d in after[task_id]
        if d in nodes
    ]
    width = (max(depth.values()) * COLUMN) + NODE_WIDTH
    height = (max(rows.values()) - 1) * ROW + NODE_HEIGHT
    return Graph(list(nodes.values()), edges, width, height)
