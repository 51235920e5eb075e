"""The JSON-RPC method table: ``eth_``, ``net_``, ``web3_``, ``debug_`` and dev methods.

Each public method of :class:`RpcApi` whose name contains an underscore is an RPC method
of the same name (``eth_getBalance``...); ``hardhat_*`` names alias the ``anvil_*`` ones.
Methods take the raw JSON params and parse them with :mod:`layerlab.l1.rpc.codec`, so a
wrong type becomes error -32602 naming the parameter. Semantics follow the Ethereum
execution-apis spec and, for dev methods, Anvil and Hardhat.
"""

from __future__ import annotations

import inspect
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth.abc import BlockAPI, BlockHeaderAPI, ComputationAPI, SignedTransactionAPI
from eth.exceptions import Revert
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from layerlab import __version__
from layerlab.errors import ExecutionReverted, InvalidTransaction, LayerlabError
from layerlab.l1.chain.evm import AccountOverride, CallRequest, MinedBlock
from layerlab.l1.consensus.beacon import PosEngine
from layerlab.l1.consensus.merge import pos_of
from layerlab.l1.node import MiningMode, Node
from layerlab.l1.rpc import codec
from layerlab.l1.rpc.blobapi import blob_fee_history
from layerlab.l1.rpc.codec import (
    InvalidParams,
    hex_data,
    hex_int,
    parse_address,
    parse_block_id,
    parse_bool,
    parse_data,
    parse_hash,
    parse_quantity,
    parse_tx_object,
)

MAX_LOG_BLOCK_RANGE = 10_000
UINT64_MAX = 2**64 - 1  # header timestamps and account nonces are 64-bit (EIP-2681)
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


class UnknownBlock(LayerlabError):
    """A block named by number or hash does not exist (-32000, or null where allowed)."""


def decode_revert_reason(data: bytes) -> str:
    """``execution reverted: <reason>`` as geth words it, for Error(string) and Panic."""
    try:
        if data[:4] == ERROR_SELECTOR:
            (reason,) = abi_decode(["string"], data[4:])
            return f"execution reverted: {reason}"
        if data[:4] == PANIC_SELECTOR:
            (code,) = abi_decode(["uint256"], data[4:])
            return f"execution reverted: panic code {hex(code)}"
    except Exception:
        pass
    return "execution reverted"


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


def log_topics(log: Any) -> list[bytes]:
    return [int(t).to_bytes(32, "big") if isinstance(t, int) else bytes(t) for t in log.topics]


