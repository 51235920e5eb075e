"""Batch encodings of the rollups: the L1 inbox form, a compact form, and compression.

Three layers, each a byte-exact inverse pair, each refusing malformed input with
:class:`~layerlab.errors.MalformedEncoding`:

1. **Inbox form** (:func:`encode_inbox` / :func:`decode_inbox`): what
   ``OptimisticRollup.sol`` takes as calldata and splits in ``_leaves``: the steps of a
   batch concatenated, each as ``uint16 length (big endian) || step``, with
   ``1 <= length <= 4096`` (``MAX_STEP_BYTES``), at least one and at most 4096 steps
   (``MAX_STEPS``). A transfer step is 130 bytes, so 132 bytes a transfer here.

2. **Compact form** (:func:`encode_compact` / :func:`decode_compact`): the same steps with
   addresses replaced by account indices and integers written without their leading
   zeros, in the spirit of zkSync / Loopring "account index" encodings. Byte by byte::

       compact  := 0x01 (version) || varint base || varint count || entry * count
       entry    := 0x00 || varint len || step            -- verbatim escape, any bytes
                 | 0x01 || step[1:105]                    -- a deposit (0xD0, 105 bytes)
                 | tag || field * n || r (32) || s (32)   -- a signed transaction
       tag      := 0x80 | forced << 4 | (v - 27) << 3 | kind      (kind 1..7, v 27 or 28)
       field    := varint value                           -- uint32 / uint64
                 | varint (mantissa << 5 | exponent)      -- uint256 = mantissa * 10**exponent
                 | varint (position + 1)                  -- an address in the dictionary
                 | 0x00 || address (20)                   -- an address not in it

   ``varint`` is unsigned LEB128 (7 bits a byte, least significant group first, high bit
   = more follows), minimal: no trailing ``0x00`` group except the single byte ``0x00``
   for zero; a value must fit the field's width (``uint32``, ``uint64``, ``uint256``).
   A ``uint256`` (an amount, a minimum, shares) is packed in decimal floating point, as
   zkSync packs amounts, but losslessly: ``exponent`` (0..31) is the number of trailing
   decimal zeros, as many as fit, so ``10**18`` (one ether) is the single byte ``0x32``
   instead of 8; canonical: ``mantissa`` is not a multiple of 10 unless ``exponent`` is
   31, and zero is ``0x00``. It costs 5 bits on an amount with no trailing zero.
   ``forced`` says the original step was ``0xF0 || <transaction step>``. A transaction
   is carried in its fields and ``kind``; the decoder rebuilds its fixed-width step
   (``txs.py``), so the bytes come back exactly. Anything that is not a well-formed
   deposit or transaction step (garbage from the forced queue, a signature whose ``v``
   is neither 27 nor 28) goes through the verbatim escape, so every step round-trips.

   **The address dictionary.** ``base`` is the number of L2 accounts when the batch was
   encoded; positions ``0..base-1`` are ``state.owners[0..base-1]`` (accounts are never
   removed nor renumbered, so a later state decodes the batch the same way, and an
   earlier one, with fewer accounts, is refused). While encoding and decoding, each
   address the batch credits that is not yet in the dictionary is appended to it, in
   order: a deposit's ``to`` and the literal ``to`` of a Transfer, MintNFT or
   TransferNFT. That mirrors the state machine's rule (accounts are numbered in order of
   first credit), so an account created earlier in the batch is named by what will be its
   L2 index, without the decoder having to execute anything: when a step that first
   names a new address is refused by the machine, the dictionary and the L2 indices part
   ways for the rest of the batch, which costs nothing but compactness, since both sides
   apply the same rule. A Withdraw's L1 recipient is looked up but never appended. A
   literal address already in the dictionary is refused (one encoding per batch).

   **The floor.** The sender is not written at all (it is recovered from the signature),
   but the signature is: 64 random-looking bytes a transaction, which no compressor
   shrinks. Measured (``layerlab.bench.rollup_codec``, 1024 transfers among 50 accounts):
   132 bytes a transfer in the inbox form, 77.7 compact with random wei amounts and 70.4
   with round ones (three significant digits), of which 65 are the tag and ``r || s``;
   zlib or brotli over the inbox form gets 79.3 / 76.5, and over the compact form at
   most 1.3 bytes more (76.4). With 80% of payments to new addresses (20 literal bytes each): 90.8 / 83.2.
   Rollups that go below this aggregate signatures (BLS, as in Hubble / the "BLS wallet"
   designs) or post none at all and prove validity instead (zkSync, StarkNet).

3. **Compression** (:func:`compress` / :func:`decompress`): one algorithm byte, then the
   compressed stream: ``0x00`` stored (no compression), ``0x01`` zlib (RFC 1950, level
   9, stdlib), ``0x02`` brotli (RFC 7932, quality 11; only when the ``brotli`` package is
   importable). This is what the OP Stack does with its channels: the batches of a
   channel are RLP-encoded and the whole channel is compressed with zlib, or since Fjord
   with brotli behind a version byte ``0x01`` (OP Stack specification, "Derivation",
   section "Channel Format", https://specs.optimism.io/protocol/derivation.html), and
   what Arbitrum does with its sequencer batches: a batch whose header byte is
   ``BrotliMessageHeaderByte`` (0x00) is brotli-compressed RLP segments (Arbitrum Nitro,
   ``daprovider``; earlier ``arbstate``). ``compress(data, "smallest")`` tries every
   available algorithm and keeps the shortest output, ``stored`` included: a batch of
   compact transfers is mostly signatures and a compressor can make it longer.

   Decompression is bounded, as both of those readers bound theirs (the OP Stack reads
   at most ``MAX_RLP_BYTES_PER_CHANNEL``, 10,000,000 bytes, 100,000,000 since Fjord;
   Nitro's ``MaxDecompressedLen``): output past :data:`MAX_DECOMPRESSED` is refused, so a
   small input that inflates without end (a "zip bomb") costs a bounded amount of memory
   and time. The default bound is the largest batch either form can hold (4096 verbatim
   steps of 4096 bytes, 16,789,520 bytes), so no valid batch is refused; a reader that
   knows its batches are smaller passes a smaller ``limit``.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Sequence
from typing import Any, Final

from layerlab.errors import MalformedEncoding
from layerlab.l2.rollup.machine import RollupState
from layerlab.l2.rollup.txs import (
    DEPOSIT_KIND,
    DEPOSIT_STEP_BYTES,
    FORCED_KIND,
    TX_TYPES,
    L2Tx,
    MintNFT,
    SignedTx,
    Transfer,
    TransferNFT,
    decode_tx_step,
)

__all__ = [
    "ALGORITHMS",
    "BROTLI",
    "MAX_DECOMPRESSED",
    "MAX_STEPS",
    "MAX_STEP_BYTES",
    "STORED",
    "ZLIB",
    "brotli_available",
    "compress",
    "decode_compact",
    "decode_inbox",
    "decode_varint",
    "decompress",
    "encode_compact",
    "encode_inbox",
    "encode_varint",
]

MAX_STEPS: Final = 4096
MAX_STEP_BYTES: Final = 4096
MAX_DECOMPRESSED: Final = MAX_STEPS * (3 + MAX_STEP_BYTES) + 16
"""The largest compact batch (a verbatim entry is 3 + 4096 bytes) and so inbox batch."""
COMPACT_VERSION: Final = 0x01
TAG_VERBATIM: Final = 0x00
TAG_DEPOSIT: Final = 0x01
TAG_TX: Final = 0x80
_FORCED_BIT: Final = 0x10
_V_BIT: Final = 0x08
_WIDTH_BITS: Final = {"uint32": 32, "uint64": 64, "uint256": 256}
_CREDITED: Final = {Transfer: "to", MintNFT: "to", TransferNFT: "to"}
"""The address field through which each kind may create an account (first credit)."""

STORED: Final = 0x00
ZLIB: Final = 0x01
BROTLI: Final = 0x02
ALGORITHMS: Final = {"stored": STORED, "zlib": ZLIB, "brotli": BROTLI}

try:
    _brotli: Any = importlib.import_module("brotli")
except ImportError:  # optional: the PyPI ``brotli`` package
    _brotli = None


def brotli_available() -> bool:
    return _brotli is not None


# -- inbox form -------------------------------------------------------------------------
def _check_steps(steps: Sequence[bytes]) -> None:
    if not steps:
        raise MalformedEncoding("batch: empty (the contract refuses an empty batch)")
    if len(steps) > MAX_STEPS:
        raise MalformedEncoding(f"batch: {len(steps)} steps, at most {MAX_STEPS}")
    for i, step in enumerate(steps):
        if not 1 <= len(step) <= MAX_STEP_BYTES:
            raise MalformedEncoding(f"batch step {i}: {len(step)} bytes, must be 1.."
                                    f"{MAX_STEP_BYTES}")


def encode_inbox(steps: Sequence[bytes]) -> bytes:
    """``uint16 length || step`` for each step: the calldata ``OptimisticRollup`` splits."""
    _check_steps(steps)
    return b"".join(len(step).to_bytes(2, "big") + bytes(step) for step in steps)


def decode_inbox(data: bytes) -> list[bytes]:
    """The steps of an inbox batch; refuses what ``OptimisticRollup._leaves`` refuses."""
    steps: list[bytes] = []
    at = 0
    while at < len(data):
        if at + 3 > len(data):
            raise MalformedEncoding(f"inbox batch at {at}: truncated length prefix")
        length = int.from_bytes(data[at:at + 2], "big")
        if not 1 <= length <= MAX_STEP_BYTES:
            raise MalformedEncoding(f"inbox batch at {at}: bad step length {length}")
        if at + 2 + length > len(data):
            raise MalformedEncoding(f"inbox batch at {at}: a {length}-byte step runs past "
                                    f"the end ({len(data)} bytes)")
        steps.append(bytes(data[at + 2:at + 2 + length]))
        at += 2 + length
        if len(steps) > MAX_STEPS:
            raise MalformedEncoding(f"inbox batch: more than {MAX_STEPS} steps")
    if not steps:
        raise MalformedEncoding("inbox batch: empty")
    return steps


# -- varints ----------------------------------------------------------------------------
def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, minimal."""
    if value < 0:
        raise MalformedEncoding(f"varint: {value} is negative")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def decode_varint(data: bytes, at: int, bits: int = 64) -> tuple[int, int]:
    """``(value, next offset)`` of the minimal LEB128 varint at ``at`` that fits ``bits``."""
    value = shift = 0
    start = at
    while True:
        if at >= len(data):
            raise MalformedEncoding(f"varint at {start}: truncated")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
        if shift >= bits + 7:
            raise MalformedEncoding(f"varint at {start}: longer than a uint{bits}")
    if byte == 0 and at - start > 1:
        raise MalformedEncoding(f"varint at {start}: not minimal (trailing zero group)")
    if value >> bits:
        raise MalformedEncoding(f"varint at {start}: {value} does not fit in uint{bits}")
    return value, at


