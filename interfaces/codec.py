"""Encrypted payloads: AES-256-GCM on everything Goalkeeper's clients hand to Temporal.

Task inputs, results, descriptions, signals and queries reach Temporal's history only as
ciphertext. Each encrypted payload names the id of its key, so keys can rotate: the first
key of a keyring encrypts, every key decrypts. Payloads without the encrypted encoding
pass through, so histories written before encryption was turned on still read.

A payload's wire form matches Temporal's samples (12-byte nonce, then the AES-GCM
ciphertext of the serialized original payload, no associated data), so their codec
servers in other languages can read it too.
"""

import dataclasses
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from goalkeeper.errors import GoalkeeperError
from interfaces.keyring import key_entries, owner_only_text
from interfaces.keyring import new_key_entry as new_entry

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
"""The metadata entry naming the key a payload was encrypted with."""
KEY_BYTES = 32
NONCE_BYTES = 12
_SHOWN_KEY_ID = 80
"""A payload's key id is shown in errors up to this length: anyone can write a longer one."""


class CodecKeyError(GoalkeeperError, ValueError):
    """Keys that cannot be used: the message names where they came from and which entry,
    never a key's bytes. A ValueError, as every bad setting is."""


class UndecryptablePayload(GoalkeeperError):
    """An encrypted payload this keyring cannot open: the message names its key id and the
    ids that are loaded."""


@dataclass(frozen=True, repr=False)
class Keyring:
    """Keys by id, in order: the first encrypts, all decrypt. Shows only its ids."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise CodecKeyError("a keyring needs at least one key")

    @property
    def ids(self) -> list[str]:
        return [key_id for key_id, _ in self.keys]

    @property
    def current(self) -> tuple[str, bytes]:
        """The id and key that encrypt."""
        return self.keys[0]

    def key(self, key_id: str) -> bytes | None:
        return dict(self.keys).get(key_id)

    def __repr__(self) -> str:
        return f"Keyring({', '.join(self.ids)})"


def parse_keys(text: str, source: str) -> Keyring:
    """Keys from `KEY_ID:BASE64_32_BYTES` entries separated by commas or lines; blank
    entries and lines starting with '#' are skipped. `source` names the text in errors."""

    def size(n: int) -> str | None:
        return None if n == KEY_BYTES else f"AES-256 needs {KEY_BYTES}"

    make = "python starter.py codec-key new"
    return Keyring(tuple(key_entries(text, source, CodecKeyError, size, make)))


def read_keys_file(path: Path) -> Keyring:
    """Keys from a file only its owner may read or write, as ssh requires of private keys."""
    return parse_keys(owner_only_text(path, "codec keys", CodecKeyError), str(path))


def new_key_entry(key_id: str) -> str:
    """A fresh random key as a `KEY_ID:BASE64` entry."""
    return new_entry(key_id, KEY_BYTES, CodecKeyError)


def encrypt(payload: Payload, key_id: str, key: bytes) -> Payload:
    """The payload, serialized and sealed under `key`, in a payload that names `key_id`."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return Payload(
        metadata={"encoding": ENCODING, KEY_ID: key_id.encode()},
        data=nonce + AESGCM(key).encrypt(nonce, payload.SerializeToString(), None),
    )


def decrypt(payload: Payload, keyring: Keyring) -> Payload:
    """The original of an encrypted payload; any other payload as it is."""
    if payload.metadata.get("encoding") != ENCODING:
        return payload
    key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
    key = keyring.key(key_id)
    key_id = key_id[:_SHOWN_KEY_ID]  # from here on only shown
    if key is None:
        raise UndecryptablePayload(
            f"a payload is encrypted with key {key_id!r}, which is not loaded "
            f"(loaded: {', '.join(keyring.ids)}); add that key to GOALKEEPER_CODEC_KEYS "
            "after the current one"
        )
    try:
        plain = AESGCM(key).decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], None)
    except (InvalidTag, ValueError):  # ValueError: data too short to hold a nonce
        raise UndecryptablePayload(
            f"a payload encrypted with key {key_id!r} does not open with the key of that id: "
            "the key differs from the one that encrypted it, or the payload was altered"
        ) from None
    original = Payload()
    try:
        original.ParseFromString(plain)
    except DecodeError:
        raise UndecryptablePayload(
            f"a payload encrypted with key {key_id!r} opens, but holds no payload"
        ) from None
    return original


class EncryptionCodec(PayloadCodec):
    """The codec every client and the codec server use, over a keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def encode(self, payloads: Iterable[Payload]) -> list[Payload]:
        key_id, key = self.keyring.current
        return [encrypt(p, key_id, key) for p in payloads]

    async def decode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [decrypt(p, self.keyring) for p in payloads]


def data_converter(keyring: Keyring | None) -> DataConverter:
    """The pydantic converter every client shares; with a keyring, it also encrypts
    payloads, and failures' messages and stack traces, which otherwise stay in clear."""
    if keyring is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
