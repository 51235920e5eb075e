"""The ``txpool_`` namespace (geth's): pending and queued counts."""

from __future__ import annotations

from layerlab.l1.rpc.codec import hex_int
from layerlab.l1.rpc.common import Namespace


class TxpoolApi(Namespace):
    prefixes = ("txpool",)

    def txpool_status(self) -> dict[str, str]:
        pending = sum(len(v) for v in self.node.pool.pending(self.node.reader()).values())
        return {"pending": hex_int(pending), "queued": hex_int(len(self.node.pool) - pending)}
