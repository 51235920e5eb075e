"""``layerlab net up / status / down`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netcluster import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent.parent


def layerlab(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run([sys.executable, "-m", "layerlab.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_net_up_status_down(tmp_path: Path) -> None:
    directory = str(tmp_path / "net")
    out = layerlab("net", "up", "--nodes", "3", "--consensus", "pos", "--validators", "3", "--dir", directory)
    assert out.count("rpc http://127.0.0.1:") == 3 and "validators" in out
    try:
        def finalized() -> bool:
            rows = json.loads(layerlab("net", "status", "--dir", directory, "--json"))
            return all(r.get("finalizedCheckpoint", {}).get("epoch", 0) >= 1 for r in rows)

        wait_for(finalized, 90, "finality on all three", interval=1.0)
        rows = json.loads(layerlab("net", "status", "--dir", directory, "--json"))
        assert [r["peers"] for r in rows] == [2, 2, 2]
        assert len({r["head"]["hash"] for r in rows}) <= 2  # at most one slot apart
        table = layerlab("net", "status", "--dir", directory)
        assert "finalized" in table and "checkpoint" in table
        # a second `up` on the same directory is refused, not a second network
        again = subprocess.run([sys.executable, "-m", "layerlab.cli", "net", "up", "--dir", directory],
                               cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode != 0 and "net down" in (again.stdout + again.stderr)
    finally:
        out = layerlab("net", "down", "--dir", directory)
    assert "stopped 3 node(s)" in out
    assert not (tmp_path / "net" / "net.json").exists()
