"""The staking contract (``contracts/consensus/Staking.sol``) seen from Python.

The contract is Ethereum's deposit contract (EIP-2982, consensus-specs
``deposit-contract.md``) plus EIP-7002-style exit requests. It is predeployed at
:data:`STAKING_ADDRESS` by placing :func:`staking_runtime_code` in the genesis alloc, as
EIP-7002's system contracts are; the consensus layer learns of deposits and exits by reading
the contract's events from each block's receipts with :func:`decode_staking_logs`.

A deposit carries a BLS proof of possession, :func:`make_deposit_signature`, over
:func:`deposit_message`; the contract only checks its size, the consensus layer checks the
signature and ignores deposits whose proof fails.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from layerlab.crypto import bls
from layerlab.l1.consensus.pos import deposit_message
from layerlab.l1.consensus.types import Deposit, ExitRequest

__all__ = [
    "DEPOSIT_TOPIC",
    "EXIT_REQUESTED_TOPIC",
    "MIN_DEPOSIT_GWEI",
    "STAKING_ADDRESS",
    "STAKING_CONTRACT",
    "LogLike",
    "ReceiptLike",
    "decode_staking_logs",
    "deposit_calldata",
    "deposit_message",
    "exit_calldata",
    "make_deposit_signature",
    "staking_runtime_code",
]

logger = logging.getLogger(__name__)

STAKING_CONTRACT: Final = "Staking"
"""Artifact name of the contract (``contracts/consensus/Staking.sol``)."""

STAKING_ADDRESS: Final = bytes.fromhex("4242424242424242424242424242424242424242")
"""Where the genesis alloc places the contract (Ethereum mainnet's deposit contract was
deployed normally, at 0x00000000219ab540356cBB839Cbe05303d7705Fa; we predeploy it, as
EIP-7002 does its system contract)."""

MIN_DEPOSIT_GWEI: Final = 10**9
"""The contract's ``MIN_DEPOSIT`` (1 ether) in gwei."""

_ADDRESS_SIZE: Final = 20

_DEPOSIT_SIGNATURE: Final = "Deposit(bytes,address,uint64,bytes,uint64)"
_EXIT_SIGNATURE: Final = "ExitRequested(bytes,address)"
DEPOSIT_TOPIC: Final = int.from_bytes(keccak(text=_DEPOSIT_SIGNATURE), "big")
"""topic0 of ``Deposit``, as an int (py-evm keeps log topics as ints)."""
EXIT_REQUESTED_TOPIC: Final = int.from_bytes(keccak(text=_EXIT_SIGNATURE), "big")
"""topic0 of ``ExitRequested``, as an int."""

_DEPOSIT_SELECTOR: Final = keccak(text="deposit(bytes,bytes)")[:4]
_EXIT_SELECTOR: Final = keccak(text="requestExit(bytes)")[:4]


class LogLike(Protocol):
    """What we read of a log: py-evm's ``LogAPI`` (topics are ints) or an adapter."""

    @property
    def address(self) -> bytes: ...

    @property
    def topics(self) -> Sequence[int]: ...

    @property
    def data(self) -> bytes: ...


class ReceiptLike(Protocol):
    """What we read of a receipt: py-evm's ``ReceiptAPI`` or an adapter."""

    @property
    def logs(self) -> Sequence[LogLike]: ...


def staking_runtime_code() -> bytes:
    """The contract's runtime bytecode, for the genesis alloc (compiles if needed)."""
    from layerlab.contracts import load_artifact  # solc toolchain: only when asked for

    return load_artifact(STAKING_CONTRACT).deployed_bytecode


def make_deposit_signature(bls_sk: bytes, withdrawal_address: bytes, amount_gwei: int) -> bytes:
    """The BLS proof of possession of ``bls_sk``'s key for one deposit (96 bytes)."""
    if len(withdrawal_address) != _ADDRESS_SIZE:
        raise ValueError(f"withdrawal address must be 20 bytes, got {len(withdrawal_address)}")
    if not 0 <= amount_gwei < 2**64:
        raise ValueError(f"deposit amount {amount_gwei} gwei is not a uint64")
    pubkey = bls.public_key(bls_sk)
    return bls.sign(bls_sk, deposit_message(pubkey, withdrawal_address, amount_gwei))


