"""A channel node: one process holding one key, its channels, invoices and forwarded HTLCs.

The I/O around the pure core (:mod:`layerlab.l2.channels.machine`):

* **Peers** talk over TCP on 127.0.0.1 (:mod:`.wire` frames). A frame carries a machine
  message (proposal, ack, reject) and, for an ``AddLock``, the rest of the route the lock
  should follow (BOLT 4 carries it in an onion; here it travels in the clear).
* **Disk.** Every transition's new channel is written to LevelDB (:class:`RecordStore`)
  *before* the messages it produced (our acks and signatures) leave the process, so a
  node killed at any moment restarts with every state it ever acknowledged.
* **Payments** (BOLT 4/11): an invoice names the payee and ``sha256(preimage)``; the payer
  finds the cheapest route with capacity (:func:`routing.find_route`) and offers a lock on
  the first hop; each forwarder, once its incoming lock is committed, offers the next one
  for the amount minus its fee and an earlier expiry. The payee settles with the preimage;
  the settlement (or a failure) travels back hop by hop. A failed attempt is retried on a
  route avoiding the failing channel.
* **L1.** An :class:`~layerlab.l2.follower.L1Follower` reads the channel contract in a
  worker thread; its changes are applied on the event loop: channels opened by others
  feed the routing graph; a close by a peer on a state older than ours is challenged at
  once; preimages revealed by ``claimLock`` settle the upstream lock; each new block runs
  the block-numbered deadlines (expired locks of a silent peer are failed upstream and,
  if needed, the channel is closed and settled on L1). A reorg's retracted events undo
  what they can (a retracted open leaves the graph, a retracted close is not settled).
  The follower keeps no cursor on disk: the graph is not stored either, so a restarted
  node reads the contract from block 0 again.
* **Control.** A small JSON API on a second port (``POST /``) serves the CLI: ``info``,
  ``open``, ``invoice``, ``pay``, ``send`` (direct payments), ``close``, ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from eth_account import Account
from eth_hash.auto import keccak
from web3 import Web3

from layerlab.errors import ChannelError
from layerlab.l2.channels import machine as m
from layerlab.l2.channels.invoice import (
    Invoice,
    compute_preimage,
    create_invoice,
    decode_invoice,
    encode_invoice,
)
from layerlab.l2.channels.onchain import ChannelContract, ChannelStatus, ChannelTxError
from layerlab.l2.channels.routing import (
    ChannelGraph,
    FeePolicy,
    GraphChannel,
    NoRoute,
    RoutingError,
    apply_channel,
    apply_channel_closed,
    apply_policy,
    create_graph,
    find_route,
)
from layerlab.l2.channels.signing import recover_digest_signer, sign_digest
from layerlab.l2.channels.types import ChannelId, Hashlock, SignedState
from layerlab.l2.channels.watchtower import register_with_tower
from layerlab.l2.channels.wire import read_frame, write_frame
from layerlab.l2.follower import EventReceived, L1Change, L1Follower, NewBlock, ReorgTooDeep
from layerlab.l2.l1client import ContractEvent
from layerlab.l2.store import RecordStore
from layerlab.orchestration import wait_for_stop_signal, write_ready_file
from layerlab.primitives.types import Address, BlockNumber, ChainId, Nonce, Timestamp, Wei

log = logging.getLogger(__name__)

CHANNEL_PREFIX = b"channel:"
INVOICE_PREFIX = b"invoice:"
FORWARD_PREFIX = b"forward:"
PAYMENT_PREFIX = b"payment:"
MAX_RETRIES = 5
"""Route attempts per payment (BOLT 4 leaves this to the payer; lnd's default is larger)."""
PROPOSAL_TIMEOUT = 10.0
"""Seconds to wait for the peer's answer to one proposal before failing the command."""
SETTLE_GRACE_BLOCKS = 3
"""Blocks the non-closer waits after the settle block before settling itself."""
RESEND_INTERVAL = 2.0
"""Seconds between re-sends of an unanswered proposal."""
MAX_L1_REWINDS = 10
"""Reorgs deeper than the follower's history after which the node stops reading the L1."""


class ProposalTimeout(ChannelError):
    """The peer did not answer; our signed proposal stays pending on the channel."""


def _future() -> asyncio.Future[m.Event]:
    return asyncio.get_running_loop().create_future()


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


DEFAULT_FEE_POLICY = FeePolicy(Wei(1), 100, 10)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs to start; ``directory`` is the network's shared listing of
    nodes (address, ports, fee policy), written by ``layerlab channels up``."""

    private_key: bytes
    data_dir: Path
    l1_url: str
    contract_address: str
    host: str = "127.0.0.1"
    port: int = 0
    control_port: int = 0
    fee_policy: FeePolicy = DEFAULT_FEE_POLICY
    directory: Path | None = None
    tower: tuple[str, int] | None = None
    settle_timeout: int = 20
    poll_interval: float = 0.25
    l1_confirmations: int = 0
    """Blocks on top of an L1 event before the node acts on it. 0 acts at once (a
    challenge cannot wait: the dispute window is counted in blocks); on a chain that
    reorganises, a deposit credited off-chain may then vanish."""


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
class PeerLink:
    address: bytes
    writer: asyncio.StreamWriter


@dataclass
class Waiter:
    """A local command waiting for its proposal's fate."""

    update: m.Update
    future: asyncio.Future[m.Event]
    forward: dict[str, Any] | None = None


class ChannelNode:
    """One payment-channel node (see the module docstring)."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.key = config.private_key
        self.address = Address(bytes.fromhex(Account.from_key(self.key).address[2:]))
        self.store = RecordStore(config.data_dir / "node")
        self.w3 = Web3(Web3.HTTPProvider(config.l1_url, request_kwargs={"timeout": 30}))
        self.contract = ChannelContract.at(self.w3, config.contract_address)
        self.domain = self.contract.domain()
        self.chain_id = ChainId(self.domain.chain_id)
        self.channels: dict[bytes, m.Channel] = {}
        self.peer_of: dict[bytes, bytes] = {}
        self.links: dict[bytes, PeerLink] = {}
        self.queues: dict[bytes, asyncio.Queue[Waiter]] = {}
        self.workers: dict[bytes, asyncio.Task[None]] = {}
        self.inflight: dict[bytes, Waiter] = {}
        self.forwards: dict[bytes, Forward] = {}
        self.route_hints: dict[bytes, dict[str, Any]] = {}
        self.payments: dict[bytes, Payment] = {}
        self.graph: ChannelGraph = create_graph()
        self.block = BlockNumber(0)
        self.follower = L1Follower(self.contract.l1, confirmations=config.l1_confirmations)
        self._server: asyncio.AbstractServer | None = None
        self._control: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = config.port
        self.control_port = config.control_port
        self._attempt_failed: dict[bytes, asyncio.Event] = {}
        self._tentative: dict[bytes, list[m.UpdateCommitted]] = {}
        self._unsure: dict[bytes, tuple[bytes, int, int]] = {}
        """Forwarded locks whose outgoing proposal was abandoned: (channel, nonce, expiry)."""
        self._failing: set[tuple[bytes, bytes]] = set()
        self._settle_after: dict[bytes, int] = {}
        """Channels closed unilaterally on L1, by settle block: settle once it passes."""
        self._settling: set[bytes] = set()
        self._background: set[asyncio.Future[Any]] = set()
        self._outboxes: dict[bytes, asyncio.Queue[dict[str, Any]]] = {}
        self._tower_checked = -10.0
        self._tower_cached: tuple[str, int] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.block = BlockNumber(await asyncio.to_thread(self.contract.block_number))
        self._restore()
        self._server = await asyncio.start_server(self._on_connection, self.config.host,
                                                  self.config.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        app = web.Application()
        app.router.add_post("/", self._on_control)
        self._control = web.AppRunner(app, access_log=None)
        await self._control.setup()
        site = web.TCPSite(self._control, self.config.host, self.config.control_port)
        await site.start()
        self.control_port = int(self._control.addresses[0][1])
        self._tasks.append(asyncio.create_task(self._watch_l1()))
        for channel_id in self.channels:
            self._start_worker(channel_id)
        log.info("node 0x%s: peers on %d, control on %d, %d channels", self.address.hex(),
                 self.port, self.control_port, len(self.channels))

    async def stop(self) -> None:
        for task in [*self._tasks, *self.workers.values()]:
            task.cancel()
        for task in [*self._tasks, *self.workers.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for link in self.links.values():
            link.writer.close()
        if self._server:
            self._server.close()
        if self._control:
            await self._control.cleanup()
        self.store.close()

    def _restore(self) -> None:
        for key, raw in self.store.items(CHANNEL_PREFIX):
            channel = m.decode_channel(json.dumps(raw), self.key)
            self.channels[key[len(CHANNEL_PREFIX):]] = channel
            self.peer_of[channel.channel_id] = channel.peer
        for key, raw in self.store.items(FORWARD_PREFIX):
            self.forwards[key[len(FORWARD_PREFIX):]] = Forward(
                _unhex(raw["hashlock"]), _unhex(raw["in"]),
                _unhex(raw["out"]) if raw["out"] else None, raw["state"])

    # ------------------------------------------------------------------ persistence
    def _save_channel(self, channel: m.Channel) -> None:
        """Write the channel before anything derived from it is sent (ack-after-write)."""
        self.channels[channel.channel_id] = channel
        self.store.put_encoded(CHANNEL_PREFIX + channel.channel_id, m.encode_channel(channel))

    def _save_forward(self, fwd: Forward) -> None:
        self.store.put(FORWARD_PREFIX + fwd.hashlock, {
            "hashlock": _hex(fwd.hashlock), "in": _hex(fwd.in_channel),
            "out": _hex(fwd.out_channel) if fwd.out_channel else "", "state": fwd.state})

    # ------------------------------------------------------------------ peers
    def directory(self) -> dict[str, Any]:
        if self.config.directory is None or not self.config.directory.exists():
            return {}
        data: dict[str, Any] = json.loads(self.config.directory.read_text())
        return data

    async def _link(self, peer: bytes) -> PeerLink:
        link = self.links.get(peer)
        if link is not None and not link.writer.is_closing():
            return link
        entry = self.directory().get("nodes", {}).get(_hex(peer))
        if entry is None:
            raise ChannelError(f"peer 0x{peer.hex()} is not in the network directory")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(entry["host"], entry["port"]), 10)
        try:
            await asyncio.wait_for(self._handshake_as_dialer(reader, writer, peer), 10)
        except (ChannelError, TimeoutError, asyncio.IncompleteReadError, KeyError,
                ValueError) as exc:
            writer.close()
            raise ChannelError(f"handshake with 0x{peer.hex()} failed: {exc}") from exc
        link = PeerLink(peer, writer)
        self.links[peer] = link
        self._tasks.append(asyncio.create_task(self._read_loop(reader, link)))
        self._reestablish(peer)
        return link

    # Peers prove their addresses by signing the other side's fresh nonce (the role of
    # BOLT 8's Noise_XK handshake; frames after it are not encrypted, as everything that
    # moves value inside them is signed anyway).
    def _hello_digest(self, kind: bytes, listener: bytes, nonce: bytes) -> bytes:
        return bytes(keccak(b"layerlab-channels:" + kind + listener + nonce))

    async def _handshake_as_dialer(self, reader: asyncio.StreamReader,
                                   writer: asyncio.StreamWriter, peer: bytes) -> None:
        challenge = await read_frame(reader)
        if challenge.get("type") != "challenge" or _unhex(challenge["address"]) != peer:
            raise ChannelError("the listener is not the expected peer")
        my_nonce = os.urandom(32)
        digest = self._hello_digest(b"hello", peer, _unhex(challenge["nonce"]))
        await write_frame(writer, {"type": "hello", "address": _hex(self.address),
                                   "nonce": _hex(my_nonce),
                                   "signature": _hex(sign_digest(digest, self.key))})
        welcome = await read_frame(reader)
        signer = recover_digest_signer(self._hello_digest(b"welcome", self.address, my_nonce),
                                       _unhex(welcome["signature"]))
        if welcome.get("type") != "welcome" or signer != peer:
            raise ChannelError("the listener did not prove its address")

    async def _handshake_as_listener(self, reader: asyncio.StreamReader,
                                     writer: asyncio.StreamWriter) -> bytes:
        nonce = os.urandom(32)
        await write_frame(writer, {"type": "challenge", "address": _hex(self.address),
                                   "nonce": _hex(nonce)})
        hello = await read_frame(reader)
        if hello.get("type") != "hello":
            raise ChannelError("peer did not introduce itself")
        claimed = _unhex(hello["address"])
        signer = recover_digest_signer(self._hello_digest(b"hello", self.address, nonce),
                                       _unhex(hello["signature"]))
        if signer != claimed:
            raise ChannelError(f"hello claims 0x{claimed.hex()} but is signed by 0x{signer.hex()}")
        digest = self._hello_digest(b"welcome", claimed, _unhex(hello["nonce"]))
        await write_frame(writer, {"type": "welcome",
                                   "signature": _hex(sign_digest(digest, self.key))})
        return claimed

    def _reestablish(self, peer: bytes) -> None:
        """After (re)connecting, re-send our proposals still awaiting an answer
        (the part of BOLT 2's ``channel_reestablish`` this protocol needs)."""
        for channel in self.channels.values():
            if channel.peer == peer and channel.pending is not None:
                self._spawn(self._send_quietly(peer, {"type": "msg",
                                                      "msg": channel.pending.to_json()}))

    async def _send(self, peer: bytes, frame: dict[str, Any]) -> None:
        link = await self._link(peer)
        await write_frame(link.writer, frame)

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        try:
            peer = await asyncio.wait_for(self._handshake_as_listener(reader, writer), 10)
            link = PeerLink(peer, writer)
            self.links[link.address] = link
            self._reestablish(peer)
            await self._read_loop(reader, link)
        except (TimeoutError, ChannelError, asyncio.IncompleteReadError, ConnectionError,
                KeyError, ValueError) as exc:
            log.info("dropping connection: %s", exc)
            writer.close()

    async def _read_loop(self, reader: asyncio.StreamReader, link: PeerLink) -> None:
        try:
            while True:
                frame = await read_frame(reader)
                try:
                    await self._on_frame(link, frame)
                except (ChannelError, KeyError, TypeError, ValueError) as exc:
                    log.warning("frame from 0x%s refused: %s", link.address.hex(), exc)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self.links.get(link.address) is link:
                del self.links[link.address]

    async def _on_frame(self, link: PeerLink, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "channel_opened":
            await self._accept_channel(link.address, ChannelId(_unhex(frame["channel_id"])))
        elif kind == "msg":
            raw = frame.get("msg")
            if not isinstance(raw, str):
                raise ChannelError("a msg frame must carry the message as a JSON string")
            message = m.decode_message(raw)
            channel_id = message.channel_id
            channel = self.channels.get(channel_id)
            if channel is None or channel.peer != link.address:
                raise ChannelError(f"no channel 0x{channel_id.hex()} with this peer")
            if frame.get("forward") is not None and isinstance(message, m.Proposal):
                update = message.update
                if isinstance(update, m.AddLock):
                    self.route_hints[bytes(update.hashlock)] = frame["forward"]
            self._apply(channel, message)
        else:
            raise ChannelError(f"unknown frame type {kind!r}")

    # ------------------------------------------------------------------ channel transitions
    def _apply(self, channel: m.Channel, message: m.Message) -> None:
        if isinstance(message, m.Proposal) and message.state == channel.latest.state:
            # a retransmission of a proposal we already countersigned: our ack was lost
            mine = channel.latest.sig_a if channel.role == "a" else channel.latest.sig_b
            ack = m.Ack(channel.channel_id, message.nonce, mine)
            self._spawn(self._send_quietly(channel.peer, {"type": "msg", "msg": ack.to_json()}))
            return
        try:
            transition = m.apply_message(channel, message, self.block)
        except ChannelError as exc:
            transition = m.apply_refusal(channel, message, exc)
        self._commit(transition)

    def _commit(self, transition: m.Transition, forward: dict[str, Any] | None = None) -> None:
        """Persist, then send, then act on events (the order that makes acks durable)."""
        channel = transition.channel
        self._save_channel(channel)
        for message in transition.messages:
            frame: dict[str, Any] = {"type": "msg", "msg": message.to_json()}
            if forward is not None and isinstance(message, m.Proposal):
                frame["forward"] = forward
            self._spawn(self._send_quietly(channel.peer, frame))
        for event in transition.events:
            self._on_event(channel, event)
        # a transition may revoke a state an unsure forward waited on, or end the pending
        # proposal that kept an expired lock from being failed
        self._resolve_unsure(channel.channel_id)
        self._fail_expired(channel.channel_id)

    def _spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_quietly(self, peer: bytes, frame: dict[str, Any]) -> None:
        """Queue a frame for ``peer``; one sender task per peer keeps frames in order."""
        outbox = self._outboxes.get(peer)
        if outbox is None:
            outbox = self._outboxes[peer] = asyncio.Queue()
            self._tasks.append(asyncio.create_task(self._sender(peer, outbox)))
        await outbox.put(frame)

    async def _sender(self, peer: bytes, outbox: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            frame = await outbox.get()
            try:
                await self._send(peer, frame)
            except (ChannelError, OSError, TimeoutError) as exc:
                log.warning("cannot reach 0x%s: %s", peer.hex(), exc)

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
            tower = self._tower()
            if tower is not None:
                self._spawn(self._to_tower(tower, event.state))
        elif isinstance(event, m.ProposalAbandoned):
            if waiter is not None:
                del self.inflight[channel.channel_id]
                if not waiter.future.done():
                    waiter.future.set_result(event)
        elif isinstance(event, m.PreimageLearned):
            self._on_preimage(bytes(event.hashlock), bytes(event.preimage))

    def _tower(self) -> tuple[str, int] | None:
        """The watchtower to hand states to: configured, or listed in the directory."""
        if self.config.tower is not None:
            return self.config.tower
        now = time.monotonic()
        if now - self._tower_checked > 1.0:
            self._tower_checked = now
            entry = self.directory().get("tower")
            self._tower_cached = (entry["host"], int(entry["port"])) if entry else None
        return self._tower_cached

    async def _to_tower(self, tower: tuple[str, int], state: SignedState) -> None:
        try:
            await register_with_tower(*tower, state)
        except (TimeoutError, ChannelError, OSError) as exc:
            log.warning("watchtower unreachable: %s", exc)

    # ------------------------------------------------------------------ command queue
    def _start_worker(self, channel_id: bytes) -> None:
        if channel_id not in self.queues:
            self.queues[channel_id] = asyncio.Queue()
            self.workers[channel_id] = asyncio.create_task(self._worker(channel_id))

    async def submit(self, channel_id: bytes, update: m.Update,
                     forward: dict[str, Any] | None = None) -> m.Event:
        """Propose ``update`` on a channel once nothing else is in flight; await its fate."""
        self._start_worker(channel_id)
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
                self._spawn(self._send_quietly(self.channels[channel_id].peer, {
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
            self._spawn(self._on_incoming_lock(channel.channel_id, update))
        elif isinstance(update, m.FailLock):
            self._on_downstream_failed(channel.channel_id, bytes(update.hashlock))

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
            preimage = m.Preimage(_unhex(invoice["preimage"]))
            self._save_channel(m.apply_preimage(self.channels[in_channel], preimage))
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
        policy = self.config.fee_policy
        ok = (out_channel in self.channels
              and lock.amount - amount >= policy.compute_fee(Wei(amount))
              and lock.expiry - expiry >= policy.cltv_delta)
        if not ok:
            await self._fail(in_channel, hashlock, "cannot forward: unknown channel, fee or expiry")
            return
        fwd = Forward(hashlock, in_channel, out_channel)
        self.forwards[hashlock] = fwd
        self._save_forward(fwd)
        outcome = await self._submit_safely(out_channel, m.AddLock(
            Wei(amount), Hashlock(hashlock), BlockNumber(expiry)), {"hops": hops[1:]})
        if not isinstance(outcome, m.UpdateCommitted) and self._signed_lock(out_channel, hashlock):
            # we signed the lock: the next hop could still commit or close on it, so the
            # incoming lock is failed only once that state is revoked or the lock expired
            nonce = self.channels[out_channel].latest.state.nonce + 1
            self._unsure[hashlock] = (out_channel, nonce, expiry)
            self._resolve_unsure(out_channel)
        elif not isinstance(outcome, m.UpdateCommitted):
            fwd.state = "failed"
            self._save_forward(fwd)
            await self._fail(in_channel, hashlock, f"next hop refused: {outcome}")

    def _signed_lock(self, channel_id: bytes, hashlock: bytes) -> bool:
        """True when we signed a not-yet-revoked state holding this lock (pending or
        abandoned proposals): the peer may still commit it."""
        channel = self.channels[channel_id]
        proposals = [channel.pending] if channel.pending is not None else []
        proposals += list(channel.abandoned)
        return any(isinstance(p.update, m.AddLock) and p.update.hashlock == hashlock
                   and not m.is_revoked(channel, p.nonce) for p in proposals)

    async def _submit_safely(self, channel_id: bytes, update: m.Update,
                             forward: dict[str, Any] | None = None) -> m.Event | str:
        try:
            return await self.submit(channel_id, update, forward)
        except ChannelError as exc:
            return str(exc)

    async def _settle(self, channel_id: bytes, hashlock: bytes, preimage: bytes) -> None:
        outcome = await self._submit_safely(
            channel_id, m.SettleLock(Hashlock(hashlock), m.Preimage(preimage)))
        if not isinstance(outcome, m.UpdateCommitted):
            log.warning("settling 0x%s on 0x%s failed: %s", hashlock.hex()[:12],
                        channel_id.hex()[:12], outcome)

    async def _fail(self, channel_id: bytes, hashlock: bytes, reason: str) -> None:
        log.info("failing lock 0x%s on 0x%s: %s", hashlock.hex()[:12], channel_id.hex()[:12],
                 reason)
        outcome = await self._submit_safely(channel_id, m.FailLock(Hashlock(hashlock)))
        if not isinstance(outcome, m.UpdateCommitted):
            log.warning("failing lock 0x%s failed: %s", hashlock.hex()[:12], outcome)

    def _on_preimage(self, hashlock: bytes, preimage: bytes) -> None:
        """Downstream settled (off-chain or on L1): settle upstream, or finish our payment."""
        fwd = self.forwards.get(hashlock)
        if fwd is not None and fwd.state == "offered":
            fwd.state = "settled"
            self._save_forward(fwd)
            channel = self.channels[fwd.in_channel]
            self._save_channel(m.apply_preimage(channel, m.Preimage(preimage)))
            self._spawn(self._settle(fwd.in_channel, hashlock, preimage))
        payment = self.payments.get(hashlock)
        if payment is not None and payment.status in ("pending", "in_flight"):
            payment.status, payment.preimage = "succeeded", preimage
            payment.finished = time.perf_counter()
            self._save_payment(payment)

    def _on_downstream_failed(self, out_channel: bytes, hashlock: bytes) -> None:
        fwd = self.forwards.get(hashlock)
        if fwd is not None and fwd.out_channel == out_channel and fwd.state == "offered":
            fwd.state = "failed"
            self._save_forward(fwd)
            self._spawn(self._fail(fwd.in_channel, hashlock, "failed downstream"))
        payment = self.payments.get(hashlock)
        if payment is not None and payment.status == "pending":
            payment.excluded.append(out_channel)
            self._attempt_failed.setdefault(hashlock, asyncio.Event()).set()
        elif payment is not None and payment.status == "in_flight":
            payment.status = "failed"
            self._save_payment(payment)

    def _save_payment(self, payment: Payment) -> None:
        self.store.put(PAYMENT_PREFIX + payment.hashlock, {
            "amount": payment.amount, "payee": _hex(payment.payee), "status": payment.status,
            "attempts": payment.attempts, "error": payment.error,
            "preimage": _hex(payment.preimage) if payment.preimage else None})

    # ------------------------------------------------------------------ public operations
    async def open_channel(self, peer: bytes, amount: int) -> bytes:
        """Open and fund a channel with ``peer`` on L1, then tell the peer about it."""
        channel_id, _ = await asyncio.to_thread(
            self.contract.open, self.key, Web3.to_checksum_address(peer), amount,
            self.config.settle_timeout)
        channel = m.create_channel(role="a", private_key=self.key, peer=Address(peer),
                                   domain=self.domain, channel_id=channel_id,
                                   deposit_a=Wei(amount), deposit_b=Wei(0),
                                   config=m.ChannelConfig(
                                       settle_timeout=BlockNumber(self.config.settle_timeout)))
        self._save_channel(channel)
        self.peer_of[channel_id] = peer
        self._start_worker(channel_id)
        self._add_to_graph(channel_id, self.address, peer, amount, 0)
        await self._send(peer, {"type": "channel_opened", "channel_id": _hex(channel_id)})
        return bytes(channel_id)

    async def _accept_channel(self, peer: bytes, channel_id: ChannelId) -> None:
        """A peer says it opened a channel with us: check it on L1, then track it."""
        if channel_id in self.channels:
            return
        onchain = await asyncio.to_thread(self.contract.get_channel, channel_id)
        if (onchain.status != ChannelStatus.OPEN
                or _unhex(onchain.participant_a) != peer
                or _unhex(onchain.participant_b) != self.address):
            raise ChannelError(f"channel 0x{channel_id.hex()} is not open between us on L1")
        channel = m.create_channel(role="b", private_key=self.key, peer=Address(peer),
                                   domain=self.domain, channel_id=channel_id,
                                   deposit_a=Wei(onchain.deposit_a), deposit_b=Wei(onchain.deposit_b),
                                   config=m.ChannelConfig(
                                       settle_timeout=BlockNumber(onchain.settle_timeout)))
        self._save_channel(channel)
        self.peer_of[channel_id] = peer
        self._start_worker(channel_id)
        self._add_to_graph(channel_id, peer, self.address, onchain.deposit_a, onchain.deposit_b)

    def create_invoice(self, amount: int, description: str = "") -> str:
        preimage = compute_preimage()
        invoice = create_invoice(private_key=self.key, chain_id=self.chain_id, amount=Wei(amount),
                                 preimage=preimage, timestamp=Timestamp(int(time.time())),
                                 description=description)
        self.store.put(INVOICE_PREFIX + invoice.payment_hash, {
            "amount": amount, "preimage": _hex(preimage), "paid": False})
        return encode_invoice(invoice)

    async def pay(self, text: str, timeout: float = 60.0) -> Payment:
        """Pay an invoice over the cheapest route, retrying around failed channels."""
        invoice: Invoice = decode_invoice(text, chain_id=self.chain_id)
        hashlock = bytes(invoice.payment_hash)
        payment = Payment(hashlock, invoice.amount, bytes(invoice.payee))
        self.payments[hashlock] = payment
        deadline = time.monotonic() + timeout
        while payment.status == "pending" and payment.attempts < MAX_RETRIES \
                and time.monotonic() < deadline:
            payment.attempts += 1
            try:
                route = find_route(self.graph, self.address, Address(invoice.payee),
                                   Wei(invoice.amount), current_block=self.block,
                                   min_final_delta=invoice.min_final_expiry_delta,
                                   exclude_edges=[ChannelId(c) for c in payment.excluded])
            except (NoRoute, RoutingError) as exc:
                payment.error = str(exc)
                break
            first = route.hops[0]
            hops = [{"channel_id": _hex(h.channel_id), "amount": h.amount, "expiry": h.expiry}
                    for h in route.hops[1:]]
            failed = self._attempt_failed.setdefault(hashlock, asyncio.Event())
            failed.clear()
            outcome = await self._submit_safely(first.channel_id, m.AddLock(
                first.amount, Hashlock(hashlock), first.expiry), {"hops": hops})
            if not isinstance(outcome, m.UpdateCommitted):
                payment.error = str(outcome)
                if self._signed_lock(first.channel_id, hashlock):
                    # the first hop may still take the lock we signed: another route could
                    # make us pay twice, so this payment ends here (its lock times out)
                    break
                payment.excluded.append(bytes(first.channel_id))
                continue
            self.forwards[hashlock] = Forward(hashlock, b"", bytes(first.channel_id), "origin")
            done = asyncio.ensure_future(failed.wait())
            while payment.status == "pending" and not failed.is_set() \
                    and time.monotonic() < deadline:
                await asyncio.wait([done], timeout=0.05)
            done.cancel()
        if payment.status == "pending":
            # a lock of ours still committed or signed on the first hop may yet be settled
            # (or failed back): the outcome is unknown until then, not "failed"
            first_hop = self.forwards.get(hashlock)
            out = first_hop.out_channel if first_hop is not None else None
            live = out is not None and (
                m.get_lock(self.channels[out].latest.state, Hashlock(hashlock)) is not None
                or self._signed_lock(out, hashlock))
            payment.status = "in_flight" if live else "failed"
            payment.finished = time.perf_counter()
        self._save_payment(payment)
        return payment

    async def deposit(self, channel_id: bytes, amount: int) -> dict[str, Any]:
        """Top up our side of a channel on L1, then bring the signed state up to it."""
        receipt = await asyncio.to_thread(self.contract.deposit, self.key, ChannelId(channel_id),
                                          amount)
        event = await self._sync_deposits(channel_id)
        return {"gas_used": int(receipt["gasUsed"]),
                "nonce": event.state.state.nonce if isinstance(event, m.UpdateCommitted) else None}

    async def _sync_deposits(self, channel_id: bytes) -> m.Event | str | None:
        """Record the channel's L1 deposits and propose a ``Deposit`` update for them
        (the peer accepts it once it has seen them on L1 too; a refusal is retried)."""
        onchain = await asyncio.to_thread(self.contract.get_channel, ChannelId(channel_id))
        channel = self.channels[channel_id]
        if (onchain.deposit_a, onchain.deposit_b) != (channel.l1_deposit_a, channel.l1_deposit_b):
            self._save_channel(m.apply_observed_deposits(channel, Wei(onchain.deposit_a),
                                                         Wei(onchain.deposit_b)))
        state = self.channels[channel_id].latest.state
        if (state.deposit_a, state.deposit_b) == (onchain.deposit_a, onchain.deposit_b):
            return None
        outcome: m.Event | str | None = None
        for _ in range(20):
            outcome = await self._submit_safely(channel_id, m.Deposit(
                Wei(onchain.deposit_a), Wei(onchain.deposit_b)))
            if isinstance(outcome, m.UpdateCommitted):
                break
            await asyncio.sleep(self.config.poll_interval)  # the peer has not seen it yet
        return outcome

    async def send(self, channel_id: bytes, amount: int) -> m.Event:
        """A direct payment to the channel's peer (no HTLC)."""
        event = await self.submit(channel_id, m.Pay(Wei(amount)))
        if not isinstance(event, m.UpdateCommitted):
            raise ChannelError(f"payment refused: {getattr(event, 'reason', event)}")
        return event

    async def close(self, channel_id: bytes, cooperative: bool = True) -> dict[str, Any]:
        """Close cooperatively (one L1 transaction) or unilaterally (then settle later)."""
        channel = self.channels[channel_id]
        if cooperative:
            event = await self.submit(channel_id, m.Close())
            if isinstance(event, m.UpdateCommitted):
                receipt = await asyncio.to_thread(self.contract.cooperative_close, self.key,
                                                  event.state)
                return {"mode": "cooperative", "gas_used": int(receipt["gasUsed"])}
            log.info("cooperative close refused (%s); closing unilaterally", event)
        signed = m.compute_close_state(self.channels.get(channel_id, channel))
        receipt = await asyncio.to_thread(self.contract.close, self.key, signed)
        return {"mode": "unilateral", "gas_used": int(receipt["gasUsed"]),
                "nonce": signed.state.nonce}

    def status(self) -> dict[str, Any]:
        return {
            "address": _hex(self.address), "block": self.block,
            "channels": [{
                "channel_id": _hex(cid), "peer": _hex(ch.peer), "role": ch.role,
                "nonce": ch.latest.state.nonce, "my_balance": int(m.get_my_balance(ch)),
                "peer_balance": int(m.get_peer_balance(ch)), "locks": len(ch.latest.state.locks),
                "closed": m.is_closed(ch),
            } for cid, ch in self.channels.items()],
            "payments": {_hex(h): p.status for h, p in self.payments.items()},
            "invoices": {_hex(k[len(INVOICE_PREFIX):]): bool(v.get("paid"))
                         for k, v in self.store.items(INVOICE_PREFIX)},
        }

    # ------------------------------------------------------------------ L1 watcher
    def _add_to_graph(self, channel_id: bytes, a: bytes, b: bytes, dep_a: int, dep_b: int) -> None:
        total = Wei(dep_a + dep_b)
        self.graph = apply_channel(self.graph, GraphChannel(
            ChannelId(channel_id), Address(a), Address(b), total, total))
        self._refresh_policies()

    def _refresh_policies(self) -> None:
        for addr, entry in self.directory().get("nodes", {}).items():
            fee = entry.get("fee", {})
            self.graph = apply_policy(self.graph, Address(_unhex(addr)), FeePolicy(
                Wei(fee.get("base_fee", 1)), int(fee.get("proportional_millionths", 100)),
                int(fee.get("cltv_delta", 10))))

    async def _watch_l1(self) -> None:
        """Follow the channel contract; its changes are applied on the event loop. A reorg
        deeper than the follower's history is handled as a restart would: the graph is
        rebuilt from block 0 (everything else the L1 tells the node is idempotent)."""
        for _ in range(MAX_L1_REWINDS):
            try:
                await self.follower.run(self._on_l1_changes, self.config.poll_interval)
            except ReorgTooDeep as exc:
                log.error("%s; reading the channel contract again from block 0", exc)
                self.graph = create_graph()
                self.follower.rewind(0)
        log.error("the L1 reorganised too deep %d times: no longer watching it", MAX_L1_REWINDS)

    @property
    def l1_cursor(self) -> int:
        """The next L1 block the watcher will read."""
        return int(self.follower.cursor)

    def _on_l1_changes(self, changes: list[L1Change]) -> None:
        for change in changes:
            if isinstance(change, NewBlock):
                self.block = change.number
                self._on_block()
            elif isinstance(change, EventReceived):
                self._on_l1_event(change.event)
            else:
                self._on_l1_retracted(change.event)

    def _on_block(self) -> None:
        """The L1 clock moved: deadlines of forwarded locks, expired locks, settlements."""
        self._resolve_unsure()
        self._fail_expired()
        for channel_id, settle_after in list(self._settle_after.items()):
            if self.block > settle_after and channel_id not in self._settling:
                self._settling.add(channel_id)
                self._spawn(self._settle_on_l1(ChannelId(channel_id)))

    def _on_l1_event(self, event: ContractEvent) -> None:
        raw_id = event.args.get("channelId")
        if not isinstance(raw_id, bytes):
            return
        cid = ChannelId(raw_id)
        if event.name == "ChannelOpened":
            a, b = _unhex(event.args["participantA"]), _unhex(event.args["participantB"])
            self._add_to_graph(cid, a, b, int(event.args["deposit"]), 0)
        elif event.name in ("ChannelSettled", "CooperativelyClosed", "ChannelChallenged"):
            self.graph = apply_channel_closed(self.graph, cid)
            if event.name != "ChannelChallenged":
                self._settle_after.pop(cid, None)
        elif event.name == "ChannelClosed" and cid in self.channels:
            closer = _unhex(str(event.args["closer"]))
            # the closer settles; the other side only if it has not, a few blocks later
            grace = 0 if closer == self.address else SETTLE_GRACE_BLOCKS
            self._settle_after[cid] = int(event.args["settleBlock"]) + grace
            self._on_closed_on_l1(cid, int(event.args["nonce"]))
        elif event.name == "Deposited" and cid in self.channels:
            channel = self.channels[cid]
            side_a = _unhex(str(event.args["participant"])) == (
                self.address if channel.role == "a" else channel.peer)
            total = int(event.args["totalDeposit"])
            self._observe_deposits(cid, max(channel.l1_deposit_a, total) if side_a
                                   else channel.l1_deposit_a,
                                   channel.l1_deposit_b if side_a
                                   else max(channel.l1_deposit_b, total))
        elif event.name == "LockClaimed":
            self._on_preimage(bytes(event.args["hashlock"]), bytes(event.args["preimage"]))

    def _on_l1_retracted(self, event: ContractEvent) -> None:
        """An event's block left the L1 chain (a reorg): undo what can be undone."""
        raw_id = event.args.get("channelId")
        if not isinstance(raw_id, bytes):
            return
        cid = ChannelId(raw_id)
        if event.name == "ChannelOpened":
            self.graph = apply_channel_closed(self.graph, cid)
        elif event.name == "ChannelClosed":
            self._settle_after.pop(cid, None)
        # A deposit seen stays seen (the machine's L1 deposits only grow) and a preimage
        # learned stays known; a close settled or challenged leaves the graph until the
        # replacing chain shows it again. Confirmations (NodeConfig.l1_confirmations) are
        # the defence against the first.
        log.warning("L1 reorg retracted %s of 0x%s in block %d", event.name,
                    raw_id.hex()[:12], event.block_number)

    async def _settle_on_l1(self, channel_id: ChannelId) -> None:
        """Settle a closed channel whose window is over; the contract's typed refusal says
        whether to try again at a later block (``SettleTooEarly``, ``LockNotExpired``, a
        node unreachable) or to stop (``WrongStatus``: settled already)."""
        try:
            onchain = await asyncio.to_thread(self.contract.get_channel, channel_id)
            if onchain.status != ChannelStatus.CLOSING:
                self._settle_after.pop(channel_id, None)
                return
            await asyncio.to_thread(self.contract.settle, self.key, channel_id)
            self._settle_after.pop(channel_id, None)
            log.info("settled 0x%s on L1", channel_id.hex()[:12])
        except ChannelTxError as exc:
            if exc.error_name in ("WrongStatus", "UnknownChannel"):
                self._settle_after.pop(channel_id, None)
            else:
                log.info("settling 0x%s: %s (will retry at a later block)",
                         channel_id.hex()[:12], exc)
        finally:
            self._settling.discard(channel_id)

    def _resolve_unsure(self, only: bytes | None = None) -> None:
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
                self._on_downstream_failed(out_channel, hashlock)

    def _fail_expired(self, only: bytes | None = None) -> None:
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
                self._spawn(self._fail_expired_lock(channel_id, bytes(lock.hashlock)))

    async def _fail_expired_lock(self, channel_id: bytes, hashlock: bytes) -> None:
        try:
            outcome = await self._submit_safely(channel_id, m.FailLock(Hashlock(hashlock)))
            if isinstance(outcome, m.UpdateCommitted):
                self._on_downstream_failed(channel_id, hashlock)
            else:
                log.warning("peer of 0x%s does not fail expired lock 0x%s (%s); closing on L1",
                            channel_id.hex()[:12], hashlock.hex()[:12], outcome)
                with contextlib.suppress(ChannelError):
                    await self.close(channel_id, cooperative=False)
                self._on_downstream_failed(channel_id, hashlock)
        finally:
            self._failing.discard((channel_id, hashlock))

    def _observe_deposits(self, channel_id: bytes, deposit_a: int, deposit_b: int) -> None:
        channel = self.channels[channel_id]
        if (deposit_a, deposit_b) != (channel.l1_deposit_a, channel.l1_deposit_b):
            self._save_channel(m.apply_observed_deposits(channel, Wei(deposit_a), Wei(deposit_b)))

    def _on_closed_on_l1(self, channel_id: ChannelId, closed_nonce: int) -> None:
        """A close on a state older than our latest is challenged at once."""
        ours = self.channels[channel_id].latest
        if ours.state.nonce > closed_nonce:
            self._spawn(self._challenge(channel_id, closed_nonce, ours))

    async def _challenge(self, channel_id: ChannelId, closed_nonce: int, ours: SignedState) -> None:
        try:
            await asyncio.to_thread(self.contract.challenge, self.key, ours)
            log.warning("peer closed 0x%s on stale nonce %d; challenged with %d",
                        channel_id.hex()[:12], closed_nonce, ours.state.nonce)
        except ChannelTxError as exc:
            log.warning("challenge failed: %s", exc)

    # ------------------------------------------------------------------ control API
    async def _on_control(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            result = await self.control(str(body.get("method")), body.get("params") or {})
            return web.json_response({"result": result})
        except (ChannelError, KeyError, ValueError, TypeError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)

    async def control(self, method: str, params: dict[str, Any]) -> Any:
        if method == "info":
            return {"address": _hex(self.address), "port": self.port,
                    "control_port": self.control_port}
        if method == "open":
            return _hex(await self.open_channel(_unhex(params["peer"]), int(params["amount"])))
        if method == "invoice":
            return self.create_invoice(int(params["amount"]), str(params.get("description", "")))
        if method == "pay":
            payment = await self.pay(str(params["invoice"]), float(params.get("timeout", 60)))
            return {"status": payment.status, "attempts": payment.attempts,
                    "error": payment.error,
                    "ms": round((payment.finished - payment.started) * 1000, 3)}
        if method == "deposit":
            return await self.deposit(_unhex(params["channel_id"]), int(params["amount"]))
        if method == "send":
            count = int(params.get("count", 1))
            start = time.perf_counter()
            for _ in range(count):
                await self.send(_unhex(params["channel_id"]), int(params["amount"]))
            seconds = time.perf_counter() - start
            return {"count": count, "seconds": seconds, "per_second": count / seconds}
        if method == "close":
            return await self.close(_unhex(params["channel_id"]),
                                    bool(params.get("cooperative", True)))
        if method == "status":
            return self.status()
        raise ChannelError(f"unknown control method {method!r}")


async def run_node(config: NodeConfig, ready_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM; write ``{address, port, control_port}`` to ``ready_file``."""
    node = ChannelNode(config)
    await node.start()
    write_ready_file(ready_file, {"address": _hex(node.address), "port": node.port,
                                  "control_port": node.control_port})
    try:
        await wait_for_stop_signal()
    finally:
        await node.stop()
