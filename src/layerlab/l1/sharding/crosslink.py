"""Crosslinks: the beacon chain's record of every shard chain, and when a shard block is final.

The eth2 phase-1 design (consensus-specs ``phase1/beacon-chain.md``, 2020; Buterin et al.,
"Ethereum 2.0 phase 1"): each epoch a committee of validators is assigned to each shard
(:mod:`.committees`); every slot the committee of a shard signs, with BLS, the shard
headers made since its last crosslink, and the beacon block proposer includes the
aggregate. The beacon state accepts a :class:`Crosslink` only when

* its signers hold at least 2/3 of the effective balance of the committee's unslashed
  members (a slashed member neither counts nor blocks: a committee caught signing fraud
  does not halt its shard), with a valid aggregate signature over :func:`crosslink_signing_root`, and
* its headers extend the shard's crosslinked chain: the first one's parent is the last
  crosslinked header, and each next one's parent is the previous one (consecutive numbers).

Anything else raises :class:`CrosslinkRefused` with a machine-readable ``check``. A shard
block is **final** when the beacon block that crosslinked it is at or before the slot of
the finalized Casper FFG checkpoint (:func:`pos.process_justification_and_finalization`
over the same :class:`~layerlab.l1.consensus.pos.BeaconState`).

**Shard fraud.** A committee could sign a header whose state root is not what its block
computes. The evidence (:class:`ShardFraudProof`) is that header and the shard block with
its hash; a replay function (py-evm, :mod:`.replay`) re-executes the block on its parent's
state. When the computed root differs from the signed one, every signer of that crosslink
is slashed (balance cut, exit: :func:`pos.slash_validators`), and if the crosslink is not
final yet it is dropped together with every later crosslink of the shard built on it.

The transition is spec-shaped and pure::

    state = process_beacon_block(state, block, signature, replay)

with ``block`` a :class:`BeaconBlock`: phase0's block processing
(:func:`pos.process_block`, including attestations and so FFG), then fraud proofs, then
crosslinks, then crosslink finality. Deviation from phase 1: shard blocks are not proposed
by the beacon chain's validators but by the shard's own node (a devnet process), and
there is no data-availability proof of the shard blocks (a header whose block nobody can
produce cannot be proven fraudulent).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

import rlp
from eth_hash.auto import keccak

from layerlab.crypto import bls
from layerlab.errors import ConsensusError, InvalidBlock
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.pos import BeaconBody, BeaconState
from layerlab.l1.consensus.types import Epoch, Root, Slot, ValidatorIndex
from layerlab.l1.sharding.committees import ShardId, get_shard_committee
from layerlab.primitives import codec

__all__ = [
    "DOMAIN_CROSSLINK",
    "MAX_HEADERS_PER_CROSSLINK",
    "BeaconBlock",
    "Crosslink",
    "CrosslinkRefused",
    "FraudProofRefused",
    "IncludedCrosslink",
    "Replay",
    "ShardFraudProof",
    "ShardHeader",
    "ShardRecord",
    "ShardedState",
    "crosslink_signing_root",
    "genesis_sharded_state",
    "get_final_header",
    "get_latest_header",
    "is_shard_block_final",
    "process_beacon_block",
    "process_crosslink",
    "process_crosslink_finality",
    "process_shard_fraud",
    "validate_crosslink",
]

DOMAIN_CROSSLINK: Final[bytes] = b"layerlab/shard/crosslink/v1"
MAX_HEADERS_PER_CROSSLINK: Final[int] = 64
"""At most this many shard blocks per crosslink (the coordinator catches up over slots)."""


class CrosslinkRefused(ConsensusError):
    """A crosslink the beacon state does not accept; ``check`` names the failed rule
    (``shard``, ``epoch``, ``empty``, ``too-many-headers``, ``header-shard``,
    ``not-consecutive``, ``indices``, ``not-committee``, ``signature``, ``balance``)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"crosslink refused ({check}): {message}")
        self.check = check


class FraudProofRefused(ConsensusError):
    """Shard fraud evidence that proves nothing; ``check`` is ``unknown-header``,
    ``block-mismatch``, ``no-fraud`` or ``already-slashed``."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"fraud proof refused ({check}): {message}")
        self.check = check


@dataclass(frozen=True, slots=True)
class ShardHeader:
    """What the beacon chain knows of one shard block: its place, hash and post-state."""

    shard: int
    number: int
    hash: Root
    parent_hash: Root
    state_root: Root


@dataclass(frozen=True, slots=True)
class Crosslink:
    """The shard committee's aggregate vote for ``headers`` (consecutive shard blocks)."""

    shard: int
    epoch: int
    headers: tuple[ShardHeader, ...]
    validator_indices: tuple[int, ...]
    signature: bytes

    @property
    def tip(self) -> ShardHeader:
        return self.headers[-1]


@dataclass(frozen=True, slots=True)
class IncludedCrosslink:
    """A crosslink accepted into the beacon block of ``slot``."""

    crosslink: Crosslink
    slot: int


