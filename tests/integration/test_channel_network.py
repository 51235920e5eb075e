"""The payment-channel network run for real: each attack tried, and defeated or recorded.

Every test starts its own network with ``network.up`` in a temporary directory (an L1
devnet process, the ``PaymentChannels`` contract, one process per channel node, node i
holding dev account i, and a watchtower process) and stops it with ``network.down``
whatever happens (:func:`tests.channelnet.running_network`). Nodes are driven through
their control API (what ``layerlab channels ...`` calls); the L1 through JSON-RPC, where
``anvil_mine`` passes lock expiries and settle timeouts; misbehaving hops are simulated
with signals: ``SIGKILL`` (a crash, or a hop that goes away for good) and ``SIGSTOP`` (a
hop that stalls and comes back).

Amounts are checked exactly: a forwarder keeps BOLT 7's fee, ``base_fee +
amount * proportional_millionths // 10**6`` (1 wei + 100 ppm by default), computed here
independently of the routing module; L1 balances move by channel payouts minus the gas
the party paid (``gasUsed * effectiveGasPrice`` of every transaction it sent, reverted
ones included).

A test marked ``xfail(strict=True)`` shows a behaviour the node still lacks; its reason
names the function and what happens, and it turns into a failure (XPASS) once fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_hash.auto import keccak

from layerlab.errors import ChannelError
from layerlab.l2.channels import machine as m
from layerlab.l2.channels.invoice import decode_invoice
from layerlab.l2.channels.node import INVOICE_PREFIX, PROPOSAL_TIMEOUT
from layerlab.l2.channels.onchain import ChannelStatus, ChannelTxError
from layerlab.l2.channels.signing import sign_digest, sign_state
from layerlab.l2.channels.types import ChannelId, ChannelState, SignedState
from layerlab.l2.channels.watchtower import register_with_tower
from layerlab.l2.store import RecordStore
from layerlab.primitives.types import Wei
from tests.channelnet import ETHER, ChannelNet, compute_fee, running_network
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

LOCK_HORIZON = 40
"""Blocks that pass every lock of a route of at most two forwarders: the payee's
``min_final_expiry_delta`` (18) plus 10 blocks (``cltv_delta``) per forwarder, and margin."""


def balances(net: ChannelNet, *views: tuple[int, str]) -> dict[tuple[int, str], dict[str, Any]]:
    """Each (node, channel) view: nonce, my_balance, peer_balance, locks."""
    return {(i, cid): net.channel(i, cid) for i, cid in views}


def assert_agree(net: ChannelNet, a: int, b: int, channel_id: str) -> None:
    """Both ends of a channel hold the same latest state, with no lock pending."""
    mine, theirs = net.channel(a, channel_id), net.channel(b, channel_id)
    assert (mine["nonce"], mine["my_balance"], mine["peer_balance"], mine["locks"]) == (
        theirs["nonce"], theirs["peer_balance"], theirs["my_balance"], theirs["locks"])
    assert mine["locks"] == 0


def settled_on_l1(net: ChannelNet, channel_id: str, timeout: float = 10) -> tuple[int, int]:
    """Mine past a closing channel's settle block; its participants settle it themselves.
    Returns the ChannelSettled payouts (paidA, paidB)."""
    onchain = net.contract.get_channel(to_id(channel_id))
    assert onchain.status == ChannelStatus.CLOSING, onchain
    missing = onchain.settle_block + 1 - net.block_number()
    if missing > 0:
        net.mine(missing)
    [settled] = wait_until(lambda: net.events(channel_id, "ChannelSettled"), timeout,
                           f"a participant to settle {channel_id}")
    return int(settled.args["paidA"]), int(settled.args["paidB"])


def to_id(channel_id: str) -> ChannelId:
    return ChannelId(bytes.fromhex(channel_id[2:]))


def frame(obj: Any) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def connect(net: ChannelNet, index: int) -> socket.socket:
    """A raw TCP connection to node ``index``'s peer port."""
    entry = net.desc["nodes"][net.address(index)]
    sock = socket.create_connection(("127.0.0.1", entry["port"]), timeout=5)
    sock.settimeout(5)
    return sock


def read_frame(sock: socket.socket) -> dict[str, Any] | None:
    """One frame from the node, or None if it closed the connection."""
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            return None
        header += chunk
    (length,) = struct.unpack(">I", header)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    frame_obj: dict[str, Any] = json.loads(body)
    return frame_obj


