"""Block production under a consensus engine: the proof-of-work miner loop.

The miner builds a template (the pool's best transactions executed on the head), then
searches seal nonces in short chunks on the node's event loop, so that RPC calls and
gossip are served between chunks. It starts over when the head moves (a peer's block
won the race), when the template is older than :data:`TEMPLATE_SECONDS` (new pool
transactions and a fresher timestamp, which also lowers the difficulty the retarget asks
for), or when it finds a seal. A ``duty`` below 1 sleeps between chunks, so several miners
can share a machine's cores; hash power is then roughly proportional to ``duty``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

from eth.abc import BlockAPI

from layerlab.errors import LayerlabError
from layerlab.l1.consensus.pow import PowEngine, Sealer
from layerlab.l1.node import Node
from layerlab.l1.producer import ProducerLoop

log = logging.getLogger(__name__)

CHUNK = 1_000
TEMPLATE_SECONDS = 1.0


class PowMiner(ProducerLoop):
    """Mines on the node's head and hands each sealed block to ``on_block``."""

    def __init__(
        self,
        node: Node,
        engine: Callable[[], PowEngine | None],
        coinbase: bytes,
        *,
        duty: float = 1.0,
        on_block: Callable[[BlockAPI], None] | None = None,
    ) -> None:
        self.node = node
        self.engine = engine
        self.coinbase = coinbase
        self.duty = max(min(duty, 1.0), 0.01)
        self.on_block = on_block
        self.enabled = True
        self.blocks_mined = 0
        self.hashes = 0
        self.started = time.time()
        super().__init__()

    @property
    def hashrate(self) -> float:
        return self.hashes / max(time.time() - self.started, 1e-9)

    async def _run(self) -> None:
        while not self._stop:
            engine = self.engine()
            if engine is None or not self.enabled:  # e.g. past the merge: PoW has ended
                await asyncio.sleep(0.2)
                continue
            try:
                await self._mine_one(engine)
            except LayerlabError as exc:
                log.warning("mining attempt failed: %s", exc)
                await asyncio.sleep(0.2)
            except Exception:  # a bug must not silently end block production
                log.exception("miner error")
                await asyncio.sleep(1.0)

    async def _mine_one(self, engine: PowEngine) -> None:
        parent = self.node.head
        now = time.time()
        timestamp = max(int(now), parent.timestamp + 1)
        if timestamp > now + engine.params.max_future_seconds - 1:
            await asyncio.sleep(0.25)  # blocks came faster than 1/s: let the clock catch up
            return
        block, receipts = self.node.build_template(timestamp=timestamp, coinbase=self.coinbase)
        difficulty = engine.difficulty_for(parent, timestamp)
        sealer = Sealer(block.header, difficulty, start_nonce=int.from_bytes(os.urandom(6), "big"))
        built_at = time.monotonic()
        while not self._stop and self.enabled:
            t0 = time.monotonic()
            sealed = sealer.search(CHUNK)
            self.hashes += CHUNK if sealed is None else 1
            if sealed is not None:
                sealed_block = block.copy(header=sealed)
                self.node.commit_local(sealed_block, b"", receipts)
                self.blocks_mined += 1
                log.info(
                    "mined block #%d 0x%s (difficulty %d, %d txs)",
                    sealed.block_number,
                    sealed.hash.hex()[:12],
                    difficulty,
                    len(block.transactions),
                )
                if self.on_block:
                    self.on_block(sealed_block)
                return
            spent = time.monotonic() - t0
            await asyncio.sleep(spent * (1 / self.duty - 1) if self.duty < 1 else 0)
            if self.node.head.hash != parent.hash or time.monotonic() - built_at > TEMPLATE_SECONDS:
                return

    def status(self) -> dict[str, object]:
        return {
            "role": "miner",
            "enabled": self.enabled,
            "blocksMined": self.blocks_mined,
            "hashrate": round(self.hashrate),
            "duty": self.duty,
        }
