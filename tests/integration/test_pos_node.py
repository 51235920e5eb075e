"""Proof of stake on real nodes: finality, invalid blocks, fork choice, slashing, staking, restart, merge.

In-process nodes (no sockets, no clock: every block is received just after its slot starts),
with real BLS signatures and real EVM execution, so each scenario is exact. The four genesis
validators' keys are known, so a test can play any of them, honestly or not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eth.abc import BlockAPI, ReceiptAPI

from layerlab.crypto import bls
from layerlab.errors import ConsensusError, InvalidBlock
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.merge import MergeEngine
from layerlab.l1.consensus.staking import (
    STAKING_ADDRESS,
    decode_staking_logs,
    deposit_calldata,
    exit_calldata,
    make_deposit_signature,
)
from layerlab.l1.consensus.types import (
    Attestation,
    AttestationData,
    AttesterSlashing,
    ProposerSlashing,
    SignedBlockHeader,
)
from layerlab.l1.launcher import make_node
from layerlab.l1.node import Node
from tests.posutil import (
    CONFIG,
    DEV,
    TAMPERS,
    at,
    attest_all,
    body_of,
    committee,
    deliver,
    engine,
    head_state,
    merge_config,
    pos_config,
    pos_node,
    propose,
    proposer_of,
    register_key,
    run_slots,
    send,
    share,
    sign_tx,
    slot_of,
    vote,
)
from tests.powutil import seal

SPE = 4  # slots per epoch of the minimal preset
GWEI = 10**9
RECIPIENT = b"\x55" * 20


def finalized(node: Node) -> tuple[int, bytes]:
    f = engine(node).store.finalized
    return f.epoch, f.root


# -- 1. an honest run finalizes ----------------------------------------------------------------

def test_honest_validators_finalize_and_nodes_agree() -> None:
    a, b = pos_node(), pos_node()
    run_slots(a, 1, 6 * SPE, peers=(b,))
    epoch, root = finalized(a)
    assert epoch >= 3
    assert a.head.block_number == 6 * SPE
    assert b.head.hash == a.head.hash
    assert finalized(b) == (epoch, root)
    # the finalized checkpoint is a canonical block at its epoch's first slot
    header = a.chain.get_header_by_hash(root)
    assert header is not None and slot_of(a, header) == epoch * SPE
    assert a.chain.get_header_by_number(header.block_number).hash == root  # type: ignore[union-attr]
    assert a.engine.finality(a.head).number == header.block_number  # type: ignore[union-attr]
    # every validator kept (or grew) its stake: everyone attested
    assert all(v.balance >= 32 * GWEI and not v.slashed for v in head_state(a).validators)


# -- 2. invalid blocks are refused and never stored ----------------------------------------


REFUSAL = {
    "wrong-proposer": "wrong proposer",
    "bad-signature": "bad proposer signature",
    "bad-randao": "bad randao reveal",
    "extra-data": "does not commit to its consensus body",
    "wrong-prevrandao": "prevRandao",
    "bad-state-root": "state_root",  # only execution catches it
    "gas-over-limit": "gas_used",
    "withdrawals-mismatch": "withdrawals differ",
    "off-slot-timestamp": "not a slot start",
    "empty-body": "needs a signed consensus body",
    "slot-not-started": "has not started",
}


@pytest.mark.parametrize("tamper", [*TAMPERS, "slot-not-started"])
def test_invalid_pos_block_is_rejected_and_not_stored(tamper: str) -> None:
    config = pos_config("mainnet-like") if tamper == "off-slot-timestamp" else CONFIG
    producer, victim = pos_node(config), pos_node(config)
    run_slots(producer, 1, 2, peers=(victim,))
    head = victim.head.hash
    producer.submit_raw(sign_tx(0, to=RECIPIENT, value=1, nonce=0))  # a block with a transaction
    if tamper == "slot-not-started":
        bad = propose(producer, 3, commit=False)
        now = engine(victim).slot_start(3) - 2.0
    else:
        bad = propose(producer, 3, tamper=tamper)
        now = at(victim, 3)
    assert bad.block.transactions
    with pytest.raises(InvalidBlock, match=REFUSAL[tamper]):
        send(victim, bad, now=now)
    assert not victim.has_block(bad.hash)
    assert not engine(victim).knows(bad.hash)
    assert engine(victim).body(bad.hash) == b""
    assert victim.head.hash == head
    # the honest block of the same slot is still accepted
    good = propose(producer, 3)
    assert send(victim, good)
    assert victim.head.hash == good.hash


# -- 3. finality is never reverted ----------------------------------------------------------

def test_finalized_checkpoint_is_never_reverted_by_a_longer_branch() -> None:
    a, b = pos_node(), pos_node()
    run_slots(a, 1, 6 * SPE)
    fin_epoch, fin_root = finalized(a)
    assert fin_epoch >= 3
    fin_slot = fin_epoch * SPE
    # b sees only the chain before the finalized checkpoint's epoch...
    for number in range(1, fin_slot):
        header = a.chain.get_header_by_number(number)
        assert header is not None and slot_of(a, header) < fin_slot
        send(b, (a.chain.get_block(header), a.engine.body(bytes(header.hash))))  # type: ignore[union-attr]
    assert not b.has_block(fin_root)
    # ...and its validators (the same keys) build a longer branch from there
    branch = run_slots(b, fin_slot, 6 * SPE + 2)
    assert b.head.block_number > a.head.block_number
    head_a = a.head.hash
    for i, p in enumerate(branch):
        with pytest.raises(InvalidBlock) as info:
            send(a, p)
        if i == 0:
            assert "finalized" in str(info.value) or "not on this PoS chain" in str(info.value)
        assert not a.has_block(p.hash)
    assert a.head.hash == head_a
    assert finalized(a) == (fin_epoch, fin_root)


# -- 4. LMD-GHOST: stake, not length ------------------------------------------------------------

def test_branch_with_more_attesting_stake_beats_a_longer_one() -> None:
    a, b, judge = pos_node(), pos_node(), pos_node()
    x = propose(a, 1)  # one block at slot 1
    y1 = propose(b, 2)  # a competing branch of two blocks from the same parent (genesis)
    y2 = propose(b, 3)
    assert x.block.header.parent_hash == y1.block.header.parent_hash
    votes_x = [vote(a, s, i, head=x.hash) for s in (1, 2) for i in committee(a, s, x.hash)]
    votes_y = [vote(b, 3, i, head=y2.hash) for i in committee(b, 3, y2.hash)]
    stake = head_state(a).validators[0].effective_balance
    assert len(votes_x) * stake > len(votes_y) * stake
    for p in (y1, y2):
        send(judge, p)
    deliver(judge, votes_y)
    assert judge.head.hash == y2.hash
    send(judge, x)  # shorter branch, no votes yet: stays on the longer one
    assert judge.head.hash == y2.hash
    deliver(judge, votes_x)
    assert engine(judge).head() == x.hash  # the fork choice moves with the votes...
    assert engine(judge).store.get_weight(x.hash) > engine(judge).store.get_weight(y1.hash)
    # ...and the node's canonical chain follows it at the next block it processes, even one
    # that makes the losing branch longer still (the node re-reads the head on blocks only)
    y3 = propose(b, 4)
    send(judge, y3)
    assert judge.head.hash == x.hash and judge.head.block_number == 1
    assert judge.has_block(y3.hash) and y3.block.number == 3
    assert judge.reorgs and judge.reorgs[-1][0] == 2


# -- 5. slashing ---------------------------------------------------------------------------------

def _next_slot_not_proposed_by(node: Node, start: int, offender: int) -> int:
    slot = start
    while proposer_of(node, slot) == offender:
        slot += 1
    return slot


def _assert_slashed(node: Node, offender: int, including: bytes) -> None:
    """The offender is slashed by block ``including``: flagged, ejected, and its balance cut by
    exactly the minimum slashing penalty relative to the block's pre-state."""
    eng = engine(node)
    post = eng.state_of(including)
    parent = eng.store.block(including).parent_root
    pre = pos.process_slots(eng.state_of(parent), post.slot)
    v_pre, v = pre.validators[offender], post.validators[offender]
    assert not v_pre.slashed and v.slashed
    assert v.balance == v_pre.balance - v_pre.effective_balance // pos.MINIMAL.min_slashing_penalty_quotient
    assert v.exit_epoch != pos.FAR_FUTURE_EPOCH and head_state(node).validators[offender].slashed