def closes_connection(sock: socket.socket, within: float = 5) -> bool:
    """True when the node closes (or resets) the connection within ``within`` seconds;
    frames it sends before (its handshake challenge) are skipped."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    finally:
        sock.settimeout(5)


def handshake(sock: socket.socket, key: bytes, claim: str | None = None) -> dict[str, Any] | None:
    """The peer handshake, as the dialer: answer the node's challenge with a hello that
    claims ``claim`` (default: the key's own address) signed by ``key``; returns the
    node's welcome, or None if the node closed the connection."""
    challenge = read_frame(sock)
    assert challenge is not None and challenge["type"] == "challenge", challenge
    listener, nonce = bytes.fromhex(challenge["address"][2:]), bytes.fromhex(challenge["nonce"][2:])
    digest = keccak(b"layerlab-channels:hello" + listener + nonce)
    sock.sendall(frame({"type": "hello", "address": claim or _address_of(key),
                        "nonce": "0x" + secrets.token_bytes(32).hex(),
                        "signature": "0x" + sign_digest(digest, key).hex()}))
    try:
        return read_frame(sock)
    except ConnectionResetError:
        return None


def _address_of(key: bytes) -> str:
    return "0x" + m.compute_address(key).hex()


def stop_node(net: ChannelNet, index: int) -> None:
    """SIGTERM (the clean shutdown path: the node closes its store) and wait."""
    pid = net.pid(index)
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)


# ----------------------------------------------------------------------------- 1. multi-hop


def test_multi_hop_payment_settles_on_every_hop_or_on_none(tmp_path: Path) -> None:
    """1 -> 2 -> 3 -> 4. A paid invoice moves each hop by the amount plus the fees of the
    forwarders after it (each keeps exactly its fee); a payment the graph believes fits but
    the last hop cannot carry is failed back hop by hop (no lock left anywhere, balances as
    before); one above every capacity is refused at once; a tampered invoice is refused."""
    with running_network(tmp_path, 4) as net:
        c12 = net.open(1, 2, 3 * ETHER)
        c23 = net.open(2, 3, 3 * ETHER)
        c34 = net.open(3, 4, ETHER)
        net.wait_synced(1)
        views = [(1, c12), (2, c12), (2, c23), (3, c23), (3, c34), (4, c34)]
        before = balances(net, *views)

        amount = 123_456_789_012_345
        invoice = net.invoice(4, amount, "three hops")
        result = net.pay(1, invoice)
        assert result["status"] == "succeeded", result
        assert result["attempts"] == 1

        fee3 = compute_fee(amount)  # node 3 forwards `amount` to node 4
        fee2 = compute_fee(amount + fee3)  # node 2 forwards `amount + fee3` to node 3
        moved = {(1, c12): -(amount + fee3 + fee2), (2, c12): amount + fee3 + fee2,
                 (2, c23): -(amount + fee3), (3, c23): amount + fee3,
                 (3, c34): -amount, (4, c34): amount}
        after = balances(net, *views)
        for view, delta in moved.items():
            assert after[view]["my_balance"] - before[view]["my_balance"] == delta, view
            assert after[view]["nonce"] == 2  # AddLock, SettleLock
        for a, b, cid in ((1, 2, c12), (2, 3, c23), (3, 4, c34)):
            assert_agree(net, a, b, cid)
        payment_hash = decode_invoice(invoice).payment_hash
        assert net.status(1)["payments"]["0x" + payment_hash.hex()] == "succeeded"

        # The graph counts channel 3-4 at its deposit (1 ether), but node 3 holds only
        # 1 ether - amount of it: locks go 1 -> 2 -> 3, node 3 cannot offer the last one,
        # and the failure travels back.
        big = ETHER - amount // 2
        unpayable = net.invoice(4, big, "more than node 3 holds towards node 4")
        result = net.pay(1, unpayable)
        assert result["status"] == "failed", result
        failed = balances(net, *views)
        for view in views:
            assert failed[view]["my_balance"] == after[view]["my_balance"], view
            assert failed[view]["locks"] == 0, view
        assert failed[(1, c12)]["nonce"] == failed[(2, c23)]["nonce"] == 4  # AddLock, FailLock
        assert failed[(3, c34)]["nonce"] == 2  # never touched
        for a, b, cid in ((1, 2, c12), (2, 3, c23), (3, 4, c34)):
            assert_agree(net, a, b, cid)

        result = net.pay(1, net.invoice(4, 5 * ETHER, "above every capacity"))
        assert result["status"] == "failed" and "no route" in result["error"], result
        tampered = invoice[:-3] + ("a" if invoice[-3] != "a" else "b") + invoice[-2:]
        with pytest.raises(ChannelError, match="nvoice"):
            net.pay(1, tampered)
        assert balances(net, *views) == failed

        # The payee marked the first invoice paid and not the second (read from its disk
        # after a clean stop: the control API does not expose invoices).
        stop_node(net, 4)
        store = RecordStore(net.net_dir / "node4" / "node")
        try:
            assert store.get(INVOICE_PREFIX + payment_hash)["paid"] is True
            unpaid = decode_invoice(unpayable).payment_hash
            assert store.get(INVOICE_PREFIX + unpaid)["paid"] is False
        finally:
            store.close()


