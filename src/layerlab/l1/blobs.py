"""Blob-carrying transactions (EIP-4844): the network form, its KZG checks, the blob fee.

A type-3 transaction travels in two forms. In a block it is ``0x03 || rlp(body)`` and
carries only ``blob_versioned_hashes``. Between a wallet and a node (``eth_sendRawTransaction``,
gossip) it is the *network form* with its sidecar:

- EIP-4844: ``0x03 || rlp([body, blobs, commitments, proofs])``, one blob proof each;
- EIP-7594 (PeerDAS, wrapper version 1): ``0x03 || rlp([body, 1, blobs, commitments,
  cell_proofs])``, ``CELLS_PER_EXT_BLOB`` (128) cell proofs per blob; eth-account 0.14
  signs blob transactions in this form.

:func:`validate_sidecar` applies the checks a node makes before pooling one (geth's
``ValidateBlobSidecar`` and wording): as many blobs, commitments and proofs as versioned
hashes, each hash equal to ``kzg_to_versioned_hash(commitment)`` (``0x01 ||
sha256(commitment)[1:]``), and the proofs verified with c-kzg against the mainnet trusted
setup (the copy py-evm ships for its point-evaluation precompile).

The blob base fee (EIP-4844 ``get_base_fee_per_blob_gas``) is
``fake_exponential(MIN_BLOB_BASE_FEE, excess_blob_gas, BLOB_BASE_FEE_UPDATE_FRACTION)``,
with ``excess_blob_gas`` carried in each header: the parent's excess plus the parent's
blob gas used, minus the target, floored at zero (:func:`compute_excess_blob_gas`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NewType

import ckzg
import rlp
from eth._utils.calculations import fake_exponential
from eth.vm.forks.cancun import constants as cancun
from eth.vm.forks.cancun.state import get_total_blob_gas

from layerlab.errors import InvalidTransaction

Blob = NewType("Blob", bytes)
KzgCommitment = NewType("KzgCommitment", bytes)
KzgProof = NewType("KzgProof", bytes)
VersionedHash = NewType("VersionedHash", bytes)

BYTES_PER_BLOB = cancun.FIELD_ELEMENTS_PER_BLOB * cancun.BYTES_PER_FIELD_ELEMENT
GAS_PER_BLOB: int = int(cancun.GAS_PER_BLOB)
VERSIONED_HASH_VERSION_KZG = cancun.VERSIONED_HASH_VERSION_KZG
CELLS_PER_EXT_BLOB = 128
"""EIP-7594: each blob is extended to 128 cells, each with its own proof."""
WRAPPER_VERSION_CELL_PROOFS = 1
BLOB_TX_TYPE = 3
MAX_BLOBS_PER_TX = 6
"""EIP-7594's per-transaction cap (also Cancun's per-block maximum)."""


@dataclass(frozen=True, slots=True)
class BlobParams:
    """A fork's blob schedule: target and maximum blob gas per block, update fraction."""

    target_blob_gas: int
    max_blob_gas: int
    update_fraction: int
    min_blob_base_fee: int = cancun.MIN_BLOB_BASE_FEE

    @property
    def max_blobs(self) -> int:
        return self.max_blob_gas // GAS_PER_BLOB


CANCUN = BlobParams(
    target_blob_gas=cancun.TARGET_BLOB_GAS_PER_BLOCK,
    max_blob_gas=cancun.MAX_BLOB_GAS_PER_BLOCK,
    update_fraction=cancun.BLOB_BASE_FEE_UPDATE_FRACTION,
)
"""EIP-4844's figures: target 3 blobs, maximum 6, fraction 3,338,477 (py-evm's Cancun VM)."""


@dataclass(frozen=True, slots=True)
class BlobSidecar:
    """The blobs of one transaction with their commitments and proofs.

    ``proofs`` are one blob proof per blob (``wrapper_version`` 0) or 128 cell proofs per
    blob (``wrapper_version`` 1, EIP-7594).
    """

    wrapper_version: int
    blobs: tuple[Blob, ...]
    commitments: tuple[KzgCommitment, ...]
    proofs: tuple[KzgProof, ...]


