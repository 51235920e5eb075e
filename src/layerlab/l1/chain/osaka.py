"""The Osaka execution layer (Fusaka, EIP-7607) as a py-evm VM on top of ``PragueVM``.

py-evm 0.12.1b1 stops at Prague; Osaka went live on Ethereum mainnet on 2025-12-03. This
module adds its execution-layer EIPs:

- **EIP-7823, MODEXP upper bounds.** Each of the three length words of the MODEXP
  precompile (0x05) input must be at most 1024 bytes (8192 bits); a larger one makes the
  call fail and consume all the gas it was given.
- **EIP-7883, MODEXP gas cost increase.** ``max(500, complexity * iterations)`` with no
  division by 3; the multiplication complexity is 16 up to 32 bytes and ``2 * words**2``
  above; an exponent longer than 32 bytes counts 16 (not 8) iterations per extra byte.
- **EIP-7825, transaction gas limit cap.** A transaction whose gas limit exceeds
  ``2**24`` (16,777,216) is invalid, whatever the block gas limit; a block holding one is
  invalid too (py-evm validates each transaction as it applies it).
- **EIP-7918, blob base fee bounded by execution cost.** When ``BLOB_BASE_COST`` units of
  execution gas cost more than a blob at the parent's blob base fee, the excess blob gas
  grows by ``blob_gas_used * (max - target) / max`` instead of falling by the target.
- **EIP-7934, RLP execution block size limit.** A block whose RLP encoding is longer than
  ``MAX_RLP_BLOCK_SIZE = MAX_BLOCK_SIZE - SAFETY_MARGIN`` (10 MiB - 2 MiB) is invalid.
- **EIP-7939, CLZ.** Opcode 0x1e pops ``x`` and pushes its count of leading zero bits
  (256 for zero); it costs 5 gas, as MUL does.
- **EIP-7951, P256VERIFY.** A precompile at 0x100 verifying an ECDSA signature over
  secp256r1 for 6900 gas: 160 bytes ``h || r || s || qx || qy`` in, 32-byte 1 out on
  success, empty output on any failure or malformed input (it never reverts). The curve
  arithmetic is pycryptodome's (already installed through ``eth-hash[pycryptodome]``).
- **EIP-7594 (PeerDAS), its execution-layer part.** A blob transaction carries at most
  ``MAX_BLOBS_PER_TX = 6`` blobs. (Its cell proofs live in the blob pool's network
  wrapper, which py-evm does not model.)
- **EIP-7892, blob-parameter-only forks.** The blob target, maximum and base fee update
  fraction are data (a :class:`BlobSchedule`, as in a genesis ``blobSchedule`` entry):
  :func:`make_bpo_vm` derives a VM from Osaka (or Prague or Cancun) that only changes
  them; as EIP-7892 and EIP-7918 say, the block's own schedule is used, also when
  pricing the parent's blobs in the first block after a fork.

Not here, as they are no execution rule: EIP-7642 (eth/69 networking), EIP-7910
(``eth_config`` RPC), EIP-7917 (consensus layer), EIP-7935 (a default gas limit).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from Crypto.PublicKey import ECC
from Crypto.Signature import DSS
from eth._utils.address import force_bytes_to_address
from eth._utils.db import get_block_header_by_hash
from eth._utils.padding import zpad_right
from eth.abc import BlockAPI, BlockHeaderAPI, ComputationAPI, SignedTransactionAPI, VirtualMachineAPI
from eth.exceptions import VMError
from eth.precompiles.modexp import extract_lengths, modexp
from eth.vm.forks.cancun import CancunVM
from eth.vm.forks.cancun.constants import BLOB_TX_TYPE, GAS_PER_BLOB, MIN_BLOB_BASE_FEE
from eth.vm.forks.cancun.state import get_total_blob_gas
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.computation import PragueComputation
from eth.vm.forks.prague.state import PragueState
from eth.vm.opcode import as_opcode
from eth_utils.exceptions import ValidationError

from layerlab.l1 import blobs
from layerlab.l1.blobs import MAX_BLOBS_PER_TX
from layerlab.l1.chain.blockrlp import encode_block

# -- EIP-7823 ----------------------------------------------------------------------------
MODEXP_MAX_INPUT_LENGTH = 1024
"""Bytes allowed in each of MODEXP's base, exponent and modulus (8192 bits)."""

