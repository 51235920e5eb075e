"""``l1/network.py``'s ``down`` from the process that ran ``up``: its nodes are this process's children."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from layerlab.l1 import network as l1net
from layerlab.orchestration import is_alive


def test_down_reaps_its_own_children_without_waiting_out_the_timeout(tmp_path: Path) -> None:
    # stand-ins for node processes (session leaders, as orchestration.spawn starts nodes):
    # they exit on SIGTERM, and stay zombies until reaped
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              start_new_session=True) for _ in range(2)]
    specs = [l1net.NodeSpec(i, 0, 0, str(tmp_path / f"node{i}"), [], pid=p.pid)
             for i, p in enumerate(procs)]
    (tmp_path / "net.json").write_text(json.dumps(
        {"consensus": "pow", "config": "", "nodes": [asdict(s) for s in specs]}))
    start = time.monotonic()
    assert l1net.down(tmp_path, timeout=15) == 2
    assert time.monotonic() - start < 5  # not the 15 s timeout (a zombie is not running)
    assert not (tmp_path / "net.json").exists()
    assert not any(is_alive(p.pid) for p in procs)
