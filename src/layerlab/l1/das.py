"""Data-availability sampling (PeerDAS, EIP-7594), simulated across a network's nodes.

A blob (EIP-4844) is 4096 field elements. PeerDAS extends each blob with a Reed-Solomon
code to twice its length and cuts the extended blob into ``NUMBER_OF_COLUMNS`` = 128
*cells* of 64 field elements (2,048 bytes), each with a KZG proof against the blob's
commitment (``ckzg.compute_cells_and_kzg_proofs``). Cell ``j`` of every blob in a block
forms *column* ``j`` (the spec's ``DataColumnSidecar``). Because the code has rate 1/2,
any 64 of the 128 columns recover the whole block (``ckzg.recover_cells_and_kzg_proofs``).

No node downloads everything. Each node *custodies* a few column groups chosen by its node
id (``get_custody_groups``, Fulu ``das-core.md``; ``CUSTODY_REQUIREMENT`` = 4) and
*samples* ``SAMPLES_PER_SLOT`` = 8 more random columns from peers that custody them. A node
treats a block as available, and accepts it, only if every column it custodies or samples
arrived and verified against the block's commitments. A producer that withholds enough of
the data to prevent recovery (more than half the columns) is caught by a sampling node with
probability ``1 - C(128 - w, k) / C(128, k)`` for ``w`` withheld columns and ``k`` columns
checked: below 2**-8 chance of being fooled at ``w`` = 64 and ``k`` = 8, and each further
sampling node is another independent trial. Withholding fewer columns does not hide data:
any node holding 64 columns reconstructs and serves the rest (the spec's reconstruction
rule), which :meth:`DasNetwork.reconstruct` does.

Over a real network of node processes the same checks run on columns fetched by TCP:
:mod:`layerlab.l1.p2p.sampling`. This module simulates the network in one process: nodes,
custody and the peers' answers are objects, the cryptography is real (c-kzg with py-evm's
trusted setup). A dishonest peer can answer with a tampered cell, which fails its proof and
counts as not answered.

References: EIP-7594; consensus-specs ``specs/fulu/das-core.md`` and ``p2p-interface.md``.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import ckzg

from layerlab.errors import InvalidBlock
from layerlab.l1.blobs import get_trusted_setup

NUMBER_OF_COLUMNS: Final = 128
NUMBER_OF_CUSTODY_GROUPS: Final = 128
CUSTODY_REQUIREMENT: Final = 4
SAMPLES_PER_SLOT: Final = 8
BYTES_PER_CELL: Final = 2048
BYTES_PER_PROOF: Final = 48
UINT256_MAX: Final = 2**256 - 1


class DataUnavailable(InvalidBlock):
    """A block whose sampled or custodied columns did not all arrive and verify; ``check``
    is the machine-readable tag."""

    check = "data-unavailable"

    def __init__(self, missing: Sequence[int], invalid: Sequence[int]) -> None:
        super().__init__(f"data unavailable: columns missing {list(missing)}, "
                         f"failing their KZG proofs {list(invalid)}")
        self.missing = tuple(missing)
        self.invalid = tuple(invalid)


# -- custody (Fulu das-core) -----------------------------------------------------------------
def get_custody_groups(node_id: int, custody_group_count: int) -> list[int]:
    """The custody groups of ``node_id``: ``sha256`` of successive ids (32 bytes, little
    endian), the first 8 bytes read little endian, modulo the number of groups."""
    if not 0 <= custody_group_count <= NUMBER_OF_CUSTODY_GROUPS:
        raise ValueError(f"custody group count {custody_group_count} is not in "
                         f"[0, {NUMBER_OF_CUSTODY_GROUPS}]")
    if custody_group_count == NUMBER_OF_CUSTODY_GROUPS:
        return list(range(NUMBER_OF_CUSTODY_GROUPS))
    current = node_id
    groups: list[int] = []
    while len(groups) < custody_group_count:
        digest = hashlib.sha256(current.to_bytes(32, "little")).digest()
        group = int.from_bytes(digest[:8], "little") % NUMBER_OF_CUSTODY_GROUPS
        if group not in groups:
            groups.append(group)
        current = 0 if current == UINT256_MAX else current + 1
    return sorted(groups)


def compute_columns_for_custody_group(group: int) -> list[int]:
    """The columns a custody group holds (one each while groups and columns are 128)."""
    if not 0 <= group < NUMBER_OF_CUSTODY_GROUPS:
        raise ValueError(f"custody group {group} out of range")
    per_group = NUMBER_OF_COLUMNS // NUMBER_OF_CUSTODY_GROUPS
    return [NUMBER_OF_CUSTODY_GROUPS * i + group for i in range(per_group)]


def custody_columns(node_id: int, custody_group_count: int = CUSTODY_REQUIREMENT) -> list[int]:
    return sorted(c for g in get_custody_groups(node_id, custody_group_count)
                  for c in compute_columns_for_custody_group(g))


# -- the extended data -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DataColumn:
    """Column ``index``: that cell of every blob in the block, with its proofs."""

    index: int
    cells: tuple[bytes, ...]
    proofs: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.cells) + sum(len(p) for p in self.proofs)


@dataclass(frozen=True, slots=True)
class ExtendedData:
    """A block's blobs as commitments and the 128 columns of their extension."""

    commitments: tuple[bytes, ...]
    columns: tuple[DataColumn, ...]