def _assert_never_proposes_again(node: Node, offender: int, first: int, last: int) -> None:
    """Over ``first..last``, a block by the offender is refused and the others' accepted;
    once exited it is not even chosen."""
    exit_epoch = head_state(node).validators[offender].exit_epoch
    for slot in range(first, last + 1):
        if proposer_of(node, slot) == offender:
            with pytest.raises(InvalidBlock, match="slashed"):
                propose(node, slot)
        else:
            propose(node, slot)
        attest_all(node, slot)
    state = head_state(node)
    epoch = pos.get_current_epoch(state)
    assert epoch >= exit_epoch
    assert offender not in pos.get_active_validator_indices(state, epoch)
    assert all(proposer_of(node, s) != offender for s in range(state.slot + 1, (epoch + 2) * SPE))


def test_double_proposal_is_slashed_on_every_node() -> None:
    a, b = pos_node(), pos_node()
    run_slots(a, 1, 3, peers=(b,))
    offender = proposer_of(a, 4)
    first = propose(a, 4, commit=False)
    second = propose(a, 4, commit=False, coinbase=b"\xba" * 20)  # same slot, different block
    assert first.proposer == second.proposer == offender and first.hash != second.hash
    for node in (a, b):
        send(node, first)
        send(node, second)
        evidence = list(engine(node).pending_slashings.values())
        assert len(evidence) == 1 and isinstance(evidence[0], ProposerSlashing)
        assert evidence[0].header_1.proposer_index == offender
    deliver(b, attest_all(a, 4))
    slot = _next_slot_not_proposed_by(a, 5, offender)
    including = propose(a, slot)
    assert len(body_of(a, including.hash).proposer_slashings) == 1
    send(b, including)
    for node in (a, b):
        _assert_slashed(node, offender, including.hash)
        assert not engine(node).pending_slashings  # included: no longer pending
    assert b.head.hash == a.head.hash
    _assert_never_proposes_again(a, offender, slot + 1, 5 * SPE)


