"""The worker's seal keys, as its workflows use them to send and receive internal messages.

Set once when a worker is built. Workflows import it passed through the sandbox, and
by its full name (`import workflows.sealing as sealing`): `from workflows import
sealing` would load a fresh copy inside the sandbox, without the keys. Keys only ever
grow: a message sealed with a key the worker no longer holds would be judged otherwise
on replay.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow

from goalkeeper import seals
from goalkeeper.seals import SealKeys
from workflows.messages import Undecodable, parse_message

M = TypeVar("M", bound=BaseModel)

SEALED = "sealed-internal-messages"
"""The patch from which internal messages must be sealed; histories before it replay as
they ran, taking them unsealed."""

_keys: SealKeys | None = None


def use(keys: SealKeys) -> None:
    """Give this process's workflows the workers' seal keys; a later call may add keys,
    never take one away, since histories sealed with it must replay the same."""
    global _keys
    if _keys is not None:
        missing = set(_keys.ids) - set(keys.ids)
        if missing:
            raise seals.SealKeyError(
                f"seal keys: expected every key already in use ({', '.join(_keys.ids)}), "
                f"missing {', '.join(sorted(missing))}"
            )
    _keys = keys


def keys() -> SealKeys | None:
    return _keys


def sealed(kind: str, to: str, message: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """`message` sealed for the workflow `to`, as a workflow sends it."""
    if _keys is None:
        raise RuntimeError("no seal keys: build the worker with build_worker()")
    content = message.model_dump(mode="json") if isinstance(message, BaseModel) else message
    return seals.sealed(_keys, kind, to, content)


def opened(
    payload: tuple[Any, ...],
    model: type[M],
    kind: str,
    legacy: Callable[[Any], Any] = lambda value: value,
) -> M | str:
    """The internal message a workflow received, or why it is not one a worker sealed for it.

    Histories from before seals replay as they ran: there an unsealed message counts,
    in the shape `legacy` makes of what was sent then.
    """
    if len(payload) != 1:
        return f"{kind} rejected: expected one JSON object, got {len(payload)} values"
    value = payload[0]
    if isinstance(value, Undecodable):
        return f"{kind} rejected: {value}"
    if not (isinstance(value, dict) and seals.SEAL in value) and not workflow.patched(SEALED):
        return parse_message((legacy(value),), model, kind)
    body = seals.opened(_keys, kind, workflow.info().workflow_id, value)
    if isinstance(body, str):
        return body
    return parse_message((body,), model, kind)
