"""Domain types: quantities and identifiers are never bare ints or bytes in public APIs."""

from __future__ import annotations

from typing import NewType

Address = NewType("Address", bytes)
"""A 20-byte account address."""
Hash32 = NewType("Hash32", bytes)
"""A 32-byte keccak-256 digest (block hash, transaction hash, state root)."""
Wei = NewType("Wei", int)
Gwei = NewType("Gwei", int)
BlockNumber = NewType("BlockNumber", int)
Nonce = NewType("Nonce", int)
ChainId = NewType("ChainId", int)
Timestamp = NewType("Timestamp", int)
"""Unix seconds."""

GWEI: int = 10**9
ETHER: int = 10**18


def to_address(value: bytes | str) -> Address:
    """Normalise a 20-byte value or 0x-hex string to an :data:`Address`."""
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value) if isinstance(
        value, str
    ) else value
    if len(raw) != 20:
        raise ValueError(f"address must be 20 bytes, got {len(raw)}")
    return Address(raw)
