"""The L1 side of payment channels: deploy and drive ``contracts/channels/PaymentChannels.sol``.

The contract's protocol, in short (its NatSpec has the whole of it, with the BOLT and
Raiden references):

* ``open`` / ``deposit``: participant A opens with ETH or an ERC-20 and either tops up.
* ``cooperative_close``: one transaction with the *final* state both signed, a state whose
  nonce is :data:`FINAL_NONCE` and which has no locks (:func:`compute_final_state`). Only
  the final nonce closes without a dispute window, so a revoked state can never be cashed
  out directly.
* ``close``: a unilateral close with the latest state both signed (or, for a channel that
  never got a signed state, :func:`compute_empty_state` without signatures), then a window
  of ``settle_timeout`` blocks.
* ``challenge``: during the window anyone (the victim, a watchtower) shows a newer state.
  Two or more nonces above the closed one proves the closer closed on a revoked state and
  pays the whole channel to the other side (Lightning's penalty); exactly one above, or
  the final state, replaces the closed state without penalty (the closer may never have
  received that state countersigned). The off-chain protocol must therefore never sign
  state ``n + 2`` before it holds both signatures on ``n + 1``.
* ``claim_lock``: open a pending HTLC with its preimage up to its expiry block; the
  ``LockClaimed`` event publishes the preimage to upstream hops.
* ``settle``: after the window and every unclaimed lock's expiry.

Every transaction is signed locally with eth-account, sent with ``eth_sendRawTransaction``
and waited for (bounded); each method returns the web3 receipt, so ``receipt["gasUsed"]``
is the L1 cost. A refused transaction raises :class:`ChannelTxError`, a
:class:`~layerlab.errors.ChannelError` naming the contract's custom error and its
arguments (``InvalidSignature(channelId=0x.., expectedSigner=0x.., recovered=0x..)``).
Only JSON-RPC is used, so this works against any EVM node given a funded key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Final, NamedTuple, cast

from eth_account import Account
from eth_typing import ABI, ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier, TxReceipt

from layerlab.contracts import deploy, get_contract, load_artifact
from layerlab.errors import ChannelError
from layerlab.l2.channels.types import (
    FINAL_NONCE,
    ChannelId,
    ChannelState,
    Domain,
    Hashlock,
    Lock,
    Preimage,
    SignedState,
)
from layerlab.l2.l1client import (
    RECEIPT_TIMEOUT_SECONDS,
    ContractEvent,
    L1Contract,
    L1TxError,
    compute_event_topic,
)
from layerlab.primitives.types import BlockNumber

__all__ = [
    "CONTRACT_NAME",
    "FINAL_NONCE",
    "ChannelContract",
    "ChannelEvent",
    "ChannelStatus",
    "ChannelTxError",
    "OnchainChannel",
    "OnchainLock",
    "OpenResult",
    "Preimage",
    "compute_empty_state",
    "compute_final_state",
    "deploy_channels",
]

logger = logging.getLogger(__name__)

CONTRACT_NAME: Final = "PaymentChannels"
ETH: Final = "0x0000000000000000000000000000000000000000"

_ERC20_ABI: Final[ABI] = cast(ABI, [
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
])


class ChannelStatus(IntEnum):
    """``PaymentChannels.Status``."""

    NONE = 0
    OPEN = 1
    CLOSING = 2
    SETTLED = 3


class ChannelTxError(L1TxError, ChannelError):
    """A channel transaction was refused (reverted) or could not be sent or mined
    (:class:`~layerlab.l2.l1client.L1TxError`: ``error_name`` is the contract's custom
    error such as ``"StaleState"``, ``error_args`` its arguments by name)."""


@dataclass(frozen=True, slots=True)
class OnchainChannel:
    """A channel as the contract records it (``getChannel``).

    ``token`` is None for ETH. While closing, ``payout_a``/``payout_b`` are what each side
    gets apart from the unclaimed locks; ``nonce`` is the recorded state's nonce and
    ``closed_nonce`` the one the closer submitted.
    """

    channel_id: ChannelId
    participant_a: ChecksumAddress
    participant_b: ChecksumAddress
    token: ChecksumAddress | None
    status: ChannelStatus
    settle_timeout: int
    settle_block: BlockNumber
    closer: ChecksumAddress | None
    nonce: int
    closed_nonce: int
    deposit_a: int
    deposit_b: int
    payout_a: int
    payout_b: int
    lock_count: int

    @property
    def total_deposit(self) -> int:
        return self.deposit_a + self.deposit_b


@dataclass(frozen=True, slots=True)
class OnchainLock:
    """A pending lock recorded by a unilateral close, and whether it was claimed."""

    lock: Lock
    claimed: bool


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """One decoded event of the channel contract, for watchers and watchtowers.

    ``name`` is the Solidity event name (``ChannelClosed``, ``LockClaimed``...); ``args``
    maps its parameter names to values (bytes32 as ``bytes``, addresses checksummed).
    """

    name: str
    channel_id: ChannelId | None
    args: Mapping[str, Any]
    block_number: BlockNumber
    tx_hash: bytes
    log_index: int


class OpenResult(NamedTuple):
    channel_id: ChannelId
    receipt: TxReceipt


def compute_final_state(state: ChannelState) -> ChannelState:
    """The state to sign for a cooperative close: ``state`` with nonce :data:`FINAL_NONCE`.

    Raises :class:`ChannelError` if locks are pending (settle or fail them first).
    """
    if state.locks:
        raise ChannelError(
            f"cannot close cooperatively with {len(state.locks)} pending locks "
            f"({state.locked} locked): settle or fail them first"
        )
    return replace(state, nonce=FINAL_NONCE)


def compute_empty_state(channel_id: ChannelId) -> SignedState:
    """The unsigned empty state (nonce 0, all zero) with which a participant closes a
    channel that never got a signed state: every deposit returns to its depositor."""
    return SignedState(ChannelState(channel_id, 0, 0, 0, 0, 0), b"", b"")


def deploy_channels(
    w3: Web3, private_key: bytes | str, timeout: float = RECEIPT_TIMEOUT_SECONDS
) -> ChannelContract:
    """Deploy ``PaymentChannels`` from the account of ``private_key`` (signed locally)."""
    account = Account.from_key(private_key)
    contract = deploy(
        w3, load_artifact(CONTRACT_NAME), sender=account.address,
        private_key="0x" + bytes(account.key).hex(), timeout=timeout,
    )
    return ChannelContract(w3, contract, timeout=timeout)


class ChannelContract:
    """A deployed ``PaymentChannels`` contract.

    Transactions take the sender's 32-byte private key; they are signed locally and this
    object serialises them (one at a time per instance) so nonces never collide.
    """

    def __init__(self, w3: Web3, contract: Contract, timeout: float = RECEIPT_TIMEOUT_SECONDS) -> None:
        self._w3 = w3
        self._contract = contract
        self._l1 = L1Contract(w3, contract, name=CONTRACT_NAME, error=ChannelTxError,
                              timeout=timeout)
        self._domain: Domain | None = None

    @classmethod
    def at(cls, w3: Web3, address: str, timeout: float = RECEIPT_TIMEOUT_SECONDS) -> ChannelContract:
        """Bind to a contract already deployed at ``address``."""
        return cls(w3, get_contract(w3, load_artifact(CONTRACT_NAME), address), timeout=timeout)

    @property
    def address(self) -> ChecksumAddress:
        return self._contract.address

    @property
    def contract(self) -> Contract:
        return self._contract

    @property
    def l1(self) -> L1Contract:
        """The generic client under the channel names (what an
        :class:`~layerlab.l2.follower.L1Follower` follows)."""
        return self._l1

    # -- views ----------------------------------------------------------------------------

    def domain(self) -> Domain:
        """The EIP-712 domain states of this deployment are signed in."""
        if self._domain is None:
            self._domain = Domain(
                chain_id=self._w3.eth.chain_id,
                verifying_contract=bytes.fromhex(self.address[2:]),
            )
        return self._domain

    def hash_state(self, state: ChannelState) -> bytes:
        """The contract's EIP-712 digest of ``state`` (equals ``domain().digest(state)``)."""
        return bytes(self._call("hashState", state.as_abi_tuple()))

    def domain_separator(self) -> bytes:
        return bytes(self._call("domainSeparator"))

    def block_number(self) -> int:
        """The L1 head's number (lock expiries and settle timeouts are in blocks)."""
        return int(self._w3.eth.block_number)

    def get_channel(self, channel_id: ChannelId) -> OnchainChannel:
        """The channel as recorded on L1; raises :class:`ChannelTxError` (UnknownChannel)."""
        info = self._call("getChannel", channel_id)
        token = Web3.to_checksum_address(info[2])
        closer = Web3.to_checksum_address(info[6])
        return OnchainChannel(
            channel_id=channel_id,
            participant_a=Web3.to_checksum_address(info[0]),
            participant_b=Web3.to_checksum_address(info[1]),
            token=None if token == ETH else token,
            status=ChannelStatus(info[3]),
            settle_timeout=int(info[4]),
            settle_block=BlockNumber(int(info[5])),
            closer=None if closer == ETH else closer,
            nonce=int(info[7]),
            closed_nonce=int(info[8]),
            deposit_a=int(info[9]),
            deposit_b=int(info[10]),
            payout_a=int(info[11]),
            payout_b=int(info[12]),
            lock_count=int(info[13]),
        )

    def get_lock(self, channel_id: ChannelId, index: int) -> OnchainLock:
        lock, claimed = self._call("getLock", channel_id, index)
        return OnchainLock(
            Lock(amount=int(lock[0]), expiry=int(lock[1]), hashlock=Hashlock(bytes(lock[2])),
                 from_a=bool(lock[3])),
            bool(claimed),
        )

    def get_locks(self, channel_id: ChannelId) -> tuple[OnchainLock, ...]:
        count = self.get_channel(channel_id).lock_count
        return tuple(self.get_lock(channel_id, i) for i in range(count))

    def get_owed(self, recipient: str, token: str | None = None) -> int:
        """Payouts that could not be pushed to ``recipient`` (see :meth:`withdraw`)."""
        return int(self._call("owed", Web3.to_checksum_address(recipient), token or ETH))

    def events(
        self, from_block: int, to_block: BlockIdentifier = "latest"
    ) -> list[ChannelEvent]:
        """Decoded events of this contract in ``[from_block, to_block]``, in chain order."""
        return [_channel_event(event) for event in self._l1.events(from_block, to_block)]

    # -- transactions ---------------------------------------------------------------------

    def open(
        self,
        key: bytes,
        counterparty: str,
        amount: int,
        settle_timeout: int,
        token: str | None = None,
    ) -> OpenResult:
        """Open a channel to ``counterparty`` depositing ``amount`` (wei, or token units
        after :meth:`approve_token`); the sender becomes participant A."""
        token_address = Web3.to_checksum_address(token) if token else ETH
        fn = self._contract.functions.open(
            Web3.to_checksum_address(counterparty), token_address, amount, settle_timeout
        )
        receipt = self._transact(key, "open", fn, value=0 if token else amount)
        topic = compute_event_topic("ChannelOpened(bytes32,address,address,address,uint256,uint64)")
        for log in receipt["logs"]:
            if log["address"] == self.address and bytes(log["topics"][0]) == topic:
                return OpenResult(ChannelId(bytes(log["topics"][1])), receipt)
        raise ChannelTxError(f"open: tx {receipt['transactionHash'].to_0x_hex()} emitted no ChannelOpened")

    def deposit(self, key: bytes, channel_id: ChannelId, amount: int) -> TxReceipt:
        """Top up the sender's deposit (ETH is sent as value)."""
        is_eth = self.get_channel(channel_id).token is None
        fn = self._contract.functions.deposit(channel_id, amount)
        return self._transact(key, "deposit", fn, value=amount if is_eth else 0)

    def cooperative_close(self, key: bytes, signed: SignedState) -> TxReceipt:
        """Close at once with the final state (:func:`compute_final_state`) both signed."""
        fn = self._contract.functions.cooperativeClose(
            signed.state.as_abi_tuple(), signed.sig_a, signed.sig_b
        )
        return self._transact(key, "cooperativeClose", fn)

    def close(self, key: bytes, signed: SignedState) -> TxReceipt:
        """Start a unilateral close with ``signed`` and the locks it commits to."""
        fn = self._contract.functions.close(
            signed.state.as_abi_tuple(), [lock.as_tuple() for lock in signed.state.locks],
            signed.sig_a, signed.sig_b,
        )
        return self._transact(key, "close", fn)

    def challenge(self, key: bytes, signed: SignedState) -> TxReceipt:
        """Contest a unilateral close with the newer ``signed`` state (anyone may)."""
        fn = self._contract.functions.challenge(
            signed.state.as_abi_tuple(), [lock.as_tuple() for lock in signed.state.locks],
            signed.sig_a, signed.sig_b,
        )
        return self._transact(key, "challenge", fn)

    def claim_lock(self, key: bytes, channel_id: ChannelId, index: int, preimage: Preimage) -> TxReceipt:
        """Open pending lock ``index`` with ``preimage`` before its expiry (anyone may)."""
        fn = self._contract.functions.claimLock(channel_id, index, preimage)
        return self._transact(key, "claimLock", fn)

    def settle(self, key: bytes, channel_id: ChannelId) -> TxReceipt:
        """Pay out a closed channel after its settle block and its locks' expiries."""
        return self._transact(key, "settle", self._contract.functions.settle(channel_id))

    def withdraw(self, key: bytes, token: str | None = None) -> TxReceipt:
        """Withdraw payouts the contract could not push to the sender."""
        fn = self._contract.functions.withdraw(Web3.to_checksum_address(token) if token else ETH)
        return self._transact(key, "withdraw", fn)

    def approve_token(self, key: bytes, token: str, amount: int) -> TxReceipt:
        """ERC-20 ``approve(channelContract, amount)`` from the sender, before open/deposit."""
        erc20 = self._w3.eth.contract(address=Web3.to_checksum_address(token), abi=_ERC20_ABI)
        return self._transact(key, "approve", erc20.functions.approve(self.address, amount))

    # -- plumbing -------------------------------------------------------------------------

    def _call(self, name: str, *args: Any) -> Any:
        return self._l1.call(name, *args)

    def _transact(self, key: bytes, what: str, fn: ContractFunction, value: int = 0) -> TxReceipt:
        return self._l1.transact(key, what, fn, value)


def _channel_event(event: ContractEvent) -> ChannelEvent:
    channel_id = event.args.get("channelId")
    return ChannelEvent(
        name=event.name,
        channel_id=ChannelId(channel_id) if isinstance(channel_id, bytes) else None,
        args=event.args, block_number=event.block_number, tx_hash=event.tx_hash,
        log_index=event.log_index,
    )
