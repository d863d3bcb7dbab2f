"""Encrypted payloads: the codec round trip, key rotation, histories unreadable without
the key, and the codec server the Temporal UI and CLI decode through."""

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from goalkeeper.models import GoalReport
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.api.codec import COOKIE, create_codec_app
from interfaces.client import connect
from interfaces.codec import (
    ENCODING,
    KEY_ID,
    CodecKeyError,
    EncryptionCodec,
    Keyring,
    UndecryptablePayload,
    data_converter,
    decrypt,
    encrypt,
    new_key_entry,
    parse_keys,
    read_keys_file,
)
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer
from store.tokens import new_token, revoke_token
from tests import web
from tests.helpers import goal_spec, report, run_temporal, start_goal, task_view, wait_task
from worker import build_worker

UI = "http://localhost:8080"


def keyring(*ids: str) -> Keyring:
    return Keyring(tuple((key_id, os.urandom(32)) for key_id in ids))


def entry(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.b64encode(key).decode()}"


def plain(text: str) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([text])[0]


# The pure codec


async def test_a_payload_round_trips_and_its_ciphertext_names_only_the_key_id() -> None:
    keys = keyring("k1")
    codec = EncryptionCodec(keys)
    original = plain("the secret result")
    [sealed] = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"k1"
    assert b"secret" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [original]
    # A fresh nonce each time: the same payload never encrypts to the same bytes.
    [again] = await codec.encode([original])
    assert again.data != sealed.data


async def test_payloads_written_before_encryption_still_read() -> None:
    original = plain("written before the keys were set")
    assert await EncryptionCodec(keyring("k1")).decode([original]) == [original]


async def test_keys_rotate_old_payloads_decode_and_new_ones_use_the_new_key() -> None:
    old = keyring("k1")
    [before] = await EncryptionCodec(old).encode([plain("before rotation")])

    rotated = Keyring((("k2", os.urandom(32)), *old.keys))  # the new key first
    codec = EncryptionCodec(rotated)
    assert await codec.decode([before]) == [plain("before rotation")]
    [after] = await codec.encode([plain("after rotation")])
    assert after.metadata[KEY_ID] == b"k2"
    assert await codec.decode([after]) == [plain("after rotation")]

    # A process still on the old keys says which key it lacks, and never shows a key.
    with pytest.raises(UndecryptablePayload) as refused:
        await EncryptionCodec(old).decode([after])
    message = str(refused.value)
    assert "'k2'" in message and "loaded: k1" in message
    for _, key in rotated.keys:
        assert base64.b64encode(key).decode() not in message


def test_a_key_of_the_same_id_that_did_not_encrypt_a_payload_is_refused() -> None:
    sealed = encrypt(plain("x"), "k1", os.urandom(32))
    with pytest.raises(UndecryptablePayload, match="'k1' does not open"):
        decrypt(sealed, keyring("k1"))


def test_a_converter_without_keys_is_the_plain_pydantic_one() -> None:
    assert data_converter(None) is pydantic_data_converter
    encrypting = data_converter(keyring("k1"))
    assert isinstance(encrypting.payload_codec, EncryptionCodec)
    assert encrypting.payload_converter_class is pydantic_data_converter.payload_converter_class


# Keys from the environment and from files


def test_keys_parse_in_order_from_commas_lines_and_comments() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    keys = parse_keys(f"# current first\n{entry('k2', k2)}, \n\n{entry('k1', k1)}\n", "test")
    assert keys.keys == (("k2", k2), ("k1", k1))
    assert keys.current == ("k2", k2)
    assert repr(keys) == "Keyring(k2, k1)"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("k1:not base64!", "key 'k1' is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "key 'k1' is 5 bytes; AES-256 needs 32"),
        (f"{entry('k1', bytes(32))},{entry('k1', bytes(32))}", "key id 'k1' appears twice"),
        (base64.b64encode(bytes(32)).decode(), "entry 1 is not KEY_ID:BASE64_KEY"),
        (f"bad id:{base64.b64encode(bytes(32)).decode()}", "entry 1 is not KEY_ID:BASE64_KEY"),
        (" , ", "no keys"),
    ],
)
def test_bad_keys_are_named_without_showing_the_key(text: str, says: str) -> None:
    with pytest.raises(CodecKeyError) as refused:
        parse_keys(text, "GOALKEEPER_CODEC_KEYS")
    message = str(refused.value)
    assert message.startswith("GOALKEEPER_CODEC_KEYS: ") and says in message
    for part in text.replace(",", ":").split(":"):
        if len(part.strip()) > 8:
            assert part.strip() not in message


def test_a_keys_file_must_be_its_owners_alone(tmp_path: Path) -> None:
    path = tmp_path / "codec-keys"
    path.write_text(new_key_entry("k1") + "\n")
    path.chmod(0o644)
    with pytest.raises(CodecKeyError, match=r"open to others \(mode 0644\).*chmod 600"):
        read_keys_file(path)
    path.chmod(0o600)
    assert read_keys_file(path).ids == ["k1"]


