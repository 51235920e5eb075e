"""``layerlab plasma ...`` as a user types it, and the same chain on Hardhat's node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from layerlab.bench.hardhat import HardhatNode, HardhatNodeConfig, HardhatNodeError
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.plasma.network import spawn_operator
from layerlab.l2.plasma.onchain import MINIMAL, deploy_plasma
from layerlab.l2.plasma.types import ETH
from layerlab.l2.plasma.watcher import Watcher
from layerlab.orchestration import rpc_call, stop
from tests.nodeproc import rpc
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
ETHER = 10**18


def cli(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run([sys.executable, "-m", "layerlab.cli", "plasma", *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def wait_for(predicate, what: str, timeout: float = 30):  # type: ignore[no-untyped-def]
    return wait_until(predicate, timeout, what, interval=0.2)


def test_the_cli_from_deposit_to_withdrawal(tmp_path: Path) -> None:
    d = str(tmp_path / "plasma")
    out = cli("up", "--dir", d, "--block-interval", "0.5")
    assert "PlasmaChain at 0x" in out
    desc = json.loads((tmp_path / "plasma" / "plasma.json").read_text())
    try:
        assert "deposit block 1" in cli("deposit", "--dir", d, "--account", "2", "--amount", str(ETHER))
        wait_for(lambda: rpc_call(desc["operator_url"], "plasma_status")["utxos"] == 1, "the deposit")
        bob = DEV[3].address
        assert "sent 0x" in cli("send", "--dir", d, "--account", "2", "--to", bob,
                                "--amount", str(ETHER // 4))
        wait_for(lambda: rpc_call(desc["operator_url"], "plasma_status")["submitted"] >= 1000,
                 "the block")
        status = cli("status", "--dir", d, "--account", "3")
        assert f"balance {ETHER // 4} wei" in status and "ALARM" not in status
        assert "exit 1000000000000 of 1000000000000" in cli("exit", "--dir", d, "--account", "3")
        head = Web3(Web3.HTTPProvider(desc["l1_url"])).eth.get_block("latest")["timestamp"]
        rpc(desc["l1_url"], "evm_mine", [head + 2 * MINIMAL.min_exit_period + 1])
        assert "processed 1 exits" in cli("process", "--dir", d, "--account", "3")
        # the watcher command runs a bounded number of rounds and reports nothing wrong
        assert cli("watch", "--dir", d, "--account", "2", "--rounds", "2", "--interval", "0.1") == ""
    finally:
        assert "stopped 2 processes" in cli("down", "--dir", d)


def test_plasma_runs_on_hardhat_too(tmp_path: Path) -> None:
    """Plasma reaches its L1 only by JSON-RPC, so it deploys and exits on Hardhat's node."""
    hardhat = HardhatNode(HardhatNodeConfig(block_interval_seconds=1.0))
    try:
        hardhat.start()
    except HardhatNodeError as exc:
        pytest.skip(f"Hardhat node unavailable: {exc}")
    pid = None
    try:
        rpc(hardhat.url, "evm_setAutomine", [True])
        w3 = Web3(Web3.HTTPProvider(hardhat.url, request_kwargs={"timeout": 30}))
        contract = deploy_plasma(w3, DEV[0].address, DEV[1].address, MINIMAL)
        start = int(w3.eth.block_number)
        pid, port = spawn_operator(tmp_path, hardhat.url, contract.address, block_interval=3600)
        url = f"http://127.0.0.1:{port}"
        alice = Watcher(contract, url, [DEV[2].private_key], start_block=start)
        bob = Watcher(contract, url, [DEV[3].private_key], start_block=start)
        contract.deposit(DEV[2].private_key, ETHER)
        wait_for(lambda: rpc_call(url, "plasma_status")["utxos"] == 1, "the deposit")
        alice.poll()
        alice.pay(DEV[2].address_bytes, DEV[3].address_bytes, ETHER // 2)
        rpc_call(url, "plasma_sealBlock", [], timeout=60)
        assert bob.poll() == [] and bob.balance(DEV[3].address_bytes) == ETHER // 2
        (utxo,) = bob.chain.utxos_of(DEV[3].address_bytes)
        exit_id = bob.exit_output(utxo.position)
        rpc(hardhat.url, "evm_increaseTime", [2 * MINIMAL.min_exit_period + 1])
        rpc(hardhat.url, "evm_mine", [])
        receipt = contract.process_exits(DEV[0].private_key, ETH, 5)
        [final] = [e for e in contract.l1.receipt_events(receipt) if e.name == "ExitFinalized"]
        assert int(final.args["exitId"]) == exit_id and final.args["paid"]
        assert final.args["owner"] == DEV[3].address and int(final.args["amount"]) == ETHER // 2
    finally:
        if pid is not None:
            stop([pid])
        hardhat.stop()
