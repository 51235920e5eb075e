"""The channel node's transport: TCP links to peers on 127.0.0.1, the authenticated
handshake, :mod:`.wire` framing, one read loop per link and one ordered sender per peer.

Peers prove their addresses by signing the other side's fresh nonce (the role of BOLT 8's
Noise_XK handshake; frames after it are not encrypted, as everything that moves value
inside them is signed anyway):

1. the listener sends ``challenge`` {its address, nonce_l};
2. the dialer checks the address is the peer it meant to reach and answers ``hello``
   {its address, nonce_d, sig(keccak("layerlab-channels:hello" | listener | nonce_l))};
3. the listener recovers the hello's signer, refuses it unless it is the claimed address,
   and answers ``welcome`` {sig(keccak("layerlab-channels:welcome" | dialer | nonce_d))},
   which the dialer checks against the peer's address.

A failed handshake raises :class:`HandshakeError`. The transport knows nothing of
channels: frames that pass the handshake go to ``on_frame``; ``on_connected`` runs after
each (re)connection (the node re-sends its unanswered proposals there).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak

from layerlab.errors import ChannelError
from layerlab.l2.channels.signing import recover_digest_signer, sign_digest
from layerlab.l2.channels.wire import read_frame, write_frame
from layerlab.l2.service import cancel_tasks

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
"""Seconds for a connection plus its handshake."""


class HandshakeError(ChannelError):
    """A peer did not prove the address it claims (or is not the peer we dialled)."""


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


@dataclass
class PeerLink:
    address: bytes
    writer: asyncio.StreamWriter


def compute_hello_digest(kind: bytes, listener: bytes, nonce: bytes) -> bytes:
    """What a side signs to prove its address: ``kind`` is ``hello`` or ``welcome``."""
    return bytes(keccak(b"layerlab-channels:" + kind + listener + nonce))


async def handshake_as_dialer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                              key: bytes, address: bytes, peer: bytes) -> None:
    """Prove ``address`` (our ``key``) to the listener and check that it is ``peer``."""
    challenge = await read_frame(reader)
    if challenge.get("type") != "challenge" or _unhex(challenge["address"]) != peer:
        raise HandshakeError("the listener is not the expected peer")
    my_nonce = os.urandom(32)
    digest = compute_hello_digest(b"hello", peer, _unhex(challenge["nonce"]))
    await write_frame(writer, {"type": "hello", "address": _hex(address),
                               "nonce": _hex(my_nonce),
                               "signature": _hex(sign_digest(digest, key))})
    welcome = await read_frame(reader)
    signer = recover_digest_signer(compute_hello_digest(b"welcome", address, my_nonce),
                                   _unhex(welcome["signature"]))
    if welcome.get("type") != "welcome" or signer != peer:
        raise HandshakeError("the listener did not prove its address")


async def handshake_as_listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                key: bytes, address: bytes) -> bytes:
    """Challenge the dialer; return the address it proved."""
    nonce = os.urandom(32)
    await write_frame(writer, {"type": "challenge", "address": _hex(address),
                               "nonce": _hex(nonce)})
    hello = await read_frame(reader)
    if hello.get("type") != "hello":
        raise HandshakeError("peer did not introduce itself")
    claimed = _unhex(hello["address"])
    signer = recover_digest_signer(compute_hello_digest(b"hello", address, nonce),
                                   _unhex(hello["signature"]))
    if signer != claimed:
        raise HandshakeError(f"hello claims 0x{claimed.hex()} but is signed by 0x{signer.hex()}")
    digest = compute_hello_digest(b"welcome", claimed, _unhex(hello["nonce"]))
    await write_frame(writer, {"type": "welcome",
                               "signature": _hex(sign_digest(digest, key))})
    return claimed


class PeerTransport:
    """Authenticated links to peers; ``find_peer`` gives a peer's ``(host, port)`` or
    ``None`` when it is not in the network directory."""

    def __init__(self, key: bytes, address: bytes, *,
                 find_peer: Callable[[bytes], tuple[str, int] | None],
                 on_frame: Callable[[PeerLink, dict[str, Any]], Awaitable[None]],
                 on_connected: Callable[[bytes], None],
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.key = key
        self.address = address
        self.host = host
        self.port = port
        self.links: dict[bytes, PeerLink] = {}
        self._find_peer = find_peer
        self._on_frame = on_frame
        self._on_connected = on_connected
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outboxes: dict[bytes, asyncio.Queue[dict[str, Any]]] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        for link in self.links.values():
            link.writer.close()
        if self._server:
            self._server.close()

    async def link(self, peer: bytes) -> PeerLink:
        """The open link to ``peer``, dialling and authenticating it if needed."""
        link = self.links.get(peer)
        if link is not None and not link.writer.is_closing():
            return link
        entry = self._find_peer(peer)
        if entry is None:
            raise ChannelError(f"peer 0x{peer.hex()} is not in the network directory")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*entry),
                                                HANDSHAKE_TIMEOUT)
        try:
            await asyncio.wait_for(handshake_as_dialer(reader, writer, self.key, self.address,
                                                       peer), HANDSHAKE_TIMEOUT)
        except (ChannelError, TimeoutError, asyncio.IncompleteReadError, KeyError,
                ValueError) as exc:
            writer.close()
            raise HandshakeError(f"handshake with 0x{peer.hex()} failed: {exc}") from exc
        link = PeerLink(peer, writer)
        self.links[peer] = link
        self._tasks.append(asyncio.create_task(self._read_loop(reader, link)))
        self._on_connected(peer)
        return link

    async def send(self, peer: bytes, frame: dict[str, Any]) -> None:
        """Send one frame now (dialling if needed); raises if the peer cannot be reached."""
        link = await self.link(peer)
        await write_frame(link.writer, frame)

    async def send_quietly(self, peer: bytes, frame: dict[str, Any]) -> None:
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
                await self.send(peer, frame)
            except (ChannelError, OSError, TimeoutError) as exc:
                log.warning("cannot reach 0x%s: %s", peer.hex(), exc)

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        try:
            peer = await asyncio.wait_for(
                handshake_as_listener(reader, writer, self.key, self.address),
                HANDSHAKE_TIMEOUT)
            link = PeerLink(peer, writer)
            self.links[link.address] = link
            self._on_connected(peer)
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
