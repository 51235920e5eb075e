"""Data-availability sampling over the wire (PeerDAS, EIP-7594) for a node of a network.

A block names its blobs only by their versioned hashes; the blobs themselves stay with the
producer (its transactions' sidecars, :mod:`layerlab.l1.blobstore`). PeerDAS lets every
other node convince itself that the data was published without downloading it: the producer
extends each blob to 128 cells with KZG cell proofs (:func:`layerlab.l1.das.extend_blobs`)
and serves the 128 *columns*; each node fetches the columns it *custodies* (chosen by its
node id, Fulu ``das-core.md``'s ``get_custody_groups``; it keeps and serves them for the
retention window) and ``SAMPLES_PER_SLOT`` random others, from peers, with the Fulu
p2p-interface's ``DataColumnSidecarsByRoot`` request (here :data:`~layerlab.l1.p2p.wire.
GET_COLUMNS` / :data:`~layerlab.l1.p2p.wire.COLUMNS`).

:meth:`DataSampler.ensure_available` is what a node runs on a gossiped or synced block that
carries blobs, before the block goes anywhere near fork choice:

1. the commitments a peer sends with a column must hash to the block's versioned hashes
   (``kzg_to_versioned_hash``, EIP-4844), in order;
2. every cell of the column must verify against its commitment
   (``ckzg.verify_cell_kzg_proof_batch``); a peer that sends a column failing 1 or 2 is
   penalized, and the column is asked of another peer;
3. each round asks up to :data:`PEERS_PER_ROUND` peers (the one that sent the block first,
   then those whose advertised custody covers most of what is missing) and waits at most
   :data:`ROUND_TIMEOUT`; after :data:`ROUNDS` rounds, a column still missing makes the block
   unavailable: :class:`~layerlab.l1.das.DataUnavailable`, and the block is not imported (it
   is refused again without asking for :data:`REFUSAL_SECONDS`, after which a copy that
   arrives again is sampled again, since data may have become available by reconstruction).

A node that obtains at least half the columns (a supernode, custodying every group, asks for
all of them) recovers the rest (``ckzg.recover_cells_and_kzg_proofs``) and serves them: the
spec's reconstruction rule, which is why withholding fewer than 64 columns hides nothing
from a network with such a node, while withholding 64 or more is caught by a sampling node
with probability ``1 - C(128 - w, k) / C(128, k)`` (:func:`layerlab.l1.das.fooled_probability`).

``withhold`` makes a node dishonest, for tests: it never serves columns ``0 .. withhold-1``
of anything, not even of blocks it produced.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from eth.abc import BlockAPI

from layerlab.errors import LayerlabError
from layerlab.l1 import blobs, das
from layerlab.l1.das import NUMBER_OF_COLUMNS, DataColumn, DataUnavailable, ExtendedData
from layerlab.l1.p2p import wire
from layerlab.l1.p2p.wire import as_bytes, as_fields, as_int, as_list

if TYPE_CHECKING:
    from layerlab.l1.p2p.service import NetworkService, Peer

log = logging.getLogger(__name__)

ROUND_TIMEOUT = 4.0
"""Longest wait for one peer's answer in a round. A producer's first answer waits for its
cell proofs (about 0.4-1.4 s per blob on this machine); a peer that holds less than asked
answers at once with what it has, so withheld data costs no timeouts, only the rounds."""
ROUNDS = 4
ROUND_DELAY = 0.5
"""Pause after the first round, doubled after each further one (0.5 + 1 + 2 s in all)."""
PEERS_PER_ROUND = 4
REFUSAL_SECONDS = 12.0
PENALTY_BAD_COLUMN = 50
EXTENDED_CACHE = 16
"""Blocks whose full extension (all 128 columns) a producer keeps in memory to serve."""


def get_blob_versioned_hashes(block: BlockAPI) -> tuple[bytes, ...]:
    """The versioned hashes of every blob in ``block``, in transaction then blob order."""
    return tuple(bytes(h) for tx in block.transactions
                 if tx.type_id == blobs.BLOB_TX_TYPE for h in tx.blob_versioned_hashes)


def is_matching_commitments(commitments: Sequence[bytes], versioned_hashes: Sequence[bytes]) -> bool:
    """Whether the commitments are those the block's versioned hashes name (EIP-4844)."""
    return len(commitments) == len(versioned_hashes) and all(
        blobs.kzg_to_versioned_hash(blobs.KzgCommitment(c)) == h
        for c, h in zip(commitments, versioned_hashes, strict=True))


