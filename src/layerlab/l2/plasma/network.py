"""``layerlab plasma up|down``: an L1 (or a given one), the PlasmaChain contract, and the
operator as a separate process, described by ``plasma.json`` in the network directory.

Users act through a :class:`~layerlab.l2.plasma.watcher.Watcher` whose data directory is
``<dir>/user<i>``, so each CLI call resumes with the blocks and proofs the last one kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from web3 import Web3

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.plasma.onchain import MAINNET_LIKE, MINIMAL, PlasmaContract, deploy_plasma
from layerlab.l2.plasma.types import PlasmaError
from layerlab.l2.plasma.watcher import Watcher
from layerlab.orchestration import (
    read_description,
    spawn,
    start_devnet,
    stop_described,
    wait_ready_file,
    write_json_atomically,
)

__all__ = ["DEFAULT_DIR", "down", "load", "spawn_operator", "up", "user_watcher"]

DEFAULT_DIR: Final = Path(".layerlab/plasma")
PRESETS: Final = {"minimal": MINIMAL, "mainnet-like": MAINNET_LIKE}
OPERATOR_ACCOUNT: Final = 1
"""Dev account 0 deploys; 1 is the operator; users are 2, 3, ..."""


def up(directory: Path = DEFAULT_DIR, l1_url: str | None = None, preset: str = "minimal",
       accounts: int = 8, block_interval: float = 1.0, adversarial: bool = False) -> dict[str, Any]:
    """Start everything and return the description (also written to plasma.json)."""
    if preset not in PRESETS:
        raise PlasmaError("config", f"--preset must be one of {sorted(PRESETS)}, got {preset!r}")
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "plasma.json").exists():
        raise PlasmaError("config", f"{directory} already holds a Plasma chain; run "
                                    f"`layerlab plasma down` first")
    desc: dict[str, Any] = {"pids": [], "preset": preset}
    if l1_url is None:
        pid, l1_url = start_devnet(directory, accounts)
        desc["pids"].append(pid)
        _write(directory, desc)  # so `down` stops it whatever fails next
    desc["l1_url"] = l1_url
    keys = derive_dev_accounts(count=accounts)
    w3 = Web3(Web3.HTTPProvider(l1_url, request_kwargs={"timeout": 60}))
    contract = deploy_plasma(w3, keys[0].address, keys[OPERATOR_ACCOUNT].address,
                             PRESETS[preset])
    desc["contract"] = contract.address
    desc["deploy_block"] = int(w3.eth.block_number)
    _write(directory, desc)
    proc, port = spawn_operator(directory, l1_url, contract.address,
                                block_interval=block_interval, adversarial=adversarial,
                                start_block=desc["deploy_block"])
    desc["pids"].append(proc)
    desc["operator_url"] = f"http://127.0.0.1:{port}"
    desc["block_interval"] = block_interval
    desc["adversarial"] = adversarial
    _write(directory, desc)
    return desc


def spawn_operator(directory: Path, l1_url: str, contract: str, *, port: int = 0,
                   block_interval: float = 1.0, adversarial: bool = False,
                   start_block: int = 0) -> tuple[int, int]:
    """Start the operator process on ``directory/operator``; returns (pid, port)."""
    ready = directory / "operator.ready"
    ready.unlink(missing_ok=True)
    args = ["plasma", "operator", "--dir", str(directory), "--l1-url", l1_url,
            "--contract", contract, "--port", str(port), "--block-interval", str(block_interval),
            "--start-block", str(start_block)]
    if adversarial:
        args.append("--adversarial")
    log_path = directory / "operator.log"
    proc = spawn(args, log_path)
    info = wait_ready_file(ready, proc, log_path=log_path)
    return proc.pid, int(info["port"])


def load(directory: Path = DEFAULT_DIR) -> dict[str, Any]:
    return read_description(directory / "plasma.json", "Plasma chain", "layerlab plasma up")


def user_watcher(directory: Path, account: int) -> Watcher:
    """The watcher of dev account ``account``, resuming from ``<dir>/user<account>``."""
    desc = load(directory)
    key = derive_dev_accounts(count=account + 1)[account].private_key
    w3 = Web3(Web3.HTTPProvider(desc["l1_url"], request_kwargs={"timeout": 60}))
    contract = PlasmaContract.at(w3, desc["contract"])
    return Watcher(contract, desc["operator_url"], [key], directory / f"user{account}",
                   start_block=int(desc.get("deploy_block", 0)))


def down(directory: Path = DEFAULT_DIR) -> int:
    """Stop every process; returns how many were running."""
    return stop_described(load(directory), directory / "plasma.json")


def _write(directory: Path, desc: dict[str, Any]) -> None:
    write_json_atomically(directory / "plasma.json", desc)
