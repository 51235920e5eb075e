"""The network service of an L1 node: peers, gossip and sync over TCP.

* **Peers.** A node listens on one TCP port and dials its static peers, redialling with a
  bounded back-off. The first frame each way is ``HELLO`` (protocol version, chain id,
  genesis hash, node id, listening port, head); a peer on another chain is dropped. Two
  nodes keep one connection between them: the one dialled by the lower node id.
* **Gossip.** Transactions accepted by the pool, blocks that passed verification and
  consensus votes are relayed to every other peer once (a bounded "seen" set stops echo
  storms), as Ethereum's ``eth`` protocol and the beacon chain's gossipsub topics do.
* **Sync.** When a peer's head is unknown (at ``HELLO``, or a gossiped block whose parent
  is missing) the node sends a *locator* of its own chain and imports what the peer sends
  back, verifying every block (seal or proposer signature, then full execution).
* **Blob data.** A block that carries blobs (EIP-4844 versioned hashes) arrives without
  them; it is held, not imported, until data-availability sampling over the peers
  (PeerDAS, EIP-7594: :mod:`layerlab.l1.p2p.sampling`) has fetched and verified this node's
  custody columns and random samples. A block whose data is withheld is refused
  (:class:`~layerlab.l1.das.DataUnavailable`) and never reaches fork choice. Blocks without
  blobs go straight to import, as before. ``HELLO`` carries the node's custody group count
  (the Fulu ``custody_group_count`` of its ENR), so peers know which columns it holds.
* **Penalties.** A peer that sends an undecodable frame or an invalid block loses score;
  at -100 it is disconnected and its address banned for :data:`BAN_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth.abc import BlockAPI
from eth_hash.auto import keccak

from layerlab.errors import InvalidBlock, LayerlabError, PeerError
from layerlab.l1.chain.blockrlp import encode_block
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.das import CUSTODY_REQUIREMENT, DataUnavailable
from layerlab.l1.node import Node, UnknownParent
from layerlab.l1.p2p import wire
from layerlab.l1.p2p.sampling import DataSampler, get_blob_versioned_hashes
from layerlab.l1.p2p.wire import as_bytes, as_column_indices, as_fields, as_int, as_list

log = logging.getLogger(__name__)

BAN_SECONDS = 60.0
PENALTY_INVALID_BLOCK = 100
PENALTY_BAD_FRAME = 100
PENALTY_BAD_TX = 5
SEEN_LIMIT = 100_000
DIAL_BACKOFF_MAX = 5.0
HELLO_TIMEOUT = 5.0
TX_FLUSH_SECONDS = 0.02
TX_BATCH = 500

ConsensusHandler = Callable[[int, bytes, "Peer"], None]
"""Called with (message id, payload, peer) for ATTESTATION and SLASHING messages; raises
:class:`LayerlabError` when the message is invalid (the peer is penalized)."""


@dataclass(eq=False)
class Peer:
    node_id: bytes
    host: str
    port: int
    """The peer's listening port (from its HELLO), which identifies it on loopback."""
    outbound: bool
    writer: asyncio.StreamWriter
    head_number: int = 0
    custody_groups: int = CUSTODY_REQUIREMENT
    """The PeerDAS custody group count it advertised (its HELLO's eighth field)."""
    score: int = 0
    syncing: bool = False
    connected_at: float = field(default_factory=time.time)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def send(self, msg_id: int, payload: Any) -> None:
        if not self.writer.is_closing():
            self.writer.write(wire.encode_frame(msg_id, payload))


class _Seen:
    """A bounded set of recently seen hashes (oldest forgotten first)."""

    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self._items: OrderedDict[bytes, None] = OrderedDict()
        self.limit = limit

    def add(self, key: bytes) -> bool:
        """Record ``key``; False if it was already there."""
        if key in self._items:
            return False
        self._items[key] = None
        if len(self._items) > self.limit:
            self._items.popitem(last=False)
        return True


