"""The consensus-engine interface: what the node asks of PoW, PoS and the fork between them.

The node (``l1/node.py``) owns execution, the pool and storage; it feeds the engine every
block it has verified and asks it three questions, as an Ethereum execution client asks
its consensus client through the Engine API:

1. :meth:`ConsensusEngine.check` -- before executing a block from a peer: is its seal
   (PoW) or its proposer and signature (PoS) valid on top of this parent? The engine
   returns the record it will keep for the block (difficulty, total difficulty, slot...).
2. :meth:`ConsensusEngine.accept` -- after execution succeeded and the block was stored.
3. :meth:`ConsensusEngine.head` -- which block is the head now (fork choice)?
   (``engine_forkchoiceUpdated``.)

Engines never execute transactions and never touch sockets. Records live in the node's
database under ``layerlab:cons:`` so a restarted node resumes its fork choice from disk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI

from layerlab.l1.storage import NODE_PREFIX, ChainDB

RECORD_PREFIX = NODE_PREFIX + b"cons:"
HEAD_KEY = NODE_PREFIX + b"cons-head"


@dataclass(frozen=True, slots=True)
class Finality:
    """How final the chain is, in the engine's own terms (``net status``)."""

    kind: str
    """``k-confirmations`` (PoW) or ``checkpoint`` (PoS)."""
    number: int
    block_hash: bytes
    detail: dict[str, Any]
    safe_number: int = -1
    """The ``safe`` block (PoS: the justified checkpoint's); -1 means the same as ``number``."""


class ConsensusEngine(ABC):
    """One consensus protocol behind the node."""

    kind: str

    def __init__(self, db: ChainDB) -> None:
        self.db = db

    # -- verification --------------------------------------------------------------------
    @abstractmethod
    def check(self, block: BlockAPI, parent: BlockHeaderAPI, body: bytes, now: float) -> Any:
        """Consensus checks of a block before it is executed; raise :class:`InvalidBlock`.

        ``body`` is the consensus part carried next to the execution block (empty for
        PoW). Returns the record :meth:`accept` stores once execution succeeded.
        """

    @abstractmethod
    def accept(
        self, header: BlockHeaderAPI, record: Any, body: bytes, receipts: Sequence[ReceiptAPI]
    ) -> None:
        """Record a block that was checked, executed and stored."""

    @abstractmethod
    def head(self) -> bytes:
        """The fork choice: the block the node should treat as canonical head."""

    @abstractmethod
    def finality(self, head: BlockHeaderAPI) -> Finality:
        """What is final below ``head``."""

    @abstractmethod
    def has_record(self, block_hash: bytes) -> bool:
        """Whether this engine has accepted ``block_hash`` (a block can be in the chain
        database without it if the node was killed between the two writes)."""

    def body(self, block_hash: bytes) -> bytes:
        """The consensus body stored with a block (what a syncing peer must be sent)."""
        return b""

    def status(self) -> dict[str, Any]:
        return {"consensus": self.kind}

    # -- storage helpers -----------------------------------------------------------------
    def _get(self, name: bytes, block_hash: bytes) -> bytes | None:
        value: bytes | None = self.db.get(RECORD_PREFIX + name + b":" + block_hash)
        return value

    def _put(self, name: bytes, block_hash: bytes, value: bytes) -> dict[bytes, bytes]:
        return {RECORD_PREFIX + name + b":" + block_hash: value}