def extend_blobs(blobs: Sequence[bytes]) -> ExtendedData:
    """Commit to each blob and compute its 128 cells and cell proofs (EIP-7594)."""
    setup = get_trusted_setup()
    commitments = []
    per_blob: list[tuple[list[bytes], list[bytes]]] = []
    for i, blob in enumerate(blobs):
        try:
            commitments.append(bytes(ckzg.blob_to_kzg_commitment(blob, setup)))
            cells, proofs = ckzg.compute_cells_and_kzg_proofs(blob, setup)
        except (RuntimeError, ValueError) as exc:  # c-kzg: wrong length, non-canonical element
            raise InvalidBlock(f"blob {i} is not 4096 canonical field elements: {exc}") from exc
        per_blob.append(([bytes(c) for c in cells], [bytes(p) for p in proofs]))
    columns = tuple(
        DataColumn(j, tuple(cells[j] for cells, _ in per_blob),
                   tuple(proofs[j] for _, proofs in per_blob))
        for j in range(NUMBER_OF_COLUMNS))
    return ExtendedData(tuple(commitments), columns)


def extend_blobs_with_proofs(blobs: Sequence[bytes], commitments: Sequence[bytes],
                             cell_proofs: Sequence[Sequence[bytes]]) -> ExtendedData:
    """:func:`extend_blobs` for blobs that came with their cell proofs (EIP-7594's sidecar
    wrapper version 1, already checked when the transaction was admitted): only the cells
    are computed, an FFT, about a hundred times cheaper than computing the proofs."""
    if not len(blobs) == len(commitments) == len(cell_proofs) or \
            any(len(p) != NUMBER_OF_COLUMNS for p in cell_proofs):
        raise InvalidBlock(f"{len(blobs)} blobs, {len(commitments)} commitments and "
                           f"{[len(p) for p in cell_proofs]} cell proofs do not match")
    setup = get_trusted_setup()
    per_blob = []
    for i, blob in enumerate(blobs):
        try:
            per_blob.append([bytes(c) for c in ckzg.compute_cells(blob, setup)])
        except (RuntimeError, ValueError) as exc:
            raise InvalidBlock(f"blob {i} is not 4096 canonical field elements: {exc}") from exc
    columns = tuple(
        DataColumn(j, tuple(cells[j] for cells in per_blob),
                   tuple(bytes(proofs[j]) for proofs in cell_proofs))
        for j in range(NUMBER_OF_COLUMNS))
    return ExtendedData(tuple(bytes(c) for c in commitments), columns)


def verify_column(column: DataColumn, commitments: Sequence[bytes]) -> bool:
    """Every cell of the column against its blob's commitment, in one batch check."""
    if not 0 <= column.index < NUMBER_OF_COLUMNS or \
            not len(column.cells) == len(column.proofs) == len(commitments):
        return False
    if not commitments:
        return True
    try:
        return bool(ckzg.verify_cell_kzg_proof_batch(
            list(commitments), [column.index] * len(commitments), list(column.cells),
            list(column.proofs), get_trusted_setup()))
    except Exception:  # c-kzg raises on malformed points or cells: not a valid column
        return False


def recover_columns(columns: Iterable[DataColumn], n_blobs: int) -> tuple[DataColumn, ...]:
    """All 128 columns from any 64 or more of them (the code's rate is 1/2)."""
    have = sorted({c.index: c for c in columns}.values(), key=lambda c: c.index)
    if len(have) < NUMBER_OF_COLUMNS // 2:
        raise DataUnavailable([j for j in range(NUMBER_OF_COLUMNS)
                               if j not in {c.index for c in have}], [])
    setup = get_trusted_setup()
    indices = [c.index for c in have]
    per_blob = []
    for b in range(n_blobs):
        cells, proofs = ckzg.recover_cells_and_kzg_proofs(indices, [c.cells[b] for c in have],
                                                          setup)
        per_blob.append(([bytes(c) for c in cells], [bytes(p) for p in proofs]))
    return tuple(DataColumn(j, tuple(cells[j] for cells, _ in per_blob),
                            tuple(proofs[j] for _, proofs in per_blob))
                 for j in range(NUMBER_OF_COLUMNS))


