"""Signatures: who really sent a report, a heartbeat or a decision, and over what.

Agents and approvers hold Ed25519 key pairs; Goalkeeper keeps their public keys. Each
message is signed over its canonical content, so a signature proves the sender and binds
it to the exact goal, task, assignment and result: copied to another message, it fails.
Pure functions, so the workflows verify deterministically and every refusal is tested
without Temporal.
"""

import base64
import binascii
import contextlib
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel

from goalkeeper.errors import GoalkeeperError
from goalkeeper.limits import heartbeat_time
from goalkeeper.models import AgentReport, ApprovalDecision, Heartbeat, Signers, TaskView


class InvalidKey(GoalkeeperError):
    """A key that is not a base64 Ed25519 key of 32 bytes."""


def new_keys() -> tuple[str, str]:
    """A fresh (private, public) key pair, each the base64 of its 32 raw bytes."""
    private = Ed25519PrivateKey.generate()
    return _b64(private.private_bytes_raw()), _b64(private.public_key().public_bytes_raw())


def public_key_of(private_key: str) -> str:
    """The public key of a private one."""
    return _b64(_private(private_key).public_key().public_bytes_raw())


def check_public_key(public_key: str) -> str:
    """The key if it is a base64 Ed25519 public key; else InvalidKey naming what it is."""
    _public(public_key)
    return public_key


def digest(value: Any) -> str:
    """The SHA-256 of a result as canonical JSON: what signatures name instead of it."""
    return hashlib.sha256(_canonical(value)).hexdigest()


def report_content(goal_id: str, task_id: str, report: AgentReport) -> bytes:
    """What an agent signs for a report: whose, about what, and the result's digest.

    The token split, an unknown cost and the tool calls are signed only where given, so a
    report without them signs the very content it did before they existed.
    """
    content: dict[str, Any] = {
        "kind": "report",
        "goal_id": goal_id,
        "task_id": task_id,
        "assignment_id": report.assignment_id,
        "agent_id": report.agent_id,
        "outcome": str(report.outcome),
        "result_digest": digest(report.result),
        "error": report.error,
        "tokens_used": report.tokens_used,
        "cost_usd": report.cost_usd,
    }
    if report.input_tokens is not None:
        content["input_tokens"] = report.input_tokens
    if report.output_tokens is not None:
        content["output_tokens"] = report.output_tokens
    if not report.cost_known:
        content["cost_known"] = False
    if report.tool_calls:
        content["tool_calls"] = [call.model_dump(mode="json") for call in report.tool_calls]
    return _canonical(content)


def heartbeat_content(
    goal_id: str, task_id: str, agent_id: str, assignment_id: str, at: str
) -> bytes:
    """What an agent signs for a heartbeat: whose, about what, and when it was sent."""
    return _canonical(
        {
            "kind": "heartbeat",
            "goal_id": goal_id,
            "task_id": task_id,
            "assignment_id": assignment_id,
            "agent_id": agent_id,
            "at": at,
        }
    )


def decision_content(view: TaskView, decision: ApprovalDecision) -> bytes:
    """What an approver (or a delegate for them) signs: the decision on this very result,
    of this assignment and attempt, so it counts once and never on a rerun."""
    return _canonical(
        {
            "kind": "decision",
            "goal_id": view.goal_id,
            "task_id": view.task_id,
            "assignment_id": view.assignment_id,
            "attempt": view.attempts,
            "approver": decision.approver,
            "signed_by": decision.signed_by or decision.approver,
            "decision": str(decision.decision),
            "comment": decision.comment,
            "result_digest": digest(view.result),
        }
    )


def control_content(kind: str, goal_id: str, request: BaseModel) -> bytes:
    """What a person (or an agent, adding tasks) signs to change a goal: `kind` (raise_budget,
    stop, add_tasks, retry, reassign, cancel) and every field of the request but its signature."""
    fields = request.model_dump(mode="json", exclude={"signature"})
    return _canonical({"kind": kind, "goal_id": goal_id, **fields})


def sign_control(private_key: str, kind: str, goal_id: str, request: BaseModel) -> str:
    """The signature of a change to a goal."""
    return sign(private_key, control_content(kind, goal_id, request))


def control_problem(
    signers: Signers,
    kind: str,
    goal_id: str,
    request: BaseModel,
    signer: str,
    signed_by: str | None,
    signature: str | None,
) -> str | None:
    """Why a change to a goal that requires signatures is not signed by `signer`'s key (an
    approver's or an agent's) or a delegate's on their behalf."""
    if not signers.required:
        return None
    what = f"{kind} of goal {goal_id!r} rejected"
    name = signed_by or signer
    keys = signers.delegate_keys if signed_by else {**signers.agent_keys, **signers.approver_keys}
    key = keys.get(name)
    if key is None:
        whose = f"delegate {name!r}" if signed_by else repr(name)
        return (
            f"{what}: the goal requires signatures and {whose} has no registered key "
            "(starter.py approver key new --as NAME; agents register theirs)"
        )
    if not signature:
        return f"{what}: the goal requires signatures and {name!r} sent none"
    if not verify(key, control_content(kind, goal_id, request), signature):
        return (
            f"{what}: the signature is not {name!r}'s current key's over this {kind} of this "
            "goal (signed for another request or goal, or by a replaced or another key)"
        )
    return None


