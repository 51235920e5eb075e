"""Signing and checking channel states (EIP-712 digests, secp256k1 ECDSA).

Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28}, the form OpenZeppelin's
``ECDSA.recover`` accepts; ``s`` must be in the lower half of the curve order (EIP-2). The
digest-level primitives are :mod:`layerlab.crypto.eip712`'s; this module adds the channel
state on top.
"""

from __future__ import annotations

from layerlab.crypto.eip712 import is_signed_by as is_digest_signed_by
from layerlab.crypto.eip712 import recover_signer as recover_digest_signer
from layerlab.crypto.eip712 import sign_digest
from layerlab.l2.channels.types import ChannelState, Domain

__all__ = ["is_digest_signed_by", "is_signed_by", "recover_digest_signer", "sign_digest",
           "sign_state"]


def sign_state(domain: Domain, state: ChannelState, private_key: bytes) -> bytes:
    return sign_digest(domain.digest(state), private_key)


def is_signed_by(domain: Domain, state: ChannelState, signature: bytes, address: bytes) -> bool:
    """True when ``signature`` is ``address``'s EIP-712 signature of ``state``."""
    return is_digest_signed_by(domain.digest(state), signature, address)
