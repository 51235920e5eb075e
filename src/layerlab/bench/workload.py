"""Deterministic transfer workloads: the same signed transactions for every system under test.

A workload is ``tx_count`` EIP-1559 (type 2, EIP-2718 envelope ``0x02 || rlp(...)``) value
transfers of 21,000 gas, spread round-robin over ``sender_count`` senders with consecutive
nonces: transaction ``i`` is sent by sender ``i % S`` with nonce ``start + i // S`` and
pays ``value`` to recipient ``i % R``. Senders are the BIP-44 accounts m/44'/60'/0'/0/i of
a BIP-39 mnemonic; with the default "test test ... junk" the first ten (or twenty) are the
accounts Hardhat and Anvil fund at genesis, so the same raw bytes are valid on their nodes,
on ours and on a bare py-evm chain whose genesis funds the same addresses.

Signing goes straight to libsecp256k1 (coincurve) with a hand-rolled RLP encoding of the
fixed-shape transfer, which is about ten times faster than ``eth_account``'s general
``sign_transaction`` (measured here: ~3,500 tx/s for eth-account, ~42,000 tx/s with this
path). Signatures are RFC 6979 deterministic and low-s (EIP-2), so a workload is a pure
function of its :class:`TransferWorkloadSpec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coincurve import PrivateKey
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.crypto.secp256k1 import compute_address as crypto_compute_address
from layerlab.primitives.types import GWEI, Address, ChainId, Hash32, Nonce, Wei

TEST_MNEMONIC = "test test test test test test test test test test test junk"
"""The Hardhat / Anvil / Foundry development mnemonic."""

TRANSFER_GAS = 21_000
"""Gas of a plain value transfer: G_transaction, no data, no access list (yellow paper)."""

DYNAMIC_FEE_TX_TYPE = 2
"""EIP-1559 transaction type byte (EIP-2718 envelope)."""

HARDHAT_CHAIN_ID = ChainId(31337)
DEFAULT_MAX_FEE_PER_GAS = Wei(10 * GWEI)
DEFAULT_MAX_PRIORITY_FEE_PER_GAS = Wei(1 * GWEI)
DEFAULT_TRANSFER_VALUE = Wei(1)
FIRST_NONCE = Nonce(0)

_MAX_UINT256 = 2**256 - 1
_MAX_UINT64 = 2**64 - 1
_RECIPIENT_DOMAIN = b"layerlab/bench/recipient/"


@dataclass(frozen=True, slots=True)
class Sender:
    """A funded development account that signs workload transactions."""

    index: int
    """Position i on the HD path m/44'/60'/0'/0/i."""
    private_key: bytes
    address: Address

    @property
    def checksum_address(self) -> str:
        """The EIP-55 mixed-case hex form of :attr:`address`."""
        return to_checksum_address(self.address)


@dataclass(frozen=True, slots=True)
class TransferWorkloadSpec:
    """Everything that determines a transfer workload; equal specs give equal bytes."""

    tx_count: int
    chain_id: ChainId = HARDHAT_CHAIN_ID
    sender_count: int = 10
    max_fee_per_gas: Wei = DEFAULT_MAX_FEE_PER_GAS
    max_priority_fee_per_gas: Wei = DEFAULT_MAX_PRIORITY_FEE_PER_GAS
    value: Wei = DEFAULT_TRANSFER_VALUE
    recipient_count: int = 1_000
    start_nonce: Nonce = FIRST_NONCE
    mnemonic: str = TEST_MNEMONIC


@dataclass(frozen=True, slots=True)
class TransferWorkload:
    """Signed raw transactions of a spec, in send order, with their hashes."""

    spec: TransferWorkloadSpec
    senders: tuple[Sender, ...]
    recipients: tuple[Address, ...]
    raw_transactions: tuple[bytes, ...]
    tx_hashes: tuple[Hash32, ...]

    @property
    def gas_per_transaction(self) -> int:
        """Gas each transfer uses (and is given): :data:`TRANSFER_GAS`."""
        return TRANSFER_GAS


def compute_senders(count: int, mnemonic: str = TEST_MNEMONIC) -> tuple[Sender, ...]:
    """Derive the first ``count`` accounts m/44'/60'/0'/0/i of ``mnemonic`` (BIP-32/39/44).

    The BIP-39 seed (2,048 PBKDF2 rounds) is computed once rather than once per account as
    ``Account.from_mnemonic`` does, so hundreds of senders derive in milliseconds; the keys
    are the same (checked by the tests against ``Account.from_mnemonic``).
    """
    if count < 1:
        raise ValueError(f"sender count must be at least 1, got {count}")
    return tuple(
        Sender(index=i, private_key=acct.private_key, address=Address(acct.address_bytes))
        for i, acct in enumerate(derive_dev_accounts(mnemonic, count))
    )


def compute_address(private_key: bytes) -> Address:
    """Address of a secp256k1 key (see :func:`layerlab.crypto.secp256k1.compute_address`)."""
    return Address(crypto_compute_address(private_key))


def compute_recipients(count: int) -> tuple[Address, ...]:
    """``count`` deterministic fresh addresses, ``keccak256(domain || i)[12:]``, no known keys."""
    if count < 1:
        raise ValueError(f"recipient count must be at least 1, got {count}")
    return tuple(
        Address(keccak(_RECIPIENT_DOMAIN + i.to_bytes(8, "big"))[12:]) for i in range(count)
    )


