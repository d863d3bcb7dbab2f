"""References to results kept outside workflow history, and the one shape a report may use.

An agent whose result is too large for history stores it for its own assignment and
reports `{"$ref": "results/<id>", "bytes": N, "sha256": "<digest of the content>"}`.
Signatures over the report name that reference, and with it the content's digest. Only
Goalkeeper refers to anything else: a task that is a goal has its sub-goal's deliverable,
`{"$ref": "deliverables/<goal>"}`, as result. Pure: the workflows ask it.
"""

import re
import uuid
from dataclasses import dataclass
from typing import Any

from goalkeeper.signing import digest

REF = "$ref"
RESULTS = "results/"
DELIVERABLES = "deliverables/"
KEYS = ("$ref", "bytes", "sha256")
"""The keys of a reported reference, and no others."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
SHAPE = '{"$ref": "results/<id>", "bytes": N, "sha256": "<hex>"}'


@dataclass(frozen=True)
class Reference:
    """A reported reference to a result stored for the report's assignment."""

    ref: str
    result_id: str
    bytes: int
    sha256: str


def holds_reference(value: Any) -> bool:
    """Whether `$ref` is a key anywhere in `value`; walked without recursion, so any depth."""
    return reference_path(value) is not None


def reference_path(value: Any) -> str | None:
    """Where the first `$ref` key in `value` is (`$` for the whole value), or None."""
    pending: list[tuple[str, Any]] = [("$", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, dict):
            if REF in item:
                return path
            pending.extend((f"{path}.{key}", child) for key, child in item.items())
        elif isinstance(item, list):
            pending.extend((f"{path}[{n}]", child) for n, child in enumerate(item))
    return None


def reported_reference(result: Any) -> Reference | str | None:
    """The reference a report's result is, None if it holds none, or why it may not count.

    Anything but a whole result of the reported shape, naming a result by its id, is
    refused: a reference nested in a result, to a deliverable, or of another shape.
    """
    path = reference_path(result)
    if path is None:
        return None
    if path != "$":
        return (
            f"a result may refer to stored content only as a whole, expected {SHAPE}; "
            f"got a $ref at {path}"
        )
    ref = result[REF]
    if not isinstance(ref, str):
        return f"expected $ref to be a string like 'results/<id>', got {ref!r:.100}"
    if not ref.startswith(RESULTS):
        return (
            f"expected a reference to a result stored for this assignment ('results/<id>'), "
            f"got {ref!r:.200}: an agent may refer to nothing else"
        )
    result_id = ref.removeprefix(RESULTS)
    if not _is_uuid(result_id):
        return f"expected 'results/<uuid>', got {ref!r:.200}"
    if sorted(result) != sorted(KEYS):
        return f"expected a reference as {SHAPE}, got the keys {sorted(result)} in {ref!r}"
    size, sha256 = result["bytes"], result["sha256"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"expected bytes of {ref!r} to be a count of bytes, got {size!r:.50}"
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        return f"expected sha256 of {ref!r} to be 64 lowercase hex digits, got {sha256!r:.100}"
    return Reference(ref=ref, result_id=result_id, bytes=size, sha256=sha256)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def stored_reference(result: Any) -> Reference | None:
    """The reference a result that counted is, when it is a stored result's; else None."""
    reference = reported_reference(result)
    return reference if isinstance(reference, Reference) else None


def content_digest(result: Any) -> str | None:
    """The SHA-256 of a result's content: a stored one's as its reference names it (checked
    when reported; stored results never change), an inline one's computed. None for a
    reference that names no digest (a sub-goal's deliverable)."""
    reference = stored_reference(result)
    if reference is not None:
        return reference.sha256
    return None if holds_reference(result) else digest(result)