# -- EIP-7883 ----------------------------------------------------------------------------
MODEXP_MIN_GAS = 500
MODEXP_EXPONENT_BYTE_MULTIPLIER = 16

# -- EIP-7825 ----------------------------------------------------------------------------
TX_GAS_LIMIT_CAP = 2**24
"""16,777,216: the most gas one transaction may ask for."""

# -- EIP-7918 ----------------------------------------------------------------------------
BLOB_BASE_COST = 2**13

# -- EIP-7934 ----------------------------------------------------------------------------
MAX_BLOCK_SIZE = 10_485_760
SAFETY_MARGIN = 2_097_152
MAX_RLP_BLOCK_SIZE = MAX_BLOCK_SIZE - SAFETY_MARGIN

# -- EIP-7939 ----------------------------------------------------------------------------
CLZ = 0x1E
CLZ_GAS = 5

# -- EIP-7951 ----------------------------------------------------------------------------
P256VERIFY_ADDRESS = force_bytes_to_address(b"\x01\x00")
P256VERIFY_GAS = 6900
P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_A = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256VERIFY_INPUT_LENGTH = 160
P256VERIFY_SUCCESS = (1).to_bytes(32, "big")

# -- EIP-7594 ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlobSchedule:
    """One ``blobSchedule`` entry of a genesis file (EIP-7840, EIP-7892)."""

    target: int
    max: int
    base_fee_update_fraction: int

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> BlobSchedule:
        """Read ``{"target": .., "max": .., "baseFeeUpdateFraction": ..}``."""
        return cls(int(entry["target"]), int(entry["max"]), int(entry["baseFeeUpdateFraction"]))

    def as_params(self) -> blobs.BlobParams:
        """The same schedule in blob gas, as :mod:`layerlab.l1.blobs` takes it."""
        return blobs.BlobParams(target_blob_gas=GAS_PER_BLOB * self.target,
                                max_blob_gas=GAS_PER_BLOB * self.max,
                                update_fraction=self.base_fee_update_fraction,
                                min_blob_base_fee=MIN_BLOB_BASE_FEE)

    def as_tuple(self) -> tuple[int, int, int]:
        """``(target, max, base_fee_update_fraction)``, as :func:`make_bpo_vm` takes them."""
        return (self.target, self.max, self.base_fee_update_fraction)


CANCUN_BLOB_SCHEDULE = BlobSchedule(target=3, max=6, base_fee_update_fraction=3_338_477)
PRAGUE_BLOB_SCHEDULE = BlobSchedule(target=6, max=9, base_fee_update_fraction=5_007_716)
OSAKA_BLOB_SCHEDULE = PRAGUE_BLOB_SCHEDULE
BPO1_BLOB_SCHEDULE = BlobSchedule(target=10, max=15, base_fee_update_fraction=8_346_193)
"""Mainnet's BPO1 (2025-12-09), per EIP-7607."""
BPO2_BLOB_SCHEDULE = BlobSchedule(target=14, max=21, base_fee_update_fraction=11_684_671)
"""Mainnet's BPO2 (2026-01-07), per EIP-7607."""


# -- MODEXP (EIP-7823, EIP-7883) ---------------------------------------------------------
def compute_modexp_multiplication_complexity(base_length: int, modulus_length: int) -> int:
    max_length = max(base_length, modulus_length)
    words = (max_length + 7) // 8
    return 2 * words**2 if max_length > 32 else 16


def compute_modexp_iteration_count(exponent_length: int, exponent_head: int) -> int:
    """``exponent_head`` is the exponent's first ``min(32, exponent_length)`` bytes."""
    if exponent_length <= 32 and exponent_head == 0:
        count = 0
    elif exponent_length <= 32:
        count = exponent_head.bit_length() - 1
    else:
        count = MODEXP_EXPONENT_BYTE_MULTIPLIER * (exponent_length - 32) + max(
            exponent_head.bit_length() - 1, 0
        )
    return max(count, 1)


