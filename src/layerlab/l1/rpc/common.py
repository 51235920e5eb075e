"""What the JSON-RPC namespaces share: block resolution, filters, state overrides, errors.

:class:`Namespace` is the base of each namespace module (:mod:`~layerlab.l1.rpc.eth`,
:mod:`~layerlab.l1.rpc.net`, :mod:`~layerlab.l1.rpc.debug`, :mod:`~layerlab.l1.rpc.txpool`,
:mod:`~layerlab.l1.rpc.dev`, :mod:`~layerlab.l1.rpc.admin`): each public method whose name
starts with one of the class's ``prefixes`` and an underscore is the RPC method of that
name. It also holds the helpers every namespace reads the chain with: a block parameter
(number, tag or EIP-1898 hash) resolved to a header, the state a read at that block sees,
the sender of a (possibly impersonated) transaction, a call object as a
:class:`~layerlab.l1.chain.evm.CallRequest`, a failed computation raised as geth reports it.
The parsers of log filters (``eth_getLogs``, ``eth_newFilter``, the ``logs`` subscription)
and of geth's state-override sets (``eth_call`` and the tracers) live here too.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from eth.abc import BlockAPI, BlockHeaderAPI, ComputationAPI, SignedTransactionAPI
from eth.exceptions import Revert

from layerlab.errors import ExecutionReverted, InvalidTransaction, LayerlabError
from layerlab.l1.chain.evm import AccountOverride, CallRequest
from layerlab.l1.node import Node
from layerlab.l1.rpc import codec
from layerlab.l1.rpc.codec import (
    InvalidParams,
    hex_data,
    parse_address,
    parse_block_id,
    parse_data,
    parse_hash,
    parse_quantity,
)
from layerlab.primitives.revert import decode_builtin_revert

UINT64_MAX = 2**64 - 1  # header timestamps and account nonces are 64-bit (EIP-2681)


class UnknownBlock(LayerlabError):
    """A block named by number or hash does not exist (-32000, or null where allowed)."""


def decode_revert_reason(data: bytes) -> str:
    """``execution reverted: <reason>`` as geth words it, for Error(string) and Panic."""
    decoded = decode_builtin_revert(data)
    if decoded is None:
        return "execution reverted"
    name, args = decoded
    if name == "Error":
        return f"execution reverted: {args['reason']}"
    return f"execution reverted: panic code {hex(int(args['code']))}"


@dataclass
class LogFilter:
    from_block: str | int | bytes
    to_block: str | int | bytes
    addresses: list[bytes]
    topics: list[list[bytes] | None]
    block_hash: bytes | None = None

    def matches(self, address: bytes, topics: list[bytes]) -> bool:
        if self.addresses and address not in self.addresses:
            return False
        for i, wanted in enumerate(self.topics):
            if wanted is None:
                continue
            if i >= len(topics) or topics[i] not in wanted:
                return False
        return True


@dataclass
class InstalledFilter:
    kind: str  # "block" | "pending" | "logs"
    criteria: LogFilter | None = None
    changes: list[Any] = field(default_factory=list)
    last_poll: float = field(default_factory=time.monotonic)


def parse_log_filter(value: Any) -> LogFilter:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidParams("filter: expected an object")
    addresses: list[bytes] = []
    raw_addr = value.get("address")
    if isinstance(raw_addr, list):
        addresses = [parse_address(a, "filter.address") for a in raw_addr]
    elif raw_addr is not None:
        addresses = [parse_address(raw_addr, "filter.address")]
    topics: list[list[bytes] | None] = []
    raw_topics = value.get("topics") or []
    if not isinstance(raw_topics, list):
        raise InvalidParams("filter.topics: expected a list")
    for t in raw_topics:
        if t is None:
            topics.append(None)
        elif isinstance(t, list):
            topics.append([parse_hash(x, "filter.topics") for x in t] or None)
        else:
            topics.append([parse_hash(t, "filter.topics")])
    block_hash = value.get("blockHash")
    if block_hash is not None and (value.get("fromBlock") is not None
                                   or value.get("toBlock") is not None):
        raise InvalidParams(  # geth's FilterCriteria.UnmarshalJSON wording
            "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other")
    return LogFilter(
        from_block=parse_block_id(value.get("fromBlock", "latest"), "filter.fromBlock"),
        to_block=parse_block_id(value.get("toBlock", "latest"), "filter.toBlock"),
        addresses=addresses,
        topics=topics,
        block_hash=parse_hash(block_hash, "filter.blockHash") if block_hash else None,
    )


def parse_state_overrides(value: Any) -> tuple[AccountOverride, ...]:
    """geth's state-override set: ``{address: {balance, nonce, code, state | stateDiff}}``."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InvalidParams("state overrides: expected an object keyed by address")
    out = []
    for address, fields in value.items():
        name = f"overrides[{address}]"
        if not isinstance(fields, dict):
            raise InvalidParams(f"{name}: expected an object")
        unknown = set(fields) - {"balance", "nonce", "code", "state", "stateDiff"}
        if unknown:
            raise InvalidParams(f"{name}: unknown fields {sorted(unknown)}")
        if "state" in fields and "stateDiff" in fields:
            raise InvalidParams(f"{name}: state and stateDiff are mutually exclusive")

        balance = fields.get("balance")
        nonce = fields.get("nonce")
        code = fields.get("code")
        out.append(AccountOverride(
            address=parse_address(address, name),
            balance=parse_quantity(balance, f"{name}.balance") if balance is not None else None,
            nonce=parse_quantity(nonce, f"{name}.nonce") if nonce is not None else None,
            code=parse_data(code, f"{name}.code") if code is not None else None,
            state=_slots(fields["state"], f"{name}.state") if "state" in fields else None,
            state_diff=(_slots(fields["stateDiff"], f"{name}.stateDiff")
                        if "stateDiff" in fields else ()),
        ))
        if out[-1].balance is not None and out[-1].balance >= 2**256:
            raise InvalidParams(f"{name}.balance exceeds uint256")
        if out[-1].nonce is not None and out[-1].nonce >= 2**64:
            raise InvalidParams(f"{name}.nonce exceeds uint64")
    return tuple(out)


