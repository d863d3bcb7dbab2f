"""The payload converter of Goalkeeper's workers: pydantic, and tolerant of input it
cannot decode, so a workflow sees `Undecodable` and rejects it by name. Clients keep the
strict one: a result they cannot decode (no key, say) is an error to them.

Without it, a workflow started with an unknown encoding or malformed JSON fails its
workflow task on every attempt, for ever, and says so only in the worker's log. What the
worker's codec could not decrypt (`interfaces.inbound`) arrives here marked, and is
`Undecodable` the same way.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter

from interfaces.codec import EncryptionCodec, UndecryptablePayload
from interfaces.inbound import MARKED, InboundCodec, read_mark
from workflows.messages import Undecodable

_UNTYPED = (None, Any, object)
"""Type hints under which a value may stand in for what could not be decoded."""


class TolerantPayloadConverter(PydanticPayloadConverter):
    """Decodes as pydantic does; an untyped value it cannot decode becomes `Undecodable`.
    Typed values (an activity's model, say) still fail loudly: only what comes from
    outside arrives untyped (workflow input, signal and update payloads)."""

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        if not any(p.metadata.get("encoding") == MARKED for p in payloads):
            try:
                return super().from_payloads(payloads, type_hints)
            except (KeyError, RuntimeError, ValueError):
                pass
        hints = list(type_hints or [])
        return [
            self._one(payload, hints[i] if i < len(hints) else None)
            for i, payload in enumerate(payloads)
        ]

    def _one(self, payload: Payload, hint: Any) -> Any:
        marked = read_mark(payload)
        if marked is not None:
            encoding, reason = marked
            if hint not in _UNTYPED:  # the worker's own data: fail loudly, as the codec did
                raise UndecryptablePayload(reason)
            return Undecodable(encoding=encoding, error=reason)
        try:
            return super().from_payloads([payload], [hint] if hint is not None else None)[0]
        except (KeyError, RuntimeError, ValueError) as exc:
            if hint not in _UNTYPED:
                raise
            encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
            return Undecodable(encoding=encoding or "none", error=str(exc)[:300])


def tolerant(client: Client) -> Client:
    """The same client, its payload converter tolerant: what a worker's activities use."""
    return _with(
        client,
        dataclasses.replace(
            client.data_converter, payload_converter_class=TolerantPayloadConverter
        ),
    )


def inbound(client: Client, accept_plaintext: bool = False) -> Client:
    """The same client, tolerant, and with keys its codec the worker's (`InboundCodec`),
    which refuses plaintext unless `accept_plaintext`: what a worker polls with."""
    converter = tolerant(client).data_converter
    codec = converter.payload_codec
    if isinstance(codec, EncryptionCodec):
        converter = dataclasses.replace(
            converter, payload_codec=InboundCodec(codec.keyring, accept_plaintext)
        )
    return _with(client, converter)


def _with(client: Client, converter: DataConverter) -> Client:
    config = client.config()
    config["data_converter"] = converter
    return Client(**config)
