"""The PoS state transition read as a spec: pre-state, block, expected post-state.

Covers the codecs, the phase0 shuffle / proposer / committee selection, Casper FFG
justification and finalization on a simulated chain (all honest, 25% offline, 50% offline
with Altair's inactivity leak), slashings with real BLS, block refusals, deposits, exits
and withdrawals.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.crypto import bls
from layerlab.errors import ConsensusError, InvalidSignature
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.pos import MAINNET_LIKE, MINIMAL, BeaconBody, BeaconState, Validator
from layerlab.l1.consensus.types import (
    Attestation,
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    Deposit,
    ExitRequest,
    ProposerSlashing,
    SignedBlockHeader,
    Withdrawal,
)
from tests.unit.consensus.sim import (
    DUMMY_SIGNATURE,
    GWEI_PER_ETH,
    Simulation,
    compute_block_root,
    make_deposit,
    make_key,
    produce_block,
    sign_attestation,
    sign_header,
)

# -- strategies -----------------------------------------------------------------------------

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small = st.integers(min_value=0, max_value=2**20)
root = st.binary(min_size=32, max_size=32)
sig = st.binary(min_size=0, max_size=96)
checkpoints = st.builds(Checkpoint, u64, root)
attestation_data = st.builds(AttestationData, u64, root, checkpoints, checkpoints)
attestations = st.builds(
    Attestation, attestation_data, st.lists(small, max_size=5).map(lambda xs: tuple(sorted(set(xs)))), sig
)
headers = st.builds(SignedBlockHeader, u64, small, root, sig)
deposits = st.builds(Deposit, st.binary(max_size=48), st.binary(max_size=20), u64, sig, u64)
withdrawals = st.builds(Withdrawal, u64, small, st.binary(max_size=20), u64)
bodies = st.builds(
    BeaconBody,
    proposer_index=small,
    randao_reveal=sig,
    attestations=st.lists(attestations, max_size=3).map(tuple),
    proposer_slashings=st.lists(st.builds(ProposerSlashing, headers, headers), max_size=2).map(tuple),
    attester_slashings=st.lists(st.builds(AttesterSlashing, attestations, attestations), max_size=2).map(
        tuple
    ),
    deposits=st.lists(deposits, max_size=3).map(tuple),
    exits=st.lists(st.builds(ExitRequest, st.binary(max_size=48), st.binary(max_size=20)), max_size=3).map(
        tuple
    ),
    withdrawals=st.lists(withdrawals, max_size=3).map(tuple),
)
validators = st.builds(
    Validator,
    pubkey=st.binary(min_size=48, max_size=48),
    withdrawal_address=st.binary(min_size=20, max_size=20),
    effective_balance=u64,
    balance=u64,
    activation_epoch=u64,
    exit_epoch=u64,
    withdrawable_epoch=u64,
    slashed=st.booleans(),
    inactivity_score=u64,
    withdrawn=st.booleans(),
)


@st.composite
def states(draw: st.DrawFn) -> BeaconState:
    vals = tuple(draw(st.lists(validators, max_size=4)))
    n = len(vals)
    flags = st.lists(st.integers(0, 7), min_size=n, max_size=n).map(tuple)
    return BeaconState(
        preset=draw(st.sampled_from([MINIMAL, MAINNET_LIKE])),
        slot=draw(u64),
        genesis_slot=draw(u64),
        genesis_root=draw(root),
        validators=vals,
        randao_mix=draw(root),
        previous_epoch_mix=draw(root),
        current_epoch_mix=draw(root),
        block_roots=tuple(draw(st.lists(st.tuples(u64, root), max_size=4))),
        latest_block_root=draw(root),
        previous_epoch_participation=draw(flags),
        current_epoch_participation=draw(flags),
        justification_bits=draw(st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans())),
        previous_justified=draw(checkpoints),
        current_justified=draw(checkpoints),
        finalized=draw(checkpoints),
        next_withdrawal_index=draw(u64),
        deposit_count=draw(u64),
    )


# -- codecs ---------------------------------------------------------------------------------


@given(bodies)
@settings(max_examples=60, deadline=None)
def test_body_round_trip(body: BeaconBody) -> None:
    encoded = body.encode()
    assert BeaconBody.decode(encoded) == body
    assert BeaconBody.decode(encoded).encode() == encoded
    assert body.root() == BeaconBody.decode(encoded).root()


@given(states())
@settings(max_examples=40, deadline=None)
def test_state_round_trip(state: BeaconState) -> None:
    encoded = state.encode()
    assert BeaconState.decode(encoded) == state
    assert BeaconState.decode(encoded).root() == state.root()


def test_simulated_state_round_trips() -> None:
    sim = Simulation()
    sim.run_epochs(3)
    assert BeaconState.decode(sim.state.encode()) == sim.state


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\xff", b"\x80", b"\xc0", b"\xc1\x80", b"\xc3\x01\x02\x03", b"\x00" * 40, b"\xb8\x05abc"],
)
def test_decode_garbage_raises(garbage: bytes) -> None:
    with pytest.raises(ConsensusError):
        BeaconBody.decode(garbage)
    with pytest.raises(ConsensusError):
        BeaconState.decode(garbage)


def test_decode_rejects_non_canonical_fields() -> None:
    fields: list[object] = [1, b"r", [], [], [], [], [], []]
    assert BeaconBody.decode(rlp.encode(fields)) == BeaconBody(proposer_index=1, randao_reveal=b"r")
    with pytest.raises(ConsensusError, match="leading zero"):
        BeaconBody.decode(rlp.encode([b"\x00\x01", *fields[1:]]))
    with pytest.raises(ConsensusError, match="expected 8 fields"):
        BeaconBody.decode(rlp.encode(fields[:-1]))
    with pytest.raises(ConsensusError, match=r"BeaconBody\.attestations: expected a list, got a byte string"):
        BeaconBody.decode(rlp.encode([1, b"r", b"not a list", [], [], [], [], []]))


@given(st.binary(max_size=200))
@settings(max_examples=200, deadline=None)
def test_decode_random_bytes_only_raises_consensus_error(data: bytes) -> None:
    for cls in (BeaconBody, BeaconState):
        with contextlib.suppress(ConsensusError):
            cls.decode(data)


# -- shuffling, proposers, committees -------------------------------------------------------


@given(st.integers(1, 300), root)
@settings(max_examples=15, deadline=None)
def test_list_shuffle_matches_compute_shuffled_index(count: int, seed: bytes) -> None:
    positions = pos._shuffled_positions(seed, count)
    assert sorted(positions) == list(range(count))
    for i in range(0, count, max(1, count // 7)):
        assert positions[i] == pos.compute_shuffled_index(i, count, seed)


def _genesis(balances_eth: list[int], preset: pos.PosPreset = MINIMAL, genesis_slot: int = 0) -> BeaconState:
    keys = [make_key(f"validator-{i}") for i in range(len(balances_eth))]
    return pos.genesis_state(
        preset,
        [(k.pubkey, k.address, b * GWEI_PER_ETH) for k, b in zip(keys, balances_eth, strict=True)],
        hashlib.sha256(b"genesis").digest(),
        genesis_slot,
    )


def test_proposer_selection_is_deterministic_and_stake_weighted() -> None:
    state = _genesis([32] + [8] * 7)
    assert [pos.get_beacon_proposer_index(state, s) for s in range(4)] == [
        pos.get_beacon_proposer_index(state, s) for s in range(4)
    ]
    counts: Counter[int] = Counter()
    for k in range(500):
        mixed = replace(state, current_epoch_mix=hashlib.sha256(k.to_bytes(4, "big")).digest())
        for slot in range(MINIMAL.slots_per_epoch):
            counts[pos.get_beacon_proposer_index(mixed, slot)] += 1
    others = sum(counts[i] for i in range(1, 8)) / 7
    ratio = counts[0] / others
    # phase0 walks a shuffled permutation accepting a candidate with probability eb/32: an
    # 8 ETH validator is accepted with p = 64/256, so the 32 ETH one, at a uniform position k
    # in 0..7, wins with mean(0.75**k) = 0.45 and each other with 0.55/7. That is 5.7x, not
    # the 4x of exact proportionality: the walk favours the big validator a little more.
    p_big = sum(0.75**k for k in range(8)) / 8
    expected = p_big / ((1 - p_big) / 7)
    assert abs(ratio - expected) / expected < 0.15, (ratio, expected, counts)
    assert ratio > 3.5


@given(st.integers(1, 40), st.integers(0, 3), root)
@settings(max_examples=25, deadline=None)
def test_every_active_validator_attests_exactly_once_per_epoch(n: int, epoch: int, mix: bytes) -> None:
    state = _genesis([32] * n)
    state = replace(state, slot=epoch * 4 + 1, current_epoch_mix=mix)
    committees = [pos.get_committee(state, slot) for slot in range(epoch * 4, epoch * 4 + 4)]
    members = [i for c in committees for i in c]
    assert sorted(members) == list(range(n))
    assert all(list(c) == sorted(c) for c in committees)
    if n < MINIMAL.slots_per_epoch:
        assert any(len(c) == 0 for c in committees)


def test_seed_is_fixed_within_an_epoch() -> None:
    sim = Simulation()
    sim.run_until(5)
    committees_before = [pos.get_committee(sim.state_at(5), s) for s in range(4, 8)]
    sim.run_until(7)
    assert [pos.get_committee(sim.state, s) for s in range(4, 8)] == committees_before
    assert sim.state.randao_mix != sim.state.current_epoch_mix


# -- finality on a simulated chain ----------------------------------------------------------


def test_honest_chain_justifies_and_finalizes_like_phase0() -> None:
    sim = Simulation()
    sim.run_epochs(8)
    # (current_justified epoch, finalized epoch) seen at the first slot of each epoch
    seen = {e: (j.epoch, f.epoch) for e, (j, f) in sim.checkpoints.items()}
    assert seen[1] == (0, 0) and seen[2] == (0, 0)
    assert seen[3] == (2, 0)  # end of epoch 2: epochs 1 and 2 justified
    assert seen[4] == (3, 2)  # end of epoch 3: 2 -> 3 supermajority link finalizes 2
    for e in range(4, 9):
        assert seen[e] == (e - 1, e - 2)
    block_at_8 = max((b for b in sim.blocks if b.slot <= 8), key=lambda b: b.slot)
    assert sim.checkpoints[4][1] == Checkpoint(2, block_at_8.root)
    assert all(v.balance > 32 * GWEI_PER_ETH for v in sim.state.validators)


def test_finality_continues_with_a_quarter_offline() -> None:
    sim = Simulation(offline={0, 1})
    sim.run_epochs(20)
    finalized = [sim.checkpoints[e][1].epoch for e in range(6, 21)]
    assert finalized == sorted(finalized)
    assert all(e - f <= 4 for e, f in zip(range(6, 21), finalized, strict=True))
    assert not pos.is_in_inactivity_leak(sim.state)
    offline = [sim.state.validators[i].balance for i in (0, 1)]
    online = [sim.state.validators[i].balance for i in range(2, 8)]
    assert max(offline) < 32 * GWEI_PER_ETH < min(online)


def test_half_offline_stops_justification_until_the_leak_restores_finality() -> None:
    sim = Simulation(offline={0, 1, 2, 3})
    spe = MINIMAL.slots_per_epoch
    online = range(4, 8)
    participants_never_lose = True
    leak_start: int | None = None
    recovered: int | None = None
    for epoch in range(1, 50):
        last = epoch * spe - 1
        sim.run_until(last)
        pre = sim.state_at(last)
        post = sim.state_at(last + 1)
        if pos.is_in_inactivity_leak(post) and leak_start is None:
            leak_start = epoch
        if pos.is_in_inactivity_leak(pre):
            for i in online:
                if pre.previous_epoch_participation[i] & pos.TIMELY_TARGET_FLAG:
                    participants_never_lose &= post.validators[i].balance >= pre.validators[i].balance
        if post.finalized.epoch > 0:
            recovered = epoch
            break
    assert leak_start is not None and leak_start <= 7
    assert all(sim.checkpoints[e][0].epoch == 0 for e in range(1, 30))
    assert recovered is not None and recovered <= 40, recovered
    assert participants_never_lose
    state = sim.state_at(sim.slot)
    for i in range(4):
        assert state.validators[i].balance < 17 * GWEI_PER_ETH
        assert state.validators[i].inactivity_score > 80
    for i in online:
        assert state.validators[i].balance > 31 * GWEI_PER_ETH


def test_chain_can_start_mid_epoch_after_a_fork() -> None:
    sim = Simulation(genesis_slot=1001)
    genesis_epoch = 1001 // MINIMAL.slots_per_epoch
    assert sim.state.finalized == Checkpoint(genesis_epoch, sim.genesis_root)
    sim.run_epochs(6)
    j, f = sim.checkpoints[genesis_epoch + 5]
    assert f.epoch >= genesis_epoch + 2 and j.epoch > f.epoch


# -- slashings (real BLS) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_sim() -> Simulation:
    sim = Simulation(sign=True)
    sim.run_epochs(2)
    return sim


def _next_slot_avoiding(state: BeaconState, avoid: set[int]) -> int:
    """The first slot after ``state`` whose proposer is not in ``avoid``."""
    slot = state.slot + 1
    while pos.get_beacon_proposer_index(pos.process_slots(state, slot), slot) in avoid:
        slot += 1
    return slot


def _next_online_slot(sim: Simulation, avoid: set[int]) -> int:
    return _next_slot_avoiding(sim.state, avoid)


def test_double_proposal_slashes_and_ejects_and_pays_the_whistleblower(signed_sim: Simulation) -> None:
    sim = signed_sim
    state = sim.state
    offender = 5
    key = sim.keys[offender]
    evidence = ProposerSlashing(
        sign_header(key, sim.slot, offender, b"\x01" * 32), sign_header(key, sim.slot, offender, b"\x02" * 32)
    )
    slot = _next_online_slot(sim, {offender})
    block = produce_block(state, slot, sim.keys, sign=True, proposer_slashings=(evidence,))
    control = produce_block(state, slot, sim.keys, sign=True)
    whistleblower = block.body.proposer_index
    eb = state.validators[offender].effective_balance
    after = block.post_state.validators[offender]
    assert after.slashed
    assert after.exit_epoch == pos.get_current_epoch(block.post_state) + 1 + MINIMAL.exit_delay_epochs
    assert after.withdrawable_epoch > after.exit_epoch
    assert (
        after.balance
        == control.post_state.validators[offender].balance - eb // MINIMAL.min_slashing_penalty_quotient
    )
    gain = (
        block.post_state.validators[whistleblower].balance
        - control.post_state.validators[whistleblower].balance
    )
    assert gain == eb // MINIMAL.whistleblower_reward_quotient
    # the same evidence cannot slash twice
    later = _next_slot_avoiding(block.post_state, {offender})
    with pytest.raises(ConsensusError, match="not slashable"):
        produce_block(block.post_state, later, sim.keys, sign=True, proposer_slashings=(evidence,))


def test_proposer_slashing_with_forged_signature_is_refused(signed_sim: Simulation) -> None:
    sim = signed_sim
    offender = 5
    forger = make_key("not-validator-5")
    evidence = ProposerSlashing(
        sign_header(sim.keys[offender], sim.slot, offender, b"\x01" * 32),
        sign_header(forger, sim.slot, offender, b"\x02" * 32),
    )
    slot = _next_online_slot(sim, {offender})
    with pytest.raises(InvalidSignature):
        produce_block(sim.state, slot, sim.keys, sign=True, proposer_slashings=(evidence,))


def test_proposer_slashing_of_one_block_is_refused(signed_sim: Simulation) -> None:
    sim = signed_sim
    header = sign_header(sim.keys[5], sim.slot, 5, b"\x01" * 32)
    slot = _next_online_slot(sim, {5})
    with pytest.raises(ConsensusError, match="same block"):
        produce_block(
            sim.state, slot, sim.keys, sign=True, proposer_slashings=(ProposerSlashing(header, header),)
        )


def _vote(head: bytes, source: int, target: int, slot: int | None = None) -> AttestationData:
    return AttestationData(
        slot=target * 4 if slot is None else slot,
        beacon_block_root=head,
        source=Checkpoint(source, b"\x0a" * 32),
        target=Checkpoint(target, b"\x0b" * 32),
    )


@pytest.mark.parametrize(
    ("data_1", "data_2"),
    [
        (_vote(b"\x01" * 32, 0, 1), _vote(b"\x02" * 32, 0, 1)),  # double vote
        (_vote(b"\x01" * 32, 0, 3), _vote(b"\x01" * 32, 1, 2)),  # surround vote
    ],
    ids=["double-vote", "surround-vote"],
)
def test_attester_slashing_slashes_the_intersection(
    signed_sim: Simulation, data_1: AttestationData, data_2: AttestationData
) -> None:
    sim = signed_sim
    a1 = sign_attestation(sim.keys, data_1, [1, 2, 3])
    a2 = sign_attestation(sim.keys, data_2, [2, 3, 4])
    slot = _next_online_slot(sim, {2, 3})
    block = produce_block(
        sim.state, slot, sim.keys, sign=True, attester_slashings=(AttesterSlashing(a1, a2),)
    )
    slashed = [i for i, v in enumerate(block.post_state.validators) if v.slashed]
    assert slashed == [2, 3]


def test_non_slashable_attestation_pair_is_refused(signed_sim: Simulation) -> None:
    sim = signed_sim
    a1 = sign_attestation(sim.keys, _vote(b"\x01" * 32, 0, 1), [1, 2])
    a2 = sign_attestation(sim.keys, _vote(b"\x01" * 32, 1, 2), [1, 2])  # consecutive, honest
    slot = _next_online_slot(sim, set())
    with pytest.raises(ConsensusError, match="not a double or surround vote"):
        produce_block(sim.state, slot, sim.keys, sign=True, attester_slashings=(AttesterSlashing(a1, a2),))
    disjoint = sign_attestation(sim.keys, _vote(b"\x02" * 32, 0, 1), [3, 4])
    with pytest.raises(ConsensusError, match="no slashable validator"):
        produce_block(
            sim.state, slot, sim.keys, sign=True, attester_slashings=(AttesterSlashing(a1, disjoint),)
        )


def test_attester_slashing_with_forged_aggregate_is_refused(signed_sim: Simulation) -> None:
    sim = signed_sim
    a1 = sign_attestation(sim.keys, _vote(b"\x01" * 32, 0, 1), [1, 2])
    forged_keys = dict(sim.keys)
    forged_keys[2] = make_key("impostor")
    a2 = sign_attestation(forged_keys, _vote(b"\x02" * 32, 0, 1), [1, 2])
    slot = _next_online_slot(sim, set())
    with pytest.raises(InvalidSignature):
        produce_block(sim.state, slot, sim.keys, sign=True, attester_slashings=(AttesterSlashing(a1, a2),))


# -- block refusals leave the input state unchanged -----------------------------------------


def _refused(
    state: BeaconState,
    call: Callable[[], object],
    exc: type[Exception] = ConsensusError,
    match: str | None = None,
) -> None:
    encoded = state.encode()
    with pytest.raises(exc, match=match):
        call()
    assert state.encode() == encoded


def test_invalid_blocks_are_refused_without_touching_the_state(signed_sim: Simulation) -> None:
    sim = signed_sim
    state = sim.state
    slot = sim.slot + 1
    good = produce_block(state, slot, sim.keys, sign=True, attestations=tuple(sim.pending))
    body, proposer = good.body, good.body.proposer_index
    pre = pos.process_slots(state, slot)

    def run(
        body: BeaconBody = body, signature: bytes = good.signature, block_root: bytes = good.root
    ) -> None:
        pos.process_block(state, slot, state.latest_block_root, block_root, body, signature)

    wrong = (proposer + 1) % 8
    _refused(state, lambda: run(replace(body, proposer_index=wrong)), match="wrong proposer")
    _refused(state, lambda: run(signature=bls.sign(sim.keys[wrong].secret, b"x" * 32)), InvalidSignature)
    _refused(state, lambda: run(block_root=b"\x99" * 32), InvalidSignature, "proposer signature")
    epoch = pos.compute_epoch_at_slot(MINIMAL, slot)
    bad_reveal = bls.sign(sim.keys[proposer].secret, pos.randao_signing_root(epoch + 1))
    _refused(state, lambda: run(replace(body, randao_reveal=bad_reveal)), InvalidSignature, "randao")

    att = body.attestations[0]
    forged = replace(att, signature=bls.sign(sim.keys[att.validator_indices[0]].secret, b"other"))
    _refused(state, lambda: run(replace(body, attestations=(forged,))), InvalidSignature, "aggregate")

    stale_slot = slot - MINIMAL.slots_per_epoch - 1
    stale_data = replace(att.data, slot=stale_slot)
    stale = sign_attestation(sim.keys, stale_data, pos.get_committee(pre, stale_slot))
    _refused(state, lambda: run(replace(body, attestations=(stale,))), match="inclusion window|target epoch")
    early = replace(att, data=replace(att.data, slot=slot))
    _refused(state, lambda: run(replace(body, attestations=(early,))), match="inclusion window")

    fake = Withdrawal(0, 1, sim.keys[1].address, 10**9)
    _refused(state, lambda: run(replace(body, withdrawals=(fake,))), match="withdrawals mismatch")

    deposit = make_deposit(make_key("newcomer"), 32 * GWEI_PER_ETH, index=state.deposit_count + 1)
    _refused(state, lambda: run(replace(body, deposits=(deposit,))), match="deposit index")

    _refused(state, lambda: pos.process_block(state, slot, b"\x00" * 32, good.root, body, good.signature))
    _refused(
        state, lambda: pos.process_block(state, state.slot, state.latest_block_root, good.root, body, b"")
    )
    # and the untouched state still accepts the honest block
    run()


def test_attestation_with_wrong_source_or_outsider_is_refused() -> None:
    sim = Simulation()
    sim.run_until(6)
    att = sim.pending[-1]
    state, slot = sim.state, sim.slot + 1
    wrong_source = replace(att, data=replace(att.data, source=Checkpoint(0, b"\x07" * 32)))
    with pytest.raises(ConsensusError, match="source"):
        produce_block(state, slot, sim.keys, sign=False, attestations=(wrong_source,))
    committee = set(pos.get_committee(sim.state_at(slot), att.data.slot))
    outsider = min(set(range(8)) - committee)
    bad = replace(att, validator_indices=tuple(sorted({*att.validator_indices, outsider})))
    with pytest.raises(ConsensusError, match="not in the committee"):
        produce_block(state, slot, sim.keys, sign=False, attestations=(bad,))
    unsorted = replace(att, validator_indices=tuple(reversed(att.validator_indices)))
    if len(att.validator_indices) > 1:
        with pytest.raises(ConsensusError, match="sorted"):
            produce_block(state, slot, sim.keys, sign=False, attestations=(unsorted,))


# -- deposits, exits, withdrawals -----------------------------------------------------------


def test_deposit_activates_after_the_delay_and_forged_or_small_deposits_are_skipped() -> None:
    sim = Simulation()
    sim.run_until(1)
    newcomer, forged, small_key = make_key("newcomer"), make_key("forged"), make_key("small")
    sim.queued_deposits.extend(
        [
            make_deposit(newcomer, 32 * GWEI_PER_ETH, 0),
            make_deposit(forged, 32 * GWEI_PER_ETH, 1, forge=True),
            make_deposit(small_key, GWEI_PER_ETH // 2, 2),
            make_deposit(sim.keys[3], 2 * GWEI_PER_ETH, 3),  # top-up of a known validator
        ]
    )
    before = sim.state.validators[3].balance
    while sim.queued_deposits:
        sim.step()
    state = sim.state
    assert state.deposit_count == 4
    assert len(state.validators) == 9
    assert state.validators[8].pubkey == newcomer.pubkey
    assert state.validators[8].activation_epoch == pos.FAR_FUTURE_EPOCH
    assert state.validators[3].balance >= before + 2 * GWEI_PER_ETH
    sim.add_key(8, newcomer)
    included_epoch = pos.get_current_epoch(state)
    sim.run_epochs(1)
    activation = sim.state.validators[8].activation_epoch
    assert activation == included_epoch + 1 + MINIMAL.activation_delay_epochs
    sim.run_until(activation * MINIMAL.slots_per_epoch)
    assert 8 not in pos.get_active_validator_indices(sim.state, activation - 1)
    assert 8 in pos.get_active_validator_indices(sim.state, activation)
    assert any(8 in pos.get_committee(sim.state, s) for s in range(sim.slot, sim.slot + 4))
    sim.run_epochs(2)
    assert sim.state.previous_epoch_participation[8] & pos.TIMELY_TARGET_FLAG


def test_exit_then_withdrawable_then_one_full_withdrawal() -> None:
    sim = Simulation()
    sim.run_until(2)
    leaver = 6
    address = sim.keys[leaver].address
    sim.queued_exits.extend(
        [ExitRequest(sim.keys[leaver].pubkey, b"\x00" * 20), ExitRequest(b"\x01" * 48, address)]
    )
    while sim.queued_exits:
        sim.step()
    assert sim.state.validators[leaver].exit_epoch == pos.FAR_FUTURE_EPOCH  # wrong sender, unknown key
    sim.queued_exits.append(ExitRequest(sim.keys[leaver].pubkey, address))
    while sim.queued_exits:
        sim.step()
    v = sim.state.validators[leaver]
    epoch = pos.get_current_epoch(sim.state)
    assert v.exit_epoch == epoch + 1 + MINIMAL.exit_delay_epochs
    assert v.withdrawable_epoch == v.exit_epoch + MINIMAL.withdrawable_delay_epochs

    spe = MINIMAL.slots_per_epoch
    sim.run_until(v.withdrawable_epoch * spe - 1)
    assert pos.expected_withdrawals(sim.state) == ()
    assert leaver not in pos.get_active_validator_indices(sim.state, v.exit_epoch)
    at = sim.state_at(v.withdrawable_epoch * spe)
    expected = pos.expected_withdrawals(at)
    balance = at.validators[leaver].balance
    assert expected == (Withdrawal(0, leaver, address, balance),)
    while not sim.state.validators[leaver].withdrawn:
        sim.step()
    paying = next(b for b in sim.blocks if b.body.withdrawals)
    assert paying.body.withdrawals[0].amount_gwei >= balance
    assert sim.state.validators[leaver].balance == 0
    assert sim.state.next_withdrawal_index == 1
    sim.run_epochs(2)
    assert pos.expected_withdrawals(sim.state_at(sim.slot + 1)) == ()
    assert sum(len(b.body.withdrawals) for b in sim.blocks) == 1


def test_genesis_rejects_bad_validator_sets() -> None:
    key = make_key("a")
    with pytest.raises(ConsensusError, match="at least one"):
        pos.genesis_state(MINIMAL, [], b"\x00" * 32)
    with pytest.raises(ConsensusError, match="duplicate"):
        pos.genesis_state(MINIMAL, [(key.pubkey, key.address, 32 * GWEI_PER_ETH)] * 2, b"\x00" * 32)
    with pytest.raises(ConsensusError, match="below min deposit"):
        pos.genesis_state(MINIMAL, [(key.pubkey, key.address, 1)], b"\x00" * 32)


def test_effective_balance_hysteresis() -> None:
    state = _genesis([32, 32])
    v = state.validators[0]
    nudged = replace(
        state, validators=(replace(v, balance=v.balance - GWEI_PER_ETH // 5), state.validators[1])
    )
    assert pos.process_effective_balance_updates(nudged).validators[0].effective_balance == 32 * GWEI_PER_ETH
    dropped = replace(
        state, validators=(replace(v, balance=v.balance - GWEI_PER_ETH // 3), state.validators[1])
    )
    assert pos.process_effective_balance_updates(dropped).validators[0].effective_balance == 31 * GWEI_PER_ETH
    rich = replace(state, validators=(replace(v, balance=40 * GWEI_PER_ETH), state.validators[1]))
    assert pos.process_effective_balance_updates(rich).validators[0].effective_balance == 32 * GWEI_PER_ETH


def test_block_roots_history_is_bounded_and_answers_recent_slots() -> None:
    sim = Simulation()
    sim.run_epochs(10)
    state = sim.state
    assert len(state.block_roots) <= 4 * MINIMAL.slots_per_epoch
    by_slot = {b.slot: b.root for b in sim.blocks}
    for slot in range(state.slot - 2 * MINIMAL.slots_per_epoch, state.slot + 1):
        expected = by_slot[max(s for s in by_slot if s <= slot)]
        assert pos.get_block_root_at_slot(state, slot) == expected
    with pytest.raises(ConsensusError, match="older than the kept history"):
        pos.get_block_root_at_slot(state, 1)


def test_distinct_payloads_give_distinct_blocks() -> None:
    body = BeaconBody(proposer_index=0, randao_reveal=DUMMY_SIGNATURE)
    assert compute_block_root(1, b"\x00" * 32, body) != compute_block_root(1, b"\x00" * 32, body, b"x")
