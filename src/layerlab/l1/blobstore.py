"""Blob sidecars kept beside the chain for a retention window (EIP-4844).

Blocks carry only the versioned hashes of their blobs; the blobs, commitments and proofs
stay with the node for ``retention`` blocks (on mainnet ``MIN_EPOCHS_FOR_BLOB_SIDECARS_REQUESTS``
= 4096 epochs, about 18 days) and are then deleted. Here a devnet block is a slot, so the
window is counted in blocks. Records live in the node's LevelDB under
``layerlab:blobs:<number, 8 bytes><block hash>``, written in one batch when the block is
stored, so they survive a restart like the chain.

Each record is the block's sidecars in order (transaction order, then blob order): RLP
``[[blob, kzg_commitment, kzg_proof], ...]`` with one blob proof per blob (computed from
the blob when the transaction came with EIP-7594 cell proofs, which are then kept too, as a
fourth item of 128 48-byte proofs joined, so that the block's columns cost no proving).

A node of a network that did not see a block's blobs keeps instead the data columns it
custodies (PeerDAS, EIP-7594; :mod:`layerlab.l1.p2p.sampling`), for the same window, under
``layerlab:columns:<number, 8 bytes><block hash>``: RLP ``[[kzg_commitment...], [[index,
[cell...], [cell_proof...]], ...]]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import rlp
from eth.abc import BlockAPI

from layerlab.l1 import blobs
from layerlab.l1.das import DataColumn
from layerlab.l1.storage import NODE_PREFIX, ChainDB

SIDECAR_PREFIX = NODE_PREFIX + b"blobs:"
COLUMN_PREFIX = NODE_PREFIX + b"columns:"
DEFAULT_RETENTION = 4096 * 32
"""Blocks (slots) a sidecar is kept: 4096 epochs of 32 slots, as the consensus specs."""


@dataclass(frozen=True, slots=True)
class StoredSidecar:
    """One blob of a block, as the beacon API's ``BlobSidecar`` needs it."""

    index: int
    blob: blobs.Blob
    kzg_commitment: blobs.KzgCommitment
    kzg_proof: blobs.KzgProof
    cell_proofs: tuple[blobs.KzgProof, ...] = ()
    """The blob's 128 cell proofs if its transaction carried them (EIP-7594), else empty."""


def _key(number: int, block_hash: bytes, prefix: bytes = SIDECAR_PREFIX) -> bytes:
    return prefix + number.to_bytes(8, "big") + bytes(block_hash)


class BlobStore:
    """Sidecars by block, pruned ``retention`` blocks behind the head."""

    def __init__(self, db: ChainDB, retention: int = DEFAULT_RETENTION) -> None:
        self.db = db
        self.retention = retention

    def put_block(self, block: BlockAPI,
                  sidecars: Iterable[tuple[bytes, blobs.BlobSidecar]]) -> int:
        """Store the sidecars of ``block``'s blob transactions, given as ``(tx hash,
        sidecar)`` for those the node holds; return how many blobs were stored."""
        by_hash = dict(sidecars)
        items: list[list[bytes]] = []
        for tx in block.transactions:
            sidecar = by_hash.get(bytes(tx.hash))
            if sidecar is None:
                continue
            cells = blobs.CELLS_PER_EXT_BLOB
            for i, (blob, commitment, proof) in enumerate(zip(
                    sidecar.blobs, sidecar.commitments, blobs.get_blob_proofs(sidecar), strict=True)):
                item = [blob, commitment, proof]
                if sidecar.wrapper_version == blobs.WRAPPER_VERSION_CELL_PROOFS:
                    item.append(b"".join(sidecar.proofs[i * cells:(i + 1) * cells]))
                items.append(item)
        if items:
            self.db.write_many({_key(int(block.number), block.hash): rlp.encode(items)}, [])
        return len(items)

    def get(self, number: int, block_hash: bytes) -> list[StoredSidecar]:
        """The sidecars of a block (empty if it had none or they were pruned)."""
        data = self.db.get(_key(number, block_hash))
        if data is None:
            return []
        out = []
        for i, (b, c, p, *rest) in enumerate(rlp.decode(data)):
            joined = rest[0] if rest else b""
            out.append(StoredSidecar(i, blobs.Blob(b), blobs.KzgCommitment(c), blobs.KzgProof(p),
                                     tuple(blobs.KzgProof(joined[k:k + 48])
                                           for k in range(0, len(joined), 48))))
        return out

    def put_columns(self, number: int, block_hash: bytes, commitments: Iterable[bytes],
                    columns: Iterable[DataColumn]) -> None:
        """Keep the data columns a node custodies for a block (with their commitments)."""
        items = [[c.index, list(c.cells), list(c.proofs)] for c in columns]
        if items:
            self.db.write_many({_key(number, block_hash, COLUMN_PREFIX):
                                rlp.encode([list(commitments), items])}, [])

    def get_columns(self, number: int, block_hash: bytes) -> tuple[tuple[bytes, ...],
                                                                     dict[int, DataColumn]]:
        """The commitments and the kept columns of a block (empty if none or pruned)."""
        data = self.db.get(_key(number, block_hash, COLUMN_PREFIX))
        if data is None:
            return (), {}
        commitments, items = rlp.decode(data)
        return tuple(commitments), {
            int.from_bytes(i, "big"): DataColumn(int.from_bytes(i, "big"), tuple(cells),
                                                 tuple(proofs))
            for i, cells, proofs in items}

    def is_retained(self, number: int, head_number: int) -> bool:
        """Whether block ``number``'s sidecars are still inside the window at this head."""
        return number > head_number - self.retention

    def prune(self, head_number: int) -> int:
        """Delete the sidecars and columns of blocks that left the window; return how many
        records."""
        stale = []
        for prefix in (SIDECAR_PREFIX, COLUMN_PREFIX):
            for key, _ in self.db.iterate_prefix(prefix):
                number = int.from_bytes(key[len(prefix):len(prefix) + 8], "big")
                if self.is_retained(number, head_number):
                    break  # keys are in block-number order
                stale.append(key)
        if stale:
            self.db.write_many({}, stale)
        return len(stale)