def test_settings_read_the_keys_and_never_show_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = os.urandom(32)
    monkeypatch.delenv("GOALKEEPER_CODEC_KEYS_FILE", raising=False)
    monkeypatch.delenv("GOALKEEPER_CODEC_KEYS", raising=False)
    assert Settings.from_env().codec_keys is None  # off unless asked for

    monkeypatch.setenv("GOALKEEPER_CODEC_KEYS", entry("k1", key))
    settings = Settings.from_env()
    assert settings.codec_keys is not None and settings.codec_keys.current == ("k1", key)
    assert base64.b64encode(key).decode() not in repr(settings)

    path = tmp_path / "keys"
    path.write_text(entry("k1", key))
    path.chmod(0o600)
    monkeypatch.setenv("GOALKEEPER_CODEC_KEYS_FILE", str(path))
    with pytest.raises(ValueError, match="not both"):
        Settings.from_env()
    monkeypatch.delenv("GOALKEEPER_CODEC_KEYS")
    assert Settings.from_env().codec_keys == settings.codec_keys


# A goal end to end, on a worker and clients that encrypt

TITLE = "Merger memo on Zephyrine Holdings"
DESCRIPTION = "Confidential: acquire Zephyrine Holdings before the third quarter"
RESULT = "Offer 41 million for Zephyrine Holdings"
ERROR = "Zephyrine Holdings refused the data room"


@pytest.fixture(scope="module")
def keys() -> Keyring:
    return keyring("k1")


@pytest.fixture(scope="module")
async def encrypting(temporal_server: TemporalDevServer, keys: Keyring) -> Client:
    """A client made as every Goalkeeper process makes one, with the keys configured."""
    return await connect(Settings(temporal_address=temporal_server.address, codec_keys=keys))


@pytest.fixture(scope="module")
async def finished_goal(encrypting: Client, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A goal whose task t1 completed with RESULT and t2 failed with ERROR, run by a
    worker on the encrypting client; the worker keeps serving queries until the end."""
    workspace, queue = f"ws-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    spec = goal_spec(
        workspace=workspace,
        title=TITLE,
        description=DESCRIPTION,
        max_attempts=1,
        tasks=[
            {"id": "t1", "title": TITLE, "skill": "writing"},
            {"id": "t2", "title": "Second look", "skill": "writing"},
        ],
    )
    async with build_worker(encrypting, pool, queue):
        handle = await start_goal(encrypting, spec, queue)
        done = await wait_task(encrypting, handle.id, "t1", TaskStatus.ASSIGNED)
        failing = await wait_task(encrypting, handle.id, "t2", TaskStatus.ASSIGNED)
        await report(encrypting, done, result=RESULT)
        await report(encrypting, failing, "failed", error=ERROR)
        await handle.result()
        yield handle.id


async def raw_history(client: Client, workflow_id: str) -> bytes:
    """A workflow's history as the server keeps it: no converter or codec in the way."""
    pages, token = [], b""
    while True:
        page = await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=workflow_id),
                next_page_token=token,
            )
        )
        pages.append(page.history.SerializeToString())
        token = page.next_page_token
        if not token:
            return b"".join(pages)


async def test_payloads_in_history_are_unreadable_without_the_key(
    client: Client, finished_goal: str
) -> None:
    goal_id = finished_goal
    for workflow_id in (goal_id, f"{goal_id}/t1", f"{goal_id}/t2"):
        history = await raw_history(client, workflow_id)
        assert ENCODING in history and goal_id.encode() in history, workflow_id
        for secret in (TITLE, DESCRIPTION, RESULT, ERROR, "Zephyrine"):
            assert secret.encode() not in history, (workflow_id, secret)


async def test_with_the_key_the_goal_reads_as_usual(encrypting: Client, finished_goal: str) -> None:
    handle = encrypting.get_workflow_handle(finished_goal, result_type=GoalReport)
    report_ = await handle.result()
    assert report_.status is GoalStatus.FAILED
    assert report_.title == TITLE
    failed = next(t for t in report_.tasks if t.task_id == "t2")
    assert failed.error is not None and ERROR in failed.error
    view = await task_view(encrypting, finished_goal, "t1")
    assert (view.title, view.result) == (TITLE, RESULT)


async def test_a_client_without_the_key_cannot_read_the_goal(
    client: Client, finished_goal: str
) -> None:
    with pytest.raises(Exception, match="binary/encrypted"):
        await client.get_workflow_handle(finished_goal).result()


# The codec server


@pytest.fixture
async def codec_server(keys: Keyring, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_codec_app(keys, [UI], pool=pool)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://codec") as http,
    ):
        yield http


@pytest.fixture
async def token(pool: asyncpg.Pool) -> str:
    made = await new_token(pool, "reader", all_workspaces=True)
    return str(made["token"])


def body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def payloads_of(response: httpx.Response) -> list[Payload]:
    return list(json_format.ParseDict(response.json(), Payloads()).payloads)


