"""The ``debug_`` namespace: re-executing transactions under a tracer.

``debug_traceTransaction`` returns geth's struct-logger output (see
:mod:`layerlab.l1.rpc.trace`).
"""

from __future__ import annotations

from typing import Any

from layerlab.l1.rpc.codec import hex_data, parse_hash
from layerlab.l1.rpc.common import Namespace, UnknownBlock


class DebugApi(Namespace):
    prefixes = ("debug",)

    def debug_traceTransaction(self, tx_hash: Any, options: Any = None) -> dict[str, Any]:
        from layerlab.l1.rpc.trace import trace_transaction

        h = parse_hash(tx_hash, "transactionHash")
        loc = self.node.chain.get_transaction_location(h)
        if loc is None:
            raise UnknownBlock(f"transaction {hex_data(h)} not found")
        opts = options if isinstance(options, dict) else {}
        return trace_transaction(self.node.chain, loc[0], loc[1], opts)
