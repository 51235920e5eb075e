"""``layerlab rollup up|down``: an L1 (or a given one), the rollup contracts, and the
sequencer and a verifier as separate processes, described by ``rollup.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from web3 import Web3

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.rollup.machine import RollupError
from layerlab.l2.rollup.optimistic import MAINNET_LIKE, MINIMAL, deploy_rollup
from layerlab.orchestration import (
    read_description,
    spawn,
    start_devnet,
    stop_described,
    wait_ready_file,
    write_json_atomically,
)

__all__ = ["DEFAULT_DIR", "down", "load", "spawn_sequencer", "spawn_verifier", "up"]

DEFAULT_DIR: Final = Path(".layerlab/rollup")
PRESETS: Final = {"minimal": MINIMAL, "mainnet-like": MAINNET_LIKE}
SEQUENCER_ACCOUNT: Final = 1
VERIFIER_ACCOUNT: Final = 4


def up(directory: Path = DEFAULT_DIR, l1_url: str | None = None, preset: str = "minimal",
       batch_interval: float = 1.0, fraud_from_batch: int | None = None,
       verifier: bool = True) -> dict[str, Any]:
    """Start everything and return the description (also written to rollup.json)."""
    if preset not in PRESETS:
        raise RollupError("config", f"--preset must be one of {sorted(PRESETS)}, got {preset!r}")
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "rollup.json").exists():
        raise RollupError("config", f"{directory} already holds a rollup; run "
                                    f"`layerlab rollup down` first")
    desc: dict[str, Any] = {"pids": [], "preset": preset}
    if l1_url is None:
        pid, l1_url = start_devnet(directory)
        desc["pids"].append(pid)
        _write(directory, desc)  # so `down` stops it whatever fails next
    desc["l1_url"] = l1_url
    keys = derive_dev_accounts()
    w3 = Web3(Web3.HTTPProvider(l1_url, request_kwargs={"timeout": 60}))
    config = PRESETS[preset]
    rollup = deploy_rollup(w3, keys[0].address, keys[SEQUENCER_ACCOUNT].address, config)
    rollup.bond(keys[SEQUENCER_ACCOUNT].private_key, config.proposer_bond)
    desc["contract"] = rollup.l1.address
    desc["deploy_block"] = int(w3.eth.block_number)
    _write(directory, desc)
    pid, port = spawn_sequencer(directory, l1_url, rollup.l1.address, desc["deploy_block"],
                                batch_interval=batch_interval, fraud_from_batch=fraud_from_batch)
    desc["pids"].append(pid)
    desc["sequencer_url"] = f"http://127.0.0.1:{port}"
    _write(directory, desc)
    if verifier:
        pid, port = spawn_verifier(directory, l1_url, rollup.l1.address, desc["deploy_block"])
        desc["pids"].append(pid)
        desc["verifier_url"] = f"http://127.0.0.1:{port}"
        _write(directory, desc)
    return desc


def spawn_sequencer(directory: Path, l1_url: str, contract: str, start_block: int, *,
                    port: int = 0, batch_interval: float = 1.0,
                    fraud_from_batch: int | None = None) -> tuple[int, int]:
    ready = directory / "sequencer.ready"
    ready.unlink(missing_ok=True)
    args = ["rollup", "sequencer", "--dir", str(directory), "--l1-url", l1_url, "--contract",
            contract, "--start-block", str(start_block), "--port", str(port),
            "--batch-interval", str(batch_interval)]
    if fraud_from_batch is not None:
        args += ["--fraud-from-batch", str(fraud_from_batch)]
    log_path = directory / "sequencer.log"
    proc = spawn(args, log_path)
    return proc.pid, int(wait_ready_file(ready, proc, log_path=log_path)["port"])


def spawn_verifier(directory: Path, l1_url: str, contract: str, start_block: int,
                   port: int = 0) -> tuple[int, int]:
    ready = directory / "verifier.ready"
    ready.unlink(missing_ok=True)
    log_path = directory / "verifier.log"
    proc = spawn(["rollup", "verifier", "--dir", str(directory), "--l1-url", l1_url,
                  "--contract", contract, "--start-block", str(start_block),
                  "--port", str(port)], log_path)
    return proc.pid, int(wait_ready_file(ready, proc, log_path=log_path)["port"])


def load(directory: Path = DEFAULT_DIR) -> dict[str, Any]:
    return read_description(directory / "rollup.json", "rollup", "layerlab rollup up")


def down(directory: Path = DEFAULT_DIR) -> int:
    """Stop every process; returns how many were running."""
    return stop_described(load(directory), directory / "rollup.json")


def _write(directory: Path, desc: dict[str, Any]) -> None:
    write_json_atomically(directory / "rollup.json", desc)
