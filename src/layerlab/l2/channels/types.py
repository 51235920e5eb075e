"""Channel data types and their EIP-712 encoding: the contract and every node agree on these.

EIP-712 domain: ``{name: "layerlab-channels", version: "1", chainId, verifyingContract}``
where ``verifyingContract`` is the ``PaymentChannels`` contract. Typed structs::

    ChannelState(bytes32 channelId,uint64 nonce,uint256 depositA,uint256 depositB,
                 uint256 balanceA,uint256 balanceB,bytes32 locksHash)
    Lock(uint256 amount,uint64 expiry,bytes32 hashlock,bool fromA)

``locksHash`` is ``keccak256(abi.encode(Lock[]))`` of the pending locks in order, and
``bytes32(0)`` when there are none. ``depositA``/``depositB`` are the on-chain deposits the
state accounts for; a deposit made after the state was signed is paid back to its
depositor at settlement on top of the state's balances. Participant A opened the channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final, NewType

from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak

ChannelId = NewType("ChannelId", bytes)
"""32 bytes: ``keccak256(abi.encode(participantA, participantB, token, counter))``."""
Hashlock = NewType("Hashlock", bytes)
"""32 bytes: ``sha256(preimage)`` as in Lightning (BOLT 2: payment_hash = SHA256(preimage))."""

FINAL_NONCE: Final = 2**64 - 1
"""Nonce of the final state of a cooperative close: the contract's ``FINAL_NONCE``
(``type(uint64).max``)."""

Preimage = NewType("Preimage", bytes)
"""32 bytes whose SHA-256 is a lock's hashlock (BOLT 2 ``payment_preimage``)."""

ZERO32 = b"\x00" * 32

CHANNEL_STATE_TYPE = (
    "ChannelState(bytes32 channelId,uint64 nonce,uint256 depositA,uint256 depositB,"
    "uint256 balanceA,uint256 balanceB,bytes32 locksHash)"
)
LOCK_TYPE = "Lock(uint256 amount,uint64 expiry,bytes32 hashlock,bool fromA)"
CHANNEL_STATE_TYPEHASH = keccak(CHANNEL_STATE_TYPE.encode())
DOMAIN_NAME = "layerlab-channels"
DOMAIN_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Lock:
    """A hash time-locked amount: ``from_a`` pays the other side if ``hashlock`` is opened
    (the preimage shown) before L1 block ``expiry``; otherwise it returns to the payer."""

    amount: int
    expiry: int
    hashlock: Hashlock
    from_a: bool

    def as_tuple(self) -> tuple[int, int, bytes, bool]:
        return (self.amount, self.expiry, self.hashlock, self.from_a)


def compute_locks_hash(locks: tuple[Lock, ...]) -> bytes:
    """``keccak256(abi.encode(Lock[]))``, or 32 zero bytes for no locks."""
    if not locks:
        return ZERO32
    return bytes(keccak(abi_encode(["(uint256,uint64,bytes32,bool)[]"],
                                   [[lock.as_tuple() for lock in locks]])))


@dataclass(frozen=True, slots=True)
class ChannelState:
    """One version of a channel, valid once both parties signed it."""

    channel_id: ChannelId
    nonce: int
    deposit_a: int
    deposit_b: int
    balance_a: int
    balance_b: int
    locks: tuple[Lock, ...] = field(default=())

    @property
    def locks_hash(self) -> bytes:
        return compute_locks_hash(self.locks)

    @property
    def locked(self) -> int:
        return sum(lock.amount for lock in self.locks)

    @property
    def total(self) -> int:
        return self.deposit_a + self.deposit_b

    def is_conserving(self) -> bool:
        """Value is neither created nor destroyed: balances plus locks equal deposits."""
        return (
            min(self.balance_a, self.balance_b, self.deposit_a, self.deposit_b) >= 0
            and all(lock.amount > 0 for lock in self.locks)
            and self.balance_a + self.balance_b + self.locked == self.total
        )

    def struct_hash(self) -> bytes:
        """EIP-712 ``hashStruct(ChannelState)``."""
        return bytes(keccak(abi_encode(
            ["bytes32", "bytes32", "uint64", "uint256", "uint256", "uint256", "uint256",
             "bytes32"],
            [CHANNEL_STATE_TYPEHASH, self.channel_id, self.nonce, self.deposit_a,
             self.deposit_b, self.balance_a, self.balance_b, self.locks_hash],
        )))

    def as_abi_tuple(self) -> tuple[bytes, int, int, int, int, int, bytes]:
        """The Solidity ``ChannelState`` struct argument."""
        return (self.channel_id, self.nonce, self.deposit_a, self.deposit_b, self.balance_a,
                self.balance_b, self.locks_hash)


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain of one deployment of the channel contract."""

    chain_id: int
    verifying_contract: bytes  # 20 bytes

    def separator(self) -> bytes:
        return _domain_separator(self.chain_id, self.verifying_contract)

    def digest(self, state: ChannelState) -> bytes:
        """``keccak256("\\x19\\x01" || domainSeparator || hashStruct(state))``."""
        return bytes(keccak(b"\x19\x01" + self.separator() + state.struct_hash()))


@lru_cache(maxsize=64)
def _domain_separator(chain_id: int, verifying_contract: bytes) -> bytes:
    type_hash = keccak(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    return bytes(keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [type_hash, keccak(DOMAIN_NAME.encode()), keccak(DOMAIN_VERSION.encode()),
         chain_id, verifying_contract],
    )))


@dataclass(frozen=True, slots=True)
class SignedState:
    """A state with both signatures (65 bytes each, r || s || v with v in {27, 28})."""

    state: ChannelState
    sig_a: bytes
    sig_b: bytes
