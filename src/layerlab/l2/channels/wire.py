"""Framing for channel-node messages over TCP: a 4-byte big-endian length, then UTF-8 JSON.

Lightning's transport (BOLT 8) encrypts and authenticates with Noise_XK; here peers run on
127.0.0.1 and every state-changing message already carries an ECDSA signature over the
EIP-712 digest, so the frame is plain. Frames above ``MAX_FRAME`` are refused (a peer
cannot make a node allocate without bound) and a malformed frame closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from layerlab.errors import ChannelError

MAX_FRAME = 1 << 20


class WireError(ChannelError):
    """A peer sent a frame that is too large or not a JSON object."""


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    """Read one message; raises ``asyncio.IncompleteReadError`` at EOF."""
    header = await reader.readexactly(4)
    (length,) = struct.unpack(">I", header)
    if length > MAX_FRAME:
        raise WireError(f"frame of {length} bytes exceeds the limit of {MAX_FRAME}")
    body = await reader.readexactly(length)
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"frame is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise WireError("frame is not a JSON object")
    return message


def encode_frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise WireError(f"message of {len(body)} bytes exceeds the limit of {MAX_FRAME}")
    return struct.pack(">I", len(body)) + body


async def write_frame(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(encode_frame(message))
    await writer.drain()
