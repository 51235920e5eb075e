"""``node.dev`` (:mod:`layerlab.l1.devtools`) on an in-process node: Anvil's and Hardhat's
impersonation, ``eth_sendTransaction`` defaults, snapshots, the clock, state edits and
mining modes, each checked against what those tools document and what the EVM computes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from layerlab.errors import InvalidBlock, InvalidTransaction
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.devtools import DEFAULT_TIP, ImpersonatedTransaction
from layerlab.l1.node import MiningMode, Node

CONFIG = ChainConfig(genesis_timestamp=1_700_000_000, dev_account_count=3)
DEV = CONFIG.dev_accounts
ETHER = 10**18
TRANSFER_GAS = 21_000
"""Intrinsic gas of a plain value transfer (yellow paper, G_transaction)."""


@pytest.fixture()
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(CONFIG, data_dir=tmp_path, mining=MiningMode.MANUAL)
    yield n
    n.close()


def _addr(seed: int) -> bytes:
    return bytes([seed]) * 20


def _balance(node: Node, address: bytes) -> int:
    return int(node.head_state().get_balance(address))


def test_an_unknown_sender_is_refused_until_impersonated(node: Node) -> None:
    whale, to = _addr(0xAA), _addr(0xBB)
    node.dev.edit_state(lambda s: s.set_balance(whale, 10 * ETHER))
    with pytest.raises(InvalidTransaction) as refused:
        node.dev.submit_unsigned({"from": whale, "to": to, "value": 1})
    assert refused.value.reason == "unknown-account"

    node.dev.impersonate(whale)
    tx_hash = node.dev.submit_unsigned({"from": whale, "to": to, "value": ETHER})
    mined = node.mine()
    assert [bytes(tx.hash) for tx in mined.block.transactions] == [tx_hash]
    (receipt,) = mined.receipts
    fee = receipt.gas_used * (mined.block.header.base_fee_per_gas + DEFAULT_TIP)
    assert _balance(node, to) == ETHER
    assert _balance(node, whale) == 9 * ETHER - fee
    assert int(node.head_state().get_nonce(whale)) == 1
    assert node.dev.spoofed_sender(tx_hash) == whale
    assert node.dev.spoofed_sender(b"\x00" * 32) is None

    node.dev.stop_impersonating(whale)
    with pytest.raises(InvalidTransaction):
        node.dev.submit_unsigned({"from": whale, "to": to, "value": 1})


def test_a_pooled_impersonated_transaction_survives_a_restart(tmp_path: Path) -> None:
    whale, to = _addr(0xAC), _addr(0xBC)
    first = Node(CONFIG, data_dir=tmp_path, mining=MiningMode.MANUAL)
    first.dev.edit_state(lambda s: s.set_balance(whale, ETHER))
    first.dev.impersonate(whale)
    tx_hash = first.dev.submit_unsigned({"from": whale, "to": to, "value": 7})
    first.close()

    again = Node(CONFIG, data_dir=tmp_path, mining=MiningMode.MANUAL)
    try:
        (ptx,) = again.pool.all()
        assert ptx.hash == tx_hash and ptx.sender == whale
        assert isinstance(ptx.tx, ImpersonatedTransaction)
        assert whale in again.dev.impersonated
        again.mine()
        assert _balance(again, to) == 7
        assert again.dev.spoofed_sender(tx_hash) == whale
    finally:
        again.close()


def test_send_transaction_fills_in_anvils_defaults(node: Node) -> None:
    sender, to = DEV[0].address_bytes, _addr(0xCC)
    base_fee = node.next_base_fee()
    h1 = node.dev.submit_unsigned({"from": sender, "to": to, "value": 1})
    h2 = node.dev.submit_unsigned({"from": sender, "to": to, "value": 2})
    p1, p2 = node.pool.get(h1), node.pool.get(h2)
    assert p1 is not None and p2 is not None
    assert (p1.nonce, p2.nonce) == (0, 1)  # the pool's transactions count
    assert p1.gas == TRANSFER_GAS
    assert p1.max_priority_fee == DEFAULT_TIP
    assert p1.max_fee == 2 * base_fee + DEFAULT_TIP
    assert p1.tx.type_id == 2
    # a gasPrice alone makes a legacy transaction at that price
    h3 = node.dev.submit_unsigned({"from": sender, "to": to, "gasPrice": 3 * base_fee})
    p3 = node.pool.get(h3)
    assert p3 is not None and p3.nonce == 2
    assert p3.tx.type_id is None and p3.tx.gas_price == 3 * base_fee
    # the transactions are the dev key's own signatures
    assert Account.recover_transaction(p1.wire) == DEV[0].address


def test_snapshot_and_revert_restore_head_pool_clock_and_edits(node: Node) -> None:
    sender, to, edited = DEV[1].address_bytes, _addr(0xDD), _addr(0xDE)
    node.mine()
    head_before = node.head
    pending = node.dev.submit_unsigned({"from": sender, "to": to, "value": 5})
    offset_before = node.dev.time_offset
    sid = node.dev.snapshot()

    node.mine()
    node.dev.edit_state(lambda s: s.set_balance(edited, ETHER))
    node.dev.increase_time(1000)
    later = node.dev.snapshot()
    node.mine()
    assert node.head.block_number == head_before.block_number + 2
    assert _balance(node, to) == 5 and _balance(node, edited) == ETHER

    assert node.dev.revert(sid) is True
    assert node.head.hash == head_before.hash
    assert [p.hash for p in node.pool.all()] == [pending]
    assert _balance(node, to) == 0 and _balance(node, edited) == 0
    assert node.dev.time_offset == offset_before
    # as Hardhat: the snapshot and every later one are used up
    assert node.dev.revert(sid) is False
    assert node.dev.revert(later) is False


def test_reverting_keeps_a_dev_edit_taken_into_the_snapshot(node: Node) -> None:
    edited = _addr(0xDF)
    node.dev.edit_state(lambda s: s.set_balance(edited, 3))
    sid = node.dev.snapshot()
    node.dev.edit_state(lambda s: s.set_balance(edited, 4))
    assert node.dev.revert(sid)
    assert _balance(node, edited) == 3


def test_next_timestamp_is_exact_once_and_the_clock_carries_on(node: Node) -> None:
    target = int(node.head.timestamp) + 86_400
    node.dev.set_next_timestamp(target)
    assert node.mine().block.header.timestamp == target
    node.dev.increase_time(600)
    follow = int(node.mine().block.header.timestamp)
    assert target + 600 <= follow < target + 630
    with pytest.raises(InvalidBlock):
        node.dev.set_next_timestamp(follow)


def test_increase_time_accumulates(node: Node) -> None:
    assert node.dev.increase_time(3600) == 3600
    assert node.dev.increase_time(60) == 3660
    now = int(time.time())
    stamp = int(node.mine().block.header.timestamp)
    assert now + 3660 <= stamp <= int(time.time()) + 3660 + 1


def test_a_state_edit_reaches_the_next_block_and_a_restart(tmp_path: Path) -> None:
    target = _addr(0xEE)
    first = Node(CONFIG, data_dir=tmp_path, mining=MiningMode.MANUAL)
    genesis_root = bytes(first.head.state_root)
    first.dev.edit_state(lambda s: s.set_code(target, b"\x60\x00"))
    first.dev.edit_state(lambda s: s.set_storage(target, 1, 42))
    assert bytes(first.head.state_root) == genesis_root  # no block yet
    first.close()

    again = Node(CONFIG, data_dir=tmp_path, mining=MiningMode.MANUAL)
    try:
        assert int(again.head_state().get_storage(target, 1)) == 42
        block = again.mine().block
        state = again.chain.get_state(block.header)
        assert bytes(state.get_code(target)) == b"\x60\x00"
        assert int(state.get_storage(target, 1)) == 42
    finally:
        again.close()


def test_mining_modes(node: Node) -> None:
    sender, to = DEV[2].address_bytes, _addr(0xFA)
    tx_hash = node.dev.submit_unsigned({"from": sender, "to": to, "value": 1})
    number = node.head.block_number
    node.dev.set_automine(True)  # turning automine on mines what waits
    assert node.mining is MiningMode.AUTO
    assert node.head.block_number == number + 1 and node.pool.get(tx_hash) is None
    node.dev.set_interval_mining(0.5)
    assert (node.mining, node.block_time) == (MiningMode.INTERVAL, 0.5)
    node.dev.set_interval_mining(0)
    assert (node.mining, node.block_time) == (MiningMode.MANUAL, None)
    node.dev.set_automine(False)
    node.dev.submit_unsigned({"from": sender, "to": to, "value": 1})
    assert node.head.block_number == number + 1 and len(node.pool) == 1
