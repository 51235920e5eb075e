"""HTLC forwarding by the real switch, three nodes over real sockets on 127.0.0.1, no L1.

A pays C through B. The channels are opened off-chain here (``create_channel`` with the
deposits as if seen on L1): nothing in forwarding reads the L1 but its clock, which is
set by hand. B forwards only when the incoming lock leaves it its fee (BOLT 7:
``base_fee + amount * proportional_millionths // 1_000_000``) and at least its
``cltv_delta`` blocks (BOLT 2 ``cltv_expiry_delta``); otherwise it fails the incoming lock
back, which gives A its money back in the next state.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from eth_hash.auto import keccak

from layerlab.errors import ChannelError
from layerlab.l2.channels import machine as m
from layerlab.l2.channels.routing import FeePolicy
from layerlab.l2.channels.switch import INVOICE_PREFIX, HtlcSwitch
from layerlab.l2.channels.transport import PeerLink, PeerTransport
from layerlab.l2.channels.types import ChannelId, Domain, Hashlock, Preimage
from layerlab.l2.store import RecordStore
from layerlab.primitives.types import BlockNumber, Wei

DOMAIN = Domain(1337, b"\xcc" * 20)
KEYS = {"a": b"\x11" * 32, "b": b"\x22" * 32, "c": b"\x44" * 32}
AB = ChannelId(bytes(keccak(b"channel a-b")))
BC = ChannelId(bytes(keccak(b"channel b-c")))
DEPOSIT = 10_000_000
BLOCK = 100
POLICY = FeePolicy(Wei(1), 100, 10)
AMOUNT = 1_000_000
FEE = 1 + AMOUNT * 100 // 1_000_000  # B's fee on forwarding AMOUNT: 101
EXPIRY = BLOCK + 40  # the lock A offers B


async def no_l1(channel_id: bytes) -> Any:
    raise ChannelError("no L1 in this test")


class Node:
    """A switch and its transport: the parts of a ChannelNode that forwarding uses."""

    def __init__(self, name: str, tmp_path: Path, directory: dict[bytes, tuple[str, int]]) -> None:
        self.key = KEYS[name]
        self.address = m.compute_address(self.key)
        self.store = RecordStore(tmp_path / name)
        self.transport = PeerTransport(self.key, self.address, find_peer=directory.get,
                                       on_frame=self._on_frame,
                                       on_connected=lambda peer: self.switch.reestablish(peer))
        self.switch = HtlcSwitch(key=self.key, store=self.store, fee_policy=POLICY,
                                 send=self.transport.send_quietly, find_tower=lambda: None,
                                 close_on_l1=no_l1, block=BLOCK)

    async def _on_frame(self, link: PeerLink, frame: dict[str, Any]) -> None:
        self.switch.on_msg_frame(link.address, frame)

    def open(self, channel_id: ChannelId, role: m.Role, peer: Node) -> None:
        """Track a channel funded by its party ``a`` alone."""
        self.switch.save_channel(m.create_channel(
            role=role, private_key=self.key, peer=peer.address, domain=DOMAIN,
            channel_id=channel_id, deposit_a=Wei(DEPOSIT), deposit_b=Wei(0)))
        self.switch.start_worker(channel_id)

    def channel(self, channel_id: ChannelId) -> m.Channel:
        return self.switch.channels[channel_id]


async def until(predicate: Any, what: str, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def pay_through_b(tmp_path: Path, hop_amount: int, hop_expiry: int, lock_amount: int,
                        lock_expiry: int = EXPIRY) -> tuple[m.Event, dict[str, Node]]:
    """A offers B a lock of ``lock_amount`` asking B to forward ``hop_amount`` to C with
    ``hop_expiry``; C holds the invoice for AMOUNT. Returns A's outcome and the nodes once
    both channels have no lock left."""
    directory: dict[bytes, tuple[str, int]] = {}
    nodes = {name: Node(name, tmp_path, directory) for name in KEYS}
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    for node in nodes.values():
        await node.transport.start()
        directory[node.address] = ("127.0.0.1", node.transport.port)
    a.open(AB, "a", b)
    b.open(AB, "b", a)
    b.open(BC, "a", c)
    c.open(BC, "b", b)
    preimage = Preimage(b"\x07" * 32)
    hashlock = m.compute_hashlock(preimage)
    # what ControlApi.create_invoice stores for an invoice of C's
    c.store.put(INVOICE_PREFIX + hashlock, {"amount": AMOUNT, "preimage": "0x" + preimage.hex(),
                                            "paid": False})
    try:
        outcome = await a.switch.submit(AB, m.AddLock(Wei(lock_amount), Hashlock(hashlock),
                                                      BlockNumber(lock_expiry)), {"hops": [
            {"channel_id": "0x" + BC.hex(), "amount": hop_amount, "expiry": hop_expiry}]})
        await until(lambda: all(not n.channel(cid).latest.state.locks and n.channel(cid).pending
                                is None for n, cid in ((a, AB), (b, AB), (b, BC), (c, BC))),
                    "every lock to be settled or failed")
        await asyncio.sleep(0.05)  # nothing more is coming
        return outcome, nodes
    finally:
        for node in nodes.values():
            await node.switch.stop()
            await node.transport.stop()
            node.store.close()


def balances(channel: m.Channel) -> tuple[int, int, int]:
    state = channel.latest.state
    return state.nonce, state.balance_a, state.balance_b


def test_a_lock_paying_the_fee_and_the_delta_is_forwarded_and_settled(tmp_path: Path) -> None:
    outcome, nodes = asyncio.run(pay_through_b(tmp_path, AMOUNT, EXPIRY - POLICY.cltv_delta,
                                               AMOUNT + FEE))
    assert isinstance(outcome, m.UpdateCommitted)
    # add + settle on each hop; A paid amount + fee, C received the amount, B kept the fee
    assert balances(nodes["a"].channel(AB)) == (2, DEPOSIT - AMOUNT - FEE, AMOUNT + FEE)
    assert balances(nodes["c"].channel(BC)) == (2, DEPOSIT - AMOUNT, AMOUNT)
    assert nodes["b"].switch.forwards[bytes(m.compute_hashlock(Preimage(b"\x07" * 32)))] \
        .state == "settled"


# the earliest expiry a new lock may have at BLOCK (the machine's default min_lock_delta)
SOONEST = BLOCK + m.DEFAULT_MIN_LOCK_DELTA + 1


@pytest.mark.parametrize(("lock_amount", "lock_expiry", "hop_expiry", "forwards", "why"), [
    (AMOUNT + FEE - 1, EXPIRY, EXPIRY - POLICY.cltv_delta, [], "one wei short of B's fee"),
    (AMOUNT + FEE, EXPIRY, EXPIRY - POLICY.cltv_delta + 1, [], "one block short of B's delta"),
    # B's own lock to C would expire too soon: its channel refuses to offer it, so the
    # forward B recorded ends failed
    (AMOUNT + FEE, SOONEST - 1 + POLICY.cltv_delta, SOONEST - 1, ["failed"],
     "next hop's expiry too soon"),
])
def test_a_lock_short_of_the_fee_or_the_delta_is_failed_back(
        tmp_path: Path, lock_amount: int, lock_expiry: int, hop_expiry: int,
        forwards: list[str], why: str) -> None:
    outcome, nodes = asyncio.run(pay_through_b(tmp_path, AMOUNT, hop_expiry, lock_amount,
                                               lock_expiry))
    assert isinstance(outcome, m.UpdateCommitted), why  # B took the lock...
    # ...then failed it: add + fail, A whole again, and nothing offered to C
    assert balances(nodes["a"].channel(AB)) == (2, DEPOSIT, 0), why
    assert balances(nodes["b"].channel(AB)) == (2, DEPOSIT, 0), why
    assert balances(nodes["c"].channel(BC)) == (0, DEPOSIT, 0), why
    assert [f.state for f in nodes["b"].switch.forwards.values()] == forwards, why
