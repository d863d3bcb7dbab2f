"""What a stored A2A task keeps: bounded history and artifacts, whatever a goal says."""

from a2a.helpers import new_text_message, new_text_part
from a2a.types.a2a_pb2 import Artifact, Role, Task, TaskState, TaskStatus

from interfaces.a2a.tasks import MAX_ARTIFACT_CHARS, MAX_HISTORY, as_json, as_task, bounded


def test_a_stored_task_keeps_its_asking_message_and_the_latest_ones() -> None:
    asked = new_text_message("the question", role=Role.ROLE_USER)
    said = [new_text_message(f"step {i}") for i in range(MAX_HISTORY * 3)]
    task = Task(id="t", context_id="c", history=[asked, *said])
    kept = bounded(task)
    assert len(kept.history) == MAX_HISTORY
    assert kept.history[0].parts[0].text == "the question"
    assert [m.parts[0].text for m in kept.history[1:]] == [
        m.parts[0].text for m in said[-(MAX_HISTORY - 1) :]
    ]
    assert len(task.history) == MAX_HISTORY * 3 + 1  # the task given is left as it was


def test_a_long_artifact_is_clipped_saying_where_the_whole_is() -> None:
    body = "x" * (MAX_ARTIFACT_CHARS + 10)
    task = Task(
        id="t",
        status=TaskStatus(state=TaskState.TASK_STATE_COMPLETED),
        artifacts=[Artifact(artifact_id="a", name="deliverable", parts=[new_text_part(body)])],
    )
    text = bounded(task).artifacts[0].parts[0].text
    assert text.startswith("x" * MAX_ARTIFACT_CHARS) and len(text) < len(body) + 200
    assert "GET /api/v1/goals/GOAL/deliverable" in text
    assert as_task(as_json(bounded(task))) == bounded(task)