def test_double_vote_is_slashed_on_every_node() -> None:
    a, b = pos_node(), pos_node()
    run_slots(a, 1, 5, peers=(b,))
    slot = 6
    propose(a, slot)
    send(b, (a.chain.get_block(a.head), a.engine.body(bytes(a.head.hash))))  # type: ignore[union-attr]
    offender = committee(a, slot)[0]
    honest = vote(a, slot, offender)
    double = vote(a, slot, offender, head=bytes(a.head.parent_hash))  # same target epoch, other head
    assert honest.data.target.epoch == double.data.target.epoch and honest.data != double.data
    assert engine(a).on_attestation(honest) == []
    found = engine(a).on_attestation(double)
    assert len(found) == 1 and isinstance(found[0], AttesterSlashing)
    assert list(engine(a).pending_slashings.values()) == found
    nxt = _next_slot_not_proposed_by(a, slot + 1, offender)
    including = propose(a, nxt)
    assert len(body_of(a, including.hash).attester_slashings) == 1
    send(b, including)
    for node in (a, b):
        _assert_slashed(node, offender, including.hash)
        assert offender in engine(node).store.equivocating_indices
    _assert_never_proposes_again(a, offender, nxt + 1, 5 * SPE)


def test_forged_slashing_evidence_is_refused_and_slashes_nobody() -> None:
    a = pos_node()
    run_slots(a, 1, 2)
    eng = engine(a)
    slot = 3
    victim = proposer_of(a, slot)
    other = (victim + 1) % 4
    mallory = bls.secret_key(b"mallory")
    roots = (b"\x01" * 32, b"\x02" * 32)
    headers = [
        SignedBlockHeader(slot, victim, r, bls.sign(mallory, pos.proposal_signing_root(slot, victim, r)))
        for r in roots
    ]
    with pytest.raises(ConsensusError):
        eng.on_slashing(ProposerSlashing(headers[0], headers[1]))
    honest = vote(a, 2, committee(a, 2)[0])
    forged_data = AttestationData(honest.data.slot, roots[0], honest.data.source, honest.data.target)
    forged = Attestation(forged_data, honest.validator_indices,
                         bls.sign(mallory, pos.attestation_signing_root(forged_data)))
    with pytest.raises(ConsensusError):
        eng.on_slashing(AttesterSlashing(honest, forged))
    # a real signature of a different validator does not make it a double vote of the victim
    impostor = vote(a, 2, other)
    with pytest.raises(ConsensusError):
        eng.on_slashing(AttesterSlashing(honest, Attestation(forged_data, honest.validator_indices,
                                                             impostor.signature)))
    assert not eng.pending_slashings and not eng.store.equivocating_indices
    p = propose(a, slot)
    body = body_of(a, p.hash)
    assert not body.proposer_slashings and not body.attester_slashings
    assert not any(v.slashed for v in head_state(a).validators)


