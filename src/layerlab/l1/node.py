"""The L1 devnet node: wires chain, transaction pool, block production and dev controls.

Data flows one way: a transaction enters by :meth:`Node.submit_raw` (RPC) or
:meth:`Node.submit_unsigned` (``eth_sendTransaction`` for dev or impersonated accounts),
waits in the :class:`~layerlab.l1.txpool.TxPool`, is selected by the builder, executed by
py-evm (:class:`~layerlab.l1.chain.evm.EvmChain`), stored, and announced to listeners
(RPC subscriptions and filters).

Block production has three modes, as Anvil's: *auto* (a block as soon as a transaction
arrives), *interval* (a block every ``block_time`` seconds, empty or not) and *manual*
(only ``evm_mine``). Accepted transactions are written to the database before the call
returns, so a node killed while they wait in the pool re-admits them on restart.

This class is synchronous and single-threaded; the RPC server calls it from its event loop.
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
from layerlab.l1 import blobs
from layerlab.l1.blobstore import DEFAULT_RETENTION, BlobStore
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.chain.evm import EvmChain, MinedBlock
from layerlab.l1.consensus.engine import ConsensusEngine
from layerlab.l1.storage import NODE_PREFIX, ChainDB, open_db
from layerlab.l1.txpool import PooledTransaction, TxPool

log = logging.getLogger(__name__)

POOL_PREFIX = NODE_PREFIX + b"pool:"
SPOOF_PREFIX = NODE_PREFIX + b"impersonated:"
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
class Snapshot:
    """What ``evm_revert`` restores: head block, pool contents and clock."""

    block_number: int
    pool_raw: list[bytes]
    time_offset: int
    state_override: str | None


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
    ) -> None:
        self.db: ChainDB = open_db(data_dir)
        self.blobstore = BlobStore(self.db, blob_retention)
        self.data_dir = data_dir
        self.chain = EvmChain(config, self.db)
        self.config = self.chain.config
        self.mining = mining
        self.block_time = block_time
        self.coinbase = coinbase
        self.pool = TxPool(self.config.chain_id, self.chain.tx_builder)
        self.meta = NodeMeta.decode(self.db.get(META_KEY))
        self.snapshots: dict[int, Snapshot] = {}
        self._next_snapshot_id = 1
        self.block_listeners: list[Listener] = []
        self.pending_listeners: list[PendingListener] = []
        self.impersonated: set[bytes] = set()
        self.dev_keys = {a.address_bytes: a.private_key for a in self.config.dev_accounts}
        self._reader: HeadReader | None = None
        self.engine: ConsensusEngine | None = None
        if engine_factory is not None:
            self.engine = engine_factory(self.db, self.chain)
            self.mining = MiningMode.MANUAL
            if self.engine.head() != self.chain.head.hash:  # killed between store and head
                self.chain.set_head(self.engine.head())
        self.network: Any = None
        """The p2p service when the node is networked (set by the runner; l1/node never
        imports l1/p2p)."""
        self.producer: Any = None
        self.reorgs: list[tuple[int, int]] = []
        """(depth, block number) of each reorg seen, for ``net status``'s fork rate."""
        self._restore_pool()

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
        """EIP-4844 blob base fee of the next block, computed from the head."""
        return blobs.get_next_blob_base_fee(self.head)

    def _store_sidecars(self, block: BlockAPI, ptxs: Sequence[PooledTransaction]) -> None:
        """Keep the blobs of ``block``'s pooled transactions; drop those out of the window."""
        self.blobstore.put_block(block, [(p.hash, p.sidecar) for p in ptxs if p.sidecar])
        self.blobstore.prune(int(self.head.block_number))

    def _save_meta(self) -> None:
        self.db[META_KEY] = self.meta.encode()

    # -- transactions --------------------------------------------------------------------
    def submit_raw(self, raw: bytes) -> bytes:
        """Admit a signed raw transaction; return its hash (``eth_sendRawTransaction``)."""
        ptx = self.pool.decode(raw)
        return self._admit(ptx)

    def _admit(self, ptx: PooledTransaction, spoofed_sender: bool = False) -> bytes:
        replaced = self.pool.add(
            ptx, self.reader(), base_fee=self.next_base_fee(), block_gas_limit=self.config.gas_limit,
            blob_base_fee=self.next_blob_base_fee(),
        )
        puts = {POOL_PREFIX + ptx.hash: (b"\x01" if spoofed_sender else b"\x00") + ptx.sender
                + ptx.wire}
        self.db.write_many(puts, [POOL_PREFIX + replaced.hash] if replaced else [])
        for listener in self.pending_listeners:
            listener(ptx.hash)
        if self.mining is MiningMode.AUTO:
            self.mine()
        return ptx.hash

    def submit_unsigned(self, fields: dict[str, Any]) -> bytes:
        """``eth_sendTransaction``: sign with a dev key, or spoof an impersonated sender."""
        sender: bytes = fields["from"]
        state = self.reader()
        nonce = fields.get("nonce")
        if nonce is None:
            in_pool = self.pool.sender_nonces(sender)
            nonce = max(state.get_nonce(sender), (in_pool[-1] + 1) if in_pool else 0)
        base_fee = self.next_base_fee()
        tip = fields.get("maxPriorityFeePerGas", 10**9 if "gasPrice" not in fields else None)
        tx_fields: dict[str, Any] = {
            "chainId": self.config.chain_id,
            "nonce": nonce,
            "to": fields.get("to") or b"",
            "value": fields.get("value", 0),
            "data": fields.get("data", b""),
            "gas": fields.get("gas"),
        }
        if tx_fields["gas"] is None:
            from layerlab.l1.chain.evm import CallRequest

            est = self.chain.estimate_gas(
                CallRequest(sender=sender, to=tx_fields["to"], data=tx_fields["data"],
                            value=tx_fields["value"]),
                self.latest_header(),
            )
            tx_fields["gas"] = est if est > 0 else self.config.gas_limit
        if "gasPrice" in fields and "maxFeePerGas" not in fields:
            tx_fields["gasPrice"] = fields["gasPrice"]
        else:
            tx_fields["maxPriorityFeePerGas"] = tip
            tx_fields["maxFeePerGas"] = fields.get("maxFeePerGas", 2 * base_fee + int(tip or 0))
            tx_fields["type"] = 2
        if sender in self.dev_keys and sender not in self.impersonated:
            from eth_account import Account

            signed = Account.sign_transaction(
                {**tx_fields, "to": _to_hex(tx_fields["to"]), "data": tx_fields["data"]},
                self.dev_keys[sender],
            )
            return self.submit_raw(bytes(signed.raw_transaction))
        if sender not in self.impersonated:
            raise InvalidTransaction(
                "unknown-account", f"unknown account 0x{sender.hex()}: not a dev account and "
                "not impersonated (anvil_impersonateAccount)"
            )
        return self._admit(self._spoof(sender, tx_fields), spoofed_sender=True)

    def _spoof(self, sender: bytes, f: dict[str, Any]) -> PooledTransaction:
        """An impersonated transaction (``anvil_impersonateAccount``).

        It is signed by a throwaway key derived from the sender, so that it encodes,
        hashes and stores like any transaction; execution sees the impersonated sender
        (as Hardhat's and Anvil's impersonation). The node records the true sender by
        hash for receipts and lookups.
        """
        from eth_account import Account

        fields = {**f, "to": _to_hex(f["to"]), "data": f["data"]}
        signed = Account.sign_transaction(fields, _impersonation_key(sender))
        return _spoofed(self.pool.decode(bytes(signed.raw_transaction)), sender)

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
        chosen = self.pool.select(reader, base_fee=base_fee, gas_limit=self.config.gas_limit,
                                  blob_base_fee=self.next_blob_base_fee())
        ts = timestamp if timestamp is not None else self.next_timestamp()
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
            chosen = self.pool.select(self.reader(), base_fee=self.next_base_fee(),
                                      gas_limit=self.config.gas_limit,
                                      blob_base_fee=blobs.get_next_blob_base_fee(parent or self.head))
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
                    self._admit(self.pool.decode(tx.encode()))
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
                if mined_block and isinstance(p.tx, ImpersonatedTransaction)}
        self.db.write_many(puts, deletes)

    def spoofed_sender(self, tx_hash: bytes) -> bytes | None:
        sender: bytes | None = self.db.get(SPOOF_PREFIX + tx_hash)
        return sender

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
                self.impersonated.add(sender)
                ptx = _spoofed(ptx, sender)
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
            flag = b"\x01" if isinstance(ptx.tx, ImpersonatedTransaction) else b"\x00"
            self.db.write_many({POOL_PREFIX + ptx.hash: flag + ptx.sender + ptx.wire},
                               [POOL_PREFIX + replaced.hash] if replaced else [])
            if replaced is not None:
                kept = [p for p in kept if p.hash != replaced.hash]
            kept.append(ptx)
        return kept

    # -- dev controls (evm_*, anvil_*) -------------------------------------------------------
    def snapshot(self) -> int:
        sid = self._next_snapshot_id
        self._next_snapshot_id += 1
        self.snapshots[sid] = Snapshot(
            block_number=self.head.block_number,
            pool_raw=[p.wire for p in self.pool.all() if not isinstance(p.tx, ImpersonatedTransaction)],
            time_offset=self.meta.time_offset,
            state_override=self.meta.state_override,
        )
        return sid

    def revert(self, snapshot_id: int) -> bool:
        """Restore a snapshot; it and every later snapshot are consumed (as Hardhat)."""
        snap = self.snapshots.get(snapshot_id)
        if snap is None:
            return False
        for sid in [s for s in self.snapshots if s >= snapshot_id]:
            del self.snapshots[sid]
        self.chain.rewind(snap.block_number)
        self.pool.clear()
        self.db.write_many({}, [k for k, _ in self.db.iterate_prefix(POOL_PREFIX)])
        self.meta.time_offset = snap.time_offset
        self.meta.state_override = snap.state_override
        self.meta.next_timestamp = None
        self._save_meta()
        self._reader = None
        restored = []
        for raw in snap.pool_raw:
            try:
                restored.append(self.pool.decode(raw))
            except LayerlabError as exc:  # cannot happen: the pool decoded it before
                log.warning("snapshot pool tx not decodable: %s", exc)
        self.readmit(restored)
        return True

    def increase_time(self, seconds: int) -> int:
        self.meta.time_offset += seconds
        self._save_meta()
        return self.meta.time_offset

    def set_next_timestamp(self, timestamp: int) -> None:
        if timestamp <= self.head.timestamp:
            raise InvalidBlock(
                f"timestamp {timestamp} is not after the head's timestamp {self.head.timestamp}"
            )
        self.meta.next_timestamp = timestamp
        self.meta.time_offset = timestamp - int(time.time())
        self._save_meta()

    def edit_state(self, edit: Callable[[StateAPI], None]) -> None:
        """Apply a dev edit to the head state (``anvil_setBalance``...) without a block."""
        state = self.head_state()
        edit(state)
        state.persist()
        self.meta.state_override = bytes(state.state_root).hex()
        self._save_meta()
        self._reader = None

    def close(self) -> None:
        self.db.close()


