"""The L1 contract client every L2 service uses: calls, transactions, reverts, events.

An L2 reaches its L1 only through JSON-RPC (web3.py) and the contract artifacts
(DESIGN section 3), so the same service runs on our node, Hardhat's or Anvil's. This module
is the one place that knows how to:

- send a transaction signed locally with the sender's key, with its nonce taken from the
  pending pool under a lock (two senders in one process never collide) and a gas margin
  over the estimate (the estimate is for the current block; checks against
  ``block.number`` or ``block.timestamp`` may take another path in the including block);
- wait for the receipt within a bound, and when the transaction reverted, replay it as
  an ``eth_call`` on its block to recover the reason;
- decode a revert into the contract's custom error and its named arguments (Solidity ABI
  spec, "Errors"), ``Error(string)`` or ``Panic(uint256)``, whichever the node returns:
  a hex string (geth, Anvil, our node), a dict's ``data``, or Hardhat's ``return data:``
  text;
- decode the contract's logs into named events.

Protocol-specific clients (``channels/onchain.py``, the rollup's) add only their own
names on top.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

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

from layerlab.errors import LayerlabError
from layerlab.primitives.revert import decode_builtin_revert
from layerlab.primitives.types import BlockNumber

__all__ = [
    "GAS_MARGIN_DIVISOR",
    "RECEIPT_TIMEOUT_SECONDS",
    "ContractEvent",
    "L1Contract",
    "L1TxError",
    "ProtocolTxError",
    "compute_event_topic",
]

logger = logging.getLogger(__name__)

RECEIPT_TIMEOUT_SECONDS: Final = 60.0
"""Upper bound on waiting for one transaction to be mined."""
GAS_MARGIN_DIVISOR: Final = 10
"""Gas limit = estimate + estimate / 10."""

_RETURN_DATA_RE: Final = re.compile(r"return data: (0x[0-9a-fA-F]*)")


class L1TxError(LayerlabError):
    """An L1 call or transaction was refused (reverted) or could not be sent or mined.

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


class ProtocolTxError(L1TxError):
    """Base of a protocol's L1 error that is also its refusal type (``RollupTxError`` is a
    ``RollupError`` too): ``check`` is the contract's error name, or ``"l1"`` when the L1
    itself failed. Both bases' ``__init__`` take other arguments, so this one sets the
    fields itself."""

    def __init__(self, message: str, error_name: str | None = None,
                 error_args: Mapping[str, Any] | None = None) -> None:
        Exception.__init__(self, message)
        self.error_name = error_name
        self.error_args = dict(error_args or {})
        self.check = error_name or "l1"


@dataclass(frozen=True, slots=True)
class ContractEvent:
    """One decoded log: the Solidity event's name and its arguments by parameter name
    (bytes32 as ``bytes``, addresses checksummed, tuples as tuples), and where it is:
    its block (``block_hash`` tells a reorganised block apart from the one it replaced),
    transaction and index in the block."""

    name: str
    args: Mapping[str, Any]
    block_number: BlockNumber
    tx_hash: bytes
    log_index: int
    block_hash: bytes = b""


def compute_event_topic(signature: str) -> bytes:
    """``topics[0]`` of an event: ``keccak256("Name(type1,type2)")``."""
    return bytes(keccak(signature.encode()))