def fooled_probability(withheld: int, samples: int, columns: int = NUMBER_OF_COLUMNS) -> float:
    """Chance that ``samples`` distinct random columns all avoid ``withheld`` ones."""
    if samples > columns - withheld:
        return 0.0
    return math.comb(columns - withheld, samples) / math.comb(columns, samples)


# -- the simulated network -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SamplingResult:
    node_id: int
    checked: tuple[int, ...]
    missing: tuple[int, ...]
    invalid: tuple[int, ...]
    bytes_downloaded: int

    @property
    def accepted(self) -> bool:
        return not self.missing and not self.invalid


@dataclass(slots=True)
class DasNode:
    node_id: int
    custody: tuple[int, ...]
    held: dict[int, DataColumn] = field(default_factory=dict)
    tampers: bool = False  # a dishonest peer: answers requests with a corrupted cell

    def answer(self, index: int) -> DataColumn | None:
        column = self.held.get(index)
        if column is None or not self.tampers or not column.cells:
            return column
        first = bytearray(column.cells[0])
        first[-1] ^= 1  # still a canonical field element's low byte; the proof fails
        return DataColumn(index, (bytes(first), *column.cells[1:]), column.proofs)


class DasNetwork:
    """``n_nodes`` nodes with seeded random ids, each custodying ``custody_groups`` groups,
    of which the first ``supernodes`` custody every group (as supernodes do on mainnet, so
    that a small network still has a custodian for every column)."""

    def __init__(self, n_nodes: int, *, custody_groups: int = CUSTODY_REQUIREMENT,
                 supernodes: int = 1, seed: int = 0) -> None:
        if n_nodes < 1 or not 0 <= supernodes <= n_nodes:
            raise ValueError(f"need 1 <= nodes and 0 <= supernodes <= nodes, got {n_nodes}, "
                             f"{supernodes}")
        self.rng = random.Random(seed)
        self.nodes = []
        for i in range(n_nodes):
            node_id = self.rng.getrandbits(256)
            count = NUMBER_OF_CUSTODY_GROUPS if i < supernodes else custody_groups
            self.nodes.append(DasNode(node_id, tuple(custody_columns(node_id, count))))
        self.commitments: tuple[bytes, ...] = ()

    def publish(self, data: ExtendedData, withheld: Iterable[int] = ()) -> None:
        """The producer gossips every column it does not withhold to its custodians."""
        hidden = set(withheld)
        self.commitments = data.commitments
        for node in self.nodes:
            node.held = {j: data.columns[j] for j in node.custody if j not in hidden}

    def reconstruct(self) -> int:
        """Nodes that together hold at least half the columns recover the rest and serve
        it (a supernode's job); returns how many columns were restored network-wide."""
        pooled: dict[int, DataColumn] = {}
        for node in self.nodes:
            if not node.tampers:
                for j, column in node.held.items():
                    if verify_column(column, self.commitments):
                        pooled[j] = column
        if len(pooled) < NUMBER_OF_COLUMNS // 2 or len(pooled) == NUMBER_OF_COLUMNS:
            return 0
        full = recover_columns(pooled.values(), len(self.commitments))
        restored = 0
        for node in self.nodes:
            for j in node.custody:
                if j not in node.held:
                    node.held[j] = full[j]
                    restored += 1
        return restored

    def sample(self, node: DasNode, samples: int = SAMPLES_PER_SLOT) -> SamplingResult:
        """Check the node's own custody columns and ``samples`` random others, each asked
        of the peers that custody it until one answers with a column that verifies."""
        others = [j for j in range(NUMBER_OF_COLUMNS) if j not in node.custody]
        checked = tuple(sorted({*node.custody, *self.rng.sample(others, samples)}))
        missing, invalid, downloaded = [], [], 0
        for j in checked:
            if j in node.held:
                candidates: list[DataColumn | None] = [node.held[j]]
            else:
                peers = [p for p in self.nodes if p is not node and j in p.custody]
                self.rng.shuffle(peers)
                candidates = [p.answer(j) for p in peers]
            answered = [c for c in candidates if c is not None]
            if not answered:
                missing.append(j)
                continue
            good = False
            for column in answered:
                downloaded += column.size if j not in node.held else 0
                if verify_column(column, self.commitments):
                    good = True
                    break
            if not good:
                invalid.append(j)
        return SamplingResult(node.node_id, checked, tuple(missing), tuple(invalid), downloaded)

    def accept(self, node: DasNode, samples: int = SAMPLES_PER_SLOT) -> SamplingResult:
        """:meth:`sample`, raising :class:`DataUnavailable` for a block to refuse."""
        result = self.sample(node, samples)
        if not result.accepted:
            raise DataUnavailable(result.missing, result.invalid)
        return result