def _to_hex(value: bytes) -> str | None:
    from eth_utils.address import to_checksum_address

    return to_checksum_address(value) if value else None


def _impersonation_key(sender: bytes) -> bytes:
    from eth_hash.auto import keccak

    return bytes(keccak(b"layerlab-impersonation:" + sender))


class ImpersonatedTransaction:
    """A signed transaction whose sender is overridden (dev impersonation only).

    Every attribute is the wrapped transaction's, except ``sender``/``get_sender`` and the
    signature check, so py-evm executes it as if the impersonated account had signed.
    """

    __slots__ = ("_tx", "sender")

    def __init__(self, tx: SignedTransactionAPI, sender: bytes) -> None:
        self._tx = tx
        self.sender = sender

    def get_sender(self) -> bytes:
        return self.sender

    def check_signature_validity(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        if name in ("_tx", "sender"):
            raise AttributeError(name)
        return getattr(self._tx, name)


def _spoofed(ptx: PooledTransaction, sender: bytes) -> PooledTransaction:
    return PooledTransaction(
        tx=ImpersonatedTransaction(ptx.tx, sender),  # type: ignore[arg-type]
        raw=ptx.raw, hash=ptx.hash, sender=sender, nonce=ptx.nonce, gas=ptx.gas,
        max_fee=ptx.max_fee, max_priority_fee=ptx.max_priority_fee, sidecar=ptx.sidecar,
        network_raw=ptx.network_raw,
    )
