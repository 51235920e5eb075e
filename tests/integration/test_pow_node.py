"""Proof of work on in-process nodes: seals, heaviest-chain fork choice, reorgs, invalid blocks.

In-process nodes (no sockets) so each attack is exact; tests/integration/test_pow_network.py
runs the same protocol across processes, and tests/unit/consensus/test_pow_rules.py checks
the pure retargeting rule.
"""

from __future__ import annotations

import pytest

from layerlab.errors import InvalidBlock
from layerlab.l1.consensus.pow import (
    Sealer,
    check_seal,
    meets,
)
from layerlab.l1.node import UnknownParent
from tests.powutil import DEV, engine, mine, pow_node, seal, share, transfer

MERCHANT = b"\x77" * 20
ATTACKER_WALLET = b"\x66" * 20


# -- seals -------------------------------------------------------------------------------
def test_sealer_finds_a_seal_that_check_accepts_and_tampering_breaks_it() -> None:
    node = pow_node()
    block, _ = node.build_template(timestamp=node.head.timestamp + 2, coinbase=b"\x01" * 20)
    sealed = seal(node, block, 5_000)
    check_seal(sealed.header, 5_000)
    assert meets(sealed.hash, 5_000)
    # the next nonces that miss the target (about 1 in 5,000 would still meet it)
    nonce = int.from_bytes(sealed.header.extra_data, "big")
    tampered = (sealed.header.copy(extra_data=(nonce + i).to_bytes(8, "big")) for i in range(1, 50))
    bad = next(h for h in tampered if not meets(h.hash, 5_000))
    with pytest.raises(InvalidBlock, match="bad seal"):
        check_seal(bad, 5_000)


def test_sealer_hash_equals_header_hash() -> None:
    node = pow_node()
    block, _ = node.build_template(timestamp=node.head.timestamp + 2, coinbase=b"\x01" * 20)
    sealer = Sealer(block.header, 1)  # difficulty 1: the first nonce wins
    header = sealer.search(1)
    assert header is not None and header.extra_data == (0).to_bytes(8, "big")


# -- invalid blocks are refused and never stored ---------------------------------------


@pytest.mark.parametrize("tamper", ["bad-seal", "wrong-difficulty", "bad-state-root", "gas-over-limit",
                                    "future-timestamp", "body-on-pow"])