# ----------------------------------------------------------------------------- 2. retry


def test_payment_retries_on_another_route_when_a_hop_cannot_carry_it(tmp_path: Path) -> None:
    """Diamond 1 -> 2 -> 4 and 1 -> 3 -> 4; node 3 announces a higher base fee, so the route
    through node 2 is the cheaper one. But channel 2-4 was opened and funded by node 4:
    the graph counts its deposit as capacity both ways, while node 2 holds nothing in it.
    Node 2 refuses to forward for real, the payer retries through node 3 and pays."""
    node3_fee = {"base_fee": 1000, "proportional_millionths": 100, "cltv_delta": 10}
    with running_network(tmp_path, 4, fees={3: node3_fee}) as net:
        c12 = net.open(1, 2, ETHER)
        c13 = net.open(1, 3, ETHER)
        c42 = net.open(4, 2, ETHER)
        c34 = net.open(3, 4, ETHER)
        net.wait_synced(1)
        views = [(1, c12), (2, c12), (2, c42), (1, c13), (3, c13), (3, c34), (4, c34)]
        before = balances(net, *views)

        amount = 10**15
        result = net.pay(1, net.invoice(4, amount))
        assert result["status"] == "succeeded", result
        assert result["attempts"] == 2  # through node 2 first (cheaper), then node 3

        after = balances(net, *views)
        for view in [(1, c12), (2, c12), (2, c42)]:
            assert after[view]["my_balance"] == before[view]["my_balance"], view
            assert after[view]["locks"] == 0
        assert after[(1, c12)]["nonce"] == 2  # the lock was added, then failed back
        assert after[(2, c42)]["nonce"] == 0  # node 2 never offered a lock it could not fund
        fee3 = compute_fee(amount, node3_fee)
        moved = {(1, c13): -(amount + fee3), (3, c13): amount + fee3,
                 (3, c34): -amount, (4, c34): amount}
        for view, delta in moved.items():
            assert after[view]["my_balance"] - before[view]["my_balance"] == delta, view
        for a, b, cid in ((1, 2, c12), (4, 2, c42), (1, 3, c13), (3, 4, c34)):
            assert_agree(net, a, b, cid)


# ----------------------------------------------------------------------------- 3. silent hops


def test_payment_to_a_dead_payee_fails_and_leaves_every_honest_party_whole(tmp_path: Path) -> None:
    """1 -> 2 -> 3 and node 3 is killed before the payment. Node 2's lock offer goes
    unanswered; since node 2 signed it, node 3 could still take it until it expires, so
    node 2 keeps node 1's lock until then, and fails it back after. Every balance ends as
    before, and node 2 gets its deposit in the dead peer's channel back on L1 (unilateral
    close; it settles after the timeout)."""
    with running_network(tmp_path, 3) as net:
        c12 = net.open(1, 2, ETHER)
        c23 = net.open(2, 3, ETHER)
        net.wait_synced(1)
        invoice = net.invoice(3, 10**15)
        net.kill(3)
        before = balances(net, (1, c12), (2, c12), (2, c23))
        block = net.block_number()

        result = net.pay(1, invoice, timeout=3)
        assert result["status"] != "succeeded", result
        assert net.channel(1, c12)["locks"] == 1  # in flight: node 2 waits for node 3
        # past the expiry of node 2's offer to node 3 (the payee's min_final_expiry_delta,
        # 18 blocks), not yet past node 1's lock (10 blocks later)
        net.mine(block + 20 - net.block_number())
        wait_until(lambda: net.channel(1, c12)["locks"] == 0, PROPOSAL_TIMEOUT + 10,
                   "node 2 to fail node 1's lock once its own offer expired")
        after = balances(net, (1, c12), (2, c12), (2, c23))
        for view in before:
            assert after[view]["my_balance"] == before[view]["my_balance"], view
            assert after[view]["locks"] == 0, view
        assert_agree(net, 1, 2, c12)
        payment_hash = "0x" + decode_invoice(invoice).payment_hash.hex()
        assert net.status(1)["payments"][payment_hash] == "failed"

        l1_before, block = net.l1_balance(2), net.block_number()
        closed = net.control(2, "close", {"channel_id": c23, "cooperative": False})
        assert closed["mode"] == "unilateral"
        [close_event] = net.events(c23, "ChannelClosed")
        assert close_event.args["closer"] == net.checksum(2)
        assert settled_on_l1(net, c23) == (ETHER, 0)
        assert net.l1_balance(2) == l1_before + ETHER - net.gas_paid(2, block)