# -- 6. staking: deposit, activation, exit, withdrawal ----------------------------------------

def test_deposit_activates_a_validator_and_exit_withdraws_its_balance() -> None:
    a, b = pos_node(), pos_node()
    owner, cheat = DEV[5], DEV[6]
    sk = bls.secret_key(b"test_pos_node new validator")
    pubkey = register_key(sk)
    bad_sk = bls.secret_key(b"test_pos_node unproven key")
    bad_pubkey = bls.public_key(bad_sk)
    amount = 32 * GWEI
    good_proof = make_deposit_signature(sk, owner.address_bytes, amount)
    wrong_proof = make_deposit_signature(sk, cheat.address_bytes, amount)  # signed by another key
    a.submit_raw(sign_tx(5, to=STAKING_ADDRESS, value=amount * GWEI, nonce=0, gas=200_000,
                         data=deposit_calldata(pubkey, good_proof)))
    a.submit_raw(sign_tx(6, to=STAKING_ADDRESS, value=amount * GWEI, nonce=0, gas=200_000,
                         data=deposit_calldata(bad_pubkey, wrong_proof)))
    p1 = propose(a, 1)
    receipts = a.chain.get_receipts(p1.block.header)
    assert len(receipts) == 2 and all(r.state_root == b"\x01" for r in receipts)  # both calls succeeded
    assert len(decode_staking_logs(receipts)[0]) == 2
    run_slots(a, 2, 2)
    state = head_state(a)
    assert len(body_of(a, a.head.hash).deposits) == 2
    assert state.deposit_count == 2
    pubkeys = [v.pubkey for v in state.validators]
    assert pubkeys.count(pubkey) == 1 and bad_pubkey not in pubkeys  # the forged proof is ignored
    index = pubkeys.index(pubkey)
    assert index == 4
    assert state.validators[index].activation_epoch == pos.FAR_FUTURE_EPOCH
    assert not pos.is_active_validator(state.validators[index], 0)

    run_slots(a, 3, 2 * SPE)  # epoch 0 ends: queued; active from epoch 0 + 1 + activation delay
    state = head_state(a)
    activation = state.validators[index].activation_epoch
    assert activation == 0 + 1 + pos.MINIMAL.activation_delay_epochs
    assert pos.is_active_validator(state.validators[index], activation)
    assert index in pos.get_active_validator_indices(state, 2)

    a.submit_raw(sign_tx(5, to=STAKING_ADDRESS, nonce=1, gas=200_000, data=exit_calldata(pubkey)))
    run_slots(a, 2 * SPE + 1, 2 * SPE + 2)  # the request is mined, then carried into the next body
    v = head_state(a).validators[index]
    exit_epoch = 2 + 1 + pos.MINIMAL.exit_delay_epochs
    assert v.exit_epoch == exit_epoch
    assert v.withdrawable_epoch == exit_epoch + pos.MINIMAL.withdrawable_delay_epochs
    withdraw_slot = v.withdrawable_epoch * SPE

    run_slots(a, 2 * SPE + 3, withdraw_slot - 1)
    before = a.head_state().get_balance(owner.address_bytes)
    balance_gwei = pos.process_slots(head_state(a), withdraw_slot).validators[index].balance
    assert balance_gwei > 0
    run_slots(a, withdraw_slot, withdraw_slot)
    withdrawals = body_of(a, a.head.hash).withdrawals
    assert [(w.validator_index, w.address, w.amount_gwei) for w in withdrawals] == [
        (index, owner.address_bytes, balance_gwei)]
    assert a.head_state().get_balance(owner.address_bytes) - before == balance_gwei * GWEI
    v = head_state(a).validators[index]
    assert v.withdrawn and v.balance == 0
    run_slots(a, withdraw_slot + 1, withdraw_slot + 1)
    assert not body_of(a, a.head.hash).withdrawals  # paid once
    # another node replays the whole history to the same registry and balances
    share(a, b)
    assert b.head.hash == a.head.hash
    assert head_state(b) == head_state(a)
    assert b.head_state().get_balance(owner.address_bytes) == a.head_state().get_balance(owner.address_bytes)