def deposit_calldata(pubkey: bytes, signature: bytes) -> bytes:
    """Call data of ``deposit(pubkey, signature)``; the value goes in the transaction.

    Raises :class:`ValueError` on a key or signature of the wrong size, which the contract
    would refuse.
    """
    if len(pubkey) != bls.PUBKEY_SIZE:
        raise ValueError(f"BLS public key must be {bls.PUBKEY_SIZE} bytes, got {len(pubkey)}")
    if len(signature) != bls.SIGNATURE_SIZE:
        raise ValueError(f"BLS signature must be {bls.SIGNATURE_SIZE} bytes, got {len(signature)}")
    return _DEPOSIT_SELECTOR + encode(["bytes", "bytes"], [pubkey, signature])


def exit_calldata(pubkey: bytes) -> bytes:
    """Call data of ``requestExit(pubkey)``."""
    if len(pubkey) != bls.PUBKEY_SIZE:
        raise ValueError(f"BLS public key must be {bls.PUBKEY_SIZE} bytes, got {len(pubkey)}")
    return _EXIT_SELECTOR + encode(["bytes"], [pubkey])


def decode_staking_logs(
    receipts: Iterable[ReceiptLike], contract_address: bytes = STAKING_ADDRESS
) -> tuple[list[Deposit], list[ExitRequest]]:
    """The ``Deposit`` and ``ExitRequested`` events of ``contract_address`` in ``receipts``.

    Each list keeps log order (receipt order, then log order within a receipt). Logs of
    other addresses or other events are skipped; a log of the contract that does not decode
    (the contract cannot emit one) is skipped with a warning.
    """
    deposits: list[Deposit] = []
    exits: list[ExitRequest] = []
    for receipt in receipts:
        for log in receipt.logs:
            if bytes(log.address) != contract_address or not log.topics:
                continue
            topic = log.topics[0]
            if topic not in (DEPOSIT_TOPIC, EXIT_REQUESTED_TOPIC):
                continue
            try:
                if topic == DEPOSIT_TOPIC:
                    deposits.append(_decode_deposit(log))
                else:
                    exits.append(_decode_exit(log))
            except (DecodingError, ValueError, OverflowError) as exc:
                logger.warning(
                    "ignoring malformed staking log (topics %s): %s", [hex(t) for t in log.topics], exc
                )
    return deposits, exits


def _indexed_address(log: LogLike) -> bytes:
    if len(log.topics) != 2:
        raise ValueError(f"expected 2 topics, got {len(log.topics)}")
    word = log.topics[1]
    if not 0 <= word < 2 ** (8 * _ADDRESS_SIZE):
        raise ValueError(f"indexed address topic {word:#x} is not an address")
    return word.to_bytes(_ADDRESS_SIZE, "big")


def _check_size(name: str, value: bytes, size: int) -> bytes:
    if len(value) != size:
        raise ValueError(f"{name} is {len(value)} bytes, not {size}")
    return value


def _decode_deposit(log: LogLike) -> Deposit:
    withdrawal_address = _indexed_address(log)
    pubkey, amount_gwei, signature, index = decode(["bytes", "uint64", "bytes", "uint64"], bytes(log.data))
    return Deposit(
        pubkey=_check_size("pubkey", pubkey, bls.PUBKEY_SIZE),
        withdrawal_address=withdrawal_address,
        amount_gwei=amount_gwei,
        signature=_check_size("signature", signature, bls.SIGNATURE_SIZE),
        index=index,
    )


def _decode_exit(log: LogLike) -> ExitRequest:
    source_address = _indexed_address(log)
    (pubkey,) = decode(["bytes"], bytes(log.data))
    return ExitRequest(pubkey=_check_size("pubkey", pubkey, bls.PUBKEY_SIZE), source_address=source_address)
