"""Encryption never wedges: what an encrypting worker cannot or will not decode reaches the
workflow as `Undecodable`, is rejected and recorded, and the real agent's report still
counts. Sent over the wire as an outsider would: a client with another key, or none."""

import asyncio
import dataclasses
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadCodec
from temporalio.exceptions import ApplicationError

from goalkeeper.models import TaskView
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.api.codec import create_codec_app
from interfaces.client import connect
from interfaces.codec import ENCODING, KEY_ID, Keyring, UndecryptablePayload, encrypt
from interfaces.config import Settings
from interfaces.inbound import FORGED_MARK, MARKED, InboundCodec, mark, read_mark
from interfaces.payloads import TolerantPayloadConverter
from interfaces.stack import TemporalDevServer
from store.tokens import new_token
from tests import web
from tests.helpers import (
    PATIENCE,
    SimulatedAgents,
    events,
    eventually,
    goal_spec,
    new_goal_id,
    one_of,
    report,
    run_temporal,
    start_goal,
    wait_task,
)
from worker import build_worker
from workflows.messages import Undecodable

REFUSED = "GOALKEEPER_CODEC_ACCEPT_PLAINTEXT=on"


def keyring(*ids: str) -> Keyring:
    return Keyring(tuple((key_id, os.urandom(32)) for key_id in ids))


def plain(value: object) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


# The worker's codec and converter, directly


def marked(payload: Payload) -> tuple[str, str]:
    """The original encoding and the reason of a payload the worker's codec marked."""
    found = read_mark(payload)
    assert found is not None, payload
    return found


async def test_what_the_worker_cannot_decrypt_is_marked_with_the_reason() -> None:
    keys = keyring("k1")
    codec = InboundCodec(keys)
    original = plain({"outcome": "completed"})
    garbled = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k1"}, data=b"short")
    other_key = encrypt(original, "k1", os.urandom(32))
    unknown = encrypt(original, "k9" * 100, os.urandom(32))
    sealed = encrypt(original, "k1", keys.current[1])
    opened, *refused = await codec.decode([sealed, garbled, other_key, unknown])
    assert opened == original
    reasons = [marked(p) for p in refused]
    assert all(encoding == "binary/encrypted" for encoding, _ in reasons)
    assert "'k1' does not open" in reasons[0][1] and "'k1' does not open" in reasons[1][1]
    assert "which is not loaded (loaded: k1)" in reasons[2][1]
    assert len(reasons[2][1]) < 300  # a key id of any length is shown clipped


async def test_plaintext_is_refused_with_the_switch_named_unless_the_switch_is_on() -> None:
    original = plain({"outcome": "completed"})
    [refused] = await InboundCodec(keyring("k1")).decode([original])
    encoding, reason = marked(refused)
    assert encoding == "json/plain" and REFUSED in reason
    assert await InboundCodec(keyring("k1"), accept_plaintext=True).decode([original]) == [original]


async def test_a_mark_sent_from_outside_is_only_ever_undecodable() -> None:
    converter = TolerantPayloadConverter()
    forged = Payload(
        metadata={"encoding": MARKED, "goalkeeper-seal": b"guess", "original-encoding": b"x"},
        data=b"anything the sender likes",
    )
    bare = Payload(metadata={"encoding": MARKED}, data=b'{"outcome": "completed"}')
    for payload in (forged, bare):
        assert read_mark(payload) == (MARKED.decode(), FORGED_MARK)
        [value] = converter.from_payloads([payload])
        assert value == Undecodable(encoding=MARKED.decode(), error=FORGED_MARK)
        # Passed through by a worker that accepts plaintext, it is still not believed.
        [through] = await InboundCodec(keyring("k1"), accept_plaintext=True).decode([payload])
        assert converter.from_payloads([through]) == [value]
    # The worker's own mark: its reason, and a typed value still fails loudly.
    ours = mark("binary/encrypted", "a payload is encrypted with key 'k9'")
    assert converter.from_payloads([ours, plain({"a": 1})]) == [
        Undecodable(encoding="binary/encrypted", error="a payload is encrypted with key 'k9'"),
        {"a": 1},
    ]
    with pytest.raises(UndecryptablePayload, match="'k9'"):
        converter.from_payloads([ours], [TaskView])


def test_the_plaintext_switch_is_read_and_a_bad_value_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOALKEEPER_CODEC_ACCEPT_PLAINTEXT", raising=False)
    assert Settings.from_env().codec_accept_plaintext is False
    monkeypatch.setenv("GOALKEEPER_CODEC_ACCEPT_PLAINTEXT", "on")
    assert Settings.from_env().codec_accept_plaintext is True
    monkeypatch.setenv("GOALKEEPER_CODEC_ACCEPT_PLAINTEXT", "sometimes")
    with pytest.raises(ValueError, match=r"GOALKEEPER_CODEC_ACCEPT_PLAINTEXT.*got 'sometimes'"):
        Settings.from_env()


