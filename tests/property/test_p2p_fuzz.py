"""Whatever a peer sends, the p2p layer answers with a typed error or nothing: never a crash.

Frames are fuzzed at two levels: raw bytes into the frame reader, and well-framed RLP of
every message id (with random payload shapes) into the service's dispatcher on an
in-process PoW node.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import rlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerlab.errors import LayerlabError
from layerlab.l1.p2p import wire
from layerlab.l1.p2p.service import NetworkService, Peer
from tests.powutil import pow_node

rlp_item = st.recursive(st.binary(max_size=40), lambda inner: st.lists(inner, max_size=5), max_leaves=20)


def _read(data: bytes) -> Any:
    async def go() -> Any:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await wire.read_frame(reader)

    return asyncio.run(go())


@given(st.binary(max_size=200))
def test_random_bytes_give_a_peer_error_or_eof(data: bytes) -> None:
    with contextlib.suppress(LayerlabError, asyncio.IncompleteReadError):
        _read(data)


@given(st.sampled_from(sorted(wire.NAMES)), rlp_item)
def test_every_wellformed_frame_round_trips(msg_id: int, payload: Any) -> None:
    got_id, got = _read(wire.encode_frame(msg_id, payload))
    assert got_id == msg_id and got == rlp.decode(rlp.encode(payload))


class _Writer:
    """Stands in for a peer's StreamWriter: records what the node sends back."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


NODE = pow_node()
SERVICE = NetworkService(NODE, "127.0.0.1", 0)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from([m for m in sorted(wire.NAMES) if m != wire.HELLO]), rlp_item)
def test_dispatcher_refuses_garbage_with_typed_errors(msg_id: int, payload: Any) -> None:
    peer = Peer(b"\x01" * 8, "127.0.0.1", 1, False, _Writer())  # type: ignore[arg-type]
    head = NODE.head.hash
    with contextlib.suppress(LayerlabError):
        SERVICE._on_frame(peer, msg_id, rlp.decode(rlp.encode(payload)))
    assert NODE.head.hash == head  # garbage never moves the chain


def test_a_forged_body_copy_does_not_shadow_the_real_block(monkeypatch: Any) -> None:
    """A rogue peer races the proposer with the same block and a forged signature: that
    copy is refused (and the rogue penalized), then the proposer's copy is imported."""
    import time as _time

    from layerlab.l1.consensus.beacon import decode_signed_body, encode_signed_body
    from tests.posutil import at, pos_node, propose

    proposer, receiver = pos_node(), pos_node()
    real = propose(proposer, 1)
    body, signature = decode_signed_body(real.body)
    forged = encode_signed_body(body, bytes(96))
    monkeypatch.setattr(_time, "time", lambda: at(receiver, 1))
    service = NetworkService(receiver, "127.0.0.1", 0)
    rogue = Peer(b"\x02" * 8, "127.0.0.1", 2, False, _Writer())  # type: ignore[arg-type]
    honest = Peer(b"\x03" * 8, "127.0.0.1", 3, False, _Writer())  # type: ignore[arg-type]
    encoded = rlp.encode(real.block)
    service._on_block(rogue, encoded, forged)
    assert not receiver.has_block(real.hash) and rogue.score < 0
    service._on_block(honest, encoded, real.body)
    assert receiver.head.hash == real.hash and honest.score == 0
    assert signature  # the real one was a genuine 96-byte BLS signature
