"""A channel node's switch: one worker per channel and the HTLC forwarding between them.

Around the pure core (:mod:`layerlab.l2.channels.machine`):

* **Workers.** Local commands on a channel queue for its worker, which proposes one at a
  time and awaits the peer's answer, re-sending the proposal every ``RESEND_INTERVAL``
  (a lost frame, a reconnecting peer); after ``PROPOSAL_TIMEOUT`` the command fails and
  the signed proposal stays pending.
* **Disk.** Every transition's new channel is written to LevelDB (:class:`RecordStore`)
  *before* the messages it produced (our acks and signatures) leave the process, so a
  node killed at any moment restarts with every state it ever acknowledged.
* **Forwarding** (BOLT 4): once an incoming lock is committed, the payee settles it with
  its invoice's preimage; a forwarder offers the next hop's lock (for the amount minus
  its fee and an earlier expiry, as the route the lock came with says) or fails the
  incoming one back. A settlement (a preimage learned off-chain or on L1) or a failure
  travels back hop by hop; expired locks we offered are failed (on L1 if the peer is
  silent).

The switch reaches the peers through ``send`` (the transport's ordered per-peer queue),
the watchtower through ``find_tower`` and the L1 only through ``close_on_l1``; the L1
clock is :attr:`HtlcSwitch.block`, moved by the node's L1 side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from layerlab.errors import ChannelError
from layerlab.l2.channels import machine as m
from layerlab.l2.channels.routing import FeePolicy
from layerlab.l2.channels.types import Hashlock, Preimage, SignedState
from layerlab.l2.channels.watchtower import register_with_tower
from layerlab.l2.service import cancel_tasks
from layerlab.l2.store import RecordStore
from layerlab.primitives.types import BlockNumber, Nonce, Wei

log = logging.getLogger(__name__)

CHANNEL_PREFIX = b"channel:"
INVOICE_PREFIX = b"invoice:"
FORWARD_PREFIX = b"forward:"
PAYMENT_PREFIX = b"payment:"
PROPOSAL_TIMEOUT = 10.0
"""Seconds to wait for the peer's answer to one proposal before failing the command."""
RESEND_INTERVAL = 2.0
"""Seconds between re-sends of an unanswered proposal."""


class ProposalTimeout(ChannelError):
    """The peer did not answer; our signed proposal stays pending on the channel."""


def _future() -> asyncio.Future[m.Event]:
    return asyncio.get_running_loop().create_future()


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


@dataclass
class Forward:
    """An HTLC we forward: the incoming lock on ``in_channel``, the outgoing one on
    ``out_channel``, both with ``hashlock`` (BOLT 4's "incoming/outgoing HTLC" pair)."""

    hashlock: bytes
    in_channel: bytes
    out_channel: bytes | None
    state: str = "offered"  # offered -> settled | failed


@dataclass
class Payment:
    """A payment we make: attempts so far and the outcome."""

    hashlock: bytes
    amount: int
    payee: bytes
    attempts: int = 0
    excluded: list[bytes] = field(default_factory=list)
    status: str = "pending"  # pending -> succeeded | failed | in_flight (-> either)
    preimage: bytes | None = None
    error: str = ""
    started: float = field(default_factory=time.perf_counter)
    finished: float = 0.0




@dataclass
class Waiter:
    """A local command waiting for its proposal's fate."""

    update: m.Update
    future: asyncio.Future[m.Event]
    forward: dict[str, Any] | None = None


