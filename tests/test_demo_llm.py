"""`make demo ARGS=--llm-offline`: the demo's agents are LLM agents on a scripted model
priced as a real one, calling the tools of the MCP library shipped with Goalkeeper."""

import os
import re
import subprocess
import sys
from pathlib import Path

from interfaces.stack import free_port
from tests.helpers import ROOT


def test_the_offline_llm_demo_completes_with_tool_results_and_costs(tmp_path: Path) -> None:
    port, ui_port, api_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "GOALKEEPER_DATA_DIR": str(tmp_path / "data"),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "DATABASE_URL": "",
    }
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "starter.py"), "demo", "--llm-offline", "--ui-port",
         str(ui_port), "--api-port", str(api_port), "--timeout", "180"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        out, err = demo.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        demo.terminate()  # SIGTERM: the demo stops what it started
        out, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, out + err
    assert "3 offline LLM (MCP tools, priced as gpt-4o-mini) agents started" in out
    assert "completed: 6 of 6 tasks (100.0%)" in out
    # The writing tasks drew on the MCP library's search results.
    assert 'drawn from ["Notes on ' in out, out
    total = re.search(r"\n  total +\d+ +(\d+) +([0-9.]+) ", out)
    assert total is not None and int(total[1]) > 0 and float(total[2]) > 0, out
