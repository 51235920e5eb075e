"""``layerlab net up|status|down``: a multi-node L1 network of OS processes on 127.0.0.1.

``up`` writes one chain config (a shared genesis timestamp and the consensus engine),
starts N ``layerlab node`` processes, each with its own data directory, RPC port and p2p
port, fully meshed as static peers, and records them in ``<dir>/net.json``. ``status``
asks every node for ``layerlab_status``; ``down`` stops them (SIGTERM, then SIGKILL).

It is the L1's counterpart of the L2s' ``network.py`` modules (``layerlab channels up``,
``plasma up``, ``rollup up``, ``zk up``), and like them it spawns, waits for and stops its
processes through :mod:`layerlab.orchestration`.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from layerlab.errors import ConfigError, LayerlabError
from layerlab.orchestration import free_port, rpc_call, spawn, stop, wait_rpc, write_json_atomically

__all__ = ["LayerlabError", "NodeSpec", "chain_config", "down", "load", "plan", "rpc", "status",
           "up"]

rpc = rpc_call  # a node's JSON-RPC: errors raise orchestration.RpcError (a LayerlabError)


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
    custody_groups: int = 4
    withhold_columns: int = 0
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def log_path(self) -> Path:
        return Path(self.data_dir) / "node.log"

    def command(self, config: Path) -> list[str]:
        """The ``layerlab`` arguments that run this node."""
        cmd = ["node", "--quiet", "--config", str(config),
               "--data-dir", self.data_dir, "--port", str(self.rpc_port), "--p2p-port", str(self.p2p_port),
               "--peers", ",".join(f"127.0.0.1:{p}" for p in self.peers), "--duty", str(self.duty),
               "--coinbase", "0x" + (self.index + 1).to_bytes(20, "big").hex()]
        if self.mine:
            cmd.append("--mine")
        if self.validators:
            cmd += ["--validators", self.validators]
        if self.byzantine:
            cmd += ["--byzantine", self.byzantine]
        if self.custody_groups != 4:
            cmd += ["--custody-groups", str(self.custody_groups)]
        if self.withhold_columns:
            cmd += ["--withhold-columns", str(self.withhold_columns)]
        return cmd

    def start(self, config: Path) -> subprocess.Popen[bytes]:
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        proc = spawn(self.command(config), self.log_path)
        self.pid = proc.pid
        return proc

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the node answers RPC; a node that died first raises with its log's end."""
        wait_rpc(self.url, timeout=timeout, log_path=self.log_path)


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
    write_json_atomically(state, {"consensus": consensus, "config": str(config),
                                  "nodes": [asdict(s) for s in specs]})
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
    """Stop every node of the network (SIGTERM, then SIGKILL after ``timeout``); returns
    how many were running."""
    _, specs = load(directory)
    running = stop([spec.pid for spec in specs if spec.pid is not None], timeout)
    (directory / "net.json").unlink()
    return running
