"""Payment requests in the manner of BOLT 11, encoded as ``llinv1...`` strings.

An invoice names the payee (its address, which is also its node id), the chain, the
amount, the payment hash ``sha256(preimage)`` of a random 32-byte preimage only the payee
knows, when it was made and for how many seconds it stays payable, the payee's
``min_final_expiry_delta`` (BOLT 11 ``c``: blocks the last lock must leave the payee) and a
description. The payee signs it, so a payer knows whose lock the preimage will open.

Encoding (all-lowercase, like bech32)::

    "llinv1" || base32(payload || signature || checksum)

* ``payload``: canonical JSON (sorted keys, no spaces, ASCII) of the fields under
  BOLT 11's tag letters where one exists (``n`` payee, ``p`` payment hash, ``x`` expiry,
  ``c`` min final expiry delta, ``d`` description) and ``a`` amount, ``t`` timestamp,
  ``chain`` chain id, ``v`` version;
* ``signature``: 65 bytes ``r || s || v``, the payee's secp256k1 signature of
  ``keccak256("llinv1" || payload)``; the signer recovered from it must be ``n``;
* ``checksum``: the first 4 bytes of ``keccak256("llinv1" || payload || signature)``,
  catching typos before the signature is even checked.

Decoding refuses anything not byte-for-byte canonical, so one invoice has one encoding.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak

from layerlab.crypto.secp256k1 import BadSignature
from layerlab.errors import ChannelError
from layerlab.l2.channels.machine import compute_address, compute_hashlock
from layerlab.l2.channels.signing import recover_digest_signer, sign_digest
from layerlab.l2.channels.types import Hashlock, Preimage
from layerlab.primitives.types import Address, ChainId, Timestamp, Wei

INVOICE_PREFIX = "llinv1"
INVOICE_VERSION = 1
DEFAULT_EXPIRY_SECONDS = 3600
"""BOLT 11's default expiry (``x``): one hour."""
DEFAULT_MIN_FINAL_EXPIRY_DELTA = 18
"""BOLT 11's default ``min_final_cltv_expiry_delta`` (``c``)."""
MAX_DESCRIPTION_BYTES = 639
"""BOLT 11's limit on the ``d`` field."""
MAX_INVOICE_LENGTH = 4096
_CHECKSUM_BYTES = 4
_SIGNATURE_BYTES = 65
_KEYS = frozenset({"v", "chain", "n", "a", "p", "t", "x", "c", "d"})


class InvalidInvoice(ChannelError):
    """An invoice string is malformed, tampered with, or not signed by its payee."""


@dataclass(frozen=True, slots=True)
class Invoice:
    """A signed payment request; build with :func:`create_invoice`."""

    chain_id: ChainId
    payee: Address
    amount: Wei
    payment_hash: Hashlock
    timestamp: Timestamp
    expiry_seconds: int
    min_final_expiry_delta: int
    description: str
    signature: bytes

    @property
    def expires_at(self) -> Timestamp:
        return Timestamp(self.timestamp + self.expiry_seconds)


def compute_preimage() -> Preimage:
    """A fresh random 32-byte preimage (keep it secret until a lock pays it)."""
    return Preimage(secrets.token_bytes(32))


