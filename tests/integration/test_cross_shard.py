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
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
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
    assert 2 * int(paid["gasUsed"]) < xs.compute_claim_gas_limit(proof)  # the limit's margin

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


def test_python_encoding_matches_the_contract(shards: list[Shard]) -> None:
    contract = xs.CrossShardContract(shards[0].w3)
    to = addr(shards[1].keys[3])
    assert contract.call("receiptHash", 0, 1, 7, to, 12345) == xs.compute_receipt_hash(0, 1, 7, to, 12345)
    assert contract.call("receiptSlot", 7) == xs.compute_receipt_slot(7)
    assert contract.call("RECEIPTS_SLOT") == xs.RECEIPTS_SLOT


def test_a_crosslink_is_final_and_a_deployment_is_kept(shards: list[Shard]) -> None:
    src, dst = shards
    number = int(src.w3.eth.block_number)
    root = bytes(src.w3.eth.get_block(number)["stateRoot"])
    xs.post_crosslink(dst.w3, 0, number, root)
    xs.post_crosslink(dst.w3, 0, number, root)  # the same root again is a no-op
    with pytest.raises(xs.CrossShardError) as refused:
        xs.post_crosslink(dst.w3, 0, number, b"\x22" * 32)
    assert refused.value.error_name == "CrosslinkConflict"
    assert xs.CrossShardContract(dst.w3).call("crosslinkedRoot", 0, number) == root
    nonce = dst.w3.eth.get_transaction_count(xs.SYSTEM_ADDRESS)
    assert xs.deploy(dst.w3, 1, SHARDS, RESERVE) == xs.CROSS_SHARD_ADDRESS  # already there
    assert dst.w3.eth.get_transaction_count(xs.SYSTEM_ADDRESS) == nonce
    with pytest.raises(xs.WrongShard):
        xs.deploy(dst.w3, 0, SHARDS, RESERVE)  # it is shard 1's
    with pytest.raises(xs.WrongShard):
        xs.deploy(dst.w3, 2, SHARDS, RESERVE)


def test_deployment_must_be_the_system_accounts_first_transaction() -> None:
    with BackgroundNode(_shard_node(0)) as url:
        w3 = Web3(Web3.HTTPProvider(url))
        # the system account spends its nonce 0 on something else
        signed = Account.from_key(xs.SYSTEM_KEY).sign_transaction({
            "to": xs.SYSTEM_ADDRESS, "value": 0, "gas": 21_000, "nonce": 0, "chainId": 1000,
            "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 0})
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
        with pytest.raises(xs.CrossShardError, match="nonce 0"):
            xs.deploy(w3, 0, SHARDS, RESERVE)
        assert w3.eth.get_code(xs.CROSS_SHARD_ADDRESS) == b""


@pytest.mark.slow
def test_random_sends_crosslinks_claims_and_replays_conserve_value(shards: list[Shard]) -> None:
    """Random interleavings in both directions: each receipt pays exactly once, and only
    after its block (or a later one) is crosslinked; every shard's contract holds its
    reserve plus what was locked minus what was paid; the total changes only by fees."""
    users = [addr(k) for k in shards[0].keys]
    tracked = [*users, xs.CROSS_SHARD_ADDRESS, xs.SYSTEM_ADDRESS]

    class Transfers(RuleBasedStateMachine):
        sent = Bundle("sent")

        def __init__(self) -> None:
            super().__init__()
            self.total = balances(shards, tracked)
            self.reserve = [int(s.w3.eth.get_balance(xs.CROSS_SHARD_ADDRESS)) for s in shards]
            self.user = {(s.shard_id, u): int(s.w3.eth.get_balance(u)) for s in shards for u in users}  # type: ignore[arg-type]
            self.fees = 0
            self.paid: set[tuple[int, int]] = set()
            self.final = [-1, -1]  # highest crosslinked block of each shard, as its peer knows

        @rule(target=sent, source=st.integers(0, 1), sender=st.integers(0, 3),
              to=st.integers(0, 3), value=st.integers(1, 10**15))
        def a_send(self, source: int, sender: int, to: int, value: int) -> xs.CrossReceipt:
            shard = shards[source]
            receipt = xs.send_cross(shard.w3, shard.keys[sender], 1 - source, users[to], value)
            tx = shard.w3.eth.get_transaction_receipt(receipt.tx_hash)  # type: ignore[arg-type]
            self.fees += fee(tx)
            self.user[source, users[sender]] -= value + fee(tx)
            self.reserve[source] += value
            return receipt

        @rule(source=st.integers(0, 1))
        def b_crosslink(self, source: int) -> None:
            """The beacon finalizes ``source``'s head."""
            number = int(shards[source].w3.eth.block_number)
            finalize(shards[source], shards[1 - source], number)
            self.fees += _last_fee(shards[1 - source].w3, xs.SYSTEM_ADDRESS)
            self.final[source] = number

        @rule(r=sent, relayer=st.integers(0, 3), finalized_first=st.booleans())
        def c_claim(self, r: xs.CrossReceipt, relayer: int, finalized_first: bool) -> None:
            if finalized_first:
                self.b_crosslink(r.source_shard)
            src, dst = shards[r.source_shard], shards[r.dest_shard]
            at = max(r.block_number, self.final[r.source_shard])
            proof = xs.build_claim(src.w3, r, at)
            if at != self.final[r.source_shard]:
                with pytest.raises(xs.NotCrosslinked):
                    xs.claim(dst.w3, dst.keys[relayer], proof)
            elif (r.source_shard, r.nonce) in self.paid:
                with pytest.raises(xs.AlreadyClaimed):
                    xs.claim(dst.w3, dst.keys[relayer], proof)
            else:
                tx = xs.claim(dst.w3, dst.keys[relayer], proof)
                self.fees += fee(tx)
                self.paid.add((r.source_shard, r.nonce))
                self.user[r.dest_shard, users[relayer]] -= fee(tx)
                self.user[r.dest_shard, r.to] += r.value
                self.reserve[r.dest_shard] -= r.value

        @invariant()
        def balances_are_as_booked(self) -> None:
            for s in shards:
                assert int(s.w3.eth.get_balance(xs.CROSS_SHARD_ADDRESS)) == self.reserve[s.shard_id]
                for u in users:
                    assert int(s.w3.eth.get_balance(u)) == self.user[s.shard_id, u]  # type: ignore[arg-type]
            assert balances(shards, tracked) == self.total - self.fees

    run_state_machine_as_test(Transfers, settings=settings(
        max_examples=4, stateful_step_count=8, deadline=None,
        suppress_health_check=list(HealthCheck)))
