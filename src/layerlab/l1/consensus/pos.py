"""A proof-of-stake consensus core: a miniature of Ethereum's beacon chain.

The state transition follows consensus-specs ``phase0/beacon-chain.md`` (validator registry,
RANDAO, committees, Casper FFG justification and finalization, slashings, rewards), with
Altair's per-validator participation flags and inactivity scores (``altair/beacon-chain.md``)
and Capella-style full withdrawals (EIP-4895). Everything here is pure: no I/O, no clock, no
sockets. A layerlab block is one execution block; its hash is the consensus *block root*
(computed by the caller, who makes the header commit to :meth:`BeaconBody.root`), so this
module never hashes headers itself.

The shape of the transition is the spec's::

    state = process_slots(state, slot)        # empty slots; process_epoch at each boundary
    state = process_block(state, slot, parent_root, block_root, body, signature)

Both return a new immutable :class:`BeaconState`; a refused block raises
:class:`~layerlab.errors.ConsensusError` (or :class:`~layerlab.errors.InvalidSignature`)
and the input state is untouched by construction.

Deviations from the spec, all deliberate simplifications for a lab:

* one committee per slot, no aggregation subnets, no sync committees, no SSZ (RLP + keccak
  for roots, sha256 with a domain tag for signing roots; no fork version in the domain);
* attestation participation flags carry no timeliness (any inclusion in the phase0 window
  counts), and the proposer is paid ``base_reward // proposer_reward_quotient`` per newly
  included attester, as in phase0;
* activation needs ``effective_balance == max_effective_balance`` (phase0 eligibility) but
  not the finalization of that eligibility; the queue is ordered by validator index;
* no correlated slashing penalty (``process_slashings``); a slashed validator becomes
  withdrawable ``SLASHED_WITHDRAWABLE_FACTOR * withdrawable_delay_epochs`` after the slashing;
* deposits carry their contract index and are checked for contiguity instead of a Merkle
  proof against an eth1 deposit root (the execution layer is this very chain).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Final

import rlp
from eth_hash.auto import keccak

from layerlab.crypto import bls
from layerlab.errors import ConfigError, ConsensusError, InvalidSignature, MalformedEncoding
from layerlab.l1.consensus.types import (
    Attestation,
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    Deposit,
    Epoch,
    ExitRequest,
    ProposerSlashing,
    Root,
    Slot,
    ValidatorIndex,
    Withdrawal,
)
from layerlab.primitives import codec

# -- constants (phase0 / Altair / Capella names) --------------------------------------------

FAR_FUTURE_EPOCH: Final[Epoch] = 2**64 - 1
EFFECTIVE_BALANCE_INCREMENT: Final[int] = 10**9
HYSTERESIS_QUOTIENT: Final[int] = 4
HYSTERESIS_DOWNWARD_MULTIPLIER: Final[int] = 1
HYSTERESIS_UPWARD_MULTIPLIER: Final[int] = 5
BASE_REWARDS_PER_EPOCH: Final[int] = 4
INACTIVITY_SCORE_RECOVERY_RATE: Final[int] = 16
MAX_WITHDRAWALS_PER_BLOCK: Final[int] = 16
SHUFFLE_ROUND_COUNT: Final[int] = 90
JUSTIFICATION_BITS_LENGTH: Final[int] = 4
SLASHED_WITHDRAWABLE_FACTOR: Final[int] = 4
STATE_ENCODING_VERSION: Final[int] = 1

TIMELY_SOURCE_FLAG: Final[int] = 1
TIMELY_TARGET_FLAG: Final[int] = 2
TIMELY_HEAD_FLAG: Final[int] = 4
PARTICIPATION_FLAGS: Final[tuple[int, int, int]] = (TIMELY_SOURCE_FLAG, TIMELY_TARGET_FLAG, TIMELY_HEAD_FLAG)

DOMAIN_BEACON_PROPOSER: Final[bytes] = b"layerlab/pos/proposer/v1"
DOMAIN_BEACON_ATTESTER: Final[bytes] = b"layerlab/pos/attester/v1"
DOMAIN_RANDAO: Final[bytes] = b"layerlab/pos/randao/v1"
DOMAIN_DEPOSIT: Final[bytes] = b"layerlab/pos/deposit/v1"
DOMAIN_SEED_PROPOSER: Final[bytes] = b"layerlab/pos/seed-proposer/v1"
DOMAIN_SEED_ATTESTER: Final[bytes] = b"layerlab/pos/seed-attester/v1"

_MAX_RANDOM_BYTE: Final[int] = 2**8 - 1
_MAX_PROPOSER_SAMPLES: Final[int] = 1_000_000


# -- presets --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PosPreset:
    """Protocol constants of a PoS chain (consensus-specs ``presets/{minimal,mainnet}``).

    ``activation_delay_epochs`` and ``exit_delay_epochs`` play the role of phase0's
    ``MAX_SEED_LOOKAHEAD`` in ``compute_activation_exit_epoch`` (a status change decided
    in epoch ``e`` takes effect at ``e + 1 + delay``); ``withdrawable_delay_epochs`` is
    ``MIN_VALIDATOR_WITHDRAWABILITY_DELAY``; ``churn_limit`` is the per-epoch activation and
    exit churn (phase0 ``MIN_PER_EPOCH_CHURN_LIMIT``). The inactivity constants are Altair's.
    """

    slot_seconds: int
    slots_per_epoch: int
    max_effective_balance_gwei: int
    min_deposit_gwei: int
    ejection_balance_gwei: int
    activation_delay_epochs: int
    exit_delay_epochs: int
    withdrawable_delay_epochs: int
    base_reward_factor: int
    proposer_reward_quotient: int
    whistleblower_reward_quotient: int
    min_slashing_penalty_quotient: int
    inactivity_score_bias: int
    inactivity_penalty_quotient: int
    min_epochs_to_inactivity_penalty: int
    churn_limit: int
    name: str

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name":
                continue
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"preset {self.name!r}: {f.name} must be a non-negative int, got {value!r}")
        positive = (
            "slot_seconds",
            "slots_per_epoch",
            "max_effective_balance_gwei",
            "base_reward_factor",
            "proposer_reward_quotient",
            "whistleblower_reward_quotient",
            "min_slashing_penalty_quotient",
            "inactivity_score_bias",
            "inactivity_penalty_quotient",
            "churn_limit",
        )
        for name in positive:
            if getattr(self, name) == 0:
                raise ConfigError(f"preset {self.name!r}: {name} must be positive")


MINIMAL: Final[PosPreset] = PosPreset(
    slot_seconds=1,
    slots_per_epoch=4,
    max_effective_balance_gwei=32 * 10**9,
    min_deposit_gwei=1 * 10**9,
    ejection_balance_gwei=16 * 10**9,
    activation_delay_epochs=1,
    exit_delay_epochs=1,
    withdrawable_delay_epochs=2,
    base_reward_factor=64,
    proposer_reward_quotient=8,
    whistleblower_reward_quotient=512,
    min_slashing_penalty_quotient=64,
    inactivity_score_bias=4,
    inactivity_penalty_quotient=2**9,
    min_epochs_to_inactivity_penalty=4,
    churn_limit=4,
    name="minimal",
)
"""Tests and demos: 4 one-second slots per epoch, 1-2 epoch delays, and an inactivity leak
aggressive enough that a chain with half its stake offline finalizes again within ~30 epochs."""

MAINNET_LIKE: Final[PosPreset] = PosPreset(
    slot_seconds=12,
    slots_per_epoch=32,
    max_effective_balance_gwei=32 * 10**9,
    min_deposit_gwei=1 * 10**9,
    ejection_balance_gwei=16 * 10**9,
    activation_delay_epochs=4,
    exit_delay_epochs=4,
    withdrawable_delay_epochs=256,
    base_reward_factor=64,
    proposer_reward_quotient=8,
    whistleblower_reward_quotient=512,
    min_slashing_penalty_quotient=64,
    inactivity_score_bias=4,
    inactivity_penalty_quotient=3 * 2**24,
    min_epochs_to_inactivity_penalty=4,
    churn_limit=4,
    name="mainnet-like",
)
"""Ethereum mainnet figures (phase0, with Altair's slashing and inactivity constants)."""

PRESETS: Final[dict[str, PosPreset]] = {"minimal": MINIMAL, "mainnet-like": MAINNET_LIKE}


# -- registry and state ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Validator:
    """A registry entry (phase0 ``Validator`` plus Altair's ``inactivity_score``).

    ``effective_balance`` is the balance the protocol weighs (votes, rewards, proposer
    sampling): whole ether, capped at ``max_effective_balance_gwei``, and updated with
    hysteresis so small reward jitter does not change it every epoch. ``withdrawn`` marks a
    validator whose full balance has been paid out to ``withdrawal_address``.
    """

    pubkey: bytes
    withdrawal_address: bytes
    effective_balance: int
    balance: int
    activation_epoch: Epoch
    exit_epoch: Epoch
    withdrawable_epoch: Epoch
    slashed: bool
    inactivity_score: int
    withdrawn: bool


@dataclass(frozen=True, slots=True)
class BeaconBody:
    """The consensus part of a block: what the execution header commits to.

    Operations mirror phase0 ``BeaconBlockBody`` (``randao_reveal``, slashings,
    attestations, deposits, voluntary exits) plus Capella's ``withdrawals``; exits are
    EIP-7002-style requests from the withdrawal address rather than signed messages.
    """

    proposer_index: ValidatorIndex
    randao_reveal: bytes
    attestations: tuple[Attestation, ...] = ()
    proposer_slashings: tuple[ProposerSlashing, ...] = ()
    attester_slashings: tuple[AttesterSlashing, ...] = ()
    deposits: tuple[Deposit, ...] = ()
    exits: tuple[ExitRequest, ...] = ()
    withdrawals: tuple[Withdrawal, ...] = ()

    def encode(self) -> bytes:
        """RLP of the nested field lists (ints as big-endian scalars, bools as 0/1)."""
        return codec.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> BeaconBody:
        """Inverse of :meth:`encode`; anything else raises :class:`ConsensusError`."""
        try:
            return codec.decode_to(cls, data)
        except MalformedEncoding as exc:
            raise ConsensusError(f"beacon body: {exc}") from exc

    def root(self) -> Root:
        """keccak256 of :meth:`encode`: the value an execution header commits to."""
        return bytes(keccak(self.encode()))


@dataclass(frozen=True, slots=True)
class BeaconState:
    """The whole consensus state after processing up to ``slot`` (phase0 ``BeaconState``).

    Differences from the spec's container: ``block_roots`` is a sparse list of
    ``(slot, root)`` pairs for the blocks of the last two to three epochs on this chain
    (enough for ``get_block_root`` of the previous and current epoch and for head votes in
    the inclusion window); ``randao_mix`` is the single running mix, and
    ``previous_epoch_mix`` / ``current_epoch_mix`` are the mixes as of the start of those
    epochs, from which committee and proposer seeds are derived (so a seed never changes
    within its epoch). Participation is Altair's per-validator flag byte.
    """

    preset: PosPreset
    slot: Slot
    genesis_slot: Slot
    genesis_root: Root
    validators: tuple[Validator, ...]
    randao_mix: bytes
    previous_epoch_mix: bytes
    current_epoch_mix: bytes
    block_roots: tuple[tuple[Slot, Root], ...]
    latest_block_root: Root
    previous_epoch_participation: tuple[int, ...]
    current_epoch_participation: tuple[int, ...]
    justification_bits: tuple[bool, bool, bool, bool]
    previous_justified: Checkpoint
    current_justified: Checkpoint
    finalized: Checkpoint
    next_withdrawal_index: int
    deposit_count: int

    def encode(self) -> bytes:
        """RLP encoding for disk persistence (exact round trip through :meth:`decode`)."""
        preset, *rest = codec.to_rlp_item(self)
        return bytes(rlp.encode([STATE_ENCODING_VERSION, _preset_name_first(preset), *rest]))

    @classmethod
    def decode(cls, data: bytes) -> BeaconState:
        return _state_from_bytes(data)

    def root(self) -> Root:
        """keccak256 of :meth:`encode` (no SSZ hash tree: the state is never proven piecewise)."""
        return bytes(keccak(self.encode()))


# -- epochs, predicates, accessors ----------------------------------------------------------


def compute_epoch_at_slot(preset: PosPreset, slot: Slot) -> Epoch:
    return slot // preset.slots_per_epoch


def compute_start_slot_at_epoch(preset: PosPreset, epoch: Epoch) -> Slot:
    return epoch * preset.slots_per_epoch


def get_current_epoch(state: BeaconState) -> Epoch:
    return compute_epoch_at_slot(state.preset, state.slot)


def get_genesis_epoch(state: BeaconState) -> Epoch:
    return compute_epoch_at_slot(state.preset, state.genesis_slot)


def get_previous_epoch(state: BeaconState) -> Epoch:
    """phase0 ``get_previous_epoch``: the genesis epoch has no predecessor."""
    return max(get_current_epoch(state) - 1, get_genesis_epoch(state))


def is_active_validator(validator: Validator, epoch: Epoch) -> bool:
    return validator.activation_epoch <= epoch < validator.exit_epoch


def is_slashable_validator(validator: Validator, epoch: Epoch) -> bool:
    """phase0: not yet slashed and between activation and withdrawability."""
    return (not validator.slashed) and validator.activation_epoch <= epoch < validator.withdrawable_epoch


def is_slashable_attestation_data(data_1: AttestationData, data_2: AttestationData) -> bool:
    """Casper FFG's two slashing conditions (arXiv:1710.09437 section 2.2; phase0).

    A *double vote*: two different votes for the same target epoch. A *surround vote*:
    ``data_1``'s source->target link strictly surrounds ``data_2``'s. Any two conflicting
    finalized checkpoints imply at least 1/3 of the stake made one of these.
    """
    double_vote = data_1 != data_2 and data_1.target.epoch == data_2.target.epoch
    surround_vote = data_1.source.epoch < data_2.source.epoch and data_2.target.epoch < data_1.target.epoch
    return double_vote or surround_vote


def get_active_validator_indices(state: BeaconState, epoch: Epoch) -> tuple[ValidatorIndex, ...]:
    return tuple(i for i, v in enumerate(state.validators) if is_active_validator(v, epoch))


def get_total_balance(state: BeaconState, indices: Sequence[ValidatorIndex]) -> int:
    """Sum of effective balances, at least one increment (phase0, avoids division by zero)."""
    total = sum(state.validators[i].effective_balance for i in indices)
    return max(EFFECTIVE_BALANCE_INCREMENT, total)


def get_total_active_balance(state: BeaconState) -> int:
    return get_total_balance(state, get_active_validator_indices(state, get_current_epoch(state)))


def get_base_reward(
    state: BeaconState, index: ValidatorIndex, total_active_balance: int | None = None
) -> int:
    """phase0 ``get_base_reward``: ``eb * factor / sqrt(total) / 4`` gwei per epoch and duty.

    The square root makes the issuance per validator fall as the total stake grows.
    """
    total = get_total_active_balance(state) if total_active_balance is None else total_active_balance
    eb = state.validators[index].effective_balance
    return eb * state.preset.base_reward_factor // math.isqrt(total) // BASE_REWARDS_PER_EPOCH


def get_finality_delay(state: BeaconState) -> int:
    return get_previous_epoch(state) - state.finalized.epoch


def is_in_inactivity_leak(state: BeaconState) -> bool:
    """Altair: finality has been missing for more than ``min_epochs_to_inactivity_penalty``.

    While leaking, attesters earn nothing and non-participants bleed quadratically in time
    until the participating stake is 2/3 of the remainder and finality resumes.
    """
    return get_finality_delay(state) > state.preset.min_epochs_to_inactivity_penalty


def get_block_root_at_slot(state: BeaconState, slot: Slot) -> Root:
    """phase0 ``get_block_root_at_slot``: the latest block at or before ``slot`` on this chain.

    Slots before genesis map to the genesis root. Raises when ``slot`` is in the future of
    the state or older than the history the state keeps.
    """
    if slot > state.slot:
        raise ConsensusError(f"block root at slot {slot} requested from a state at slot {state.slot}")
    entries = state.block_roots
    found: Root | None = None
    for entry_slot, root in entries:
        if entry_slot > slot:
            break
        found = root
    if found is not None:
        return found
    if entries and entries[0] == (state.genesis_slot, state.genesis_root):
        return state.genesis_root
    oldest = entries[0][0] if entries else state.slot
    raise ConsensusError(f"block root at slot {slot} is older than the kept history (oldest slot {oldest})")


def epoch_boundary_root(state: BeaconState, epoch: Epoch) -> Root:
    """phase0 ``get_block_root``: the checkpoint root of ``epoch`` on this chain.

    It is the block at the epoch's first slot or, when that slot is empty, the latest block
    before it (Gasper arXiv:2003.03052 "epoch boundary block"). For the genesis epoch of a
    chain that started mid-epoch this is the genesis block.
    """
    return get_block_root_at_slot(state, compute_start_slot_at_epoch(state.preset, epoch))


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def get_seed(state: BeaconState, epoch: Epoch, domain: bytes) -> bytes:
    """phase0 ``get_seed`` from the RANDAO mix as of the start of ``epoch``.

    Only the previous and current epochs are answerable: seeds for later epochs depend on
    reveals not yet made, which is what makes the proposer schedule unpredictable.
    """
    current = get_current_epoch(state)
    if epoch == current:
        mix = state.current_epoch_mix
    elif epoch == get_previous_epoch(state) and epoch < current:
        mix = state.previous_epoch_mix
    else:
        raise ConsensusError(f"no seed for epoch {epoch}: state is at epoch {current}")
    return _sha256(domain + _u64(epoch) + mix)


def compute_shuffled_index(index: int, count: int, seed: bytes) -> int:
    """phase0 swap-or-not shuffle (Hoang, Morris, Rogaway 2012): position of ``index``."""
    if not 0 <= index < count:
        raise ConsensusError(f"shuffle index {index} out of range for count {count}")
    for current_round in range(SHUFFLE_ROUND_COUNT):
        round_byte = bytes([current_round])
        pivot = int.from_bytes(_sha256(seed + round_byte)[:8], "little") % count
        flip = (pivot + count - index) % count
        position = max(index, flip)
        source = _sha256(seed + round_byte + (position // 256).to_bytes(4, "little"))
        if (source[(position % 256) // 8] >> (position % 8)) & 1:
            index = flip
    return index


@lru_cache(maxsize=512)
def _shuffled_positions(seed: bytes, count: int) -> tuple[int, ...]:
    """``compute_shuffled_index(i, count, seed)`` for every ``i``, one round at a time."""
    positions = list(range(count))
    for current_round in range(SHUFFLE_ROUND_COUNT if count > 0 else 0):
        round_byte = bytes([current_round])
        pivot = int.from_bytes(_sha256(seed + round_byte)[:8], "little") % count
        sources: dict[int, bytes] = {}
        for i, index in enumerate(positions):
            flip = (pivot + count - index) % count
            position = max(index, flip)
            chunk = position // 256
            source = sources.get(chunk)
            if source is None:
                source = _sha256(seed + round_byte + chunk.to_bytes(4, "little"))
                sources[chunk] = source
            if (source[(position % 256) // 8] >> (position % 8)) & 1:
                positions[i] = flip
    return tuple(positions)


def get_committee(state: BeaconState, slot: Slot) -> tuple[ValidatorIndex, ...]:
    """The attesters of ``slot`` (phase0 ``get_beacon_committee`` with one committee per slot).

    The active validators of the slot's epoch are shuffled with that epoch's seed and cut
    into ``slots_per_epoch`` contiguous committees, so each active validator attests exactly
    once per epoch. Returned sorted (attestations list their indices sorted).
    """
    preset = state.preset
    epoch = compute_epoch_at_slot(preset, slot)
    indices = get_active_validator_indices(state, epoch)
    count = len(indices)
    seed = get_seed(state, epoch, DOMAIN_SEED_ATTESTER)
    positions = _shuffled_positions(seed, count)
    committee_index = slot % preset.slots_per_epoch
    start = count * committee_index // preset.slots_per_epoch
    end = count * (committee_index + 1) // preset.slots_per_epoch
    return tuple(sorted(indices[positions[i]] for i in range(start, end)))


def get_beacon_proposer_index(state: BeaconState, slot: Slot) -> ValidatorIndex:
    """phase0 ``compute_proposer_index``: effective-balance-weighted sampling.

    Candidates come from the shuffled active set; a candidate is accepted with probability
    ``effective_balance / max_effective_balance`` (one random byte each), so proposals are
    proportional to stake up to the cap. Deterministic in the epoch seed and the slot.
    """
    preset = state.preset
    epoch = compute_epoch_at_slot(preset, slot)
    indices = get_active_validator_indices(state, epoch)
    if not indices or all(state.validators[i].effective_balance == 0 for i in indices):
        raise ConsensusError(f"no active validator with stake at epoch {epoch} to propose slot {slot}")
    seed = _sha256(get_seed(state, epoch, DOMAIN_SEED_PROPOSER) + _u64(slot))
    total = len(indices)
    for i in range(_MAX_PROPOSER_SAMPLES):
        candidate = indices[compute_shuffled_index(i % total, total, seed)]
        random_byte = _sha256(seed + _u64(i // 32))[i % 32]
        effective_balance = state.validators[candidate].effective_balance
        if effective_balance * _MAX_RANDOM_BYTE >= preset.max_effective_balance_gwei * random_byte:
            return candidate
    raise ConsensusError(f"proposer sampling for slot {slot} did not terminate")


def expected_withdrawals(state: BeaconState) -> tuple[Withdrawal, ...]:
    """Capella ``get_expected_withdrawals`` restricted to full withdrawals.

    Every validator whose ``withdrawable_epoch`` has come, with a positive balance and not
    yet paid, in index order, at most ``MAX_WITHDRAWALS_PER_BLOCK`` per block. A block at
    slot ``s`` must carry exactly ``expected_withdrawals(process_slots(state, s))``.
    """
    epoch = get_current_epoch(state)
    result: list[Withdrawal] = []
    for index, v in enumerate(state.validators):
        if len(result) == MAX_WITHDRAWALS_PER_BLOCK:
            break
        if v.withdrawable_epoch <= epoch and v.balance > 0 and not v.withdrawn:
            result.append(
                Withdrawal(
                    index=state.next_withdrawal_index + len(result),
                    validator_index=index,
                    address=v.withdrawal_address,
                    amount_gwei=v.balance,
                )
            )
    return tuple(result)


# -- signing roots --------------------------------------------------------------------------


def _signing_root(domain: bytes, payload: object) -> bytes:
    return _sha256(domain + bytes(rlp.encode(payload)))


def proposal_signing_root(slot: Slot, proposer_index: ValidatorIndex, block_root: Root) -> bytes:
    """What a proposer signs (phase0 ``compute_signing_root(block, DOMAIN_BEACON_PROPOSER)``)."""
    return _signing_root(DOMAIN_BEACON_PROPOSER, [slot, proposer_index, block_root])


def attestation_signing_root(data: AttestationData) -> bytes:
    """What every attester of ``data`` signs; equal data aggregate into one signature."""
    return _signing_root(DOMAIN_BEACON_ATTESTER, codec.to_rlp_item(data))


def randao_signing_root(epoch: Epoch) -> bytes:
    """The RANDAO reveal is the proposer's signature of its epoch (phase0 ``process_randao``)."""
    return _signing_root(DOMAIN_RANDAO, [epoch])


def deposit_message(pubkey: bytes, withdrawal_address: bytes, amount_gwei: int) -> bytes:
    """The proof-of-possession message of a deposit (phase0 ``DepositMessage``)."""
    return _signing_root(DOMAIN_DEPOSIT, [pubkey, withdrawal_address, amount_gwei])


# -- genesis --------------------------------------------------------------------------------


def _initial_effective_balance(preset: PosPreset, balance: int) -> int:
    return min(balance - balance % EFFECTIVE_BALANCE_INCREMENT, preset.max_effective_balance_gwei)


def genesis_state(
    preset: PosPreset,
    validators: Sequence[tuple[bytes, bytes, int]],
    genesis_root: Root,
    genesis_slot: Slot = 0,
    *,
    deposit_count: int = 0,
) -> BeaconState:
    """The PoS state at ``genesis_slot`` (phase0 ``initialize_beacon_state_from_eth1``).

    ``validators`` are ``(pubkey, withdrawal_address, balance_gwei)``, all active from the
    genesis epoch. The genesis checkpoint ``(epoch(genesis_slot), genesis_root)`` is both
    justified and finalized. ``deposit_count`` is the number of staking-contract deposits
    already accounted for by these validators (the next block must carry that index).
    """
    if genesis_slot < 0:
        raise ConsensusError(f"genesis slot must be non-negative, got {genesis_slot}")
    if not validators:
        raise ConsensusError("genesis needs at least one validator")
    epoch = compute_epoch_at_slot(preset, genesis_slot)
    seen: set[bytes] = set()
    registry: list[Validator] = []
    for pubkey, address, balance in validators:
        if len(pubkey) != bls.PUBKEY_SIZE or len(address) != 20:
            raise ConsensusError(f"genesis validator {len(registry)}: pubkey must be 48 bytes and address 20")
        if pubkey in seen:
            raise ConsensusError(f"genesis validator {len(registry)}: duplicate pubkey {pubkey.hex()}")
        if balance < preset.min_deposit_gwei:
            raise ConsensusError(
                f"genesis validator {len(registry)}: balance {balance} "
                f"below min deposit {preset.min_deposit_gwei}"
            )
        seen.add(pubkey)
        registry.append(
            Validator(
                pubkey=pubkey,
                withdrawal_address=address,
                effective_balance=_initial_effective_balance(preset, balance),
                balance=balance,
                activation_epoch=epoch,
                exit_epoch=FAR_FUTURE_EPOCH,
                withdrawable_epoch=FAR_FUTURE_EPOCH,
                slashed=False,
                inactivity_score=0,
                withdrawn=False,
            )
        )
    checkpoint = Checkpoint(epoch, genesis_root)
    mix = _sha256(b"layerlab/pos/genesis-randao" + genesis_root)
    zeros = (0,) * len(registry)
    return BeaconState(
        preset=preset,
        slot=genesis_slot,
        genesis_slot=genesis_slot,
        genesis_root=genesis_root,
        validators=tuple(registry),
        randao_mix=mix,
        previous_epoch_mix=mix,
        current_epoch_mix=mix,
        block_roots=((genesis_slot, genesis_root),),
        latest_block_root=genesis_root,
        previous_epoch_participation=zeros,
        current_epoch_participation=zeros,
        justification_bits=(False, False, False, False),
        previous_justified=checkpoint,
        current_justified=checkpoint,
        finalized=checkpoint,
        next_withdrawal_index=0,
        deposit_count=deposit_count,
    )


# -- the mutable working copy used inside one transition ------------------------------------


class _Registry:
    """Validators and participation during one block or epoch step (phase0 mutators)."""

    def __init__(self, state: BeaconState) -> None:
        self.preset = state.preset
        self.epoch = get_current_epoch(state)
        self.validators = list(state.validators)
        self.previous_participation = list(state.previous_epoch_participation)
        self.current_participation = list(state.current_epoch_participation)

    def increase_balance(self, index: ValidatorIndex, delta: int) -> None:
        v = self.validators[index]
        self.validators[index] = replace(v, balance=v.balance + delta)

    def decrease_balance(self, index: ValidatorIndex, delta: int) -> None:
        v = self.validators[index]
        self.validators[index] = replace(v, balance=max(0, v.balance - delta))

    def initiate_exit(self, index: ValidatorIndex) -> None:
        """phase0 ``initiate_validator_exit``: join the exit queue, at most churn per epoch."""
        v = self.validators[index]
        if v.exit_epoch != FAR_FUTURE_EPOCH:
            return
        exit_epochs = [w.exit_epoch for w in self.validators if w.exit_epoch != FAR_FUTURE_EPOCH]
        queue_epoch = max([*exit_epochs, self.epoch + 1 + self.preset.exit_delay_epochs])
        churn = sum(1 for e in exit_epochs if e == queue_epoch)
        if churn >= self.preset.churn_limit:
            queue_epoch += 1
        self.validators[index] = replace(
            v, exit_epoch=queue_epoch, withdrawable_epoch=queue_epoch + self.preset.withdrawable_delay_epochs
        )

    def slash(self, index: ValidatorIndex, whistleblower: ValidatorIndex) -> None:
        """phase0 ``slash_validator``: eject, delay withdrawal, penalise, pay the reporter."""
        self.initiate_exit(index)
        v = self.validators[index]
        withdrawable = max(
            v.withdrawable_epoch,
            self.epoch + SLASHED_WITHDRAWABLE_FACTOR * self.preset.withdrawable_delay_epochs,
        )
        self.validators[index] = replace(v, slashed=True, withdrawable_epoch=withdrawable)
        self.decrease_balance(index, v.effective_balance // self.preset.min_slashing_penalty_quotient)
        self.increase_balance(whistleblower, v.effective_balance // self.preset.whistleblower_reward_quotient)

    def append(self, validator: Validator) -> None:
        self.validators.append(validator)
        self.previous_participation.append(0)
        self.current_participation.append(0)

    def apply(self, state: BeaconState, **changes: object) -> BeaconState:
        return replace(
            state,
            validators=tuple(self.validators),
            previous_epoch_participation=tuple(self.previous_participation),
            current_epoch_participation=tuple(self.current_participation),
            **changes,  # type: ignore[arg-type]
        )


# -- epoch processing -----------------------------------------------------------------------


def _unslashed_participants(state: BeaconState, flag: int, epoch: Epoch) -> list[ValidatorIndex]:
    """Altair ``get_unslashed_participating_indices``."""
    if epoch == get_current_epoch(state):
        participation = state.current_epoch_participation
    else:
        participation = state.previous_epoch_participation
    return [
        i
        for i in get_active_validator_indices(state, epoch)
        if participation[i] & flag and not state.validators[i].slashed
    ]


def process_justification_and_finalization(state: BeaconState) -> BeaconState:
    """Casper FFG over epoch boundary checkpoints (phase0 ``weigh_justification_and_finalization``).

    A checkpoint is justified when validators holding 2/3 of the active stake voted for it
    as target (with a justified source); a justified checkpoint is finalized when it is the
    source of a supermajority link to the next justified one, up to the 4-epoch window of
    the justification bits (Gasper arXiv:2003.03052, section 4.4; FFG arXiv:1710.09437).
    """
    current_epoch = get_current_epoch(state)
    if current_epoch <= get_genesis_epoch(state) + 1:
        return state
    previous_epoch = get_previous_epoch(state)
    total = get_total_active_balance(state)
    previous_target = get_total_balance(
        state, _unslashed_participants(state, TIMELY_TARGET_FLAG, previous_epoch)
    )
    current_target = get_total_balance(
        state, _unslashed_participants(state, TIMELY_TARGET_FLAG, current_epoch)
    )

    old_previous_justified = state.previous_justified
    old_current_justified = state.current_justified
    previous_justified = state.current_justified
    current_justified = state.current_justified
    bits = [False, *state.justification_bits[:-1]]
    if previous_target * 3 >= total * 2:
        current_justified = Checkpoint(previous_epoch, epoch_boundary_root(state, previous_epoch))
        bits[1] = True
    if current_target * 3 >= total * 2:
        current_justified = Checkpoint(current_epoch, epoch_boundary_root(state, current_epoch))
        bits[0] = True

    finalized = state.finalized
    if all(bits[1:4]) and old_previous_justified.epoch + 3 == current_epoch:
        finalized = old_previous_justified
    if all(bits[1:3]) and old_previous_justified.epoch + 2 == current_epoch:
        finalized = old_previous_justified
    if all(bits[0:3]) and old_current_justified.epoch + 2 == current_epoch:
        finalized = old_current_justified
    if all(bits[0:2]) and old_current_justified.epoch + 1 == current_epoch:
        finalized = old_current_justified
    return replace(
        state,
        justification_bits=(bits[0], bits[1], bits[2], bits[3]),
        previous_justified=previous_justified,
        current_justified=current_justified,
        finalized=finalized,
    )


def _eligible_indices(state: BeaconState) -> list[ValidatorIndex]:
    """phase0 ``get_eligible_validator_indices``: active last epoch, or slashed and not yet out."""
    previous_epoch = get_previous_epoch(state)
    return [
        i
        for i, v in enumerate(state.validators)
        if is_active_validator(v, previous_epoch) or (v.slashed and previous_epoch + 1 < v.withdrawable_epoch)
    ]


def process_inactivity_updates(state: BeaconState) -> BeaconState:
    """Altair ``process_inactivity_updates``.

    Missing the previous epoch's target raises a validator's score by
    ``inactivity_score_bias``; hitting it lowers it by one; outside a leak every score also
    recovers by ``INACTIVITY_SCORE_RECOVERY_RATE``. The score scales the inactivity penalty.
    """
    if get_current_epoch(state) == get_genesis_epoch(state):
        return state
    target = set(_unslashed_participants(state, TIMELY_TARGET_FLAG, get_previous_epoch(state)))
    leaking = is_in_inactivity_leak(state)
    validators = list(state.validators)
    for i in _eligible_indices(state):
        score = validators[i].inactivity_score
        score = score - min(1, score) if i in target else score + state.preset.inactivity_score_bias
        if not leaking:
            score -= min(INACTIVITY_SCORE_RECOVERY_RATE, score)
        if score != validators[i].inactivity_score:
            validators[i] = replace(validators[i], inactivity_score=score)
    return replace(state, validators=tuple(validators))


def get_attestation_deltas(state: BeaconState) -> tuple[list[int], list[int]]:
    """Rewards and penalties for the previous epoch's duties (phase0 + Altair leak).

    For each of source, target and head, an eligible validator that did its duty earns
    ``base_reward * participating_stake / total_stake`` (nothing during an inactivity leak);
    one that did not loses ``base_reward``. Non-target-participants also pay Altair's
    inactivity penalty ``effective_balance * score / (bias * quotient)``.
    """
    preset = state.preset
    count = len(state.validators)
    rewards = [0] * count
    penalties = [0] * count
    total = get_total_active_balance(state)
    previous_epoch = get_previous_epoch(state)
    leaking = is_in_inactivity_leak(state)
    eligible = _eligible_indices(state)
    total_increments = total // EFFECTIVE_BALANCE_INCREMENT
    target_set: set[int] = set()
    for flag in PARTICIPATION_FLAGS:
        participants = _unslashed_participants(state, flag, previous_epoch)
        participating = set(participants)
        if flag == TIMELY_TARGET_FLAG:
            target_set = participating
        attesting_increments = get_total_balance(state, participants) // EFFECTIVE_BALANCE_INCREMENT
        for i in eligible:
            base = get_base_reward(state, i, total)
            if i in participating:
                if not leaking:
                    rewards[i] += base * attesting_increments // total_increments
            else:
                penalties[i] += base
    divisor = preset.inactivity_score_bias * preset.inactivity_penalty_quotient
    for i in eligible:
        if i not in target_set:
            v = state.validators[i]
            penalties[i] += v.effective_balance * v.inactivity_score // divisor
    return rewards, penalties


def process_rewards_and_penalties(state: BeaconState) -> BeaconState:
    if get_current_epoch(state) == get_genesis_epoch(state):
        return state
    rewards, penalties = get_attestation_deltas(state)
    registry = _Registry(state)
    for i in range(len(state.validators)):
        if rewards[i]:
            registry.increase_balance(i, rewards[i])
        if penalties[i]:
            registry.decrease_balance(i, penalties[i])
    return registry.apply(state)


def process_registry_updates(state: BeaconState) -> BeaconState:
    """phase0 ``process_registry_updates``: ejections, then the activation queue.

    Active validators whose effective balance fell to ``ejection_balance_gwei`` are exited.
    Pending validators with a full effective balance are activated at
    ``epoch + 1 + activation_delay_epochs``, at most ``churn_limit`` per epoch, by index.
    """
    preset = state.preset
    epoch = get_current_epoch(state)
    registry = _Registry(state)
    for i, v in enumerate(state.validators):
        if is_active_validator(v, epoch) and v.effective_balance <= preset.ejection_balance_gwei:
            registry.initiate_exit(i)
    queue = [
        i
        for i, v in enumerate(registry.validators)
        if v.activation_epoch == FAR_FUTURE_EPOCH
        and v.exit_epoch == FAR_FUTURE_EPOCH
        and not v.slashed
        and v.effective_balance == preset.max_effective_balance_gwei
    ]
    for i in queue[: preset.churn_limit]:
        registry.validators[i] = replace(
            registry.validators[i], activation_epoch=epoch + 1 + preset.activation_delay_epochs
        )
    return registry.apply(state)


def process_effective_balance_updates(state: BeaconState) -> BeaconState:
    """phase0 hysteresis: move the effective balance only when the balance drifts by more
    than 1/4 increment below or 5/4 increments above it."""
    preset = state.preset
    hysteresis = EFFECTIVE_BALANCE_INCREMENT // HYSTERESIS_QUOTIENT
    downward = hysteresis * HYSTERESIS_DOWNWARD_MULTIPLIER
    upward = hysteresis * HYSTERESIS_UPWARD_MULTIPLIER
    validators = list(state.validators)
    for i, v in enumerate(validators):
        if v.balance + downward < v.effective_balance or v.effective_balance + upward < v.balance:
            effective = min(
                v.balance - v.balance % EFFECTIVE_BALANCE_INCREMENT, preset.max_effective_balance_gwei
            )
            validators[i] = replace(v, effective_balance=effective)
    return replace(state, validators=tuple(validators))


def _prune_block_roots(
    preset: PosPreset, roots: tuple[tuple[Slot, Root], ...], epoch: Epoch
) -> tuple[tuple[Slot, Root], ...]:
    """Keep blocks from ``epoch - 2`` on, plus the latest one before (it answers earlier slots)."""
    cutoff = compute_start_slot_at_epoch(preset, max(epoch - 2, 0))
    older = [entry for entry in roots if entry[0] < cutoff]
    newer = [entry for entry in roots if entry[0] >= cutoff]
    return tuple(older[-1:] + newer)


def process_participation_rotation(state: BeaconState) -> BeaconState:
    """End-of-epoch bookkeeping: rotate participation flags and epoch mixes, trim history."""
    next_epoch = get_current_epoch(state) + 1
    return replace(
        state,
        previous_epoch_participation=state.current_epoch_participation,
        current_epoch_participation=(0,) * len(state.validators),
        previous_epoch_mix=state.current_epoch_mix,
        current_epoch_mix=state.randao_mix,
        block_roots=_prune_block_roots(state.preset, state.block_roots, next_epoch),
    )


def process_epoch(state: BeaconState) -> BeaconState:
    """Altair ``process_epoch`` order, run at the last slot of an epoch."""
    state = process_justification_and_finalization(state)
    state = process_inactivity_updates(state)
    state = process_rewards_and_penalties(state)
    state = process_registry_updates(state)
    state = process_effective_balance_updates(state)
    return process_participation_rotation(state)


def process_slots(state: BeaconState, slot: Slot) -> BeaconState:
    """phase0 ``process_slots``: advance through empty slots, processing each epoch end."""
    if slot < state.slot:
        raise ConsensusError(f"cannot process slots backwards: state slot {state.slot}, target slot {slot}")
    spe = state.preset.slots_per_epoch
    while state.slot < slot:
        last_of_epoch = state.slot - state.slot % spe + spe - 1
        if last_of_epoch >= slot:
            state = replace(state, slot=slot)
            break
        state = replace(state, slot=last_of_epoch)
        state = replace(process_epoch(state), slot=last_of_epoch + 1)
    return state


# -- block processing -----------------------------------------------------------------------


def _validator(state: BeaconState, index: ValidatorIndex, what: str) -> Validator:
    if not 0 <= index < len(state.validators):
        raise ConsensusError(
            f"{what}: validator index {index} out of range ({len(state.validators)} validators)"
        )
    return state.validators[index]


def validate_proposer_slashing(
    state: BeaconState, slashing: ProposerSlashing, verify_signatures: bool
) -> None:
    """phase0 ``process_proposer_slashing`` checks: same slot and proposer, two different
    blocks, both signed, proposer still slashable."""
    h1, h2 = slashing.header_1, slashing.header_2
    if h1.slot != h2.slot:
        raise ConsensusError(f"proposer slashing: header slots differ ({h1.slot} != {h2.slot})")
    if h1.proposer_index != h2.proposer_index:
        raise ConsensusError(
            f"proposer slashing: proposers differ ({h1.proposer_index} != {h2.proposer_index})"
        )
    if h1.block_root == h2.block_root:
        raise ConsensusError(f"proposer slashing: both headers sign the same block {h1.block_root.hex()}")
    proposer = _validator(state, h1.proposer_index, "proposer slashing")
    if not is_slashable_validator(proposer, get_current_epoch(state)):
        raise ConsensusError(f"proposer slashing: validator {h1.proposer_index} is not slashable")
    if verify_signatures:
        for header in (h1, h2):
            message = proposal_signing_root(header.slot, header.proposer_index, header.block_root)
            if not bls.verify(proposer.pubkey, message, header.signature):
                raise InvalidSignature(
                    f"proposer slashing: bad signature of validator {header.proposer_index} "
                    f"on block {header.block_root.hex()} at slot {header.slot}"
                )


def validate_indexed_attestation(
    state: BeaconState, attestation: Attestation, verify_signatures: bool
) -> None:
    """phase0 ``is_valid_indexed_attestation``: sorted unique known indices, valid aggregate."""
    indices = attestation.validator_indices
    if not indices:
        raise ConsensusError("attestation has no validator indices")
    if any(a >= b for a, b in itertools.pairwise(indices)):
        raise ConsensusError(f"attestation indices not sorted and unique: {list(indices)}")
    if indices[0] < 0 or indices[-1] >= len(state.validators):
        raise ConsensusError(
            f"attestation index out of range: {list(indices)} with {len(state.validators)} validators"
        )
    if verify_signatures:
        pubkeys = [state.validators[i].pubkey for i in indices]
        if not bls.fast_aggregate_verify(
            pubkeys, attestation_signing_root(attestation.data), attestation.signature
        ):
            raise InvalidSignature(
                f"attestation aggregate signature invalid: slot {attestation.data.slot}, "
                f"indices {list(indices)}"
            )


def _process_attester_slashing(
    state: BeaconState, registry: _Registry, slashing: AttesterSlashing, proposer: int, verify: bool
) -> None:
    a1, a2 = slashing.attestation_1, slashing.attestation_2
    if not is_slashable_attestation_data(a1.data, a2.data):
        raise ConsensusError(
            f"attester slashing: not a double or surround vote (targets {a1.data.target.epoch}/"
            f"{a2.data.target.epoch}, sources {a1.data.source.epoch}/{a2.data.source.epoch})"
        )
    validate_indexed_attestation(state, a1, verify)
    validate_indexed_attestation(state, a2, verify)
    epoch = get_current_epoch(state)
    slashed_any = False
    for index in sorted(set(a1.validator_indices) & set(a2.validator_indices)):
        if is_slashable_validator(registry.validators[index], epoch):
            registry.slash(index, proposer)
            slashed_any = True
    if not slashed_any:
        raise ConsensusError(
            f"attester slashing: no slashable validator among "
            f"{sorted(set(a1.validator_indices) & set(a2.validator_indices))}"
        )


def _process_attestation(
    state: BeaconState,
    registry: _Registry,
    attestation: Attestation,
    proposer: int,
    total_active: int,
    verify: bool,
) -> None:
    """phase0 ``process_attestation`` with Altair participation flags."""
    preset = state.preset
    data = attestation.data
    current_epoch = get_current_epoch(state)
    previous_epoch = get_previous_epoch(state)
    if data.target.epoch not in (previous_epoch, current_epoch):
        raise ConsensusError(
            f"attestation target epoch {data.target.epoch} is neither previous ({previous_epoch}) "
            f"nor current ({current_epoch})"
        )
    if data.target.epoch != compute_epoch_at_slot(preset, data.slot):
        raise ConsensusError(f"attestation target epoch {data.target.epoch} does not match slot {data.slot}")
    if not data.slot + 1 <= state.slot <= data.slot + preset.slots_per_epoch:
        raise ConsensusError(
            f"attestation for slot {data.slot} outside inclusion window at slot {state.slot} "
            f"(allowed {data.slot + 1}..{data.slot + preset.slots_per_epoch})"
        )
    if data.slot < state.genesis_slot:
        raise ConsensusError(f"attestation slot {data.slot} precedes genesis slot {state.genesis_slot}")
    justified = state.current_justified if data.target.epoch == current_epoch else state.previous_justified
    if data.source != justified:
        raise ConsensusError(
            f"attestation source ({data.source.epoch}, {data.source.root.hex()}) != justified "
            f"({justified.epoch}, {justified.root.hex()})"
        )
    committee = set(get_committee(state, data.slot))
    outsiders = [i for i in attestation.validator_indices if i not in committee]
    if outsiders:
        raise ConsensusError(f"attestation indices {outsiders} not in the committee of slot {data.slot}")
    validate_indexed_attestation(state, attestation, verify)

    flags = TIMELY_SOURCE_FLAG
    if data.target.root == epoch_boundary_root(state, data.target.epoch):
        flags |= TIMELY_TARGET_FLAG
        if data.beacon_block_root == get_block_root_at_slot(state, data.slot):
            flags |= TIMELY_HEAD_FLAG
    participation = (
        registry.current_participation
        if data.target.epoch == current_epoch
        else registry.previous_participation
    )
    proposer_reward = 0
    for index in attestation.validator_indices:
        before = participation[index]
        participation[index] = before | flags
        if not before & TIMELY_SOURCE_FLAG and not state.validators[index].slashed:
            proposer_reward += get_base_reward(state, index, total_active) // preset.proposer_reward_quotient
    if proposer_reward:
        registry.increase_balance(proposer, proposer_reward)


def _process_deposit(registry: _Registry, deposit: Deposit, pubkeys: dict[bytes, int]) -> None:
    """phase0 ``apply_deposit``: a top-up for a known key, else a new validator if its
    proof of possession verifies (a forged one is skipped, never an invalid block)."""
    preset = registry.preset
    known = pubkeys.get(deposit.pubkey)
    if known is not None:
        v = registry.validators[known]
        registry.validators[known] = replace(v, balance=v.balance + deposit.amount_gwei, withdrawn=False)
        return
    if deposit.amount_gwei < preset.min_deposit_gwei or len(deposit.withdrawal_address) != 20:
        return
    message = deposit_message(deposit.pubkey, deposit.withdrawal_address, deposit.amount_gwei)
    if not bls.verify(deposit.pubkey, message, deposit.signature):
        return
    pubkeys[deposit.pubkey] = len(registry.validators)
    registry.append(
        Validator(
            pubkey=deposit.pubkey,
            withdrawal_address=deposit.withdrawal_address,
            effective_balance=_initial_effective_balance(preset, deposit.amount_gwei),
            balance=deposit.amount_gwei,
            activation_epoch=FAR_FUTURE_EPOCH,
            exit_epoch=FAR_FUTURE_EPOCH,
            withdrawable_epoch=FAR_FUTURE_EPOCH,
            slashed=False,
            inactivity_score=0,
            withdrawn=False,
        )
    )


def _process_exit(registry: _Registry, request: ExitRequest, pubkeys: dict[bytes, int]) -> None:
    """An EIP-7002-style exit request: honoured only for an active, non-exiting validator whose
    withdrawal address sent it; anything else is ignored, as the contract cannot check it."""
    index = pubkeys.get(request.pubkey)
    if index is None:
        return
    v = registry.validators[index]
    if (
        is_active_validator(v, registry.epoch)
        and v.exit_epoch == FAR_FUTURE_EPOCH
        and v.withdrawal_address == request.source_address
    ):
        registry.initiate_exit(index)


def process_block(
    state: BeaconState,
    slot: Slot,
    parent_root: Root,
    block_root: Root,
    body: BeaconBody,
    signature: bytes,
    *,
    verify_signatures: bool = True,
) -> BeaconState:
    """phase0 ``state_transition`` for one block: slots, header, RANDAO, operations.

    Order: ``process_slots``; header checks (slot, parent, proposer, proposer signature over
    ``proposal_signing_root(slot, proposer, block_root)``); RANDAO reveal (the proposer's
    signature of the epoch, mixed in as ``mix ^= sha256(reveal)``); withdrawals (Capella
    processes them before operations); proposer slashings, attester slashings,
    attestations, deposits, exits. With ``verify_signatures=False`` BLS checks are skipped
    (simulations); deposit proofs of possession are always checked because they decide
    which validators exist, not whether the block is valid.
    """
    if slot <= state.slot:
        raise ConsensusError(f"block slot {slot} is not after state slot {state.slot}")
    if parent_root != state.latest_block_root:
        raise ConsensusError(
            f"block parent {parent_root.hex()} is not the state's head {state.latest_block_root.hex()}"
        )
    state = process_slots(state, slot)
    epoch = get_current_epoch(state)
    expected_proposer = get_beacon_proposer_index(state, slot)
    if body.proposer_index != expected_proposer:
        raise ConsensusError(
            f"wrong proposer for slot {slot}: got {body.proposer_index}, expected {expected_proposer}"
        )
    proposer = state.validators[expected_proposer]
    if proposer.slashed:
        raise ConsensusError(f"proposer {expected_proposer} of slot {slot} is slashed")
    if len(body.randao_reveal) != bls.SIGNATURE_SIZE:
        raise ConsensusError(
            f"randao reveal must be {bls.SIGNATURE_SIZE} bytes, got {len(body.randao_reveal)}"
        )
    if verify_signatures:
        if not bls.verify(
            proposer.pubkey, proposal_signing_root(slot, expected_proposer, block_root), signature
        ):
            raise InvalidSignature(
                f"bad proposer signature: validator {expected_proposer}, slot {slot}, "
                f"block {block_root.hex()}"
            )
        if not bls.verify(proposer.pubkey, randao_signing_root(epoch), body.randao_reveal):
            raise InvalidSignature(f"bad randao reveal: validator {expected_proposer}, epoch {epoch}")
    reveal_hash = _sha256(body.randao_reveal)
    mix = bytes(a ^ b for a, b in zip(state.randao_mix, reveal_hash, strict=True))

    withdrawals = expected_withdrawals(state)
    if body.withdrawals != withdrawals:
        raise ConsensusError(
            f"withdrawals mismatch at slot {slot}: block has {list(body.withdrawals)}, "
            f"expected {list(withdrawals)}"
        )
    registry = _Registry(state)
    for w in withdrawals:
        v = registry.validators[w.validator_index]
        registry.validators[w.validator_index] = replace(v, balance=v.balance - w.amount_gwei, withdrawn=True)

    for proposer_slashing in body.proposer_slashings:
        validate_proposer_slashing(state, proposer_slashing, verify_signatures)
        offender = proposer_slashing.header_1.proposer_index
        if not is_slashable_validator(registry.validators[offender], epoch):
            raise ConsensusError(f"proposer slashing: validator {offender} already slashed in this block")
        registry.slash(offender, expected_proposer)
    for attester_slashing in body.attester_slashings:
        _process_attester_slashing(state, registry, attester_slashing, expected_proposer, verify_signatures)
    total_active = get_total_active_balance(state)
    for attestation in body.attestations:
        _process_attestation(state, registry, attestation, expected_proposer, total_active, verify_signatures)

    pubkeys = {v.pubkey: i for i, v in enumerate(registry.validators)}
    for offset, deposit in enumerate(body.deposits):
        if deposit.index != state.deposit_count + offset:
            raise ConsensusError(
                f"deposit index {deposit.index} out of order: expected {state.deposit_count + offset}"
            )
        _process_deposit(registry, deposit, pubkeys)
    for request in body.exits:
        _process_exit(registry, request, pubkeys)

    return registry.apply(
        state,
        randao_mix=mix,
        block_roots=(*state.block_roots, (slot, block_root)),
        latest_block_root=block_root,
        next_withdrawal_index=state.next_withdrawal_index + len(withdrawals),
        deposit_count=state.deposit_count + len(body.deposits),
    )


def make_attestation_data(state: BeaconState, slot: Slot, head_root: Root) -> AttestationData:
    """The honest vote at ``slot`` (phase0 validator guide ``get_attestation_data``).

    ``state`` is the head block's post-state (advanced to ``slot`` here if needed). The FFG
    source is the state's current justified checkpoint, the target the epoch boundary block
    of the slot's epoch on the head's chain, the LMD-GHOST vote the head itself.
    """
    if state.latest_block_root != head_root:
        raise ConsensusError(
            f"attestation head {head_root.hex()} is not the state's block {state.latest_block_root.hex()}"
        )
    state = process_slots(state, slot)
    epoch = compute_epoch_at_slot(state.preset, slot)
    return AttestationData(
        slot=slot,
        beacon_block_root=head_root,
        source=state.current_justified,
        target=Checkpoint(epoch, epoch_boundary_root(state, epoch)),
    )


# -- RLP codec ------------------------------------------------------------------------------


def _preset_name_first(item: object) -> object:
    """Version 1 stores the preset as ``[name, *ints]`` while ``PosPreset`` declares ``name``
    last (it has a default): move it so stored states keep loading byte for byte."""
    return [item[-1], *item[:-1]] if isinstance(item, list) and item else item


def _preset_name_last(item: object) -> object:
    return [*item[1:], item[0]] if isinstance(item, list) and item else item


def _state_from_bytes(data: bytes) -> BeaconState:
    """``[STATE_ENCODING_VERSION, *fields]``: the version is checked before the fields."""
    try:
        item = codec.decode_rlp_item(data, "beacon state")
    except MalformedEncoding as exc:
        raise ConsensusError(str(exc)) from exc
    if not isinstance(item, list) or not item:
        raise ConsensusError("beacon state: expected an RLP list [version, *fields]")
    try:
        version = codec.decode_uint(item[0], "beacon state encoding version")
        if version != STATE_ENCODING_VERSION:
            raise ConsensusError(
                f"beacon state encoding version {version}, expected {STATE_ENCODING_VERSION}"
            )
        fields = item[1:]
        if fields:
            fields[0] = _preset_name_last(fields[0])
        return codec.from_rlp_item(BeaconState, fields)
    except MalformedEncoding as exc:
        raise ConsensusError(f"beacon state: {exc}") from exc
    except ConfigError as exc:
        raise ConsensusError(f"invalid preset in state: {exc}") from exc


def process_deposits_at_genesis(state: BeaconState, deposits: Sequence[Deposit]) -> BeaconState:
    """Apply staking deposits made before a PoS anchor (the PoW era of a merge chain).

    Same rules as deposits in a block (``apply_deposit``: proof of possession checked,
    top-ups for known keys, indices consecutive); new validators then go through the
    activation queue like any later deposit.
    """
    registry = _Registry(state)
    pubkeys = {v.pubkey: i for i, v in enumerate(registry.validators)}
    for offset, deposit in enumerate(deposits):
        if deposit.index != state.deposit_count + offset:
            raise ConsensusError(
                f"deposit index {deposit.index} out of order: expected {state.deposit_count + offset}"
            )
        _process_deposit(registry, deposit, pubkeys)
    return registry.apply(state, deposit_count=state.deposit_count + len(deposits))


def slash_validators(
    state: BeaconState, indices: Sequence[ValidatorIndex], whistleblower: ValidatorIndex
) -> tuple[BeaconState, tuple[ValidatorIndex, ...]]:
    """phase0 ``slash_validator`` for each of ``indices`` still slashable, outside a block's
    operations (evidence defined by another protocol, e.g. shard fraud proofs): each is
    exited, its withdrawal delayed and its balance cut, and ``whistleblower`` is paid.
    Returns the new state and the indices actually slashed (already-slashed ones are skipped)."""
    registry = _Registry(state)
    epoch = get_current_epoch(state)
    slashed: list[ValidatorIndex] = []
    for index in sorted(set(indices)):
        _validator(state, index, "slashing")
        if is_slashable_validator(registry.validators[index], epoch):
            registry.slash(index, whistleblower)
            slashed.append(index)
    return registry.apply(state), tuple(slashed)