async def test_the_codec_server_decodes_and_encodes_for_a_token(
    codec_server: httpx.AsyncClient, keys: Keyring, token: str
) -> None:
    sealed = await EncryptionCodec(keys).encode([plain(RESULT)])
    auth = {"Authorization": f"Bearer {token}", "X-Namespace": "default"}
    decoded = await codec_server.post("/decode", content=body(*sealed), headers=auth)
    assert decoded.status_code == 200, decoded.text
    assert payloads_of(decoded) == [plain(RESULT)]

    encoded = await codec_server.post("/encode", content=body(plain(RESULT)), headers=auth)
    assert encoded.status_code == 200, encoded.text
    [again] = payloads_of(encoded)
    assert again.metadata[KEY_ID] == b"k1"
    assert await EncryptionCodec(keys).decode([again]) == [plain(RESULT)]


async def test_the_codec_server_refuses_without_a_valid_token(
    codec_server: httpx.AsyncClient, keys: Keyring, pool: asyncpg.Pool
) -> None:
    sealed = body(*await EncryptionCodec(keys).encode([plain(RESULT)]))
    for path in ("/decode", "/encode"):
        missing = await codec_server.post(path, content=sealed)
        assert missing.status_code == 401 and "missing token" in missing.json()["detail"]
    unknown = await codec_server.post(
        "/decode", content=sealed, headers={"Authorization": "Bearer not-a-token"}
    )
    assert unknown.status_code == 401 and "unknown token" in unknown.json()["detail"]
    made = await new_token(pool, "leaver", all_workspaces=True)
    await revoke_token(pool, made["token_id"])
    revoked = await codec_server.post(
        "/decode", content=sealed, headers={"Authorization": f"Bearer {made['token']}"}
    )
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    # A payload may be any workspace's: a token of some workspaces decodes none.
    scoped = await new_token(pool, "reader", ["ws-a"])
    partial = await codec_server.post(
        "/decode", content=sealed, headers={"Authorization": f"Bearer {scoped['token']}"}
    )
    assert partial.status_code == 401 and "token of all workspaces" in partial.json()["detail"]
    assert RESULT not in missing.text + unknown.text + revoked.text


async def test_the_codec_server_names_a_key_it_lacks(
    codec_server: httpx.AsyncClient, token: str
) -> None:
    sealed = await EncryptionCodec(keyring("k9")).encode([plain(RESULT)])
    answer = await codec_server.post(
        "/decode", content=body(*sealed), headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 422
    assert "'k9'" in answer.json()["detail"] and "loaded: k1" in answer.json()["detail"]


async def test_the_codec_server_answers_the_uis_preflight_and_only_the_ui(
    codec_server: httpx.AsyncClient,
) -> None:
    asking = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }
    preflight = await codec_server.options("/decode", headers={"Origin": UI, **asking})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    elsewhere = await codec_server.options(
        "/decode", headers={"Origin": "http://evil.example", **asking}
    )
    assert "access-control-allow-origin" not in elsewhere.headers
    # A refusal carries the CORS headers too, so the UI can tell the person why.
    refused = await codec_server.post("/decode", content=body(), headers={"Origin": UI})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == UI


async def test_a_browser_signs_in_once_and_its_cookie_decodes(
    codec_server: httpx.AsyncClient, keys: Keyring, token: str
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong = await codec_server.post("/login", content="token=nope", headers=form)
    assert wrong.status_code == 401 and "unknown token" in wrong.text
    signed_in = await codec_server.post("/login", content=f"token={token}", headers=form)
    assert signed_in.status_code == 200 and "Signed in as <b>reader</b>" in signed_in.text
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert COOKIE in codec_server.cookies

    sealed = await EncryptionCodec(keys).encode([plain(RESULT)])
    decoded = await codec_server.post("/decode", content=body(*sealed))
    assert decoded.status_code == 200 and payloads_of(decoded) == [plain(RESULT)]
    await codec_server.post("/logout")
    assert COOKIE not in codec_server.cookies


def shown_payloads(output: str) -> str:
    """The text of every payload in `temporal workflow show --output json`, base64 undone."""
    texts: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("metadata"), dict) and isinstance(node.get("data"), str):
                texts.append(base64.b64decode(node["data"]).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(output))
    return "\n".join(texts)


async def test_the_temporal_cli_reads_the_history_through_the_codec_server(
    temporal_server: TemporalDevServer,
    database_url: str,
    keys: Keyring,
    token: str,
    finished_goal: str,
) -> None:
    show = ("workflow", "show", "--workflow-id", f"{finished_goal}/t1", "--output", "json")
    code, unreadable = await run_temporal(temporal_server, *show)
    assert code == 0, unreadable
    assert RESULT not in shown_payloads(unreadable) and TITLE not in shown_payloads(unreadable)
    with web.serve(create_codec_app(keys, [UI], database_url=database_url)) as url:
        code, refused = await run_temporal(temporal_server, *show, "--codec-endpoint", url)
        assert code != 0 and RESULT not in refused  # no token, nothing decoded
        code, readable = await run_temporal(
            temporal_server, *show, "--codec-endpoint", url, "--codec-auth", f"Bearer {token}"
        )
    assert code == 0, readable
    assert RESULT in shown_payloads(readable) and TITLE in shown_payloads(readable)
