"""Shard committees, crosslinks, their finality under FFG, and shard fraud proofs.

Pre-state, input, expected post-state, on the minimal preset (4 slots per epoch). Shard
chains are either synthetic header chains (for the crosslink rules) or a real py-evm
chain with a transfer (for fraud proofs, re-executed by :class:`ShardReplica`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.crypto import bls
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l1.chain.blockrlp import encode_block
from layerlab.l1.chain.config import parse_config
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.pos import MINIMAL
from layerlab.l1.sharding.chain import BEACON_GENESIS_ROOT, BeaconChain
from layerlab.l1.sharding.committees import compute_committee, get_shard_committee
from layerlab.l1.sharding.crosslink import (
    CrosslinkRefused,
    FraudProofRefused,
    ShardFraudProof,
    ShardHeader,
    get_final_header,
    get_latest_header,
    is_shard_block_final,
    process_shard_fraud,
    validate_crosslink,
)
from layerlab.l1.sharding.replay import ShardReplica, header_of
from layerlab.l1.storage import MemoryDB

SHARDS = 2
VALIDATORS = 16
T0 = 1_700_000_000


def synthetic_chain(shard: int, length: int) -> list[ShardHeader]:
    """Headers 0..length-1 of a made-up shard chain (hashes from the shard and number)."""
    headers = []
    parent = b"\x00" * 32
    for n in range(length):
        h = hashlib.sha256(f"shard {shard} block {n}".encode()).digest()
        headers.append(ShardHeader(shard, n, h, parent, hashlib.sha256(h).digest()))
        parent = h
    return headers


def no_replay(proof: ShardFraudProof) -> bytes:
    raise AssertionError("no fraud proof expected here")


@pytest.fixture
def chains() -> list[list[ShardHeader]]:
    return [synthetic_chain(s, 40) for s in range(SHARDS)]


@pytest.fixture
def beacon(chains: list[list[ShardHeader]]) -> BeaconChain:
    return BeaconChain(VALIDATORS, [c[0] for c in chains])


# -- committees ------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(validators=st.integers(1, 64), shards=st.integers(1, 8), seed=st.binary(min_size=32, max_size=32))
def test_committees_partition_the_validators_evenly(validators: int, shards: int, seed: bytes) -> None:
    indices = tuple(range(100, 100 + validators))
    committees = [compute_committee(indices, seed, s, shards) for s in range(shards)]
    members = [i for c in committees for i in c]
    assert sorted(members) == list(indices)  # each validator in exactly one committee
    sizes = [len(c) for c in committees]
    assert max(sizes) - min(sizes) <= 1


def test_shard_committees_reshuffle_every_epoch(beacon: BeaconChain, chains: list[list[ShardHeader]]) -> None:
    seen = []
    for slot in range(1, 4 * MINIMAL.slots_per_epoch + 1):
        beacon.produce_block(slot, replay=no_replay)
        if slot % MINIMAL.slots_per_epoch == 0:
            state = beacon.state.beacon
            committees = tuple(get_shard_committee(state, pos.get_current_epoch(state), s, SHARDS)
                               for s in range(SHARDS))
            assert sorted(i for c in committees for i in c) == list(range(VALIDATORS))
            seen.append(committees)
    assert len(set(seen)) > 1  # RANDAO reveals changed the seed


# -- crosslink rules -------------------------------------------------------------------------


def test_full_committee_crosslink_is_accepted_and_extends_the_shard(
        beacon: BeaconChain, chains: list[list[ShardHeader]]) -> None:
    link = beacon.sign_crosslink(0, chains[0][1:4], 1)
    result = beacon.produce_block(1, [link], replay=no_replay)
    assert result.refused == ()
    assert get_latest_header(beacon.state, 0) == chains[0][3]
    assert get_latest_header(beacon.state, 1) == chains[1][0]
    assert not is_shard_block_final(beacon.state, 0, 1)


def refusal(beacon: BeaconChain, link: object, slot: int = 1) -> str:
    state = beacon.state_at(slot)
    with pytest.raises(CrosslinkRefused) as info:
        validate_crosslink(state, link)  # type: ignore[arg-type]
    return info.value.check


def test_crosslink_below_two_thirds_of_the_committee_is_refused(
        beacon: BeaconChain, chains: list[list[ShardHeader]]) -> None:
    committee = beacon.committee(0, 1)
    enough = committee[: -(-2 * len(committee) // 3)]  # ceil(2n/3) of equal balances
    too_few = enough[:-1]
    validate_crosslink(beacon.state_at(1), beacon.sign_crosslink(0, chains[0][1:2], 1, enough))
    assert refusal(beacon, beacon.sign_crosslink(0, chains[0][1:2], 1, too_few)) == "balance"
    result = beacon.produce_block(1, [beacon.sign_crosslink(0, chains[0][1:2], 1, too_few)], replay=no_replay)
    assert [check for _, check in result.refused] == ["balance"]
    assert get_latest_header(beacon.state, 0) == chains[0][0]


def test_crosslink_refusals_name_their_check(beacon: BeaconChain, chains: list[list[ShardHeader]]) -> None:
    good = beacon.sign_crosslink(0, chains[0][1:3], 1)
    other = beacon.committee(1, 1)
    assert refusal(beacon, beacon.sign_crosslink(0, chains[0][1:3], 1, [*beacon.committee(0, 1), other[0]])) \
        == "not-committee"
    assert refusal(beacon, replace(good, signature=beacon.sign_crosslink(0, chains[0][1:4], 1).signature)) \
        == "signature"
    assert refusal(beacon, beacon.sign_crosslink(0, chains[0][2:4], 1)) == "not-consecutive"  # skips #1
    assert refusal(beacon, beacon.sign_crosslink(0, [chains[0][1], chains[0][3]], 1)) == "not-consecutive"
    assert refusal(beacon, beacon.sign_crosslink(0, [chains[1][1]], 1)) == "header-shard"
    assert refusal(beacon, replace(good, shard=5)) == "shard"
    assert refusal(beacon, replace(good, epoch=3)) == "epoch"
    assert refusal(beacon, replace(good, headers=())) == "empty"
    # a fork of the shard: right number, another parent
    fork = ShardHeader(0, 1, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32)
    assert refusal(beacon, beacon.sign_crosslink(0, [fork], 1)) == "not-consecutive"


def test_crosslinks_finalize_with_the_beacon_checkpoint(
        beacon: BeaconChain, chains: list[list[ShardHeader]]) -> None:
    """One shard block per slot on each shard: a block is final exactly when the beacon
    block that crosslinked it is at or before the finalized checkpoint's slot."""
    spe = MINIMAL.slots_per_epoch
    included_at: dict[int, int] = {}
    for slot in range(1, 5 * spe + 1):
        links = [beacon.sign_crosslink(s, chains[s][slot:slot + 1], slot) for s in range(SHARDS)]
        assert beacon.produce_block(slot, links, replay=no_replay).refused == ()
        included_at[slot] = slot
        state = beacon.state
        final_slot = pos.compute_start_slot_at_epoch(MINIMAL, state.beacon.finalized.epoch)
        for s in range(SHARDS):
            assert get_latest_header(state, s) == chains[s][slot]
            assert get_final_header(state, s).number == max(
                [n for n, at in included_at.items() if at <= final_slot], default=0)
    assert beacon.state.beacon.finalized.epoch >= 2  # full participation finalizes
    assert is_shard_block_final(beacon.state, 0, spe)
    assert not is_shard_block_final(beacon.state, 0, 5 * spe)


