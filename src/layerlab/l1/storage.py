"""Chain storage: a LevelDB key-value store (plyvel) that py-evm writes its chain into.

py-evm persists headers, bodies, receipts, tries and canonical-chain indexes through an
:class:`eth.abc.AtomicDatabaseAPI`. :class:`LevelDB` implements that interface on
LevelDB, committing each ``atomic_batch`` as one LevelDB ``WriteBatch`` so that a block
and its indexes land on disk together or not at all (a node killed mid-write restarts
from the last whole block). A second key space, prefixed ``b"layerlab:"``, holds the
node's own records (pending transactions, clock offset).

Memory-only chains use py-evm's :class:`eth.db.atomic.AtomicDB` unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import plyvel
from eth.db.atomic import AtomicDB, AtomicDBWriteBatch
from eth.db.backends.base import BaseAtomicDB

from layerlab.errors import StorageError

NODE_PREFIX = b"layerlab:"


class LevelDB(BaseAtomicDB):
    """An atomic py-evm database on LevelDB.

    Writes outside a batch go straight to LevelDB; ``atomic_batch`` collects writes in
    memory (readable inside the batch) and commits them in a single LevelDB write batch.
    ``sync`` makes every commit durable (fsync) before it returns.
    """

    def __init__(self, path: Path, *, sync: bool = False) -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._db: Any = plyvel.DB(str(path), create_if_missing=True)
        except plyvel.IOError as exc:
            raise StorageError(
                f"cannot open LevelDB at {path}: {exc} (is another node using this data dir?)"
            ) from exc
        self.path = path
        self._sync = sync

    def __getitem__(self, key: bytes) -> bytes:
        value = self._db.get(key)
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._db.put(key, value, sync=self._sync)

    def __delitem__(self, key: bytes) -> None:
        if self._db.get(key) is None:
            raise KeyError(key)
        self._db.delete(key, sync=self._sync)

    def _exists(self, key: bytes) -> bool:
        return self._db.get(key) is not None

    @contextmanager
    def atomic_batch(self) -> Iterator[AtomicDBWriteBatch]:
        batch = AtomicDBWriteBatch(self)
        try:
            yield batch
        except Exception:
            batch._track_diff = None
            raise
        diff = batch._diff()
        batch._track_diff = None
        with self._db.write_batch(transaction=True, sync=self._sync) as wb:
            for key in diff.deleted_keys():
                wb.delete(key)
            for key, value in diff.pending_items():
                wb.put(key, value)

    def write_many(self, puts: dict[bytes, bytes], deletes: list[bytes]) -> None:
        """Apply puts and deletes in one LevelDB write batch."""
        with self._db.write_batch(transaction=True, sync=self._sync) as wb:
            for key in deletes:
                wb.delete(key)
            for key, value in puts.items():
                wb.put(key, value)

    def iterate_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` pairs whose key starts with ``prefix``, in key order."""
        for key, value in self._db.iterator(prefix=prefix):
            yield bytes(key), bytes(value)

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()


class MemoryDB(AtomicDB):
    """py-evm's in-memory atomic DB, with the extra methods :class:`LevelDB` offers."""

    def write_many(self, puts: dict[bytes, bytes], deletes: list[bytes]) -> None:
        # one thread owns the node, so plain dict updates are already all-or-nothing
        store = self.wrapped_db.kv_store
        for key in deletes:
            store.pop(key, None)
        store.update(puts)

    def iterate_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        store = self.wrapped_db.kv_store
        for key in sorted(k for k in store if k.startswith(prefix)):
            yield key, store[key]

    def close(self) -> None:
        return None


ChainDB = LevelDB | MemoryDB


def open_db(data_dir: Path | None, *, sync: bool = False) -> ChainDB:
    """Open the chain database: LevelDB under ``data_dir/chaindata``, or memory if None.

    ``sync`` (the node's ``--sync-writes``) makes every write fsync before it returns, so
    an accepted transaction or an imported block survives a power cut, not only a killed
    process; without it LevelDB's writes reach the OS, which survives ``SIGKILL``."""
    if data_dir is None:
        if sync:
            raise ValueError("--sync-writes needs a data directory (not --in-memory)")
        return MemoryDB()
    return LevelDB(data_dir / "chaindata", sync=sync)
