"""``layerlab net up|status|down``: a multi-node L1 network of OS processes on 127.0.0.1.

``up`` writes one chain config (a shared genesis timestamp and the consensus engine),
starts N ``layerlab node`` processes, each with its own data directory, RPC port and p2p
port, fully meshed as static peers, and records them in ``<dir>/net.json``. ``status``
asks every node for ``layerlab_status``; ``down`` stops them (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from layerlab.errors import ConfigError, LayerlabError
from layerlab.orchestration import free_port, is_alive


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 10) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise LayerlabError(f"{method}: {reply['error'].get('message')}")
    return reply["result"]


@dataclass
class NodeSpec:
    """One node of a network: its ports, data directory and role."""

    index: int
    rpc_port: int
    p2p_port: int
    data_dir: str
    peers: list[int]
    mine: bool = True
    validators: str = ""
    duty: float = 0.5
    byzantine: str = ""
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    def command(self, config: Path) -> list[str]:
        cmd = [sys.executable, "-m", "layerlab.cli", "node", "--quiet", "--config", str(config),
               "--data-dir", self.data_dir, "--port", str(self.rpc_port), "--p2p-port", str(self.p2p_port),
               "--peers", ",".join(f"127.0.0.1:{p}" for p in self.peers), "--duty", str(self.duty),
               "--coinbase", "0x" + (self.index + 1).to_bytes(20, "big").hex()]
        if self.mine:
            cmd.append("--mine")
        if self.validators:
            cmd += ["--validators", self.validators]
        if self.byzantine:
            cmd += ["--byzantine", self.byzantine]
        return cmd

    def start(self, config: Path) -> subprocess.Popen[bytes]:
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        log = open(Path(self.data_dir) / "node.log", "ab")  # noqa: SIM115 (kept by the child)
        proc = subprocess.Popen(self.command(config), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.pid = proc.pid
        return proc

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, LayerlabError):
                rpc(self.url, "eth_chainId", timeout=2)
                return
            time.sleep(0.1)
        raise LayerlabError(f"node {self.index} did not answer on {self.url} within {timeout} s")


def chain_config(consensus: str, *, preset: str = "minimal", validators: int = 4,
                 merge_block: int | None = None) -> dict[str, Any]:
    if consensus not in ("pow", "pos", "merge"):
        raise ConfigError(f"--consensus must be pow, pos or merge, got {consensus!r}")
    cons: dict[str, Any] = {"engine": consensus, "preset": preset, "validators": validators}
    if consensus == "merge":
        cons["mergeBlock"] = merge_block or 20
    return {"timestamp": int(time.time()), "consensus": cons}


def plan(directory: Path, nodes: int, consensus: str, validators: int = 4) -> list[NodeSpec]:
    rpc_ports = [free_port() for _ in range(nodes)]
    p2p_ports = [free_port() for _ in range(nodes)]
    specs = []
    for i in range(nodes):
        owned = ",".join(str(v) for v in range(validators) if v % nodes == i) \
            if consensus in ("pos", "merge") else ""
        specs.append(NodeSpec(i, rpc_ports[i], p2p_ports[i], str(directory / f"node{i}"),
                              [p for j, p in enumerate(p2p_ports) if j != i],
                              mine=consensus in ("pow", "merge"), validators=owned,
                              duty=min(1.0, 1.0 / nodes)))
    return specs


def up(directory: Path, nodes: int, consensus: str, *, preset: str = "minimal",
       validators: int = 4, merge_block: int | None = None) -> list[NodeSpec]:
    """Start a network and wait until every node answers RPC."""
    if not 1 <= nodes <= 32:
        raise ConfigError(f"--nodes must be 1..32, got {nodes}")
    state = directory / "net.json"
    if state.exists():
        raise ConfigError(f"{state} exists: run `layerlab net down --dir {directory}` first")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "chain.json"
    config.write_text(json.dumps(chain_config(consensus, preset=preset, validators=validators,
                                              merge_block=merge_block)))
    specs = plan(directory, nodes, consensus, validators)
    for spec in specs:
        spec.start(config)
    state.write_text(json.dumps({"consensus": consensus, "config": str(config),
                                 "nodes": [asdict(s) for s in specs]}, indent=1))
    for spec in specs:
        spec.wait_ready()
    return specs


def load(directory: Path) -> tuple[dict[str, Any], list[NodeSpec]]:
    state = directory / "net.json"
    if not state.exists():
        raise ConfigError(f"no network recorded in {directory} (run `layerlab net up`)")
    data = json.loads(state.read_text())
    return data, [NodeSpec(**n) for n in data["nodes"]]


def status(directory: Path) -> list[dict[str, Any]]:
    _, specs = load(directory)
    out = []
    for spec in specs:
        try:
            st = rpc(spec.url, "layerlab_status", timeout=5)
        except (OSError, LayerlabError) as exc:
            st = {"error": str(exc)}
        out.append({"index": spec.index, "rpc": spec.url, "p2p": spec.p2p_port, **st})
    return out


def down(directory: Path, timeout: float = 15) -> int:
    """Stop every node of the network; returns how many were running."""
    _, specs = load(directory)
    running = 0
    for spec in specs:
        if spec.pid is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(spec.pid, signal.SIGTERM)
            running += 1
    deadline = time.monotonic() + timeout
    for spec in specs:
        # is_alive reaps an exited child: when ``up`` ran in this process the nodes are our
        # children, and a bare kill(pid, 0) sees their zombies as alive until the timeout
        while spec.pid is not None and time.monotonic() < deadline:
            if not is_alive(spec.pid):
                break
            time.sleep(0.1)
        else:
            if spec.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(spec.pid, signal.SIGKILL)
    (directory / "net.json").unlink()
    return running
