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


async def starter(database_url: str, *args: str, temporal_address: str = "") -> Ran:
    """`python starter.py ARGS` with the test's PostgreSQL (and Temporal, if given)."""
    env = {**os.environ, "DATABASE_URL": database_url}
    if temporal_address:
        env["TEMPORAL_ADDRESS"] = temporal_address
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:  # a command that hangs fails its test instead of stalling the suite
        out, err = await asyncio.wait_for(process.communicate(), 120)
    except TimeoutError:
        process.kill()
        raise AssertionError(f"starter.py {' '.join(args)} did not end in 120 s") from None
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())
