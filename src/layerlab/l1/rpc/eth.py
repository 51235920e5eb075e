"""The ``eth_`` namespace (and ``personal_sign``): chain state, blocks, transactions,
receipts, fees, calls, dev-account signing, logs and polled filters.

Semantics follow the Ethereum execution-apis spec (``eth_*``); ``eth_sign``,
``personal_sign`` and ``eth_signTypedData_v4`` (EIP-191, EIP-712) sign with the dev
accounts' keys. Installed filters expire when not polled for 5 minutes, as in geth.

geth's additions:

- ``eth_getProof(address, keys, block)`` (EIP-1186): the account's Merkle-Patricia proof
  in the state trie and each key's in the account's storage trie; keys as geth's
  ``decodeHash`` reads them (a key under 32 bytes comes back as a quantity).
- ``eth_getStorageValues({address: [slots]}, block)``: many slots at once (max 1024).
- ``eth_createAccessList(call, block)``: the EIP-2930 list an access-list tracer sees
  (less sender, recipient and precompiles), rerun until stable, and the ``gasUsed`` of
  the call with it.
- ``eth_blobBaseFee``: EIP-4844's ``fake_exponential`` on the head's excess blob gas.
- ``eth_simulateV1(options, block)``: calls in simulated blocks with block and state
  overrides (:mod:`~layerlab.l1.rpc.simulate`).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import rlp
from eth._utils.address import generate_contract_address
from eth.abc import BlockAPI, BlockHeaderAPI
from eth.constants import BLANK_ROOT_HASH
from eth.rlp.accounts import Account as AccountRLP
from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address
from rlp.sedes import big_endian_int
from trie import HexaryTrie

from layerlab.errors import InvalidTransaction
from layerlab.l1.chain.evm import MinedBlock
from layerlab.l1.node import MiningMode, Node
from layerlab.l1.rpc import codec, simulate, trace
from layerlab.l1.rpc.blobapi import blob_fee_history
from layerlab.l1.rpc.codec import (
    InvalidParams,
    hex_data,
    hex_int,
    parse_address,
    parse_bool,
    parse_data,
    parse_hash,
    parse_quantity,
    parse_tx_object,
)
from layerlab.l1.rpc.common import (
    InstalledFilter,
    LogFilter,
    Namespace,
    UnknownBlock,
    block_logs,
    parse_log_filter,
    parse_state_overrides,
    parse_storage_key,
)

MAX_LOG_BLOCK_RANGE = 10_000
MAX_STORAGE_SLOTS = 1024  # geth's maxGetStorageSlots
MAX_ACCESS_LIST_ROUNDS = 16
EMPTY_CODE_HASH = keccak(b"")


def parse_access_list(value: Any) -> dict[bytes, set[int]]:
    """An EIP-2930 access list ``[{address, storageKeys}]`` as address -> slots."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise InvalidParams("accessList: expected a list")
    out: dict[bytes, set[int]] = {}
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("storageKeys", []), list):
            raise InvalidParams("accessList: expected [{address, storageKeys}]")
        slots = out.setdefault(parse_address(entry.get("address"), "accessList.address"), set())
        slots.update(int.from_bytes(parse_hash(k, "accessList.storageKeys"), "big")
                     for k in entry.get("storageKeys", []))
    return out


def _proof(trie: HexaryTrie, key: bytes) -> list[str]:
    """The RLP of the nodes on the path to ``key``; as geth's, a node short enough (< 32
    bytes) to be embedded in its parent is not listed on its own."""
    encoded = [rlp.encode(node) for node in trie.get_proof(key)]
    return [hex_data(e) for i, e in enumerate(encoded) if i == 0 or len(e) >= 32]


def account_proof(db: Any, state_root: bytes, address: bytes,
                  slots: list[tuple[int, int]]) -> dict[str, Any]:
    """EIP-1186's ``eth_getProof`` result, as geth shapes it: the account's proof in the
    state trie (keyed by keccak(address)) and each slot's proof in its storage trie (keyed
    by keccak(slot)); a slot given in fewer than 32 bytes comes back as a quantity."""
    state_trie = HexaryTrie(db, state_root)
    encoded = state_trie.get(keccak(address))
    if encoded:
        account = rlp.decode(encoded, sedes=AccountRLP)
        nonce, balance = int(account.nonce), int(account.balance)
        storage_root, code_hash = bytes(account.storage_root), bytes(account.code_hash)
    else:  # geth: zero hashes for an account that does not exist
        nonce, balance, storage_root, code_hash = 0, 0, b"\x00" * 32, b"\x00" * 32
    has_storage = storage_root not in (BLANK_ROOT_HASH, b"\x00" * 32)
    storage_trie = HexaryTrie(db, storage_root) if has_storage else None
    storage = []
    for slot, length in slots:
        key = hex_data(slot.to_bytes(32, "big")) if length == 32 else hex_int(slot)
        if storage_trie is None:
            storage.append({"key": key, "value": "0x0", "proof": []})
            continue
        raw = storage_trie.get(keccak(slot.to_bytes(32, "big")))
        storage.append({"key": key, "value": hex_int(rlp.decode(raw, sedes=big_endian_int)
                                                     if raw else 0),
                        "proof": _proof(storage_trie, keccak(slot.to_bytes(32, "big")))})
    return {
        "address": to_checksum_address(address),
        "accountProof": _proof(state_trie, keccak(address)),
        "balance": hex_int(balance),
        "codeHash": hex_data(code_hash),
        "nonce": hex_int(nonce),
        "storageHash": hex_data(storage_root),
        "storageProof": storage,
    }


