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


async def printed_until(process: asyncio.subprocess.Process, marker: str, timeout: float) -> str:
    """What `process` printed up to the line that holds `marker`; fails if it exits first
    or takes more than `timeout` seconds."""
    assert process.stdout is not None
    printed: list[str] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not printed or marker not in printed[-1]:
        left = deadline - asyncio.get_running_loop().time()
        try:
            line = await asyncio.wait_for(process.stdout.readline(), max(left, 0))
        except TimeoutError:
            raise AssertionError(f"no {marker!r} within {timeout:.0f} s: {printed}") from None
        if not line:
            raise AssertionError(f"exited with {await process.wait()} before {marker!r}: {printed}")
        printed.append(line.decode())
    return "".join(printed)