# -- fraud -----------------------------------------------------------------------------------

DEV = derive_dev_accounts()


@pytest.fixture
def shard_chain() -> Iterator[tuple[EvmChain, ShardReplica]]:
    config = parse_config({"timestamp": T0, "chainId": 1000})
    yield EvmChain(config, MemoryDB()), ShardReplica(0, config)


def mine_transfer(chain: EvmChain, nonce: int) -> bytes:
    tx = {"nonce": nonce, "to": "0x1212121212121212121212121212121212121212", "value": 10**18,
          "gas": 21_000, "chainId": 1000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
    raw = Account.sign_transaction(tx, DEV[0].private_key).raw_transaction
    mined = chain.mine([chain.tx_builder.decode(bytes(raw))], timestamp=T0 + 10 * (nonce + 1))
    return encode_block(mined.block)


def test_signers_of_a_forged_state_root_are_slashed_and_the_crosslink_dropped(
        shard_chain: tuple[EvmChain, ShardReplica]) -> None:
    shard, replica = shard_chain
    assert replica.genesis == header_of(0, shard.genesis_header)
    beacon = BeaconChain(VALIDATORS, [replica.genesis, synthetic_chain(1, 1)[0]])
    raw1, raw2 = mine_transfer(shard, 0), mine_transfer(shard, 1)
    honest1 = replica.follow(raw1)
    honest2 = replica.follow(raw2)
    forged2 = replace(honest2, state_root=hashlib.sha256(b"a richer state").digest())
    beacon.produce_block(1, [beacon.sign_crosslink(0, [honest1], 1)], replay=replica.replay)
    bad = beacon.sign_crosslink(0, [forged2], 2)  # the committee signs what the block does not compute
    beacon.produce_block(2, [bad], replay=replica.replay)
    assert get_latest_header(beacon.state, 0) == forged2  # accepted: the beacon does not execute
    balances = {i: beacon.state.beacon.validators[i].balance for i in range(VALIDATORS)}

    # an honest header is no fraud; a block that is not the header's proves nothing
    with pytest.raises(FraudProofRefused) as info:
        process_shard_fraud(beacon.state, ShardFraudProof(honest1, raw1), replica.replay, 0)
    assert info.value.check == "no-fraud"
    with pytest.raises(FraudProofRefused) as info:
        process_shard_fraud(beacon.state, ShardFraudProof(forged2, raw1), replica.replay, 0)
    assert info.value.check == "block-mismatch"

    result = beacon.produce_block(3, fraud_proofs=[ShardFraudProof(forged2, raw2)], replay=replica.replay)
    state = beacon.state
    assert result.block is not None
    proposer = result.block.body.proposer_index
    assert get_latest_header(state, 0) == honest1  # dropped, the honest crosslink stays
    for i in range(VALIDATORS):
        v = state.beacon.validators[i]
        if i in bad.validator_indices:
            assert v.slashed and v.exit_epoch != pos.FAR_FUTURE_EPOCH
            if i != proposer:  # phase0's minimum slashing penalty, nothing else in this slot
                assert v.balance == balances[i] - v.effective_balance // MINIMAL.min_slashing_penalty_quotient
        else:
            assert not v.slashed
    # slashed members cannot crosslink any more (they weigh nothing); the rest of the
    # committee takes the shard on from the honest tip
    committee = beacon.committee(0, 4)
    slashed_members = [i for i in committee if i in bad.validator_indices]
    assert slashed_members and len(slashed_members) < len(committee)  # epoch 1 reshuffled them
    late = beacon.sign_crosslink(0, [honest2], 4, slashed_members)
    refused = beacon.produce_block(4, [late], replay=replica.replay).refused
    assert [check for _, check in refused] == ["balance"]
    slot = 5
    while beacon.produce_block(slot, [beacon.sign_crosslink(0, [honest2], slot)],
                               replay=replica.replay).block is None:
        slot += 1  # a slashed proposer's slot stays empty
    assert get_latest_header(beacon.state, 0) == honest2
    # the same evidence again finds nothing to punish
    with pytest.raises(FraudProofRefused) as info:
        process_shard_fraud(beacon.state, ShardFraudProof(forged2, raw2), replica.replay, 0)
    assert info.value.check == "unknown-header"


def test_beacon_genesis_is_a_valid_pos_state() -> None:
    beacon = BeaconChain(VALIDATORS, synthetic_chain(0, 1))
    assert beacon.state.beacon.finalized.root == BEACON_GENESIS_ROOT
    validators = beacon.state.beacon.validators
    assert all(bls.public_key(beacon.secret(i)) == v.pubkey for i, v in enumerate(validators))