# -- 7. restart --------------------------------------------------------------------------------

def test_restart_keeps_head_and_finalized_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "data"
    node = pos_node(data_dir=path)
    run_slots(node, 1, 4 * SPE)
    head, fin = node.head.hash, finalized(node)
    just = engine(node).store.justified
    assert fin[0] >= 1
    node.close()
    again = make_node(CONFIG, path)
    try:
        assert again.head.hash == head
        assert engine(again).head() == head
        assert finalized(again) == fin
        assert engine(again).store.justified == just
        assert head_state(again) == engine(again).state_of(head)
        nxt = propose(again, 4 * SPE + 1)  # and it goes on from there
        assert again.head.hash == nxt.hash
    finally:
        again.close()


# -- 8. the merge ------------------------------------------------------------------------------

def _merge_engine(node: Node) -> MergeEngine:
    assert isinstance(node.engine, MergeEngine)
    return node.engine


def _pow_block(node: Node, timestamp: int) -> tuple[BlockAPI, tuple[ReceiptAPI, ...]]:
    """A PoW block on the head, sealed with the difficulty the retarget asks (the minimum
    difficulty on a PoS parent, which has no PoW record)."""
    parent = node.head
    block, receipts = node.build_template(timestamp=timestamp, coinbase=b"\x01" * 20)
    pow_engine = _merge_engine(node).pow
    if pow_engine.record(parent.hash) is None:
        difficulty = pow_engine.params.min_difficulty
    else:
        difficulty = pow_engine.difficulty_for(parent, timestamp)
    return seal(node, block, difficulty), tuple(receipts)


def test_merge_switches_from_pow_to_pos_at_the_merge_block() -> None:
    config = merge_config(3)
    a, b = make_node(config, None), make_node(config, None)
    sender = DEV[1].address_bytes
    a.submit_raw(sign_tx(1, to=RECIPIENT, value=10**18, nonce=0))
    for number in (1, 2, 3):
        block, receipts = _pow_block(a, a.head.timestamp + 2)
        a.commit_local(block, b"", receipts)
        assert a.head.block_number == number
    share(a, b)
    terminal = a.head
    assert _merge_engine(a).is_terminal(terminal) and engine(a).anchor.hash == terminal.hash
    assert a.head_state().get_nonce(sender) == 1 and a.head_state().get_balance(RECIPIENT) == 10**18

    # a PoW-sealed child of the terminal block is refused
    pow_child, _ = _pow_block(b, terminal.timestamp + 2)
    with pytest.raises(InvalidBlock, match="proof-of-stake"):
        b.import_block(pow_child, b"", now=float(pow_child.header.timestamp) + 0.1)
    assert not b.has_block(pow_child.hash) and b.head.hash == terminal.hash

    # a PoS block on the terminal block is accepted; state carries over
    a.submit_raw(sign_tx(1, to=RECIPIENT, value=10**18, nonce=1))
    first_slot = slot_of(a, terminal) + 1
    pos_block = propose(a, first_slot)
    assert pos_block.block.number == 4 and a.head.hash == pos_block.hash
    assert send(b, pos_block) and b.head.hash == pos_block.hash
    for node in (a, b):
        assert node.head_state().get_nonce(sender) == 2
        assert node.head_state().get_balance(RECIPIENT) == 2 * 10**18
        assert node.engine.status()["phase"] == "pos"  # type: ignore[union-attr]

    # PoW blocks after the merge: a competing #4 on block 3, and a #5 on the PoS block
    with pytest.raises(InvalidBlock):
        b.import_block(pow_child, b"", now=float(pow_child.header.timestamp) + 0.1)
    pow_on_pos, _ = _pow_block(a, a.head.timestamp + 1)
    with pytest.raises(InvalidBlock):
        b.import_block(pow_on_pos, b"", now=float(pow_on_pos.header.timestamp) + 0.1)
    assert not b.has_block(pow_child.hash) and not b.has_block(pow_on_pos.hash)
    assert b.head.hash == pos_block.hash
    # and PoS goes on
    run_slots(a, first_slot + 1, first_slot + 3, peers=(b,))
    assert b.head.hash == a.head.hash and a.head.block_number == 7


