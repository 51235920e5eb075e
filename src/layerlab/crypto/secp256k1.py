"""secp256k1 sender recovery for Ethereum transactions (coincurve / libsecp256k1).

A transaction's sender is never sent; it is recovered from the ECDSA signature
``(y_parity, r, s)`` over ``keccak256(signing payload)`` (EIP-155 for legacy
transactions, EIP-2718 typed payloads otherwise). Signatures with ``s`` in the upper half
of the curve order are refused (EIP-2, malleability).

For typed transactions the signing payload is cut straight out of the raw envelope
(the same RLP list without its last three items, the signature) instead of being
re-encoded from decoded fields.
"""

from __future__ import annotations

import coincurve
from eth_hash.auto import keccak

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class BadSignature(ValueError):
    """The signature is malformed, out of range, or recovers no public key."""


def _item_end(data: bytes, pos: int) -> int:
    """End offset of the RLP item starting at ``pos``."""
    prefix = data[pos]
    if prefix < 0x80:
        return pos + 1
    if prefix <= 0xB7:
        return pos + 1 + prefix - 0x80
    if prefix <= 0xBF:
        n = prefix - 0xB7
        return pos + 1 + n + int.from_bytes(data[pos + 1:pos + 1 + n], "big")
    if prefix <= 0xF7:
        return pos + 1 + prefix - 0xC0
    n = prefix - 0xF7
    return pos + 1 + n + int.from_bytes(data[pos + 1:pos + 1 + n], "big")


def _list_prefix(length: int) -> bytes:
    if length <= 55:
        return bytes([0xC0 + length])
    size = (length.bit_length() + 7) // 8
    return bytes([0xF7 + size]) + length.to_bytes(size, "big")


def compute_typed_signing_payload(raw: bytes) -> bytes:
    """``type || rlp(fields without y_parity, r, s)`` for an EIP-2718 typed transaction."""
    body = raw[1:]
    prefix = body[0]
    if prefix < 0xC0:
        raise BadSignature("typed transaction payload is not an RLP list")
    start = 1 if prefix <= 0xF7 else 1 + prefix - 0xF7
    ends = []
    pos = start
    while pos < len(body):
        pos = _item_end(body, pos)
        ends.append(pos)
    if len(ends) < 4 or pos != len(body):
        raise BadSignature("typed transaction payload is truncated")
    fields = body[start:ends[-4]]
    return raw[:1] + _list_prefix(len(fields)) + fields


def compute_address(private_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a private key: keccak256(public key)[12:]."""
    public = coincurve.PrivateKey(private_key).public_key.format(compressed=False)
    return bytes(keccak(public[1:])[12:])


def recover_address(msg_hash: bytes, y_parity: int, r: int, s: int) -> bytes:
    """The 20-byte address whose key signed ``msg_hash``; raises :class:`BadSignature`."""
    if y_parity not in (0, 1):
        raise BadSignature(f"y parity {y_parity} is not 0 or 1")
    if not 0 < r < SECP256K1_N:
        raise BadSignature("r out of range")
    if not 0 < s <= SECP256K1_N // 2:
        raise BadSignature("s out of range (EIP-2 requires s <= n/2)")
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([y_parity])
    try:
        public = coincurve.PublicKey.from_signature_and_message(signature, msg_hash, hasher=None)
    except Exception as exc:  # libsecp256k1 reports failure as a generic error
        raise BadSignature(f"cannot recover public key: {exc}") from exc
    return bytes(keccak(public.format(compressed=False)[1:])[12:])
