"""Wire messages between L1 nodes: a 4-byte length, a 1-byte message id, an RLP payload.

The message set is a small subset of Ethereum's ``eth`` wire protocol (devp2p ``eth/68``):
``Status`` (here :data:`HELLO`), ``Transactions``, ``NewBlock``, and a locator-based
``GetBlocks``/``Blocks`` pair in the style of Bitcoin's ``getblocks`` (the requester lists
hashes of its chain at exponentially spaced heights; the responder continues from the
first one it has on its own canonical chain). Consensus votes (attestations, slashings)
travel as opaque bytes that the consensus layer encodes, as the beacon chain's gossip
topics do. There is no RLPx encryption: nodes run on loopback and every block and vote
is verified on its own merits, whoever relayed it.

Blob data travels apart from blocks, as PeerDAS (EIP-7594) has it: :data:`GET_COLUMNS`
asks a peer for some of a block's data columns by block hash (the Fulu p2p-interface's
``DataColumnSidecarsByRoot`` request) and :data:`COLUMNS` answers with those it holds, each
column as ``[index, [kzg_commitment...], [cell...], [cell_proof...]]`` (the
``DataColumnSidecar``'s fields, without the beacon block header the spec signs them under:
the block itself carries the blobs' versioned hashes, which the commitments must match).
"""


from __future__ import annotations

import asyncio
import struct
from typing import Any

import rlp

from layerlab.errors import MalformedEncoding, PeerError
from layerlab.l1.das import BYTES_PER_CELL, BYTES_PER_PROOF, NUMBER_OF_COLUMNS, DataColumn
from layerlab.primitives.codec import decode_uint

PROTOCOL_VERSION = 1
MAX_FRAME = 16 << 20
MAX_BLOCKS_PER_REQUEST = 128

HELLO = 0
TXS = 1
BLOCK = 2
GET_BLOCKS = 3
BLOCKS = 4
ATTESTATION = 5
"""Gossip id of an attestation vote (payload: ``beacon.encode_attestation``)."""
SLASHING = 6
"""Gossip id of slashing evidence (payload: ``beacon.encode_slashing``)."""
GET_COLUMNS = 7
"""Request for data columns of a block (``DataColumnSidecarsByRoot``): ``[request id, block
hash, [column index...]]``, at most :data:`NUMBER_OF_COLUMNS` distinct indices."""
COLUMNS = 8
"""Answer to :data:`GET_COLUMNS`: ``[request id, block hash, [column...]]`` with the
requested columns the peer holds (possibly none)."""
MAX_BLOBS_PER_COLUMN = 32
"""Cells per column on the wire: 128 such columns are 8.8 MB, inside :data:`MAX_FRAME`."""
BYTES_PER_COMMITMENT = 48
NAMES = {HELLO: "hello", TXS: "txs", BLOCK: "block", GET_BLOCKS: "get-blocks", BLOCKS: "blocks",
         ATTESTATION: "attestation", SLASHING: "slashing", GET_COLUMNS: "get-columns",
         COLUMNS: "columns"}


def encode_frame(msg_id: int, payload: Any) -> bytes:
    body = bytes([msg_id]) + rlp.encode(payload)
    if len(body) > MAX_FRAME:
        raise PeerError(f"{NAMES.get(msg_id, msg_id)} message of {len(body)} bytes exceeds {MAX_FRAME}")
    return bytes(struct.pack(">I", len(body)) + body)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, Any]:
    """One message as ``(id, decoded RLP)``; :class:`PeerError` on a bad frame,
    ``asyncio.IncompleteReadError`` at EOF."""
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    if length == 0 or length > MAX_FRAME:
        raise PeerError(f"frame length {length} outside 1..{MAX_FRAME}")
    body = await reader.readexactly(length)
    msg_id = body[0]
    if msg_id not in NAMES:
        raise PeerError(f"unknown message id {msg_id}")
    try:
        return msg_id, rlp.decode(body[1:])
    except (rlp.DecodingError, ValueError) as exc:
        raise PeerError(f"{NAMES[msg_id]} payload is not RLP: {exc}") from exc


def as_int(value: Any, what: str) -> int:
    """A wire integer under the codec's one rule (minimal big-endian, at most 256 bits)."""
    if isinstance(value, bytes) and len(value) > 32:
        raise PeerError(f"{what}: integer of {len(value)} bytes exceeds 32")
    try:
        return decode_uint(value, what)
    except MalformedEncoding as exc:
        raise PeerError(str(exc)) from exc


def as_bytes(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise PeerError(f"{what}: expected {size or 'some'} bytes")
    return value


def as_list(value: Any, what: str, limit: int = 100_000) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise PeerError(f"{what}: expected a list of at most {limit} items")
    return value


def as_fields(value: Any, what: str, count: int) -> list[Any]:
    """An RLP list of exactly ``count`` items."""
    if not isinstance(value, list) or len(value) != count:
        raise PeerError(f"{what}: expected a list of {count} items")
    return value


def as_column_indices(value: Any, what: str) -> list[int]:
    """Distinct column indices below :data:`NUMBER_OF_COLUMNS`, in the order given."""
    indices = [as_int(v, what) for v in as_list(value, what, NUMBER_OF_COLUMNS)]
    if any(j >= NUMBER_OF_COLUMNS for j in indices) or len(set(indices)) != len(indices):
        raise PeerError(f"{what}: indices must be distinct and below {NUMBER_OF_COLUMNS}")
    return indices


def encode_column(column: DataColumn, commitments: tuple[bytes, ...]) -> list[Any]:
    return [column.index, list(commitments), list(column.cells), list(column.proofs)]


def decode_column(value: Any) -> tuple[DataColumn, tuple[bytes, ...]]:
    """A column and the commitments it claims; sizes are checked, proofs are not."""
    fields = as_fields(value, "column", 4)
    index = as_int(fields[0], "column index")
    if index >= NUMBER_OF_COLUMNS:
        raise PeerError(f"column index {index} is not below {NUMBER_OF_COLUMNS}")
    commitments = tuple(as_bytes(c, "kzg commitment", BYTES_PER_COMMITMENT)
                        for c in as_list(fields[1], "commitments", MAX_BLOBS_PER_COLUMN))
    cells = tuple(as_bytes(c, "cell", BYTES_PER_CELL)
                  for c in as_list(fields[2], "cells", MAX_BLOBS_PER_COLUMN))
    proofs = tuple(as_bytes(p, "cell proof", BYTES_PER_PROOF)
                   for p in as_list(fields[3], "cell proofs", MAX_BLOBS_PER_COLUMN))
    if not len(commitments) == len(cells) == len(proofs):
        raise PeerError(f"column {index}: {len(commitments)} commitments, {len(cells)} cells, "
                        f"{len(proofs)} proofs")
    return DataColumn(index, cells, proofs), commitments