# Over the wire, against a worker with codec keys loaded


@pytest.fixture(scope="module")
def keys() -> Keyring:
    return keyring("k1")


@pytest.fixture(scope="module")
async def encrypting(temporal_server: TemporalDevServer, keys: Keyring) -> Client:
    """The client of Goalkeeper's own processes: the workers' keys."""
    return await connect(Settings(temporal_address=temporal_server.address, codec_keys=keys))


async def _worker_queue(
    encrypting: Client, pool: asyncpg.Pool, accept_plaintext: bool
) -> AsyncIterator[str]:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    async with build_worker(encrypting, pool, queue, accept_plaintext=accept_plaintext):
        yield queue


@pytest.fixture
async def queue(encrypting: Client, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A task queue served by an encrypting worker."""
    async for queue in _worker_queue(encrypting, pool, accept_plaintext=False):
        yield queue


@pytest.fixture
async def migrating_queue(encrypting: Client, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A task queue served by an encrypting worker that still accepts plaintext."""
    async for queue in _worker_queue(encrypting, pool, accept_plaintext=True):
        yield queue


async def _assigned(encrypting: Client, queue: str, workspace: str) -> tuple[str, TaskView]:
    handle = await start_goal(encrypting, goal_spec(1, workspace), queue)
    return handle.id, await wait_task(encrypting, handle.id, "t1", TaskStatus.ASSIGNED)


async def _rejections(pool: asyncpg.Pool, goal_id: str, count: int) -> list[str]:
    async def recorded() -> list[str] | None:
        rows = await events(pool, goal_id, "report_rejected")
        return [r["message"] for r in rows] if len(rows) >= count else None

    return await eventually(recorded, what=f"{count} rejected reports of {goal_id}")


async def _completes(encrypting: Client, goal_id: str) -> None:
    result = await asyncio.wait_for(encrypting.get_workflow_handle(goal_id).result(), PATIENCE)
    assert result["status"] == GoalStatus.COMPLETED.value


class Garbling(PayloadCodec):
    """An outsider's codec: claims the workers' key id over bytes that are no ciphertext."""

    async def encode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [
            Payload(metadata={"encoding": ENCODING, KEY_ID: b"k1"}, data=os.urandom(40))
            for _ in payloads
        ]

    async def decode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return list(payloads)


async def test_reports_under_an_unknown_key_or_garbled_are_recorded_and_the_real_one_counts(
    temporal_server: TemporalDevServer,
    encrypting: Client,
    pool: asyncpg.Pool,
    queue: str,
    workspace: str,
) -> None:
    goal_id, view = await _assigned(encrypting, queue, workspace)
    unknown_key = await connect(
        Settings(temporal_address=temporal_server.address, codec_keys=keyring("k9"))
    )
    await report(unknown_key, view)  # the real agent's ids, under a key the workers lack
    garbling = await Client.connect(
        temporal_server.address,
        data_converter=dataclasses.replace(pydantic_data_converter, payload_codec=Garbling()),
    )
    await report(garbling, view)
    rejected = await _rejections(pool, goal_id, 2)
    one_of(
        rejected,
        "invalid agent report: a payload that cannot be decoded",
        "encrypted with key 'k9', which is not loaded",
    )
    one_of(rejected, "'k1' does not open")
    assert (await wait_task(encrypting, goal_id, "t1", TaskStatus.ASSIGNED)).attempts == 1
    await report(encrypting, view)
    await _completes(encrypting, goal_id)


async def test_a_plaintext_report_is_refused_saying_how_to_accept_it(
    client: Client, encrypting: Client, pool: asyncpg.Pool, queue: str, workspace: str
) -> None:
    goal_id, view = await _assigned(encrypting, queue, workspace)
    await report(client, view)  # no codec at all: plaintext, with the real agent's ids
    [refused] = await _rejections(pool, goal_id, 1)
    assert "encoding 'json/plain'" in refused and "not encrypted is refused" in refused
    assert REFUSED in refused
    await report(encrypting, view)
    await _completes(encrypting, goal_id)


async def test_with_the_switch_on_plaintext_is_accepted_and_a_forged_mark_is_not(
    client: Client,
    encrypting: Client,
    pool: asyncpg.Pool,
    migrating_queue: str,
    workspace: str,
    temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    goal_id, view = await _assigned(encrypting, migrating_queue, workspace)
    ids = {"agent_id": view.agent_id, "assignment_id": view.assignment_id}
    file = tmp_path / "report.json"
    file.write_text(json.dumps({**ids, "outcome": "completed"}))
    code, out = await run_temporal(
        temporal_server,
        *("workflow", "signal", "-w", f"{goal_id}/t1", "--name", "agent_report"),
        *("--input-file", str(file), "--input-meta", f"encoding={MARKED.decode()}"),
    )
    assert code == 0, out
    [forged] = await _rejections(pool, goal_id, 1)
    assert "came from outside" in forged
    await report(client, view, result="sent in plaintext")
    await _completes(encrypting, goal_id)
    assert (await wait_task(encrypting, goal_id, "t1", TaskStatus.COMPLETED)).result == (
        "sent in plaintext"
    )


async def test_an_undecodable_update_is_rejected_with_the_reason_and_wedges_nothing(
    temporal_server: TemporalDevServer,
    encrypting: Client,
    pool: asyncpg.Pool,
    queue: str,
    workspace: str,
    keys: Keyring,
) -> None:
    goal_id, view = await _assigned(encrypting, queue, workspace)
    # A client that moved to a new key before the workers did: it still reads theirs.
    ahead = await connect(
        Settings(
            temporal_address=temporal_server.address,
            codec_keys=Keyring((("k9", os.urandom(32)), *keys.keys)),
        )
    )
    report_ = {**view.model_dump(include={"agent_id", "assignment_id"}), "outcome": "completed"}
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await ahead.get_workflow_handle(f"{goal_id}/t1").execute_update("report", report_)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert "cannot be decoded" in cause.message and "'k9'" in cause.message, cause.message
    await encrypting.get_workflow_handle(f"{goal_id}/t1").execute_update("report", report_)
    await _completes(encrypting, goal_id)


async def test_a_goal_started_under_an_unknown_key_or_in_plaintext_is_rejected_by_name(
    temporal_server: TemporalDevServer, client: Client, encrypting: Client, queue: str
) -> None:
    unknown_key = await connect(
        Settings(temporal_address=temporal_server.address, codec_keys=keyring("k9"))
    )
    for sender, says in ((unknown_key, "'k9', which is not loaded"), (client, REFUSED)):
        goal_id = new_goal_id()
        await start_goal(sender, goal_spec(1), queue, goal_id)
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(encrypting.get_workflow_handle(goal_id).result(), PATIENCE)
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "InvalidGoalSpec", cause
        assert "cannot be decoded" in cause.message and says in cause.message, cause.message


async def test_the_temporal_cli_reports_through_the_codec_server_and_is_accepted(
    temporal_server: TemporalDevServer,
    encrypting: Client,
    pool: asyncpg.Pool,
    database_url: str,
    keys: Keyring,
    queue: str,
    workspace: str,
) -> None:
    goal_id, view = await _assigned(encrypting, queue, workspace)
    token = (await new_token(pool, "cli-user", all_workspaces=True))["token"]
    sent = {"agent_id": view.agent_id, "assignment_id": view.assignment_id, "outcome": "completed"}
    with web.serve(create_codec_app(keys, [], database_url=database_url)) as url:
        code, out = await run_temporal(
            temporal_server,
            *("workflow", "signal", "-w", f"{goal_id}/t1", "--name", "agent_report"),
            *("--input", json.dumps({**sent, "result": "sent by the CLI"})),
            *("--codec-endpoint", url, "--codec-auth", f"Bearer {token}"),
        )
    assert code == 0, out
    await _completes(encrypting, goal_id)
    assert await events(pool, goal_id, "report_rejected") == []


async def test_a_partitioned_goal_runs_to_the_end_on_a_worker_that_refuses_plaintext(
    encrypting: Client, pool: asyncpg.Pool, queue: str, workspace: str
) -> None:
    # Everything a worker hands itself (child inputs and results, signals between
    # workflows, activity results, a retried attempt) is encrypted, so none is refused.
    tasks = [
        {"id": f"t{i}", "title": f"Task {i}", "skill": "writing"}
        | ({"depends_on": [f"t{i - 2}"]} if i >= 2 else {})
        for i in range(6)
    ]
    spec = goal_spec(workspace=workspace, tasks=tasks, partition_size=2)
    handle = await start_goal(encrypting, spec, queue)

    def outcome(task_id: str, attempt: int) -> str:
        return "failed" if (task_id, attempt) == ("t1", 1) else "completed"

    async with SimulatedAgents(encrypting, pool, handle.id, outcome):
        await _completes(encrypting, handle.id)
    assert len((await handle.query("tasks"))["partitions"]) == 3
    assert [e["kind"] for e in await events(pool, handle.id) if "rejected" in e["kind"]] == []
