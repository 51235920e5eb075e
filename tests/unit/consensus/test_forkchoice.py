"""LMD-GHOST + Casper FFG fork choice and the slashing detector, read as a spec.

Blocks are produced with the real state transition (``verify_signatures=False`` except in
the focused BLS tests); the store only sees roots, parents, slots and post-states.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.errors import ConsensusError, InvalidSignature
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.forkchoice import SlashingDetector, Store, verify_proposer_slashing_signatures
from layerlab.l1.consensus.pos import MINIMAL, BeaconState
from layerlab.l1.consensus.types import (
    Attestation,
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    Root,
    SignedBlockHeader,
)
from tests.unit.consensus.sim import (
    DUMMY_SIGNATURE,
    GWEI_PER_ETH,
    Block,
    Key,
    Simulation,
    make_key,
    produce_block,
    sign_attestation,
    sign_header,
)

GENESIS_ROOT = hashlib.sha256(b"fork-choice genesis").digest()


@pytest.fixture(scope="module")
def keys() -> dict[int, Key]:
    return {i: make_key(f"validator-{i}") for i in range(8)}


@pytest.fixture(scope="module")
def genesis(keys: dict[int, Key]) -> BeaconState:
    return pos.genesis_state(
        MINIMAL, [(k.pubkey, k.address, 32 * GWEI_PER_ETH) for k in keys.values()], GENESIS_ROOT
    )


def _store(genesis: BeaconState) -> Store:
    return Store(MINIMAL, GENESIS_ROOT, genesis)


def _add(store: Store, *blocks: Block) -> None:
    for b in blocks:
        store.on_block(b.root, b.parent_root, b.slot, b.post_state)


def _vote(head: Block | Root, slot: int, indices: list[int]) -> Attestation:
    root = head.root if isinstance(head, Block) else head
    data = AttestationData(slot, root, Checkpoint(0, GENESIS_ROOT), Checkpoint(0, GENESIS_ROOT))
    return Attestation(data, tuple(sorted(indices)), DUMMY_SIGNATURE)


@pytest.fixture(scope="module")
def forks(genesis: BeaconState, keys: dict[int, Key]) -> tuple[Block, Block, Block]:
    """A short branch ``a`` (slot 1) and a longer branch ``b1 <- b2`` (slots 2, 3)."""
    a = produce_block(genesis, 1, keys, sign=False, payload=b"a")
    b1 = produce_block(genesis, 2, keys, sign=False, payload=b"b")
    b2 = produce_block(b1.post_state, 3, keys, sign=False)
    return a, b1, b2


def test_heaviest_branch_wins_not_the_longest(
    genesis: BeaconState, forks: tuple[Block, Block, Block]
) -> None:
    a, b1, b2 = forks
    store = _store(genesis)
    _add(store, a, b1, b2)
    store.on_attestation(_vote(a, 3, [0, 1, 2, 3, 4]), verify_signature=False)
    store.on_attestation(_vote(b2, 3, [5, 6, 7]), verify_signature=False)
    assert store.get_head() == a.root
    assert store.get_weight(a.root) == 5 * 32 * GWEI_PER_ETH
    assert store.get_weight(b1.root) == 3 * 32 * GWEI_PER_ETH
    assert store.get_weight(GENESIS_ROOT) == 8 * 32 * GWEI_PER_ETH


def test_later_votes_move_the_head_but_older_ones_do_not(
    genesis: BeaconState, forks: tuple[Block, Block, Block]
) -> None:
    a, _, b2 = forks
    store = _store(genesis)
    _add(store, *forks)
    store.on_attestation(_vote(a, 3, [0, 1, 2, 3, 4]), verify_signature=False)
    assert store.get_head() == a.root
    moved = replace(
        _vote(b2, 4, [0, 1, 2]), data=replace(_vote(b2, 4, []).data, target=Checkpoint(1, b2.root))
    )
    store.on_attestation(moved, verify_signature=False)  # epoch 1 target: newer message
    assert store.get_head() == b2.root
    store.on_attestation(_vote(a, 3, [0, 1, 2]), verify_signature=False)  # stale, ignored
    assert store.get_head() == b2.root


def test_ties_are_broken_by_the_higher_root_whatever_the_arrival_order(
    genesis: BeaconState, forks: tuple[Block, Block, Block]
) -> None:
    a, b1, b2 = forks
    heads = set()
    for order in ((a, b1, b2), (b1, b2, a)):
        store = _store(genesis)
        _add(store, *order)
        heads.add(store.get_head())
    expected = a.root if a.root > b1.root else b2.root
    assert heads == {expected}


def test_attester_slashing_drops_the_equivocators_votes(
    genesis: BeaconState, forks: tuple[Block, Block, Block], keys: dict[int, Key]
) -> None:
    a, _, b2 = forks
    store = _store(genesis)
    _add(store, *forks)
    store.on_attestation(_vote(a, 3, [0, 1, 2, 3, 4]), verify_signature=False)
    store.on_attestation(_vote(b2, 3, [5, 6, 7]), verify_signature=False)
    assert store.get_head() == a.root
    on_a = sign_attestation(keys, _vote(a, 3, []).data, [0, 1, 2])
    on_b = sign_attestation(keys, _vote(b2, 3, []).data, [0, 1, 2])
    store.on_attester_slashing(AttesterSlashing(on_a, on_b))
    assert store.equivocating_indices == {0, 1, 2}
    assert store.get_head() == b2.root
    store.on_attestation(_vote(a, 3, [0, 1, 2]), verify_signature=False)  # still ignored
    assert store.get_head() == b2.root
    forged = sign_attestation({**keys, 3: make_key("impostor")}, _vote(b2, 3, []).data, [3])
    with pytest.raises(InvalidSignature):
        store.on_attester_slashing(
            AttesterSlashing(sign_attestation(keys, _vote(a, 3, []).data, [3]), forged)
        )
    with pytest.raises(ConsensusError, match="neither"):
        store.on_attester_slashing(AttesterSlashing(on_a, on_a))


def test_attestations_are_checked_before_counting(
    genesis: BeaconState, forks: tuple[Block, Block, Block], keys: dict[int, Key]
) -> None:
    a, _, b2 = forks
    store = _store(genesis)
    _add(store, *forks)
    signed = sign_attestation(keys, _vote(a, 3, []).data, [1, 2])
    store.on_attestation(signed)
    assert store.latest_message(1) is not None
    with pytest.raises(InvalidSignature):
        store.on_attestation(replace(signed, validator_indices=(1, 3)))
    with pytest.raises(ConsensusError, match="unknown block"):
        store.on_attestation(_vote(b"\x05" * 32, 3, [4]), verify_signature=False)
    with pytest.raises(ConsensusError, match="later block"):
        store.on_attestation(_vote(b2, 2, [4]), verify_signature=False)
    wrong_target = replace(_vote(b2, 4, [4]).data, target=Checkpoint(1, a.root))
    with pytest.raises(ConsensusError, match="checkpoint"):
        store.on_attestation(Attestation(wrong_target, (4,), DUMMY_SIGNATURE), verify_signature=False)


def test_unknown_parent_and_bad_post_state_are_refused(
    genesis: BeaconState, forks: tuple[Block, Block, Block]
) -> None:
    a, b1, b2 = forks
    store = _store(genesis)
    with pytest.raises(ConsensusError, match="unknown parent"):
        store.on_block(b2.root, b2.parent_root, b2.slot, b2.post_state)
    with pytest.raises(ConsensusError, match="post-state"):
        store.on_block(a.root, a.parent_root, a.slot, b1.post_state)
    _add(store, a)
    assert store.is_descendant(a.root, GENESIS_ROOT) and store.is_descendant(a.root, a.root)
    assert not store.is_descendant(GENESIS_ROOT, a.root)
    assert store.state_of(a.root) is a.post_state


@pytest.fixture(scope="module")
def finalized_run() -> Simulation:
    sim = Simulation()
    sim.run_epochs(7)
    return sim


def _store_following(sim: Simulation) -> Store:
    genesis = pos.genesis_state(
        MINIMAL, [(k.pubkey, k.address, 32 * GWEI_PER_ETH) for k in sim.keys.values()], sim.genesis_root
    )
    store = Store(MINIMAL, sim.genesis_root, genesis)
    for block in sim.blocks:
        _add(store, block)
        for att in block.body.attestations:
            store.on_attestation(att, verify_signature=False)
    return store


def test_store_follows_the_simulated_chain_and_its_finality(finalized_run: Simulation) -> None:
    sim = finalized_run
    store = _store_following(sim)
    assert store.get_head() == sim.head
    assert store.finalized == sim.state.finalized
    assert store.justified == sim.state.current_justified
    assert store.finalized.epoch >= 4


def test_block_conflicting_with_finality_is_refused_even_on_a_longer_branch(
    finalized_run: Simulation,
) -> None:
    sim = finalized_run
    store = _store_following(sim)
    head_before = store.get_head()
    # a private branch from genesis, longer than the canonical chain
    fork = pos.genesis_state(
        MINIMAL, [(k.pubkey, k.address, 32 * GWEI_PER_ETH) for k in sim.keys.values()], sim.genesis_root
    )
    branch: list[Block] = []
    for slot in range(1, sim.slot + 6):
        block = produce_block(fork, slot, sim.keys, sign=False, payload=b"attacker")
        branch.append(block)
        fork = block.post_state
    assert len(branch) > len(sim.blocks)
    with pytest.raises(ConsensusError, match="conflicts with finalized"):
        _add(store, branch[0])
    # forking off the canonical chain just before the finalized checkpoint is refused too
    finalized_slot = pos.compute_start_slot_at_epoch(MINIMAL, store.finalized.epoch)
    base = max((b for b in sim.blocks if b.slot < finalized_slot), key=lambda b: b.slot)
    sibling = produce_block(base.post_state, finalized_slot + 1, sim.keys, sign=False, payload=b"late fork")
    with pytest.raises(ConsensusError, match="conflicts with finalized"):
        _add(store, sibling)
    assert store.get_head() == head_before


def test_prune_drops_branches_outside_finality(finalized_run: Simulation) -> None:
    sim = finalized_run
    genesis = pos.genesis_state(
        MINIMAL, [(k.pubkey, k.address, 32 * GWEI_PER_ETH) for k in sim.keys.values()], sim.genesis_root
    )
    store = Store(MINIMAL, sim.genesis_root, genesis)
    side = produce_block(genesis, 2, sim.keys, sign=False, payload=b"side")
    _add(store, side)
    for block in sim.blocks:
        _add(store, block)
        for att in block.body.attestations:
            store.on_attestation(att, verify_signature=False)
    head = store.get_head()
    size = len(store)
    dropped = store.prune()
    assert dropped >= 2 and len(store) == size - dropped
    assert side.root not in store and sim.genesis_root not in store
    assert store.finalized.root in store
    assert store.get_head() == head
    with pytest.raises(ConsensusError, match="unknown parent"):
        _add(store, produce_block(side.post_state, 3, sim.keys, sign=False))
    sim2_blocks = [
        b for b in sim.blocks if b.slot > pos.compute_start_slot_at_epoch(MINIMAL, store.finalized.epoch)
    ]
    assert all(store.is_descendant(b.root, store.finalized.root) for b in sim2_blocks)


# -- slashing detector ----------------------------------------------------------------------


def _data(source: int, target: int, head: bytes = b"\x01" * 32) -> AttestationData:
    return AttestationData(
        target * 4, head, Checkpoint(source, b"\x0a" * 32), Checkpoint(target, b"\x0b" * 32)
    )


def test_detector_finds_double_proposals(keys: dict[int, Key]) -> None:
    detector = SlashingDetector()
    h1 = sign_header(keys[3], 10, 3, b"\x01" * 32)
    h2 = sign_header(keys[3], 10, 3, b"\x02" * 32)
    assert detector.observe_proposal(h1) is None
    assert detector.observe_proposal(h1) is None
    assert detector.observe_proposal(sign_header(keys[3], 11, 3, b"\x02" * 32)) is None
    evidence = detector.observe_proposal(h2)
    assert evidence is not None and (evidence.header_1, evidence.header_2) == (h1, h2)


def test_detector_evidence_is_accepted_by_the_chain(keys: dict[int, Key]) -> None:
    sim = Simulation(sign=True)
    sim.run_epochs(1)
    detector = SlashingDetector()
    for block in sim.blocks:
        assert detector.observe_proposal(block.header()) is None
    header = sim.blocks[-1].header()
    twin = sign_header(keys[header.proposer_index], header.slot, header.proposer_index, b"\x07" * 32)
    evidence = detector.observe_proposal(twin)
    assert evidence is not None
    verify_proposer_slashing_signatures(sim.state, evidence)
    with pytest.raises(InvalidSignature):
        verify_proposer_slashing_signatures(
            sim.state, replace(evidence, header_2=replace(twin, proposer_index=0))
        )
    sim.queued_proposer_slashings.append(evidence)
    while sim.queued_proposer_slashings:
        sim.step()
    assert sim.state.validators[header.proposer_index].slashed


def test_detector_finds_double_votes() -> None:
    detector = SlashingDetector()
    first = Attestation(_data(0, 2, b"\x01" * 32), (1, 2), DUMMY_SIGNATURE)
    second = Attestation(_data(0, 2, b"\x02" * 32), (2, 3), DUMMY_SIGNATURE)
    assert detector.observe_attestation(first) == []
    found = detector.observe_attestation(second)
    assert found == [AttesterSlashing(first, second)]
    assert detector.observe_attestation(second) == []  # already reported


@pytest.mark.parametrize("surrounding_first", [True, False])
def test_detector_finds_surround_votes_in_either_order(surrounding_first: bool) -> None:
    detector = SlashingDetector()
    outer = Attestation(_data(1, 5), (4,), DUMMY_SIGNATURE)
    inner = Attestation(_data(2, 3), (4,), DUMMY_SIGNATURE)
    sequence = (outer, inner) if surrounding_first else (inner, outer)
    assert detector.observe_attestation(sequence[0]) == []
    found = detector.observe_attestation(sequence[1])
    assert found == [AttesterSlashing(outer, inner)]
    assert pos.is_slashable_attestation_data(found[0].attestation_1.data, found[0].attestation_2.data)


@st.composite
def honest_histories(draw: st.DrawFn) -> list[Attestation]:
    """Honest votes: per validator one vote per target epoch, targets increasing, sources
    non-decreasing and below the target; validators split between two heads per epoch."""
    epochs = draw(st.integers(1, 8))
    source = 0
    atts: list[Attestation] = []
    for target in range(1, epochs + 1):
        source = draw(st.integers(source, target - 1))
        split = draw(st.sets(st.integers(0, 7)))
        heads = {0: bytes([target]) * 32, 1: bytes([target + 100]) * 32}
        groups = {0: sorted(split), 1: sorted(set(range(8)) - split)}
        for g, members in groups.items():
            if not members:
                continue
            data = _data(source, target, heads[g])
            cut = draw(st.integers(0, len(members)))
            for chunk in (members[:cut], members[cut:], members):
                if chunk:
                    atts.append(Attestation(data, tuple(chunk), DUMMY_SIGNATURE))
    return draw(st.permutations(atts))


@given(honest_histories())
@settings(max_examples=60, deadline=None)
def test_detector_is_silent_on_honest_histories(history: list[Attestation]) -> None:
    detector = SlashingDetector()
    for att in history:
        assert detector.observe_attestation(att) == []


def test_detector_accepts_signed_header_type() -> None:
    header = SignedBlockHeader(1, 0, b"\x01" * 32, DUMMY_SIGNATURE)
    assert SlashingDetector().observe_proposal(header) is None


def test_slashing_detector_window_forgets_old_history_and_keeps_recent() -> None:
    from layerlab.l1.consensus.forkchoice import SlashingDetector
    from layerlab.l1.consensus.types import Attestation, AttestationData, Checkpoint

    def att(epoch: int, head: bytes) -> Attestation:
        data = AttestationData(epoch * 4, head, Checkpoint(max(epoch - 1, 0), b"\x00" * 32),
                               Checkpoint(epoch, b"\x01" * 32))
        return Attestation(data, (7,), b"\x00" * 96)

    detector = SlashingDetector()
    assert detector.observe_attestation(att(3, b"\xaa" * 32)) == []
    assert detector.observe_attestation(att(10, b"\xaa" * 32)) == []
    detector.prune(before_slot=20, before_epoch=5)
    assert detector.observe_attestation(att(3, b"\xbb" * 32)) == []  # forgotten: outside the window
    assert len(detector.observe_attestation(att(10, b"\xbb" * 32))) == 1  # still a double vote
