"""Shard committees: which validators vouch for which shard in an epoch.

As in the eth2 phase-1 spec (``get_shard_committee`` / ``compute_committee``): the active
validators of an epoch are permuted with the swap-or-not shuffle of phase0
(:func:`layerlab.l1.consensus.pos.compute_shuffled_index`) under a seed of their own
domain, then cut into ``shard_count`` contiguous committees, one per shard. The seed comes
from the RANDAO mix as of the epoch's start (:func:`pos.get_seed`), so committees change
every epoch and cannot be chosen by the validators.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from layerlab.errors import ConsensusError
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.pos import BeaconState
from layerlab.l1.consensus.types import Epoch, ValidatorIndex

__all__ = ["DOMAIN_SEED_SHARD_COMMITTEE", "ShardId", "compute_committee", "get_shard_committee"]

ShardId = int
"""A shard's number, ``0 .. shard_count - 1``."""

DOMAIN_SEED_SHARD_COMMITTEE: Final[bytes] = b"layerlab/shard/seed-committee/v1"


@lru_cache(maxsize=256)
def _permutation(seed: bytes, count: int) -> tuple[int, ...]:
    return tuple(pos.compute_shuffled_index(i, count, seed) for i in range(count))


def compute_committee(indices: tuple[ValidatorIndex, ...], seed: bytes, index: int,
                      count: int) -> tuple[ValidatorIndex, ...]:
    """phase0 ``compute_committee``: the ``index``-th of ``count`` slices of the shuffled
    ``indices`` (returned sorted, as crosslink votes list their signers)."""
    if not 0 <= index < count:
        raise ConsensusError(f"committee index {index} out of range for {count} committees")
    n = len(indices)
    permutation = _permutation(seed, n)
    start, end = n * index // count, n * (index + 1) // count
    return tuple(sorted(indices[permutation[i]] for i in range(start, end)))


def get_shard_committee(state: BeaconState, epoch: Epoch, shard: ShardId,
                        shard_count: int) -> tuple[ValidatorIndex, ...]:
    """The committee that signs ``shard``'s crosslinks during ``epoch`` (previous or
    current epoch of ``state``; :func:`pos.get_seed` refuses others). Raises when the
    shard would get no validator at all."""
    if not 0 <= shard < shard_count:
        raise ConsensusError(f"shard {shard} out of range ({shard_count} shards)")
    active = pos.get_active_validator_indices(state, epoch)
    seed = pos.get_seed(state, epoch, DOMAIN_SEED_SHARD_COMMITTEE)
    committee = compute_committee(active, seed, shard, shard_count)
    if not committee:
        raise ConsensusError(
            f"shard {shard} has an empty committee at epoch {epoch}: "
            f"{len(active)} active validators for {shard_count} shards")
    return committee
