"""A rollup batch's bytes as EIP-4844 blobs, and back.

A blob is 4096 field elements of 32 bytes, each an integer below the BLS12-381 scalar
modulus (``0x73eda753...00000001``, a 255-bit number). Any element whose first byte is
zero is below it, so the simple convention rollups use (Taiko's and the OP Stack's
"minimal" encoding; the OP Stack's batcher packs 4 x 254 bits into 127 bytes instead) is
31 payload bytes per element, behind a zero byte:

- element 0 of each blob is the header ``0x00 || version (0x00) || uint32 length ||
  26 zero bytes``; ``length`` counts the payload bytes this blob carries;
- elements 1..4095 are ``0x00 || 31 payload bytes``, the last one zero-padded.

So a blob carries at most ``4095 * 31 = 126,945`` bytes, and a batch takes
``ceil(len / 126,945)`` blobs (at most 6 in one transaction). The encoding is canonical:
:func:`decode_blobs` refuses any blob :func:`encode_blobs` would not have produced (a
nonzero first byte, another version, a length past the capacity, nonzero padding, a short
blob that is not the last one), so one byte string has one blob list.

The KZG side (commitment, versioned hash ``0x01 || sha256(commitment)[1:]``) is c-kzg's
with the mainnet trusted setup py-evm ships; :func:`check_blob` is what a verifier runs on
a blob it fetched before it trusts it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Final, cast

import ckzg
from eth_account import Account
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import TxParams, TxReceipt, Wei

from layerlab.errors import InvalidProof, MalformedEncoding
from layerlab.l2.l1client import L1Contract, L1TxError

__all__ = [
    "BLOB_CAPACITY",
    "BLS_MODULUS",
    "BYTES_PER_BLOB",
    "MAX_BLOBS",
    "blob_commitment",
    "blob_versioned_hash",
    "check_blob",
    "decode_blobs",
    "encode_blobs",
    "fetch_blobs",
    "send_blob_transaction",
]

FIELD_ELEMENTS_PER_BLOB: Final = 4096
BYTES_PER_FIELD_ELEMENT: Final = 32
USABLE_BYTES: Final = 31
BYTES_PER_BLOB: Final = FIELD_ELEMENTS_PER_BLOB * BYTES_PER_FIELD_ELEMENT
BLOB_CAPACITY: Final = (FIELD_ELEMENTS_PER_BLOB - 1) * USABLE_BYTES
"""Payload bytes per blob: 126,945 (element 0 is the header)."""
MAX_BLOBS: Final = 6
"""Blobs one transaction may carry (Cancun's per-block maximum, EIP-7594's per-tx cap)."""
BLS_MODULUS: Final = 52435875175126190479447740508185965837690552500527637822603658699938581184513
"""EIP-4844 ``BLS_MODULUS``: the BLS12-381 scalar field order."""
BEACON_TIMEOUT_SECONDS: Final = 30.0
BLOB_FEE_HEADROOM: Final = 2
"""``maxFeePerBlobGas`` = this many times the current blob base fee (at least 1 wei)."""
ENCODING_VERSION: Final = 0
VERSIONED_HASH_VERSION_KZG: Final = b"\x01"


def encode_blobs(data: bytes, max_blobs: int = MAX_BLOBS) -> list[bytes]:
    """``data`` as the fewest blobs (each ``BYTES_PER_BLOB`` bytes); raise
    :class:`MalformedEncoding` if it is empty or needs more than ``max_blobs``."""
    if not data:
        raise MalformedEncoding("blob encoding: no data to encode")
    count = -(-len(data) // BLOB_CAPACITY)
    if count > max_blobs:
        raise MalformedEncoding(
            f"blob encoding: {len(data)} bytes need {count} blobs, at most {max_blobs} allowed "
            f"({BLOB_CAPACITY} bytes each)")
    blobs = []
    for i in range(count):
        chunk = data[i * BLOB_CAPACITY:(i + 1) * BLOB_CAPACITY]
        header = bytes([0, ENCODING_VERSION]) + len(chunk).to_bytes(4, "big")
        out = bytearray(BYTES_PER_BLOB)
        out[:len(header)] = header
        for j in range(0, len(chunk), USABLE_BYTES):
            at = BYTES_PER_FIELD_ELEMENT * (1 + j // USABLE_BYTES) + 1
            piece = chunk[j:j + USABLE_BYTES]
            out[at:at + len(piece)] = piece
        blobs.append(bytes(out))
    return blobs


def decode_blobs(blobs: Sequence[bytes]) -> bytes:
    """The bytes :func:`encode_blobs` made these blobs from; raise
    :class:`MalformedEncoding` on any blob it would not have produced."""
    if not blobs:
        raise MalformedEncoding("blob decoding: no blobs")
    parts = []
    for index, blob in enumerate(blobs):
        if len(blob) != BYTES_PER_BLOB:
            raise MalformedEncoding(
                f"blob {index}: {len(blob)} bytes, a blob is {BYTES_PER_BLOB}")
        for fe in range(FIELD_ELEMENTS_PER_BLOB):
            if blob[fe * BYTES_PER_FIELD_ELEMENT] != 0:
                raise MalformedEncoding(
                    f"blob {index}: field element {fe} does not start with a zero byte")
        if blob[1] != ENCODING_VERSION:
            raise MalformedEncoding(f"blob {index}: encoding version {blob[1]}, expected 0")
        length = int.from_bytes(blob[2:6], "big")
        if length == 0 or length > BLOB_CAPACITY:
            raise MalformedEncoding(
                f"blob {index}: length {length} outside 1..{BLOB_CAPACITY}")
        if index < len(blobs) - 1 and length != BLOB_CAPACITY:
            raise MalformedEncoding(
                f"blob {index}: carries {length} bytes but is not the last blob")
        if any(blob[6:BYTES_PER_FIELD_ELEMENT]):
            raise MalformedEncoding(f"blob {index}: nonzero bytes in the header's padding")
        payload = b"".join(blob[at + 1:at + BYTES_PER_FIELD_ELEMENT]
                           for at in range(BYTES_PER_FIELD_ELEMENT, BYTES_PER_BLOB,
                                           BYTES_PER_FIELD_ELEMENT))
        if any(payload[length:]):
            raise MalformedEncoding(f"blob {index}: nonzero bytes after its {length} bytes")
        parts.append(payload[:length])
    return b"".join(parts)


@functools.cache
def _trusted_setup() -> Any:
    """The mainnet KZG ceremony output py-evm ships (its point-evaluation precompile's)."""
    import eth

    path = os.path.join(os.path.dirname(eth.__file__), "_utils", "kzg_trusted_setup.txt")
    return ckzg.load_trusted_setup(path, 0)


def blob_commitment(blob: bytes) -> bytes:
    """The blob's KZG commitment (48 bytes); raise :class:`MalformedEncoding` if a field
    element is not below ``BLS_MODULUS``."""
    try:
        return bytes(ckzg.blob_to_kzg_commitment(blob, _trusted_setup()))
    except RuntimeError as exc:
        raise MalformedEncoding(f"blob: not a canonical blob for c-kzg: {exc}") from exc


def blob_versioned_hash(commitment: bytes) -> bytes:
    """EIP-4844 ``kzg_to_versioned_hash``: ``0x01 || sha256(commitment)[1:]``."""
    return VERSIONED_HASH_VERSION_KZG + hashlib.sha256(commitment).digest()[1:]


def check_blob(blob: bytes, commitment: bytes, proof: bytes, versioned_hash: bytes) -> None:
    """Check a fetched blob against the versioned hash the L1 recorded: the commitment
    hashes to it and the blob proof verifies; raise :class:`InvalidProof` if not."""
    if blob_versioned_hash(commitment) != versioned_hash:
        raise InvalidProof(f"blob commitment hashes to 0x{blob_versioned_hash(commitment).hex()}, "
                           f"the L1 recorded 0x{versioned_hash.hex()}")
    try:
        ok = ckzg.verify_blob_kzg_proof(blob, commitment, proof, _trusted_setup())
    except RuntimeError as exc:
        raise InvalidProof(f"blob proof: c-kzg refused the input: {exc}") from exc
    if not ok:
        raise InvalidProof(f"blob proof does not verify for 0x{versioned_hash.hex()}")


def send_blob_transaction(l1: L1Contract, key: bytes, what: str, fn: ContractFunction,
                          blobs: Sequence[bytes], gas: int,
                          error: type[L1TxError] = L1TxError,
                          blobless_error: str | None = None) -> TxReceipt:
    """Send ``fn`` as a type-3 transaction carrying ``blobs`` (eth-account builds the
    sidecar: commitments, proofs, versioned hashes) and wait for its receipt; raise
    ``error`` (an ``L1TxError``) if it cannot be sent, is not mined, or reverts.

    ``gas`` is given, not estimated: ``eth_call`` and ``eth_estimateGas`` carry no blob
    hashes, so the function sees ``blobhash(0) == 0``. If the function's last check is
    that it has blobs, naming that error ``blobless_error`` makes a preflight ``eth_call``
    raise any other refusal by name before the blobs are sent."""
    w3 = l1.w3
    account = Account.from_key(key)
    if blobless_error is not None:
        try:
            fn.call({"from": account.address})
        except ContractLogicError as exc:
            refusal = l1.refused(what, exc)
            if refusal.error_name != blobless_error:
                raise refusal from exc
    try:
        params: TxParams = {"from": account.address, "value": Wei(0), "gas": gas,
                            "nonce": w3.eth.get_transaction_count(account.address, "pending")}
        tx = cast(dict[str, Any], fn.build_transaction(params))
        tx.pop("from", None)
        tx["type"] = 3
        tx["maxFeePerBlobGas"] = max(1, BLOB_FEE_HEADROOM * int(w3.eth.blob_base_fee))
        signed = account.sign_transaction(tx, blobs=list(blobs))
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    except ContractLogicError as exc:
        raise l1.refused(what, exc) from exc
    except Web3Exception as exc:
        raise error(f"{what} from {account.address} could not be sent: {exc}") from exc
    try:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=BEACON_TIMEOUT_SECONDS)
    except Web3Exception as exc:
        raise error(f"{what}: tx {tx_hash.to_0x_hex()} not mined: {exc}") from exc
    if receipt["status"] != 1:
        raise error(f"{what}: blob tx {tx_hash.to_0x_hex()} reverted "
                        f"(gas used {receipt['gasUsed']} of {gas})")
    return receipt


