"""``layerlab zk up|down``: an L1 (or a given one), the batch circuit and its verifier,
``ZkRollup``, and the operator as a separate process, described by ``zk.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from web3 import Web3

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.zk.circuit import build_circuit
from layerlab.l2.zk.onchain import DEFAULT_ESCAPE_BLOCKS, ZkRollupContract, deploy_zk_rollup
from layerlab.l2.zk.state import BatchShape
from layerlab.orchestration import (
    ServiceError,
    read_description,
    spawn,
    start_devnet,
    stop_described,
    wait_ready_file,
    write_json_atomically,
)

__all__ = ["DEFAULT_DIR", "DEFAULT_SHAPE", "OPERATOR_ACCOUNT", "contract", "down", "load",
           "spawn_operator", "up"]

DEFAULT_DIR: Final = Path(".layerlab/zk")
DEFAULT_SHAPE: Final = BatchShape(n_transfers=2, n_deposits=1, n_withdrawals=1, depth=8)
"""The tests' circuit: ~1 min to compile once (cached), about a second to prove."""
OPERATOR_ACCOUNT: Final = 1
READY_TIMEOUT_SECONDS: Final = 600.0
"""The operator compiles the circuit when the cache does not hold it."""


def up(directory: Path = DEFAULT_DIR, l1_url: str | None = None,
       shape: BatchShape = DEFAULT_SHAPE, batch_interval: float = 1.0,
       escape_blocks: int = DEFAULT_ESCAPE_BLOCKS) -> dict[str, Any]:
    """Start everything and return the description (also written to zk.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "zk.json").exists():
        raise ServiceError(f"{directory} already holds a ZK rollup; run `layerlab zk down` first")
    desc: dict[str, Any] = {"pids": [], "shape": [shape.n_transfers, shape.n_deposits,
                                                  shape.n_withdrawals, shape.depth]}
    if l1_url is None:
        pid, l1_url = start_devnet(directory)
        desc["pids"].append(pid)
        _write(directory, desc)  # so `down` stops it whatever fails next
    desc["l1_url"] = l1_url
    build = build_circuit(shape)
    keys = derive_dev_accounts()
    w3 = Web3(Web3.HTTPProvider(l1_url, request_kwargs={"timeout": 120}))
    rollup = deploy_zk_rollup(w3, keys[0].address, keys[OPERATOR_ACCOUNT].address, build,
                              escape_blocks=escape_blocks)
    desc["contract"] = rollup.l1.address
    desc["deploy_block"] = int(w3.eth.block_number)
    desc["constraints"] = build.constraints
    desc["key_label"] = build.key_label
    _write(directory, desc)
    pid, port = spawn_operator(directory, l1_url, rollup.l1.address, desc["deploy_block"], shape,
                               batch_interval=batch_interval)
    desc["pids"].append(pid)
    desc["operator_pid"] = pid
    desc["operator_url"] = f"http://127.0.0.1:{port}"
    _write(directory, desc)
    return desc


def spawn_operator(directory: Path, l1_url: str, contract_address: str, start_block: int,
                   shape: BatchShape, *, port: int = 0,
                   batch_interval: float = 1.0) -> tuple[int, int]:
    ready = directory / "operator.ready"
    ready.unlink(missing_ok=True)
    log_path = directory / "operator.log"
    proc = spawn(["zk", "operator", "--dir", str(directory), "--l1-url", l1_url, "--contract",
                  contract_address, "--start-block", str(start_block), "--port", str(port),
                  "--batch-interval", str(batch_interval), "--shape",
                  ",".join(str(x) for x in (shape.n_transfers, shape.n_deposits,
                                            shape.n_withdrawals, shape.depth))], log_path)
    info = wait_ready_file(ready, proc, timeout=READY_TIMEOUT_SECONDS, log_path=log_path)
    return proc.pid, int(info["port"])


def load(directory: Path = DEFAULT_DIR) -> dict[str, Any]:
    return read_description(directory / "zk.json", "ZK rollup", "layerlab zk up")


def contract(desc: dict[str, Any]) -> ZkRollupContract:
    """The deployed ``ZkRollup`` of a description."""
    from layerlab.contracts import load_artifact

    w3 = Web3(Web3.HTTPProvider(desc["l1_url"], request_kwargs={"timeout": 120}))
    return ZkRollupContract(w3, w3.eth.contract(address=Web3.to_checksum_address(desc["contract"]),
                                                abi=list(load_artifact("ZkRollup").abi)))


def down(directory: Path = DEFAULT_DIR) -> int:
    """Stop every process; returns how many were running."""
    return stop_described(load(directory), directory / "zk.json")


def _write(directory: Path, desc: dict[str, Any]) -> None:
    write_json_atomically(directory / "zk.json", desc)
