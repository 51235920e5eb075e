"""``layerlab node --config`` on geth genesis files: Sepolia's published genesis hash, and a
Frontier-to-BPO2 schedule compressed into 17 blocks, mined with web3.py transactions."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from tests.nodeproc import NodeProcess, call
from tests.unit.l1.chain.test_genesis import (
    DATA,
    FUNDED,
    PUBLISHED,
    RECIPIENT,
    T0,
    frontier_to_osaka_genesis,
)

pytestmark = pytest.mark.slow

CHAIN_ID = 4242
# the header fields geth adds at each fork (absent before it)
FORK_FIELDS = {"baseFeePerGas": 9, "withdrawalsRoot": 12, "blobGasUsed": 13, "excessBlobGas": 13,
               "parentBeaconBlockRoot": 13, "requestsHash": 14}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    path = tmp_path_factory.mktemp("geth") / "genesis.json"
    path.write_text(json.dumps(frontier_to_osaka_genesis(CHAIN_ID)))
    proc = NodeProcess("--config", str(path), "--no-mining").start()
    yield proc
    proc.stop()


def _tx(number: int) -> dict[str, Any]:
    tx: dict[str, Any] = {"nonce": number - 1, "to": RECIPIENT, "value": 1000 + number, "gas": 21_000}
    if number >= 3:
        tx["chainId"] = CHAIN_ID
    if number >= 9:
        tx.update(maxFeePerGas=10**11, maxPriorityFeePerGas=10**9, type=2)
    elif number >= 8:
        tx.update(gasPrice=10**10, accessList=[], type=1)
    else:
        tx["gasPrice"] = 10**10
    return tx


def test_sepolia_genesis_file_starts_a_node_with_its_published_hash(tmp_path: Path) -> None:
    path = tmp_path / "sepolia.json"
    path.write_bytes(gzip.decompress((DATA / "sepolia.json.gz").read_bytes()))
    proc = NodeProcess("--config", str(path), "--no-mining").start()
    try:
        assert call(proc.url, "eth_getBlockByNumber", "0x0", False)["hash"] == PUBLISHED["sepolia"]
        assert int(call(proc.url, "eth_chainId"), 16) == 11155111
        assert call(proc.url, "net_version") == "11155111"
    finally:
        proc.stop()


def test_a_chain_crosses_every_fork_from_frontier_to_bpo2(node: NodeProcess) -> None:
    w3 = Web3(Web3.HTTPProvider(node.url))
    assert w3.eth.chain_id == CHAIN_ID
    start = w3.eth.get_balance(FUNDED.address)
    assert start == 10**24
    fees = 0
    for number in range(1, 18):
        tx = _tx(number)
        tx_hash = w3.eth.send_raw_transaction(Account.sign_transaction(tx, FUNDED.key).raw_transaction)
        call(node.url, "evm_mine", {"timestamp": T0 + 10 * number})
        block = call(node.url, "eth_getBlockByNumber", hex(number), False)
        assert block["transactions"] == ["0x" + bytes(tx_hash).hex()]
        assert int(block["timestamp"], 16) == T0 + 10 * number
        for field, fork_block in FORK_FIELDS.items():
            assert (field in block) == (number >= fork_block), (number, field)
        assert (int(block["difficulty"], 16) == 0) == (number >= 11)  # Paris at mergeNetsplitBlock
        if number >= 12:
            assert block["withdrawals"] == []
        receipt = w3.eth.get_transaction_receipt(tx_hash)
        assert receipt["gasUsed"] == 21_000
        if number >= 4:  # EIP-658 status from Byzantium; before it the post-transaction root
            assert receipt["status"] == 1 and "root" not in receipt
        else:
            assert "status" not in receipt
            assert len(Web3.to_bytes(hexstr=receipt["root"])) == 32
        assert receipt["type"] == tx.get("type", 0)
        fees += receipt["gasUsed"] * receipt["effectiveGasPrice"]
        if number >= 9:
            base_fee = int(block["baseFeePerGas"], 16)
            assert receipt["effectiveGasPrice"] == min(10**11, base_fee + 10**9)
        else:
            assert receipt["effectiveGasPrice"] == 10**10
    assert w3.eth.get_balance(RECIPIENT) == sum(1000 + n for n in range(1, 18))
    assert w3.eth.get_balance(FUNDED.address) == start - sum(1000 + n for n in range(1, 18)) - fees
    assert w3.eth.get_transaction_count(FUNDED.address) == 17
    # the genesis's contract code and storage are served
    contract = Web3.to_checksum_address("0x" + "cc" * 20)
    assert w3.eth.get_code(contract).hex().removeprefix("0x") == "60005460010160005500"
    assert w3.eth.get_storage_at(contract, 0) == (5).to_bytes(32, "big")


def _cli(*args: str) -> str:
    import subprocess
    import sys

    from tests.nodeproc import ROOT

    done = subprocess.run([sys.executable, "-m", "layerlab.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_export_then_import_across_forks_serves_the_same_chain(tmp_path: Path) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps(frontier_to_osaka_genesis(CHAIN_ID)))
    source = NodeProcess("--config", str(genesis), "--no-mining", data_dir=tmp_path / "a").start()
    try:
        w3 = Web3(Web3.HTTPProvider(source.url))
        hashes = []
        for number in range(1, 18):
            raw = Account.sign_transaction(_tx(number), FUNDED.key).raw_transaction
            hashes.append(w3.eth.send_raw_transaction(raw))
            call(source.url, "evm_mine", {"timestamp": T0 + 10 * number})
        blocks = [call(source.url, "eth_getBlockByNumber", hex(n), True) for n in range(18)]
        receipts = [call(source.url, "eth_getTransactionReceipt", "0x" + bytes(h).hex()) for h in hashes]
        proof = call(source.url, "eth_getProof", RECIPIENT, [], "latest")
    finally:
        source.stop()
    chain_file = tmp_path / "chain.rlp"
    assert "exported 18 blocks" in _cli("chain", "export", str(chain_file), "--data-dir",
                                        str(tmp_path / "a"), "--config", str(genesis))
    out = _cli("chain", "import", str(chain_file), "--data-dir", str(tmp_path / "b"),
               "--config", str(genesis), "--fake-pow")
    assert "imported 17 blocks (1 already present)" in out
    imported = NodeProcess("--config", str(genesis), "--no-mining", data_dir=tmp_path / "b").start()
    try:
        for n in range(18):
            assert call(imported.url, "eth_getBlockByNumber", hex(n), True) == blocks[n]
        for h, receipt in zip(hashes, receipts, strict=True):
            assert call(imported.url, "eth_getTransactionReceipt", "0x" + bytes(h).hex()) == receipt
        w3 = Web3(Web3.HTTPProvider(imported.url))
        assert w3.eth.get_balance(RECIPIENT) == sum(1000 + n for n in range(1, 18))
        assert call(imported.url, "eth_getProof", RECIPIENT, [], "latest") == proof
    finally:
        imported.stop()