def test_a_payee_that_stalls_past_the_forward_timeout_cannot_rob_the_forwarder(
        tmp_path: Path) -> None:
    """1 -> 2 -> 3; node 3 (the payee) stalls (SIGSTOP) while node 2 offers it the lock,
    and comes back (SIGCONT) after node 2's proposal timeout, then acks and settles.
    Atomicity: the payee is paid only if the payer pays, and the forwarder never ends
    below where it started (a forwarder that failed the upstream lock on the timeout would
    pay the payee out of its own pocket)."""
    with running_network(tmp_path, 3) as net:
        c12 = net.open(1, 2, ETHER)
        c23 = net.open(2, 3, ETHER)
        net.wait_synced(1)
        amount = 10**15
        invoice = net.invoice(3, amount)
        before = balances(net, (1, c12), (2, c12), (2, c23), (3, c23))
        net.freeze(3)
        outcome: dict[str, Any] = {}
        payer = threading.Thread(target=lambda: outcome.update(net.pay(1, invoice, timeout=30)))
        payer.start()
        try:
            wait_until(lambda: net.channel(1, c12)["nonce"] >= 1, 10,
                       "node 1's lock to be committed with node 2")
            time.sleep(PROPOSAL_TIMEOUT + 1.5)  # node 2's offer to node 3 goes unanswered
        finally:
            net.resume(3)
            payer.join(60)
        assert not payer.is_alive()
        wait_until(lambda: all(v["locks"] == 0 for v in balances(
            net, (1, c12), (2, c12), (2, c23), (3, c23)).values()), 15,
            "every lock to be resolved once the payee is back")
        after = balances(net, (1, c12), (2, c12), (2, c23), (3, c23))

        payee_gain = after[(3, c23)]["my_balance"] - before[(3, c23)]["my_balance"]
        payer_loss = before[(1, c12)]["my_balance"] - after[(1, c12)]["my_balance"]
        forwarder = sum(after[v]["my_balance"] - before[v]["my_balance"]
                        for v in [(2, c12), (2, c23)])
        assert forwarder >= 0, (f"forwarder lost {-forwarder} wei: payee got {payee_gain}, "
                                f"payer paid {payer_loss}, payment {outcome}")
        assert (payee_gain, payer_loss) in ((0, 0), (amount, amount + compute_fee(amount)))
        if payee_gain:
            assert outcome.get("status") == "succeeded", outcome


def test_a_payment_reported_failed_never_completes(tmp_path: Path) -> None:
    """1 -> 2 -> 3; the payee stalls past the payer's own timeout, then settles. Whatever
    the payer reported when its timeout passed must stay true: a payment it called failed
    must not take its money later, and its record must end as what happened."""
    with running_network(tmp_path, 3, with_tower=False) as net:
        c12 = net.open(1, 2, ETHER)
        net.open(2, 3, ETHER)
        net.wait_synced(1)
        amount = 10**15
        invoice = net.invoice(3, amount)
        payment_hash = "0x" + decode_invoice(invoice).payment_hash.hex()
        net.freeze(3)
        try:
            reported = net.pay(1, invoice, timeout=2)
        finally:
            net.resume(3)
        wait_until(lambda: net.channel(1, c12)["locks"] == 0, PROPOSAL_TIMEOUT + 5,
                   "the payment's lock to be resolved")
        paid = ETHER - net.channel(1, c12)["my_balance"]
        record = net.status(1)["payments"][payment_hash]
        if paid:
            assert paid == amount + compute_fee(amount)
            assert reported["status"] != "failed" and record == "succeeded", (
                f"payer paid {paid} wei for a payment it reported {reported} and records "
                f"as {record!r}")
        else:
            assert record == "failed"


