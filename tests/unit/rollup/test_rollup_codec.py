"""Batch encodings: inbox form as the contract splits it, the compact form, compression.

Each layer must give back the exact bytes it was given (for every step kind, and for
garbage), refuse malformed input with MalformedEncoding and nothing else, and the compact
form must actually be smaller where it claims to be.
"""

from __future__ import annotations

import os
import zlib

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.errors import MalformedEncoding
from layerlab.l2.rollup.codec import (
    MAX_DECOMPRESSED,
    MAX_STEP_BYTES,
    MAX_STEPS,
    brotli_available,
    compress,
    decode_compact,
    decode_inbox,
    decode_varint,
    decompress,
    encode_compact,
    encode_inbox,
    encode_varint,
)
from layerlab.l2.rollup.machine import RollupState, apply_deposit, apply_step
from layerlab.l2.rollup.txs import (
    FORCED_KIND,
    TX_TYPES,
    Deposit,
    L2Tx,
    SignedTx,
    Transfer,
    rollup_domain,
    sign_tx,
)

DOMAIN = rollup_domain(1337, b"\x5f" * 20)
KEYS = [bytes([i + 1]) * 32 for i in range(6)]
ADDR = [bytes.fromhex(Account.from_key(k).address[2:]) for k in KEYS]
KNOWN = [bytes([0xA0 + i]) * 20 for i in range(8)]
NEW = [bytes([0xB0 + i]) * 20 for i in range(4)]
ALGORITHMS = ["stored", "zlib", *(["brotli"] if brotli_available() else [])]
TAGS = {"stored": 0, "zlib": 1, "brotli": 2}
_WIDTH = {"uint32": 32, "uint64": 64, "uint256": 256}


def funded_state(addresses: list[bytes]) -> RollupState:
    state = RollupState()
    for address in addresses:
        receipt = apply_deposit(state, Deposit(state.next_deposit, address, address, b"\0" * 20,
                                               0, 10**20))
        assert receipt.ok
    return state


@pytest.fixture(scope="module")
def state() -> RollupState:
    return funded_state(KNOWN)


LATER = funded_state([*KNOWN, *NEW])
EARLIER = funded_state(KNOWN[:3])


# -- strategies -------------------------------------------------------------------------
addresses = st.sampled_from(KNOWN + NEW) | st.binary(min_size=20, max_size=20)
signatures = st.builds(lambda rs, v: rs + bytes([v]), st.binary(min_size=64, max_size=64),
                       st.sampled_from([27, 28]) | st.integers(0, 255))


@st.composite
def tx_steps(draw: st.DrawFn) -> bytes:
    cls = TX_TYPES[draw(st.sampled_from(sorted(TX_TYPES)))]
    values: dict[str, object] = {}
    for kind, name in cls.STRUCT.members:
        if kind == "address":
            values[name] = draw(addresses)
        else:
            bits = _WIDTH[kind]
            values[name] = draw(st.integers(0, 2**bits - 1) | st.integers(0, 300)
                                | st.sampled_from([0, 2**bits - 1])
                                | st.builds(lambda m, e: m * 10**e, st.integers(0, 10**6),
                                            st.integers(0, 76)).filter(lambda v, b=bits: v >> b == 0))
    tx: L2Tx = cls(**values)  # type: ignore[arg-type]
    step = SignedTx(tx, draw(signatures)).encode()
    return bytes([FORCED_KIND]) + step if draw(st.booleans()) else step


@st.composite
def deposit_steps(draw: st.DrawFn) -> bytes:
    return Deposit(draw(st.integers(0, 2**64 - 1)), draw(addresses), draw(addresses),
                   draw(addresses), draw(st.integers(0, 2**32 - 1)),
                   draw(st.integers(0, 2**256 - 1))).encode()


garbage = st.binary(min_size=1, max_size=300) | st.builds(
    lambda kind, body: bytes([kind]) + body, st.sampled_from([0xD0, 0xF0, *TX_TYPES]),
    st.binary(max_size=200))
any_steps = st.lists(tx_steps() | deposit_steps() | garbage, min_size=1, max_size=40)