def compute_modexp_gas_eip7883(data: bytes) -> int:
    """The MODEXP gas of EIP-7883 for the precompile's raw input ``data``."""
    base_length, exponent_length, modulus_length = extract_lengths(data)
    start = 96 + base_length
    head_length = min(exponent_length, 32)
    exponent_head = int.from_bytes(zpad_right(data[start : start + head_length], to_size=head_length), "big")
    complexity = compute_modexp_multiplication_complexity(base_length, modulus_length)
    iterations = compute_modexp_iteration_count(exponent_length, exponent_head)
    return max(MODEXP_MIN_GAS, complexity * iterations)


def validate_modexp_input_bounds(data: bytes) -> None:
    """Raise :class:`VMError` (the call fails, all its gas burnt) past EIP-7823's bounds."""
    lengths = extract_lengths(data)
    if max(lengths) > MODEXP_MAX_INPUT_LENGTH:
        raise VMError(
            f"MODEXP input lengths (base, exponent, modulus) {lengths} exceed "
            f"{MODEXP_MAX_INPUT_LENGTH} bytes (EIP-7823)"
        )


def modexp_osaka(computation: ComputationAPI) -> ComputationAPI:
    """The MODEXP precompile (0x05) with EIP-7823's bounds and EIP-7883's gas."""
    validate_modexp_input_bounds(computation.msg.data_as_bytes)
    result: ComputationAPI = modexp(computation, gas_calculator=compute_modexp_gas_eip7883)
    return result


# -- P256VERIFY (EIP-7951) ---------------------------------------------------------------
class _Prehashed:
    """The message hash ``h`` as the hash object pycryptodome's verifier reads."""

    digest_size = 32

    def __init__(self, value: bytes) -> None:
        self._value = value

    def digest(self) -> bytes:
        return self._value


def is_valid_p256_signature(data: bytes) -> bool:
    """EIP-7951's input validation and ECDSA verification of ``h || r || s || qx || qy``."""
    if len(data) != P256VERIFY_INPUT_LENGTH:
        return False
    h = data[:32]
    r, s, qx, qy = (int.from_bytes(data[i : i + 32], "big") for i in range(32, 160, 32))
    if not (0 < r < P256_N and 0 < s < P256_N):
        return False
    if not (qx < P256_P and qy < P256_P) or (qx, qy) == (0, 0):
        return False
    if (qy * qy - (qx * qx * qx + P256_A * qx + P256_B)) % P256_P != 0:
        return False
    key = ECC.construct(curve="P-256", point_x=qx, point_y=qy)
    # The deterministic scheme skips the FIPS hash-object check; its verification is the
    # plain ECDSA one (r' = x(R') mod n, and R' at infinity has x = 0, never a valid r).
    verifier = DSS.new(key, "deterministic-rfc6979")
    try:
        verifier.verify(cast(Any, _Prehashed(h)), data[32:96])
    except ValueError:
        return False
    return True


def p256verify(computation: ComputationAPI) -> ComputationAPI:
    """The P256VERIFY precompile (0x100): 6900 gas, 32-byte 1 or empty output, no revert."""
    computation.consume_gas(P256VERIFY_GAS, reason="P256VERIFY precompile")
    computation.output = P256VERIFY_SUCCESS if is_valid_p256_signature(computation.msg.data_as_bytes) else b""
    return computation


# -- CLZ (EIP-7939) ----------------------------------------------------------------------
def clz(computation: ComputationAPI) -> None:
    """Count leading zeros of the top of the stack (256 for zero)."""
    (value,) = computation.stack_pop_ints(1)
    computation.stack_push_int(256 - value.bit_length())


OSAKA_OPCODES = {
    **copy.deepcopy(PragueComputation.opcodes),
    CLZ: as_opcode(logic_fn=clz, mnemonic="CLZ", gas_cost=CLZ_GAS),
}

OSAKA_PRECOMPILES = {
    **PragueComputation.get_precompiles(),
    force_bytes_to_address(b"\x05"): modexp_osaka,
    P256VERIFY_ADDRESS: p256verify,
}


class OsakaComputation(PragueComputation):
    """Prague's computation with CLZ, the repriced and bounded MODEXP, and P256VERIFY."""

    opcodes = OSAKA_OPCODES
    _precompiles = OSAKA_PRECOMPILES