# -- compact form -----------------------------------------------------------------------
_EXPONENT_BITS: Final = 5
_MAX_EXPONENT: Final = (1 << _EXPONENT_BITS) - 1


def _pack_amount(value: int) -> int:
    """``mantissa << 5 | exponent`` with ``value = mantissa * 10**exponent``, exponent max."""
    exponent = 0
    while value and exponent < _MAX_EXPONENT and value % 10 == 0:
        value //= 10
        exponent += 1
    return value << _EXPONENT_BITS | exponent


def _unpack_amount(packed: int, at: int) -> int:
    mantissa, exponent = packed >> _EXPONENT_BITS, packed & _MAX_EXPONENT
    if (exponent != 0) if mantissa == 0 else (mantissa % 10 == 0 and exponent < _MAX_EXPONENT):
        raise MalformedEncoding(f"compact batch before {at}: amount {mantissa}e{exponent} "
                                "is not in canonical form")
    value: int = mantissa * 10**exponent
    if value >> 256:
        raise MalformedEncoding(f"compact batch before {at}: amount {mantissa}e{exponent} "
                                "does not fit in uint256")
    return value


class _Dictionary:
    """Address <-> position: the accounts at batch start, then first credits in order."""

    def __init__(self, owners: Sequence[bytes]) -> None:
        self.addresses = list(owners)
        self.position = {address: i for i, address in enumerate(self.addresses)}

    def credit(self, address: bytes) -> None:
        if address not in self.position:
            self.position[address] = len(self.addresses)
            self.addresses.append(address)