def test_payer_recovers_a_lock_stuck_with_a_dead_forwarder(tmp_path: Path) -> None:
    """1 -> 2 -> 3; node 1's lock is committed with node 2, then node 2 dies (SIGKILL) before
    anything settles. Once the lock has expired, honest node 1 gets it back: there is no
    one to fail it with off-chain, so it closes on L1 and the contract refunds the lock."""
    with running_network(tmp_path, 3) as net:
        c12 = net.open(1, 2, ETHER)
        net.open(2, 3, ETHER)
        net.wait_synced(1)
        amount = 10**15
        invoice = net.invoice(3, amount)
        net.freeze(3)  # the lock stops at node 2's offer to node 3
        result = net.pay(1, invoice, timeout=2)
        assert result["status"] != "succeeded", result
        net.kill(2)
        net.kill(3)
        stuck = net.channel(1, c12)
        assert stuck["locks"] == 1
        assert stuck["my_balance"] == ETHER - amount - compute_fee(amount)

        l1_before, block = net.l1_balance(1), net.block_number()
        net.mine(LOCK_HORIZON)
        # node 1 proposes to fail the expired lock, gets no answer within its proposal
        # timeout (10 s), and closes on L1 with the lock in its latest state
        [close_event] = wait_until(lambda: net.events(c12, "ChannelClosed"), 25,
                                   "node 1 to close on L1 with its expired lock")
        assert close_event.args["closer"] == net.checksum(1)
        assert close_event.args["lockCount"] == 1
        assert settled_on_l1(net, c12) == (ETHER, 0)  # the expired lock went back to node 1
        assert net.l1_balance(1) == l1_before + ETHER - net.gas_paid(1, block)


# ----------------------------------------------------------------------------- 4. closing


def test_cooperative_and_unilateral_close_pay_both_sides_on_l1(tmp_path: Path) -> None:
    """A cooperative close from the CLI pays each side its channel balance in one
    transaction (the closer less its gas); the closed channel takes no more payments. A
    unilateral close cannot be settled before the timeout, then pays both sides."""
    with running_network(tmp_path, 3) as net:
        c12 = net.open(1, 2, ETHER)
        net.send(1, c12, 10**16, count=3)
        l1_1, l1_2, block = net.l1_balance(1), net.l1_balance(2), net.block_number()
        cli = subprocess.run(
            [sys.executable, "-m", "layerlab.cli", "channels", "close", "--node", "1",
             "--channel", c12, "--net-dir", str(net.net_dir)],
            capture_output=True, text=True, timeout=120, check=False)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert "cooperative" in cli.stdout
        [closed] = net.events(c12, "CooperativelyClosed")
        assert (closed.args["paidA"], closed.args["paidB"]) == (ETHER - 3 * 10**16, 3 * 10**16)
        assert net.l1_balance(2) == l1_2 + 3 * 10**16
        assert net.gas_paid(1, block) == net.tx_fee(closed.tx_hash)  # one transaction
        assert net.l1_balance(1) == l1_1 + ETHER - 3 * 10**16 - net.tx_fee(closed.tx_hash)
        assert net.contract.get_channel(to_id(c12)).status == ChannelStatus.SETTLED
        assert net.channel(1, c12)["closed"] and net.channel(2, c12)["closed"]
        with pytest.raises(ChannelError):
            net.send(1, c12, 1)

        c13 = net.open(1, 3, ETHER)
        net.send(1, c13, 2 * 10**16)
        l1_1, l1_3, block = net.l1_balance(1), net.l1_balance(3), net.block_number()
        closed = net.control(1, "close", {"channel_id": c13, "cooperative": False})
        assert closed["mode"] == "unilateral" and closed["nonce"] == 1
        [close_event] = net.events(c13, "ChannelClosed")
        assert close_event.args["nonce"] == 1
        with pytest.raises(ChannelTxError) as early:
            net.contract.settle(net.key(0), to_id(c13))
        assert early.value.error_name == "SettleTooEarly"
        assert settled_on_l1(net, c13) == (ETHER - 2 * 10**16, 2 * 10**16)
        # the participants settle by themselves; both may try, so count all their gas
        assert net.l1_balance(3) == l1_3 + 2 * 10**16 - net.gas_paid(3, block)
        assert net.l1_balance(1) == l1_1 + ETHER - 2 * 10**16 - net.gas_paid(1, block)
        assert not net.events(c13, "ChannelChallenged") and not net.events(c13, "ChannelUpdated")


# ----------------------------------------------------------------------------- 5. watchtower