class L1Contract:
    """A deployed contract, bound to a node by web3.py, with typed failures.

    ``error`` is the :class:`L1TxError` subclass raised (a protocol's own, so callers can
    catch ``ChannelError`` or ``RollupError``); ``name`` appears in messages.
    """

    def __init__(self, w3: Web3, contract: Contract, *, name: str,
                 error: type[L1TxError] = L1TxError,
                 timeout: float = RECEIPT_TIMEOUT_SECONDS) -> None:
        self.w3 = w3
        self.contract = contract
        self.name = name
        self._error = error
        self._timeout = timeout
        self._send_lock = threading.Lock()
        self._errors = _error_decoders(contract.abi)
        self._events = {
            compute_event_topic(_signature(entry)): str(entry["name"])
            for entry in _entries(contract.abi) if entry.get("type") == "event"
        }

    @property
    def address(self) -> ChecksumAddress:
        return self.contract.address

    # -- reads ------------------------------------------------------------------------------
    def call(self, name: str, *args: Any, block: BlockIdentifier = "latest") -> Any:
        """A view call; a revert raises ``error`` with the decoded reason."""
        try:
            return self.contract.functions[name](*args).call(block_identifier=block)
        except ContractLogicError as exc:
            raise self.refused(name, exc) from exc
        except Web3Exception as exc:
            raise self._error(f"{self.name}.{name} call failed: {exc}") from exc

    def events(self, from_block: int, to_block: BlockIdentifier = "latest") -> list[ContractEvent]:
        """Decoded events of this contract in ``[from_block, to_block]``, in chain order."""
        try:
            logs = self.get_logs(from_block, to_block)
        except Web3Exception as exc:
            raise self._error(f"{self.name}: eth_getLogs from block {from_block} failed: {exc}") from exc
        return [event for log in logs if (event := self.decode_log(log)) is not None]

    def get_logs(self, from_block: int, to_block: BlockIdentifier = "latest") -> list[LogReceipt]:
        """The raw logs of this contract in ``[from_block, to_block]`` (``eth_getLogs``);
        web3.py's and the transport's exceptions pass through (the caller types them)."""
        params: FilterParams = {
            "address": self.address, "fromBlock": BlockNumber(from_block), "toBlock": to_block,
        }
        return self.w3.eth.get_logs(params)

    def decode_log(self, log: LogReceipt) -> ContractEvent | None:
        """The event of one log of this contract, or None for a log it does not declare."""
        if not log["topics"]:
            return None
        name = self._events.get(bytes(log["topics"][0]))
        if name is None:
            return None
        decoded: EventData = self.contract.events[name]().process_log(log)
        return ContractEvent(
            name=name,
            args={key: _plain(value) for key, value in decoded["args"].items()},
            block_number=BlockNumber(int(log["blockNumber"])),
            tx_hash=bytes(log["transactionHash"]),
            log_index=int(log["logIndex"]),
            block_hash=bytes(log["blockHash"]) if log.get("blockHash") else b"",
        )

    def receipt_events(self, receipt: TxReceipt) -> list[ContractEvent]:
        """This contract's events in one receipt."""
        return [event for log in receipt["logs"]
                if log["address"] == self.address and (event := self.decode_log(log)) is not None]

    # -- transactions -----------------------------------------------------------------------
    def transact(self, key: bytes, what: str, fn: ContractFunction, value: int = 0,
                 gas: int | None = None) -> TxReceipt:
        """Sign ``fn`` with ``key``, send it, wait for its receipt; raise ``error`` if it
        was refused at estimation, could not be sent or mined, or reverted.

        ``gas`` skips the estimate (an ``eth_estimateGas`` runs the call once more: for a
        large batch on a slow L1 that doubles the cost); the caller then bounds it."""
        account = Account.from_key(key)
        with self._send_lock:
            try:
                params: TxParams = {
                    "from": account.address,
                    "value": Web3Wei(value),
                    "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                }
                if gas is not None:
                    params["gas"] = gas
                tx = fn.build_transaction(params)
                if gas is None:
                    tx["gas"] = int(tx["gas"]) + int(tx["gas"]) // GAS_MARGIN_DIVISOR
                signed = account.sign_transaction(cast(dict[str, Any], tx))
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except ContractLogicError as exc:
                raise self.refused(what, exc) from exc
            except Web3Exception as exc:
                payload = _rpc_error_revert_data(exc)
                if payload:  # a revert in an error form web3.py does not classify
                    raise self._refused_with(what, payload, str(exc)) from exc
                raise self._error(f"{what} from {account.address} could not be sent: {exc}") from exc
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self._timeout)
        except Web3Exception as exc:
            raise self._error(
                f"{what}: tx {tx_hash.to_0x_hex()} not mined within {self._timeout:.0f} s: {exc}"
            ) from exc
        if receipt["status"] != 1:
            raise self._failed_on_chain(what, fn, account.address, value, receipt)
        logger.debug("%s: tx %s, gas used %d", what, tx_hash.to_0x_hex(), receipt["gasUsed"])
        return receipt

    def refused(self, what: str, exc: ContractLogicError) -> L1TxError:
        """The typed error for a revert: the custom error's name and arguments if known."""
        return self._refused_with(what, _revert_payload(exc), str(exc.message or exc))

    def _refused_with(self, what: str, payload: bytes, message: str) -> L1TxError:
        name, args = self.decode_error(payload)
        if name is None and len(payload) >= 4:
            return self._error(
                f"{what} refused with revert data 0x{payload.hex()}: selector 0x{payload[:4].hex()} "
                f"is none of {self.name}'s errors (a contract it called, such as a token?)"
            )
        if name is None:
            return self._error(f"{what} refused: {message}")
        shown = ", ".join(f"{key}={_show(value)}" for key, value in args.items())
        return self._error(f"{what} refused by the contract: {name}({shown})", name, args)

    def decode_error(self, payload: bytes) -> tuple[str | None, dict[str, Any]]:
        """A revert payload as (error name, arguments); (None, {}) when undecodable."""
        if len(payload) < 4:
            return None, {}
        selector, body = payload[:4], payload[4:]
        try:
            builtin = decode_builtin_revert(payload)
            if builtin is not None:
                return builtin[0], dict(builtin[1])
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

    def _failed_on_chain(self, what: str, fn: ContractFunction, sender: str, value: int,
                         receipt: TxReceipt) -> L1TxError:
        """Replay a reverted transaction as a call on its block to recover the reason."""
        where = (f"{what}: tx {receipt['transactionHash'].to_0x_hex()} reverted in block "
                 f"{receipt['blockNumber']} (gas used {receipt['gasUsed']})")
        try:
            fn.call({"from": Web3.to_checksum_address(sender), "value": Web3Wei(value)},
                    block_identifier=receipt["blockNumber"])
        except ContractLogicError as exc:
            refused = self.refused(what, exc)
            return self._error(f"{where}: {refused}", refused.error_name, refused.error_args)
        except Web3Exception as exc:
            return self._error(f"{where}; replaying it failed too: {exc}")
        return self._error(f"{where}; the reason could not be recovered by replaying it")


def _rpc_error_revert_data(exc: Web3Exception) -> bytes:
    """Revert data in a JSON-RPC error that web3.py left unclassified: Hardhat's node
    answers an ``eth_estimateGas`` whose call reverts inside a nested call (a custom error
    bubbled up from a verifier, say) with code -32603 and the revert bytes in
    ``error.data``, where web3.py only recognises code 3 or "execution reverted"."""
    response = getattr(exc, "rpc_response", None)
    error = response.get("error") if isinstance(response, Mapping) else None
    data = error.get("data") if isinstance(error, Mapping) else None
    if isinstance(data, Mapping):
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return b""
    try:
        return bytes.fromhex(data[2:])
    except ValueError:
        return b""


def _revert_payload(exc: ContractLogicError) -> bytes:
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
        inputs = cast(Sequence[Mapping[str, Any]], entry.get("inputs", ()))
        selector = bytes(keccak(_signature(entry).encode()))[:4]
        decoders[selector] = (str(entry["name"]), [str(p["name"]) for p in inputs],
                              [_abi_type(p) for p in inputs])
    return decoders


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
