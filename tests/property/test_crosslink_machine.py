"""Crosslinks under random votes: a stateful hypothesis test of the beacon's shard record.

Each step is one beacon slot. A rule proposes a crosslink for a shard signed by any
number of its committee, extending the shard's true chain, skipping a block, or forking
from another parent; or leaves the slot without crosslinks. The model is independent of
the implementation's bookkeeping: a crosslink must be accepted exactly when it extends the
crosslinked tip with consecutive true-chain blocks and at least 2/3 of the committee
(equal stakes here) signed it. Invariants: the crosslinked tip is the model's true-chain
block, the final tip is a true-chain block at or below it and never moves back, and with
every validator attesting, finality keeps up with the epochs.
"""

from __future__ import annotations

import hashlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from layerlab.l1.consensus import pos
from layerlab.l1.sharding.chain import BeaconChain
from layerlab.l1.sharding.crosslink import ShardFraudProof, ShardHeader, get_final_header, get_latest_header

SHARDS = 2
VALIDATORS = 12
LENGTH = 80


def true_chain(shard: int) -> list[ShardHeader]:
    headers, parent = [], b"\x00" * 32
    for n in range(LENGTH):
        h = hashlib.sha256(f"true shard {shard} block {n}".encode()).digest()
        headers.append(ShardHeader(shard, n, h, parent, hashlib.sha256(h).digest()))
        parent = h
    return headers


CHAINS = [true_chain(s) for s in range(SHARDS)]


def no_replay(proof: ShardFraudProof) -> bytes:
    raise AssertionError("no fraud proof in this machine")


class CrosslinkMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.beacon = BeaconChain(VALIDATORS, [c[0] for c in CHAINS])
        self.slot = 0
        self.tip = [0] * SHARDS
        self.final = [0] * SHARDS

    @rule(shard=st.integers(0, SHARDS - 1), count=st.integers(1, 3), signers=st.integers(1, 6),
          shape=st.sampled_from(["extend", "skip", "fork", "stale"]))
    def crosslink(self, shard: int, count: int, signers: int, shape: str) -> None:
        self.slot += 1
        committee = self.beacon.committee(shard, self.slot)
        chosen = committee[:min(signers, len(committee))]
        first = self.tip[shard] + (2 if shape == "skip" else 0 if shape == "stale" else 1)
        headers = CHAINS[shard][first:first + count]
        if shape == "fork":
            fake = hashlib.sha256(f"fork {shard} {self.slot}".encode()).digest()
            headers = [ShardHeader(shard, first, fake, fake, fake), *headers[1:]]
        link = self.beacon.sign_crosslink(shard, headers, self.slot, chosen)
        result = self.beacon.produce_block(self.slot, [link], replay=no_replay)
        expected = shape == "extend" and 3 * len(chosen) >= 2 * len(committee) and len(headers) == count
        if expected:
            assert result.refused == ()
            self.tip[shard] = headers[-1].number
        else:
            assert [link for link, _ in result.refused] == [link]
            check = result.refused[0][1]
            assert check == ("balance" if shape == "extend" else "not-consecutive"), (shape, check)

    @rule()
    def empty_slot(self) -> None:
        self.slot += 1
        assert self.beacon.produce_block(self.slot, replay=no_replay).refused == ()

    @invariant()
    def record_matches_the_model(self) -> None:
        if not hasattr(self, "beacon"):
            return
        state = self.beacon.state
        for shard in range(SHARDS):
            assert get_latest_header(state, shard) == CHAINS[shard][self.tip[shard]]
            final = get_final_header(state, shard)
            assert final == CHAINS[shard][final.number] and final.number <= self.tip[shard]
            assert final.number >= self.final[shard]
            self.final[shard] = final.number
        beacon = state.beacon
        assert beacon.finalized.epoch >= pos.get_current_epoch(beacon) - 3


TestCrosslinkMachine = CrosslinkMachine.TestCase
TestCrosslinkMachine.settings = settings(max_examples=8, stateful_step_count=16, deadline=None)
