"""`bench/run.py --agents-only` at a tiny size: the chain's three paths still run and print
their figures, so the benchmark cannot rot between runs of `make bench`."""

import os
import re
import subprocess
import sys

from tests.helpers import ROOT

TIMEOUT = 600
"""Seconds for the whole run: it starts its own Temporal and PostgreSQL."""


def test_agents_only_runs_the_chain_three_ways() -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--agents-only", "--chain", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout
    assert "chain of 3 dependent tasks" in out, out
    for path in ("bare Temporal", "signal path", "HTTP agent path"):
        assert re.search(rf"^{path} +[\d.]+ tasks/s .*step p50 \d+ ms, p95 \d+ ms$", out, re.M), out
    assert re.search(r"^HTTP over signal +[-+][\d.]+ % per step", out, re.M), out
    assert "agent choice" not in out  # --agents-only runs just the chain
