"""The goal page's dependency graph: columns by depth, edges from each dependency."""

from hypothesis import given
from hypothesis import strategies as st

from goalkeeper.graph import COLUMN, MAX_GRAPH_TASKS, NODE_WIDTH, ROW, depths, layout


def task(task_id: str, *after: str, status: str = "pending") -> dict[str, object]:
    return {"task_id": task_id, "title": task_id.title(), "status": status, "depends_on": after}


def test_tasks_sit_in_the_column_of_their_depth_with_an_edge_from_each_dependency() -> None:
    graph = layout(
        [task("a", status="completed"), task("b"), task("c", "a", "b"), task("d", "c", "a")]
    )
    assert graph is not None
    at = {n.task_id: (n.x, n.y, n.status) for n in graph.nodes}
    assert at == {
        "a": (0, 0, "completed"),
        "b": (0, ROW, "pending"),
        "c": (COLUMN, 0, "pending"),
        "d": (2 * COLUMN, 0, "pending"),
    }
    assert len(graph.edges) == 4
    assert {(e.x1, e.x2) for e in graph.edges} == {
        (NODE_WIDTH, COLUMN),
        (COLUMN + NODE_WIDTH, 2 * COLUMN),
        (NODE_WIDTH, 2 * COLUMN),
    }
    assert graph.width == 2 * COLUMN + NODE_WIDTH


def test_no_graph_without_dependencies_or_past_the_limit() -> None:
    assert layout([task("a"), task("b")]) is None
    many = [task(f"t{n}", *([f"t{n - 1}"] if n else [])) for n in range(MAX_GRAPH_TASKS + 1)]
    assert layout(many) is None
    assert layout(many[:MAX_GRAPH_TASKS]) is not None


def test_dependencies_not_drawn_and_cycles_do_not_break_it() -> None:
    assert depths({"a": ["elsewhere"], "b": ["a"]}) == {"a": 0, "b": 1}
    assert set(depths({"a": ["b"], "b": ["a"]}).values()) <= {0, 1}


@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=30))
def test_a_task_is_always_deeper_than_each_of_its_dependencies(parents: list[int]) -> None:
    # Task n depends on an earlier task (a plan's order), so there is no cycle.
    after = {f"t{n}": [f"t{p % n}"] if n else [] for n, p in enumerate(parents)}
    found = depths(after)
    for task_id, deps in after.items():
        for d in deps:
            assert found[task_id] > found[d]
