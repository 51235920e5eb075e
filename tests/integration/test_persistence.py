"""A node on LevelDB keeps its chain, state and pool across restarts and crashes.

Pre-state: a node on ``--data-dir`` with a deployed token and some transfers. Input: a
clean stop (SIGINT, as Ctrl-C), a crash (SIGKILL) with transactions waiting in the pool,
or ``layerlab chain export`` followed by ``chain import`` into an empty directory.
Expected post-state: the same head hash, balances, code, storage and receipts; pooled
transactions still pending and then mined.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from tests.nodeproc import ROOT, NodeProcess, call

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
WAIT = 30
GWEI = 10**9


def web3_of(node: NodeProcess) -> Web3:
    return Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": WAIT}))


def build_history(node: NodeProcess) -> dict[str, Any]:
    """Deploy a token and a Reverter, make transfers (one failing); return what to compare."""
    w3 = web3_of(node)
    token = deploy(w3, load_artifact("LabToken"), "P", "P", 10**21, sender=DEV[0].address)
    reverter = deploy(w3, load_artifact("Reverter"), sender=DEV[1].address)
    hashes = [token.functions.transfer(DEV[i].address, 1000 * i).transact(
        {"from": DEV[0].address}) for i in (2, 3)]
    hashes.append(reverter.functions.set(31337).transact({"from": DEV[1].address}))
    hashes.append(w3.eth.send_transaction({"from": DEV[4].address, "to": DEV[5].address,
                                           "value": 10**18}))
    hashes.append(reverter.functions.fail().transact({"from": DEV[1].address, "gas": 60_000}))
    for h in hashes:
        w3.eth.wait_for_transaction_receipt(h, timeout=WAIT)
    return {"token": token.address, "reverter": reverter.address,
            "txs": [h.to_0x_hex() for h in hashes]}


def observe(url: str, history: dict[str, Any]) -> dict[str, Any]:
    """Everything a client can read about the chain built by :func:`build_history`."""
    head_block = call(url, "eth_getBlockByNumber", "latest", True)
    number = int(head_block["number"], 16)
    token, reverter = history["token"], history["reverter"]
    balance_of = "0x70a08231" + "00" * 12
    return {
        "head": head_block,
        "blocks": [call(url, "eth_getBlockByNumber", hex(n), False) for n in range(number + 1)],
        "balances": [call(url, "eth_getBalance", a.address, "latest") for a in DEV[:6]],
        "nonces": [call(url, "eth_getTransactionCount", a.address, "latest") for a in DEV[:6]],
        "code": [call(url, "eth_getCode", token, "latest"),
                 call(url, "eth_getCode", reverter, "latest")],
        "storage": call(url, "eth_getStorageAt", reverter, "0x0", "latest"),
        "token_balances": [call(url, "eth_call", {"to": token,
                                                  "data": balance_of + a.address[2:].lower()})
                           for a in DEV[:4]],
        "receipts": [call(url, "eth_getTransactionReceipt", h) for h in history["txs"]],
        "txs": [call(url, "eth_getTransactionByHash", h) for h in history["txs"]],
        "logs": call(url, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"}),
        "old_balance": call(url, "eth_getBalance", DEV[5].address, "0x1"),
    }


def test_restart_serves_the_same_chain_and_state(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    first = NodeProcess(data_dir=data_dir).start()
    try:
        history = build_history(first)
        before = observe(first.url, history)
    finally:
        code = first.stop()
    assert code == 0, first.log()  # Ctrl-C is a clean shutdown
    assert "node stopped; database closed" in first.log()

    with NodeProcess(data_dir=data_dir) as second:
        after = observe(second.url, history)
        assert after == before
        assert [r["status"] for r in after["receipts"]] == ["0x1"] * 4 + ["0x0"]
        assert after["storage"] == "0x" + (31337).to_bytes(32, "big").hex()
        assert len(after["logs"]) == 1 + 2 + 1  # the mint, two transfers, one Set
        # and the chain goes on from the stored head
        tx_hash = call(second.url, "eth_sendTransaction",
                       {"from": DEV[0].address, "to": DEV[1].address, "value": "0x1"})
        receipt = call(second.url, "eth_getTransactionReceipt", tx_hash)
        assert int(receipt["blockNumber"], 16) == int(before["head"]["number"], 16) + 1
        new_head = call(second.url, "eth_getBlockByNumber", "latest", False)
        assert new_head["parentHash"] == before["head"]["hash"]


def test_second_node_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "locked"
    with NodeProcess(data_dir=data_dir):
        intruder = NodeProcess(data_dir=data_dir)
        with pytest.raises(RuntimeError, match="exited"):
            intruder.start(timeout=30)
        assert "data dir" in intruder.log() or "lock" in intruder.log().lower()


def signed_transfers(sender_index: int, count: int, start_nonce: int = 0) -> list[bytes]:
    key = DEV[sender_index].private_key
    return [bytes(Account.sign_transaction({
        "chainId": 31337, "nonce": start_nonce + i, "to": DEV[9].address, "value": 1 + i,
        "gas": 21_000, "maxFeePerGas": 20 * GWEI, "maxPriorityFeePerGas": GWEI,
    }, key).raw_transaction) for i in range(count)]


@pytest.mark.parametrize("mode", [["--no-mining"], ["--block-time", "3600"]],
                         ids=["manual", "interval"])
def test_pool_survives_sigkill_and_is_mined_after_restart(tmp_path: Path, mode: list[str]
                                                          ) -> None:
    data_dir = tmp_path / "node"
    node = NodeProcess(*mode, data_dir=data_dir).start()
    try:
        call(node.url, "evm_mine")  # one block on disk before the crash
        head_before = call(node.url, "eth_getBlockByNumber", "latest", False)
        raws = signed_transfers(2, 3) + signed_transfers(3, 2)
        hashes = [call(node.url, "eth_sendRawTransaction", "0x" + r.hex()) for r in raws]
        # one from an impersonated account, and a gapped one (queued, not pending)
        call(node.url, "anvil_impersonateAccount", DEV[5].address)
        hashes.append(call(node.url, "eth_sendTransaction",
                           {"from": DEV[5].address, "to": DEV[9].address, "value": "0x7"}))
        gapped = call(node.url, "eth_sendRawTransaction",
                      "0x" + signed_transfers(4, 1, start_nonce=1)[0].hex())
        assert call(node.url, "txpool_status") == {"pending": "0x6", "queued": "0x1"}
    finally:
        node.kill()
    assert node.proc is not None and node.proc.returncode == -9

    restarted_mode = mode if mode == ["--no-mining"] else ["--block-time", "0.3"]
    with NodeProcess(*restarted_mode, data_dir=data_dir) as again:
        url = again.url
        if mode == ["--no-mining"]:
            assert call(url, "eth_getBlockByNumber", "latest", False) == head_before
            assert call(url, "txpool_status") == {"pending": "0x6", "queued": "0x1"}
            for h in [*hashes, gapped]:
                tx = call(url, "eth_getTransactionByHash", h)
                assert tx is not None and tx["blockNumber"] is None
            assert call(url, "eth_getTransactionCount", DEV[2].address, "pending") == "0x3"
            assert call(url, "eth_getTransactionCount", DEV[2].address, "latest") == "0x0"
            call(url, "evm_mine")
        receipts = [wait_receipt(url, h) for h in hashes]
        assert [r["status"] for r in receipts] == ["0x1"] * 6
        assert Web3.to_checksum_address(receipts[-1]["from"]) == DEV[5].address
        assert int(receipts[0]["blockNumber"], 16) == int(head_before["number"], 16) + 1
        assert call(url, "eth_getTransactionCount", DEV[2].address, "latest") == "0x3"
        assert call(url, "eth_getTransactionCount", DEV[3].address, "latest") == "0x2"
        # the gapped one is still queued, waiting for nonce 0 of its sender
        assert call(url, "eth_getTransactionReceipt", gapped) is None
        assert call(url, "txpool_status") == {"pending": "0x0", "queued": "0x1"}
        filler = call(url, "eth_sendRawTransaction",
                      "0x" + signed_transfers(4, 1, start_nonce=0)[0].hex())
        if mode == ["--no-mining"]:
            call(url, "evm_mine")
        assert wait_receipt(url, filler)["status"] == "0x1"
        assert wait_receipt(url, gapped)["status"] == "0x1"


def wait_receipt(url: str, tx_hash: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        receipt = call(url, "eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            assert isinstance(receipt, dict)
            return receipt
        time.sleep(0.05)
    raise AssertionError(f"{tx_hash} not mined within {WAIT} s")


def test_mined_blocks_survive_sigkill(tmp_path: Path) -> None:
    """A block is on disk when its receipt is served: a crash right after loses nothing."""
    data_dir = tmp_path / "node"
    node = NodeProcess(data_dir=data_dir).start()
    try:
        hashes = [call(node.url, "eth_sendRawTransaction", "0x" + r.hex())
                  for r in signed_transfers(6, 4)]
        head = call(node.url, "eth_getBlockByNumber", "latest", False)
    finally:
        node.kill()
    with NodeProcess(data_dir=data_dir) as again:
        assert call(again.url, "eth_getBlockByNumber", "latest", False) == head
        for h in hashes:
            assert call(again.url, "eth_getTransactionReceipt", h)["status"] == "0x1"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layerlab.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_chain_export_import_reproduces_head_and_state(tmp_path: Path) -> None:
    source, target, dump = tmp_path / "source", tmp_path / "target", tmp_path / "chain.rlp"
    node = NodeProcess(data_dir=source).start()
    try:
        history = build_history(node)
        call(node.url, "evm_increaseTime", 100)
        call(node.url, "evm_mine")  # an empty block too
        before = observe(node.url, history)
    finally:
        assert node.stop() == 0

    exported = cli("chain", "export", str(dump), "--data-dir", str(source))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    blocks = int(before["head"]["number"], 16) + 1
    assert f"exported {blocks} blocks" in exported.stdout
    assert dump.stat().st_size > 0

    imported = cli("chain", "import", str(dump), "--data-dir", str(target))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert f"imported {blocks - 1} blocks (1 already present)" in imported.stdout
    # importing again adds nothing
    again = cli("chain", "import", str(dump), "--data-dir", str(target))
    assert again.returncode == 0 and f"imported 0 blocks ({blocks} already present)" in again.stdout

    with NodeProcess(data_dir=target) as copy:
        after = observe(copy.url, history)
    assert after["head"]["hash"] == before["head"]["hash"]
    assert after["head"]["stateRoot"] == before["head"]["stateRoot"]
    assert after == before


def test_import_refuses_a_file_from_another_chain(tmp_path: Path) -> None:
    a, b, dump = tmp_path / "a", tmp_path / "b", tmp_path / "a.rlp"
    with NodeProcess(data_dir=a) as node:
        call(node.url, "evm_mine")
    time.sleep(1.1)  # a genesis in another second: another genesis hash, another chain
    with NodeProcess(data_dir=b) as node:
        call(node.url, "evm_mine")
        b_head = call(node.url, "eth_getBlockByNumber", "latest", False)
    assert cli("chain", "export", str(dump), "--data-dir", str(a)).returncode == 0
    # a truncated file and a foreign file are both refused; b is left as it was
    truncated = tmp_path / "cut.rlp"
    truncated.write_bytes(dump.read_bytes()[:-5])
    for bad in (truncated, dump):
        result = cli("chain", "import", str(bad), "--data-dir", str(b))
        assert result.returncode != 0, result.stdout
        assert "error" in (result.stdout + result.stderr).lower()
    with NodeProcess(data_dir=b) as node:
        assert call(node.url, "eth_getBlockByNumber", "latest", False) == b_head