class HtlcSwitch:
    """The per-channel workers and the HTLC flow of one node (see the module docstring)."""

    def __init__(self, *, key: bytes, store: RecordStore, fee_policy: FeePolicy,
                 send: Callable[[bytes, dict[str, Any]], Awaitable[None]],
                 find_tower: Callable[[], tuple[str, int] | None],
                 close_on_l1: Callable[[bytes], Awaitable[Any]],
                 block: int = 0) -> None:
        self.key = key
        self.store = store
        self.fee_policy = fee_policy
        self.block = BlockNumber(block)
        """The L1 clock: the last block the node's L1 side has seen."""
        self.channels: dict[bytes, m.Channel] = {}
        self.queues: dict[bytes, asyncio.Queue[Waiter]] = {}
        self.workers: dict[bytes, asyncio.Task[None]] = {}
        self.inflight: dict[bytes, Waiter] = {}
        self.forwards: dict[bytes, Forward] = {}
        self.route_hints: dict[bytes, dict[str, Any]] = {}
        self.payments: dict[bytes, Payment] = {}
        self.attempt_failed: dict[bytes, asyncio.Event] = {}
        self._send_quietly = send
        self._find_tower = find_tower
        self._close_on_l1 = close_on_l1
        self._tentative: dict[bytes, list[m.UpdateCommitted]] = {}
        self._unsure: dict[bytes, tuple[bytes, int, int]] = {}
        """Forwarded locks whose outgoing proposal was abandoned: (channel, nonce, expiry)."""
        self._failing: set[tuple[bytes, bytes]] = set()
        self._background: set[asyncio.Future[Any]] = set()

    def start(self) -> None:
        """Start a worker for each channel (after :meth:`restore`)."""
        for channel_id in self.channels:
            self.start_worker(channel_id)

    async def stop(self) -> None:
        await cancel_tasks(self.workers.values())

    def restore(self) -> None:
        """Load the channels and forwards written before a restart."""
        for key, raw in self.store.items(CHANNEL_PREFIX):
            channel = m.decode_channel(json.dumps(raw), self.key)
            self.channels[key[len(CHANNEL_PREFIX):]] = channel
        for key, raw in self.store.items(FORWARD_PREFIX):
            self.forwards[key[len(FORWARD_PREFIX):]] = Forward(
                _unhex(raw["hashlock"]), _unhex(raw["in"]),
                _unhex(raw["out"]) if raw["out"] else None, raw["state"])

    # ------------------------------------------------------------------ persistence
    def save_channel(self, channel: m.Channel) -> None:
        """Write the channel before anything derived from it is sent (ack-after-write)."""
        self.channels[channel.channel_id] = channel
        self.store.put_encoded(CHANNEL_PREFIX + channel.channel_id, m.encode_channel(channel))

    def save_forward(self, fwd: Forward) -> None:
        self.store.put(FORWARD_PREFIX + fwd.hashlock, {
            "hashlock": _hex(fwd.hashlock), "in": _hex(fwd.in_channel),
            "out": _hex(fwd.out_channel) if fwd.out_channel else "", "state": fwd.state})

    # ------------------------------------------------------------------ peers
    def reestablish(self, peer: bytes) -> None:
        """After (re)connecting, re-send our proposals still awaiting an answer
        (the part of BOLT 2's ``channel_reestablish`` this protocol needs)."""
        for channel in self.channels.values():
            if channel.peer == peer and channel.pending is not None:
                self.spawn(self._send_quietly(peer, {"type": "msg",
                                                     "msg": channel.pending.to_json()}))

    def on_msg_frame(self, peer: bytes, frame: dict[str, Any]) -> None:
        """A ``msg`` frame from ``peer``: a machine message on one of our channels with it
        and, for an ``AddLock`` proposal, the rest of its route (``forward``)."""
        raw = frame.get("msg")
        if not isinstance(raw, str):
            raise ChannelError("a msg frame must carry the message as a JSON string")
        message = m.decode_message(raw)
        channel_id = message.channel_id
        channel = self.channels.get(channel_id)
        if channel is None or channel.peer != peer:
            raise ChannelError(f"no channel 0x{channel_id.hex()} with this peer")
        if frame.get("forward") is not None and isinstance(message, m.Proposal):
            update = message.update
            if isinstance(update, m.AddLock):
                self.route_hints[bytes(update.hashlock)] = frame["forward"]
        self._apply(channel, message)

    # ------------------------------------------------------------------ channel transitions
    def _apply(self, channel: m.Channel, message: m.Message) -> None:
        if isinstance(message, m.Proposal) and message.state == channel.latest.state:
            # a retransmission of a proposal we already countersigned: our ack was lost
            mine = channel.latest.sig_a if channel.role == "a" else channel.latest.sig_b
            ack = m.Ack(channel.channel_id, message.nonce, mine)
            self.spawn(self._send_quietly(channel.peer, {"type": "msg", "msg": ack.to_json()}))
            return
        try:
            transition = m.apply_message(channel, message, self.block)
        except ChannelError as exc:
            transition = m.apply_refusal(channel, message, exc)
        self._commit(transition)

    def _commit(self, transition: m.Transition, forward: dict[str, Any] | None = None) -> None:
        """Persist, then send, then act on events (the order that makes acks durable)."""
        channel = transition.channel
        self.save_channel(channel)
        for message in transition.messages:
            frame: dict[str, Any] = {"type": "msg", "msg": message.to_json()}
            if forward is not None and isinstance(message, m.Proposal):
                frame["forward"] = forward
            self.spawn(self._send_quietly(channel.peer, frame))
        for event in transition.events:
            self._on_event(channel, event)
        # a transition may revoke a state an unsure forward waited on, or end the pending
        # proposal that kept an expired lock from being failed
        self.resolve_unsure(channel.channel_id)
        self.fail_expired(channel.channel_id)

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_event(self, channel: m.Channel, event: m.Event) -> None:
        waiter = self.inflight.get(channel.channel_id)
        if isinstance(event, m.UpdateCommitted):
            if event.proposer == channel.role:
                # usually the proposal in flight; it may also be an earlier one we had
                # abandoned, which the peer countersigned after all (see machine.apply_ack)
                if waiter is not None and waiter.update == event.update:
                    del self.inflight[channel.channel_id]
                    if not waiter.future.done():
                        waiter.future.set_result(event)
            elif event.final:
                self._on_peer_update(channel, event)
            else:
                # tentative: we also signed another state at this nonce; act once final
                self._tentative.setdefault(channel.channel_id, []).append(event)
            if event.final:
                for earlier in self._tentative.pop(channel.channel_id, []):
                    self._on_peer_update(channel, earlier)
            tower = self._find_tower()
            if tower is not None:
                self.spawn(self._to_tower(tower, event.state))
        elif isinstance(event, m.ProposalAbandoned):
            if waiter is not None:
                del self.inflight[channel.channel_id]
                if not waiter.future.done():
                    waiter.future.set_result(event)
        elif isinstance(event, m.PreimageLearned):
            self.on_preimage(bytes(event.hashlock), bytes(event.preimage))

    async def _to_tower(self, tower: tuple[str, int], state: SignedState) -> None:
        try:
            await register_with_tower(*tower, state)
        except (TimeoutError, ChannelError, OSError) as exc:
            log.warning("watchtower unreachable: %s", exc)

    # ------------------------------------------------------------------ command queue
    def start_worker(self, channel_id: bytes) -> None:
        if channel_id not in self.queues:
            self.queues[channel_id] = asyncio.Queue()
            self.workers[channel_id] = asyncio.create_task(self._worker(channel_id))

    async def submit(self, channel_id: bytes, update: m.Update,
                     forward: dict[str, Any] | None = None) -> m.Event:
        """Propose ``update`` on a channel once nothing else is in flight; await its fate."""
        self.start_worker(channel_id)
        future: asyncio.Future[m.Event] = asyncio.get_running_loop().create_future()
        await self.queues[channel_id].put(Waiter(update, future, forward))
        return await future

    async def _worker(self, channel_id: bytes) -> None:
        queue = self.queues[channel_id]
        while True:
            waiter = await queue.get()
            outcome: m.Event | BaseException
            for attempt in range(3):
                outcome = await self._propose(channel_id, waiter)
                if not isinstance(outcome, m.ProposalAbandoned) or "concurrent" not in \
                        outcome.reason.lower():
                    break
                await asyncio.sleep(0.005 * (attempt + 1) * (1 if self._is_a(channel_id) else 2))
            if not waiter.future.done():
                if isinstance(outcome, BaseException):
                    waiter.future.set_exception(outcome)
                else:
                    waiter.future.set_result(outcome)

    def _is_a(self, channel_id: bytes) -> bool:
        return self.channels[channel_id].role == "a"

    async def _propose(self, channel_id: bytes, waiter: Waiter) -> m.Event | BaseException:
        stuck = self.channels[channel_id].pending
        if stuck is not None:  # an earlier proposal still unanswered: settle its fate first
            outcome = await self._await_answer(channel_id, Waiter(stuck.update, _future(),
                                                                  None), resend=True)
            if isinstance(outcome, BaseException):
                return outcome
        channel = self.channels[channel_id]
        try:
            transition = m.apply_command(channel, waiter.update, self.block)
        except ChannelError as exc:
            return exc
        inner = Waiter(waiter.update, _future(), waiter.forward)
        self.inflight[channel_id] = inner
        self._commit(transition, waiter.forward)
        return await self._await_answer(channel_id, inner, resend=False)

    async def _await_answer(self, channel_id: bytes, waiter: Waiter,
                            resend: bool) -> m.Event | BaseException:
        """Wait for the peer's answer to our pending proposal, re-sending it every
        ``RESEND_INTERVAL`` (a lost frame, a reconnecting peer). After ``PROPOSAL_TIMEOUT``
        the proposal stays pending (we signed it; only the peer's answer or a higher
        commit can end it) and the command fails."""
        self.inflight[channel_id] = waiter
        deadline = time.monotonic() + PROPOSAL_TIMEOUT
        while True:
            pending = self.channels[channel_id].pending
            if resend and pending is not None:
                self.spawn(self._send_quietly(self.channels[channel_id].peer, {
                    "type": "msg", "msg": pending.to_json(), "forward": waiter.forward}))
            resend = True
            left = deadline - time.monotonic()
            if left <= 0:
                return ProposalTimeout(f"peer did not answer proposal nonce "
                                       f"{pending.nonce if pending else '?'} on "
                                       f"0x{channel_id.hex()} within {PROPOSAL_TIMEOUT} s")
            try:
                return await asyncio.wait_for(asyncio.shield(waiter.future),
                                              min(left, RESEND_INTERVAL))
            except TimeoutError:
                if self.channels[channel_id].pending is None:  # resolved another way
                    self.inflight.pop(channel_id, None)
                    return ChannelError("proposal resolved without an answer to us")

    # ------------------------------------------------------------------ HTLC flow
    def _on_peer_update(self, channel: m.Channel, event: m.UpdateCommitted) -> None:
        update = event.update
        if isinstance(update, m.AddLock):
            self.spawn(self._on_incoming_lock(channel.channel_id, update))
        elif isinstance(update, m.FailLock):
            self.on_downstream_failed(channel.channel_id, bytes(update.hashlock))

    async def _on_incoming_lock(self, in_channel: bytes, lock: m.AddLock) -> None:
        hashlock = bytes(lock.hashlock)
        invoice = self.store.get(INVOICE_PREFIX + hashlock)
        if invoice is not None:  # we are the payee
            if lock.amount < invoice["amount"]:
                await self._fail(in_channel, hashlock, "amount below the invoice")
                return
            if invoice.get("paid"):
                await self._fail(in_channel, hashlock, "invoice already paid")
                return
            preimage = Preimage(_unhex(invoice["preimage"]))
            self.save_channel(m.apply_preimage(self.channels[in_channel], preimage))
            invoice["paid"] = True
            self.store.put(INVOICE_PREFIX + hashlock, invoice)
            await self._settle(in_channel, hashlock, preimage)
            return
        hint = self.route_hints.pop(hashlock, None)
        hops = (hint or {}).get("hops", [])
        if not hops:
            await self._fail(in_channel, hashlock, "unknown payment hash and no next hop")
            return
        nxt = hops[0]
        out_channel = _unhex(nxt["channel_id"])
        amount, expiry = int(nxt["amount"]), int(nxt["expiry"])
        policy = self.fee_policy
        ok = (out_channel in self.channels
              and lock.amount - amount >= policy.compute_fee(Wei(amount))
              and lock.expiry - expiry >= policy.cltv_delta)
        if not ok:
            await self._fail(in_channel, hashlock, "cannot forward: unknown channel, fee or expiry")
            return
        fwd = Forward(hashlock, in_channel, out_channel)
        self.forwards[hashlock] = fwd
        self.save_forward(fwd)
        outcome = await self.submit_safely(out_channel, m.AddLock(
            Wei(amount), Hashlock(hashlock), BlockNumber(expiry)), {"hops": hops[1:]})
        if not isinstance(outcome, m.UpdateCommitted) and self.signed_lock(out_channel, hashlock):
            # we signed the lock: the next hop could still commit or close on it, so the
            # incoming lock is failed only once that state is revoked or the lock expired
            nonce = self.channels[out_channel].latest.state.nonce + 1
            self._unsure[hashlock] = (out_channel, nonce, expiry)
            self.resolve_unsure(out_channel)
        elif not isinstance(outcome, m.UpdateCommitted):
            fwd.state = "failed"
            self.save_forward(fwd)
            await self._fail(in_channel, hashlock, f"next hop refused: {outcome}")

    def signed_lock(self, channel_id: bytes, hashlock: bytes) -> bool:
        """True when we signed a not-yet-revoked state holding this lock (pending or
        abandoned proposals): the peer may still commit it."""
        channel = self.channels[channel_id]
        proposals = [channel.pending] if channel.pending is not None else []
        proposals += list(channel.abandoned)
        return any(isinstance(p.update, m.AddLock) and p.update.hashlock == hashlock
                   and not m.is_revoked(channel, p.nonce) for p in proposals)

    async def submit_safely(self, channel_id: bytes, update: m.Update,
                            forward: dict[str, Any] | None = None) -> m.Event | str:
        try:
            return await self.submit(channel_id, update, forward)
        except ChannelError as exc:
            return str(exc)

    async def _settle(self, channel_id: bytes, hashlock: bytes, preimage: bytes) -> None:
        outcome = await self.submit_safely(
            channel_id, m.SettleLock(Hashlock(hashlock), Preimage(preimage)))
        if not isinstance(outcome, m.UpdateCommitted):
            log.warning("settling 0x%s on 0x%s failed: %s", hashlock.hex()[:12],
                        channel_id.hex()[:12], outcome)

    async def _fail(self, channel_id: bytes, hashlock: bytes, reason: str) -> None:
        log.info("failing lock 0x%s on 0x%s: %s", hashlock.hex()[:12], channel_id.hex()[:12],
                 reason)
        outcome = await self.submit_safely(channel_id, m.FailLock(Hashlock(hashlock)))
        if not isinstance(outcome, m.UpdateCommitted):
            log.warning("failing lock 0x%s failed: %s", hashlock.hex()[:12], outcome)

    def on_preimage(self, hashlock: bytes, preimage: bytes) -> None:
        """Downstream settled (off-chain or on L1): settle upstream, or finish our payment."""
        fwd = self.forwards.get(hashlock)
        if fwd is not None and fwd.state == "offered":
            fwd.state = "settled"
            self.save_forward(fwd)
            channel = self.channels[fwd.in_channel]
            self.save_channel(m.apply_preimage(channel, Preimage(preimage)))
            self.spawn(self._settle(fwd.in_channel, hashlock, preimage))
        payment = self.payments.get(hashlock)
        if payment is not None and payment.status in ("pending", "in_flight"):
            payment.status, payment.preimage = "succeeded", preimage
            payment.finished = time.perf_counter()
            self.save_payment(payment)

    def on_downstream_failed(self, out_channel: bytes, hashlock: bytes) -> None:
        fwd = self.forwards.get(hashlock)
        if fwd is not None and fwd.out_channel == out_channel and fwd.state == "offered":
            fwd.state = "failed"
            self.save_forward(fwd)
            self.spawn(self._fail(fwd.in_channel, hashlock, "failed downstream"))
        payment = self.payments.get(hashlock)
        if payment is not None and payment.status == "pending":
            payment.excluded.append(out_channel)
            self.attempt_failed.setdefault(hashlock, asyncio.Event()).set()
        elif payment is not None and payment.status == "in_flight":
            payment.status = "failed"
            self.save_payment(payment)

    def save_payment(self, payment: Payment) -> None:
        self.store.put(PAYMENT_PREFIX + payment.hashlock, {
            "amount": payment.amount, "payee": _hex(payment.payee), "status": payment.status,
            "attempts": payment.attempts, "error": payment.error,
            "preimage": _hex(payment.preimage) if payment.preimage else None})

    def resolve_unsure(self, only: bytes | None = None) -> None:
        """Forwarded locks whose outgoing proposal was abandoned: once that state can no
        longer be committed or closed on (revoked, or the lock expired), fail upstream; if
        the peer countersigned it after all, it is simply forwarded. Run on each new block
        and after each transition of the outgoing channel (``only``)."""
        for hashlock, (out_channel, nonce, expiry) in list(self._unsure.items()):
            if only is not None and out_channel != only:
                continue
            channel = self.channels[out_channel]
            if m.get_lock(channel.latest.state, Hashlock(hashlock)) is not None:
                del self._unsure[hashlock]
            elif m.is_revoked(channel, Nonce(nonce)) or self.block > expiry:
                del self._unsure[hashlock]
                self.on_downstream_failed(out_channel, hashlock)

    def fail_expired(self, only: bytes | None = None) -> None:
        """Locks we offered that expired unsettled: propose FailLock (BOLT 2 lets the payer
        time them out); the upstream lock is failed when that commits. A peer that never
        answers keeps the lock in our latest state: close on L1 and it is refunded at
        settlement. Run on each new block and after each transition of a channel
        (``only``)."""
        for channel_id, channel in self.channels.items():
            if only is not None and channel_id != only:
                continue
            if m.is_closed(channel) or channel.pending is not None:
                continue
            for lock in m.get_refundable_locks(channel, self.block):
                if (channel_id, lock.hashlock) in self._failing:
                    continue
                self._failing.add((channel_id, lock.hashlock))
                self.spawn(self._fail_expired_lock(channel_id, bytes(lock.hashlock)))

    async def _fail_expired_lock(self, channel_id: bytes, hashlock: bytes) -> None:
        try:
            outcome = await self.submit_safely(channel_id, m.FailLock(Hashlock(hashlock)))
            if isinstance(outcome, m.UpdateCommitted):
                self.on_downstream_failed(channel_id, hashlock)
            else:
                log.warning("peer of 0x%s does not fail expired lock 0x%s (%s); closing on L1",
                            channel_id.hex()[:12], hashlock.hex()[:12], outcome)
                with contextlib.suppress(ChannelError):
                    await self._close_on_l1(channel_id)
                self.on_downstream_failed(channel_id, hashlock)
        finally:
            self._failing.discard((channel_id, hashlock))