# -- inbox form -------------------------------------------------------------------------
@given(st.lists(st.binary(min_size=1, max_size=600), min_size=1, max_size=30))
def test_inbox_round_trips(steps: list[bytes]) -> None:
    data = encode_inbox(steps)
    assert len(data) == sum(2 + len(s) for s in steps)
    assert decode_inbox(data) == steps


def test_inbox_is_the_contracts_length_prefix_format() -> None:
    assert encode_inbox([b"\x01\x02", b"\xd0" * 300]) == b"\x00\x02\x01\x02\x01\x2c" + b"\xd0" * 300


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\x00\x01", b"\x00\x00\x05", b"\x10\x01" + b"\x00" * 4097,
    b"\x00\x05\x01\x02", b"\x00\x01\x07\x00",
], ids=["empty", "one byte", "prefix only", "zero length", "oversized step", "past the end",
        "truncated second prefix"])
def test_inbox_refuses_what_the_contract_refuses(data: bytes) -> None:
    with pytest.raises(MalformedEncoding):
        decode_inbox(data)


def test_inbox_limits() -> None:
    assert decode_inbox(encode_inbox([b"\x01" * MAX_STEP_BYTES])) == [b"\x01" * MAX_STEP_BYTES]
    assert len(decode_inbox(encode_inbox([b"\x01"] * MAX_STEPS))) == MAX_STEPS
    for bad in ([], [b""], [b"\x01" * (MAX_STEP_BYTES + 1)], [b"\x01"] * (MAX_STEPS + 1)):
        with pytest.raises(MalformedEncoding):
            encode_inbox(bad)
    with pytest.raises(MalformedEncoding):
        decode_inbox(b"\x00\x01\x01" * (MAX_STEPS + 1))


