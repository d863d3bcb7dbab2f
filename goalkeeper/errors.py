"""Exceptions that carry the ids of what they are about.

In workflows and activities they become `ApplicationError`s whose `type` is the
class name, so callers can tell them apart without parsing messages.
"""


class GoalkeeperError(Exception):
    """Base of Goalkeeper's errors."""


class InvalidGoalSpec(GoalkeeperError):
    """A goal spec that cannot run: the message names the bad value and what was expected."""

    def __init__(self, goal_id: str, message: str) -> None:
        super().__init__(message)
        self.goal_id = goal_id


class InvalidRunbook(GoalkeeperError):
    """A runbook that cannot be used: the message names its source and the bad value."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source