def test_watchtower_punishes_a_close_on_a_revoked_state_while_the_victim_is_offline(
        tmp_path: Path) -> None:
    """Node 1 keeps an old state (nonce 1, read from its disk during a crash), pays on to
    nonce 4, and once node 2 is offline closes on the old state with its own key. The
    watchtower, fed by the nodes, challenges with nonce 4: node 2 gets the whole channel.
    The tower also refuses what the cheater hands it: the old state, a forged newer one."""
    with running_network(tmp_path, 2) as net:
        cid = net.open(1, 2, ETHER)
        step = 10**17
        net.send(1, cid, step)
        net.kill(1)
        old = net.read_channel(1, cid).latest
        assert old.state.nonce == 1 and old.state.balance_b == step
        net.restart(1)
        net.send(1, cid, step, count=3)
        latest = net.channel(2, cid)
        assert latest["nonce"] == 4 and latest["my_balance"] == 4 * step
        time.sleep(0.5)  # the nodes hand each new state to the tower in the background

        net.kill(2)  # the victim goes offline
        net.kill(1)  # the cheater acts with its key alone (its node would challenge itself)
        tower = net.desc["tower"]

        def register(signed: SignedState) -> bool:
            return asyncio.run(register_with_tower(tower["host"], tower["port"], signed))

        newest = net.read_channel(1, cid).latest
        assert newest.state.nonce == 4
        assert register(newest) is False  # the nodes handed it over already
        # what a cheater might feed the tower: an older state is not kept, a "newer" state
        # it signed for both sides is refused
        assert register(old) is False
        forged_state = replace(old.state, nonce=10, balance_a=ETHER, balance_b=0)
        forged_sig = sign_state(net.contract.domain(), forged_state, net.key(1))
        with pytest.raises(ChannelError, match="not signed by both"):
            register(SignedState(forged_state, forged_sig, forged_sig))

        l1_1, l1_2 = net.l1_balance(1), net.l1_balance(2)
        receipt = net.contract.close(net.key(1), old)
        wait_until(lambda: net.contract.get_channel(to_id(cid)).status == ChannelStatus.SETTLED,
                   15, "the watchtower to challenge")
        [challenge] = net.events(cid, "ChannelChallenged")
        assert challenge.args["submitter"].lower() == tower["address"].lower()
        assert challenge.args["beneficiary"] == net.checksum(2)
        assert (challenge.args["closedNonce"], challenge.args["nonce"]) == (1, 4)
        assert challenge.args["amount"] == ETHER
        assert net.l1_balance(2) == l1_2 + ETHER
        assert net.l1_balance(1) == l1_1 - net.tx_fee(receipt["transactionHash"])


# ----------------------------------------------------------------------------- 6. crashes


def burst(net: ChannelNet, channel_id: str, amount: int) -> threading.Thread:
    """Node 1 sends 3,000 direct payments on ``channel_id`` in the background (a few
    seconds); returns once 200 went through."""
    thread = threading.Thread(target=lambda: _quietly(
        lambda: net.send(1, channel_id, amount, count=3000, timeout=90)), daemon=True)
    thread.start()
    wait_until(lambda: net.channel(1, channel_id)["nonce"] >= 200, 20, "the burst to run")
    return thread


def _quietly(call: Any) -> None:
    with contextlib.suppress(ChannelError, OSError):  # the node is killed under it
        call()


def test_payer_killed_mid_burst_restarts_with_its_latest_state(tmp_path: Path) -> None:
    """SIGKILL the payer in a burst of payments. Its disk holds the peer's latest fully
    signed state, or the one before with that state as its pending proposal (the ack was
    on its way): nothing it committed is lost, nothing is invented. Restarted, it re-sends
    the pending proposal, the peer re-acks, and both hold the same state."""
    with running_network(tmp_path, 2, with_tower=False) as net:
        cid = net.open(1, 2, ETHER)
        amount = 1000
        thread = burst(net, cid, amount)
        net.kill(1)
        thread.join(30)
        peer = net.channel(2, cid)
        stored = net.read_channel(1, cid)
        behind = peer["nonce"] - stored.latest.state.nonce
        assert behind in (0, 1), (stored.latest.state, peer)
        assert m.get_peer_balance(stored) == peer["my_balance"] - behind * amount
        assert m.get_my_balance(stored) + m.get_peer_balance(stored) == ETHER
        if behind:
            assert stored.pending is not None
            assert stored.pending.state.nonce == peer["nonce"]
            assert stored.pending.state.balance_b == peer["my_balance"]

        # a proposal written to disk but killed before it reached the peer is delivered
        # after the restart (the payer signed it): one more payment than the peer had
        undelivered = 1 if behind == 0 and stored.pending is not None else 0
        net.restart(1)
        assert net.channel(1, cid)["nonce"] == stored.latest.state.nonce
        # its next command first gets the pending proposal answered (re-sent, re-acked)
        net.send(1, cid, amount, count=5)
        assert_agree(net, 1, 2, cid)
        assert net.channel(2, cid)["nonce"] == peer["nonce"] + undelivered + 5
        assert net.channel(2, cid)["my_balance"] == (peer["nonce"] + undelivered + 5) * amount


