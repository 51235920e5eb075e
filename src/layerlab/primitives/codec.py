"""One codec for frozen dataclasses, driven by their field types (RLP underneath).

As in ethereum/execution-specs (``ethereum_rlp.encode`` / ``decode_to(cls, data)``), a
dataclass encodes as the RLP list of its fields in declaration order, and decoding walks
the class's resolved type hints, so a type's encoding is its field list and nothing else.

Supported field types: ``int`` (and ``NewType`` over it), ``bool``, ``bytes`` (optionally
of fixed length: ``Annotated[bytes, FixedLength(32)]``), ``str`` (UTF-8), nested
dataclasses, ``tuple[X, ...]`` and fixed-arity ``tuple[A, B]``. One strict integer rule
everywhere: big-endian, minimal, no leading zero byte, zero is the empty string (the Yellow
Paper's RLP scalar rule); a bool is the integer 0 or 1. Anything else raises
:class:`~layerlab.errors.MalformedEncoding` naming the class, the field and the problem.
Type hints are resolved once per class and cached.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import rlp

from layerlab.errors import MalformedEncoding

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FixedLength:
    """``Annotated`` marker: a ``bytes`` field must be exactly ``size`` bytes long."""

    size: int


_Decoder = Callable[[object, str], Any]
_Encoder = Callable[[Any], object]


def _strip_newtype(tp: Any) -> Any:
    while hasattr(tp, "__supertype__"):
        tp = tp.__supertype__
    return tp


def decode_uint(item: object, where: str) -> int:
    """The one integer rule: a byte string, big-endian, no leading zero byte, ``b""`` is 0.

    Raises :class:`~layerlab.errors.MalformedEncoding` naming ``where`` otherwise.
    """
    if not isinstance(item, bytes):
        raise MalformedEncoding(f"{where}: expected an integer byte string, got a list")
    if item[:1] == b"\x00":
        raise MalformedEncoding(f"{where}: integer {item.hex()} has leading zero bytes")
    return int.from_bytes(item, "big")


def _decode_bool(item: object, where: str) -> bool:
    value = decode_uint(item, where)
    if value > 1:
        raise MalformedEncoding(f"{where}: boolean must be 0 or 1, got {value}")
    return value == 1


def _decode_bytes(item: object, where: str) -> bytes:
    if not isinstance(item, bytes):
        raise MalformedEncoding(f"{where}: expected a byte string, got a list")
    return item


def _fixed_bytes(size: int) -> _Decoder:
    def decode(item: object, where: str) -> bytes:
        raw = _decode_bytes(item, where)
        if len(raw) != size:
            raise MalformedEncoding(f"{where}: expected {size} bytes, got {len(raw)}")
        return raw

    return decode


def _decode_str(item: object, where: str) -> str:
    raw = _decode_bytes(item, where)
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise MalformedEncoding(f"{where}: not UTF-8 ({exc})") from exc


def _compile_fixed_tuple(args: tuple[Any, ...], where: str) -> tuple[_Encoder, _Decoder]:
    """``tuple[A, B, C]``: a list of exactly that many items, each of its own type."""
    parts = [_compile(arg, f"{where}[{i}]") for i, arg in enumerate(args)]
    count = len(parts)

    def enc(value: Any) -> object:
        return [e(v) for (e, _), v in zip(parts, value, strict=True)]

    def dec(item: object, at: str) -> tuple[Any, ...]:
        if not isinstance(item, list):
            raise MalformedEncoding(f"{at}: expected a list of {count} items, got a byte string")
        if len(item) != count:
            raise MalformedEncoding(f"{at}: expected {count} items, got {len(item)}")
        return tuple([d(v, f"{at}[{i}]") for i, ((_, d), v) in enumerate(zip(parts, item, strict=True))])

    return enc, dec


def _encode_int(value: int) -> object:
    if value < 0:
        raise MalformedEncoding(f"cannot encode negative integer {value}")
    return value


def _identity(value: Any) -> object:
    return value


def _compile(tp: Any, where: str) -> tuple[_Encoder, _Decoder]:
    """Build the (encode, decode) pair for one field type."""
    tp = _strip_newtype(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(tp)
        enc, dec = _compile(base, where)
        for extra in extras:
            if isinstance(extra, FixedLength):
                return enc, _fixed_bytes(extra.size)
        return enc, dec
    if tp is bool:
        return (lambda v: int(v)), _decode_bool
    if tp is int:
        return _encode_int, decode_uint
    if tp is bytes:
        return _identity, _decode_bytes
    if tp is str:
        return (lambda v: v.encode()), _decode_str
    if origin is tuple and not (len(typing.get_args(tp)) == 2 and typing.get_args(tp)[1] is Ellipsis):
        return _compile_fixed_tuple(typing.get_args(tp), where)
    if origin is tuple:
        args = typing.get_args(tp)
        item_enc, item_dec = _compile(args[0], where)

        def enc_tuple(value: Any) -> object:
            return [item_enc(v) for v in value]

        def dec_tuple(item: object, at: str) -> tuple[Any, ...]:
            if not isinstance(item, list):
                raise MalformedEncoding(f"{at}: expected a list, got a byte string")
            try:
                return tuple([item_dec(v, at) for v in item])
            except MalformedEncoding:
                pass
            for i, v in enumerate(item):  # slow path, only to name the failing element
                item_dec(v, f"{at}[{i}]")
            raise AssertionError("unreachable: a decode failed once and then succeeded")

        return enc_tuple, dec_tuple
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        cls = tp
        return (lambda v: _codec(cls)[0](v)), (lambda item, at: _codec(cls)[1](item, at))
    raise TypeError(f"{where}: unsupported field type {tp!r}")


_CODECS: dict[type, tuple[_Encoder, _Decoder]] = {}


def _codec(cls: type) -> tuple[_Encoder, _Decoder]:
    """``cls``'s list encoder and decoder, built on first use and cached."""
    found = _CODECS.get(cls)
    if found is None:
        found = _CODECS[cls] = _build(cls)
    return found