def test_invalid_block_is_rejected_and_not_stored(tamper: str) -> None:
    producer, victim = pow_node(), pow_node()
    parent = producer.head
    ts = parent.timestamp + 2
    producer.submit_raw(transfer(0, MERCHANT, 1, 0))
    block, _ = producer.build_template(timestamp=ts, coinbase=b"\x01" * 20)
    difficulty = engine(producer).difficulty_for(parent, ts)
    body = b""
    now = float(ts)
    if tamper == "bad-seal":
        sealed = block.copy(header=block.header.copy(extra_data=b"\x00" * 8))
        while meets(sealed.hash, difficulty):  # make sure this nonce really misses
            sealed = sealed.copy(header=sealed.header.copy(
                extra_data=(int.from_bytes(sealed.header.extra_data, "big") + 1).to_bytes(8, "big")))
    elif tamper == "wrong-difficulty":
        sealed = seal(producer, block, max(difficulty // 50, 1))  # claims less work than required
        while meets(sealed.hash, difficulty):
            sealed = seal(producer, sealed, max(difficulty // 50, 1))
    elif tamper == "bad-state-root":
        sealed = seal(producer, block.copy(header=block.header.copy(state_root=b"\x42" * 32)), difficulty)
    elif tamper == "gas-over-limit":
        sealed = seal(producer, block.copy(header=block.header.copy(
            gas_used=block.header.gas_limit + 1)), difficulty)
    elif tamper == "future-timestamp":
        sealed = seal(producer, block, difficulty)
        now = float(ts - 60)
    else:
        sealed = seal(producer, block, difficulty)
        body = b"\x01"
    with pytest.raises(InvalidBlock):
        victim.import_block(sealed, body, now=now)
    assert not victim.has_block(sealed.hash)
    assert victim.head.block_number == 0
    assert engine(victim).record(sealed.hash) is None


def test_block_with_unknown_parent_is_reported_for_sync() -> None:
    a, b = pow_node(), pow_node()
    mine(a)
    second = mine(a)
    with pytest.raises(UnknownParent):
        b.import_block(second, b"", now=float(second.header.timestamp))
    assert share(a, b) == 2 and b.head.hash == a.head.hash


# -- fork choice and reorgs ------------------------------------------------------------
def test_heaviest_chain_wins_not_longest() -> None:
    """A shorter chain of harder blocks beats a longer chain of easier ones."""
    a, b = pow_node(), pow_node()
    for _ in range(3):
        mine(a, gap=8)  # slow blocks: difficulty falls
    for _ in range(2):
        mine(b, gap=1)  # fast blocks: difficulty rises
    td_a = engine(a).record(a.head.hash).total_difficulty  # type: ignore[union-attr]
    td_b = engine(b).record(b.head.hash).total_difficulty  # type: ignore[union-attr]
    assert td_b > td_a and b.head.block_number < a.head.block_number
    share(b, a)
    assert a.head.hash == b.head.hash  # reorged onto the shorter, heavier chain
    share(a, b)  # the lighter chain does not move b
    assert b.head.block_number == 2


def test_equal_work_keeps_the_first_seen_head() -> None:
    a, b = pow_node(), pow_node()
    mine(a)
    mine(b, coinbase=b"\x02" * 20)
    first = a.head.hash
    share(b, a)
    assert a.head.hash == first


def test_private_chain_with_more_work_double_spends_and_orphans_return_to_pool() -> None:
    """The double spend of Nakamoto section 11, tried twice.

    The victim's node sees tx T (attacker pays the merchant) mined. The attacker, mining
    in private from before T, includes T' (same nonce, pays itself) plus an unrelated
    transfer. With *less* work its chain is ignored and T stands; with *more* work the
    public node reorgs: T' wins, T is dropped (its nonce is used), and the transactions
    of orphaned blocks that are still valid return to the pool.
    """
    public, attacker = pow_node(), pow_node()
    mine(public)
    share(public, attacker)
    pay_merchant = transfer(0, MERCHANT, 5 * 10**18, 0)
    bystander = transfer(1, b"\x55" * 20, 1, 0)
    public.submit_raw(pay_merchant)
    public.submit_raw(bystander)
    mine(public)  # T and the bystander's tx confirmed on the public chain
    merchant_paid = public.head_state().get_balance(MERCHANT)
    assert merchant_paid == 5 * 10**18

    attacker.submit_raw(transfer(0, ATTACKER_WALLET, 5 * 10**18, 0))  # T', conflicting
    mine(attacker, gap=4)  # one private block, slower, so with less work than the public one
    # with less total work than the public chain, the private chain is refused
    public_td = engine(public).record(public.head.hash).total_difficulty  # type: ignore[union-attr]
    attacker_td = engine(attacker).record(attacker.head.hash).total_difficulty  # type: ignore[union-attr]
    assert attacker_td < public_td
    share(attacker, public)
    assert public.head_state().get_balance(MERCHANT) == merchant_paid

    # the attacker keeps mining until its chain has more work, then publishes it
    while engine(attacker).record(attacker.head.hash).total_difficulty <= \
            engine(public).record(public.head.hash).total_difficulty:  # type: ignore[union-attr]
        mine(attacker)
    share(attacker, public)
    assert public.head.hash == attacker.head.hash
    assert public.head_state().get_balance(MERCHANT) == 0
    assert public.head_state().get_balance(ATTACKER_WALLET) == 5 * 10**18
    assert public.reorgs and public.reorgs[-1][0] >= 1
    # T conflicts with T' (same nonce): gone. The bystander's tx returned to the pool...
    pending = {p.raw for p in public.pool.all()}
    assert pay_merchant not in pending
    assert bystander in pending
    mine(public)  # ...and is mined again on the new chain
    assert public.head_state().get_nonce(bytes.fromhex(DEV[1].address[2:])) == 1


def test_a_double_spend_needs_the_work() -> None:
    """An attacker who publishes a private chain as long as, but lighter than, the public
    one (slow blocks) gets nothing: fork choice counts work, not blocks."""
    public, attacker = pow_node(), pow_node()
    public.submit_raw(transfer(0, MERCHANT, 10**18, 0))
    for _ in range(3):
        mine(public, gap=2)
    attacker.submit_raw(transfer(0, ATTACKER_WALLET, 10**18, 0))
    for _ in range(3):
        mine(attacker, gap=20)  # three blocks, but each easier than the public ones
    share(attacker, public)
    assert public.head_state().get_balance(MERCHANT) == 10**18


def test_restart_resumes_fork_choice(tmp_path: object) -> None:
    from pathlib import Path

    from layerlab.l1.launcher import engine_factory
    from layerlab.l1.node import Node
    from tests.powutil import CONFIG

    path = Path(str(tmp_path)) / "data"
    node = Node(CONFIG, data_dir=path, engine_factory=engine_factory(CONFIG))
    for _ in range(3):
        mine(node)
    head, td = node.head.hash, engine(node).record(node.head.hash).total_difficulty  # type: ignore[union-attr]
    node.close()
    again = Node(CONFIG, data_dir=path, engine_factory=engine_factory(CONFIG))
    assert again.head.hash == head and engine(again).head() == head
    assert engine(again).record(head).total_difficulty == td  # type: ignore[union-attr]
    again.close()


def test_block_stored_without_its_consensus_record_is_completed_not_ignored() -> None:
    """Killed between the execution write and the consensus record: the block is in the
    chain database but unknown to fork choice. When a peer sends it again it is checked
    and recorded (not skipped as "known"), so its children are accepted."""
    a, b = pow_node(), pow_node()
    first = mine(a)
    second = mine(a)
    b.chain.import_block(first)  # the execution half only, as a crash would leave it
    assert b.has_block(first.hash) and not engine(b).has_record(first.hash)
    assert b.import_block(first, b"", now=float(first.header.timestamp))
    assert b.import_block(second, b"", now=float(second.header.timestamp))
    assert b.head.hash == a.head.hash