def sign(private_key: str, content: bytes) -> str:
    """The base64 Ed25519 signature of `content`."""
    return _b64(_private(private_key).sign(content))


def sign_decision(private_key: str, view: TaskView, payload: dict[str, Any]) -> str:
    """The signature of a decision payload on the result `view` holds now."""
    return sign(private_key, decision_content(view, ApprovalDecision.model_validate(payload)))


def verify(public_key: str, content: bytes, signature: str | None) -> bool:
    """Whether `signature` is the holder of `public_key`'s over `content`."""
    if not signature:
        return False
    try:
        _public(public_key).verify(base64.b64decode(signature, validate=True), content)
    except (InvalidSignature, InvalidKey, binascii.Error, ValueError):
        return False
    return True


def report_problem(signers: Signers, goal_id: str, task_id: str, report: AgentReport) -> str | None:
    """Why a report's signature does not prove its agent sent it, when signatures count."""
    content = report_content(goal_id, task_id, report)
    return _agent_problem(signers, "report", report.agent_id, content, report.signature)


def heartbeat_problem(
    signers: Signers, goal_id: str, task_id: str, beat: Heartbeat, at: str | None = None
) -> str | None:
    """Why a heartbeat's signature does not count: unsigned, wrong key, or replayed."""
    if not signers.required:
        return None
    sent_at = beat.at or at
    if sent_at is None:
        return "heartbeat rejected: signatures are required and it names no time ('at')"
    content = heartbeat_content(goal_id, task_id, beat.agent_id, beat.assignment_id, sent_at)
    problem = _agent_problem(signers, "heartbeat", beat.agent_id, content, beat.signature)
    if problem is None and not _later(sent_at, signers.last_beat_at):
        return (
            f"heartbeat rejected: its time {sent_at} is not after the last one "
            f"({signers.last_beat_at}); a heartbeat counts once"
        )
    return problem


def _later(sent_at: str, last: str | None) -> bool:
    """Whether a heartbeat's time comes after the last one counted, compared as times."""
    if last is None:
        return True
    then, now = heartbeat_time(last), heartbeat_time(sent_at)
    if isinstance(then, str) or isinstance(now, str):  # never counted: not a replay of it
        return not isinstance(now, str)
    return now > then


def decision_problem(signers: Signers, view: TaskView, decision: ApprovalDecision) -> str | None:
    """Why a decision cannot count: the approver operates the agent, or (when signatures
    are required) it is unsigned, signed by another key, or over another result, assignment
    or attempt than the one awaiting the decision."""
    if signers.agent_operator is not None and decision.approver == signers.agent_operator:
        return (
            f"decision rejected: {decision.approver!r} operates the agent whose work this "
            "is, and may not approve it"
        )
    if not signers.required:
        return None
    signer = decision.signed_by or decision.approver
    keys = signers.delegate_keys if decision.signed_by else signers.approver_keys
    key = keys.get(signer)
    if key is None:
        whose = f"delegate {signer!r}" if decision.signed_by else f"approver {signer!r}"
        how = "starter.py approver key new --as NAME" if not decision.signed_by else "a delegate"
        return f"decision rejected: {whose} has no registered key ({how})"
    if not decision.signature:
        return f"decision rejected: signatures are required and {signer!r} sent none"
    if not verify(key, decision_content(view, decision), decision.signature):
        return (
            f"decision rejected: the signature is not {signer!r}'s current key's over this "
            f"decision on this result (digest {digest(view.result)[:12]}) of assignment "
            f"{view.assignment_id} (attempt {view.attempts}): a decision signed for an "
            "earlier result or attempt, another task, or by a replaced or another key does "
            "not count"
        )
    return None


def _agent_problem(
    signers: Signers, what: str, agent_id: str, content: bytes, signature: str | None
) -> str | None:
    if not signers.required:
        return None
    if signers.agent_key is None:
        return (
            f"{what} rejected: signatures are required and agent {agent_id!r} has no "
            "registered key (agent.py registers one)"
        )
    if not signature:
        return f"{what} rejected: signatures are required and it is unsigned"
    if not verify(signers.agent_key, content, signature):
        return (
            f"{what} rejected: its signature is not agent {agent_id!r}'s over this "
            f"{what} (a signature made for another assignment or by another key)"
        )
    return None


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _raw(key: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        # Never echoed: it may be a private key.
        raise InvalidKey(
            f"expected a base64 Ed25519 {what} key, got {len(key)} characters that are not base64"
        ) from None
    if len(raw) != 32:
        raise InvalidKey(f"expected a 32-byte Ed25519 {what} key, got {len(raw)} bytes")
    return raw


def _private(key: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw(key, "private"))


def _public(key: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw(key, "public"))


def _resolve_failure_type() -> None:
    # cryptography imports its InvalidSignature type the first time a check fails, and
    # an import from inside Temporal's workflow sandbox aborts the process: fail one
    # check here, at import, so workflows only ever use the type already resolved.
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    with contextlib.suppress(InvalidSignature):
        key.public_key().verify(bytes(64), b"")


_resolve_failure_type()