def _build(cls: type) -> tuple[_Encoder, _Decoder]:
    """Resolve ``cls``'s type hints once and build its list encoder and decoder."""
    hints = typing.get_type_hints(cls, include_extras=True)
    if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if any(not f.init for f in dataclasses.fields(cls)):
        raise TypeError(f"{cls.__name__}: every field must be an __init__ field to be decodable")
    names = [f.name for f in dataclasses.fields(cls)]
    parts = [_compile(hints[name], f"{cls.__name__}.{name}") for name in names]
    encoders = [(name, enc) for name, (enc, _) in zip(names, parts, strict=True)]
    decoders = [(name, dec, f"{cls.__name__}.{name}") for name, (_, dec) in zip(names, parts, strict=True)]
    count = len(names)
    label = cls.__name__

    def encode_fields(value: Any) -> object:
        if not isinstance(value, cls):
            raise MalformedEncoding(f"{label}: cannot encode a {type(value).__name__}")
        return [enc(getattr(value, name)) for name, enc in encoders]

    def decode_fields(item: object, where: str) -> Any:
        at = f"{where} ({label})" if where else label
        if not isinstance(item, list):
            raise MalformedEncoding(f"{at}: expected a list of {count} fields, got a byte string")
        if len(item) != count:
            raise MalformedEncoding(f"{at}: expected {count} fields, got {len(item)}")
        return cls(*[dec(v, where_) for (_, dec, where_), v in zip(decoders, item, strict=True)])

    return encode_fields, decode_fields


def to_rlp_item(value: Any) -> list[object]:
    """The RLP item (nested lists of bytes/ints) of a dataclass value, before serialization."""
    return typing.cast(list[object], _codec(type(value))[0](value))


def from_rlp_item(cls: type[T], item: object) -> T:
    """Inverse of :func:`to_rlp_item` for an already-decoded RLP item."""
    result: T = _codec(cls)[1](item, "")
    return result


def encode(value: Any) -> bytes:
    """RLP of ``value``'s fields in declaration order (nested dataclasses as nested lists)."""
    return bytes(rlp.encode(to_rlp_item(value)))


def decode_to(cls: type[T], data: bytes) -> T:
    """Decode ``data`` into ``cls``; anything not :func:`encode`'s exact output for some
    value raises :class:`~layerlab.errors.MalformedEncoding`."""
    return from_rlp_item(cls, decode_rlp_item(data, cls.__name__))


def decode_rlp_item(data: bytes, what: str) -> object:
    """The RLP item of ``data`` (bytes or nested lists); garbage or non-canonical RLP raises
    :class:`~layerlab.errors.MalformedEncoding` naming ``what``."""
    if not isinstance(data, bytes | bytearray):
        raise MalformedEncoding(f"{what}: expected bytes, got {type(data).__name__}")
    try:
        return rlp.decode(bytes(data))
    except Exception as exc:  # rlp raises DecodingError and assorted ValueErrors on garbage
        raise MalformedEncoding(f"{what}: not canonical RLP ({exc})") from exc
