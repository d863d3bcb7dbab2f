"""`agent.py --api URL`: agents served over the HTTP agent protocol, each with its own
credential (one given, or one file per agent in a directory) and its own key on this
machine, registered over HTTP the first time. No PostgreSQL login, no route to Temporal."""

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import httpx

from goalkeeper.errors import GoalkeeperError
from goalkeeper.signing import public_key_of
from interfaces.agents.http_transport import HttpTransport, ProtocolError
from interfaces.agents.runner import AgentRunner, Hook
from interfaces.keyring import exposure, key_for

log = logging.getLogger("goalkeeper.agent")

CREDENTIAL_SUFFIX = ".credential"
"""The files `starter.py agent credential new AGENT --into DIR` writes: DIR/AGENT.credential."""

MAX_CREDENTIALS = 100
"""Agents one process serves from a directory: each holds a poll open on the API."""


class CredentialFileError(GoalkeeperError):
    """A credential directory or file that cannot be used: names it and says why."""


@dataclass(frozen=True)
class Credential:
    """An agent credential and where it came from (named in errors, never the text)."""

    text: str
    source: str


def credentials_in(directory: Path) -> list[Credential]:
    """Every `*.credential` file in `directory`, each readable by its owner only (whoever
    reads one acts as its agent); refused if there is none or too many."""
    if not directory.is_dir():
        raise CredentialFileError(f"--credentials {directory}: expected a directory")
    files = sorted(directory.glob(f"*{CREDENTIAL_SUFFIX}"))
    if not files:
        raise CredentialFileError(
            f"--credentials {directory}: no *{CREDENTIAL_SUFFIX} file; write one per agent "
            f"with 'starter.py agent credential new AGENT --into {directory}'"
        )
    if len(files) > MAX_CREDENTIALS:
        raise CredentialFileError(
            f"--credentials {directory}: {len(files)} credentials, expected at most "
            f"{MAX_CREDENTIALS} per process; run more processes on parts of them"
        )
    found = []
    for path in files:
        if problem := exposure(path):
            raise CredentialFileError(problem)
        text = path.read_text().strip()
        if not text:
            raise CredentialFileError(f"{path} is empty: expected an agent credential")
        found.append(Credential(text, str(path)))
    return found


async def agent_runner(api: str, credential: Credential, hook: Hook) -> AgentRunner:
    """A runner for the credential's agent, whose key on this machine is the one the API
    knows: registered now if the agent has none, refused if it has another."""
    transport = HttpTransport(api, credential.text)
    await transport.open()
    try:
        me = await transport.me()
        agent_id = str(me["agent_id"])
        key = key_for("agent", agent_id)
        public = public_key_of(key)
        if me.get("public_key") is None:
            await transport.register_key(public)
        elif me["public_key"] != public:
            raise GoalkeeperError(
                f"agent {agent_id} has another key than this machine's; an operator gives it "
                f"this one with 'starter.py agent rekey {agent_id} --public-key {public} "
                "--as OPERATOR'"
            )
    except (ProtocolError, httpx.HTTPError) as exc:
        raise GoalkeeperError(
            f"the API at {api} refused the credential of {credential.source}: {exc}"
        ) from None
    finally:
        await transport.close()
    log.info(
        "agent %s serving workspace %r over %s, signing with key %s",
        agent_id,
        me["workspace"],
        api,
        public,
    )
    return AgentRunner(None, None, [agent_id], hook, keys={agent_id: key}, transport=transport)


async def serve_over_http(
    api: str, credentials: list[Credential], hook: Hook, stop: asyncio.Event
) -> None:
    """Serve every credential's agent until stopped; one refused credential stops none of
    the others once they run, but all are checked before any starts."""
    runners = [await agent_runner(api, credential, hook) for credential in credentials]
    ids = [runner.agent_ids[0] for runner in runners]
    if len(set(ids)) != len(ids):
        raise GoalkeeperError(f"two credentials act for the same agent among {sorted(ids)}")
    await asyncio.gather(*(runner.run(stop) for runner in runners))
