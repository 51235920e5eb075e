"""Consensus messages shared by the PoS state transition, fork choice, staking and the wire.

Names follow Ethereum's consensus-specs phase0 (``Checkpoint``, ``AttestationData``,
``IndexedAttestation``...). Block roots are execution block hashes: a layerlab block is one
execution block whose header commits to its consensus body (see ``l1/consensus/pos.py``).
All types are frozen and hashable; amounts are in gwei, as in the consensus specs.

Every type here encodes through :mod:`layerlab.primitives.codec` (RLP of its fields in
declaration order); the field types below are the encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from layerlab.primitives.codec import FixedLength

Root = Annotated[bytes, FixedLength(32)]
"""A 32-byte block root (the execution block hash); the codec refuses any other length."""
Slot = int
"""A slot number (``slot_seconds`` long); PoS may start mid-chain, so any non-negative int."""
Epoch = int
"""``slot // slots_per_epoch``: the unit of Casper FFG checkpoints and committee shuffling."""
ValidatorIndex = int
"""A position in ``BeaconState.validators`` (validators are appended, never removed)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An epoch boundary block: the unit Casper FFG justifies and finalizes."""

    epoch: int
    root: Root


@dataclass(frozen=True, slots=True)
class AttestationData:
    """One validator vote: an LMD-GHOST head vote plus a Casper FFG source->target link."""

    slot: int
    beacon_block_root: Root
    source: Checkpoint
    target: Checkpoint


@dataclass(frozen=True, slots=True)
class Attestation:
    """``data`` signed by the validators in ``validator_indices`` (sorted, unique) with one
    aggregate BLS signature (consensus-specs ``IndexedAttestation``)."""

    data: AttestationData
    validator_indices: tuple[int, ...]
    signature: bytes


@dataclass(frozen=True, slots=True)
class SignedBlockHeader:
    """What a proposer signs for a block: evidence in a proposer slashing."""

    slot: int
    proposer_index: int
    block_root: Root
    signature: bytes


@dataclass(frozen=True, slots=True)
class ProposerSlashing:
    """Two different blocks signed by one proposer for the same slot."""

    header_1: SignedBlockHeader
    header_2: SignedBlockHeader


@dataclass(frozen=True, slots=True)
class AttesterSlashing:
    """Two attestations sharing a validator that form a double vote or a surround vote."""

    attestation_1: Attestation
    attestation_2: Attestation


@dataclass(frozen=True, slots=True)
class Deposit:
    """A ``Deposit`` event of the staking contract, read from an execution block's receipts.

    ``signature`` is the depositor's BLS proof of possession over
    ``deposit_message(pubkey, withdrawal_address, amount_gwei)``; the contract does not
    check it (it cannot: no BLS precompile before EIP-2537), the consensus layer does and
    ignores deposits whose proof fails, as Ethereum's beacon chain does.
    """

    pubkey: bytes
    withdrawal_address: bytes
    amount_gwei: int
    signature: bytes
    index: int


@dataclass(frozen=True, slots=True)
class ExitRequest:
    """An ``ExitRequested`` event: the withdrawal address asks to leave (EIP-7002 style)."""

    pubkey: bytes
    source_address: bytes


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A payout from the consensus layer to an execution address (EIP-4895)."""

    index: int
    validator_index: int
    address: bytes
    amount_gwei: int
