"""The pure blob module: network-form decoding, KZG checks, blob fee math (EIP-4844)."""

from __future__ import annotations

import hashlib
import math

import ckzg
import pytest
import rlp

from layerlab.errors import InvalidTransaction
from layerlab.l1 import blobs
from layerlab.l1.blobs import CANCUN, BlobSidecar

ZERO_BLOB_VERSIONED_HASH = bytes.fromhex(
    "010657f37554c781402a22917dee2f75def7ab966d7b770905398eba3c444014")
"""The versioned hash of the all-zero blob, whose commitment is the G1 point at infinity
(0xc0 || 47 zero bytes); the value every EIP-4844 test suite uses."""


def make_blob(seed: bytes) -> bytes:
    """4096 field elements, each 0x00 || 31 bytes of sha256(seed || i): below the modulus."""
    return b"".join(b"\x00" + hashlib.sha256(seed + i.to_bytes(2, "big")).digest()[:31]
                    for i in range(4096))


@pytest.fixture(scope="module")
def signed_blob() -> tuple[bytes, bytes, bytes]:
    setup = blobs.get_trusted_setup()
    blob = make_blob(b"layerlab")
    commitment = bytes(ckzg.blob_to_kzg_commitment(blob, setup))
    proof = bytes(ckzg.compute_blob_kzg_proof(blob, commitment, setup))
    return blob, commitment, proof


def sidecar(blob: bytes, commitment: bytes, proof: bytes) -> BlobSidecar:
    return BlobSidecar(0, (blobs.Blob(blob),), (blobs.KzgCommitment(commitment),),
                       (blobs.KzgProof(proof),))


def test_versioned_hash_of_the_zero_blob() -> None:
    commitment = ckzg.blob_to_kzg_commitment(bytes(blobs.BYTES_PER_BLOB), blobs.get_trusted_setup())
    assert bytes(commitment) == b"\xc0" + bytes(47)
    assert blobs.kzg_to_versioned_hash(blobs.KzgCommitment(bytes(commitment))) == \
        ZERO_BLOB_VERSIONED_HASH


def test_valid_sidecar_passes(signed_blob: tuple[bytes, bytes, bytes]) -> None:
    blob, commitment, proof = signed_blob
    vhash = blobs.kzg_to_versioned_hash(blobs.KzgCommitment(commitment))
    assert vhash[:1] == b"\x01" and vhash[1:] == hashlib.sha256(commitment).digest()[1:]
    blobs.validate_sidecar([vhash], sidecar(blob, commitment, proof))


def test_tampered_proof_is_refused(signed_blob: tuple[bytes, bytes, bytes]) -> None:
    blob, commitment, proof = signed_blob
    vhash = blobs.kzg_to_versioned_hash(blobs.KzgCommitment(commitment))
    other = bytes(ckzg.compute_blob_kzg_proof(make_blob(b"other"), commitment,
                                              blobs.get_trusted_setup()))
    with pytest.raises(InvalidTransaction) as err:
        blobs.validate_sidecar([vhash], sidecar(blob, commitment, other))
    assert err.value.reason == "blob-proof"
    flipped = proof[:-1] + bytes([proof[-1] ^ 1])  # usually not even a curve point
    with pytest.raises(InvalidTransaction):
        blobs.validate_sidecar([vhash], sidecar(blob, commitment, flipped))


def test_tampered_blob_is_refused(signed_blob: tuple[bytes, bytes, bytes]) -> None:
    blob, commitment, proof = signed_blob
    vhash = blobs.kzg_to_versioned_hash(blobs.KzgCommitment(commitment))
    changed = blob[:40] + bytes([blob[40] ^ 1]) + blob[41:]
    with pytest.raises(InvalidTransaction, match="KZG proof verification failed"):
        blobs.validate_sidecar([vhash], sidecar(changed, commitment, proof))


def test_wrong_versioned_hash_is_refused(signed_blob: tuple[bytes, bytes, bytes]) -> None:
    blob, commitment, proof = signed_blob
    with pytest.raises(InvalidTransaction, match="blob 0: computed hash 0x01") as err:
        blobs.validate_sidecar([ZERO_BLOB_VERSIONED_HASH], sidecar(blob, commitment, proof))
    assert err.value.reason == "blob-hash-mismatch"


def test_counts_must_match(signed_blob: tuple[bytes, bytes, bytes]) -> None:
    blob, commitment, proof = signed_blob
    vhash = blobs.kzg_to_versioned_hash(blobs.KzgCommitment(commitment))
    with pytest.raises(InvalidTransaction, match="invalid number of 1 blobs compared to 2"):
        blobs.validate_sidecar([vhash, vhash], sidecar(blob, commitment, proof))
    with pytest.raises(InvalidTransaction, match="missing blob hashes"):
        blobs.validate_sidecar([], sidecar(blob, commitment, proof))
    with pytest.raises(InvalidTransaction, match="too many blobs in transaction: have 7"):
        blobs.validate_sidecar([vhash] * 7, sidecar(blob, commitment, proof))