# -- varints ----------------------------------------------------------------------------
@given(st.integers(0, 2**256 - 1))
def test_varint_round_trips_and_is_minimal(value: int) -> None:
    data = encode_varint(value)
    assert decode_varint(data, 0, 256) == (value, len(data))
    assert len(data) == max(1, -(-value.bit_length() // 7))


@pytest.mark.parametrize(("data", "bits"), [
    (b"", 64), (b"\x80", 64), (b"\x80\x00", 64), (b"\x81\x00", 64),
    (b"\x80\x80\x80\x80\x10", 32), (b"\xff" * 10 + b"\x01", 64),
])
def test_varint_refusals(data: bytes, bits: int) -> None:
    with pytest.raises(MalformedEncoding):
        decode_varint(data, 0, bits)


# -- compact form -----------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(any_steps)
def test_compact_round_trips_every_kind_and_garbage(state: RollupState, steps: list[bytes]) -> None:
    assert decode_compact(encode_compact(steps, state), state) == steps


@settings(max_examples=100, deadline=None)
@given(st.lists(tx_steps(), min_size=1, max_size=10))
def test_compact_decodes_the_same_against_a_later_state(state: RollupState,
                                                        steps: list[bytes]) -> None:
    """Accounts are append-only, so a batch encoded at ``base`` accounts decodes the same
    against any state with more; fewer is refused."""
    data = encode_compact(steps, state)
    assert decode_compact(data, LATER) == steps
    with pytest.raises(MalformedEncoding):
        decode_compact(data, EARLIER)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_compact_decoder_raises_only_malformed_encoding(state: RollupState, data: bytes) -> None:
    try:
        steps = decode_compact(b"\x01" + data, state)
    except MalformedEncoding:
        return
    assert encode_inbox(steps)  # a valid batch: every step 1..4096 bytes


def test_every_truncation_and_extension_is_refused(state: RollupState) -> None:
    steps = [
        Deposit(9, KNOWN[0], NEW[0], b"\0" * 20, 0, 5).encode(),
        SignedTx(Transfer(nonce=1, token=0, to=NEW[0], amount=10**18), b"\x11" * 64 + b"\x1c")
        .encode(),
        b"\xf0" + SignedTx(Transfer(nonce=0, token=0, to=NEW[1], amount=7), b"\x22" * 64
                           + b"\x1b").encode(),
        b"\x42garbage",
    ]
    data = encode_compact(steps, state)
    assert decode_compact(data, state) == steps
    for cut in range(len(data)):
        with pytest.raises(MalformedEncoding):
            decode_compact(data[:cut], state)
    with pytest.raises(MalformedEncoding):
        decode_compact(data + b"\x00", state)


def _transfer(to: bytes, amount: int = 5, v: int = 27) -> bytes:
    return SignedTx(Transfer(nonce=0, token=0, to=to, amount=amount), b"\x33" * 64 + bytes([v])).encode()


@pytest.mark.parametrize(("mutate", "why"), [
    (lambda d: b"\x02" + d[1:], "version"),
    (lambda d: d[:2] + b"\x00" + d[3:], "zero steps"),
    (lambda d: d[:2] + b"\x02" + d[3:], "count above the entries"),
    (lambda d: d[:3] + b"\x40" + d[4:], "unknown tag"),
    (lambda d: d[:3] + b"\xa1" + d[4:], "reserved tag bit"),
    (lambda d: d[:3] + b"\x88" + d[4:], "kind 0"),
    (lambda d: d[:4] + b"\x80\x00" + d[5:], "non-minimal token varint"),
    (lambda d: d[:4] + b"\x80\x80\x80\x80\x10" + d[5:], "token above uint32"),
    (lambda d: d[:5] + b"\x7f" + d[6:], "address position past the dictionary"),
    (lambda d: d[:5] + b"\x00" + KNOWN[2] + d[6:], "literal address in the dictionary"),
    (lambda d: d[:6] + encode_varint(10 << 5) + d[8:], "amount 10e0 instead of 1e1"),
    (lambda d: d[:6] + encode_varint(3) + d[8:], "amount 0e3"),
    (lambda d: d[:6] + encode_varint(2**255 << 5 | 1) + d[8:], "amount above uint256"),
    (lambda d: d[:6] + b"\x80" * 40 + b"\x01" + d[8:], "amount varint too long"),
])
def test_compact_refusals(state: RollupState, mutate: object, why: str) -> None:
    data = encode_compact([_transfer(KNOWN[1])], state)
    # tag Transfer v=27, token 0, KNOWN[1] at position 1, amount 5e0, nonce 0, r||s
    assert data[3:9] == b"\x81\x00\x02\xa0\x01\x00" and len(data) == 9 + 64
    assert callable(mutate)
    with pytest.raises(MalformedEncoding):
        decode_compact(mutate(data), state)


def test_compact_refuses_empty_verbatim_and_empty_batches(state: RollupState) -> None:
    with pytest.raises(MalformedEncoding):
        decode_compact(b"\x01\x08\x01\x00\x00", state)
    with pytest.raises(MalformedEncoding):
        decode_compact(b"", state)
    with pytest.raises(MalformedEncoding):
        encode_compact([], state)
    with pytest.raises(MalformedEncoding):
        encode_compact([b""], state)


@pytest.mark.parametrize(("amount", "packed"), [
    (0, b"\x00"), (1, b"\x20"), (10**18, b"\x32"), (5 * 10**16, b"\xb0\x01"),
    (10**40, encode_varint(10**9 << 5 | 31)), (123456789, encode_varint(123456789 << 5)),
])
def test_amounts_are_packed_in_decimal_floating_point(state: RollupState, amount: int,
                                                      packed: bytes) -> None:
    data = encode_compact([_transfer(KNOWN[1], amount=amount)], state)
    assert data[6:6 + len(packed)] == packed
    assert decode_compact(data, state) == [_transfer(KNOWN[1], amount=amount)]


def test_a_bad_v_and_malformed_steps_go_verbatim(state: RollupState) -> None:
    odd = _transfer(KNOWN[0], v=0)
    data = encode_compact([odd, b"\xd0short"], state)
    assert data[3] == 0x00 and decode_compact(data, state) == [odd, b"\xd0short"]


def test_an_address_new_in_the_batch_is_named_by_its_future_index() -> None:
    """The dictionary mirrors the machine: applied in order, each address credited first
    in the batch gets the L2 index the decoder already used for it."""
    state = funded_state(ADDR[:2])
    nonce = [0, 0]
    stranger = b"\x77" * 20

    def pay(who: int, to: bytes) -> bytes:
        step = sign_tx(Transfer(nonce=nonce[who], token=0, to=to, amount=10), KEYS[who],
                       DOMAIN).encode()
        nonce[who] += 1
        return step

    steps = [pay(0, ADDR[2]), Deposit(2, ADDR[5], ADDR[3], b"\0" * 20, 0, 10**18).encode(),
             pay(1, stranger), pay(0, ADDR[2]), pay(1, stranger), pay(0, ADDR[3])]
    data = encode_compact(steps, state)
    assert decode_compact(data, state) == steps
    entry_lengths = [len(encode_compact(steps[: i + 1], state)) for i in range(len(steps))]
    sizes = [b - a for a, b in zip([3, *entry_lengths], entry_lengths, strict=False)]
    # the first mention of a new address writes it (21 bytes), later ones a 1-byte index
    assert sizes[0] - sizes[3] == 20 and sizes[2] - sizes[4] == 20
    for step in steps:
        assert apply_step(state, step, DOMAIN).ok
    assert state.owners[2:] == [ADDR[2], ADDR[3], stranger]


def test_compact_batch_of_100_transfers_is_much_smaller(state: RollupState) -> None:
    """100 transfers between known accounts with 18-digit amounts: 132 bytes each in the
    inbox form; compact keeps tag + token + index + amount + nonce + r||s, under 80."""
    rng = __import__("random").Random(7)
    steps = [SignedTx(Transfer(nonce=rng.randrange(1000), token=0, to=rng.choice(KNOWN),
                               amount=rng.randrange(10**17, 10**19)),
                      os.urandom(64) + bytes([rng.choice([27, 28])])).encode()
             for _ in range(100)]
    inbox, compact = encode_inbox(steps), encode_compact(steps, state)
    assert len(compact) < len(inbox)
    assert len(inbox) == 132 * 100
    assert len(compact) <= 80 * 100
    assert decode_compact(compact, state) == steps
    for algorithm in ALGORITHMS:
        assert decompress(compress(compact, algorithm)) == compact


# -- compression ------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=3000) | st.builds(lambda b, n: b * n, st.binary(min_size=1,
                                                                                max_size=8),
                                                  st.integers(1, 500)))