class DataSampler:
    """Custody, sampling and serving of data columns for one :class:`NetworkService`."""

    def __init__(self, service: NetworkService, *, custody_groups: int = das.CUSTODY_REQUIREMENT,
                 samples: int = das.SAMPLES_PER_SLOT, withhold: int = 0,
                 rng: random.Random | None = None) -> None:
        if not 0 <= withhold <= NUMBER_OF_COLUMNS:
            raise ValueError(f"withheld columns {withhold} not in [0, {NUMBER_OF_COLUMNS}]")
        self.service = service
        self.node = service.node
        self.custody_groups = custody_groups
        self.custody = tuple(das.custody_columns(self.get_node_number(service.node_id),
                                                 custody_groups))
        self.samples = samples
        self.withheld = frozenset(range(withhold))
        self.rng = rng or random.Random()
        self.stats = service.stats
        for key in ("das_pending", "das_sampled", "das_unavailable", "das_bad_columns", "das_columns_served",
                    "das_reconstructed", "das_last_unavailable"):
            self.stats.setdefault(key, 0)
        self._ids = itertools.count(1)
        self._requests: dict[int, tuple[Peer, bytes, asyncio.Future[list[Any]]]] = {}
        self._sampling: dict[bytes, asyncio.Future[None]] = {}
        self._available: OrderedDict[bytes, None] = OrderedDict()
        self._refused: OrderedDict[bytes, tuple[float, DataUnavailable]] = OrderedDict()
        self._extended: OrderedDict[bytes, asyncio.Future[ExtendedData]] = OrderedDict()

    @staticmethod
    def get_node_number(node_id: bytes) -> int:
        """The integer the custody rule hashes (the spec's ``NodeID``, a uint256)."""
        return int.from_bytes(node_id, "big")

    def get_peer_custody(self, peer: Peer) -> frozenset[int]:
        return frozenset(das.custody_columns(self.get_node_number(peer.node_id),
                                             min(peer.custody_groups, das.NUMBER_OF_CUSTODY_GROUPS)))

    # -- sampling ------------------------------------------------------------------------
    async def ensure_available(self, block: BlockAPI, source: Peer | None = None) -> None:
        """Return once the block's custody and sampled columns arrived and verified;
        raise :class:`DataUnavailable` if they did not. Blocks without blobs pass at once."""
        hashes = get_blob_versioned_hashes(block)
        block_hash = bytes(block.hash)
        if not hashes or block_hash in self._available:
            return
        refused = self._refused.get(block_hash)
        if refused is not None and refused[0] > time.monotonic():
            raise refused[1]
        running = self._sampling.get(block_hash)
        if running is None:
            running = asyncio.ensure_future(self._sample(block, hashes, source))
            self._sampling[block_hash] = running
            self.stats["das_pending"] = len(self._sampling)

            def done(_: object) -> None:
                self._sampling.pop(block_hash, None)
                self.stats["das_pending"] = len(self._sampling)

            running.add_done_callback(done)
        await asyncio.shield(running)

    async def _sample(self, block: BlockAPI, hashes: tuple[bytes, ...], source: Peer | None) -> None:
        block_hash, number = bytes(block.hash), int(block.number)
        others = [j for j in range(NUMBER_OF_COLUMNS) if j not in self.custody]
        wanted = sorted({*self.custody, *self.rng.sample(others, min(self.samples, len(others)))})
        got: dict[int, DataColumn] = {}
        commitments: tuple[bytes, ...] = ()
        invalid: set[int] = set()
        self.stats["das_sampled"] += 1
        for round_ in range(ROUNDS):
            need = [j for j in wanted if j not in got]
            peers = self._choose_peers(need, source)
            replies = await asyncio.gather(*(self._request(p, block_hash, need) for p in peers))
            for peer, items in zip(peers, replies, strict=True):
                bad = []
                for column, claimed in items:
                    if column.index not in need or column.index in got:
                        continue
                    if not is_matching_commitments(claimed, hashes) or \
                            not das.verify_column(column, claimed):
                        bad.append(column.index)
                        continue
                    got[column.index], commitments = column, claimed
                if bad:  # one penalty per answer: two bad answers and the peer is gone
                    invalid.update(bad)
                    self.stats["das_bad_columns"] += len(bad)
                    self.service.penalize(peer, PENALTY_BAD_COLUMN,
                                          f"columns {bad} of block #{number} fail the block's "
                                          "commitments or their cell proofs")
            if NUMBER_OF_COLUMNS // 2 <= len(got) < NUMBER_OF_COLUMNS:
                log.info("block #%d: reconstructing all columns from %d", number, len(got))
                got = {c.index: c for c in das.recover_columns(got.values(), len(hashes))}
                self.stats["das_reconstructed"] += 1
            if all(j in got for j in wanted):
                break
            if round_ + 1 < ROUNDS:
                await asyncio.sleep(ROUND_DELAY * 2**round_)
        missing = [j for j in wanted if j not in got]
        if missing:
            error = DataUnavailable(missing, sorted(invalid & set(missing)))
            self._remember(self._refused, block_hash, (time.monotonic() + REFUSAL_SECONDS, error))
            self.stats["das_unavailable"] += 1
            self.stats["das_last_unavailable"] = number
            log.warning("block #%d 0x%s refused: %s (sampled %d columns over %d rounds)",
                        number, block_hash.hex(), error, len(wanted), ROUNDS)
            raise error
        self.node.blobstore.put_columns(number, block_hash, commitments,
                                        [got[j] for j in sorted(got) if j in self.custody or
                                         len(self.custody) == NUMBER_OF_COLUMNS])
        self._remember(self._available, block_hash, None)
        log.info("block #%d: %d blob(s) available (%d columns verified)", number, len(hashes),
                 len(wanted))

    def _choose_peers(self, need: Sequence[int], source: Peer | None) -> list[Peer]:
        """The block's sender first, then the peers whose custody covers most of ``need``."""
        peers = [p for p in self.service.peers.values() if not p.writer.is_closing()]
        self.rng.shuffle(peers)
        wanted = set(need)
        peers.sort(key=lambda p: (p is not source, -len(wanted & self.get_peer_custody(p))))
        return peers[:PEERS_PER_ROUND]

    async def _request(self, peer: Peer, block_hash: bytes,
                       indices: Sequence[int]) -> list[tuple[DataColumn, tuple[bytes, ...]]]:
        request_id = next(self._ids)
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = (peer, block_hash, future)
        try:
            peer.send(wire.GET_COLUMNS, [request_id, block_hash, list(indices)])
            items = await asyncio.wait_for(future, ROUND_TIMEOUT)
        except (TimeoutError, ConnectionError, LayerlabError):
            return []
        finally:
            self._requests.pop(request_id, None)
        return [wire.decode_column(item) for item in items]

    def on_columns(self, peer: Peer, payload: Any) -> None:
        """A :data:`~layerlab.l1.p2p.wire.COLUMNS` answer; late or unasked ones are dropped."""
        fields = as_fields(payload, "columns", 3)
        request_id, block_hash = as_int(fields[0], "request id"), as_bytes(fields[1], "block hash", 32)
        items = as_list(fields[2], "columns", NUMBER_OF_COLUMNS)
        for item in items:
            wire.decode_column(item)  # malformed answers cost the peer at once (PeerError)
        pending = self._requests.get(request_id)
        if pending is not None and pending[0] is peer and pending[1] == block_hash \
                and not pending[2].done():
            pending[2].set_result(items)

    # -- serving -------------------------------------------------------------------------
    def on_block_produced(self, block: BlockAPI) -> None:
        """Start extending a block this node made, so the first request finds it ready."""
        if get_blob_versioned_hashes(block):
            self._extension(bytes(block.hash), int(block.number))

    def _extension(self, block_hash: bytes, number: int) -> asyncio.Future[ExtendedData] | None:
        """All 128 columns of a block whose blobs this node holds (computed off the loop)."""
        future = self._extended.get(block_hash)
        if future is not None:
            return future
        sidecars = self.node.blobstore.get(number, block_hash)
        if not sidecars:
            return None
        loop = asyncio.get_running_loop()
        if all(s.cell_proofs for s in sidecars):  # EIP-7594 wrappers: cells only
            future = loop.run_in_executor(
                None, das.extend_blobs_with_proofs, [s.blob for s in sidecars],
                [s.kzg_commitment for s in sidecars], [s.cell_proofs for s in sidecars])
        else:
            future = loop.run_in_executor(None, das.extend_blobs, [s.blob for s in sidecars])
        self._remember(self._extended, block_hash, future, EXTENDED_CACHE)
        return future

    async def serve(self, peer: Peer, request_id: int, block_hash: bytes,
                    indices: Sequence[int]) -> None:
        """Answer a :data:`~layerlab.l1.p2p.wire.GET_COLUMNS` with the columns held."""
        header = self.node.chain.get_header_by_hash(block_hash)
        columns: dict[int, DataColumn] = {}
        commitments: tuple[bytes, ...] = ()
        if header is not None:
            number = int(header.block_number)
            extension = self._extension(block_hash, number)
            if extension is not None:
                try:
                    data = await extension
                except LayerlabError as exc:
                    log.warning("cannot extend the blobs of block #%d: %s", number, exc)
                else:
                    commitments, columns = data.commitments, dict(enumerate(data.columns))
            else:
                commitments, columns = self.node.blobstore.get_columns(number, block_hash)
        out = [wire.encode_column(columns[j], commitments) for j in indices
               if j in columns and j not in self.withheld]
        self.stats["das_columns_served"] += len(out)
        peer.send(wire.COLUMNS, [request_id, block_hash, out])

    @staticmethod
    def _remember(table: OrderedDict[bytes, Any], key: bytes, value: Any, limit: int = 10_000) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > limit:
            table.popitem(last=False)
