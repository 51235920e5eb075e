"""The L1 follower on a node process: ERC-20 ``Transfer`` events of ``LabToken`` as state
changes, delivered once and in order, after their confirmations, retracted when
``evm_revert`` drops their blocks (a reorg to a shorter chain, then other blocks at the
same heights), restored from the store without loss or repetition, and a typed error when
the node is gone. Then the watchtower on it: a stale close is contested, a close
retracted by a reorg is not, and a close seen before a crash is contested after it; and a
channel node, whose routing graph loses a channel whose opening a reorg retracted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from web3 import Web3
from web3.contract import Contract

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l1.network import free_port
from layerlab.l2.channels.node import ChannelNode, NodeConfig
from layerlab.l2.channels.onchain import ChannelContract, ChannelStatus, deploy_channels
from layerlab.l2.channels.signing import sign_state
from layerlab.l2.channels.types import ChannelId, ChannelState, SignedState
from layerlab.l2.channels.watchtower import Watchtower
from layerlab.l2.follower import (
    EventReceived,
    EventRetracted,
    L1Change,
    L1Follower,
    L1Unavailable,
    NewBlock,
    ReorgTooDeep,
    Writes,
)
from layerlab.l2.l1client import L1Contract
from layerlab.l2.store import RecordStore
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
DEPLOYER, RECIPIENT, A, B, TOWER = DEV[0], DEV[1], DEV[2], DEV[3], DEV[4]
ETHER = 10**18


@pytest.fixture(scope="module")
def token(w3: Web3) -> L1Contract:
    contract = deploy(w3, load_artifact("LabToken"), "Lab Token", "LAB", 10**30,
                      sender=DEPLOYER.address, private_key="0x" + DEPLOYER.private_key.hex())
    return L1Contract(w3, contract, name="LabToken")


def pay(w3: Web3, token: L1Contract, *amounts: int) -> None:
    """One transfer per amount, each mined in its own block (the node automines)."""
    contract: Contract = token.contract
    for amount in amounts:
        tx = contract.functions.transfer(RECIPIENT.address, amount).transact(
            {"from": DEPLOYER.address})
        assert w3.eth.wait_for_transaction_receipt(tx, timeout=30)["status"] == 1


def mine(node: NodeProcess, blocks: int) -> None:
    rpc(node.url, "anvil_mine", [hex(blocks)])


def received(changes: Sequence[L1Change]) -> list[int]:
    return [c.event.args["value"] for c in changes if isinstance(c, EventReceived)]


def retracted(changes: Sequence[L1Change]) -> list[int]:
    return [c.event.args["value"] for c in changes if isinstance(c, EventRetracted)]


def follower(w3: Web3, token: L1Contract, **kwargs: object) -> L1Follower:
    """A follower starting after the current head (earlier tests' transfers are not ours)."""
    return L1Follower(token, start_block=int(w3.eth.block_number) + 1, **kwargs)  # type: ignore[arg-type]


def test_events_are_delivered_once_in_chain_order(w3: Web3, token: L1Contract) -> None:
    f = follower(w3, token)
    pay(w3, token, 1, 2, 3)
    first = f.poll()
    assert received(first) == [1, 2, 3]
    assert isinstance(first[-1], NewBlock) and first[-1].number == w3.eth.block_number
    blocks = [c.event.block_number for c in first if isinstance(c, EventReceived)]
    assert blocks == sorted(blocks) and len(set(blocks)) == 3
    assert f.poll() == []  # nothing new, the head did not move
    pay(w3, token, 4)
    assert received(f.poll()) == [4]


def test_a_poll_reads_at_most_max_blocks(w3: Web3, token: L1Contract) -> None:
    f = follower(w3, token, max_blocks=2, chunk_blocks=1)
    pay(w3, token, 11, 12, 13, 14, 15)
    got = [received(f.poll()) for _ in range(4)]
    assert got == [[11, 12], [13, 14], [15], []]


def test_events_wait_for_their_confirmations(w3: Web3, token: L1Contract, node: NodeProcess) -> None:
    f = follower(w3, token, confirmations=3)
    pay(w3, token, 7)
    block = int(w3.eth.block_number)
    assert received(f.poll()) == []
    mine(node, 2)
    assert received(f.poll()) == []  # 2 blocks on top: not yet
    mine(node, 1)
    changes = f.poll()
    assert received(changes) == [7]
    [event] = [c.event for c in changes if isinstance(c, EventReceived)]
    assert event.block_number == block and w3.eth.block_number == block + 3
    assert f.cursor == block + 1


def test_a_reorg_retracts_the_dropped_events_newest_first_and_delivers_the_new(
        w3: Web3, token: L1Contract, node: NodeProcess) -> None:
    f = follower(w3, token)
    pay(w3, token, 100)
    snapshot = rpc(node.url, "evm_snapshot")
    pay(w3, token, 101, 102)
    assert received(f.poll()) == [100, 101, 102]
    dropped_head = int(w3.eth.block_number)
    assert rpc(node.url, "evm_revert", [snapshot]) is True
    pay(w3, token, 201)  # a different block at the height of 101's
    mine(node, 3)  # the new chain is longer than the old one
    changes = f.poll()
    assert retracted(changes) == [102, 101]
    assert received(changes) == [201]
    kinds = [type(c) for c in changes]
    assert kinds == [EventRetracted, EventRetracted, EventReceived, NewBlock]
    assert w3.eth.block_number > dropped_head
    assert f.poll() == []


def test_a_reorg_to_a_shorter_chain_retracts_without_new_events(
        w3: Web3, token: L1Contract, node: NodeProcess) -> None:
    f = follower(w3, token)
    snapshot = rpc(node.url, "evm_snapshot")
    pay(w3, token, 301, 302)
    assert received(f.poll()) == [301, 302]
    rpc(node.url, "evm_revert", [snapshot])
    changes = f.poll()
    assert retracted(changes) == [302, 301] and received(changes) == []
    assert isinstance(changes[-1], NewBlock) and changes[-1].number == w3.eth.block_number
    pay(w3, token, 303)
    assert received(f.poll()) == [303]


def test_a_reorg_within_the_confirmation_depth_is_never_seen(
        w3: Web3, token: L1Contract, node: NodeProcess) -> None:
    f = follower(w3, token, confirmations=2)
    snapshot = rpc(node.url, "evm_snapshot")
    pay(w3, token, 401)
    assert f.poll()[-1:] and received(f.poll()) == []
    rpc(node.url, "evm_revert", [snapshot])
    pay(w3, token, 402)
    mine(node, 2)
    changes = f.poll()
    assert retracted(changes) == [] and received(changes) == [402]


def test_a_fork_below_the_kept_history_is_an_error(
        w3: Web3, token: L1Contract, node: NodeProcess) -> None:
    f = follower(w3, token, history=2)
    snapshot = rpc(node.url, "evm_snapshot")
    pay(w3, token, 501, 502, 503, 504)
    assert received(f.poll()) == [501, 502, 503, 504]
    rpc(node.url, "evm_revert", [snapshot])
    pay(w3, token, 505)
    with pytest.raises(ReorgTooDeep) as err:
        f.poll()
    assert err.value.fork_below == f.cursor - 2


def test_a_restart_from_the_stored_cursor_neither_loses_nor_repeats(
        w3: Web3, token: L1Contract, node: NodeProcess, tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "store")
    start = int(w3.eth.block_number) + 1
    first = L1Follower(token, start_block=start, store=store, key=b"f")
    pay(w3, token, 601, 602)
    assert received(first.poll()) == [601, 602]
    first.commit(Writes({b"derived": [601, 602]}))
    pay(w3, token, 603)
    assert received(first.poll()) == [603]  # polled but not committed: delivered again below

    again = L1Follower(token, start_block=start, store=store, key=b"f")
    assert store.get(b"derived") == [601, 602]
    pay(w3, token, 604)
    assert received(again.poll()) == [603, 604]
    again.commit(Writes({b"derived": [601, 602, 603, 604]}))
    assert received(L1Follower(token, start_block=start, store=store, key=b"f").poll()) == []
    store.close()


def test_a_restored_follower_retracts_what_it_delivered_before_the_restart(
        w3: Web3, token: L1Contract, node: NodeProcess, tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "store")
    start = int(w3.eth.block_number) + 1
    before = L1Follower(token, start_block=start, store=store)
    snapshot = rpc(node.url, "evm_snapshot")
    pay(w3, token, 701, 702)
    delivered = [c.event for c in before.poll() if isinstance(c, EventReceived)]
    before.commit()
    rpc(node.url, "evm_revert", [snapshot])
    after = L1Follower(token, start_block=start, store=store)
    changes = after.poll()
    assert [c.event for c in changes if isinstance(c, EventRetracted)] == delivered[::-1]
    store.close()


def test_an_unreachable_node_is_a_typed_error() -> None:
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{free_port()}", request_kwargs={"timeout": 2}))
    contract = w3.eth.contract(address=Web3.to_checksum_address("0x" + "11" * 20),
                               abi=load_artifact("LabToken").abi)
    f = L1Follower(L1Contract(w3, contract, name="LabToken"))
    with pytest.raises(L1Unavailable, match="eth_getBlockByNumber"):
        f.poll()
    assert f.cursor == 0 and f.head is None


# -- the watchtower on the follower ---------------------------------------------------------

@pytest.fixture(scope="module")
def channels(w3: Web3) -> ChannelContract:
    return deploy_channels(w3, DEPLOYER.private_key)


def states(channels: ChannelContract, *nonces: int) -> tuple[ChannelId, list[SignedState]]:
    """Open a 5-ether channel A -> B; states at ``nonces``, each paying B one ether more."""
    channel_id, _ = channels.open(A.private_key, B.address, 5 * ETHER, 10)
    domain = channels.domain()
    signed = []
    for i, nonce in enumerate(nonces):
        s = ChannelState(channel_id, nonce, 5 * ETHER, 0, (4 - i) * ETHER, (1 + i) * ETHER)
        signed.append(SignedState(s, sign_state(domain, s, A.private_key),
                                  sign_state(domain, s, B.private_key)))
    return channel_id, signed


def tower_at(channels: ChannelContract, w3: Web3, path: Path, start: int) -> Watchtower:
    return Watchtower(channels, TOWER.private_key, RecordStore(path), start_block=start)


def test_the_tower_contests_a_close_on_a_revoked_state(
        channels: ChannelContract, w3: Web3, tmp_path: Path) -> None:
    tower = tower_at(channels, w3, tmp_path / "tower", int(w3.eth.block_number) + 1)
    channel_id, (revoked, latest) = states(channels, 2, 9)
    assert tower.register(latest)
    channels.close(A.private_key, revoked)
    [contest] = tower.poll()
    assert (contest.channel_id, contest.closed_nonce, contest.our_nonce) == (channel_id, 2, 9)
    assert channels.get_channel(channel_id).status is ChannelStatus.SETTLED  # B got it all
    assert tower.poll() == [] and tower.get_pending() == []
    tower.store.close()


def test_the_tower_does_not_contest_a_close_a_reorg_dropped(
        channels: ChannelContract, w3: Web3, node: NodeProcess, tmp_path: Path) -> None:
    tower = tower_at(channels, w3, tmp_path / "tower", int(w3.eth.block_number) + 1)
    channel_id, (revoked, latest) = states(channels, 2, 9)
    assert tower.register(latest)
    snapshot = rpc(node.url, "evm_snapshot")
    channels.close(A.private_key, revoked)
    tower.follower.commit(tower.apply_changes(tower.follower.poll()))
    assert [c.channel_id for c in tower.get_pending()] == [channel_id]
    rpc(node.url, "evm_revert", [snapshot])
    mine(node, 2)
    tower.follower.commit(tower.apply_changes(tower.follower.poll()))
    assert tower.get_pending() == []  # dropped, not left for the contract to refuse
    assert tower.poll() == []
    assert channels.get_channel(channel_id).status is ChannelStatus.OPEN
    tower.store.close()


def test_a_close_seen_before_a_crash_is_contested_after_the_restart(
        channels: ChannelContract, w3: Web3, tmp_path: Path) -> None:
    start = int(w3.eth.block_number) + 1
    tower = tower_at(channels, w3, tmp_path / "tower", start)
    channel_id, (revoked, latest) = states(channels, 2, 9)
    assert tower.register(latest)
    channels.close(A.private_key, revoked)
    tower.follower.commit(tower.apply_changes(tower.follower.poll()))
    tower.store.close()  # killed before it sent the challenge

    again = tower_at(channels, w3, tmp_path / "tower", start)
    assert again.follower.cursor == w3.eth.block_number + 1  # the close is not read again
    [contest] = again.poll()
    assert (contest.channel_id, contest.closed_nonce, contest.our_nonce) == (channel_id, 2, 9)
    again.store.close()


def test_a_channel_node_drops_from_its_graph_a_channel_whose_opening_was_retracted(
        channels: ChannelContract, w3: Web3, node: NodeProcess, tmp_path: Path) -> None:
    async def until(predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 20
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        watcher = ChannelNode(NodeConfig(private_key=RECIPIENT.private_key, data_dir=tmp_path,
                                         l1_url=node.url, contract_address=channels.address,
                                         poll_interval=0.05))
        await watcher.start()
        try:
            snapshot = rpc(node.url, "evm_snapshot")
            channel_id, _ = await asyncio.to_thread(channels.open, A.private_key, B.address,
                                                    ETHER, 10)
            await until(lambda: channel_id in watcher.graph.channels, "the opening")
            rpc(node.url, "evm_revert", [snapshot])
            head = int(w3.eth.block_number)
            await until(lambda: channel_id not in watcher.graph.channels, "the retraction")
            await until(lambda: watcher.block == head, "the node's clock to go back")
        finally:
            await watcher.stop()

    asyncio.run(scenario())
