"""``layerlab net up --shards 2`` as a user runs it: two shard node processes and the
beacon coordinator, web3.py on each shard's port.

Honest network: each shard has its own chain id, transfers are mined on each, their
blocks are crosslinked and then finalized by the beacon (status shows both, with the
shard's own state roots), and a cross-shard transfer 0 -> 1 is credited once on shard 1
from the relayed finalized crosslink, its replay refused, value conserved across both
shards. Byzantine network: shard 0's committee signs a forged state root; the coordinator
re-executes the block, proves the fraud, the signers are slashed and the forged crosslink
never becomes final.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from layerlab.l1.chain.config import parse_config
from layerlab.l1.sharding import crossshard as xs
from layerlab.l1.sharding import network as shardnet
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent.parent
KEYS = [a.private_key for a in parse_config({}).dev_accounts]
ETHER = 10**18


def layerlab(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run([sys.executable, "-m", "layerlab.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def status(directory: Path) -> dict[str, Any]:
    """What ``net status --json`` prints (polled in-process: a CLI run costs a second)."""
    return shardnet.status(directory)


def addr(key: bytes) -> str:
    return str(Account.from_key(key).address)


@dataclass
class Honest:
    directory: Path
    w3s: list[Web3]
    mined: list[int]
    """The block of the plain transfer on each shard."""
    receipt: xs.CrossReceipt
    start: list[int]
    """Each shard's head before the cross-shard transfer."""


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Honest]:
    """The network up, a plain transfer mined on each shard and a cross-shard transfer
    0 -> 1 sent at once, so that one wait for finality serves every test."""
    directory = tmp_path_factory.mktemp("shards") / "net"
    out = layerlab("net", "up", "--shards", "2", "--dir", str(directory))
    try:
        assert out.count("rpc http://127.0.0.1:") == 2 and "beacon coordinator" in out
        urls = [r["rpc"] for r in shardnet.status(directory)["shards"]]
        w3s = [Web3(Web3.HTTPProvider(u, request_kwargs={"timeout": 30})) for u in urls]
        hashes = []
        payees = [Web3.to_checksum_address("0x" + f"{0xC0 + k:02x}" * 20) for k in range(2)]
        for k, w3 in enumerate(w3s):
            tx = {"to": payees[k], "value": 5 * ETHER + k, "gas": 21_000, "chainId": w3.eth.chain_id,
                  "nonce": w3.eth.get_transaction_count(addr(KEYS[5])),
                  "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}
            hashes.append(w3.eth.send_raw_transaction(Account.sign_transaction(tx, KEYS[5]).raw_transaction))
        start = [int(w3.eth.block_number) for w3 in w3s]
        receipt = xs.send_cross(w3s[0], KEYS[6], 1, addr(KEYS[8]), 3 * ETHER)
        mined = []
        for k, (w3, tx_hash) in enumerate(zip(w3s, hashes, strict=True)):
            r = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
            assert r["status"] == 1
            assert w3.eth.get_balance(payees[k]) == 5 * ETHER + k
            mined.append(int(r["blockNumber"]))
        yield Honest(directory, w3s, mined, receipt, start)
    finally:
        layerlab("net", "down", "--dir", str(directory))
    assert not (directory / "net.json").exists()


def test_transfers_on_each_shard_are_crosslinked_then_final(honest: Honest) -> None:
    directory, w3s, mined = honest.directory, honest.w3s, honest.mined
    base = shardnet.DEFAULT_BASE_CHAIN_ID
    assert [w3.eth.chain_id for w3 in w3s] == [base, base + 1]

    def final_past_transfers() -> dict[str, Any] | None:
        st = status(directory)
        rows = st["shards"]
        ok = all(r["final"] and r["final"]["number"] >= mined[r["shard"]] for r in rows)
        return st if ok else None

    st = wait_until(final_past_transfers, 40, "both shards' transfer blocks finalized", interval=0.5)
    assert st["beacon"]["finalized"]["epoch"] >= 1 and st["beacon"]["slashed"] == []
    for row, w3 in zip(st["shards"], w3s, strict=True):
        for kind in ("crosslink", "final"):
            link = row[kind]
            block = w3.eth.get_block(link["number"])
            assert link["hash"] == block["hash"].to_0x_hex()
            assert link["stateRoot"] == block["stateRoot"].to_0x_hex()
        assert row["crosslink"]["number"] >= row["final"]["number"]
        assert row["head"]["number"] >= row["crosslink"]["number"]
    assert json.loads(layerlab("net", "status", "--dir", str(directory), "--json"))["shards"][1]["chainId"] \
        == base + 1
    table = layerlab("net", "status", "--dir", str(directory))
    assert "last crosslink" in table and "final crosslink" in table and "31338" in table


def test_cross_shard_transfer_credited_once_and_value_conserved(honest: Honest) -> None:
    directory, (src, dst), receipt, start = honest.directory, honest.w3s, honest.receipt, honest.start
    claimer, bob = KEYS[7], addr(KEYS[8])
    bob_before = int(dst.eth.get_balance(bob, start[1]))  # type: ignore[arg-type]
    assert (receipt.source_shard, receipt.dest_shard, receipt.to, receipt.value) == (0, 1, bob, 3 * ETHER)

    def relayed() -> int | None:
        number = (status(directory)["beacon"]["relayed"] or {}).get("1", {}).get("0")
        return number if number is not None and number >= receipt.block_number else None

    if relayed() is None:  # not final on the beacon yet, so not relayed: nothing to claim against
        with pytest.raises(xs.NotCrosslinked):
            xs.claim(dst, claimer, xs.build_claim(src, receipt, receipt.block_number))
    number = wait_until(relayed, 40, "shard 0's finalized crosslink relayed to shard 1", interval=0.5)
    root = xs.CrossShardContract(dst).call("crosslinkedRoot", 0, number)
    assert bytes(root) == bytes(src.eth.get_block(number)["stateRoot"])  # the shard's own root
    xs.claim(dst, claimer, xs.build_claim(src, receipt, number))
    assert int(dst.eth.get_balance(bob)) == bob_before + 3 * ETHER  # type: ignore[arg-type]
    with pytest.raises(xs.AlreadyClaimed):
        xs.claim(dst, claimer, xs.build_claim(src, receipt, number))
    assert int(dst.eth.get_balance(bob)) == bob_before + 3 * ETHER  # type: ignore[arg-type]

    # conservation over both shards: every account these blocks touched, plus what they burned
    end = [int(w3.eth.block_number) for w3 in (src, dst)]
    total = {"before": 0, "after": 0}
    for w3, first, last in zip((src, dst), start, end, strict=True):
        touched = {xs.CROSS_SHARD_ADDRESS, xs.SYSTEM_ADDRESS, bob}
        burned = 0
        for n in range(first + 1, last + 1):
            block = w3.eth.get_block(n, full_transactions=True)
            touched.add(block["miner"])
            burned += int(block["baseFeePerGas"]) * int(block["gasUsed"])
            for tx in block["transactions"]:
                touched |= {tx["from"], tx["to"]} - {None}  # type: ignore[index]
        total["before"] += sum(int(w3.eth.get_balance(a, first)) for a in touched)  # type: ignore[arg-type]
        total["after"] += sum(int(w3.eth.get_balance(a, last)) for a in touched) + burned  # type: ignore[arg-type]
    assert total["after"] == total["before"]


def test_forged_state_root_is_proven_and_its_signers_slashed(tmp_path: Path) -> None:
    directory = tmp_path / "byz"
    shardnet.up(directory, 2, byzantine="forge-state-root:0@3")  # `net up --byzantine ...`
    try:
        def fraud() -> dict[str, Any] | None:
            st = status(directory)
            frauds = st["beacon"]["frauds"] or []
            return st if frauds and frauds[0].get("slashed") else None

        st = wait_until(fraud, 40, "the forged crosslink proven fraudulent", interval=1.0)
        w3 = Web3(Web3.HTTPProvider(st["shards"][0]["rpc"]))
        evidence = st["beacon"]["frauds"][0]
        block = w3.eth.get_block(evidence["number"])
        assert evidence["shard"] == 0 and evidence["number"] >= 3
        assert evidence["forgedStateRoot"] != block["stateRoot"].to_0x_hex()
        # the whole committee of shard 0 signed it: half of the 16 validators
        assert sorted(st["beacon"]["slashed"]) == evidence["slashed"] and len(evidence["slashed"]) == 8

        def relinked() -> dict[str, Any] | None:
            row = status(directory)["shards"][0]
            link = row["crosslink"]
            return row if link and link["number"] >= evidence["number"] else None

        row = wait_until(relinked, 30, "shard 0 crosslinked again past the forged block", interval=1.0)
        link = w3.eth.get_block(row["crosslink"]["number"])
        assert row["crosslink"]["stateRoot"] == link["stateRoot"].to_0x_hex()
        final = row["final"]  # the forged root was dropped before it could be final
        if final is not None:
            assert final["stateRoot"] == w3.eth.get_block(final["number"])["stateRoot"].to_0x_hex()
    finally:
        shardnet.down(directory)