# -- regressions ------------------------------------------------------------------------
def test_votes_move_the_node_head_without_waiting_for_a_block() -> None:
    """Gossiped votes that switch the LMD-GHOST head switch the node's canonical head."""
    from tests.posutil import committee, deliver, engine, propose, send, vote

    a, b, j = pos_node(), pos_node(), pos_node()
    x = propose(a, 1)
    y1 = propose(b, 2)
    y2 = propose(b, 3)
    for p in (y1, y2, x):
        send(j, p)
    deliver(j, [vote(a, s, i, head=x.hash) for s in (1, 2) for i in committee(a, s, x.hash)])
    j.refresh_head()
    assert engine(j).head() == x.hash and j.head.hash == x.hash


def test_restart_replays_the_votes_blocks_carried(tmp_path: Path) -> None:
    """A restarted node counts the attestations inside stored blocks, so it does not
    jump to a longer branch that has no votes."""
    from tests.posutil import CONFIG, attest_all, propose, send

    d = tmp_path / "data"
    j = pos_node(data_dir=d)
    a, b = pos_node(), pos_node()
    x1 = propose(a, 1)
    attest_all(a, 1)
    x2 = propose(a, 2)  # carries the votes for x1
    ys = [propose(b, s) for s in (3, 4, 5)]
    for p in (*ys, x1, x2):
        send(j, p)
    send(j, propose(b, 6))
    assert j.head.hash == x2.hash
    j.close()
    again = make_node(CONFIG, d)
    assert again.head.hash == x2.hash
    again.close()


def test_slashing_protection_survives_a_restart(tmp_path: Path) -> None:
    """EIP-3076: the high marks are on disk before a signature leaves, so a validator
    restarted within a slot refuses to sign a second proposal or vote."""
    from layerlab.l1.validator import PosValidator
    from tests.posutil import CONFIG

    d = tmp_path / "data"
    node = make_node(CONFIG, d)

    def validator(n: Node) -> PosValidator:
        return PosValidator(n, lambda: None, [0], coinbase=b"\x01" * 20,
                            publish_block=lambda b, body: None, publish_attestation=lambda d: None,
                            publish_slashing=lambda d: None)

    v = validator(node)
    assert v._may_sign(0, slot=5) and v._may_sign(0, target_epoch=2)
    node.close()
    again = make_node(CONFIG, d)
    v2 = validator(again)
    assert not v2._may_sign(0, slot=5) and not v2._may_sign(0, slot=4)
    assert not v2._may_sign(0, target_epoch=2)
    assert v2._may_sign(0, slot=6) and v2._may_sign(0, target_epoch=3)
    again.close()


def test_merge_by_terminal_total_difficulty() -> None:
    """EIP-3675's trigger: the first PoW block whose total difficulty reaches the TTD is
    terminal (whatever its number); its child must be PoS."""
    from layerlab.l1.chain.config import parse_config
    from tests.posutil import GENESIS_TS, VALIDATORS

    initial = 20_000  # minimal PoW preset: genesis difficulty and total
    config = parse_config({"timestamp": GENESIS_TS, "consensus": {
        "engine": "merge", "validators": VALIDATORS, "terminalTotalDifficulty": initial + 2 * initial + 1}})
    node = make_node(config, None)
    merge = _merge_engine(node)
    while not merge.is_terminal(node.head):
        assert merge.active_pos() is None
        block, receipts = _pow_block(node, node.head.timestamp + 2)  # on-target: difficulty stays
        node.commit_local(block, b"", receipts)
        assert node.head.block_number <= 4
    terminal = node.head
    record = merge.pow.record(terminal.hash)
    assert record is not None and record.total_difficulty >= initial * 3 + 1
    assert record.total_difficulty - record.difficulty < initial * 3 + 1
    assert node.engine.status()["phase"] == "pos"  # type: ignore[union-attr]
    pow_child, _ = _pow_block(node, terminal.timestamp + 2)
    with pytest.raises(InvalidBlock):
        node.import_block(pow_child, b"", now=float(pow_child.header.timestamp) + 0.1)
    pos_block = propose(node, slot_of(node, terminal) + 1)
    assert node.head.hash == pos_block.hash
