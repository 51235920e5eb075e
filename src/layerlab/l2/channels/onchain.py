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
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Final, NamedTuple, NewType, cast

from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_hash.auto import keccak
from eth_typing import ABI, ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import BlockIdentifier, EventData, FilterParams, LogReceipt, TxParams, TxReceipt
from web3.types import Wei as Web3Wei

from layerlab.contracts import deploy, get_contract, load_artifact
from layerlab.errors import ChannelError
from layerlab.l2.channels.types import (
    ChannelId,
    ChannelState,
    Domain,
    Hashlock,
    Lock,
    SignedState,
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
FINAL_NONCE: Final = 2**64 - 1
"""Nonce of the final state that ``cooperativeClose`` accepts (``type(uint64).max``)."""
RECEIPT_TIMEOUT_SECONDS: Final = 60.0
"""Upper bound on waiting for one transaction to be mined."""
GAS_MARGIN_DIVISOR: Final = 10
"""Gas limit = estimate + estimate / 10: the estimate is for the current block, and checks
against ``block.number`` may take another path in the block that includes the tx."""

ETH: Final = "0x0000000000000000000000000000000000000000"

Preimage = NewType("Preimage", bytes)
"""32 bytes whose SHA-256 is a lock's hashlock (BOLT 2 ``payment_preimage``)."""

_ERC20_ABI: Final[ABI] = cast(ABI, [
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
])
_ERROR_STRING: Final = keccak(b"Error(string)")[:4]
_PANIC: Final = keccak(b"Panic(uint256)")[:4]
_RETURN_DATA_RE: Final = re.compile(r"return data: (0x[0-9a-fA-F]*)")


class ChannelStatus(IntEnum):
    """``PaymentChannels.Status``."""

    NONE = 0
    OPEN = 1
    CLOSING = 2
    SETTLED = 3


class ChannelTxError(ChannelError):
    """A channel transaction was refused (reverted) or could not be sent or mined.

    ``error_name`` is the contract's custom error (``"StaleState"``), ``"Error"`` for a
    ``require`` string, ``"Panic"``, or None when there was no revert payload (a node or
    transport failure); ``error_args`` maps the error's parameter names to their values.
    """

    def __init__(
        self, message: str, error_name: str | None = None, error_args: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args: Mapping[str, Any] = dict(error_args or {})


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
        self._timeout = timeout
        self._send_lock = threading.Lock()
        self._domain: Domain | None = None
        self._errors = _error_decoders(contract.abi)
        self._events = {
            bytes(keccak(_signature(entry).encode())): str(entry["name"])
            for entry in _entries(contract.abi)
            if entry.get("type") == "event"
        }

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
        params: FilterParams = {
            "address": self.address, "fromBlock": BlockNumber(from_block), "toBlock": to_block,
        }
        try:
            logs = self._w3.eth.get_logs(params)
        except Web3Exception as exc:
            raise ChannelTxError(f"eth_getLogs from block {from_block} failed: {exc}") from exc
        return [event for log in logs if (event := self._decode_log(log)) is not None]

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
        topic = _event_topic("ChannelOpened(bytes32,address,address,address,uint256,uint64)")
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
        try:
            return self._contract.functions[name](*args).call()
        except ContractLogicError as exc:
            raise self._refused(name, exc) from exc
        except Web3Exception as exc:
            raise ChannelTxError(f"{name} call failed: {exc}") from exc

    def _transact(self, key: bytes, what: str, fn: ContractFunction, value: int = 0) -> TxReceipt:
        account = Account.from_key(key)
        with self._send_lock:
            try:
                params: TxParams = {
                    "from": account.address,
                    "value": Web3Wei(value),
                    "nonce": self._w3.eth.get_transaction_count(account.address, "pending"),
                }
                tx = fn.build_transaction(params)
                tx["gas"] = int(tx["gas"]) + int(tx["gas"]) // GAS_MARGIN_DIVISOR
                signed = account.sign_transaction(cast(dict[str, Any], tx))
                tx_hash = self._w3.eth.send_raw_transaction(signed.raw_transaction)
            except ContractLogicError as exc:
                raise self._refused(what, exc) from exc
            except Web3Exception as exc:
                raise ChannelTxError(f"{what} from {account.address} could not be sent: {exc}") from exc
        try:
            receipt = self._w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self._timeout)
        except Web3Exception as exc:
            raise ChannelTxError(
                f"{what}: tx {tx_hash.to_0x_hex()} not mined within {self._timeout:.0f} s: {exc}"
            ) from exc
        if receipt["status"] != 1:
            raise self._failed_on_chain(what, fn, account.address, value, receipt)
        logger.debug("%s: tx %s, gas used %d", what, tx_hash.to_0x_hex(), receipt["gasUsed"])
        return receipt

    def _failed_on_chain(
        self, what: str, fn: ContractFunction, sender: str, value: int, receipt: TxReceipt
    ) -> ChannelTxError:
        """Replay a reverted transaction as a call on its block to recover the reason."""
        where = (f"{what}: tx {receipt['transactionHash'].to_0x_hex()} reverted in block "
                 f"{receipt['blockNumber']} (gas used {receipt['gasUsed']})")
        try:
            fn.call({"from": Web3.to_checksum_address(sender), "value": Web3Wei(value)},
                    block_identifier=receipt["blockNumber"])
        except ContractLogicError as exc:
            refused = self._refused(what, exc)
            return ChannelTxError(f"{where}: {refused}", refused.error_name, refused.error_args)
        except Web3Exception as exc:
            return ChannelTxError(f"{where}; replaying it failed too: {exc}")
        return ChannelTxError(f"{where}; the reason could not be recovered by replaying it")

    def _refused(self, what: str, exc: ContractLogicError) -> ChannelTxError:
        payload = _revert_payload(exc)
        name, args = self._decode_error(payload)
        if name is None and len(payload) >= 4:
            return ChannelTxError(
                f"{what} refused with revert data 0x{payload.hex()}: selector 0x{payload[:4].hex()} "
                f"is none of {CONTRACT_NAME}'s errors (a contract it called, such as the token?)"
            )
        if name is None:
            return ChannelTxError(f"{what} refused: {exc.message or exc}")
        shown = ", ".join(f"{key}={_show(value)}" for key, value in args.items())
        return ChannelTxError(f"{what} refused by the contract: {name}({shown})", name, args)

    def _decode_error(self, payload: bytes) -> tuple[str | None, dict[str, Any]]:
        if len(payload) < 4:
            return None, {}
        selector, body = payload[:4], payload[4:]
        try:
            if selector == _ERROR_STRING:
                return "Error", {"reason": abi_decode(["string"], body)[0]}
            if selector == _PANIC:
                return "Panic", {"code": abi_decode(["uint256"], body)[0]}
            if selector in self._errors:
                name, names, types = self._errors[selector]
                values = abi_decode(types, body)
                return name, {
                    key: Web3.to_checksum_address(value) if kind == "address" else _plain(value)
                    for key, kind, value in zip(names, types, values, strict=True)
                }
        except Exception:  # a malformed payload: report the raw bytes
            logger.debug("undecodable revert payload %s", payload.hex())
        return None, {}

    def _decode_log(self, log: LogReceipt) -> ChannelEvent | None:
        if not log["topics"]:
            return None
        name = self._events.get(bytes(log["topics"][0]))
        if name is None:
            return None
        decoded: EventData = self._contract.events[name]().process_log(log)
        args = {key: _plain(value) for key, value in decoded["args"].items()}
        channel_id = args.get("channelId")
        return ChannelEvent(
            name=name,
            channel_id=ChannelId(channel_id) if isinstance(channel_id, bytes) else None,
            args=args,
            block_number=BlockNumber(int(log["blockNumber"])),
            tx_hash=bytes(log["transactionHash"]),
            log_index=int(log["logIndex"]),
        )


def _revert_payload(exc: ContractLogicError) -> bytes:
    """The revert data: a hex string (geth, Anvil, our node), a dict's ``data`` or the
    ``return data: 0x..`` in the message (Hardhat)."""
    data: Any = exc.data
    if isinstance(data, Mapping):
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x"):
        match = _RETURN_DATA_RE.search(str(exc.message or ""))
        data = match.group(1) if match else None
    try:
        return bytes.fromhex(data[2:]) if isinstance(data, str) else b""
    except ValueError:
        return b""


def _entries(abi: ABI) -> Sequence[Mapping[str, Any]]:
    return cast(Sequence[Mapping[str, Any]], abi)


def _abi_type(param: Mapping[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param.get("components", ()))
        return f"({inner}){kind[len('tuple'):]}"
    return kind


def _signature(entry: Mapping[str, Any]) -> str:
    return f"{entry['name']}({','.join(_abi_type(p) for p in entry.get('inputs', ()))})"


def _error_decoders(abi: ABI) -> dict[bytes, tuple[str, list[str], list[str]]]:
    decoders = {}
    for entry in _entries(abi):
        if entry.get("type") != "error":
            continue
        inputs: Sequence[Mapping[str, Any]] = cast(Sequence[Mapping[str, Any]], entry.get("inputs", ()))
        selector = bytes(keccak(_signature(entry).encode()))[:4]
        decoders[selector] = (
            str(entry["name"]),
            [str(p["name"]) for p in inputs],
            [_abi_type(p) for p in inputs],
        )
    return decoders


def _event_topic(signature: str) -> bytes:
    return bytes(keccak(signature.encode()))


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, tuple | list):
        return tuple(_plain(v) for v in value)
    return value


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)

