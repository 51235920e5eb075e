"""A batch's bytes as blobs: round trip, capacity bounds, canonical field elements."""

from __future__ import annotations

import hashlib
import os

import ckzg
import pytest
from eth_account.typed_transactions.base import TRUSTED_SETUP

from layerlab.errors import InvalidProof, MalformedEncoding
from layerlab.l2 import blobpost

# EIP-4844's constants, as the EIP states them
BLS_MODULUS = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
BLOB_BYTES = 4096 * 32


def test_constants_match_the_eip() -> None:
    assert blobpost.BLS_MODULUS == BLS_MODULUS
    assert blobpost.BYTES_PER_BLOB == BLOB_BYTES
    assert blobpost.BLOB_CAPACITY == 4095 * 31


@pytest.mark.parametrize("size", [1, 30, 31, 32, 1000, 4095 * 31 - 1, 4095 * 31,
                                  4095 * 31 + 1, 3 * 4095 * 31 + 7, 6 * 4095 * 31])
def test_round_trip(size: int) -> None:
    data = os.urandom(size)
    out = blobpost.encode_blobs(data)
    assert len(out) == -(-size // (4095 * 31))
    assert all(len(b) == BLOB_BYTES for b in out)
    assert blobpost.decode_blobs(out) == data


def test_every_field_element_is_canonical_for_ckzg() -> None:
    """All-0xff data is the worst case: still every element < BLS_MODULUS, and c-kzg (with
    eth-account's own copy of the setup) commits to it."""
    (blob,) = blobpost.encode_blobs(b"\xff" * (4095 * 31))
    for i in range(4096):
        assert int.from_bytes(blob[32 * i:32 * i + 32], "big") < BLS_MODULUS
    setup = ckzg.load_trusted_setup(TRUSTED_SETUP, 0)
    commitment = bytes(ckzg.blob_to_kzg_commitment(blob, setup))
    assert blobpost.blob_commitment(blob) == commitment
    assert blobpost.blob_versioned_hash(commitment) == (
        b"\x01" + hashlib.sha256(commitment).digest()[1:])
    proof = bytes(ckzg.compute_blob_kzg_proof(blob, commitment, setup))
    blobpost.check_blob(blob, commitment, proof, blobpost.blob_versioned_hash(commitment))


def test_bounds() -> None:
    with pytest.raises(MalformedEncoding, match="no data"):
        blobpost.encode_blobs(b"")
    with pytest.raises(MalformedEncoding, match="need 7 blobs"):
        blobpost.encode_blobs(b"\x01" * (6 * 4095 * 31 + 1))
    with pytest.raises(MalformedEncoding, match="need 2 blobs, at most 1"):
        blobpost.encode_blobs(b"\x01" * (4095 * 31 + 1), max_blobs=1)


def test_decode_refuses_what_encode_never_makes() -> None:
    (good,) = blobpost.encode_blobs(b"hello blob")

    def patched(at: int, value: int) -> bytes:
        b = bytearray(good)
        b[at] = value
        return bytes(b)

    cases = {
        "does not start with a zero byte": patched(32 * 7, 1),
        "encoding version": patched(1, 1),
        "outside 1..": patched(2, 0xFF),
        "header's padding": patched(20, 1),
        "after its 10 bytes": patched(32 + 1 + 10, 1),
    }
    for message, blob in cases.items():
        with pytest.raises(MalformedEncoding, match=message):
            blobpost.decode_blobs([blob])
    with pytest.raises(MalformedEncoding, match="a blob is 131072"):
        blobpost.decode_blobs([good[:-1]])
    with pytest.raises(MalformedEncoding, match="not the last blob"):
        blobpost.decode_blobs([good, good])
    with pytest.raises(MalformedEncoding, match="no blobs"):
        blobpost.decode_blobs([])


def test_non_canonical_element_is_refused_by_ckzg() -> None:
    blob = b"\xff" * 32 + bytes(BLOB_BYTES - 32)  # element 0 >= BLS_MODULUS
    with pytest.raises(MalformedEncoding, match="canonical"):
        blobpost.blob_commitment(blob)


def test_check_blob_refuses_a_wrong_blob_or_hash() -> None:
    a, b = blobpost.encode_blobs(b"a")[0], blobpost.encode_blobs(b"b")[0]
    setup = ckzg.load_trusted_setup(TRUSTED_SETUP, 0)
    ca = bytes(ckzg.blob_to_kzg_commitment(a, setup))
    pa = bytes(ckzg.compute_blob_kzg_proof(a, ca, setup))
    vh = blobpost.blob_versioned_hash(ca)
    with pytest.raises(InvalidProof, match="does not verify"):
        blobpost.check_blob(b, ca, pa, vh)
    with pytest.raises(InvalidProof, match="the L1 recorded"):
        blobpost.check_blob(a, ca, pa, b"\x01" + bytes(31))
