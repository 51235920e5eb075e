"""A proof-of-work network of real node processes on 127.0.0.1, driven over JSON-RPC."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import rlp

from layerlab.l1.p2p import wire
from tests.netcluster import Cluster, wait_for
from tests.powutil import DEV, transfer

pytestmark = pytest.mark.slow

CHAIN_ID = 31337


def _raw(sender: int, nonce: int, to: bytes = b"\x99" * 20, value: int = 1000) -> str:
    return "0x" + transfer(sender, to, value, nonce).hex()


def _balances(net: Cluster, index: int, addresses: list[bytes]) -> list[int]:
    return [int(net.call(index, "eth_getBalance", "0x" + a.hex(), "latest"), 16) for a in addresses]


def test_four_nodes_gossip_transactions_and_agree_on_state(tmp_path: Path) -> None:
    with Cluster(tmp_path, 4, "pow") as net:
        wait_for(lambda: all(net.status(i)["peers"] == 3 for i in range(4)), 30, "full mesh")
        sent = []
        for k in range(24):  # spread over senders and entry nodes
            sender, entry = k % 3, k % 4
            sent.append(net.call(entry, "eth_sendRawTransaction", _raw(sender, k // 3)))
        wait_for(lambda: all(net.call(3, "eth_getTransactionReceipt", h) for h in sent), 90,
                 "every transaction mined")
        net.wait_converged(60)
        recipients = [b"\x99" * 20] + [bytes.fromhex(DEV[i].address[2:]) for i in range(3)]
        assert len({tuple(_balances(net, i, recipients)) for i in range(4)}) == 1
        for i in range(4):
            assert [int(net.call(i, "eth_getTransactionCount", DEV[s].address, "latest"), 16)
                    for s in range(3)] == [8, 8, 8]
        status = net.status(0)
        assert status["consensus"] == "pow" and status["finalized"]["kind"] == "k-confirmations"
        assert net.call(0, "eth_mining") is True and int(net.call(0, "eth_hashrate"), 16) > 0
        fin = int(net.call(0, "eth_getBlockByNumber", "finalized", False)["number"], 16)
        latest = int(net.call(0, "eth_getBlockByNumber", "latest", False)["number"], 16)
        assert max(latest - 9, 0) <= fin <= max(latest - 6, 0)  # k = 6 below the head (which may move)


async def _rogue_peer(port: int, genesis: bytes, frames: list[bytes], my_port: int = 1) -> bool:
    """Connect as a peer, send ``frames`` after the hello; True if the node hung up on us."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(wire.encode_frame(wire.HELLO, [wire.PROTOCOL_VERSION, CHAIN_ID, genesis,
                                                b"\xee" * 8, my_port, genesis, 0]))
    await wire.read_frame(reader)  # its hello
    for frame in frames:
        writer.write(frame)
    await writer.drain()
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), 10)
            if not data:
                return True
    except (TimeoutError, ConnectionError):
        return isinstance(writer.transport, asyncio.Transport) and writer.transport.is_closing()


def _forged_block(net: Cluster) -> bytes:
    """A block on the cluster's genesis with a valid seal over a wrong state root."""
    import json

    from layerlab.l1.chain.config import parse_config
    from layerlab.l1.launcher import engine_factory
    from layerlab.l1.node import Node
    from tests.powutil import seal

    cfg = parse_config(json.loads(net.config.read_text()))
    node = Node(cfg, data_dir=None, engine_factory=engine_factory(cfg))
    parent = node.head
    ts = parent.timestamp + 2
    block, _ = node.build_template(timestamp=ts, coinbase=b"\x01" * 20)
    eng = node.engine
    assert eng is not None
    difficulty = eng.difficulty_for(parent, ts)  # type: ignore[attr-defined]
    forged = seal(node, block.copy(header=block.header.copy(state_root=b"\x42" * 32)), difficulty)
    return bytes(rlp.encode(forged)), bytes(forged.hash)  # type: ignore[return-value]