def _slots(raw: Any, name: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, dict):
        raise InvalidParams(f"{name}: expected an object of slot -> value")
    return tuple((int.from_bytes(parse_hash(k, name), "big"), int.from_bytes(parse_hash(v, name), "big"))
                 for k, v in raw.items())


def parse_storage_key(value: Any) -> tuple[int, int]:
    """A storage slot as geth's ``decodeHash`` reads it: ``0x`` optional, an odd digit count
    padded, at most 32 bytes. Returns (slot, length of the input in bytes)."""
    if not isinstance(value, str):
        raise InvalidParams("hex string invalid")
    digits = value[2:] if value.startswith(("0x", "0X")) else value
    if len(digits) % 2:
        digits = "0" + digits
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raise InvalidParams("hex string invalid") from None
    if not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise InvalidParams("hex string invalid")
    if len(raw) > 32:
        raise InvalidParams("hex string too long, want at most 32 bytes")
    return int.from_bytes(raw, "big"), len(raw)


def log_topics(log: Any) -> list[bytes]:
    return [int(t).to_bytes(32, "big") if isinstance(t, int) else bytes(t) for t in log.topics]



def block_logs(header: BlockHeaderAPI, block: BlockAPI, receipts: Any,
               f: LogFilter | None) -> list[dict[str, Any]]:
    """The logs of one block as JSON, those matching ``f`` (all of them if None)."""
    out = []
    index = 0
    for i, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
        for log in receipt.logs:
            if f is None or f.matches(bytes(log.address), log_topics(log)):
                out.append(codec.format_log(log, header, tx.hash, i, index))
            index += 1
    return out


class Namespace:
    """One JSON-RPC namespace bound to a node; subclasses list their method ``prefixes``."""

    prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, node: Node) -> None:
        self.node = node

    @classmethod
    def rpc_functions(cls) -> dict[str, Callable[..., Any]]:
        """RPC name -> unbound function, for every method this namespace serves."""
        return {
            name: fn for name, fn in inspect.getmembers(cls, predicate=inspect.isfunction)
            if not name.startswith("_") and name.split("_")[0] in cls.prefixes
            and "_" in name
        }

    def methods(self) -> dict[str, Callable[..., Any]]:
        """RPC name -> bound method."""
        return {name: fn.__get__(self) for name, fn in self.rpc_functions().items()}

    # -- helpers -------------------------------------------------------------------------
    def _settled_number(self, tag: str) -> int:
        """The ``finalized`` / ``safe`` block under consensus (EIP-1898 tags, as post-Merge
        clients serve them): PoS: the finalized / justified checkpoint block; PoW: the
        block ``k`` confirmations deep for both."""
        assert self.node.engine is not None
        fin = self.node.engine.finality(self.node.head)
        return fin.safe_number if tag == "safe" and fin.safe_number >= 0 else fin.number

    def resolve(self, block_id: Any, *, required: bool = True) -> BlockHeaderAPI | None:
        ident = parse_block_id(block_id)
        chain = self.node.chain
        if isinstance(ident, str):
            if ident == "earliest":
                header = chain.get_header_by_number(0)
            elif ident in ("finalized", "safe") and self.node.engine is not None:
                header = chain.get_header_by_number(self._settled_number(ident))
            else:
                header = self.node.head
        elif isinstance(ident, bytes):
            header = chain.get_header_by_hash(ident)
        else:
            header = chain.get_header_by_number(ident)
        if header is None and required:
            raise UnknownBlock(f"header not found: {block_id}")
        return header

    def state_header(self, block_id: Any) -> BlockHeaderAPI:
        """The header whose state a read at ``block_id`` sees (dev edits apply to the head)."""
        header = self.resolve(block_id)
        assert header is not None
        if header.hash == self.node.head.hash:
            return self.node.latest_header()
        return header

    def _state(self, block_id: Any) -> Any:
        return self.node.chain.get_state(self.state_header(block_id))

    def sender_of(self, tx: SignedTransactionAPI) -> bytes:
        spoofed = self.node.dev.spoofed_sender(bytes(tx.hash))
        return spoofed if spoofed is not None else bytes(tx.sender)

    def _block_json(self, header: BlockHeaderAPI, full: bool) -> dict[str, Any]:
        block = self.node.chain.get_block(header)
        out = codec.format_header(header, size=self.node.chain.get_block_size(header))
        if full:
            out["transactions"] = [
                codec.format_transaction(tx, self.sender_of(tx), header, i)
                for i, tx in enumerate(block.transactions)
            ]
        else:
            out["transactions"] = [hex_data(tx.hash) for tx in block.transactions]
        return out

    def _call_request(self, obj: dict[str, Any]) -> CallRequest:
        return CallRequest(
            sender=obj.get("from", b"\x00" * 20),
            to=obj.get("to", b""),
            data=obj.get("data", b""),
            value=obj.get("value", 0),
            gas=obj.get("gas"),
            gas_price=obj.get("gasPrice", 0),
        )

    @staticmethod
    def _raise_if_failed(computation: ComputationAPI) -> None:
        if not computation.is_error:
            return
        error = computation.error
        if isinstance(error, Revert):
            data = bytes(computation.output)
            raise ExecutionReverted(decode_revert_reason(data), data)
        raise InvalidTransaction("execution-failed", f"execution failed: {error}")

