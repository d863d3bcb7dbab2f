"""Parsing of signal payloads that come from outside, so a malformed one is recorded, not lost.

Signal handlers take their payload untyped: if the SDK decoded it into the model
itself, a malformed payload would be dropped with only a log line. Parsing here
turns it into a rejection that names the problem and reaches the audit trail.
"""

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from goalkeeper.models import describe_validation_error

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Undecodable:
    """A payload Goalkeeper's converter could not decode (an unknown encoding, bad JSON):
    handed to the workflow as this value, which rejects it by name, instead of failing
    its every workflow task."""

    encoding: str
    error: str

    def __str__(self) -> str:
        return f"a payload that cannot be decoded (encoding {self.encoding!r}: {self.error})"


def parse_message(payload: tuple[Any, ...], model: type[M], what: str) -> M | str:
    """Return the message, or a one-line description of why it is not one."""
    if len(payload) != 1:
        return f"invalid {what}: expected one JSON object, got {len(payload)} values"
    value = payload[0]
    if isinstance(value, model):
        return value
    if isinstance(value, Undecodable):
        return f"invalid {what}: {value}"
    if not isinstance(value, dict):
        return f"invalid {what}: expected a JSON object, got {type(value).__name__} {value!r:.80}"
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        return describe_validation_error(exc, what)


def summarize_payload(payload: tuple[Any, ...], limit: int = 2000) -> Any:
    """What a rejected payload looked like, bounded so the audit trail stays small."""
    text = repr(payload[0] if len(payload) == 1 else list(payload))
    if len(text) <= limit and (len(payload) == 1 and isinstance(payload[0], dict)):
        return payload[0]
    return text[:limit]


def reject_if(problem: object) -> None:
    """Reject an update in its validator when judging it gave a reason (a string).

    The caller gets the reason, and the rejected update stays out of the history.
    """
    if isinstance(problem, str):
        raise ValueError(problem)