def _compact_tx(signed: SignedTx, forced: bool, book: _Dictionary) -> bytes | None:
    v = signed.signature[64]
    if v not in (27, 28):
        return None
    tx = signed.tx
    out = [bytes([TAG_TX | (_FORCED_BIT if forced else 0) | (v - 27) << 3 | tx.KIND])]
    for kind, name in tx.STRUCT.members:
        value = getattr(tx, name)
        if kind != "address":
            out.append(encode_varint(_pack_amount(value) if kind == "uint256" else value))
            continue
        position = book.position.get(value)
        out.append(b"\0" + value if position is None else encode_varint(position + 1))
    credited = _CREDITED.get(type(tx))
    if credited is not None:
        book.credit(getattr(tx, credited))
    out.append(signed.signature[:64])
    return b"".join(out)


def encode_compact(steps: Sequence[bytes], state: RollupState) -> bytes:
    """The compact form of a batch, against ``state`` as of the batch's start."""
    _check_steps(steps)
    book = _Dictionary(state.owners)
    out = [bytes([COMPACT_VERSION]), encode_varint(len(state.owners)), encode_varint(len(steps))]
    for step in steps:
        entry: bytes | None = None
        if step[0] == DEPOSIT_KIND and len(step) == DEPOSIT_STEP_BYTES:
            entry = bytes([TAG_DEPOSIT]) + step[1:]
            book.credit(bytes(step[29:49]))
        else:
            forced = step[0] == FORCED_KIND
            try:
                signed = decode_tx_step(step[1:] if forced else step)
            except MalformedEncoding:
                signed = None
            if signed is not None:
                entry = _compact_tx(signed, forced, book)
        if entry is None:
            entry = bytes([TAG_VERBATIM]) + encode_varint(len(step)) + bytes(step)
        out.append(entry)
    return b"".join(out)