class NetworkService:
    """Gossip and sync for one :class:`Node` (runs on the node's event loop)."""

    def __init__(self, node: Node, host: str, port: int, *, static_peers: Sequence[tuple[str, int]] = (),
                 on_consensus: ConsensusHandler | None = None,
                 custody_groups: int = CUSTODY_REQUIREMENT, withhold_columns: int = 0) -> None:
        self.node = node
        self.chain: EvmChain = node.chain
        self.host = host
        self.port = port
        self.node_id = os.urandom(8)
        self.static: set[tuple[str, int]] = set(static_peers)
        self.blocked: set[int] = set()
        self.peers: dict[bytes, Peer] = {}
        self.banned: dict[str, float] = {}
        self.on_consensus = on_consensus
        self.seen_blocks = _Seen()
        self.seen_txs = _Seen()
        self.seen_votes = _Seen()
        self.received_txs = _Seen()
        self.received_blocks = _Seen(10_000)
        self.block_arrival: OrderedDict[bytes, float] = OrderedDict()
        """When each block was first seen (produced or received), for propagation figures."""
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dialing: set[tuple[str, int]] = set()
        self._tx_buffer: list[bytes] = []
        self._stopped = False
        self.stats = {"blocks_in": 0, "blocks_invalid": 0, "txs_in": 0, "peers_dropped": 0}
        self.sampler = DataSampler(self, custody_groups=custody_groups, withhold=withhold_columns)
        node.pending_listeners.append(self._on_pending_tx)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_inbound, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        for addr in list(self.static):
            self._ensure_dialer(addr)
        self._spawn(self._tx_flusher())
        log.info("p2p listening on %s:%d (node id %s)", self.host, self.port, self.node_id.hex())

    async def stop(self) -> None:
        self._stopped = True
        if self._server:
            self._server.close()
        for peer in list(self.peers.values()):
            peer.writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- peer management -----------------------------------------------------------------
    def add_peer(self, host: str, port: int) -> None:
        self.blocked.discard(port)
        self.static.add((host, port))
        self._ensure_dialer((host, port))

    def remove_peer(self, host: str, port: int) -> bool:
        """Disconnect from the peer listening on ``port`` and refuse it until re-added."""
        self.static.discard((host, port))
        self.blocked.add(port)
        found = False
        for peer in list(self.peers.values()):
            if peer.port == port:
                self._drop(peer, "removed by admin")
                found = True
        return found

    def _ensure_dialer(self, addr: tuple[str, int]) -> None:
        if addr not in self._dialing and addr[1] != self.port:
            self._dialing.add(addr)
            self._spawn(self._dialer(addr))

    async def _dialer(self, addr: tuple[str, int]) -> None:
        """Keep a connection to a static peer: at most one dial per back-off period."""
        backoff = 0.2
        try:
            while not self._stopped and addr in self.static:
                if not any(p.port == addr[1] for p in self.peers.values()) and \
                        self.banned.get(addr[0] + f":{addr[1]}", 0) < time.time():
                    try:
                        reader, writer = await asyncio.wait_for(
                            asyncio.open_connection(*addr), HELLO_TIMEOUT)
                    except (TimeoutError, OSError):
                        backoff = min(backoff * 2, DIAL_BACKOFF_MAX)
                    else:
                        backoff = 0.2
                        await self._run_connection(reader, writer, outbound=True)
                await asyncio.sleep(backoff)
        finally:
            self._dialing.discard(addr)

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._run_connection(reader, writer, outbound=False)

    def _hello(self) -> list[Any]:
        head = self.node.head
        return [wire.PROTOCOL_VERSION, self.node.config.chain_id, self.chain.genesis_hash,
                self.node_id, self.port, head.hash, head.block_number,
                self.sampler.custody_groups]

    async def _run_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                              *, outbound: bool) -> None:
        peer: Peer | None = None
        host = writer.get_extra_info("peername", ("?", 0))[0]
        try:
            writer.write(wire.encode_frame(wire.HELLO, self._hello()))
            msg_id, payload = await asyncio.wait_for(wire.read_frame(reader), HELLO_TIMEOUT)
            peer = self._accept_hello(msg_id, payload, host, writer, outbound)
            if peer is None:
                return
            self._maybe_sync(peer, as_bytes(payload[5], "head", 32))
            while not self._stopped:
                msg_id, payload = await wire.read_frame(reader)
                self._on_frame(peer, msg_id, payload)
                if writer.is_closing():
                    break
                await writer.drain()
        except PeerError as exc:
            log.info("dropping %s: %s", peer.address if peer else host, exc)
            if peer is not None:
                self.penalize(peer, PENALTY_BAD_FRAME, str(exc))
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except LayerlabError as exc:  # e.g. an invalid vote or block escaping a handler
            log.info("dropping %s: %s", peer.address if peer else host, exc)
        except Exception:  # a bug here must cost one connection, not the node
            log.exception("connection with %s failed", peer.address if peer else host)
        finally:
            writer.close()
            if peer is not None and self.peers.get(peer.node_id) is peer:
                del self.peers[peer.node_id]

    def _accept_hello(self, msg_id: int, payload: Any, host: str, writer: asyncio.StreamWriter,
                      outbound: bool) -> Peer | None:
        if msg_id != wire.HELLO:
            raise PeerError(f"expected hello, got {wire.NAMES[msg_id]}")
        fields = as_list(payload, "hello", 16)
        if len(fields) < 7:
            raise PeerError("hello has too few fields")
        version, chain_id = as_int(fields[0], "version"), as_int(fields[1], "chain id")
        genesis, node_id = as_bytes(fields[2], "genesis", 32), as_bytes(fields[3], "node id", 8)
        port, head_number = as_int(fields[4], "port"), as_int(fields[6], "head number")
        if version != wire.PROTOCOL_VERSION or chain_id != self.node.config.chain_id \
                or genesis != self.chain.genesis_hash:
            raise PeerError(f"peer on another chain (version {version}, chain id {chain_id}, "
                            f"genesis 0x{genesis.hex()[:16]})")
        if node_id == self.node_id or port in self.blocked:
            return None
        if self.banned.get(f"{host}:{port}", 0) > time.time():
            return None
        existing = self.peers.get(node_id)
        if existing is not None:
            # keep the connection dialled by the lower node id (both sides agree)
            mine_dialled = outbound
            keep_new = (self.node_id < node_id) == mine_dialled
            if not keep_new:
                return None
            existing.writer.close()
        custody = as_int(fields[7], "custody group count") if len(fields) > 7 else CUSTODY_REQUIREMENT
        peer = Peer(node_id, host, port, outbound, writer, head_number, custody)
        self.peers[node_id] = peer
        log.info("peer %s connected (%s, head #%d)", peer.address,
                 "out" if outbound else "in", head_number)
        return peer

    def penalize(self, peer: Peer, amount: int, reason: str) -> None:
        peer.score -= amount
        if peer.score <= -100:
            self.banned[peer.address] = time.time() + BAN_SECONDS
            self._drop(peer, f"penalized: {reason}")

    def _drop(self, peer: Peer, reason: str) -> None:
        log.warning("disconnecting %s: %s", peer.address, reason)
        self.stats["peers_dropped"] += 1
        peer.writer.close()
        self.peers.pop(peer.node_id, None)

    # -- incoming ------------------------------------------------------------------------
    def _on_frame(self, peer: Peer, msg_id: int, payload: Any) -> None:
        if msg_id == wire.TXS:
            self._on_txs(peer, as_list(payload, "txs", 10_000))
        elif msg_id == wire.BLOCK:
            fields = as_fields(payload, "block", 2)
            self._on_block(peer, as_bytes(fields[0], "block"), as_bytes(fields[1], "body"))
        elif msg_id == wire.GET_BLOCKS:
            fields = as_fields(payload, "get-blocks", 2)
            self._serve_blocks(peer, as_list(fields[0], "locator", 64),
                               min(as_int(fields[1], "limit"), wire.MAX_BLOCKS_PER_REQUEST))
        elif msg_id == wire.BLOCKS:
            self._on_blocks(peer, as_list(payload, "blocks", wire.MAX_BLOCKS_PER_REQUEST))
        elif msg_id == wire.GET_COLUMNS:
            fields = as_fields(payload, "get-columns", 3)
            self._spawn(self.sampler.serve(peer, as_int(fields[0], "request id"),
                                           as_bytes(fields[1], "block hash", 32),
                                           as_column_indices(fields[2], "column indices")))
        elif msg_id == wire.COLUMNS:
            self.sampler.on_columns(peer, payload)
        elif msg_id in (wire.ATTESTATION, wire.SLASHING):
            data = as_bytes(payload, "vote")
            if self.on_consensus is None:
                raise PeerError("this node runs no proof of stake")
            if not self.seen_votes.add(msg_id.to_bytes(1, "big") + data):
                return
            try:
                self.on_consensus(msg_id, data, peer)
            except LayerlabError as exc:
                self.penalize(peer, 20, f"invalid {wire.NAMES[msg_id]}: {exc}")
                return
            self.broadcast(msg_id, data, exclude=peer)
        else:
            raise PeerError(f"unexpected {wire.NAMES[msg_id]} after hello")

    def _on_txs(self, peer: Peer, raws: list[Any]) -> None:
        for raw in raws:
            raw = as_bytes(raw, "tx")
            self.stats["txs_in"] += 1
            # relays deliver each transaction several times: a hash is cheaper than decoding
            # it and recovering its sender again (keccak ~1 us vs ~60 us)
            tx_hash = keccak(raw)
            if not self.received_txs.add(tx_hash) or tx_hash in self.node.pool:
                continue
            try:
                self.node.submit_raw(raw)
            except LayerlabError as exc:
                reason = getattr(exc, "reason", "")
                if reason in ("malformed", "bad-signature", "wrong-chain", "oversized"):
                    self.penalize(peer, PENALTY_BAD_TX, str(exc))

    def _import(self, peer: Peer, encoded: bytes | BlockAPI, body: bytes) -> bool | None:
        """Import one block; True if new, False if known, None if its parent is missing."""
        block = self.chain.decode_block(encoded) if isinstance(encoded, bytes) else encoded
        self._arrived(bytes(block.hash))
        try:
            return self.node.import_block(block, body)
        except UnknownParent:
            return None

    def _on_block(self, peer: Peer, encoded: bytes, body: bytes) -> None:
        # the same bytes come from the producer and from every relay: skip them unread. (Keyed
        # by content, not block hash, so a copy with a forged body cannot shadow the real one.)
        if not self.received_blocks.add(keccak(keccak(encoded) + body)):
            return
        try:
            block = self.chain.decode_block(encoded)
            self.seen_blocks.add(bytes(block.hash))
            peer.head_number = max(peer.head_number, block.number)
            if self._needs_sampling(block):
                if self.chain.get_header_by_hash(block.header.parent_hash) is None:
                    self._maybe_sync(peer, bytes(block.hash), force=True)
                else:
                    self._spawn(self._import_sampled(peer, [(block, body)]))
                return
            result = self._import(peer, block, body)
        except InvalidBlock as exc:
            self.stats["blocks_invalid"] += 1
            log.warning("invalid block from %s: %s", peer.address, exc)
            self.penalize(peer, PENALTY_INVALID_BLOCK, str(exc))
            return
        self.stats["blocks_in"] += 1
        if result is None:
            self._maybe_sync(peer, bytes(block.hash), force=True)
        elif result:
            self.broadcast_block(block, body, exclude=peer)

    def _needs_sampling(self, block: BlockAPI) -> bool:
        return bool(get_blob_versioned_hashes(block)) and not self.node.has_block(block.hash)

    async def _import_sampled(self, peer: Peer, items: list[tuple[BlockAPI, bytes]],
                              synced: bool = False) -> None:
        """Import gossiped or synced blocks in order, each with blobs only once its data
        was sampled (the rest of a synced batch waits behind it: its children need it)."""
        imported, result = 0, None
        try:
            for block, body in items:
                if self._needs_sampling(block):
                    await self.sampler.ensure_available(block, peer)
                result = self._import(peer, block, body)
                if result is None:
                    break
                imported += result
                if result and not synced:
                    self.broadcast_block(block, body, exclude=peer)
        except DataUnavailable:
            pass  # logged and counted by the sampler; a bad cell already cost its sender
        except InvalidBlock as exc:
            self.stats["blocks_invalid"] += 1
            log.warning("invalid block from %s: %s", peer.address, exc)
            self.penalize(peer, PENALTY_INVALID_BLOCK, str(exc))
        finally:
            if synced:
                peer.syncing = False
        if not synced:
            self.stats["blocks_in"] += 1
            if result is None:
                self._maybe_sync(peer, bytes(items[-1][0].hash), force=True)
        elif imported:
            log.info("synced %d block(s) from %s; head #%d", imported, peer.address,
                     self.node.head.block_number)
            if len(items) >= wire.MAX_BLOCKS_PER_REQUEST:
                self._maybe_sync(peer, b"", force=True)

    def _maybe_sync(self, peer: Peer, head: bytes, force: bool = False) -> None:
        if peer.syncing or (not force and self.node.has_block(head)):
            return
        peer.syncing = True
        peer.send(wire.GET_BLOCKS, [self._locator(), wire.MAX_BLOCKS_PER_REQUEST])

    def _locator(self) -> list[bytes]:
        """Hashes of the canonical chain at heights head, head-1, head-2, head-4, ..., 0."""
        head = self.node.head.block_number
        heights: list[int] = []
        step, n = 1, head
        while n > 0 and len(heights) < 62:
            heights.append(n)
            if len(heights) >= 2:
                step *= 2
            n -= step
        heights.append(0)
        out = []
        for h in heights:
            header = self.chain.get_header_by_number(h)
            if header is not None:
                out.append(bytes(header.hash))
        return out

    def _serve_blocks(self, peer: Peer, locator: list[Any], limit: int) -> None:
        start = 1
        for item in locator:
            header = self.chain.get_header_by_hash(as_bytes(item, "locator hash", 32))
            if header is None:
                continue
            canonical = self.chain.get_header_by_number(header.block_number)
            if canonical is not None and canonical.hash == header.hash:
                start = header.block_number + 1
                break
        head = self.node.head.block_number
        blocks = []
        for n in range(start, min(head, start + limit - 1) + 1):
            header = self.chain.get_header_by_number(n)
            if header is None:
                break
            block = self.chain.get_block(header)
            blocks.append([encode_block(block), self._body(block)])
        peer.send(wire.BLOCKS, blocks)

    def _body(self, block: BlockAPI) -> bytes:
        engine = self.node.engine
        return engine.body(bytes(block.hash)) if engine is not None else b""

    def _on_blocks(self, peer: Peer, items: list[Any]) -> None:
        peer.syncing = False
        imported = 0
        for k, item in enumerate(items):
            fields = as_fields(item, "blocks item", 2)
            try:
                block = self.chain.decode_block(as_bytes(fields[0], "block"))
                if self._needs_sampling(block):  # this one and the rest wait for its data
                    rest = [(block, as_bytes(fields[1], "body"))] + [
                        (self.chain.decode_block(as_bytes(f[0], "block")), as_bytes(f[1], "body"))
                        for f in (as_fields(i, "blocks item", 2) for i in items[k + 1:])]
                    peer.syncing = True
                    self._spawn(self._import_sampled(peer, rest, synced=True))
                    return
                result = self._import(peer, block, as_bytes(fields[1], "body"))
            except InvalidBlock as exc:
                self.stats["blocks_invalid"] += 1
                log.warning("invalid block in sync from %s: %s", peer.address, exc)
                self.penalize(peer, PENALTY_INVALID_BLOCK, str(exc))
                return
            if result is None:
                log.info("sync from %s: unlinked block; asking again", peer.address)
                break
            imported += result
        if len(items) >= wire.MAX_BLOCKS_PER_REQUEST or (items and imported == 0 and len(items) > 1):
            self._maybe_sync(peer, b"", force=True)
        elif imported:
            log.info("synced %d block(s) from %s; head #%d", imported, peer.address,
                     self.node.head.block_number)

    # -- outgoing ------------------------------------------------------------------------
    def broadcast(self, msg_id: int, payload: Any, exclude: Peer | None = None) -> None:
        frame = wire.encode_frame(msg_id, payload)
        for peer in list(self.peers.values()):
            if peer is not exclude and not peer.writer.is_closing():
                peer.writer.write(frame)

    def broadcast_block(self, block: BlockAPI, body: bytes, exclude: Peer | None = None) -> None:
        self.seen_blocks.add(bytes(block.hash))
        if exclude is None:  # a block of our own: get its columns ready to serve
            self.sampler.on_block_produced(block)
        self._arrived(bytes(block.hash))
        self.broadcast(wire.BLOCK, [encode_block(block), body], exclude)

    def _arrived(self, block_hash: bytes) -> None:
        if block_hash not in self.block_arrival:
            self.block_arrival[block_hash] = time.time()
            if len(self.block_arrival) > 10_000:
                self.block_arrival.popitem(last=False)

    def broadcast_vote(self, msg_id: int, data: bytes) -> None:
        self.seen_votes.add(msg_id.to_bytes(1, "big") + data)
        self.broadcast(msg_id, data)

    def _on_pending_tx(self, tx_hash: bytes) -> None:
        if not self.seen_txs.add(tx_hash):
            return
        ptx = self.node.pool.get(tx_hash)
        if ptx is not None:
            self._tx_buffer.append(ptx.raw)

    async def _tx_flusher(self) -> None:
        while not self._stopped:
            await asyncio.sleep(TX_FLUSH_SECONDS)
            while self._tx_buffer:
                batch, self._tx_buffer = self._tx_buffer[:TX_BATCH], self._tx_buffer[TX_BATCH:]
                self.broadcast(wire.TXS, batch)

    def status(self) -> list[dict[str, Any]]:
        return [{"id": p.node_id.hex(), "address": p.address, "direction": "out" if p.outbound else "in",
                 "score": p.score, "headNumber": p.head_number} for p in self.peers.values()]
