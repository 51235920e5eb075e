"""Signing and checking channel states (EIP-712 digests, secp256k1 ECDSA).

Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28}, the form OpenZeppelin's
``ECDSA.recover`` accepts; ``s`` must be in the lower half of the curve order (EIP-2).
"""

from __future__ import annotations

from functools import lru_cache

import coincurve

from layerlab.crypto.secp256k1 import BadSignature, recover_address
from layerlab.l2.channels.types import ChannelState, Domain


@lru_cache(maxsize=64)
def _signer(private_key: bytes) -> coincurve.PrivateKey:
    # parsing the key costs as much as the signature itself (~40 us): keep it
    return coincurve.PrivateKey(private_key)


def sign_digest(digest: bytes, private_key: bytes) -> bytes:
    """Sign a 32-byte digest; returns ``r || s || v`` (libsecp256k1 gives low-s)."""
    raw = bytes(_signer(private_key).sign_recoverable(digest, hasher=None))
    return raw[:64] + bytes([raw[64] + 27])


def recover_digest_signer(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address that signed ``digest``; raises :class:`BadSignature`."""
    if len(signature) != 65:
        raise BadSignature(f"signature must be 65 bytes, got {len(signature)}")
    v = signature[64]
    if v not in (27, 28):
        raise BadSignature(f"signature v must be 27 or 28, got {v}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    return recover_address(digest, v - 27, r, s)


def sign_state(domain: Domain, state: ChannelState, private_key: bytes) -> bytes:
    return sign_digest(domain.digest(state), private_key)


def is_digest_signed_by(digest: bytes, signature: bytes, address: bytes) -> bool:
    """True when ``signature`` over ``digest`` recovers to ``address``."""
    try:
        return recover_digest_signer(digest, signature) == address
    except BadSignature:
        return False


def is_signed_by(domain: Domain, state: ChannelState, signature: bytes, address: bytes) -> bool:
    """True when ``signature`` is ``address``'s EIP-712 signature of ``state``."""
    return is_digest_signed_by(domain.digest(state), signature, address)