def test_peer_sending_an_invalid_block_is_dropped_and_the_block_never_stored(tmp_path: Path) -> None:
    with Cluster(tmp_path, 1, "pow") as net:
        wait_for(lambda: net.head(0)[0] >= 2, 60, "a few blocks")
        genesis = bytes.fromhex(net.call(0, "eth_getBlockByNumber", "0x0", False)["hash"][2:])
        encoded, forged_hash = _forged_block(net)  # type: ignore[misc]
        port = net.specs[0].p2p_port
        assert asyncio.run(_rogue_peer(port, genesis, [wire.encode_frame(wire.BLOCK, [encoded, b""])]))
        status = net.status(0)
        assert status["p2p"]["blocks_invalid"] == 1 and status["p2p"]["peers_dropped"] == 1
        assert net.call(0, "eth_getBlockByHash", "0x" + forged_hash.hex(), False) is None
        # the banned address is refused at once, even with a valid frame
        assert asyncio.run(_rogue_peer(port, genesis, []))
        assert net.status(0)["p2p"]["peers_dropped"] == 1
        # an undecodable block and a garbage frame get the same treatment as the forged block
        assert asyncio.run(_rogue_peer(port, genesis, [wire.encode_frame(wire.BLOCK, [b"\xc0\x01", b""])], 2))
        assert asyncio.run(_rogue_peer(port, genesis, [b"\x00\x00\x00\x03\x63ab"], 3))
        assert net.status(0)["p2p"]["peers_dropped"] == 3
        before = net.head(0)[0]
        wait_for(lambda: net.head(0)[0] > before, 30, "the node to carry on mining")


def test_partition_heals_to_one_head(tmp_path: Path) -> None:
    with Cluster(tmp_path, 4, "pow") as net:
        wait_for(lambda: all(net.status(i)["peers"] == 3 for i in range(4)), 30, "full mesh")
        net.partition([0, 1], [2, 3])
        wait_for(lambda: all(net.status(i)["peers"] == 1 for i in range(4)), 30, "partition")
        start = max(n for n, _ in net.heads())
        wait_for(lambda: min(n for n, _ in net.heads()) >= start + 4, 90, "both sides to mine")
        left, right = net.head(0), net.head(2)
        assert left[1] != right[1]  # two different chains
        net.heal([0, 1], [2, 3])
        net.wait_converged(90, min_height=start + 4)
        reorgs = sum(net.status(i)["reorgs"] for i in range(4))
        assert reorgs >= 1  # one side gave up its branch


def test_killed_node_restarts_from_disk_and_rejoins(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, "pow") as net:
        wait_for(lambda: all(net.status(i)["peers"] == 2 for i in range(3)), 30, "full mesh")
        wait_for(lambda: net.head(2)[0] >= 3, 60, "some blocks")
        tx = net.call(2, "eth_sendRawTransaction", _raw(5, 0))
        net.kill(2)  # SIGKILL, possibly mid-block
        before = net.head(0)[0]
        wait_for(lambda: net.head(0)[0] >= before + 2, 60, "the others to go on")
        net.start(2)
        net.wait_converged(90, min_height=before + 2)
        wait_for(lambda: net.call(0, "eth_getTransactionReceipt", tx), 60, "the accepted tx mined")


def test_late_joiner_syncs_every_block(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, "pow", start=False) as net:
        for i in range(2):
            net.start(i)
        wait_for(lambda: net.head(0)[0] >= 8, 90, "a chain to sync")
        net.start(2)
        target = net.head(0)[0]
        wait_for(lambda: net.head(2)[0] >= target, 60, "the late node to sync")
        assert net.call(2, "eth_syncing") is False  # caught up
        number = min(target, net.head(2)[0]) - 1
        a = net.call(0, "eth_getBlockByNumber", hex(number), False)["hash"]
        b = net.call(2, "eth_getBlockByNumber", hex(number), False)["hash"]
        assert a == b


def test_every_miner_killed_at_once_restarts_from_disk(tmp_path: Path) -> None:
    """SIGKILL all three miners (some mid-seal, some mid-write); each restarts from its
    LevelDB with its chain and its pool, and the network carries on as one chain."""
    with Cluster(tmp_path, 3, "pow") as net:
        wait_for(lambda: all(net.status(i)["peers"] == 2 for i in range(3)), 30, "full mesh")
        wait_for(lambda: net.head(0)[0] >= 4, 60, "some blocks")
        txs = [net.call(i, "eth_sendRawTransaction", _raw(6 + i, 0)) for i in range(3)]
        heads = [net.head(i)[0] for i in range(3)]
        for i in range(3):
            net.kill(i)
        for i in range(3):
            net.start(i)
        for i in range(3):
            assert net.head(i)[0] >= heads[i] - 1
        wait_for(lambda: all(net.call(0, "eth_getTransactionReceipt", h) for h in txs), 60,
                 "every accepted transaction mined")
        net.wait_converged(60, min_height=max(heads) + 1)
