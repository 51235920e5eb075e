"""BLS12-381 signatures for proof-of-stake votes (the IETF BLS "proof of possession" suite).

A thin typed wrapper over ``milagro_bls_binding`` (the Rust/C library the Ethereum
consensus clients' Python tooling uses), exposing exactly what the consensus specs call:
``Sign``, ``Verify``, ``Aggregate``, ``FastAggregateVerify`` (draft-irtf-cfrg-bls-signature-05
with ciphersuite ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_``, as in Ethereum's
consensus-specs phase0 ``bls`` module). Public keys are 48-byte compressed G1 points,
signatures 96-byte compressed G2 points.

Aggregation is why BLS is used for attestations: n validators voting for the same data
produce one 96-byte signature, checked with one pairing product against the sum of their
keys, instead of n ECDSA checks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import milagro_bls_binding as _bls

from layerlab.errors import InvalidSignature

PUBKEY_SIZE = 48
SIGNATURE_SIZE = 96
CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001


def secret_key(seed: bytes) -> bytes:
    """A deterministic secret key (32 bytes, in 1..r-1) from any seed (dev and test keys)."""
    value = int.from_bytes(hashlib.sha256(b"layerlab-bls" + seed).digest(), "big")
    return (value % (CURVE_ORDER - 1) + 1).to_bytes(32, "big")


def public_key(sk: bytes) -> bytes:
    return bytes(_bls.SkToPk(sk))


def sign(sk: bytes, message: bytes) -> bytes:
    return bytes(_bls.Sign(sk, message))


def _check_sizes(pubkeys: Sequence[bytes], signature: bytes) -> None:
    if len(signature) != SIGNATURE_SIZE:
        raise InvalidSignature(f"BLS signature must be {SIGNATURE_SIZE} bytes, got {len(signature)}")
    for pk in pubkeys:
        if len(pk) != PUBKEY_SIZE:
            raise InvalidSignature(f"BLS public key must be {PUBKEY_SIZE} bytes, got {len(pk)}")


def verify(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``pubkey``'s signature of ``message``; malformed input is False."""
    try:
        _check_sizes([pubkey], signature)
        return bool(_bls.Verify(pubkey, message, signature))
    except (InvalidSignature, ValueError):
        return False


def aggregate(signatures: Sequence[bytes]) -> bytes:
    """One signature standing for all of ``signatures`` (raises on an empty or malformed list)."""
    if not signatures:
        raise InvalidSignature("cannot aggregate zero signatures")
    _check_sizes([], signatures[0])
    try:
        return bytes(_bls.Aggregate(list(signatures)))
    except ValueError as exc:
        raise InvalidSignature(f"cannot aggregate: {exc}") from exc


def fast_aggregate_verify(pubkeys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    """True when ``signature`` aggregates every key's signature of the same ``message``."""
    if not pubkeys:
        return False
    try:
        _check_sizes(pubkeys, signature)
        return bool(_bls.FastAggregateVerify(list(pubkeys), message, signature))
    except (InvalidSignature, ValueError):
        return False
