"""The PoW->PoS fork at a scheduled point (EIP-3675, "The Merge"), and engine construction.

A ``merge`` chain runs proof of work until its *terminal block*: the block at
``mergeBlock``, or the first whose total difficulty reaches ``terminalTotalDifficulty``
(EIP-3675's TTD; EIP-3675 also fixes what a post-merge header looks like). The children
of a terminal block are proof-of-stake blocks; a PoW-sealed block there is invalid, and
so is a PoW block built on a PoS block. The state carries over unchanged: the PoS engine
is anchored at the terminal block, with the genesis validators plus every staking
deposit made during the PoW era already counted (the beacon chain ran beside PoW before
Ethereum's Merge; here it starts at the fork).

While PoW blocks race near the fork there may be several terminal blocks; each gets its
PoS engine and the one with the most total difficulty wins, as the consensus client
chooses the terminal PoW block by its own fork choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI

from layerlab.errors import InvalidBlock
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.beacon import PosEngine, genesis_validators
from layerlab.l1.consensus.engine import ConsensusEngine, Finality
from layerlab.l1.consensus.pow import PRESETS as POW_PRESETS
from layerlab.l1.consensus.pow import PowEngine
from layerlab.l1.consensus.staking import decode_staking_logs
from layerlab.l1.consensus.types import Deposit
from layerlab.l1.storage import NODE_PREFIX, ChainDB

TERMINALS_KEY = NODE_PREFIX + b"cons-terminals"


def pos_anchor_engine(db: ChainDB, chain: EvmChain, config: ChainConfig, anchor: BlockHeaderAPI) -> PosEngine:
    """A PoS engine anchored at ``anchor`` (genesis, or a terminal PoW block), with the
    genesis validators and every deposit made on the chain up to the anchor."""
    preset = pos.PRESETS[config.consensus.preset]
    genesis = chain.get_header_by_number(0)
    assert genesis is not None
    withdrawal = [a.address_bytes for a in config.dev_accounts] or [b"\x00" * 20]
    validators = genesis_validators(config.consensus.validators, withdrawal)
    state = pos.genesis_state(preset, validators, bytes(anchor.hash),
                              (anchor.timestamp - genesis.timestamp) // preset.slot_seconds)
    deposits: list[Deposit] = []
    header: BlockHeaderAPI | None = anchor
    while header is not None and header.block_number > 0:
        deposits[:0] = decode_staking_logs(chain.get_receipts(header))[0]
        header = chain.get_header_by_hash(header.parent_hash)
    if deposits:  # PoW-era deposits, under the same rules as in a block (proofs checked)
        state = pos.process_deposits_at_genesis(state, deposits)
    return PosEngine(db, chain, preset, anchor, state, genesis.timestamp)


class MergeEngine(ConsensusEngine):
    """Proof of work up to the terminal block, proof of stake after it."""

    kind = "merge"

    def __init__(self, db: ChainDB, chain: EvmChain, config: ChainConfig) -> None:
        super().__init__(db)
        self.chain = chain
        self.config = config
        genesis = chain.get_header_by_number(0)
        assert genesis is not None
        self.pow = PowEngine(db, POW_PRESETS[config.consensus.preset], genesis)
        self.merge_block = config.consensus.merge_block
        self.ttd = config.consensus.terminal_total_difficulty
        self.pos: dict[bytes, PosEngine] = {}
        stored = db.get(TERMINALS_KEY) or b""
        for i in range(0, len(stored), 32):
            self._open_pos(bytes(stored[i:i + 32]))

    def _open_pos(self, terminal: bytes) -> PosEngine:
        engine = self.pos.get(terminal)
        if engine is None:
            header = self.chain.get_header_by_hash(terminal)
            assert header is not None
            engine = self.pos[terminal] = pos_anchor_engine(self.db, self.chain, self.config, header)
        return engine

    def is_terminal(self, header: BlockHeaderAPI) -> bool:
        rec = self.pow.record(header.hash)
        if rec is None:
            return False
        if self.merge_block is not None:
            return bool(header.block_number == self.merge_block)
        assert self.ttd is not None
        return bool(rec.total_difficulty >= self.ttd > rec.total_difficulty - rec.difficulty)

    def engine_for_child(self, parent: BlockHeaderAPI) -> ConsensusEngine:
        """Which rules a child of ``parent`` must follow."""
        for engine in self.pos.values():
            if engine.knows(bytes(parent.hash)):
                return engine
        if self.is_terminal(parent):
            return self._open_pos(bytes(parent.hash))
        return self.pow

    def active_pos(self) -> PosEngine | None:
        """The PoS engine of the winning terminal block, once the fork has happened."""
        best: tuple[int, bytes] | None = None
        for terminal in self.pos:
            rec = self.pow.record(terminal)
            td = rec.total_difficulty if rec else 0
            if best is None or td > best[0]:
                best = (td, terminal)
        return self.pos[best[1]] if best else None

    def active_pow(self) -> PowEngine | None:
        """The PoW engine while PoW blocks may still be mined on the head."""
        head = self.chain.get_header_by_hash(self.head())
        if head is None or self.active_pos() is not None or self.is_terminal(head):
            return None
        return self.pow

    # -- ConsensusEngine -----------------------------------------------------------------
    def check(self, block: BlockAPI, parent: BlockHeaderAPI, body: bytes, now: float) -> Any:
        engine = self.engine_for_child(parent)  # a child of a terminal or PoS block: PoS rules
        return engine, engine.check(block, parent, body, now)

    def accept(self, header: BlockHeaderAPI, record: Any, body: bytes,
               receipts: Sequence[ReceiptAPI]) -> None:
        engine, inner = record
        engine.accept(header, inner, body, receipts)
        if engine is self.pow and self.is_terminal(header) and bytes(header.hash) not in self.pos:
            self._open_pos(bytes(header.hash))
            self.db.write_many({TERMINALS_KEY: b"".join(self.pos)}, [])

    def has_record(self, block_hash: bytes) -> bool:
        return self.pow.has_record(block_hash) or any(e.has_record(block_hash) for e in self.pos.values())

    def head(self) -> bytes:
        engine = self.active_pos()
        return engine.head() if engine is not None else self.pow.head()

    def finality(self, head: BlockHeaderAPI) -> Finality:
        engine = self.active_pos()
        return engine.finality(head) if engine is not None else self.pow.finality(head)

    def body(self, block_hash: bytes) -> bytes:
        for engine in self.pos.values():
            data = engine.body(block_hash)
            if data:
                return data
        return b""

    def status(self) -> dict[str, Any]:
        engine = self.active_pos()
        out = engine.status() if engine is not None else self.pow.status()
        out["consensus"] = "merge"
        out["phase"] = "pos" if engine is not None else "pow"
        if engine is not None:
            out["terminalBlock"] = "0x" + bytes(engine.anchor.hash).hex()
            out["terminalNumber"] = engine.anchor.block_number
        return out


def make_engine(config: ChainConfig, db: ChainDB, chain: EvmChain) -> ConsensusEngine:
    """The engine a chain config asks for (``pow``, ``pos`` or ``merge``)."""
    c = config.consensus
    genesis = chain.get_header_by_number(0)
    assert genesis is not None
    if c.engine == "pow":
        return PowEngine(db, POW_PRESETS[c.preset], genesis)
    if c.engine == "pos":
        return pos_anchor_engine(db, chain, config, genesis)
    if c.engine == "merge":
        return MergeEngine(db, chain, config)
    raise InvalidBlock(f"no consensus engine {c.engine!r} for a network node")


def pos_of(engine: ConsensusEngine | None) -> PosEngine | None:
    """The PoS engine running now: a ``pos`` chain's, or a ``merge`` chain's after the fork."""
    if isinstance(engine, PosEngine):
        return engine
    if isinstance(engine, MergeEngine):
        return engine.active_pos()
    return None


def pow_of(engine: ConsensusEngine | None) -> PowEngine | None:
    """The PoW engine blocks may be mined under now (None past the merge)."""
    if isinstance(engine, PowEngine):
        return engine
    if isinstance(engine, MergeEngine):
        return engine.active_pow()
    return None
