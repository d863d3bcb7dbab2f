"""worker.py with the stack down: the embedded PostgreSQL it starts stops with it."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from interfaces.stack import EmbeddedPostgres, TemporalDevServer
from tests.helpers import PATIENCE, ROOT


async def _run_worker_until_it_polls(
    temporal_server: TemporalDevServer, data_dir: Path, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "GOALKEEPER_DATA_DIR")
    }
    env |= {
        "TEMPORAL_ADDRESS": temporal_server.address,
        "GOALKEEPER_DATA_DIR": str(data_dir),
        "GOALKEEPER_TASK_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        "GOALKEEPER_HEALTH_INTERVAL": "0",
    }
    before = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")], env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + PATIENCE + 120  # PostgreSQL's first start runs initdb
    while b"worker polling" not in log.read_bytes()[before:]:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"worker did not start: {log.read_text()}"
        await asyncio.sleep(0.1)
    return process


def _stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text()


async def test_a_worker_stops_the_postgres_it_started_and_only_that(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "worker.log"
    postgres = EmbeddedPostgres(data_dir / "postgres")

    worker = await _run_worker_until_it_polls(temporal_server, data_dir, log)
    try:
        assert postgres.running_url() is not None, "expected the worker to start PostgreSQL"
    finally:
        _stop(worker, log)
    assert postgres.running_url() is None, f"expected PostgreSQL stopped, got {log.read_text()}"
    assert "stopping the embedded PostgreSQL this worker started" in log.read_text()

    # A PostgreSQL the stack (or anyone else) started outlives the worker.
    postgres.start()
    try:
        worker = await _run_worker_until_it_polls(temporal_server, data_dir, log)
        _stop(worker, log)
        assert postgres.running_url() is not None, "expected the stack's PostgreSQL running"
    finally:
        postgres.stop()
