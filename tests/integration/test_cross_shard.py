"""Cross-shard transfers between two real devnet shards (two in-process nodes with their
own chain ids), the test playing the beacon: it posts the source block's real state root
as the finalized crosslink. A transfer is credited once and only once; a forged receipt,
a proof of another block, a receipt from a block with no crosslink yet, a replay, a
receipt for another shard and a crosslink from anyone but the system account are refused;
the sum of all balances over both shards changes by exactly the gas fees paid."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from web3 import Web3
from web3.types import TxReceipt

from layerlab.l1.chain.config import parse_config
from layerlab.l1.launcher import BackgroundNode
from layerlab.l1.node import Node
from layerlab.l1.sharding import crossshard as xs

RESERVE = 50 * 10**18
ETHER = 10**18
SHARDS = 2


@dataclass
class Shard:
    shard_id: int
    w3: Web3
    keys: list[bytes]


@pytest.fixture(scope="module")
def shards() -> Iterator[list[Shard]]:
    with BackgroundNode(_shard_node(0)) as url0, BackgroundNode(_shard_node(1)) as url1:
        out = []
        for shard_id, url in enumerate((url0, url1)):
            w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
            assert xs.deploy(w3, shard_id, SHARDS, RESERVE) == xs.CROSS_SHARD_ADDRESS
            config = parse_config({"chainId": 1000 + shard_id})
            out.append(Shard(shard_id, w3, [a.private_key for a in config.dev_accounts]))
        yield out


def _shard_node(shard_id: int) -> Node:
    return Node(parse_config({"chainId": 1000 + shard_id, "accounts": 4,
                              "alloc": xs.system_genesis_alloc(RESERVE)}))


def addr(key: bytes) -> str:
    return str(Account.from_key(key).address)


def fee(receipt: TxReceipt) -> int:
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def finalize(source: Shard, dest: Shard, block_number: int) -> None:
    """The beacon's part: post the source block's own state root on the destination."""
    root = bytes(source.w3.eth.get_block(block_number)["stateRoot"])
    xs.post_crosslink(dest.w3, source.shard_id, block_number, root)


def balances(shards: list[Shard], accounts: list[str]) -> int:
    return sum(int(s.w3.eth.get_balance(a)) for s in shards for a in accounts)  # type: ignore[arg-type]


def test_contract_has_one_address_and_its_reserve_on_every_shard(shards: list[Shard]) -> None:
    for shard in shards:
        assert shard.w3.eth.get_code(xs.CROSS_SHARD_ADDRESS) != b""
        assert shard.w3.eth.get_balance(xs.CROSS_SHARD_ADDRESS) >= RESERVE
        assert xs.CrossShardContract(shard.w3).get_shard_id() == shard.shard_id
    assert shards[0].w3.eth.chain_id != shards[1].w3.eth.chain_id


def test_transfer_is_credited_once_and_value_is_conserved(shards: list[Shard]) -> None:
    src, dst = shards
    alice, bob, relayer = src.keys[0], addr(dst.keys[1]), dst.keys[2]
    accounts = [addr(alice), bob, addr(relayer), xs.CROSS_SHARD_ADDRESS, xs.SYSTEM_ADDRESS]
    before = balances(shards, accounts)
    bob_before = int(dst.w3.eth.get_balance(bob))  # type: ignore[arg-type]
    fees = 0

    receipt = xs.send_cross(src.w3, alice, 1, bob, 3 * ETHER)
    fees += fee(src.w3.eth.get_transaction_receipt(receipt.tx_hash))  # type: ignore[arg-type]
    assert (receipt.source_shard, receipt.dest_shard, receipt.value) == (0, 1, 3 * ETHER)
    proof = xs.build_claim(src.w3, receipt, receipt.block_number)
    with pytest.raises(xs.NotCrosslinked):
        xs.claim(dst.w3, relayer, proof)  # the source block is not final yet

    finalize(src, dst, receipt.block_number)
    fees += _last_fee(dst.w3, xs.SYSTEM_ADDRESS)
    paid = xs.claim(dst.w3, relayer, proof)
    fees += fee(paid)
    assert int(dst.w3.eth.get_balance(bob)) == bob_before + 3 * ETHER  # type: ignore[arg-type]
    print(f"claim gas: {paid['gasUsed']}")

    with pytest.raises(xs.AlreadyClaimed):
        xs.claim(dst.w3, relayer, proof)
    # nor again with a proof of a later crosslinked block of the same receipt
    later = int(src.w3.eth.block_number)
    finalize(src, dst, later)
    fees += _last_fee(dst.w3, xs.SYSTEM_ADDRESS)
    with pytest.raises(xs.AlreadyClaimed):
        xs.claim(dst.w3, relayer, xs.build_claim(src.w3, receipt, later))
    assert int(dst.w3.eth.get_balance(bob)) == bob_before + 3 * ETHER  # type: ignore[arg-type]

    assert balances(shards, accounts) == before - fees


def test_forged_receipts_and_proofs_are_refused(shards: list[Shard]) -> None:
    src, dst = shards
    alice, bob, mallory = src.keys[1], addr(dst.keys[1]), dst.keys[3]
    receipt = xs.send_cross(src.w3, alice, 1, bob, ETHER)
    finalize(src, dst, receipt.block_number)
    proof = xs.build_claim(src.w3, receipt, receipt.block_number)
    forged = [
        dataclasses.replace(receipt, value=2 * ETHER),
        dataclasses.replace(receipt, to=addr(mallory)),
        dataclasses.replace(receipt, nonce=receipt.nonce + 1000),
    ]
    assert xs.verify_claim_proof(proof) == receipt.receipt_hash  # py-trie's reading agrees
    for fake in forged:
        with pytest.raises(xs.BadProof):
            xs.claim(dst.w3, mallory, dataclasses.replace(proof, receipt=fake))

    # a proof of another block's state, claimed against the crosslinked block
    xs.send_cross(src.w3, alice, 1, bob, ETHER)  # moves the source state on
    other = xs.build_claim(src.w3, receipt, int(src.w3.eth.block_number))
    assert other.state_root != proof.state_root
    with pytest.raises(xs.BadProof):
        xs.claim(dst.w3, mallory, dataclasses.replace(other, block_number=proof.block_number))
    # a truncated proof
    with pytest.raises(xs.BadProof):
        xs.claim(dst.w3, mallory, dataclasses.replace(proof, storage_proof=proof.storage_proof[:-1]))

    # the genuine proof still pays, once
    xs.claim(dst.w3, mallory, proof)
    with pytest.raises(xs.AlreadyClaimed):
        xs.claim(dst.w3, mallory, proof)


def test_receipt_for_another_shard_and_foreign_crosslinks_are_refused(shards: list[Shard]) -> None:
    src, dst = shards
    receipt = xs.send_cross(src.w3, src.keys[2], 1, addr(dst.keys[0]), ETHER)
    finalize(src, dst, receipt.block_number)
    proof = xs.build_claim(src.w3, receipt, receipt.block_number)
    # shard 1's receipt claimed on shard 0 (the source itself): not for this shard
    with pytest.raises(xs.WrongShard):
        xs.claim(src.w3, src.keys[2], proof)
    # nor can a transfer name its own shard as its destination
    with pytest.raises(xs.WrongShard):
        xs.send_cross(src.w3, src.keys[2], 0, addr(dst.keys[0]), ETHER)
    with pytest.raises(xs.NotSystem):
        xs.CrossShardContract(dst.w3).transact(
            dst.keys[0], "postCrosslink by a user", "postCrosslink", 0, receipt.block_number + 1,
            b"\x11" * 32)
    assert xs.CrossShardContract(dst.w3).call(
        "crosslinkedRoot", 0, receipt.block_number + 1) == b"\x00" * 32


def _last_fee(w3: Web3, sender: str) -> int:
    """The fee of ``sender``'s latest transaction (the automining devnet: one per block)."""
    block = w3.eth.get_block("latest", full_transactions=True)
    txs = [tx for tx in block["transactions"] if tx["from"] == sender]  # type: ignore[index]
    assert len(txs) == 1
    return fee(w3.eth.get_transaction_receipt(txs[0]["hash"]))  # type: ignore[index]
