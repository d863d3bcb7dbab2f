"""The worker's codec: a payload it cannot decode is marked, never raised on.

Temporal decodes a workflow's whole activation before any workflow code runs, so a
codec that raises fails the workflow task, and every retry of it: one signal encrypted
with an unknown key would wedge its workflow for good. The worker's codec instead hands
on a payload of a private encoding that says why; the worker's payload converter
(`interfaces.payloads`) turns it into `Undecodable`, which workflows reject by name.
Clients keep the strict `EncryptionCodec`: an error is theirs to see.

With keys loaded, plaintext is refused as well. Workers encrypt all they send, so a
plaintext payload comes from outside, or from a history written before encryption was
turned on: `GOALKEEPER_CODEC_ACCEPT_PLAINTEXT=on` reads those while migrating.
"""

import hmac
import logging
import secrets
from collections.abc import Iterable

from temporalio.api.common.v1 import Payload

from interfaces.codec import ENCODING, EncryptionCodec, Keyring, UndecryptablePayload, decrypt

log = logging.getLogger("goalkeeper.codec")

MARKED = b"binary/goalkeeper-undecodable"
"""The private encoding of a payload the worker's codec could not, or would not, decode."""
_SEAL = "goalkeeper-seal"
_ORIGINAL = "original-encoding"
_PROCESS_SEAL = secrets.token_hex(16).encode()
"""Known to this process only: a marked payload without it was sent from outside."""
_REASON_LIMIT = 600
_LOGGED_LIMIT = 100

PLAINTEXT_REFUSED = (
    "a payload that is not encrypted is refused while codec keys are loaded; set "
    "GOALKEEPER_CODEC_ACCEPT_PLAINTEXT=on on the workers to accept plaintext while "
    "migrating from unencrypted histories"
)
FORGED_MARK = (
    f"a payload in Goalkeeper's private encoding {MARKED.decode()!r} came from outside; "
    "only a worker's codec makes those"
)


def mark(encoding: str, reason: str) -> Payload:
    """A payload that stands for one of `encoding` that could not be decoded, and why."""
    return Payload(
        metadata={
            "encoding": MARKED,
            _SEAL: _PROCESS_SEAL,
            _ORIGINAL: encoding[:80].encode(errors="replace"),
        },
        data=reason[:_REASON_LIMIT].encode(errors="replace"),
    )


def read_mark(payload: Payload) -> tuple[str, str] | None:
    """(original encoding, reason) of a marked payload; None for any other.

    A marked payload this process did not make is undecodable too, for a reason of ours:
    whoever sent it chooses neither its reason nor that it be taken for anything else.
    """
    if payload.metadata.get("encoding") != MARKED:
        return None
    if not hmac.compare_digest(payload.metadata.get(_SEAL, b""), _PROCESS_SEAL):
        return MARKED.decode(), FORGED_MARK
    return payload.metadata[_ORIGINAL].decode(errors="replace"), payload.data.decode()


def encoding_of(payload: Payload) -> str:
    return payload.metadata.get("encoding", b"").decode(errors="replace")[:80] or "none"


class InboundCodec(EncryptionCodec):
    """Encrypts as every client does; decodes without ever raising, marking instead what
    cannot be decrypted and, unless `accept_plaintext`, what was not encrypted."""

    def __init__(self, keyring: Keyring, accept_plaintext: bool = False) -> None:
        super().__init__(keyring)
        self.accept_plaintext = accept_plaintext
        self._logged: set[str] = set()

    async def decode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self._open(p) for p in payloads]

    def _open(self, payload: Payload) -> Payload:
        encoding = encoding_of(payload)
        if payload.metadata.get("encoding") != ENCODING:
            if self.accept_plaintext:
                return payload  # a forged mark still fails `read_mark`'s seal
            return self._marked(encoding, PLAINTEXT_REFUSED)
        try:
            return decrypt(payload, self.keyring)
        except UndecryptablePayload as exc:
            return self._marked(encoding, str(exc))

    def _marked(self, encoding: str, reason: str) -> Payload:
        # Once per reason: a key a worker lacks shows in its log, a flood of forgeries does not.
        if reason not in self._logged and len(self._logged) < _LOGGED_LIMIT:
            self._logged.add(reason)
            log.warning("a payload reaches a workflow as undecodable: %s", reason)
        return mark(encoding, reason)