@dataclass(frozen=True, slots=True)
class ShardFraudProof:
    """``header`` was crosslinked; ``block`` (RLP) is the shard block of that hash, whose
    re-execution on its parent's state is claimed to give another state root."""

    header: ShardHeader
    block: bytes


Replay = Callable[[ShardFraudProof], Root]
"""Re-executes ``proof.block`` on its parent's state and returns the computed state root;
raises :class:`~layerlab.errors.InvalidBlock` when the block is not ``proof.header``'s
(another hash, parent or number) or its parent state is unknown."""


@dataclass(frozen=True, slots=True)
class ShardRecord:
    """One shard's crosslinked chain: its genesis, the crosslinks in chain order, and how
    many of them (from the start) are final."""

    genesis: ShardHeader
    links: tuple[IncludedCrosslink, ...] = ()
    final_count: int = 0


@dataclass(frozen=True, slots=True)
class ShardedState:
    """The beacon state plus the crosslink record of every shard."""

    beacon: BeaconState
    shards: tuple[ShardRecord, ...]

    @property
    def shard_count(self) -> int:
        return len(self.shards)


@dataclass(frozen=True, slots=True)
class BeaconBlock:
    """A beacon block: phase0's body plus this slot's fraud proofs and crosslinks."""

    slot: int
    parent_root: Root
    body: BeaconBody
    crosslinks: tuple[Crosslink, ...] = ()
    fraud_proofs: tuple[ShardFraudProof, ...] = ()

    def root(self) -> Root:
        """keccak256 of the RLP of every field: what the proposer signs."""
        return bytes(keccak(codec.encode(self)))


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def crosslink_signing_root(shard: ShardId, epoch: Epoch, headers: Sequence[ShardHeader]) -> bytes:
    """What every committee member signs: the shard, the committee's epoch and the headers."""
    payload = [shard, epoch, [codec.to_rlp_item(h) for h in headers]]
    return _sha256(DOMAIN_CROSSLINK + bytes(rlp.encode(payload)))


def genesis_sharded_state(beacon: BeaconState, genesis_headers: Sequence[ShardHeader]) -> ShardedState:
    """Shard ``i``'s crosslinked chain starts at ``genesis_headers[i]`` (its genesis block)."""
    for i, header in enumerate(genesis_headers):
        if header.shard != i or header.number != 0:
            raise ConsensusError(f"genesis header {i} is shard {header.shard} block {header.number}")
    return ShardedState(beacon, tuple(ShardRecord(h) for h in genesis_headers))


def get_latest_header(state: ShardedState, shard: ShardId) -> ShardHeader:
    record = state.shards[shard]
    return record.links[-1].crosslink.tip if record.links else record.genesis


def get_final_header(state: ShardedState, shard: ShardId) -> ShardHeader:
    record = state.shards[shard]
    return record.links[record.final_count - 1].crosslink.tip if record.final_count else record.genesis


def is_shard_block_final(state: ShardedState, shard: ShardId, number: int) -> bool:
    return number <= get_final_header(state, shard).number


# -- crosslinks ------------------------------------------------------------------------------


def validate_crosslink(state: ShardedState, crosslink: Crosslink, *, verify_signatures: bool = True) -> None:
    """Raise :class:`CrosslinkRefused` unless ``crosslink`` may enter ``state``."""
    beacon = state.beacon
    shard = crosslink.shard
    if not 0 <= shard < state.shard_count:
        raise CrosslinkRefused("shard", f"shard {shard} out of range ({state.shard_count} shards)")
    current, previous = pos.get_current_epoch(beacon), pos.get_previous_epoch(beacon)
    if crosslink.epoch not in (previous, current):
        raise CrosslinkRefused(
            "epoch",
            f"committee epoch {crosslink.epoch} is neither previous ({previous}) nor current ({current})")
    headers = crosslink.headers
    if not headers:
        raise CrosslinkRefused("empty", f"shard {shard}: no header")
    if len(headers) > MAX_HEADERS_PER_CROSSLINK:
        raise CrosslinkRefused("too-many-headers",
                               f"shard {shard}: {len(headers)} headers > {MAX_HEADERS_PER_CROSSLINK}")
    if any(h.shard != shard for h in headers):
        raise CrosslinkRefused(
            "header-shard", f"headers of shards {[h.shard for h in headers]} in shard {shard}'s crosslink")
    parent = get_latest_header(state, shard)
    for header in headers:
        if header.parent_hash != parent.hash or header.number != parent.number + 1:
            raise CrosslinkRefused(
                "not-consecutive",
                f"shard {shard} header #{header.number} (parent {header.parent_hash.hex()[:16]}) does not "
                f"extend #{parent.number} ({parent.hash.hex()[:16]})")
        parent = header
    indices = crosslink.validator_indices
    if not indices or any(a >= b for a, b in itertools.pairwise(indices)):
        raise CrosslinkRefused("indices", f"signer indices not sorted, unique and non-empty: {list(indices)}")
    committee = get_shard_committee(beacon, crosslink.epoch, shard, state.shard_count)
    outsiders = sorted(set(indices) - set(committee))
    if outsiders:
        raise CrosslinkRefused(
            "not-committee",
            f"{outsiders} not in shard {shard}'s committee {list(committee)} of epoch {crosslink.epoch}")
    if verify_signatures:
        pubkeys = [beacon.validators[i].pubkey for i in indices]
        message = crosslink_signing_root(shard, crosslink.epoch, headers)
        if not bls.fast_aggregate_verify(pubkeys, message, crosslink.signature):
            raise CrosslinkRefused(
                "signature", f"aggregate signature of {list(indices)} invalid on shard {shard}")
    honest = [i for i in committee if not beacon.validators[i].slashed]
    signers = [i for i in indices if i in honest]
    signed = pos.get_total_balance(beacon, signers)
    total = pos.get_total_balance(beacon, honest)
    if not signers or signed * 3 < total * 2:
        raise CrosslinkRefused("balance", f"shard {shard}: signers hold {signed} of {total} gwei, below 2/3")


