"""Feedback: what a person says about a goal's or a task's work, checked before it is kept."""

from pydantic import BaseModel

from goalkeeper.errors import GoalkeeperError
from goalkeeper.records import EventKind

FEEDBACK_GIVEN = EventKind.FEEDBACK_GIVEN.value
"""The audit trail's kind for a person's feedback."""

MAX_COMMENT_CHARS = 2000


class InvalidFeedback(GoalkeeperError):
    """Feedback that cannot be kept: the message names the value and what was expected."""

    def __init__(self, value: object, message: str) -> None:
        super().__init__(message)
        self.value = value


class Feedback(BaseModel):
    """A person's rating (1 to 5) and comment on a goal, or on one of its tasks."""

    goal_id: str
    task_id: str | None = None
    person: str
    rating: int
    comment: str = ""


def feedback(
    goal_id: str, task_id: str | None, person: str, rating: int | None, comment: str = ""
) -> Feedback:
    """Check a person's feedback; a bad value names itself and what was expected."""
    if rating is None:
        raise InvalidFeedback(None, "a rating is required: expected --rating from 1 to 5")
    if not 1 <= rating <= 5:
        raise InvalidFeedback(rating, f"expected a rating from 1 to 5, got {rating}")
    if not person.strip():
        raise InvalidFeedback(person, f"expected the name of who gives feedback, got {person!r}")
    if len(comment) > MAX_COMMENT_CHARS:
        raise InvalidFeedback(
            len(comment),
            f"expected a comment of at most {MAX_COMMENT_CHARS} characters, got {len(comment)}",
        )
    return Feedback(
        goal_id=goal_id, task_id=task_id, person=person.strip(), rating=rating, comment=comment
    )
