"""The L1 node's core: block import, fork choice, the head, the pool and mining.

Data flows one way: a transaction enters by :meth:`Node.submit_raw` (RPC or gossip) or
:meth:`Node.admit` (``eth_sendTransaction``, from :mod:`layerlab.l1.devtools`),
waits in the :class:`~layerlab.l1.txpool.TxPool`, is selected by the builder, executed by
py-evm (:class:`~layerlab.l1.chain.evm.EvmChain`), stored, and announced to listeners
(RPC subscriptions and filters).

Block production has three modes, as Anvil's: *auto* (a block as soon as a transaction
arrives), *interval* (a block every ``block_time`` seconds, empty or not) and *manual*
(only ``evm_mine``). Accepted transactions are written to the database before the call
returns, so a node killed while they wait in the pool re-admits them on restart.

The Anvil/Hardhat dev controls (impersonation, snapshots, the clock, state edits) are
:class:`~layerlab.l1.devtools.DevTools`, ``node.dev``; they change the node only
through its methods. This class is synchronous and single-threaded; the RPC server calls
it from its event loop.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI, StateAPI

from layerlab.errors import InvalidBlock, InvalidTransaction, LayerlabError
from layerlab.l1.blobstore import DEFAULT_RETENTION, BlobStore
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.chain.evm import EvmChain, MinedBlock
from layerlab.l1.chain.osaka import TX_GAS_LIMIT_CAP, OsakaVM
from layerlab.l1.consensus.engine import ConsensusEngine
from layerlab.l1.devtools import SPOOF_PREFIX, DevTools, is_impersonated
from layerlab.l1.storage import NODE_PREFIX, ChainDB, open_db
from layerlab.l1.txpool import PooledTransaction, TxPool

log = logging.getLogger(__name__)

POOL_PREFIX = NODE_PREFIX + b"pool:"
META_KEY = NODE_PREFIX + b"meta"


class UnknownParent(InvalidBlock):
    """A block whose parent this node does not have yet (sync from the sender)."""

    def __init__(self, parent_hash: bytes, number: int) -> None:
        super().__init__(f"block {number}: unknown parent 0x{parent_hash.hex()}")
        self.parent_hash = parent_hash
        self.number = number


class MiningMode(enum.Enum):
    AUTO = "auto"
    INTERVAL = "interval"
    MANUAL = "manual"


@dataclass
class NodeMeta:
    """Node records kept beside the chain (clock offset, dev state override)."""

    time_offset: int = 0
    next_timestamp: int | None = None
    state_override: str | None = None

    def encode(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> NodeMeta:
        return cls(**json.loads(data)) if data else cls()


Listener = Callable[[MinedBlock], None]
PendingListener = Callable[[bytes], None]


@dataclass
class HeadReader:
    """Nonce and balance reads against one state, cached for a burst of admissions."""

    state: StateAPI
    nonces: dict[bytes, int] = field(default_factory=dict)

    def get_nonce(self, address: bytes) -> int:
        nonce = self.nonces.get(address)
        if nonce is None:
            nonce = self.nonces[address] = int(self.state.get_nonce(address))
        return nonce

    def get_balance(self, address: bytes) -> int:
        return int(self.state.get_balance(address))


class Node:
    """One L1 devnet node (a single process; the RPC server and CLI drive it)."""

    def __init__(
        self,
        config: ChainConfig,
        *,
        data_dir: Path | None = None,
        mining: MiningMode = MiningMode.AUTO,
        block_time: float | None = None,
        coinbase: bytes = b"\x00" * 20,
        engine_factory: Callable[[ChainDB, EvmChain], ConsensusEngine] | None = None,
        blob_retention: int = DEFAULT_RETENTION,
        sync_writes: bool = False,
    ) -> None:
        self.db: ChainDB = open_db(data_dir, sync=sync_writes)
        self.blobstore = BlobStore(self.db, blob_retention)
        self.data_dir = data_dir
        self.chain = EvmChain(config, self.db)
        self.config = self.chain.config
        self.mining = mining
        self.block_time = block_time
        self.coinbase = coinbase
        self.pool = TxPool(self.config.chain_id, self.chain.tx_builder)
        self.meta = NodeMeta.decode(self.db.get(META_KEY))
        self.block_listeners: list[Listener] = []
        self.pending_listeners: list[PendingListener] = []
        self.dev = DevTools(self)
        self._reader: HeadReader | None = None
        self.engine: ConsensusEngine | None = None
        if engine_factory is not None:
            self.engine = engine_factory(self.db, self.chain)
            self.mining = MiningMode.MANUAL
            if self.engine.head() != self.chain.head.hash:  # killed between store and head
                self.chain.set_head(self.engine.head())
        self.network: Any = None
        """The p2p service when the node is networked (:meth:`attach`; l1/node never
        imports l1/p2p)."""
        self.producer: Any = None
        """What reports this node's block production (:meth:`attach`)."""
        self.reorgs: list[tuple[int, int]] = []
        """(depth, block number) of each reorg seen, for ``net status``'s fork rate."""
        self._restore_pool()

    def attach(self, *, network: Any = None, producer: Any = None) -> None:
        """Record the p2p service and the block producers of a networked node (the
        launcher builds them around the node)."""
        if network is not None:
            self.network = network
        if producer is not None:
            self.producer = producer

    def set_mining(self, mode: MiningMode, block_time: float | None = None) -> None:
        """Choose how blocks are produced; ``block_time`` is the interval mode's period."""
        if mode is MiningMode.INTERVAL and not block_time:
            raise LayerlabError("interval mining needs a block time above 0")
        self.mining = mode
        self.block_time = block_time if mode is MiningMode.INTERVAL else None

    # -- head state ----------------------------------------------------------------------
    @property
    def head(self) -> BlockHeaderAPI:
        return self.chain.head

    def latest_header(self) -> BlockHeaderAPI:
        """The head, with dev state edits (``anvil_setBalance``...) applied to its state root."""
        head = self.chain.head
        if self.meta.state_override:
            return head.copy(state_root=bytes.fromhex(self.meta.state_override))
        return head

    def head_state(self) -> StateAPI:
        return self.chain.get_state(self.latest_header())

    def reader(self) -> HeadReader:
        if self._reader is None:
            self._reader = HeadReader(self.head_state())
        return self._reader

    def next_base_fee(self) -> int:
        """EIP-1559 base fee of the next block, computed from the head."""
        from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas

        return int(calculate_expected_base_fee_per_gas(self.head))

    def next_blob_base_fee(self) -> int:
        """Blob base fee of the next block, computed from the head under the next block's
        fork (EIP-4844's formula with that fork's blob schedule)."""
        return self.chain.get_next_blob_base_fee(self.head, self.next_timestamp())

    def _store_sidecars(self, block: BlockAPI, ptxs: Sequence[PooledTransaction]) -> None:
        """Keep the blobs of ``block``'s pooled transactions; drop those out of the window."""
        self.blobstore.put_block(block, [(p.hash, p.sidecar) for p in ptxs if p.sidecar])
        self.blobstore.prune(int(self.head.block_number))

    def _save_meta(self) -> None:
        self.db[META_KEY] = self.meta.encode()

    def set_clock(self, *, time_offset: int, next_timestamp: int | None) -> None:
        """Set the offset of block time from wall time and, if not None, the next
        block's timestamp (used once)."""
        self.meta.time_offset = time_offset
        self.meta.next_timestamp = next_timestamp
        self._save_meta()

    def set_state_override(self, state_root: bytes | None) -> None:
        """Build the next block on ``state_root`` instead of the head's (dev state edits)."""
        self.meta.state_override = state_root.hex() if state_root is not None else None
        self._save_meta()
        self._reader = None

    # -- transactions --------------------------------------------------------------------
    def submit_raw(self, raw: bytes) -> bytes:
        """Admit a signed raw transaction; return its hash (``eth_sendRawTransaction``)."""
        return self.admit(self.pool.decode(raw))

    def admit(self, ptx: PooledTransaction) -> bytes:
        """Admit a decoded (or impersonated) transaction to the pool, write it to disk,
        and mine it at once in auto mode; return its hash.

        The rules of the head's fork apply, as in geth's pool: from Osaka, a gas limit
        over EIP-7825's cap is refused here (one admitted before the fork is dropped by
        the first Osaka block that tries it)."""
        if ptx.gas > TX_GAS_LIMIT_CAP and issubclass(self.chain.get_vm_class(self.head), OsakaVM):
            raise InvalidTransaction(
                "gas-limit-too-high",
                f"transaction gas limit too high (cap: {TX_GAS_LIMIT_CAP}, tx: {ptx.gas})")
        replaced = self.pool.add(
            ptx, self.reader(), base_fee=self.next_base_fee(), block_gas_limit=self.config.gas_limit,
            blob_base_fee=self.next_blob_base_fee(),
        )
        self._write_pool_record(ptx, replaced)
        for listener in self.pending_listeners:
            listener(ptx.hash)
        if self.mining is MiningMode.AUTO:
            self.mine()
        return ptx.hash

    # -- blocks --------------------------------------------------------------------------
    def next_timestamp(self) -> int:
        parent = int(self.head.timestamp)
        if self.meta.next_timestamp is not None:
            return max(self.meta.next_timestamp, parent + 1)
        return max(int(time.time()) + self.meta.time_offset, parent + 1)

    def mine(self, timestamp: int | None = None) -> MinedBlock:
        """Build, execute and store one block from the pool's pending transactions."""
        if self.engine is not None:
            raise LayerlabError(
                f"blocks come from {self.engine.kind} consensus; evm_mine is a devnet method"
            )
        reader = self.reader()
        base_fee = self.next_base_fee()
        ts = timestamp if timestamp is not None else self.next_timestamp()
        head = self.head
        chosen = self.pool.select(
            reader, base_fee=base_fee, gas_limit=self.config.gas_limit,
            blob_base_fee=self.chain.get_next_blob_base_fee(head, ts),
            blob_gas_limit=self.chain.get_max_blob_gas(head.block_number + 1, ts))
        txs: list[SignedTransactionAPI] = [p.tx for p in chosen]
        override = self.meta.state_override
        try:
            mined = self.chain.mine(txs, timestamp=ts, coinbase=self.coinbase,
                                    state_root=bytes.fromhex(override) if override else None)
        except InvalidTransaction as exc:
            log.warning("block with %d txs failed (%s); retrying without failing txs",
                        len(txs), exc)
            good = self.chain.filter_applicable(
                txs, timestamp=ts, state_root=bytes.fromhex(override) if override else None
            )
            dropped = [p for p in chosen if p.tx not in good]
            self._forget(dropped)
            mined = self.chain.mine(good, timestamp=ts, coinbase=self.coinbase,
                                    state_root=bytes.fromhex(override) if override else None)
        self.meta.next_timestamp = None
        self.meta.state_override = None
        self._reader = None
        self._store_sidecars(mined.block, chosen)
        self._forget(chosen, mined_block=True)
        self._save_meta()
        self.pool.prune(self.reader(), {p.sender for p in chosen})
        for listener in list(self.block_listeners):
            try:
                listener(mined)
            except Exception:  # a listener must never break block production
                log.exception("block listener failed")
        return mined

    # -- consensus-driven blocks ---------------------------------------------------------
    def build_template(
        self, *, timestamp: int, coinbase: bytes, mix_hash: bytes = b"\x00" * 32,
        withdrawals: Sequence[Any] = (),
        parent: BlockHeaderAPI | None = None,
    ) -> tuple[BlockAPI, tuple[ReceiptAPI, ...]]:
        """Execute the pool's best transactions on the head, unsealed (for a miner or
        proposer); transactions that fail in the block are dropped from the pool. On
        another ``parent`` than the head the block is built empty."""
        chosen = []
        if parent is None or parent.hash == self.head.hash:
            head = self.head
            chosen = self.pool.select(
                self.reader(), base_fee=self.next_base_fee(), gas_limit=self.config.gas_limit,
                blob_base_fee=self.chain.get_next_blob_base_fee(head, timestamp),
                blob_gas_limit=self.chain.get_max_blob_gas(head.block_number + 1, timestamp))
        txs: list[SignedTransactionAPI] = [p.tx for p in chosen]
        parent = parent or self.head
        try:
            return self.chain.build(txs, parent=parent, timestamp=timestamp, coinbase=coinbase,
                                    mix_hash=mix_hash, withdrawals=withdrawals)
        except InvalidTransaction:
            good = self.chain.filter_applicable(txs, timestamp=timestamp) if txs else []
            self._forget([p for p in chosen if p.tx not in good])
            return self.chain.build(good, parent=parent, timestamp=timestamp, coinbase=coinbase,
                                    mix_hash=mix_hash, withdrawals=withdrawals)

    def commit_local(self, block: BlockAPI, body: bytes, receipts: Sequence[ReceiptAPI]) -> None:
        """Check a block this node sealed with the same consensus rules as a peer's, store
        it, then follow the fork choice."""
        assert self.engine is not None
        parent = self.chain.get_header_by_hash(block.header.parent_hash)
        if parent is None:
            raise UnknownParent(block.header.parent_hash, block.number)
        record = self.engine.check(block, parent, body, time.time() + 1)
        old_head = bytes(self.head.hash)
        self.chain.persist_sealed(block)
        self.engine.accept(block.header, record, body, receipts)
        self._follow_fork_choice(old_head, {bytes(block.hash): tuple(receipts)})

    def has_block(self, block_hash: bytes) -> bool:
        return self.chain.has_block(block_hash)

    def import_block(self, block: BlockAPI, body: bytes, now: float | None = None) -> bool:
        """Verify, execute and store a block from a peer; return False if already known.

        Raises :class:`UnknownParent` when its parent is missing (the caller syncs) and
        :class:`InvalidBlock` when a consensus or execution check fails; an invalid block
        is never stored.
        """
        assert self.engine is not None
        stored = self.chain.has_block(block.hash)
        if stored and self.engine.has_record(block.hash):
            return False
        parent = self.chain.get_header_by_hash(block.header.parent_hash)
        if parent is None:
            raise UnknownParent(block.header.parent_hash, block.number)
        record = self.engine.check(block, parent, body, time.time() if now is None else now)
        old_head = bytes(self.head.hash)
        if stored:  # executed and stored by a run killed before the consensus record
            receipts: Sequence[ReceiptAPI] = self.chain.get_receipts(block.header)
        else:
            receipts = self.chain.import_block(block).receipts
        self.engine.accept(block.header, record, body, receipts)
        self._follow_fork_choice(old_head, {bytes(block.hash): tuple(receipts)})
        return True

    def refresh_head(self) -> None:
        """Follow the fork choice after something other than a block moved it (votes)."""
        if self.engine is not None and self.engine.head() != self.head.hash:
            self._follow_fork_choice(bytes(self.head.hash))

    def _follow_fork_choice(self, old_head: bytes,
                            known: dict[bytes, tuple[ReceiptAPI, ...]] | None = None) -> None:
        """Make the engine's head canonical; move transactions between chain and pool."""
        assert self.engine is not None
        new_head = self.engine.head()
        added, removed = self.chain.set_head(new_head, old_head)
        if new_head == old_head:
            return
        self._reader = None
        if removed:
            self.reorgs.append((len(removed), int(added[-1].number) if added else 0))
            log.info("reorg: %d block(s) replaced by %d, new head #%d", len(removed), len(added),
                     self.head.block_number)
        included = {bytes(tx.hash) for b in added for tx in b.transactions}
        for block in added:
            self._store_sidecars(block, [p for p in map(self.pool.get, included) if p is not None])
        self._forget([p for p in map(self.pool.get, included) if p is not None])
        for block in removed:  # orphaned transactions go back to the pool
            for tx in block.transactions:
                if bytes(tx.hash) in included:
                    continue
                try:
                    self.admit(self.pool.decode(tx.encode()))
                except LayerlabError as exc:
                    log.info("orphaned tx 0x%s not re-admitted: %s", bytes(tx.hash).hex(), exc)
        self.pool.prune(self.reader(), {p.sender for p in self.pool.all()})
        for block in added:
            receipts = (known or {}).get(bytes(block.hash))
            if receipts is None:
                receipts = self.chain.get_receipts(block.header)
            mined = MinedBlock(block, receipts, ())
            for listener in list(self.block_listeners):
                try:
                    listener(mined)
                except Exception:
                    log.exception("block listener failed")

    def _forget(self, ptxs: list[PooledTransaction], mined_block: bool = False) -> None:
        self.pool.remove(p.hash for p in ptxs)
        deletes = [POOL_PREFIX + p.hash for p in ptxs]
        puts = {SPOOF_PREFIX + p.hash: p.sender for p in ptxs
                if mined_block and is_impersonated(p)}
        self.db.write_many(puts, deletes)

    def _write_pool_record(self, ptx: PooledTransaction,
                           replaced: PooledTransaction | None) -> None:
        """Keep an admitted transaction on disk (a flag byte for impersonation, the
        sender, the network form) until it is mined or dropped."""
        flag = b"\x01" if is_impersonated(ptx) else b"\x00"
        self.db.write_many({POOL_PREFIX + ptx.hash: flag + ptx.sender + ptx.wire},
                           [POOL_PREFIX + replaced.hash] if replaced else [])

    def _restore_pool(self) -> None:
        """Re-admit the pool written to disk before a restart, exactly as acknowledged.

        Records are read in key (hash) order, so they are first decoded, then re-admitted
        per sender in nonce order (:meth:`readmit`); a record is deleted only when the
        chain has made its transaction invalid, never because of the order of restoring.
        """
        stored: list[PooledTransaction] = []
        for key, value in list(self.db.iterate_prefix(POOL_PREFIX)):
            spoofed, sender, raw = value[0] == 1, value[1:21], value[21:]
            try:
                ptx = self.pool.decode(raw)
            except LayerlabError as exc:
                log.warning("dropping stored pool tx 0x%s: undecodable (%s)",
                            key[len(POOL_PREFIX):].hex(), exc)
                self.db.write_many({}, [key])
                continue
            if spoofed:
                ptx = self.dev.restore_impersonated(ptx, sender)
            stored.append(ptx)
        kept = self.readmit(stored)
        if kept:
            log.info("restored %d pending transactions from disk", len(kept))

    def readmit(self, ptxs: Sequence[PooledTransaction]) -> list[PooledTransaction]:
        """Put transactions this node had acknowledged back into the pool.

        Each sender's transactions go in nonce order (for one nonce, the best-paying copy
        last, so it wins as the replacement it was), with ``restoring`` admission: a
        transaction is dropped, and its record deleted with the reason logged, only if
        the chain made it invalid (its nonce was mined, its sender can no longer pay).
        Returns the transactions kept.
        """
        def order(p: PooledTransaction) -> tuple[bytes, int, int, int]:
            return (p.sender, p.nonce, p.max_fee, p.max_priority_fee)

        kept: list[PooledTransaction] = []
        for ptx in sorted(ptxs, key=order):
            try:
                replaced = self.pool.add(ptx, self.reader(), base_fee=self.next_base_fee(),
                                         block_gas_limit=self.config.gas_limit, restoring=True)
            except LayerlabError as exc:
                log.warning("dropping pool tx 0x%s of 0x%s nonce %d: %s", ptx.hash.hex(),
                            ptx.sender.hex(), ptx.nonce, exc)
                self.db.write_many({}, [POOL_PREFIX + ptx.hash])
                continue
            self._write_pool_record(ptx, replaced)
            if replaced is not None:
                kept = [p for p in kept if p.hash != replaced.hash]
            kept.append(ptx)
        return kept

    def rewind(self, block_number: int) -> None:
        """Make block ``block_number`` the head again and empty the pool, on disk too
        (``evm_revert``)."""
        self.chain.rewind(block_number)
        self.pool.clear()
        self.db.write_many({}, [k for k, _ in self.db.iterate_prefix(POOL_PREFIX)])
        self.meta.next_timestamp = None
        self._save_meta()
        self._reader = None

    def close(self) -> None:
        self.db.close()