@dataclass(frozen=True, slots=True)
class NetworkBlobTx:
    """A type-3 transaction split from its sidecar: ``tx_raw`` is the form a block holds."""

    tx_raw: bytes
    sidecar: BlobSidecar


# -- trusted setup ----------------------------------------------------------------------
def get_trusted_setup_path() -> str:
    """py-evm's copy of the mainnet KZG ceremony output (4096 G1 points, 65 G2 points)."""
    import eth

    return os.path.join(os.path.dirname(eth.__file__), "_utils", "kzg_trusted_setup.txt")


@functools.cache
def get_trusted_setup() -> Any:
    """Loaded once per process (about 4 s)."""
    return ckzg.load_trusted_setup(get_trusted_setup_path(), 0)


# -- pure helpers -----------------------------------------------------------------------
def kzg_to_versioned_hash(commitment: KzgCommitment) -> VersionedHash:
    """EIP-4844: ``VERSIONED_HASH_VERSION_KZG || sha256(commitment)[1:]``."""
    return VersionedHash(VERSIONED_HASH_VERSION_KZG + hashlib.sha256(commitment).digest()[1:])


def compute_blob_base_fee(excess_blob_gas: int, params: BlobParams = CANCUN) -> int:
    """EIP-4844 ``get_base_fee_per_blob_gas`` for a header with ``excess_blob_gas``."""
    return int(fake_exponential(params.min_blob_base_fee, excess_blob_gas, params.update_fraction))


def compute_excess_blob_gas(parent_excess: int, parent_used: int,
                            params: BlobParams = CANCUN) -> int:
    """EIP-4844 ``calc_excess_blob_gas``: the excess a child of this parent carries."""
    total = parent_excess + parent_used
    return total - params.target_blob_gas if total >= params.target_blob_gas else 0


def get_next_blob_base_fee(parent: Any, params: BlobParams = CANCUN) -> int:
    """Blob base fee of the block after ``parent``; a parent before Cancun counts as no
    excess and no blob gas used (the first Cancun block's excess is 0)."""
    excess = compute_excess_blob_gas(int(getattr(parent, "excess_blob_gas", 0)),
                                     int(getattr(parent, "blob_gas_used", 0)), params)
    return compute_blob_base_fee(excess, params)


def get_blob_gas(tx: Any) -> int:
    """Blob gas a transaction uses (``GAS_PER_BLOB`` per versioned hash; 0 if not type 3)."""
    return int(get_total_blob_gas(tx))


def is_network_form(raw: bytes) -> bool:
    """Whether a type-3 encoding carries a sidecar (its RLP list has 4 or 5 items, the
    first being the body; the bare transaction is a list of 14 fields)."""
    if not raw or raw[0] != BLOB_TX_TYPE:
        return False
    try:
        items = rlp.decode(raw[1:], strict=False)
    except (rlp.DecodingError, rlp.DeserializationError):
        return False
    return isinstance(items, list) and len(items) in (4, 5) and isinstance(items[0], list)


def decode_network_form(raw: bytes) -> NetworkBlobTx:
    """Split ``0x03 || rlp([body, (1,) blobs, commitments, proofs])`` into the transaction
    a block holds and its sidecar; raise :class:`InvalidTransaction` if malformed."""
    try:
        items = rlp.decode(raw[1:])
    except (rlp.DecodingError, rlp.DeserializationError) as exc:
        raise InvalidTransaction("malformed", f"rlp: cannot decode blob transaction: {exc}") from exc
    if not isinstance(items, list) or len(items) not in (4, 5) or not isinstance(items[0], list):
        raise InvalidTransaction(
            "malformed", "rlp: blob transaction network form must be [tx, blobs, commitments, "
            "proofs] or [tx, 1, blobs, commitments, cell_proofs]")
    version = 0
    if len(items) == 5:
        if items[1] != bytes([WRAPPER_VERSION_CELL_PROOFS]):
            raise InvalidTransaction(
                "malformed", f"unsupported blob sidecar wrapper version 0x{bytes(items[1]).hex()}")
        version = WRAPPER_VERSION_CELL_PROOFS
        items = [items[0], *items[2:]]
    body, blobs, commitments, proofs = items
    for name, values, size in (("blob", blobs, BYTES_PER_BLOB), ("commitment", commitments, 48),
                               ("proof", proofs, 48)):
        if not isinstance(values, list) or any(
            not isinstance(v, bytes) or len(v) != size for v in values
        ):
            raise InvalidTransaction("malformed", f"rlp: every {name} must be {size} bytes")
    return NetworkBlobTx(
        tx_raw=bytes([BLOB_TX_TYPE]) + rlp.encode(body),
        sidecar=BlobSidecar(version, tuple(map(Blob, blobs)),
                            tuple(map(KzgCommitment, commitments)), tuple(map(KzgProof, proofs))),
    )