def _take(data: bytes, at: int, n: int, what: str) -> tuple[bytes, int]:
    if at + n > len(data):
        raise MalformedEncoding(f"compact batch at {at}: truncated {what} ({n} bytes, "
                                f"{len(data) - at} left)")
    return bytes(data[at:at + n]), at + n


def _decode_tx(data: bytes, at: int, tag: int, book: _Dictionary) -> tuple[bytes, int]:
    kind = tag & 0x07
    if tag & 0x60 or kind not in TX_TYPES:
        raise MalformedEncoding(f"compact batch at {at - 1}: bad tag {tag:#04x}")
    cls: type[L2Tx] = TX_TYPES[kind]
    values: dict[str, Any] = {}
    for field_kind, name in cls.STRUCT.members:
        if field_kind == "uint256":
            packed, at = decode_varint(data, at, 256 + _EXPONENT_BITS)
            values[name] = _unpack_amount(packed, at)
            continue
        if field_kind != "address":
            values[name], at = decode_varint(data, at, _WIDTH_BITS[field_kind])
            continue
        ref, at = decode_varint(data, at, 64)
        if ref == 0:
            address, at = _take(data, at, 20, "address")
            if address in book.position:
                raise MalformedEncoding(f"compact batch at {at - 20}: literal address "
                                        f"{address.hex()} is in the dictionary")
        elif ref > len(book.addresses):
            raise MalformedEncoding(f"compact batch at {at}: address position {ref - 1}, the "
                                    f"dictionary has {len(book.addresses)}")
        else:
            address = book.addresses[ref - 1]
        values[name] = address
    rs, at = _take(data, at, 64, "signature")
    tx = cls(**values)
    credited = _CREDITED.get(cls)
    if credited is not None:
        book.credit(values[credited])
    step = tx.encode() + rs + bytes([27 + bool(tag & _V_BIT)])
    return (bytes([FORCED_KIND]) + step if tag & _FORCED_BIT else step), at


