"""What the work cost, and how much of it was wasted, grouped the way a person asks.

The figures come from attempts (assignments): each one's tokens and cost as its agent
reported them. An attempt is wasted when its work did not become the task's result: it
failed, lapsed (timed out), was cancelled, was superseded by a later attempt (sent back
for rework, or reassigned), or belongs to a task that failed for good.
"""

from datetime import date
from enum import StrEnum

from pydantic import BaseModel

from goalkeeper.errors import GoalkeeperError


class CostGrouping(StrEnum):
    """What one line of a cost report adds up."""

    GOAL = "goal"
    TASK = "task"
    ATTEMPT = "attempt"
    AGENT = "agent"
    SKILL = "skill"
    RUNBOOK = "runbook"
    WORKSPACE = "workspace"
    DAY = "day"


class InvalidCostQuery(GoalkeeperError):
    """A cost report that cannot be made: the message names the value and what was expected."""

    def __init__(self, value: str, message: str) -> None:
        super().__init__(message)
        self.value = value


class CostQuery(BaseModel):
    """Which attempts to count and how to group them."""

    goal_id: str | None = None
    """This goal and its sub-goals (`goal_id/task/...`)."""
    workspace: str | None = None
    by: CostGrouping = CostGrouping.GOAL
    since: date | None = None
    """Attempts made on or after this day (UTC)."""
    limit: int = 50
    """Lines at most, costliest first (by day: the latest days)."""


class CostLine(BaseModel):
    """One group's attempts: what they used, and what of it was wasted."""

    key: str | None
    """The goal, task (`goal/task`), agent, skill, runbook or day; None: no runbook, or the
    total."""
    attempts: int
    wasted_attempts: int
    tokens_used: int
    cost_usd: float
    wasted_tokens: int
    wasted_usd: float
    input_tokens: int = 0
    output_tokens: int = 0
    """Of `tokens_used`, those the reports said the model read and wrote (where they said)."""
    cost_unknown_attempts: int = 0
    """Attempts whose cost no price was known for: `cost_usd` does not include them, so
    with any of these it is a lower bound, not the whole spend."""


class CostReport(BaseModel):
    """The lines of a cost report, the totals over every matching attempt, and what was cut."""

    by: CostGrouping
    lines: list[CostLine]
    total: CostLine
    more_lines: int = 0
    """Groups beyond `limit`, left out of `lines` but counted in `total`."""


def cost_query(
    *,
    goal_id: str | None = None,
    workspace: str | None = None,
    by: str = "goal",
    since: str | None = None,
    limit: int = 50,
) -> CostQuery:
    """A cost query from what a person typed; a bad value names itself and what was expected."""
    try:
        grouping = CostGrouping(by)
    except ValueError:
        choices = ", ".join(g.value for g in CostGrouping)
        raise InvalidCostQuery(
            by, f"cannot group costs by {by!r}: expected one of {choices}"
        ) from None
    day = None
    if since is not None:
        try:
            day = date.fromisoformat(since)
        except ValueError:
            raise InvalidCostQuery(
                since, f"expected --since as a day, YYYY-MM-DD (e.g. 2025-01-31), got {since!r}"
            ) from None
        if len(since) != 10:  # fromisoformat also takes 20250131 and 2025-W05-1
            raise InvalidCostQuery(
                since, f"expected --since as a day, YYYY-MM-DD (e.g. 2025-01-31), got {since!r}"
            )
    if limit < 1:
        raise InvalidCostQuery(str(limit), f"expected --limit of 1 or more, got {limit}")
    return CostQuery(goal_id=goal_id, workspace=workspace, by=grouping, since=day, limit=limit)


def share(part: float, whole: float) -> str:
    """`part` as a percentage of `whole`, for people: '12%' (or '-' of nothing)."""
    return f"{100 * part / whole:.0f}%" if whole else "-"


def spend_notes(line: CostLine) -> list[str]:
    """What people must know beside a cost figure: the tokens read and written where the
    reports said, and the attempts whose cost is unknown (left out, never counted as 0)."""
    notes = []
    if line.input_tokens or line.output_tokens:
        notes.append(
            f"tokens read: {line.input_tokens}, written: {line.output_tokens} "
            "(of the attempts that said)"
        )
    if line.cost_unknown_attempts:
        notes.append(
            f"cost unknown for {line.cost_unknown_attempts} "
            f"attempt{'' if line.cost_unknown_attempts == 1 else 's'} (no price known): "
            f"${line.cost_usd:.4f} leaves them out"
        )
    return notes
