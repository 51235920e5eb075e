"""Data-availability sampling (PeerDAS, EIP-7594) between real node processes over TCP.

A blob transaction goes to a proof-of-work miner by JSON-RPC; a second node, which does
not mine and never sees the blob, imports the block only after sampling its columns from
the miner, and then serves its own custody columns (asked here as a peer would, with the
wire's ``GET_COLUMNS``). When the miner withholds 64 of the 128 columns, the sampling node
refuses the block: its head stays below it and its status counts the block unavailable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import ckzg
import pytest

from layerlab.l1 import blobs, das
from layerlab.l1.p2p import wire
from tests.integration.test_blobs_node import make_blob, network_form
from tests.netcluster import Cluster, wait_for

pytestmark = pytest.mark.slow

CHAIN_ID = 31337
BLOB = make_blob(11)


def _cluster(tmp_path: Path, withhold: int) -> Cluster:
    """Node 0 mines (and withholds ``withhold`` columns); node 1 only samples."""
    net = Cluster(tmp_path, 2, "pow", start=False)
    net.specs[0].duty, net.specs[0].withhold_columns = 1.0, withhold
    net.specs[1].mine = False
    return net


async def _ask_columns(port: int, genesis: bytes, block_hash: bytes) -> tuple[bytes, int, list[Any]]:
    """Connect as a peer and ask for every column of a block: (its node id, its advertised
    custody group count, the columns it sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(wire.encode_frame(wire.HELLO, [wire.PROTOCOL_VERSION, CHAIN_ID, genesis,
                                                    b"\xee" * 8, 1, genesis, 0, 4]))
        msg_id, hello = await wire.read_frame(reader)
        assert msg_id == wire.HELLO
        writer.write(wire.encode_frame(wire.GET_COLUMNS, [7, block_hash,
                                                          list(range(das.NUMBER_OF_COLUMNS))]))
        await writer.drain()
        while True:
            msg_id, payload = await asyncio.wait_for(wire.read_frame(reader), 10)
            if msg_id == wire.COLUMNS:
                assert int.from_bytes(payload[0], "big") == 7 and payload[1] == block_hash
                return hello[3], int.from_bytes(hello[7], "big"), payload[2]
    finally:
        writer.close()


def _start(net: Cluster) -> None:
    for spec in net.specs:  # both at once: each spends seconds loading py-evm
        spec.start(net.config)
    for spec in net.specs:
        spec.wait_ready()
    wait_for(lambda: net.status(1)["peers"] == 1, 30, "peers connected")


def _send_blob(net: Cluster) -> str:
    tx_hash: str = net.call(0, "eth_sendRawTransaction", network_form(0, BLOB, 1))
    return tx_hash


def test_sampling_node_imports_an_available_block_and_serves_its_custody(tmp_path: Path) -> None:
    with _cluster(tmp_path, 0) as net:
        _start(net)
        tx_hash = _send_blob(net)
        receipt = wait_for(lambda: net.call(1, "eth_getTransactionReceipt", tx_hash), 40,
                           "the blob block imported by the sampling node")
        block_hash = bytes.fromhex(receipt["blockHash"][2:])
        p2p = net.status(1)["p2p"]
        assert p2p["das_sampled"] >= 1 and p2p["das_unavailable"] == 0
        genesis = bytes.fromhex(net.call(1, "eth_getBlockByNumber", "0x0", False)["hash"][2:])
        node_id, custody_groups, items = asyncio.run(
            _ask_columns(net.specs[1].p2p_port, genesis, block_hash))
        columns = [wire.decode_column(i) for i in items]
        commitment = bytes(ckzg.blob_to_kzg_commitment(BLOB, blobs.get_trusted_setup()))
        assert custody_groups == das.CUSTODY_REQUIREMENT
        assert sorted(c.index for c, _ in columns) == \
            das.custody_columns(int.from_bytes(node_id, "big"), custody_groups)
        assert all(claimed == (commitment,) and das.verify_column(c, claimed)
                   for c, claimed in columns)


def test_sampling_node_refuses_a_block_whose_columns_are_withheld(tmp_path: Path) -> None:
    with _cluster(tmp_path, 64) as net:
        _start(net)
        tx_hash = _send_blob(net)
        receipt = wait_for(lambda: net.call(0, "eth_getTransactionReceipt", tx_hash), 40,
                           "the blob block mined by the withholding node")
        number = int(receipt["blockNumber"], 16)
        wait_for(lambda: net.status(1)["p2p"]["das_unavailable"] >= 1, 30,
                 "the sampling node to find the data unavailable")
        wait_for(lambda: net.head(0)[0] >= number + 1, 40, "the miner to build on its block")
        status = net.status(1)
        assert status["p2p"]["das_last_unavailable"] == number
        assert status["head"]["number"] < number
        assert net.call(1, "eth_getTransactionReceipt", tx_hash) is None
        assert net.call(1, "eth_getBlockByHash", receipt["blockHash"], False) is None
        assert "data unavailable" in net.log(1)
