"""Baby Jubjub and EdDSA-Poseidon, as circomlibjs signs and circomlib verifies in-circuit.

Baby Jubjub (Whitehat, Baylina, Bellés, "Baby Jubjub Elliptic Curve", EIP-2494) is the
twisted Edwards curve ``a*x^2 + y^2 = 1 + d*x^2*y^2`` with ``a = 168700``,
``d = 168696`` over the BN254 scalar field, so that its arithmetic is native to circom.
Its order is ``8 * SUB_ORDER``; :data:`BASE8` generates the prime-order subgroup.

EdDSA-Poseidon is circomlibjs's ``eddsa.signPoseidon`` / ``verifyPoseidon`` and circomlib's
``EdDSAPoseidonVerifier``:

- a private key is 32 bytes; ``h = BLAKE-512(prv)`` (the SHA-3 finalist BLAKE, *not*
  BLAKE2: circomlibjs uses npm ``blake-hash``); ``s`` is ``h[0:32]`` pruned (low 3 bits
  cleared, bit 255 cleared, bit 254 set) read little-endian; the public key is
  ``A = (s >> 3) * BASE8`` (``prv2pub``);
- to sign the field element ``msg``: ``r = BLAKE-512(h[32:64] || le32(msg)) mod SUB_ORDER``,
  ``R8 = r * BASE8``, ``hm = Poseidon(R8.x, R8.y, A.x, A.y, msg)``,
  ``S = (r + hm * s) mod SUB_ORDER``; the signature is ``(R8, S)``;
- to verify: ``S < SUB_ORDER``, both points on the curve, and
  ``S * BASE8 == R8 + (8 * hm) * A``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from layerlab.crypto.poseidon import SNARK_FIELD, poseidon

__all__ = [
    "BASE8",
    "SUB_ORDER",
    "A",
    "D",
    "EdDSASignature",
    "Point",
    "add_points",
    "blake512",
    "is_on_curve",
    "mul_point",
    "prv2pub",
    "sign_poseidon",
    "verify_poseidon",
]

P: Final = SNARK_FIELD
A: Final = 168700
D: Final = 168696
SUB_ORDER: Final = 2736030358979909402780800718157159386076813972158567259200215660948447373041
Point = tuple[int, int]
BASE8: Final[Point] = (
    5299619240641551281634865583518297030282874472190772894086521144482721001553,
    16950150798460657717958625567821834550301663161624707787222815936182638968203,
)
IDENTITY: Final[Point] = (0, 1)


def add_points(p1: Point, p2: Point) -> Point:
    """The twisted Edwards sum (complete: no special cases, the identity is (0, 1))."""
    x1, y1 = p1
    x2, y2 = p2
    t = D * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + y1 * x2) * pow(1 + t, -1, P) % P
    y3 = (y1 * y2 - A * x1 * x2) * pow(1 - t, -1, P) % P
    return x3, y3


def mul_point(point: Point, scalar: int) -> Point:
    """``scalar * point`` by double-and-add (``scalar >= 0``)."""
    if scalar < 0:
        raise ValueError(f"Baby Jubjub scalar {scalar} is negative")
    result, addend = IDENTITY, point
    while scalar:
        if scalar & 1:
            result = add_points(result, addend)
        addend = add_points(addend, addend)
        scalar >>= 1
    return result


def is_on_curve(point: Point) -> bool:
    x, y = point
    if not (0 <= x < P and 0 <= y < P):
        return False
    x2, y2 = x * x % P, y * y % P
    return (A * x2 + y2) % P == (1 + D * x2 * y2) % P


# -- BLAKE-512 (Aumasson, Henzen, Meier, Phan, "SHA-3 proposal BLAKE", v1.3, 2010) ----------

_MASK: Final = (1 << 64) - 1
_IV: Final = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)
_C: Final = (
    0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89,
    0x452821E638D01377, 0xBE5466CF34E90C6C, 0xC0AC29B7C97C50DD, 0x3F84D5B5B5470917,
    0x9216D5D98979FB1B, 0xD1310BA698DFB5AC, 0x2FFD72DBD01ADFB7, 0xB8E1AFED6A267E96,
    0xBA7C9045F12C7F99, 0x24A19947B3916CF7, 0x0801F2E2858EFC16, 0x636920D871574E69,
)
_SIGMA: Final = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3),
    (11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4),
    (7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8),
    (9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13),
    (2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9),
    (12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11),
    (13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10),
    (6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5),
    (10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0),
)
_G_INDICES: Final = (
    (0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
    (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14),
)


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (64 - n))) & _MASK


def _compress(h: list[int], block: bytes, counter: int) -> None:
    m = struct.unpack(">16Q", block)
    t0, t1 = counter & _MASK, counter >> 64
    v = [*h, _C[0], _C[1], _C[2], _C[3],
         t0 ^ _C[4], t0 ^ _C[5], t1 ^ _C[6], t1 ^ _C[7]]
    for rnd in range(16):
        s = _SIGMA[rnd % 10]
        for i, (a, b, c, d) in enumerate(_G_INDICES):
            x, y = s[2 * i], s[2 * i + 1]
            v[a] = (v[a] + v[b] + (m[x] ^ _C[y])) & _MASK
            v[d] = _rotr(v[d] ^ v[a], 32)
            v[c] = (v[c] + v[d]) & _MASK
            v[b] = _rotr(v[b] ^ v[c], 25)
            v[a] = (v[a] + v[b] + (m[y] ^ _C[x])) & _MASK
            v[d] = _rotr(v[d] ^ v[a], 16)
            v[c] = (v[c] + v[d]) & _MASK
            v[b] = _rotr(v[b] ^ v[c], 11)
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


def blake512(data: bytes) -> bytes:
    """BLAKE-512 with no salt (npm ``blake-hash``'s ``createBlakeHash("blake512")``)."""
    h = list(_IV)
    bits = len(data) * 8
    full = len(data) // 128
    for i in range(full):
        _compress(h, data[i * 128:(i + 1) * 128], (i + 1) * 1024)
    tail = data[full * 128:]
    # Padding: a 1 bit, zeros, a 1 bit, then the 128-bit length; the counter of a block
    # that holds no message bits is 0.
    if len(tail) <= 111:
        pad = bytearray(tail + b"\x80" + b"\0" * (111 - len(tail)))
        pad[111] |= 0x01
        _compress(h, bytes(pad) + bits.to_bytes(16, "big"), bits if tail else 0)
    else:
        _compress(h, tail + b"\x80" + b"\0" * (127 - len(tail)), bits)
        last = bytearray(128)
        last[111] = 0x01
        last[112:] = bits.to_bytes(16, "big")
        _compress(h, bytes(last), 0)
    return struct.pack(">8Q", *h)


# -- EdDSA-Poseidon ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EdDSASignature:
    """An EdDSA-Poseidon signature: the point ``R8`` and the scalar ``S``."""

    r8: Point
    s: int


def _prune(buff: bytes) -> bytes:
    b = bytearray(buff[:32])
    b[0] &= 0xF8
    b[31] &= 0x7F
    b[31] |= 0x40
    return bytes(b)


def _secret_scalar(prv: bytes) -> tuple[int, bytes]:
    if len(prv) != 32:
        raise ValueError(f"a Baby Jubjub private key is 32 bytes, got {len(prv)}")
    h = blake512(prv)
    return int.from_bytes(_prune(h), "little"), h


def prv2pub(prv: bytes) -> Point:
    """The public key of ``prv`` (circomlibjs ``eddsa.prv2pub``)."""
    s, _ = _secret_scalar(prv)
    return mul_point(BASE8, s >> 3)


def sign_poseidon(prv: bytes, msg: int) -> EdDSASignature:
    """Sign the field element ``msg`` (circomlibjs ``eddsa.signPoseidon``)."""
    if not 0 <= msg < P:
        raise ValueError(f"EdDSA-Poseidon message {msg} is not a BN254 field element")
    s, h = _secret_scalar(prv)
    a = mul_point(BASE8, s >> 3)
    r = int.from_bytes(blake512(h[32:64] + msg.to_bytes(32, "little")), "little") % SUB_ORDER
    r8 = mul_point(BASE8, r)
    hm = poseidon([r8[0], r8[1], a[0], a[1], msg])
    return EdDSASignature(r8, (r + hm * s) % SUB_ORDER)


def verify_poseidon(msg: int, sig: EdDSASignature, pub: Point) -> bool:
    """Whether ``sig`` signs ``msg`` under ``pub`` (circomlibjs ``eddsa.verifyPoseidon``)."""
    if not (0 <= msg < P and 0 <= sig.s < SUB_ORDER):
        return False
    if not (is_on_curve(sig.r8) and is_on_curve(pub)):
        return False
    hm = poseidon([sig.r8[0], sig.r8[1], pub[0], pub[1], msg])
    left = mul_point(BASE8, sig.s)
    right = add_points(sig.r8, mul_point(pub, 8 * hm))
    return left == right