PAYEE_CRASH_AMOUNT = 1000


@pytest.fixture(scope="class")
def payee_crash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Node 2 (the payee, the acknowledging side) SIGKILLed during a burst, then restarted;
    the payer's view at the crash and what the payee had on disk."""
    with running_network(tmp_path_factory.mktemp("payee-crash"), 2, with_tower=False) as net:
        cid = net.open(1, 2, ETHER)
        thread = burst(net, cid, PAYEE_CRASH_AMOUNT)
        net.kill(2)
        time.sleep(0.3)  # an ack already on its way lands; nothing new can commit
        peer = net.channel(1, cid)
        stored = net.read_channel(2, cid)
        net.restart(2)
        yield {"net": net, "cid": cid, "peer": peer, "stored": stored, "thread": thread}
    thread.join(30)


class TestPayeeKilledMidBurst:
    """SIGKILL the payee during a burst of payments, restart it."""

    AMOUNT = PAYEE_CRASH_AMOUNT

    def test_restarts_with_every_state_it_acknowledged(self, payee_crash: dict[str, Any]) -> None:
        """Every state the payer holds fully signed carries the payee's signature, given
        only after the payee wrote it: the payee's disk is at that nonce, or one above (it
        acked a state whose ack was lost with the process)."""
        peer, stored = payee_crash["peer"], payee_crash["stored"]
        ahead = stored.latest.state.nonce - peer["nonce"]
        assert ahead in (0, 1), (stored.latest.state, peer)
        assert m.get_my_balance(stored) == peer["peer_balance"] + ahead * self.AMOUNT
        assert m.get_my_balance(stored) + m.get_peer_balance(stored) == ETHER
        assert stored.pending is None  # the payee proposes nothing in a burst

    def test_payments_continue_after_the_restart(self, payee_crash: dict[str, Any]) -> None:
        """The payer re-sends its unanswered proposal to the restarted payee (re-acked if
        already committed), the burst goes on, and later payments go through: every
        payment of the burst is either in both states or in neither."""
        net, cid = payee_crash["net"], payee_crash["cid"]
        payee_crash["thread"].join(PROPOSAL_TIMEOUT + 30)
        assert not payee_crash["thread"].is_alive()
        net.send(1, cid, self.AMOUNT, count=5)
        assert_agree(net, 1, 2, cid)
        state = net.channel(2, cid)
        assert state["my_balance"] == state["nonce"] * self.AMOUNT  # one payment per nonce


# ----------------------------------------------------------------------------- 7. bad input


@pytest.fixture(scope="class")
def peer_port_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChannelNet]:
    with running_network(tmp_path_factory.mktemp("bad-input"), 4, with_tower=False) as net:
        yield net


