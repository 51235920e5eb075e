"""The one field-driven codec (``primitives/codec.py``) and the consensus types on it.

Byte-identity vectors were captured from the hand-written per-type RLP functions that
``pos.py`` had before this codec replaced them: a stored chain must still load.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass, replace
from typing import Annotated, NewType

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.errors import ConsensusError, MalformedEncoding
from layerlab.l1.consensus import beacon
from layerlab.l1.consensus.pos import MINIMAL, BeaconBody, BeaconState, Validator, genesis_state
from layerlab.l1.consensus.types import (
    Attestation,
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    Deposit,
    ExitRequest,
    ProposerSlashing,
    SignedBlockHeader,
    Withdrawal,
)
from layerlab.primitives.codec import FixedLength, decode_to, encode

Height = NewType("Height", int)


@dataclass(frozen=True, slots=True)
class _Inner:
    height: Height
    root: Annotated[bytes, FixedLength(4)]


@dataclass(frozen=True, slots=True)
class _Outer:
    flag: bool
    blob: bytes
    inner: _Inner
    items: tuple[int, ...]
    inners: tuple[_Inner, ...]


def _vectors() -> dict[str, bytes]:
    cp1 = Checkpoint(3, b"\x11" * 32)
    cp0 = Checkpoint(0, b"\x00" * 32)
    ad = AttestationData(97, b"\x22" * 32, cp0, cp1)
    att = Attestation(ad, (0, 1, 5, 300), b"\x33" * 96)
    att2 = Attestation(AttestationData(0, b"\x44" * 32, cp1, Checkpoint(256, b"\x55" * 32)), (), b"\x66" * 96)
    h1 = SignedBlockHeader(12, 7, b"\x77" * 32, b"\x88" * 96)
    h2 = SignedBlockHeader(12, 7, b"\x99" * 32, b"\xaa" * 96)
    dep = Deposit(b"\xbb" * 48, b"\xcc" * 20, 32_000_000_000, b"\xdd" * 96, 0)
    ex = ExitRequest(b"\xbb" * 48, b"\xcc" * 20)
    w = Withdrawal(0, 3, b"\xcc" * 20, 1)
    return {
        "empty": BeaconBody(0, b"\x00" * 96).encode(),
        "full": BeaconBody(
            5, b"\xee" * 96, (att, att2), (ProposerSlashing(h1, h2),), (AttesterSlashing(att, att2),),
            (dep,), (ex,), (w, Withdrawal(1, 0, b"\x01" * 20, 0)),
        ).encode(),
        "att": beacon.encode_attestation(att),
        "slash": beacon.encode_slashing(ProposerSlashing(h1, h2)),
    }


OLD_SHA256 = {
    "empty": "da5d57b7cc342b6cabadc1cfa35b2e366236db737bf6cafc81bda74c4d989245",
    "full": "3b8d3e777feb1f9a1a9ff688456a7bff6600b563c3bddd4562f383f0355f35be",
    "att": "477bae4f5c49cd0c6054c7ec223ac2ce7f6ede4c76d503bd602e666a9e373905",
    "slash": "3567e8904d73ae30abcbeea7b5a4165c1c393fd9b38d889786e4395931674678",
}
OLD_EMPTY_BODY = bytes.fromhex("f86980b860" + "00" * 96 + "c0" * 6)  # [0, 96 zero bytes, 6 x []]


def test_encodings_byte_identical_to_the_old_hand_written_codec() -> None:
    got = _vectors()
    assert got["empty"] == OLD_EMPTY_BODY
    assert {k: hashlib.sha256(v).hexdigest() for k, v in got.items()} == OLD_SHA256
    for name in ("full", "empty"):
        assert BeaconBody.decode(got[name]).encode() == got[name]


# -- strategies -------------------------------------------------------------------------

u64 = st.integers(0, 2**64 - 1)
root = st.binary(min_size=32, max_size=32)
blob = st.binary(max_size=100)
checkpoints = st.builds(Checkpoint, u64, root)
att_data = st.builds(AttestationData, u64, root, checkpoints, checkpoints)
attestations = st.builds(Attestation, att_data, st.lists(u64, max_size=5).map(tuple), blob)
headers = st.builds(SignedBlockHeader, u64, u64, root, blob)
deposits = st.builds(Deposit, blob, blob, u64, blob, u64)
exits = st.builds(ExitRequest, blob, blob)
withdrawals = st.builds(Withdrawal, u64, u64, blob, u64)
validators = st.builds(Validator, blob, blob, u64, u64, u64, u64, u64, st.booleans(), u64, st.booleans())
small = {"max_size": 2}
bodies = st.builds(
    BeaconBody,
    u64,
    blob,
    st.lists(attestations, **small).map(tuple),
    st.lists(st.builds(ProposerSlashing, headers, headers), **small).map(tuple),
    st.lists(st.builds(AttesterSlashing, attestations, attestations), **small).map(tuple),
    st.lists(deposits, **small).map(tuple),
    st.lists(exits, **small).map(tuple),
    st.lists(withdrawals, **small).map(tuple),
)
ALL_TYPES = [
    (Checkpoint, checkpoints),
    (AttestationData, att_data),
    (Attestation, attestations),
    (SignedBlockHeader, headers),
    (ProposerSlashing, st.builds(ProposerSlashing, headers, headers)),
    (AttesterSlashing, st.builds(AttesterSlashing, attestations, attestations)),
    (Deposit, deposits),
    (ExitRequest, exits),
    (Withdrawal, withdrawals),
    (Validator, validators),
    (BeaconBody, bodies),
]


@pytest.mark.parametrize(("cls", "strategy"), ALL_TYPES, ids=[c.__name__ for c, _ in ALL_TYPES])
def test_round_trip_every_type(cls: type, strategy: st.SearchStrategy[object]) -> None:
    @settings(max_examples=40, deadline=None)
    @given(strategy)
    def check(value: object) -> None:
        data = encode(value)
        assert decode_to(cls, data) == value
        assert encode(decode_to(cls, data)) == data

    check()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_random_bytes_raises_only_the_typed_error(data: bytes) -> None:
    for cls in (Checkpoint, Attestation, BeaconBody, Validator, _Outer):
        with contextlib.suppress(MalformedEncoding):
            decode_to(cls, data)


@settings(max_examples=200, deadline=None)
@given(bodies, st.integers(0, 10_000), st.integers(0, 255))
def test_decode_mutated_body_raises_only_the_typed_error(body: BeaconBody, pos: int, byte: int) -> None:
    data = bytearray(encode(body))
    data[pos % len(data)] = byte
    with contextlib.suppress(MalformedEncoding):
        decode_to(BeaconBody, bytes(data))


# -- each malformed case refused, naming class, field and problem -------------------------

GOOD = _Outer(True, b"xy", _Inner(Height(7), b"abcd"), (1, 2), (_Inner(Height(0), b"\x00" * 4),))


def _item() -> list[object]:
    return [1, b"xy", [7, b"abcd"], [1, 2], [[0, b"\x00" * 4]]]


def test_generic_round_trip_newtype_fixed_bool_nested() -> None:
    assert rlp.decode(encode(GOOD)) == rlp.decode(rlp.encode(_item()))
    assert decode_to(_Outer, encode(GOOD)) == GOOD


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda f: f.__setitem__(2, [b"\x00\x07", b"abcd"]), "_Inner.height: integer 0007 has leading zero"),
        (lambda f: f.__setitem__(3, [b"\x00", 2]), "_Outer.items[0]: integer 00 has leading zero"),
        (lambda f: f.__setitem__(0, 2), "_Outer.flag: boolean must be 0 or 1"),
        (lambda f: f.__setitem__(2, [7, b"abc"]), "_Inner.root: expected 4 bytes, got 3"),
        (lambda f: f.__setitem__(2, [7, b"abcd", b""]), "expected 2 fields, got 3"),
        (lambda f: f.pop(), "_Outer: expected 5 fields, got 4"),
        (lambda f: f.__setitem__(1, [b"xy"]), "_Outer.blob: expected a byte string, got a list"),
        (lambda f: f.__setitem__(0, [1]), "_Outer.flag: expected an integer byte string, got a list"),
        (lambda f: f.__setitem__(3, b"\x01\x02"), "_Outer.items: expected a list, got a byte string"),
        (lambda f: f.__setitem__(2, b"abcd"), "_Outer.inner (_Inner): expected a list of 2 fields"),
    ],
)
def test_malformed_cases_raise_typed_error(mutate: object, needle: str) -> None:
    fields = _item()
    mutate(fields)  # type: ignore[operator]
    with pytest.raises(MalformedEncoding, match=re.escape(needle)):
        decode_to(_Outer, rlp.encode(fields))


def test_non_canonical_rlp_and_trailing_bytes_refused() -> None:
    good = encode(Checkpoint(1, b"\x11" * 32))
    with pytest.raises(MalformedEncoding, match="Checkpoint: not canonical RLP"):
        decode_to(Checkpoint, good + b"\x00")
    with pytest.raises(MalformedEncoding, match="Checkpoint: not canonical RLP"):
        decode_to(Checkpoint, b"\x81\x05")  # single byte < 0x80 must encode as itself
    with pytest.raises(MalformedEncoding, match="expected bytes"):
        decode_to(Checkpoint, "00")  # type: ignore[arg-type]


def test_root_is_fixed_32_bytes() -> None:
    with pytest.raises(MalformedEncoding, match=r"Checkpoint\.root: expected 32 bytes, got 31"):
        decode_to(Checkpoint, rlp.encode([1, b"\x11" * 31]))


def test_negative_integer_refused_at_encode() -> None:
    with pytest.raises(MalformedEncoding, match="negative"):
        encode(Checkpoint(-1, b"\x11" * 32))


def test_beacon_body_decode_keeps_consensus_error_for_callers() -> None:
    bad = rlp.encode([b"\x00\x01", b"", [], [], [], [], [], []])
    with pytest.raises(ConsensusError, match=r"BeaconBody\.proposer_index: integer 0001 has leading zero"):
        BeaconBody.decode(bad)


def test_wire_integers_follow_the_same_rule() -> None:
    from layerlab.errors import PeerError
    from layerlab.l1.p2p.wire import as_int

    assert as_int(b"", "port") == 0
    assert as_int(b"\x01\x00", "port") == 256
    with pytest.raises(PeerError, match="port: integer 0001 has leading zero"):
        as_int(b"\x00\x01", "port")
    with pytest.raises(PeerError, match="port: expected an integer byte string, got a list"):
        as_int([b"\x01"], "port")
    with pytest.raises(PeerError, match="exceeds 32"):
        as_int(b"\x01" * 33, "port")


def _state() -> BeaconState:
    s = genesis_state(MINIMAL, [(b"\x01" * 48, b"\x02" * 20, 32 * 10**9)], b"\x03" * 32, 5)
    v = replace(s.validators[0], slashed=True, inactivity_score=7)
    return replace(
        s, validators=(v, s.validators[0]), block_roots=((5, b"\x03" * 32), (6, b"\x04" * 32)),
        previous_epoch_participation=(0, 7), current_epoch_participation=(3, 0),
        justification_bits=(True, False, True, False), finalized=Checkpoint(1, b"\x04" * 32),
        next_withdrawal_index=9, deposit_count=2,
    )


def test_state_encoding_byte_identical_to_version_1_on_disk() -> None:
    data = _state().encode()
    want = "30d11ff79dbf5638a59b07b6d36034e6dee413d032208a5ccb7b0f21e5f09838"
    assert hashlib.sha256(data).hexdigest() == want
    assert rlp.decode(data)[1][0] == b"minimal"  # preset name first, as version 1 stored it
    assert BeaconState.decode(data) == _state()


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda f: f.__setitem__(0, 2), "beacon state encoding version 2, expected 1"),
        (lambda f: f.pop(), "BeaconState: expected 18 fields, got 17"),
        (lambda f: f.__setitem__(4, b"\x03" * 31), "BeaconState.genesis_root: expected 32 bytes, got 31"),
        (lambda f: f.__setitem__(13, [1, 0, 1]), "BeaconState.justification_bits: expected 4 items, got 3"),
        (
            lambda f: f.__setitem__(9, [[5, b"\x03" * 32, b""]]),
            "BeaconState.block_roots[0]: expected 2 items, got 3",
        ),
        (lambda f: f[1].__setitem__(0, b"\xff"), "PosPreset.name: not UTF-8"),
        (lambda f: f[1].__setitem__(2, 0), "invalid preset in state"),
    ],
)
def test_state_malformed_cases_raise_consensus_error(mutate: object, needle: str) -> None:
    fields = rlp.decode(_state().encode())
    mutate(fields)  # type: ignore[operator]
    with pytest.raises(ConsensusError, match=re.escape(needle)):
        BeaconState.decode(rlp.encode(fields))