# -- blob schedule (EIP-7892, EIP-7918) --------------------------------------------------
def compute_blob_base_fee(excess_blob_gas: int, schedule: BlobSchedule) -> int:
    """EIP-4844's blob base fee under ``schedule`` (the one definition in ``l1/blobs.py``)."""
    return blobs.compute_blob_base_fee(excess_blob_gas, schedule.as_params())


def compute_excess_blob_gas(
    parent_header: BlockHeaderAPI, schedule: BlobSchedule, bounded_by_execution_cost: bool
) -> int:
    """A child's excess blob gas (EIP-4844, with EIP-7918's branch when ``bounded_by_execution_cost``)."""
    parent_excess = getattr(parent_header, "excess_blob_gas", 0)
    parent_used = getattr(parent_header, "blob_gas_used", 0)
    target_blob_gas = GAS_PER_BLOB * schedule.target
    if parent_excess + parent_used < target_blob_gas:
        return 0
    if bounded_by_execution_cost:
        blob_price = GAS_PER_BLOB * compute_blob_base_fee(parent_excess, schedule)
        if BLOB_BASE_COST * parent_header.base_fee_per_gas > blob_price:
            return int(parent_excess + parent_used * (schedule.max - schedule.target) // schedule.max)
    return int(parent_excess + parent_used - target_blob_gas)


class BlobScheduleState:
    """Mixin for a state class: the blob base fee from the class's :class:`BlobSchedule`."""

    blob_schedule: BlobSchedule = PRAGUE_BLOB_SCHEDULE
    execution_context: Any

    @property
    def blob_base_fee(self) -> int:
        return compute_blob_base_fee(self.execution_context.excess_blob_gas, self.blob_schedule)


class BlobScheduleVM(VirtualMachineAPI):
    """Mixin for a VM class: excess blob gas and the blob limit from its :class:`BlobSchedule`."""

    blob_schedule: BlobSchedule = PRAGUE_BLOB_SCHEDULE
    blob_base_fee_bounded_by_execution_cost = False
    """EIP-7918 applies (Osaka and the forks after it)."""

    @classmethod
    def create_header_from_parent(cls, parent_header: BlockHeaderAPI | None, **params: Any) -> BlockHeaderAPI:
        header: BlockHeaderAPI = super().create_header_from_parent(parent_header, **params)  # type: ignore[safe-super]
        if parent_header is None:
            return header
        excess = compute_excess_blob_gas(
            parent_header, cls.blob_schedule, cls.blob_base_fee_bounded_by_execution_cost
        )
        return header.copy(excess_blob_gas=excess)

    def validate_block_blobs(self, block: BlockAPI) -> None:
        parent_header = get_block_header_by_hash(block.header.parent_hash, self.chaindb)
        expected_excess = compute_excess_blob_gas(
            parent_header, self.blob_schedule, self.blob_base_fee_bounded_by_execution_cost
        )
        if block.header.excess_blob_gas != expected_excess:
            raise ValidationError(
                f"Block excess blob gas {block.header.excess_blob_gas} is not the expected {expected_excess}"
            )
        blob_gas_used = sum(get_total_blob_gas(tx) for tx in block.transactions)
        max_blob_gas = GAS_PER_BLOB * self.blob_schedule.max
        if blob_gas_used > max_blob_gas:
            raise ValidationError(f"Block blob gas {blob_gas_used} exceeds the maximum {max_blob_gas}")
        if block.header.blob_gas_used != blob_gas_used:
            raise ValidationError(
                f"Block blob gas used ({block.header.blob_gas_used}) does not match "
                f"total blob gas used ({blob_gas_used})."
            )


def get_blob_schedule(vm_class: type[Any]) -> BlobSchedule | None:
    """The blob schedule ``vm_class`` runs: its own (Osaka, the BPO forks), Prague's
    (EIP-7691) or Cancun's (EIP-4844); None before Cancun."""
    schedule = getattr(vm_class, "blob_schedule", None)
    if isinstance(schedule, BlobSchedule):
        return schedule
    if issubclass(vm_class, PragueVM):
        return PRAGUE_BLOB_SCHEDULE
    if issubclass(vm_class, CancunVM):
        return CANCUN_BLOB_SCHEDULE
    return None


# -- the Osaka state and VM --------------------------------------------------------------
def validate_osaka_transaction(transaction: SignedTransactionAPI) -> None:
    """Raise py-evm's ``ValidationError`` for a transaction Osaka refuses outright (EIP-7825, EIP-7594)."""
    if transaction.gas > TX_GAS_LIMIT_CAP:
        raise ValidationError(
            f"transaction gas limit {transaction.gas} exceeds the cap {TX_GAS_LIMIT_CAP} (EIP-7825)"
        )
    if transaction.type_id == BLOB_TX_TYPE:
        blobs = len(transaction.blob_versioned_hashes)
        if blobs > MAX_BLOBS_PER_TX:
            raise ValidationError(
                f"blob transaction carries {blobs} blobs, more than {MAX_BLOBS_PER_TX} (EIP-7594)"
            )


class OsakaState(BlobScheduleState, PragueState):
    computation_class = OsakaComputation
    blob_schedule = OSAKA_BLOB_SCHEDULE

    def validate_transaction(self, transaction: SignedTransactionAPI) -> None:
        validate_osaka_transaction(transaction)
        super().validate_transaction(transaction)


def is_block_too_large(block: BlockAPI) -> bool:
    """EIP-7934's ``exceed_max_rlp_block_size``: the block's RLP is over ``MAX_RLP_BLOCK_SIZE``."""
    return len(encode_block(block)) > MAX_RLP_BLOCK_SIZE


class OsakaVM(BlobScheduleVM, PragueVM):  # type: ignore[misc]
    """py-evm's Prague VM with Osaka's execution-layer EIPs (see the module docstring)."""

    fork = "osaka"
    _state_class = OsakaState
    blob_schedule = OSAKA_BLOB_SCHEDULE
    blob_base_fee_bounded_by_execution_cost = True

    def validate_block(self, block: BlockAPI) -> None:
        size = len(encode_block(block))
        if size > MAX_RLP_BLOCK_SIZE:
            raise ValidationError(
                f"block RLP size {size} exceeds MAX_RLP_BLOCK_SIZE {MAX_RLP_BLOCK_SIZE} (EIP-7934)"
            )
        super().validate_block(block)


def make_bpo_vm(
    base: type[VirtualMachineAPI], name: str, target: int, max: int, update_fraction: int
) -> type[VirtualMachineAPI]:
    """A blob-parameter-only fork (EIP-7892): ``base`` (Cancun or later) with new blob parameters.

    ``target`` and ``max`` are blobs per block, ``update_fraction`` the blob base fee update
    fraction, as in a genesis ``blobSchedule`` entry. EIP-7918 applies when it applies to ``base``.
    """
    if max < target or target < 0 or update_fraction <= 0:
        raise ValueError(f"blob schedule of {name}: target {target}, max {max}, fraction {update_fraction}")
    schedule = BlobSchedule(target=target, max=max, base_fee_update_fraction=update_fraction)
    base_state = base.get_state_class()
    state_bases: tuple[type, ...] = (
        (base_state,) if issubclass(base_state, BlobScheduleState) else (BlobScheduleState, base_state)
    )
    state_class = type(
        f"{name.capitalize()}State", state_bases, {"blob_schedule": schedule, "__module__": __name__}
    )
    vm_bases: tuple[type, ...] = (base,) if issubclass(base, BlobScheduleVM) else (BlobScheduleVM, base)
    vm_class = type(
        f"{name.capitalize()}VM",
        vm_bases,
        {"fork": name, "_state_class": state_class, "blob_schedule": schedule, "__module__": __name__},
    )
    return cast(type[VirtualMachineAPI], vm_class)


def make_bpo_vm_from_blob_schedule(
    base: type[VirtualMachineAPI], name: str, entry: Mapping[str, Any]
) -> type[VirtualMachineAPI]:
    """:func:`make_bpo_vm` from a genesis ``blobSchedule`` entry.

    The entry holds ``target``, ``max`` and ``baseFeeUpdateFraction``, as in EIP-7892.
    """
    schedule = BlobSchedule.from_json(entry)
    return make_bpo_vm(base, name, schedule.target, schedule.max, schedule.base_fee_update_fraction)

