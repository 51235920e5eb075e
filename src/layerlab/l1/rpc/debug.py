"""The ``debug_`` namespace (geth's): tracing and raw encodings.

Tracing (geth docs, "debug namespace" and "Built-in tracers"; formats in
:mod:`layerlab.l1.rpc.trace`): ``options.tracer`` omitted gives the struct logger,
``"callTracer"`` the call tree, ``"prestateTracer"`` the touched pre-state.

- ``debug_traceTransaction(hash, options)``: a mined transaction, replayed on its block's
  state after the transactions before it.
- ``debug_traceCall(call, block, options)``: a call as ``eth_call`` runs it, on the state
  of ``block``; ``options.stateOverrides`` as ``eth_call``'s third parameter.
- ``debug_traceBlockByNumber(number, options)`` / ``debug_traceBlockByHash(hash, options)``:
  every transaction of the block, ``[{txHash, result}]``; an unknown block is geth's
  ``block #N not found`` / ``block 0x.. not found`` (-32000).

Raw encodings (what geth's ``debug_getRaw*`` return):

- ``debug_getRawHeader(block)``: the header's RLP;
- ``debug_getRawBlock(block)``: the block's RLP (header, transactions, uncles, withdrawals);
- ``debug_getRawReceipts(block)``: each receipt's consensus encoding, EIP-2718 typed
  receipts as ``type || rlp(...)`` (the receipt trie's values);
- ``debug_getRawTransaction(hash)``: the transaction's EIP-2718 envelope (legacy: its RLP),
  ``0x`` for an unknown hash as geth.
"""

from __future__ import annotations

from typing import Any

import rlp
from eth.abc import BlockHeaderAPI

from layerlab.l1.chain.blockrlp import encode_block
from layerlab.l1.rpc import trace
from layerlab.l1.rpc.codec import (
    InvalidParams,
    hex_data,
    parse_block_id,
    parse_hash,
    parse_tx_object,
)
from layerlab.l1.rpc.common import Namespace, UnknownBlock, parse_state_overrides


def _options(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise InvalidParams("options: expected an object")
    return options


class DebugApi(Namespace):
    prefixes = ("debug",)

    def _traced_header(self, block: Any) -> BlockHeaderAPI:
        ident = parse_block_id(block)
        header = self.resolve(block, required=False)
        if header is None:
            if isinstance(ident, int):
                raise UnknownBlock(f"block #{ident} not found")
            raise UnknownBlock(f"block {block if isinstance(block, str) else ident!r} not found")
        return header

    # -- tracing ---------------------------------------------------------------------------
    def debug_traceTransaction(self, tx_hash: Any, options: Any = None) -> dict[str, Any]:
        h = parse_hash(tx_hash, "transactionHash")
        loc = self.node.chain.get_transaction_location(h)
        if loc is None:
            raise UnknownBlock(f"transaction {hex_data(h)} not found")
        opts = options if isinstance(options, dict) else {}
        header = self.node.chain.get_header_by_number(loc[0])
        tx = self.node.chain.get_block(header).transactions[loc[1]] if header else None
        sender = self.sender_of(tx) if tx is not None else b""
        return trace.trace_transaction(self.node.chain, loc[0], loc[1], opts, sender)

    def debug_traceCall(self, tx: Any, block: Any = "latest", options: Any = None) -> Any:
        obj = parse_tx_object(tx)
        opts = _options(options)
        tracer = trace.make_tracer(opts)
        header = self._traced_header(block)
        if header.hash == self.node.head.hash:
            header = self.node.latest_header()
        overrides = parse_state_overrides(opts.get("stateOverrides"))
        return trace.run_call(self.node.chain, self._call_request(obj), header, tracer,
                              overrides)["result"]

    def _trace_block(self, header: BlockHeaderAPI, options: Any) -> list[dict[str, Any]]:
        opts = _options(options)
        trace.make_tracer(opts)  # refuse an unknown tracer even for an empty block
        if header.block_number == 0:
            return []
        block = self.node.chain.get_block(header)
        senders = [self.sender_of(tx) for tx in block.transactions]
        return trace.trace_block(self.node.chain, header, opts, senders)

    def debug_traceBlockByNumber(self, block: Any, options: Any = None) -> list[dict[str, Any]]:
        return self._trace_block(self._traced_header(block), options)

    def debug_traceBlockByHash(self, block_hash: Any, options: Any = None) -> list[dict[str, Any]]:
        h = parse_hash(block_hash, "blockHash")
        header = self.node.chain.get_header_by_hash(h)
        if header is None:
            raise UnknownBlock(f"block {hex_data(h)} not found")
        return self._trace_block(header, options)

    # -- raw encodings ---------------------------------------------------------------------
    def debug_getRawHeader(self, block: Any) -> str:
        return hex_data(rlp.encode(self._traced_header(block)))

    def debug_getRawBlock(self, block: Any) -> str:
        header = self._traced_header(block)
        return hex_data(encode_block(self.node.chain.get_block(header)))

    def debug_getRawReceipts(self, block: Any) -> list[str]:
        header = self._traced_header(block)
        return [hex_data(r.encode()) for r in self.node.chain.get_receipts(header)]

    def debug_getRawTransaction(self, tx_hash: Any) -> str:
        h = parse_hash(tx_hash, "transactionHash")
        chain = self.node.chain
        loc = chain.get_transaction_location(h)
        if loc is None:
            pooled = self.node.pool.get(h)
            return "0x" if pooled is None else hex_data(pooled.tx.encode())
        header = chain.get_header_by_number(loc[0])
        if header is None:
            return "0x"
        return hex_data(chain.get_block(header).transactions[loc[1]].encode())