def test_cell_proof_sidecar(signed_blob: tuple[bytes, bytes, bytes]) -> None:
    """EIP-7594's wrapper: 128 cell proofs per blob, verified cell by cell."""
    blob, commitment, proof = signed_blob
    _, cell_proofs = ckzg.compute_cells_and_kzg_proofs(blob, blobs.get_trusted_setup())
    vhash = blobs.kzg_to_versioned_hash(blobs.KzgCommitment(commitment))
    good = BlobSidecar(1, (blobs.Blob(blob),), (blobs.KzgCommitment(commitment),),
                       tuple(blobs.KzgProof(bytes(p)) for p in cell_proofs))
    blobs.validate_sidecar([vhash], good)
    # the beacon API's per-blob proof is recomputed from the blob: c-kzg's own proof
    assert blobs.get_blob_proofs(good) == (proof,)
    swapped = list(good.proofs)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(InvalidTransaction, match="KZG proof"):
        blobs.validate_sidecar([vhash], BlobSidecar(1, good.blobs, good.commitments,
                                                    tuple(swapped)))
    with pytest.raises(InvalidTransaction, match="128 cell proofs per blob"):
        blobs.validate_sidecar([vhash], BlobSidecar(1, good.blobs, good.commitments,
                                                    good.proofs[:127]))


def test_network_form_round_trip(signed_blob: tuple[bytes, bytes, bytes]) -> None:
    blob, commitment, proof = signed_blob
    body: list[bytes | list[bytes]] = [b"\x01", b"", b"\x05", b"\x06", b"\x52\x08",
                                       b"\x22" * 20, b"", b"", [], b"\x07", [b"\x01" * 32],
                                       b"", b"\x01", b"\x02"]
    tx_raw = b"\x03" + rlp.encode(body)
    v0 = b"\x03" + rlp.encode([body, [blob], [commitment], [proof]])
    v1 = b"\x03" + rlp.encode([body, b"\x01", [blob], [commitment], [proof] * 128])
    assert not blobs.is_network_form(tx_raw)
    for raw, version, n_proofs in ((v0, 0, 1), (v1, 1, 128)):
        assert blobs.is_network_form(raw)
        decoded = blobs.decode_network_form(raw)
        assert decoded.tx_raw == tx_raw
        assert decoded.sidecar.wrapper_version == version
        assert decoded.sidecar.blobs == (blob,) and decoded.sidecar.commitments == (commitment,)
        assert len(decoded.sidecar.proofs) == n_proofs
    with pytest.raises(InvalidTransaction, match="wrapper version 0x02"):
        blobs.decode_network_form(b"\x03" + rlp.encode([body, b"\x02", [blob], [commitment],
                                                        [proof]]))
    with pytest.raises(InvalidTransaction, match="every blob must be 131072 bytes"):
        blobs.decode_network_form(b"\x03" + rlp.encode([body, [blob[:-1]], [commitment],
                                                        [proof]]))


# geth core/vm eip4844 / consensus/misc/eip4844 TestFakeExponential (factor, numerator,
# denominator, want)
FAKE_EXPONENTIAL_CASES = [
    (1, 0, 1, 1), (38493, 0, 1000, 38493), (0, 1234, 2345, 0), (1, 2, 1, 6), (1, 4, 2, 6),
    (1, 3, 1, 16), (1, 6, 2, 18), (1, 4, 1, 49), (1, 8, 2, 50), (10, 8, 2, 542),
    (11, 8, 2, 596), (1, 5, 1, 136), (1, 5, 2, 11), (2, 5, 2, 23),
    (1, 50000000, 2225652, 5709098764),
]


@pytest.mark.parametrize(("factor", "numerator", "denominator", "want"), FAKE_EXPONENTIAL_CASES)
def test_fake_exponential(factor: int, numerator: int, denominator: int, want: int) -> None:
    fee = blobs.compute_blob_base_fee(
        numerator, blobs.BlobParams(0, 0, denominator, min_blob_base_fee=factor))
    assert fee == want
    if factor and numerator < 20 * denominator:  # a Taylor series under e^x, within 1%+1
        assert fee <= factor * math.exp(numerator / denominator) + 1


def test_excess_blob_gas_rule() -> None:
    target = CANCUN.target_blob_gas
    assert blobs.compute_excess_blob_gas(0, 0) == 0
    assert blobs.compute_excess_blob_gas(0, target) == 0
    assert blobs.compute_excess_blob_gas(0, CANCUN.max_blob_gas) == target  # 6 blobs: +3
    assert blobs.compute_excess_blob_gas(target, 0) == 0
    assert blobs.compute_excess_blob_gas(2 * target, blobs.GAS_PER_BLOB) == \
        target + blobs.GAS_PER_BLOB
    assert CANCUN.max_blobs == 6
    # the blob base fee leaves 1 wei only once the excess passes ~1/11 of the fraction
    assert blobs.compute_blob_base_fee(0) == 1
    assert blobs.compute_blob_base_fee(CANCUN.update_fraction) == 2  # floor(e)
    assert blobs.compute_blob_base_fee(10 * CANCUN.update_fraction) == 22026  # floor(e^10)