class EthApi(Namespace):
    """``eth_*`` and ``personal_sign``; keeps the installed filters."""

    prefixes = ("eth", "personal")

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.filters: dict[str, InstalledFilter] = {}
        self._filter_ids = itertools.count(1)
        node.block_listeners.append(self._on_block)
        node.pending_listeners.append(self._on_pending)

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
        try:
            key, _ = parse_storage_key(slot)
        except InvalidParams as exc:
            raise InvalidParams(f"unable to decode storage key: {exc}") from None
        value = self._state(block).get_storage(parse_address(address), key)
        return hex_data(int(value).to_bytes(32, "big"))

    def eth_getStorageValues(self, requests: Any, block: Any = "latest") -> dict[str, list[str]]:
        if not isinstance(requests, dict):
            raise InvalidParams("requests: expected an object of address -> [slots]")
        parsed: list[tuple[str, bytes, list[int]]] = []
        total = 0
        for address, slots in requests.items():
            if not isinstance(slots, list):
                raise InvalidParams(f"requests[{address}]: expected a list of slots")
            total += len(slots)
            if total > MAX_STORAGE_SLOTS:
                raise InvalidParams(f"too many slots (max {MAX_STORAGE_SLOTS})")
            parsed.append((address, parse_address(address, "address"),
                           [int.from_bytes(parse_hash(k, "slot"), "big") for k in slots]))
        if total == 0:
            raise InvalidParams("empty request")
        state = self._state(block)
        return {to_checksum_address(addr): [hex_data(int(state.get_storage(addr, k)).to_bytes(32, "big"))
                                            for k in keys]
                for _, addr, keys in parsed}

    def eth_getProof(self, address: Any, keys: Any, block: Any = "latest") -> dict[str, Any]:
        addr = parse_address(address)
        if not isinstance(keys, list):
            raise InvalidParams("storageKeys: expected a list")
        slots = [parse_storage_key(k) for k in keys]  # all parsed before any state is read
        header = self.state_header(block)
        return account_proof(self.node.chain.chain.chaindb.db, bytes(header.state_root),
                             addr, slots)

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
        return codec.format_receipts(block, receipts, senders,
                                     blob_gas_price=self.node.chain.get_blob_base_fee(header))

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
        return codec.format_receipts(block, receipts, senders, only=loc[1],
                                     blob_gas_price=self.node.chain.get_blob_base_fee(header))[0]

    def eth_getBlockReceipts(self, block: Any) -> list[dict[str, Any]] | None:
        header = self.resolve(block, required=False)
        return None if header is None else self._receipts_json(header)

    # -- fees ----------------------------------------------------------------------------
    def eth_gasPrice(self) -> str:
        return hex_int(self.node.next_base_fee() + 10**9)

    def eth_maxPriorityFeePerGas(self) -> str:
        return hex_int(10**9)

    def eth_blobBaseFee(self) -> str:
        return hex_int(self.node.chain.get_blob_base_fee(self.node.head))

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

    def eth_simulateV1(self, options: Any, block: Any = "latest") -> list[dict[str, Any]]:
        parsed = simulate.parse_sim_options(options)
        return simulate.simulate(self.node.chain, self.state_header(block), parsed)

    def eth_createAccessList(self, tx: Any, block: Any = "latest") -> dict[str, Any]:
        obj = parse_tx_object(tx)
        header = self.state_header(block)
        request = self._call_request(obj)
        initial = parse_access_list(tx.get("accessList") if isinstance(tx, dict) else None)
        state = self.node.chain.get_state(header)
        to = request.to or generate_contract_address(
            request.sender, int(state.get_nonce(request.sender)))
        exclude = {request.sender, to} | trace.precompile_addresses(state)
        access: dict[bytes, set[int]] = {a: s for a, s in initial.items() if a not in exclude}
        for _ in range(MAX_ACCESS_LIST_ROUNDS):  # geth: until the list stops changing
            tracer = trace.AccessListTracer(exclude, access)
            run = trace.run_call(self.node.chain, request, header, tracer, access_list=access)
            if tracer.list == access:
                break
            access = tracer.list
        computation = run["computation"]
        out: dict[str, Any] = {
            "accessList": [{"address": to_checksum_address(a),
                            "storageKeys": [hex_data(k.to_bytes(32, "big")) for k in sorted(s)]}
                           for a, s in sorted(access.items())],
            "gasUsed": hex_int(run["gasUsed"]),
        }
        if computation.is_error:
            out["error"] = trace.error_text(computation)
        return out

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
        return hex_data(self.node.dev.submit_unsigned(obj))

    # -- signing (dev accounts) ----------------------------------------------------------
    def _key(self, address: bytes) -> bytes:
        key = self.node.dev.dev_keys.get(address)
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
            out.extend(block_logs(header, chain.get_block(header),
                                        chain.get_receipts(header), f))
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
                    logs = block_logs(header, mined.block, mined.receipts, None)
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

