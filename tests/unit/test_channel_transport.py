"""The channel node's transport over real sockets on 127.0.0.1: the authenticated handshake
(each side proves its address by signing the other's fresh nonce) and what it refuses.

The expectations come from the keys themselves: an address is ``compute_address(key)``
(eth-keys), and a frame reaches ``on_frame`` only from the address that signed the hello.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from layerlab.l2.channels.machine import compute_address
from layerlab.l2.channels.signing import sign_digest
from layerlab.l2.channels.transport import (
    HandshakeError,
    PeerLink,
    PeerTransport,
    compute_hello_digest,
    handshake_as_listener,
)
from layerlab.l2.channels.wire import read_frame, write_frame

KEY_A, KEY_B, KEY_MALLORY = b"\x11" * 32, b"\x22" * 32, b"\x33" * 32
A, B, MALLORY = compute_address(KEY_A), compute_address(KEY_B), compute_address(KEY_MALLORY)


class Endpoint:
    """A transport and what it received."""

    def __init__(self, key: bytes, directory: dict[bytes, tuple[str, int]]) -> None:
        self.frames: list[tuple[bytes, dict[str, Any]]] = []
        self.connected: list[bytes] = []
        self.transport = PeerTransport(key, compute_address(key), find_peer=directory.get,
                                       on_frame=self._on_frame, on_connected=self.connected.append)

    async def _on_frame(self, link: PeerLink, frame: dict[str, Any]) -> None:
        self.frames.append((link.address, frame))


async def until(predicate: Any, what: str, seconds: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_two_endpoints_complete_the_handshake_and_exchange_frames() -> None:
    async def scenario() -> None:
        directory: dict[bytes, tuple[str, int]] = {}
        a, b = Endpoint(KEY_A, directory), Endpoint(KEY_B, directory)
        await a.transport.start()
        await b.transport.start()
        directory[A] = ("127.0.0.1", a.transport.port)
        directory[B] = ("127.0.0.1", b.transport.port)
        try:
            await a.transport.send(B, {"type": "ping", "n": 1})
            await until(lambda: b.frames, "b to receive the frame")
            assert b.frames == [(A, {"type": "ping", "n": 1})]
            assert a.connected == [B] and b.connected == [A]
            # the answer travels back on the link a dialled: no second connection
            await b.transport.send(A, {"type": "pong"})
            await until(lambda: a.frames, "a to receive the answer")
            assert a.frames == [(B, {"type": "pong"})]
            assert a.connected == [B] and b.connected == [A]
            # frames queued with send_quietly arrive in order
            for n in range(20):
                await a.transport.send_quietly(B, {"type": "seq", "n": n})
            await until(lambda: len(b.frames) == 21, "the queued frames")
            assert [f["n"] for _, f in b.frames[1:]] == list(range(20))
        finally:
            await a.transport.stop()
            await b.transport.stop()

    asyncio.run(scenario())


def test_a_listener_with_another_key_than_the_peers_is_refused() -> None:
    """Dialling "B" at an address where Mallory listens: her challenge names her own
    address, not B's; the dialler refuses before sending anything."""
    async def scenario() -> None:
        directory: dict[bytes, tuple[str, int]] = {}
        a, mallory = Endpoint(KEY_A, directory), Endpoint(KEY_MALLORY, directory)
        await a.transport.start()
        await mallory.transport.start()
        directory[B] = ("127.0.0.1", mallory.transport.port)
        try:
            with pytest.raises(HandshakeError, match="not the expected peer"):
                await a.transport.send(B, {"type": "ping"})
            assert mallory.frames == [] and a.transport.links == {}
        finally:
            await a.transport.stop()
            await mallory.transport.stop()

    asyncio.run(scenario())


def test_an_impostor_claiming_the_peers_address_cannot_sign_the_welcome() -> None:
    """Mallory's listener claims B's address; the welcome she signs recovers to her key."""
    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await write_frame(writer, {"type": "challenge", "address": "0x" + B.hex(),
                                   "nonce": "0x" + os.urandom(32).hex()})
        hello = await read_frame(reader)
        digest = compute_hello_digest(b"welcome", A, bytes.fromhex(hello["nonce"][2:]))
        await write_frame(writer, {"type": "welcome",
                                   "signature": "0x" + sign_digest(digest, KEY_MALLORY).hex()})
        await reader.read()  # until the dialler hangs up
        writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(impostor, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        a = Endpoint(KEY_A, {B: ("127.0.0.1", port)})
        try:
            with pytest.raises(HandshakeError, match="did not prove its address"):
                await a.transport.send(B, {"type": "ping"})
            assert a.transport.links == {}
        finally:
            server.close()
            await a.transport.stop()

    asyncio.run(scenario())


def test_a_hello_with_a_bad_signature_is_refused_and_its_frames_never_delivered() -> None:
    """A dialler claims A's address but signs the hello with Mallory's key."""
    async def forged_hello(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        challenge = await read_frame(reader)
        digest = compute_hello_digest(b"hello", bytes.fromhex(challenge["address"][2:]),
                                      bytes.fromhex(challenge["nonce"][2:]))
        await write_frame(writer, {"type": "hello", "address": "0x" + A.hex(),
                                   "nonce": "0x" + os.urandom(32).hex(),
                                   "signature": "0x" + sign_digest(digest, KEY_MALLORY).hex()})
        await write_frame(writer, {"type": "ping"})
        rest = await asyncio.wait_for(reader.read(), 5)  # the listener hangs up
        writer.close()
        return rest

    async def scenario() -> None:
        # the listener's handshake itself raises the typed error...
        refused: list[BaseException] = []

        async def listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handshake_as_listener(reader, writer, KEY_B, B)
            except HandshakeError as exc:
                refused.append(exc)
            writer.close()

        server = await asyncio.start_server(listener, "127.0.0.1", 0)
        await forged_hello(int(server.sockets[0].getsockname()[1]))
        server.close()
        assert len(refused) == 1
        assert f"claims 0x{A.hex()} but is signed by 0x{MALLORY.hex()}" in str(refused[0])

        # ...and a transport drops the connection without a welcome or a delivered frame
        b = Endpoint(KEY_B, {})
        await b.transport.start()
        try:
            assert await forged_hello(b.transport.port) == b""
            assert b.frames == [] and b.connected == [] and b.transport.links == {}
        finally:
            await b.transport.stop()

    asyncio.run(scenario())