def fetch_blobs(beacon_url: str, block_id: int | str,
                versioned_hashes: Sequence[bytes]) -> list[bytes]:
    """The blobs with these versioned hashes, in their order, from a beacon node's
    ``GET /eth/v1/beacon/blob_sidecars/{block_id}``, each checked against its hash
    (:func:`check_blob`); raise :class:`InvalidProof` if one is missing or does not match,
    ``L1TxError`` if the beacon API cannot be reached or has pruned the block's blobs."""
    url = f"{beacon_url.rstrip('/')}/eth/v1/beacon/blob_sidecars/{block_id}"
    try:
        with urllib.request.urlopen(url, timeout=BEACON_TIMEOUT_SECONDS) as resp:
            reply = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise L1TxError(f"beacon API {url}: HTTP {exc.code}: {exc.read()[:200]!r}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise L1TxError(f"beacon API {url}: {exc}") from exc
    by_hash: dict[bytes, tuple[bytes, bytes, bytes]] = {}
    for item in reply.get("data", []):
        commitment = bytes.fromhex(item["kzg_commitment"][2:])
        by_hash[blob_versioned_hash(commitment)] = (
            bytes.fromhex(item["blob"][2:]), commitment, bytes.fromhex(item["kzg_proof"][2:]))
    out = []
    for vhash in versioned_hashes:
        if vhash not in by_hash:
            raise InvalidProof(f"beacon API {url}: no sidecar for blob 0x{vhash.hex()}")
        blob, commitment, proof = by_hash[vhash]
        check_blob(blob, commitment, proof, vhash)
        out.append(blob)
    return out
