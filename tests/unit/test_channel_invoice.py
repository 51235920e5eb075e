"""Invoices: create, encode as ``llinv1...``, decode and verify; tampering is refused."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.l2.channels.invoice import (
    INVOICE_PREFIX,
    InvalidInvoice,
    Invoice,
    compute_invoice_digest,
    compute_preimage,
    create_invoice,
    decode_invoice,
    encode_invoice,
    is_invoice_expired,
    validate_invoice,
)
from layerlab.l2.channels.machine import compute_address
from layerlab.l2.channels.signing import sign_digest
from layerlab.l2.channels.types import Preimage
from layerlab.primitives.types import ChainId, Timestamp, Wei

KEY = b"\x42" * 32
OTHER_KEY = b"\x43" * 32
PREIMAGE = Preimage(b"\x07" * 32)
NOW = Timestamp(1_700_000_000)


def make(**changes: object) -> Invoice:
    fields: dict[str, object] = {"private_key": KEY, "chain_id": ChainId(1337), "amount": Wei(25_000),
                                 "preimage": PREIMAGE, "timestamp": NOW, "description": "two coffees"}
    fields.update(changes)
    return create_invoice(**fields)  # type: ignore[arg-type]


def raw_parts(text: str) -> tuple[bytes, bytes]:
    """The payload JSON and the signature inside an encoded invoice."""
    data = text[len(INVOICE_PREFIX):].upper()
    raw = base64.b32decode(data + "=" * (-len(data) % 8))
    return raw[:-4 - 65], raw[-4 - 65:-4]


def reencode(payload: bytes, signature: bytes) -> str:
    """An invoice string with a valid checksum around any payload and signature."""
    body = payload + signature
    checksum = bytes(keccak(INVOICE_PREFIX.encode() + body))[:4]
    return INVOICE_PREFIX + base64.b32encode(body + checksum).decode().rstrip("=").lower()


def test_round_trip() -> None:
    invoice = make()
    assert invoice.payee == compute_address(KEY)
    assert invoice.payment_hash == hashlib.sha256(PREIMAGE).digest()
    assert (invoice.expiry_seconds, invoice.min_final_expiry_delta) == (3600, 18)
    text = encode_invoice(invoice)
    assert text.startswith("llinv1") and text == text.lower()
    assert decode_invoice(text) == invoice
    assert decode_invoice(text, chain_id=ChainId(1337)) == invoice


@settings(max_examples=50, deadline=None)
@given(amount=st.integers(1, 2**256 - 1), expiry=st.integers(1, 2**32 - 1), delta=st.integers(0, 2**32 - 1),
       description=st.text(max_size=100), preimage=st.binary(min_size=32, max_size=32),
       timestamp=st.integers(0, 2**64 - 1))
def test_round_trip_any_fields(amount: int, expiry: int, delta: int, description: str, preimage: bytes,
                               timestamp: int) -> None:
    if len(description.encode()) > 639:
        return
    invoice = make(amount=Wei(amount), expiry_seconds=expiry, min_final_expiry_delta=delta,
                   description=description, preimage=Preimage(preimage), timestamp=Timestamp(timestamp))
    assert decode_invoice(encode_invoice(invoice)) == invoice


def test_every_single_character_change_is_refused() -> None:
    text = encode_invoice(make())
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    for i in [*range(len(INVOICE_PREFIX), len(text), 7), len(text) - 1]:
        for replacement in alphabet[:3]:
            if replacement == text[i]:
                continue
            with pytest.raises(InvalidInvoice):
                decode_invoice(text[:i] + replacement + text[i + 1:])


def test_tampered_amount_with_fixed_checksum_fails_the_signature() -> None:
    text = encode_invoice(make())
    payload, signature = raw_parts(text)
    obj = json.loads(payload)
    obj["a"] = 1
    forged = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    with pytest.raises(InvalidInvoice, match="not its payee"):
        decode_invoice(reencode(forged, signature))


def test_invoice_signed_by_someone_else_is_refused() -> None:
    genuine = make()
    impostor = replace(genuine, signature=sign_digest(compute_invoice_digest(genuine), OTHER_KEY))
    with pytest.raises(InvalidInvoice, match=f"signed by 0x{compute_address(OTHER_KEY).hex()}"):
        validate_invoice(impostor)
    payload, _ = raw_parts(encode_invoice(genuine))
    with pytest.raises(InvalidInvoice, match="not its payee"):
        decode_invoice(reencode(payload, impostor.signature))


def test_non_canonical_payload_is_refused() -> None:
    payload, signature = raw_parts(encode_invoice(make()))
    spaced = json.dumps(json.loads(payload), sort_keys=True).encode()  # ", " and ": " separators
    with pytest.raises(InvalidInvoice, match="canonical"):
        decode_invoice(reencode(spaced, signature))


@pytest.mark.parametrize("text", [
    "", "lnbc1xyz", "llinv1", "llinv1!!!!", "llinv1aaaa", "LLINV1AAAA", "llinv1" + "a" * 5000,
])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(InvalidInvoice):
        decode_invoice(text)


def test_uppercase_is_refused_like_mixed_case_bech32() -> None:
    text = encode_invoice(make())
    with pytest.raises(InvalidInvoice, match="lowercase"):
        decode_invoice(INVOICE_PREFIX + text[len(INVOICE_PREFIX):].upper())


def test_wrong_chain_is_refused() -> None:
    with pytest.raises(InvalidInvoice, match="for chain 1337, not 1"):
        decode_invoice(encode_invoice(make()), chain_id=ChainId(1))


def test_missing_or_extra_fields_are_refused() -> None:
    payload, signature = raw_parts(encode_invoice(make()))
    obj = json.loads(payload)
    for broken in ({k: v for k, v in obj.items() if k != "d"}, {**obj, "z": 1}, {**obj, "a": True},
                   {**obj, "v": 2}, {**obj, "p": "0x00"}):
        data = json.dumps(broken, separators=(",", ":"), sort_keys=True).encode()
        with pytest.raises(InvalidInvoice):
            decode_invoice(reencode(data, signature))


@pytest.mark.parametrize("changes", [
    {"amount": Wei(0)}, {"amount": Wei(-1)}, {"expiry_seconds": 0}, {"description": "x" * 640},
    {"preimage": Preimage(b"\x01" * 31)}, {"min_final_expiry_delta": -1},
])
def test_invalid_fields_are_refused_at_creation(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInvoice):
        make(**changes)


def test_expiry() -> None:
    invoice = make(expiry_seconds=60)
    assert invoice.expires_at == NOW + 60
    assert not is_invoice_expired(invoice, Timestamp(NOW + 59))
    assert is_invoice_expired(invoice, Timestamp(NOW + 60))


def test_fresh_preimages_are_random_32_bytes() -> None:
    first, second = compute_preimage(), compute_preimage()
    assert len(first) == 32 and first != second