def test_compression_round_trips(algorithm: str, data: bytes) -> None:
    packed = compress(data, algorithm)
    assert packed[0] == TAGS[algorithm]
    assert decompress(packed) == data
    smallest = compress(data, "smallest")
    assert len(smallest) <= len(packed) and decompress(smallest) == data


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_zip_bomb_is_refused(algorithm: str) -> None:
    """Past the largest valid batch (about 16 MiB), output is refused, however small the
    input: 40 bytes of brotli or 17 kB of zlib inflate to 17 MiB of zeros."""
    size = MAX_DECOMPRESSED + 1
    assert size > MAX_STEPS * (2 + MAX_STEP_BYTES)
    bomb = compress(bytes(size), algorithm)
    if algorithm != "stored":
        assert len(bomb) < 40_000
    with pytest.raises(MalformedEncoding, match="exceeds"):
        decompress(bomb)
    assert decompress(bomb, limit=size) == bytes(size)
    small = compress(b"\0" * 1001, algorithm)
    with pytest.raises(MalformedEncoding, match="exceeds"):
        decompress(small, limit=1000)
    assert decompress(small, limit=1001) == b"\0" * 1001


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if a != "stored"])
def test_corrupt_truncated_and_trailing_streams_are_refused(algorithm: str) -> None:
    packed = compress(os.urandom(500) + b"abc" * 300, algorithm)
    for bad in (packed[:-1], packed[:len(packed) // 2], packed + b"\x00",
                packed[:1] + b"\xff" * 20):
        with pytest.raises(MalformedEncoding):
            decompress(bad)


def test_unknown_algorithms_are_refused() -> None:
    for bad in (b"", b"\x07abc"):
        with pytest.raises(MalformedEncoding):
            decompress(bad)
    with pytest.raises(MalformedEncoding):
        compress(b"x", "lzma")
    assert decompress(b"\x01" + zlib.compress(b"hello")) == b"hello"
