"""The coordinator's beacon chain: one mutable holder of a :class:`ShardedState`, whose
validators (devnet keys, all held here) propose, attest and sign crosslinks honestly.

Every slot :meth:`BeaconChain.produce_block` builds the phase0 block of that slot (RANDAO
reveal, withdrawals, the previous slot's aggregate attestation), adds fraud proofs and
crosslinks, signs it as the slot's proposer and applies it with
:func:`~layerlab.l1.sharding.crosslink.process_beacon_block`, then has the slot's
committee attest to it, so Casper FFG justifies and finalizes every epoch as on a healthy
chain. :meth:`sign_crosslink` is a shard committee's vote; ``signers`` lets a test (or a
byzantine run) choose who signs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from layerlab.crypto import bls
from layerlab.errors import ConsensusError
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.beacon import validator_secret
from layerlab.l1.consensus.pos import MINIMAL, BeaconBody, PosPreset
from layerlab.l1.consensus.types import Attestation, Root, Slot, ValidatorIndex
from layerlab.l1.sharding.committees import ShardId, get_shard_committee
from layerlab.l1.sharding.crosslink import (
    BeaconBlock,
    Crosslink,
    CrosslinkRefused,
    Replay,
    ShardedState,
    ShardFraudProof,
    ShardHeader,
    crosslink_signing_root,
    genesis_sharded_state,
    process_beacon_block,
    validate_crosslink,
)

__all__ = ["BEACON_GENESIS_ROOT", "BeaconChain", "SlotResult"]

BEACON_GENESIS_ROOT: Root = hashlib.sha256(b"layerlab/shard-beacon/genesis").digest()


@dataclass(frozen=True, slots=True)
class SlotResult:
    """What a slot did: the block and the crosslinks it refused, with their checks."""

    block: BeaconBlock | None
    """None for an empty slot (its proposer was slashed)."""
    refused: tuple[tuple[Crosslink, str], ...]


class BeaconChain:
    """A beacon chain run by one process holding every validator key (a devnet)."""

    def __init__(self, validators: int, genesis_headers: Sequence[ShardHeader], *,
                 preset: PosPreset = MINIMAL, balance_gwei: int | None = None) -> None:
        if validators < len(genesis_headers):
            raise ConsensusError(
                f"{validators} validators cannot staff {len(genesis_headers)} shard committees")
        balance = preset.max_effective_balance_gwei if balance_gwei is None else balance_gwei
        self._secrets: dict[bytes, bytes] = {}
        entries = []
        for i in range(validators):
            sk = validator_secret(i)
            pubkey = bls.public_key(sk)
            self._secrets[pubkey] = sk
            entries.append((pubkey, (0xB0 << 152 | i).to_bytes(20, "big"), balance))
        beacon = pos.genesis_state(preset, entries, BEACON_GENESIS_ROOT)
        self.state = genesis_sharded_state(beacon, genesis_headers)
        self.head_root: Root = BEACON_GENESIS_ROOT
        self._attestation: Attestation | None = None

    @property
    def slot(self) -> Slot:
        return self.state.beacon.slot

    def secret(self, index: ValidatorIndex) -> bytes:
        return self._secrets[self.state.beacon.validators[index].pubkey]

    def state_at(self, slot: Slot) -> ShardedState:
        """The head state advanced through empty slots to ``slot`` (what a proposer sees)."""
        beacon = self.state.beacon
        if slot <= beacon.slot:
            return self.state
        return replace(self.state, beacon=pos.process_slots(beacon, slot))

    def committee(self, shard: ShardId, slot: Slot) -> tuple[ValidatorIndex, ...]:
        state = self.state_at(slot).beacon
        return get_shard_committee(state, pos.get_current_epoch(state), shard, self.state.shard_count)

    def sign_crosslink(self, shard: ShardId, headers: Sequence[ShardHeader], slot: Slot,
                       signers: Sequence[ValidatorIndex] | None = None) -> Crosslink:
        """Shard ``shard``'s committee at ``slot`` (or just ``signers``) signs ``headers``."""
        epoch = pos.compute_epoch_at_slot(self.state.beacon.preset, slot)
        chosen = tuple(sorted(set(self.committee(shard, slot) if signers is None else signers)))
        message = crosslink_signing_root(shard, epoch, headers)
        signature = bls.aggregate([bls.sign(self.secret(i), message) for i in chosen])
        return Crosslink(shard, epoch, tuple(headers), chosen, signature)

    def produce_block(self, slot: Slot, crosslinks: Sequence[Crosslink] = (),
                      fraud_proofs: Sequence[ShardFraudProof] = (), *, replay: Replay) -> SlotResult:
        """Propose, apply and attest the block of ``slot``. Crosslinks that would be
        refused are left out and returned with their ``check``; fraud proofs are checked
        by the block transition itself (a refused one raises). A slashed proposer
        proposes nothing: the slot stays empty (``block`` None) and nothing is included."""
        pre = self.state_at(slot)
        beacon = pre.beacon
        proposer = pos.get_beacon_proposer_index(beacon, slot)
        if beacon.validators[proposer].slashed:
            return SlotResult(None, ())
        sk = self.secret(proposer)
        epoch = pos.get_current_epoch(beacon)
        attestations: tuple[Attestation, ...] = ()
        last = self._attestation
        if last is not None and last.data.slot + beacon.preset.slots_per_epoch >= slot:
            attestations = (last,)
        body = BeaconBody(proposer_index=proposer, randao_reveal=bls.sign(sk, pos.randao_signing_root(epoch)),
                          attestations=attestations, withdrawals=pos.expected_withdrawals(beacon))
        accepted: list[Crosslink] = []
        refused: list[tuple[Crosslink, str]] = []
        for crosslink in crosslinks:
            try:
                validate_crosslink(pre, crosslink)
            except CrosslinkRefused as exc:
                refused.append((crosslink, exc.check))
            else:
                accepted.append(crosslink)
        block = BeaconBlock(slot, self.head_root, body, tuple(accepted), tuple(fraud_proofs))
        signature = bls.sign(sk, pos.proposal_signing_root(slot, proposer, block.root()))
        self.state = process_beacon_block(self.state, block, signature, replay)
        self.head_root = block.root()
        self._attest(slot)
        return SlotResult(block, tuple(refused))

    def _attest(self, slot: Slot) -> None:
        beacon = self.state.beacon
        data = pos.make_attestation_data(beacon, slot, self.head_root)
        committee = tuple(i for i in pos.get_committee(beacon, slot) if not beacon.validators[i].slashed)
        if not committee:
            self._attestation = None
            return
        message = pos.attestation_signing_root(data)
        signature = bls.aggregate([bls.sign(self.secret(i), message) for i in committee])
        self._attestation = Attestation(data, committee, signature)