def decode_compact(data: bytes, state: RollupState) -> list[bytes]:
    """The exact step bytes of a compact batch; ``state`` has at least its base accounts."""
    if not data or data[0] != COMPACT_VERSION:
        raise MalformedEncoding(f"compact batch: version {data[:1].hex() or '(empty)'}, "
                                f"expected {COMPACT_VERSION:02x}")
    base, at = decode_varint(data, 1, 64)
    if base > len(state.owners):
        raise MalformedEncoding(f"compact batch: encoded against {base} accounts, the state "
                                f"has {len(state.owners)}")
    count, at = decode_varint(data, at, 16)
    if not 1 <= count <= MAX_STEPS:
        raise MalformedEncoding(f"compact batch: {count} steps, must be 1..{MAX_STEPS}")
    book = _Dictionary(state.owners[:base])
    steps: list[bytes] = []
    for _ in range(count):
        tag, at = _take(data, at, 1, "tag")
        if tag[0] == TAG_VERBATIM:
            length, at = decode_varint(data, at, 16)
            if not 1 <= length <= MAX_STEP_BYTES:
                raise MalformedEncoding(f"compact batch at {at}: verbatim step of {length} "
                                        f"bytes, must be 1..{MAX_STEP_BYTES}")
            step, at = _take(data, at, length, "verbatim step")
        elif tag[0] == TAG_DEPOSIT:
            body, at = _take(data, at, DEPOSIT_STEP_BYTES - 1, "deposit")
            step = bytes([DEPOSIT_KIND]) + body
            book.credit(step[29:49])
        elif tag[0] & TAG_TX:
            step, at = _decode_tx(data, at, tag[0], book)
        else:
            raise MalformedEncoding(f"compact batch at {at - 1}: bad tag {tag[0]:#04x}")
        steps.append(step)
    if at != len(data):
        raise MalformedEncoding(f"compact batch: {len(data) - at} bytes after the last step")
    return steps


# -- compression ------------------------------------------------------------------------
def compress(data: bytes, algorithm: str = "zlib") -> bytes:
    """``algorithm byte || stream``: ``stored``, ``zlib`` (level 9), ``brotli`` (quality
    11) or ``smallest`` (the shortest of those available; ties go to the first tried)."""
    if algorithm == "smallest":
        names = ["stored", "zlib", *(["brotli"] if _brotli is not None else [])]
        return min((compress(data, name) for name in names), key=len)
    if algorithm == "stored":
        return bytes([STORED]) + data
    if algorithm == "zlib":
        return bytes([ZLIB]) + zlib.compress(data, 9)
    if algorithm == "brotli":
        if _brotli is None:
            raise MalformedEncoding("compress: brotli is not installed (pip install brotli)")
        return bytes([BROTLI]) + bytes(_brotli.compress(data, quality=11))
    raise MalformedEncoding(f"compress: unknown algorithm {algorithm!r}, one of "
                            f"{sorted(ALGORITHMS)}")


def _too_big(limit: int) -> MalformedEncoding:
    return MalformedEncoding(f"decompress: output exceeds {limit} bytes (a zip bomb?)")


def decompress(data: bytes, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Inverse of :func:`compress`; refuses output above ``limit`` bytes, truncated or
    corrupt streams, and bytes after the end of the stream."""
    if not data:
        raise MalformedEncoding("decompress: empty input")
    algorithm, stream = data[0], bytes(data[1:])
    if algorithm == STORED:
        if len(stream) > limit:
            raise _too_big(limit)
        return stream
    if algorithm == ZLIB:
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(stream, limit + 1)
        except zlib.error as exc:
            raise MalformedEncoding(f"decompress: corrupt zlib stream ({exc})") from None
        if len(out) > limit:
            raise _too_big(limit)
        if not inflater.eof:
            raise MalformedEncoding("decompress: truncated zlib stream")
        if inflater.unused_data:
            raise MalformedEncoding(f"decompress: {len(inflater.unused_data)} bytes after the "
                                    "zlib stream")
        return out
    if algorithm == BROTLI:
        if _brotli is None:
            raise MalformedEncoding("decompress: a brotli stream, and brotli is not installed")
        return _brotli_bounded(stream, limit)
    raise MalformedEncoding(f"decompress: unknown algorithm byte {algorithm:#04x}")


def _brotli_bounded(stream: bytes, limit: int) -> bytes:
    decoder = _brotli.Decompressor()
    chunk = 1 << 16
    parts: list[bytes] = []
    total = 0
    try:
        # All the input goes in at once; then empty calls drain the output a bounded
        # chunk at a time until the stream ends, or a call yields nothing (truncated).
        piece = decoder.process(stream, output_buffer_limit=chunk)
        while True:
            parts.append(piece)
            total += len(piece)
            if total > limit:
                raise _too_big(limit)
            if decoder.is_finished():
                break
            piece = decoder.process(b"", output_buffer_limit=chunk)
            if not piece:
                raise MalformedEncoding("decompress: truncated brotli stream")
    except _brotli.error as exc:
        raise MalformedEncoding(f"decompress: corrupt brotli stream ({exc})") from None
    return b"".join(parts)