def validate_sidecar(versioned_hashes: Sequence[bytes], sidecar: BlobSidecar) -> None:
    """Check a sidecar against its transaction's versioned hashes (geth's wording)."""
    n = len(versioned_hashes)
    if n == 0:
        raise InvalidTransaction("blob-hashes-missing", "blob transaction missing blob hashes")
    if n > MAX_BLOBS_PER_TX:
        raise InvalidTransaction(
            "too-many-blobs",
            f"too many blobs in transaction: have {n}, permitted {MAX_BLOBS_PER_TX}")
    if len(sidecar.blobs) != n:
        raise InvalidTransaction(
            "blob-count", f"invalid number of {len(sidecar.blobs)} blobs compared to {n} blob hashes")
    if len(sidecar.commitments) != n:
        raise InvalidTransaction(
            "blob-count",
            f"invalid number of {len(sidecar.commitments)} blob commitments compared to {n} "
            "blob hashes")
    per_blob = CELLS_PER_EXT_BLOB if sidecar.wrapper_version == WRAPPER_VERSION_CELL_PROOFS else 1
    if len(sidecar.proofs) != n * per_blob:
        raise InvalidTransaction(
            "blob-count",
            f"invalid number of {len(sidecar.proofs)} blob proofs compared to {n} blob hashes"
            + (f" ({per_blob} cell proofs per blob)" if per_blob > 1 else ""))
    for i, (vhash, commitment) in enumerate(zip(versioned_hashes, sidecar.commitments,
                                                strict=True)):
        computed = kzg_to_versioned_hash(commitment)
        if bytes(vhash) != computed:
            raise InvalidTransaction(
                "blob-hash-mismatch",
                f"blob {i}: computed hash 0x{computed.hex()} mismatches transaction one "
                f"0x{bytes(vhash).hex()}")
    if not verify_sidecar_proofs(sidecar):
        raise InvalidTransaction("blob-proof", "invalid blob proof: KZG proof verification failed")


def verify_sidecar_proofs(sidecar: BlobSidecar) -> bool:
    """Verify all proofs of a sidecar in one batch (blob proofs, or every cell proof)."""
    setup = get_trusted_setup()
    try:
        if sidecar.wrapper_version == WRAPPER_VERSION_CELL_PROOFS:
            commitments: list[bytes] = []
            indices: list[int] = []
            cells: list[bytes] = []
            for blob, commitment in zip(sidecar.blobs, sidecar.commitments, strict=True):
                cells.extend(bytes(c) for c in ckzg.compute_cells(blob, setup))
                commitments.extend([commitment] * CELLS_PER_EXT_BLOB)
                indices.extend(range(CELLS_PER_EXT_BLOB))
            return bool(ckzg.verify_cell_kzg_proof_batch(
                commitments, indices, cells, list(sidecar.proofs), setup))
        return bool(ckzg.verify_blob_kzg_proof_batch(
            b"".join(sidecar.blobs), b"".join(sidecar.commitments), b"".join(sidecar.proofs),
            setup))
    except RuntimeError:  # c-kzg: a blob field element >= the BLS modulus, a bad point
        return False


def get_blob_proofs(sidecar: BlobSidecar) -> tuple[KzgProof, ...]:
    """One blob proof per blob (computed when the sidecar carries cell proofs): what the
    beacon API's ``BlobSidecar.kzg_proof`` holds."""
    if sidecar.wrapper_version == 0:
        return sidecar.proofs
    setup = get_trusted_setup()
    return tuple(KzgProof(bytes(ckzg.compute_blob_kzg_proof(b, c, setup)))
                 for b, c in zip(sidecar.blobs, sidecar.commitments, strict=True))
