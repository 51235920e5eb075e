"""Blob reads for clients: the fee history's blob columns and the beacon API's sidecars.

``GET /eth/v1/beacon/blob_sidecars/{block_id}`` (beacon-APIs, Deneb) is served on the
node's HTTP port beside JSON-RPC. ``block_id`` is ``head``, ``genesis``, ``finalized``,
a slot (here: a block number, one block per slot) or a ``0x`` block root (here: the
execution block hash, since the devnet has no separate beacon block). The optional
``indices`` query parameter selects blobs. Each item has ``index``, ``blob``,
``kzg_commitment`` and ``kzg_proof``; ``signed_block_header`` and
``kzg_commitment_inclusion_proof`` are omitted, because there is no beacon block body
whose SSZ root they would prove against. Sidecars past the retention window answer 404.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from layerlab.l1.rpc.codec import hex_data, hex_int
from layerlab.l1.rpc.common import Namespace

ROUTE = "/eth/v1/beacon/blob_sidecars/{block_id}"


def blob_fee_history(chain: Any, first: int, last: int) -> dict[str, list[Any]]:
    """``eth_feeHistory``'s ``baseFeePerBlobGas`` (one more entry than blocks: the next
    block's) and ``blobGasUsedRatio`` (blob gas used over the maximum per block), each
    under the blob schedule of its block's fork (the next block taken one second on)."""
    fees: list[str] = []
    ratios: list[float] = []
    header = None
    for number in range(first, last + 1):
        header = chain.get_header_by_number(number)
        if header is None:
            break
        fees.append(hex_int(chain.get_blob_base_fee(header)))
        max_blob_gas = chain.get_max_blob_gas(header.block_number, header.timestamp)
        ratios.append(int(getattr(header, "blob_gas_used", 0)) / max_blob_gas if max_blob_gas else 0.0)
    if header is not None:
        fees.append(hex_int(chain.get_next_blob_base_fee(header, int(header.timestamp) + 1)))
    return {"baseFeePerBlobGas": fees, "blobGasUsedRatio": ratios}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


def add_routes(app: web.Application, api: Namespace) -> None:
    """Register the beacon API route; ``api`` is one of the node's RPC namespaces (for
    its node and its block-tag resolution)."""

    async def blob_sidecars(request: web.Request) -> web.Response:
        node = api.node
        block_id = request.match_info["block_id"]
        chain = node.chain
        if block_id == "head":
            header = node.head
        elif block_id == "genesis":
            header = chain.get_header_by_number(0)
        elif block_id == "finalized":
            header = api.resolve("finalized")
        elif block_id.isdigit():
            header = chain.get_header_by_number(int(block_id))
        elif block_id.startswith("0x") and len(block_id) == 66:
            try:
                header = chain.get_header_by_hash(bytes.fromhex(block_id[2:]))
            except ValueError:
                return _error(400, f"Invalid block ID: {block_id}")
        else:
            return _error(400, f"Invalid block ID: {block_id}")
        if header is None:
            return _error(404, "Block not found")
        wanted: set[int] | None = None
        raw_indices = request.query.getall("indices", [])
        if raw_indices:
            try:
                wanted = {int(i) for part in raw_indices for i in part.split(",") if i}
            except ValueError:
                return _error(400, f"Invalid indices: {raw_indices}")
        number = int(header.block_number)
        head_number = int(node.head.block_number)
        if not node.blobstore.is_retained(number, head_number):
            return _error(404, f"blob sidecars of block {number} are past the retention window "
                               f"of {node.blobstore.retention} blocks (head {head_number})")
        finalized = api.resolve("finalized")
        data = [
            {"index": str(s.index), "blob": hex_data(s.blob),
             "kzg_commitment": hex_data(s.kzg_commitment), "kzg_proof": hex_data(s.kzg_proof)}
            for s in node.blobstore.get(number, bytes(header.hash))
            if wanted is None or s.index in wanted
        ]
        return web.json_response({
            "execution_optimistic": False,
            "finalized": finalized is not None and number <= int(finalized.block_number),
            "data": data,
        })

    app.router.add_get(ROUTE, blob_sidecars)
