"""Run `starter.py` as a person would, in its own process, against the test stack."""

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from tests.helpers import ROOT


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def run_starter(env: dict[str, str], *args: str) -> Ran:
    """`python starter.py ARGS` with `env` added to this process's environment."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:  # a command that hangs fails its test instead of stalling the suite
        out, err = await asyncio.wait_for(process.communicate(), 180)
    except TimeoutError:
        process.kill()
        raise AssertionError(f"starter.py {' '.join(args)} did not end in 180 s") from None
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def starter(database_url: str, *args: str, temporal_address: str = "") -> Ran:
    """`python starter.py ARGS` with the test's PostgreSQL (and Temporal, if given)."""
    env = {"DATABASE_URL": database_url}
    if temporal_address:
        env["TEMPORAL_ADDRESS"] = temporal_address
    return await run_starter(env, *args)