class RpcApi:
    """RPC methods bound to one :class:`Node`."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.filters: dict[str, InstalledFilter] = {}
        self._filter_ids = itertools.count(1)
        self.methods: dict[str, Callable[..., Any]] = {}
        for name, fn in inspect.getmembers(self, predicate=inspect.ismethod):
            if "_" in name and not name.startswith("_") and name.split("_")[0] in (
                "eth", "net", "web3", "debug", "evm", "anvil", "personal", "txpool", "layerlab",
                "admin",
            ):
                self.methods[name] = fn
                if name.startswith("anvil_"):
                    self.methods["hardhat_" + name[len("anvil_"):]] = fn
        node.block_listeners.append(self._on_block)
        node.pending_listeners.append(self._on_pending)

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
        spoofed = self.node.spoofed_sender(bytes(tx.hash))
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

    # -- web3 / net ----------------------------------------------------------------------
    def web3_clientVersion(self) -> str:
        return f"layerlab/v{__version__}/py-evm"

    def web3_sha3(self, data: Any) -> str:
        return hex_data(keccak(parse_data(data)))

    def net_version(self) -> str:
        return str(self.node.config.chain_id)

    def net_listening(self) -> bool:
        return True

    def net_peerCount(self) -> str:
        network = self.node.network
        return hex_int(len(network.peers) if network is not None else 0)

    # -- network and consensus (geth's admin_* names) --------------------------------------
    def _network(self) -> Any:
        if self.node.network is None:
            raise InvalidParams("this node runs without a p2p network (start it with --p2p-port)")
        return self.node.network

    @staticmethod
    def _peer_address(addr: Any) -> tuple[str, int]:
        if not isinstance(addr, str) or addr.count(":") != 1:
            raise InvalidParams(f"peer address must be 'host:port', got {addr!r}")
        host, port = addr.split(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidParams(f"peer address must be 127.0.0.1:<port>, got {addr!r}")
        return "127.0.0.1", int(port)

    def admin_peers(self) -> list[dict[str, Any]]:
        return list(self._network().status())

    def admin_nodeInfo(self) -> dict[str, Any]:
        net = self._network()
        return {"id": net.node_id.hex(), "listenAddr": f"{net.host}:{net.port}"}

    def admin_addPeer(self, addr: Any) -> bool:
        self._network().add_peer(*self._peer_address(addr))
        return True

    def admin_removePeer(self, addr: Any) -> bool:
        return bool(self._network().remove_peer(*self._peer_address(addr)))

    def _pos(self) -> PosEngine:
        pos_engine = pos_of(self.node.engine)
        if pos_engine is None:
            raise InvalidParams("this chain is not (yet) running proof of stake")
        return pos_engine

    def layerlab_validators(self) -> list[dict[str, Any]]:
        """The PoS validator registry at the head: balances, activation, exits, slashings."""
        return list(self._pos().validators())

    def layerlab_submitSlashing(self, evidence: Any) -> bool:
        """Submit slashing evidence (two conflicting signed blocks or votes, encoded as a
        consensus body); anyone may, as on the beacon chain. Gossiped if it is new."""
        from layerlab.l1.consensus.beacon import decode_slashing, encode_slashing

        item = decode_slashing(parse_data(evidence))
        new = bool(self._pos().on_slashing(item))
        if new and self.node.network is not None:
            self.node.network.broadcast_vote(6, encode_slashing(item))
        return new

    def layerlab_blockArrivals(self) -> dict[str, float]:
        """When this node first saw each recent block (unix seconds): built here or received.
        Nodes on one machine share a clock, so comparing nodes gives propagation times."""
        network = self._network()
        return {hex_data(h): t for h, t in list(network.block_arrival.items())[-2000:]}

    def layerlab_status(self) -> dict[str, Any]:
        """Head, finality, peers and fork statistics (what ``layerlab net status`` shows)."""
        node = self.node
        head = node.head
        out: dict[str, Any] = {
            "head": {"number": head.block_number, "hash": hex_data(head.hash),
                     "timestamp": head.timestamp},
            "consensus": "dev", "pending": len(node.pool),
            "reorgs": len(node.reorgs), "maxReorgDepth": max((d for d, _ in node.reorgs), default=0),
        }
        if node.engine is not None:
            out.update(node.engine.status())
            fin = node.engine.finality(head)
            out["finalized"] = {"kind": fin.kind, "number": fin.number,
                                "hash": hex_data(fin.block_hash) if fin.block_hash else None,
                                **fin.detail}
        if node.network is not None:
            out["peers"] = len(node.network.peers)
            out["p2p"] = {**node.network.stats, "port": node.network.port}
        if node.producer is not None:
            out["producer"] = node.producer.status()
        return out

    # -- chain state ---------------------------------------------------------------------
    def eth_chainId(self) -> str:
        return hex_int(self.node.config.chain_id)

    def eth_blockNumber(self) -> str:
        return hex_int(self.node.head.block_number)

    def eth_syncing(self) -> bool | dict[str, str]:
        """False, or how far behind the best peer this node is (geth's object form)."""
        network = self.node.network
        if network is None:
            return False
        current = self.node.head.block_number
        highest = max((p.head_number for p in network.peers.values()), default=0)
        if highest <= current + 1:  # one block behind is gossip in flight, not syncing
            return False
        return {"startingBlock": hex_int(current), "currentBlock": hex_int(current),
                "highestBlock": hex_int(highest)}

    def _miner_status(self) -> dict[str, Any] | None:
        producer = self.node.producer
        status: dict[str, Any] = producer.status() if producer is not None else {}
        miner = status.get("miner")
        return miner if isinstance(miner, dict) else None

    def eth_mining(self) -> bool:
        if self.node.engine is not None:
            miner = self._miner_status()
            return bool(miner and miner.get("enabled"))
        return self.node.mining is not MiningMode.MANUAL

    def eth_hashrate(self) -> str:
        miner = self._miner_status()
        return hex_int(int(miner.get("hashrate", 0)) if miner else 0)

    def eth_coinbase(self) -> str:
        return to_checksum_address(self.node.coinbase)

    def eth_accounts(self) -> list[str]:
        return [a.address for a in self.node.config.dev_accounts]

    def eth_getBalance(self, address: Any, block: Any = "latest") -> str:
        return hex_int(self._state(block).get_balance(parse_address(address)))

    def eth_getCode(self, address: Any, block: Any = "latest") -> str:
        return hex_data(self._state(block).get_code(parse_address(address)))

    def eth_getStorageAt(self, address: Any, slot: Any, block: Any = "latest") -> str:
        key = parse_quantity(slot, "slot") if not (isinstance(slot, str) and len(slot) == 66) \
            else int.from_bytes(parse_hash(slot, "slot"), "big")
        value = self._state(block).get_storage(parse_address(address), key)
        return hex_data(int(value).to_bytes(32, "big"))

    def eth_getTransactionCount(self, address: Any, block: Any = "latest") -> str:
        addr = parse_address(address)
        nonce = int(self._state(block).get_nonce(addr))
        if block == "pending":
            pooled = set(self.node.pool.sender_nonces(addr))
            while nonce in pooled:
                nonce += 1
        return hex_int(nonce)

    # -- blocks and transactions ---------------------------------------------------------
    def eth_getBlockByNumber(self, block: Any, full: Any = False) -> dict[str, Any] | None:
        header = self.resolve(block, required=False)
        return None if header is None else self._block_json(header, parse_bool(full, "full"))

    def eth_getBlockByHash(self, block_hash: Any, full: Any = False) -> dict[str, Any] | None:
        header = self.node.chain.get_header_by_hash(parse_hash(block_hash, "blockHash"))
        return None if header is None else self._block_json(header, parse_bool(full, "full"))

    def _block_of(self, block: Any, by_hash: bool) -> BlockAPI | None:
        header = (self.node.chain.get_header_by_hash(parse_hash(block, "blockHash")) if by_hash
                  else self.resolve(block, required=False))
        return None if header is None else self.node.chain.get_block(header)

    def eth_getBlockTransactionCountByNumber(self, block: Any) -> str | None:
        b = self._block_of(block, False)
        return None if b is None else hex_int(len(b.transactions))

    def eth_getBlockTransactionCountByHash(self, block_hash: Any) -> str | None:
        b = self._block_of(block_hash, True)
        return None if b is None else hex_int(len(b.transactions))

    def eth_getUncleCountByBlockNumber(self, block: Any) -> str:
        return "0x0"

    def eth_getUncleCountByBlockHash(self, block_hash: Any) -> str:
        return "0x0"

    def _tx_at(self, block: BlockAPI | None, index: Any) -> dict[str, Any] | None:
        i = parse_quantity(index, "index")
        if block is None or i >= len(block.transactions):
            return None
        tx = block.transactions[i]
        return codec.format_transaction(tx, self.sender_of(tx), block.header, i)

    def eth_getTransactionByBlockNumberAndIndex(self, block: Any, index: Any) -> Any:
        return self._tx_at(self._block_of(block, False), index)

    def eth_getTransactionByBlockHashAndIndex(self, block_hash: Any, index: Any) -> Any:
        return self._tx_at(self._block_of(block_hash, True), index)

    def eth_getTransactionByHash(self, tx_hash: Any) -> dict[str, Any] | None:
        h = parse_hash(tx_hash, "transactionHash")
        loc = self.node.chain.get_transaction_location(h)
        if loc is None:
            ptx = self.node.pool.get(h)
            return None if ptx is None else codec.format_transaction(ptx.tx, ptx.sender)
        header = self.node.chain.get_header_by_number(loc[0])
        if header is None:
            return None
        return self._tx_at(self.node.chain.get_block(header), loc[1])

    def _receipts_json(self, header: BlockHeaderAPI) -> list[dict[str, Any]]:
        block = self.node.chain.get_block(header)
        receipts = self.node.chain.get_receipts(header)
        senders = [self.sender_of(tx) for tx in block.transactions]
        return codec.format_receipts(block, receipts, senders)

    def eth_getTransactionReceipt(self, tx_hash: Any) -> dict[str, Any] | None:
        h = parse_hash(tx_hash, "transactionHash")
        loc = self.node.chain.get_transaction_location(h)
        if loc is None:
            return None
        header = self.node.chain.get_header_by_number(loc[0])
        if header is None:
            return None
        block = self.node.chain.get_block(header)
        receipts = self.node.chain.get_receipts(header)
        # only this receipt's sender is needed; earlier ones only contribute gas and logs
        senders = [b""] * len(block.transactions)
        senders[loc[1]] = self.sender_of(block.transactions[loc[1]])
        return codec.format_receipts(block, receipts, senders, only=loc[1])[0]

    def eth_getBlockReceipts(self, block: Any) -> list[dict[str, Any]] | None:
        header = self.resolve(block, required=False)
        return None if header is None else self._receipts_json(header)

    # -- fees ----------------------------------------------------------------------------
    def eth_gasPrice(self) -> str:
        return hex_int(self.node.next_base_fee() + 10**9)

    def eth_maxPriorityFeePerGas(self) -> str:
        return hex_int(10**9)

    def eth_blobBaseFee(self) -> str:
        return hex_int(self.node.next_blob_base_fee())

    def eth_feeHistory(self, count: Any, newest: Any, percentiles: Any = None) -> dict[str, Any]:
        n = min(parse_quantity(count, "blockCount"), 1024)
        newest_header = self.resolve(newest)
        assert newest_header is not None
        last = newest_header.block_number
        first = max(0, last - n + 1)
        pct = percentiles or []
        if not isinstance(pct, list) or any(
            not isinstance(p, int | float) or not 0 <= p <= 100 for p in pct
        ) or pct != sorted(pct):
            raise InvalidParams("rewardPercentiles: expected an increasing list within [0, 100]")
        base_fees, ratios, rewards = [], [], []
        for number in range(first, last + 1):
            header = self.node.chain.get_header_by_number(number)
            if header is None:
                break
            base_fees.append(hex_int(header.base_fee_per_gas))
            ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
            if pct:
                rewards.append([hex_int(r) for r in self._rewards(header, pct)])
        from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas

        last_header = self.node.chain.get_header_by_number(last)
        assert last_header is not None
        base_fees.append(hex_int(calculate_expected_base_fee_per_gas(last_header)))
        out: dict[str, Any] = {
            "oldestBlock": hex_int(first),
            "baseFeePerGas": base_fees,
            "gasUsedRatio": ratios,
            **blob_fee_history(self.node.chain, first, last),
        }
        if pct:
            out["reward"] = rewards
        return out

    def _rewards(self, header: BlockHeaderAPI, percentiles: list[float]) -> list[int]:
        block = self.node.chain.get_block(header)
        if not block.transactions:
            return [0] * len(percentiles)
        receipts = self.node.chain.get_receipts(header)
        items = []
        prev = 0
        for tx, r in zip(block.transactions, receipts, strict=True):
            tip = codec.effective_gas_price(tx, header.base_fee_per_gas) - header.base_fee_per_gas
            items.append((tip, r.gas_used - prev))
            prev = r.gas_used
        items.sort()
        total = sum(g for _, g in items) or 1
        out = []
        for p in percentiles:
            threshold = total * p / 100
            acc = 0
            chosen = items[-1][0]
            for tip, gas in items:
                acc += gas
                if acc >= threshold:
                    chosen = tip
                    break
            out.append(chosen)
        return out

    # -- execution -----------------------------------------------------------------------
    def eth_call(self, tx: Any, block: Any = "latest", overrides: Any = None) -> str:
        obj = parse_tx_object(tx)
        header = self.state_header(block)
        computation = self.node.chain.call(self._call_request(obj), header,
                                           parse_state_overrides(overrides))
        self._raise_if_failed(computation)
        return hex_data(computation.output)

    def eth_estimateGas(self, tx: Any, block: Any = "latest") -> str:
        obj = parse_tx_object(tx)
        header = self.state_header(block)
        request = self._call_request(obj)
        gas = self.node.chain.estimate_gas(request, header)
        if gas < 0:
            self._raise_if_failed(self.node.chain.call(request, header))
        return hex_int(gas)

    def eth_sendRawTransaction(self, raw: Any) -> str:
        return hex_data(self.node.submit_raw(parse_data(raw, "transaction")))

    def eth_sendTransaction(self, tx: Any) -> str:
        obj = parse_tx_object(tx)
        if "from" not in obj:
            raise InvalidParams("transaction.from is required")
        return hex_data(self.node.submit_unsigned(obj))

    # -- signing (dev accounts) ----------------------------------------------------------
    def _key(self, address: bytes) -> bytes:
        key = self.node.dev_keys.get(address)
        if key is None:
            raise InvalidTransaction("unknown-account", f"unknown account {to_checksum_address(address)}")
        return key

    def eth_sign(self, address: Any, message: Any) -> str:
        key = self._key(parse_address(address))
        signed = Account.sign_message(encode_defunct(primitive=parse_data(message)), key)
        return hex_data(signed.signature)

    def personal_sign(self, message: Any, address: Any) -> str:
        return self.eth_sign(address, message)

    def eth_signTypedData_v4(self, address: Any, typed: Any) -> str:
        import json

        key = self._key(parse_address(address))
        data = json.loads(typed) if isinstance(typed, str) else typed
        if not isinstance(data, dict):
            raise InvalidParams("typedData: expected an EIP-712 object or its JSON")
        try:
            signable = encode_typed_data(full_message=data)
        except Exception as exc:
            raise InvalidParams(f"typedData: {exc}") from exc
        return hex_data(Account.sign_message(signable, key).signature)

    # -- logs and filters ----------------------------------------------------------------
    def _range(self, f: LogFilter) -> tuple[int, int]:
        def number(ident: str | int | bytes) -> int:
            if isinstance(ident, int):
                return ident
            if ident == "earliest":
                return 0
            return int(self.node.head.block_number)

        lo, hi = number(f.from_block), number(f.to_block)
        return lo, min(hi, self.node.head.block_number)

    def collect_logs(self, f: LogFilter) -> list[dict[str, Any]]:
        chain = self.node.chain
        if f.block_hash is not None:
            header = chain.get_header_by_hash(f.block_hash)
            if header is None:
                raise UnknownBlock(f"unknown block {hex_data(f.block_hash)}")
            headers = [header]
        else:
            lo, hi = self._range(f)
            if hi - lo + 1 > MAX_LOG_BLOCK_RANGE:
                raise InvalidParams(
                    f"block range {hi - lo + 1} exceeds the limit {MAX_LOG_BLOCK_RANGE}"
                )
            headers = [h for n in range(lo, hi + 1)
                       if (h := chain.get_header_by_number(n)) is not None]
        out: list[dict[str, Any]] = []
        for header in headers:
            if header.bloom == 0:
                continue
            out.extend(self._block_logs(header, chain.get_block(header),
                                        chain.get_receipts(header), f))
        return out

    def _block_logs(self, header: BlockHeaderAPI, block: BlockAPI, receipts: Any,
                    f: LogFilter | None) -> list[dict[str, Any]]:
        out = []
        index = 0
        for i, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
            for log in receipt.logs:
                if f is None or f.matches(bytes(log.address), log_topics(log)):
                    out.append(codec.format_log(log, header, tx.hash, i, index))
                index += 1
        return out

    def eth_getLogs(self, flt: Any = None) -> list[dict[str, Any]]:
        return self.collect_logs(parse_log_filter(flt))

    def _install(self, flt: InstalledFilter) -> str:
        fid = hex_int(next(self._filter_ids))
        self.filters[fid] = flt
        return fid

    def eth_newFilter(self, flt: Any = None) -> str:
        return self._install(InstalledFilter("logs", parse_log_filter(flt)))

    def eth_newBlockFilter(self) -> str:
        return self._install(InstalledFilter("block"))

    def eth_newPendingTransactionFilter(self) -> str:
        return self._install(InstalledFilter("pending"))

    def eth_uninstallFilter(self, fid: Any) -> bool:
        return self.filters.pop(str(fid), None) is not None

    def _filter(self, fid: Any) -> InstalledFilter:
        flt = self.filters.get(str(fid))
        if flt is None:
            raise UnknownBlock("filter not found")
        flt.last_poll = time.monotonic()
        return flt

    def eth_getFilterChanges(self, fid: Any) -> list[Any]:
        flt = self._filter(fid)
        changes, flt.changes = flt.changes, []
        return changes

    def eth_getFilterLogs(self, fid: Any) -> list[Any]:
        flt = self._filter(fid)
        if flt.criteria is None:
            raise InvalidParams("filter is not a log filter")
        return self.collect_logs(flt.criteria)

    def _on_block(self, mined: MinedBlock) -> None:
        header = mined.block.header
        logs: list[dict[str, Any]] | None = None
        stale = time.monotonic() - 300
        for fid, flt in list(self.filters.items()):
            if flt.last_poll < stale:  # geth drops filters not polled for 5 minutes
                del self.filters[fid]
            elif flt.kind == "block":
                flt.changes.append(hex_data(header.hash))
            elif flt.kind == "logs" and flt.criteria is not None:
                if logs is None:
                    logs = self._block_logs(header, mined.block, mined.receipts, None)
                c = flt.criteria
                lo, hi = self._range(c)
                if c.block_hash is None and lo <= header.block_number <= max(hi, lo):
                    flt.changes.extend(
                        entry for entry in logs
                        if c.matches(parse_address(entry["address"]),
                                     [parse_hash(t) for t in entry["topics"]])
                    )

    def _on_pending(self, tx_hash: bytes) -> None:
        for flt in self.filters.values():
            if flt.kind == "pending":
                flt.changes.append(hex_data(tx_hash))

    # -- txpool --------------------------------------------------------------------------
    def txpool_status(self) -> dict[str, str]:
        pending = sum(len(v) for v in self.node.pool.pending(self.node.reader()).values())
        return {"pending": hex_int(pending), "queued": hex_int(len(self.node.pool) - pending)}

    # -- debug ---------------------------------------------------------------------------
    def debug_traceTransaction(self, tx_hash: Any, options: Any = None) -> dict[str, Any]:
        from layerlab.l1.rpc.trace import trace_transaction

        h = parse_hash(tx_hash, "transactionHash")
        loc = self.node.chain.get_transaction_location(h)
        if loc is None:
            raise UnknownBlock(f"transaction {hex_data(h)} not found")
        opts = options if isinstance(options, dict) else {}
        return trace_transaction(self.node.chain, loc[0], loc[1], opts)

    # -- dev methods (Anvil / Hardhat) ---------------------------------------------------
    def evm_mine(self, timestamp: Any = None) -> str:
        ts = None
        if isinstance(timestamp, dict):
            ts = timestamp.get("timestamp")
            blocks = parse_quantity(timestamp.get("blocks", 1), "blocks")
        else:
            blocks = 1
            if timestamp is not None:
                ts = timestamp
        if ts is not None:
            # as Hardhat and Anvil: the clock carries on from the chosen timestamp
            self.node.set_next_timestamp(parse_quantity(ts, "timestamp", UINT64_MAX))
        for _ in range(min(blocks, 10_000)):
            self.node.mine()
        return "0x0"

    def anvil_mine(self, count: Any = None, interval: Any = None) -> None:
        n = parse_quantity(count, "count") if count is not None else 1
        if n > 100_000:
            raise InvalidParams(f"count {n} exceeds 100000 blocks")
        step = parse_quantity(interval, "interval", UINT64_MAX) if interval is not None else 1
        if self.node.head.timestamp + n * step > UINT64_MAX:
            raise InvalidParams(f"{n} blocks {step} s apart overflow the 64-bit timestamp")
        for _ in range(n):
            if interval is not None and step:
                self.node.set_next_timestamp(self.node.head.timestamp + step)
            self.node.mine()

    def evm_snapshot(self) -> str:
        return hex_int(self.node.snapshot())

    def evm_revert(self, snapshot_id: Any) -> bool:
        return self.node.revert(parse_quantity(snapshot_id, "snapshotId"))

    def evm_increaseTime(self, seconds: Any) -> str:
        value = parse_quantity(seconds, "seconds", UINT64_MAX)
        if int(time.time()) + self.node.meta.time_offset + value > UINT64_MAX:
            raise InvalidParams(f"seconds: {value} moves the clock past the 64-bit timestamp")
        return hex_int(self.node.increase_time(value))

    def evm_setNextBlockTimestamp(self, timestamp: Any) -> None:
        self.node.set_next_timestamp(parse_quantity(timestamp, "timestamp", UINT64_MAX))

    def evm_setAutomine(self, enabled: Any) -> None:
        self.node.mining = MiningMode.AUTO if parse_bool(enabled, "enabled") else MiningMode.MANUAL
        if self.node.mining is MiningMode.AUTO and len(self.node.pool):
            self.node.mine()

    def evm_setIntervalMining(self, ms: Any) -> None:
        interval = parse_quantity(ms, "interval", UINT64_MAX)
        if interval == 0:
            self.node.mining = MiningMode.MANUAL
            self.node.block_time = None
        else:
            self.node.mining = MiningMode.INTERVAL
            self.node.block_time = interval / 1000

    def anvil_setBalance(self, address: Any, balance: Any) -> bool:
        addr, value = parse_address(address), parse_quantity(balance, "balance")
        self.node.edit_state(lambda s: s.set_balance(addr, value))
        return True

    def anvil_setCode(self, address: Any, code: Any) -> bool:
        addr, data = parse_address(address), parse_data(code, "code")
        self.node.edit_state(lambda s: s.set_code(addr, data))
        return True

    def anvil_setNonce(self, address: Any, nonce: Any) -> bool:
        addr, value = parse_address(address), parse_quantity(nonce, "nonce", UINT64_MAX)
        self.node.edit_state(lambda s: s.set_nonce(addr, value))
        return True

    def anvil_setStorageAt(self, address: Any, slot: Any, value: Any) -> bool:
        addr = parse_address(address)
        key = int.from_bytes(_word(parse_data(slot, "slot"), "slot"), "big")
        word = int.from_bytes(_word(parse_data(value, "value"), "value"), "big")
        self.node.edit_state(lambda s: s.set_storage(addr, key, word))
        return True

    def anvil_impersonateAccount(self, address: Any) -> None:
        self.node.impersonated.add(parse_address(address))

    def anvil_stopImpersonatingAccount(self, address: Any) -> None:
        self.node.impersonated.discard(parse_address(address))

    def anvil_setAutomine(self, enabled: Any) -> None:
        self.evm_setAutomine(enabled)

    def anvil_nodeInfo(self) -> dict[str, Any]:
        return {
            "currentBlockNumber": hex_int(self.node.head.block_number),
            "currentBlockTimestamp": self.node.head.timestamp,
            "chainId": self.node.config.chain_id,
            "hardFork": "cancun",
            "miningMode": self.node.mining.value,
        }


def _word(data: bytes, name: str) -> bytes:
    if len(data) > 32:
        raise InvalidParams(f"{name}: a storage word is at most 32 bytes, got {len(data)}")
    return data
