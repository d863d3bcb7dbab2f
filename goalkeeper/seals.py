"""Seals: Goalkeeper's own messages between its workflows, proven to come from a worker.

A task tells its goal how it goes, a partition its counts, a goal aborts its tasks: those
messages travel as ordinary Temporal signals, which anyone with a Temporal client may
send. Each carries an HMAC over its kind, its recipient and its content, made with a
secret only workers hold, so a message from outside cannot pose as one of them, and a
sealed message copied to another workflow or altered fails. Keys have ids, so they
rotate: the first seals, every one loaded verifies. Pure functions: workflows verify
deterministically, and every refusal is tested without Temporal.
"""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from goalkeeper.errors import GoalkeeperError

SEAL = "seal"
"""The field of a sealed message that holds its seal: `KEY_ID:BASE64_HMAC`."""

MIN_KEY_BYTES = 32


class SealKeyError(GoalkeeperError, ValueError):
    """Seal keys that cannot be used; the message names which, never a key's bytes."""


@dataclass(frozen=True, repr=False)
class SealKeys:
    """The workers' secret keys by id, in order: the first seals, all verify."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise SealKeyError("seal keys: expected at least one key, got none")
        for key_id, key in self.keys:
            if len(key) < MIN_KEY_BYTES:
                raise SealKeyError(
                    f"seal key {key_id!r}: expected at least {MIN_KEY_BYTES} bytes, got {len(key)}"
                )

    @property
    def ids(self) -> list[str]:
        return [key_id for key_id, _ in self.keys]

    def __repr__(self) -> str:
        return f"SealKeys({', '.join(self.ids)})"


def seal(keys: SealKeys, kind: str, to: str, content: Mapping[str, Any]) -> str:
    """The seal of message `kind` with `content` for the workflow `to`."""
    key_id, key = keys.keys[0]
    return f"{key_id}:{_mac(key, kind, to, content)}"


def sealed(keys: SealKeys, kind: str, to: str, content: Mapping[str, Any]) -> dict[str, Any]:
    """The message as sent: its content and its seal."""
    body = {k: v for k, v in content.items() if k != SEAL}
    return {**body, SEAL: seal(keys, kind, to, body)}


def opened(keys: SealKeys | None, kind: str, to: str, value: Any) -> dict[str, Any] | str:
    """The content of a sealed message, or why it is not one a worker sent to `to`."""
    if not isinstance(value, dict):
        return (
            f"{kind} rejected: expected a sealed JSON object from a Goalkeeper worker, "
            f"got {type(value).__name__} {value!r:.80}"
        )
    body = {k: v for k, v in value.items() if k != SEAL}
    given = value.get(SEAL)
    if not isinstance(given, str) or ":" not in given:
        return (
            f"{kind} rejected: it carries no seal; only Goalkeeper's workers send {kind}, "
            "and they seal it"
        )
    if keys is None:
        return f"{kind} rejected: this worker holds no seal keys to verify it with"
    key_id, _, mac = given.partition(":")
    key = dict(keys.keys).get(key_id)
    if key is None:
        return (
            f"{kind} rejected: sealed with key {key_id[:64]!r}, which is not one of the "
            f"workers' (loaded: {', '.join(keys.ids)})"
        )
    try:
        expected = base64.b64decode(_mac(key, kind, to, body))
        if hmac.compare_digest(base64.b64decode(mac, validate=True), expected):
            return body
    except (binascii.Error, ValueError):
        pass
    return (
        f"{kind} rejected: its seal does not match its content: forged, altered, or "
        f"sealed for another workflow than {to!r}"
    )


def _mac(key: bytes, kind: str, to: str, content: Mapping[str, Any]) -> str:
    message = json.dumps(
        {"kind": kind, "to": to, "content": content},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    ).encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