def _payload(invoice: Invoice) -> bytes:
    return json.dumps({"v": INVOICE_VERSION, "chain": invoice.chain_id, "n": "0x" + invoice.payee.hex(),
                       "a": invoice.amount, "p": "0x" + invoice.payment_hash.hex(), "t": invoice.timestamp,
                       "x": invoice.expiry_seconds, "c": invoice.min_final_expiry_delta,
                       "d": invoice.description},
                      separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode()


def compute_invoice_digest(invoice: Invoice) -> bytes:
    """What the payee signs: ``keccak256("llinv1" || payload)``."""
    return bytes(keccak(INVOICE_PREFIX.encode() + _payload(invoice)))


def validate_invoice_fields(invoice: Invoice) -> None:
    """Field ranges (independent of the signature)."""
    ints = {"chain id": invoice.chain_id, "amount": invoice.amount, "timestamp": invoice.timestamp,
            "expiry seconds": invoice.expiry_seconds,
            "min final expiry delta": invoice.min_final_expiry_delta}
    for name, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**256:
            raise InvalidInvoice(f"invoice {name} must be a non-negative integer, got {value!r}")
    if invoice.amount == 0:
        raise InvalidInvoice("invoice amount must be positive")
    if invoice.expiry_seconds == 0 or invoice.timestamp >= 2**64 or invoice.expiry_seconds >= 2**32 \
            or invoice.min_final_expiry_delta >= 2**32:
        raise InvalidInvoice(f"invoice timing out of range: timestamp {invoice.timestamp}, expiry "
                             f"{invoice.expiry_seconds} s, min final expiry delta "
                             f"{invoice.min_final_expiry_delta}")
    if len(invoice.payee) != 20 or len(invoice.payment_hash) != 32:
        raise InvalidInvoice(f"payee must be 20 bytes and payment hash 32, got {len(invoice.payee)} and "
                             f"{len(invoice.payment_hash)}")
    if not isinstance(invoice.description, str) or len(invoice.description.encode()) > MAX_DESCRIPTION_BYTES:
        raise InvalidInvoice(f"description must be a string of at most {MAX_DESCRIPTION_BYTES} UTF-8 bytes")


def validate_invoice(invoice: Invoice) -> None:
    """Field ranges, and the signature recovers to the payee."""
    validate_invoice_fields(invoice)
    try:
        signer = recover_digest_signer(compute_invoice_digest(invoice), invoice.signature)
    except BadSignature as exc:
        raise InvalidInvoice(f"invoice signature is malformed: {exc}") from exc
    if signer != invoice.payee:
        raise InvalidInvoice(f"invoice is signed by 0x{signer.hex()}, not its payee 0x{invoice.payee.hex()}")


def create_invoice(*, private_key: bytes, chain_id: ChainId, amount: Wei, preimage: Preimage,
                   timestamp: Timestamp, expiry_seconds: int = DEFAULT_EXPIRY_SECONDS,
                   min_final_expiry_delta: int = DEFAULT_MIN_FINAL_EXPIRY_DELTA,
                   description: str = "") -> Invoice:
    """An invoice for ``sha256(preimage)`` signed by ``private_key`` (whose address is the
    payee). The caller keeps ``preimage`` (e.g. :func:`machine.apply_preimage`)."""
    if len(preimage) != 32:
        raise InvalidInvoice(f"preimage must be 32 bytes, got {len(preimage)}")
    unsigned = Invoice(chain_id=chain_id, payee=compute_address(private_key), amount=amount,
                       payment_hash=compute_hashlock(preimage), timestamp=timestamp,
                       expiry_seconds=expiry_seconds, min_final_expiry_delta=min_final_expiry_delta,
                       description=description, signature=b"")
    validate_invoice_fields(unsigned)
    signature = sign_digest(compute_invoice_digest(unsigned), private_key)
    return Invoice(chain_id=chain_id, payee=unsigned.payee, amount=amount,
                   payment_hash=unsigned.payment_hash, timestamp=timestamp, expiry_seconds=expiry_seconds,
                   min_final_expiry_delta=min_final_expiry_delta, description=description,
                   signature=signature)


def encode_invoice(invoice: Invoice) -> str:
    """The ``llinv1...`` string of a valid invoice."""
    validate_invoice(invoice)
    body = _payload(invoice) + invoice.signature
    checksum = bytes(keccak(INVOICE_PREFIX.encode() + body))[:_CHECKSUM_BYTES]
    return INVOICE_PREFIX + base64.b32encode(body + checksum).decode().rstrip("=").lower()


def _field(obj: dict[str, Any], key: str, kind: type) -> Any:
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidInvoice(f"invoice field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _hex_field(obj: dict[str, Any], key: str, length: int) -> bytes:
    value = _field(obj, key, str)
    try:
        raw = bytes.fromhex(value[2:]) if value.startswith("0x") else b""
    except ValueError as exc:
        raise InvalidInvoice(f"invoice field {key!r} is not hex: {value!r}") from exc
    if len(raw) != length:
        raise InvalidInvoice(f"invoice field {key!r} must be 0x and {length} bytes of hex, got {value!r}")
    return raw


def decode_invoice(text: str, *, chain_id: ChainId | None = None) -> Invoice:
    """Parse and verify an ``llinv1...`` string: prefix, base32, checksum, canonical
    payload, field ranges, payee signature and (if given) the expected chain."""
    if not isinstance(text, str) or len(text) > MAX_INVOICE_LENGTH:
        raise InvalidInvoice(f"invoice must be a string of at most {MAX_INVOICE_LENGTH} characters")
    if not text.startswith(INVOICE_PREFIX):
        raise InvalidInvoice(f"invoice must start with {INVOICE_PREFIX!r}")
    data = text[len(INVOICE_PREFIX):]
    if data != data.lower():
        raise InvalidInvoice("invoice must be lowercase")
    try:
        raw = base64.b32decode(data.upper() + "=" * (-len(data) % 8))
    except ValueError as exc:
        raise InvalidInvoice(f"invoice is not base32: {exc}") from exc
    if base64.b32encode(raw).decode().rstrip("=").lower() != data:
        raise InvalidInvoice("invoice is not canonical base32 (stray padding bits)")
    if len(raw) < _SIGNATURE_BYTES + _CHECKSUM_BYTES + 2:
        raise InvalidInvoice(f"invoice is too short ({len(raw)} bytes)")
    body, checksum = raw[:-_CHECKSUM_BYTES], raw[-_CHECKSUM_BYTES:]
    if bytes(keccak(INVOICE_PREFIX.encode() + body))[:_CHECKSUM_BYTES] != checksum:
        raise InvalidInvoice("invoice checksum mismatch (mistyped or altered)")
    payload, signature = body[:-_SIGNATURE_BYTES], body[-_SIGNATURE_BYTES:]
    try:
        obj = json.loads(payload.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInvoice(f"invoice payload is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or set(obj) != _KEYS:
        raise InvalidInvoice(f"invoice payload must have exactly the fields {sorted(_KEYS)}")
    if _field(obj, "v", int) != INVOICE_VERSION:
        raise InvalidInvoice(f"unsupported invoice version {obj['v']!r}")
    invoice = Invoice(chain_id=ChainId(_field(obj, "chain", int)), payee=Address(_hex_field(obj, "n", 20)),
                      amount=Wei(_field(obj, "a", int)), payment_hash=Hashlock(_hex_field(obj, "p", 32)),
                      timestamp=Timestamp(_field(obj, "t", int)), expiry_seconds=_field(obj, "x", int),
                      min_final_expiry_delta=_field(obj, "c", int), description=_field(obj, "d", str),
                      signature=signature)
    if _payload(invoice) != payload:
        raise InvalidInvoice("invoice payload is not in canonical form")
    validate_invoice(invoice)
    if chain_id is not None and invoice.chain_id != chain_id:
        raise InvalidInvoice(f"invoice is for chain {invoice.chain_id}, not {chain_id}")
    return invoice


def is_invoice_expired(invoice: Invoice, now: Timestamp) -> bool:
    """True once ``now`` (unix seconds, from the caller) reaches ``timestamp + expiry``."""
    return now >= invoice.expires_at