def process_crosslink(state: ShardedState, crosslink: Crosslink, slot: Slot, *,
                      verify_signatures: bool = True) -> ShardedState:
    validate_crosslink(state, crosslink, verify_signatures=verify_signatures)
    record = state.shards[crosslink.shard]
    record = replace(record, links=(*record.links, IncludedCrosslink(crosslink, slot)))
    return _with_record(state, crosslink.shard, record)


def _with_record(state: ShardedState, shard: ShardId, record: ShardRecord) -> ShardedState:
    shards = list(state.shards)
    shards[shard] = record
    return replace(state, shards=tuple(shards))


# -- fraud -----------------------------------------------------------------------------------


def process_shard_fraud(state: ShardedState, proof: ShardFraudProof, replay: Replay,
                        whistleblower: ValidatorIndex) -> tuple[ShardedState, tuple[ValidatorIndex, ...]]:
    """Slash the signers of the crosslink holding ``proof.header`` when re-executing its
    block gives another state root; drop that crosslink and the later ones of its shard
    unless it is final. Returns the new state and the validators slashed."""
    header = proof.header
    if not 0 <= header.shard < state.shard_count:
        raise FraudProofRefused("unknown-header", f"shard {header.shard} out of range")
    record = state.shards[header.shard]
    position = next((i for i, link in enumerate(record.links) if header in link.crosslink.headers), None)
    if position is None:
        raise FraudProofRefused(
            "unknown-header", f"shard {header.shard} block #{header.number} was never crosslinked as claimed")
    try:
        computed = replay(proof)
    except InvalidBlock as exc:
        raise FraudProofRefused("block-mismatch", str(exc)) from exc
    if computed == header.state_root:
        raise FraudProofRefused(
            "no-fraud",
            f"shard {header.shard} block #{header.number} re-executes to its signed root {computed.hex()}")
    signers = record.links[position].crosslink.validator_indices
    beacon, slashed = pos.slash_validators(state.beacon, signers, whistleblower)
    if position >= record.final_count:
        record = replace(record, links=record.links[:position])
    elif not slashed:
        raise FraudProofRefused(
            "already-slashed", f"signers {list(signers)} of a final crosslink already slashed")
    return _with_record(replace(state, beacon=beacon), header.shard, record), slashed


# -- finality and the block ------------------------------------------------------------------


def process_crosslink_finality(state: ShardedState) -> ShardedState:
    """A crosslink is final once it was included at or before the finalized checkpoint's
    slot (the checkpoint block is then its descendant on the one beacon chain)."""
    beacon = state.beacon
    final_slot = pos.compute_start_slot_at_epoch(beacon.preset, beacon.finalized.epoch)
    shards = []
    for record in state.shards:
        count = record.final_count
        while count < len(record.links) and record.links[count].slot <= final_slot:
            count += 1
        shards.append(record if count == record.final_count else replace(record, final_count=count))
    return replace(state, shards=tuple(shards))


def process_beacon_block(state: ShardedState, block: BeaconBlock, signature: bytes, replay: Replay, *,
                         verify_signatures: bool = True) -> ShardedState:
    """phase0 block processing (slots, proposer, RANDAO, attestations and so FFG), then
    the block's fraud proofs, its crosslinks and crosslink finality."""
    beacon = pos.process_block(state.beacon, block.slot, block.parent_root, block.root(), block.body,
                               signature, verify_signatures=verify_signatures)
    state = replace(state, beacon=beacon)
    for proof in block.fraud_proofs:
        state, _ = process_shard_fraud(state, proof, replay, block.body.proposer_index)
    for crosslink in block.crosslinks:
        state = process_crosslink(state, crosslink, block.slot, verify_signatures=verify_signatures)
    return process_crosslink_finality(state)
