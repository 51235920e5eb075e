"""Durable records of an L2 service (channel node, watchtower, operator) on LevelDB.

A service writes what it has signed or accepted here *before* it acknowledges it to
anyone, in one atomic LevelDB write batch per step, so a process killed at any moment
restarts with every state it ever acknowledged. Writes are not fsynced: they survive the
process being killed (the OS holds them), not a power cut; ``sync=True`` buys the latter
at ~1 ms per write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plyvel

from layerlab.errors import StorageError


class RecordStore:
    """JSON values under byte-string keys, with atomic multi-key writes."""

    def __init__(self, path: Path, *, sync: bool = False) -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._db: Any = plyvel.DB(str(path), create_if_missing=True)
        except plyvel.IOError as exc:
            raise StorageError(f"cannot open {path}: {exc} (is another process using it?)") from exc
        self._sync = sync

    def get(self, key: bytes) -> Any:
        raw = self._db.get(key)
        return None if raw is None else json.loads(raw)

    def put(self, key: bytes, value: Any) -> None:
        self.write({key: value})

    def put_encoded(self, key: bytes, json_text: str) -> None:
        """Store a value already encoded as JSON text (read back by :meth:`get`)."""
        self._db.put(key, json_text.encode(), sync=self._sync)

    def write(self, puts: dict[bytes, Any], deletes: tuple[bytes, ...] = ()) -> None:
        """Apply all puts and deletes atomically."""
        with self._db.write_batch(transaction=True, sync=self._sync) as batch:
            for key in deletes:
                batch.delete(key)
            for key, value in puts.items():
                batch.put(key, json.dumps(value, separators=(",", ":")).encode())

    def items(self, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        for key, raw in self._db.iterator(prefix=prefix):
            yield bytes(key), json.loads(raw)

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()