class TestBadInputAtThePeerPort:
    """Frames from strangers and liars on a node's peer port: refused, and the node keeps
    serving its control API and its real peers."""

    def test_garbage_and_forged_frames_are_refused(self, peer_port_net: ChannelNet) -> None:
        net = peer_port_net
        cid = net.open(1, 2, ETHER)
        net.send(1, cid, 1000)
        held = net.channel(2, cid)
        stranger = secrets.token_bytes(32)

        def dropped_after(*chunks: bytes) -> bool:
            with connect(net, 2) as sock:
                for chunk in chunks:
                    sock.sendall(chunk)
                return closes_connection(sock)

        assert dropped_after(b"\xff\xff\xff\xff" + secrets.token_bytes(64))  # oversized
        assert dropped_after(struct.pack(">I", 5) + b"\x00junk")  # not JSON
        assert dropped_after(frame([1, 2, 3]))  # not an object
        assert dropped_after(frame({"type": "msg", "msg": "{}"}))  # no hello first
        assert dropped_after(frame({"type": "hello", "address": net.address(1)}))  # unsigned
        with connect(net, 2) as sock:  # a hello claiming node 1, signed by someone else
            assert handshake(sock, stranger, claim=net.address(1)) is None
            assert closes_connection(sock)
        assert "hello claims" in net.log("node2")
        with connect(net, 2) as sock:  # an authenticated stranger sending a malformed msg
            assert handshake(sock, stranger) is not None
            sock.sendall(frame({"type": "msg", "msg": {"not": "a string"}}))
            assert not closes_connection(sock, within=1)  # refused, like any bad frame
        assert "must carry the message as a JSON string" in net.log("node2")

        # Well-formed frames from an authenticated stranger: refused one by one, the
        # connection kept. Then a peer that really is node 1 (its key) sends a proposal
        # signed with another key, and one it signed whose state takes more than its
        # update says: each answered with a signed Reject, the channel untouched.
        latest = held["nonce"]
        payer_balance, payee_balance = held["peer_balance"], held["my_balance"]
        onchain = net.contract.get_channel(to_id(cid))
        honest_next = ChannelState(to_id(cid), latest + 1, onchain.deposit_a, onchain.deposit_b,
                                   payer_balance - 500, payee_balance + 500)
        greedy_next = replace(honest_next, balance_a=payer_balance + 500,
                              balance_b=payee_balance - 500)
        domain = net.contract.domain()

        def proposal(state: ChannelState, key: bytes) -> dict[str, Any]:
            msg = m.Proposal(state, m.Pay(Wei(500)), sign_state(domain, state, key))
            return {"type": "msg", "msg": msg.to_json()}

        with connect(net, 2) as sock:
            assert handshake(sock, stranger) is not None
            sock.sendall(frame(proposal(honest_next, stranger)))
            sock.sendall(frame({"type": "channel_opened", "channel_id": "0x" + "ab" * 32}))
            sock.sendall(frame({"type": "no such frame"}))
            refusals = ("with this peer", "UnknownChannel", "unknown frame type")
            wait_until(lambda: all(r in net.log("node2") for r in refusals), 5,
                       "node 2 to refuse the stranger's frames")
            assert not closes_connection(sock, within=0.2)  # refusals do not cost the link
        assert net.channel(2, cid) == held
        for state, key, check in ((honest_next, net.key(3), "signature"),
                                  (greedy_next, net.key(1), "state-mismatch")):
            with connect(net, 2) as sock:
                assert handshake(sock, net.key(1)) is not None
                sock.sendall(frame(proposal(state, key)))
                reply = read_frame(sock)
                assert reply is not None and reply["type"] == "msg"
                reject = m.decode_message(reply["msg"])
                assert isinstance(reject, m.Reject) and reject.reason.startswith(check), reject
            assert net.channel(2, cid) == held

        # the node still serves its control API and its real peer (once the connections
        # that were node 1 are gone)
        time.sleep(0.5)
        net.send(1, cid, 1000)
        assert net.channel(2, cid)["nonce"] == latest + 1
        assert_agree(net, 1, 2, cid)

    def test_a_spoofed_hello_cannot_intercept_a_peers_acks(self, peer_port_net: ChannelNet) -> None:
        """Someone claims to be node 3 to node 4 while node 3 pays node 4: the claim fails
        the handshake (not signed by node 3's key), the spoofer gets nothing but the
        challenge, and node 3's payments go through."""
        net = peer_port_net
        cid = net.open(3, 4, ETHER)
        net.send(3, cid, 1000)
        with connect(net, 4) as spoof:
            assert handshake(spoof, secrets.token_bytes(32), claim=net.address(3)) is None
            net.send(3, cid, 1000, count=3, timeout=PROPOSAL_TIMEOUT + 5)
            assert closes_connection(spoof, within=0.5)
        assert_agree(net, 3, 4, cid)
        assert net.channel(4, cid)["my_balance"] == 4000


def test_top_ups_on_l1_are_credited_off_chain(tmp_path: Path) -> None:
    """Both parties top up on L1; each deposit is brought into the signed state (a
    ``Deposit`` update accepted once the peer has seen it on L1) and can then be spent."""
    with running_network(tmp_path, 2, with_tower=False) as net:
        cid = net.open(1, 2, 1000)
        net.wait_synced(1, 2)
        first = net.control(1, "deposit", {"channel_id": cid, "amount": 500})
        second = net.control(2, "deposit", {"channel_id": cid, "amount": 700})
        assert first["nonce"] == 1 and second["nonce"] == 2
        net.send(1, cid, 1200)  # more than the opening deposit: the top-up is spendable
        for index, (mine, theirs) in ((1, (300, 1900)), (2, (1900, 300))):
            channel = net.channel(index, cid)
            assert (channel["my_balance"], channel["peer_balance"]) == (mine, theirs)
        with pytest.raises(ChannelError):
            net.send(1, cid, 301)  # beyond the balance: refused, nothing moves
        assert net.channel(2, cid)["my_balance"] == 1900
