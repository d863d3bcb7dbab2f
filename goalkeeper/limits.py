"""How much text Goalkeeper takes from outside, and how much of it a task shows.

Every free-text field that arrives from a person or an agent has a limit here, enforced
where it enters (the pydantic models that parse it refuse more, naming the field and
the limit). What a task keeps and shows (its `status` query) is bounded too, so no
number of attempts, errors or comments takes a query near Temporal's message limit.
"""

import re
from datetime import datetime, timedelta

MAX_TITLE_CHARS = 500
"""Goal and task titles, skills, and other one-line texts."""
MAX_TASK_DESCRIPTION_CHARS = 16 * 1024
MAX_GOAL_DESCRIPTION_CHARS = 64 * 1024
MAX_GUIDANCE_CHARS = 16 * 1024
"""Advice to agents, a goal's success criteria."""
MAX_ERROR_CHARS = 4000
"""Why an agent's work failed (a report's `error`): agent.py clips its own to this."""
MAX_COMMENT_CHARS = 2000
"""An approver's comment on a decision, a budget raise or a stop."""
MAX_REASON_CHARS = 2000
"""Why a planner or a triage agent chose what it did."""
MAX_QUESTION_CHARS = 16 * 1024
MAX_ANSWER_CHARS = 64 * 1024

MAX_HISTORY_LINES = 50
"""Lines a task's history keeps (the newest; a first line counts those left out)."""
MAX_HISTORY_LINE_CHARS = 2000
MAX_VIEW_ERROR_CHARS = 4000
"""Of why a task failed, as its view shows it; its attempts' errors are in the events."""
MAX_VIEW_BYTES = 1024 * 1024
"""What a task's `status` query may reach: a result (128 KiB at most inline), 50 history
lines and an error stay well under it, and well under gRPC's 4 MiB."""

MAX_ID_CHARS = 128
"""Ids of goals, tasks, agents and people (`models.Id`)."""
MAX_SHORT_REASON_CHARS = 500
"""Why a task was aborted, taken from its agent or failed, as the goal and its children
pass it on (a summary's `error`, an abort's reason)."""
MAX_EVENT_MESSAGE_CHARS = 4000
"""Of an event's message (a rejected start's error, why a result was sent back)."""
MAX_SHOWN_QUESTION_CHARS = 200
"""Of a request's question, in the Temporal UI's one-line details."""
MAX_REJECTED_INPUT_CHARS = 4000
"""Of an input refused before it could be read (a request's raw start), as it is kept."""
MAX_SUBJECT_TEXT_CHARS = 200
"""Of a free text that names what a suggestion is about (its subject, hence its id)."""
MAX_SIGNATURE_CHARS = 200
"""A signature as sent (an Ed25519 signature is 88 characters of base64)."""
MAX_TIME_CHARS = 40
"""A time as sent (ISO 8601 with its offset)."""
MAX_QUOTED_CHARS = 80
"""Of a malformed value quoted back in the error that refuses it."""

MAX_TOOL_CALLS = 100
"""Tool calls one report may record (an attempt with more keeps its last ones)."""
MAX_TOOL_NAME_CHARS = 200
MAX_TOOL_ERROR_CHARS = 500
"""Of why one tool call failed, as a report records it."""
MAX_SHOWN_TOOL_CALLS = 20
"""Of the latest attempt's tool calls, those a task's view shows (the last ones); the read
model keeps them all."""
MAX_NOTE_CHARS = 280
"""Of a note an agent posts while it works ("searching 3 sources"): a line, not a log."""
MAX_NOTES_PER_ASSIGNMENT = 50
"""Notes an agent may post on one assignment (one attempt); more are refused, said once.
store/schema_notes.sql holds both limits for the database (goalkeeper_note_limits)."""

MAX_CLOCK_SKEW = timedelta(seconds=60)
"""How far ahead of the clock it is checked against a heartbeat's time may be."""

_LEFT_OUT = re.compile(r"^\((\d+) earlier lines left out\)$")


def clip(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: its start and its end, with what was cut
    said in the middle, so both what happened first and last stay readable."""
    if len(text) <= limit:
        return text
    marker = f" […{len(text) - limit} characters left out…] "
    head = max(0, (limit - len(marker)) // 2)
    tail = max(0, limit - len(marker) - head)
    return text[:head] + marker + (text[-tail:] if tail else "")


def bounded_history(lines: list[str]) -> list[str]:
    """A task's history kept to `MAX_HISTORY_LINES` lines of `MAX_HISTORY_LINE_CHARS`:
    the newest lines, after one that counts the lines left out."""
    lines = [clip(line, MAX_HISTORY_LINE_CHARS) for line in lines]
    if len(lines) <= MAX_HISTORY_LINES:
        return lines
    before = 0
    if (match := _LEFT_OUT.match(lines[0])) is not None:
        before, lines = int(match.group(1)), lines[1:]
    kept = lines[-(MAX_HISTORY_LINES - 1) :]
    left_out = before + len(lines) - len(kept)
    return [f"({left_out} earlier lines left out)", *kept]


def heartbeat_time(at: str) -> datetime | str:
    """A heartbeat's `at` as a time, or why it is none: ISO 8601 with its UTC offset."""
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        return (
            "expected an ISO 8601 time with its UTC offset (e.g. 2026-01-31T12:00:00+00:00), "
            f"got {at[:MAX_TIME_CHARS]!r}"
        )
    return parsed


def heartbeat_time_problem(at: str | None, now: datetime, clock: str) -> str | None:
    """Why a heartbeat's time cannot count against `now` (read from `clock`): unparseable,
    or ahead of it by more than `MAX_CLOCK_SKEW`, which would keep a silent task alive."""
    if at is None:
        return None
    parsed = heartbeat_time(at)
    if isinstance(parsed, str):
        return f"heartbeat rejected: at: {parsed}"
    if parsed > now + MAX_CLOCK_SKEW:
        return (
            f"heartbeat rejected: at: expected a time at most "
            f"{int(MAX_CLOCK_SKEW.total_seconds())} s ahead of {clock} ({now.isoformat()}), "
            f"got {at!r}; check the agent's clock"
        )
    return None