def compute_transaction_hash(raw_transaction: bytes) -> Hash32:
    """Transaction hash of an EIP-2718 typed transaction: keccak256 of its full envelope."""
    return Hash32(keccak(raw_transaction))


def compute_transfer_workload(spec: TransferWorkloadSpec) -> TransferWorkload:
    """Derive senders and recipients and sign every transfer of ``spec``."""
    senders = compute_senders(spec.sender_count, spec.mnemonic)
    recipients = compute_recipients(spec.recipient_count)
    raw = sign_transfers(
        senders,
        recipients,
        spec.tx_count,
        chain_id=spec.chain_id,
        max_fee_per_gas=spec.max_fee_per_gas,
        max_priority_fee_per_gas=spec.max_priority_fee_per_gas,
        value=spec.value,
        start_nonce=spec.start_nonce,
    )
    return TransferWorkload(
        spec=spec,
        senders=senders,
        recipients=recipients,
        raw_transactions=raw,
        tx_hashes=tuple(compute_transaction_hash(tx) for tx in raw),
    )


def sign_transfers(
    senders: Sequence[Sender],
    recipients: Sequence[Address],
    tx_count: int,
    *,
    chain_id: ChainId,
    max_fee_per_gas: Wei,
    max_priority_fee_per_gas: Wei,
    value: Wei,
    start_nonce: Nonce = FIRST_NONCE,
) -> tuple[bytes, ...]:
    """Sign ``tx_count`` EIP-1559 transfers round-robin over ``senders``; return raw envelopes.

    Transaction ``i`` comes from ``senders[i % S]`` with nonce ``start_nonce + i // S`` and
    pays ``value`` wei to ``recipients[i % R]`` with 21,000 gas, no data and an empty access
    list. The signed payload is ``keccak256(0x02 || rlp([chain_id, nonce, max_priority_fee,
    max_fee, gas, to, value, data, access_list]))`` and the envelope appends
    ``y_parity, r, s`` to that list (EIP-1559, EIP-2718).
    """
    if tx_count < 0:
        raise ValueError(f"transaction count must be non-negative, got {tx_count}")
    if not senders:
        raise ValueError("at least one sender is needed")
    if not recipients:
        raise ValueError("at least one recipient is needed")
    if max_priority_fee_per_gas > max_fee_per_gas:
        raise ValueError(
            f"max priority fee {max_priority_fee_per_gas} exceeds max fee {max_fee_per_gas}"
        )
    for name, quantity, limit in (
        ("chain id", chain_id, _MAX_UINT64),
        ("start nonce", start_nonce, _MAX_UINT64 - tx_count),
        ("max fee per gas", max_fee_per_gas, _MAX_UINT256),
        ("value", value, _MAX_UINT256),
    ):
        if not 0 <= quantity <= limit:
            raise ValueError(f"{name} {quantity} is outside 0..{limit}")
    for recipient in recipients:
        if len(recipient) != 20:
            raise ValueError(f"recipient must be 20 bytes, got {len(recipient)}")

    sender_count = len(senders)
    recipient_count = len(recipients)
    keys = [PrivateKey(sender.private_key) for sender in senders]
    chain_rlp = _encode_uint(chain_id)
    fees_rlp = (
        _encode_uint(max_priority_fee_per_gas)
        + _encode_uint(max_fee_per_gas)
        + _encode_uint(TRANSFER_GAS)
    )
    # to, value, data (empty), access_list (empty): everything after the fees.
    tails = [b"\x94" + bytes(r) + _encode_uint(value) + b"\x80\xc0" for r in recipients]
    type_byte = bytes([DYNAMIC_FEE_TX_TYPE])

    raw_transactions = []
    for i in range(tx_count):
        nonce = start_nonce + i // sender_count
        fields = chain_rlp + _encode_uint(nonce) + fees_rlp + tails[i % recipient_count]
        digest = keccak(type_byte + _encode_list_prefix(len(fields)) + fields)
        signature = keys[i % sender_count].sign_recoverable(digest, hasher=None)
        signed_fields = (
            fields
            + _encode_uint(signature[64])
            + _encode_uint_bytes(signature[0:32])
            + _encode_uint_bytes(signature[32:64])
        )
        raw_transactions.append(type_byte + _encode_list_prefix(len(signed_fields)) + signed_fields)
    return tuple(raw_transactions)


def _encode_uint(value: int) -> bytes:
    """RLP of a non-negative integer: its minimal big-endian bytes as an RLP string."""
    if value == 0:
        return b"\x80"
    if value < 0x80:
        return bytes([value])
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([0x80 + len(body)]) + body


def _encode_uint_bytes(big_endian: bytes) -> bytes:
    """RLP of an integer given as big-endian bytes (at most 55 of them), leading zeros dropped."""
    body = big_endian.lstrip(b"\x00")
    if len(body) == 1 and body[0] < 0x80:
        return body
    return bytes([0x80 + len(body)]) + body


def _encode_list_prefix(payload_length: int) -> bytes:
    """RLP list header for a payload of ``payload_length`` bytes."""
    if payload_length <= 55:
        return bytes([0xC0 + payload_length])
    length_bytes = payload_length.to_bytes((payload_length.bit_length() + 7) // 8, "big")
    return bytes([0xF7 + len(length_bytes)]) + length_bytes
