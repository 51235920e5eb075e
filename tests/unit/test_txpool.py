"""The transaction pool, without a node: admission, replacement, ordering, pruning.

Decoding tests use really signed transactions (eth-account) and py-evm's Cancun decoder.
Ordering and bookkeeping tests build :class:`PooledTransaction` values directly, so that
hypothesis can explore many pools quickly; the pool reads nothing of ``tx`` there but
``value``. A fake head state gives nonces and balances.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import rlp
from eth.vm.forks.cancun import CancunVM
from eth_account import Account
from eth_hash.auto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.errors import InvalidTransaction
from layerlab.l1.txpool import MAX_TX_SIZE, PooledTransaction, TxPool

CHAIN_ID = 31337
GWEI = 10**9
BASE_FEE = GWEI
GAS_LIMIT = 30_000_000
DEV = derive_dev_accounts()
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass
class FakeState:
    nonces: dict[bytes, int] = field(default_factory=dict)
    balances: dict[bytes, int] = field(default_factory=dict)
    default_balance: int = 10**24

    def get_nonce(self, address: bytes) -> int:
        return self.nonces.get(address, 0)

    def get_balance(self, address: bytes) -> int:
        return self.balances.get(address, self.default_balance)


def new_pool(**kwargs: Any) -> TxPool:
    return TxPool(CHAIN_ID, CancunVM.get_transaction_builder(), **kwargs)


def sign(key: bytes = DEV[0].private_key, **overrides: Any) -> bytes:
    tx: dict[str, Any] = {"chainId": CHAIN_ID, "nonce": 0, "to": DEV[9].address, "value": 1,
                          "gas": 21_000, "maxFeePerGas": 10 * GWEI, "maxPriorityFeePerGas": GWEI}
    tx.update(overrides)
    if "gasPrice" in tx:
        tx.pop("maxFeePerGas")
        tx.pop("maxPriorityFeePerGas")
    return bytes(Account.sign_transaction(tx, key).raw_transaction)


def reason_of(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidTransaction) as exc:
        fn(*args, **kwargs)
    return exc.value.reason


def ptx(sender: int, nonce: int, tip: int = GWEI, fee: int = 10 * GWEI, gas: int = 21_000,
        value: int = 0, salt: int = 0) -> PooledTransaction:
    """A synthetic pooled transaction from sender number ``sender``."""
    address = bytes([sender + 1]) * 20
    digest = keccak(repr((sender, nonce, tip, fee, gas, value, salt)).encode())
    return PooledTransaction(tx=SimpleNamespace(value=value), raw=b"", hash=digest,  # type: ignore[arg-type]
                             sender=address, nonce=nonce, gas=gas, max_fee=fee,
                             max_priority_fee=tip)


def add(pool: TxPool, p: PooledTransaction, state: FakeState | None = None,
        base_fee: int = BASE_FEE) -> PooledTransaction | None:
    return pool.add(p, state or FakeState(), base_fee=base_fee, block_gas_limit=GAS_LIMIT)


# -- decode: checks that need no state ------------------------------------------------------
@pytest.mark.parametrize("overrides", [
    {}, {"gasPrice": 5 * GWEI}, {"type": 1, "gasPrice": 5 * GWEI, "accessList": []},
    {"to": None, "data": b"\x60\x00", "gas": 60_000},
])
def test_decode_accepts_every_supported_kind(overrides: dict[str, Any]) -> None:
    raw = sign(DEV[3].private_key, **overrides)
    decoded = new_pool().decode(raw)
    assert decoded.sender == DEV[3].address_bytes
    assert decoded.hash == keccak(raw)
    assert decoded.raw == raw and decoded.nonce == 0


def test_decode_accepts_pre_eip155_legacy_transactions() -> None:
    """Unprotected (v = 27/28) transactions carry no chain id and are accepted, as Anvil."""
    unsigned = CancunVM.create_unsigned_transaction(
        nonce=0, gas_price=5 * GWEI, gas=21_000, to=DEV[9].address_bytes, value=1, data=b"")
    from eth_keys import keys

    signed = unsigned.as_signed_transaction(keys.PrivateKey(DEV[4].private_key))
    decoded = new_pool().decode(rlp.encode(signed))
    assert decoded.sender == DEV[4].address_bytes
    assert decoded.tx.chain_id is None


def test_decode_refuses_empty_oversized_and_garbage() -> None:
    pool = new_pool()
    assert reason_of(pool.decode, b"") == "malformed"
    assert reason_of(pool.decode, b"\x00" * (MAX_TX_SIZE + 1)) == "oversized"
    assert reason_of(pool.decode, b"\xc0") == "malformed"
    assert reason_of(pool.decode, b"\x02\xc0") == "malformed"
    assert reason_of(pool.decode, b"\x12" + b"\x00" * 40) == "unsupported-type"
    assert reason_of(pool.decode, b"\x7f") == "unsupported-type"
    assert reason_of(pool.decode, sign() + b"\x00") == "malformed"  # trailing bytes
    assert reason_of(pool.decode, sign()[:-3]) == "malformed"


def test_decode_size_limit_is_inclusive() -> None:
    raw = sign(gas=5_000_000, data=b"\x01" * (MAX_TX_SIZE - 200))
    padded = sign(gas=5_000_000, data=b"\x01" * (MAX_TX_SIZE - 200 + (MAX_TX_SIZE - len(raw))))
    assert len(padded) == MAX_TX_SIZE
    assert new_pool().decode(padded).gas == 5_000_000
    bigger = sign(gas=5_000_000, data=b"\x01" * (MAX_TX_SIZE - 199 + (MAX_TX_SIZE - len(raw))))
    assert reason_of(new_pool().decode, bigger) == "oversized"


def test_decode_refuses_wrong_chain_id() -> None:
    for kind in ({}, {"gasPrice": GWEI}):
        with pytest.raises(InvalidTransaction) as exc:
            new_pool().decode(sign(chainId=1, **kind))
        assert exc.value.reason == "wrong-chain-id"
        assert str(exc.value) == f"invalid chain id for signer: have 1 want {CHAIN_ID}"


@pytest.mark.parametrize(("index", "value"), [
    (9, b"\x02"),                                   # y parity out of range
    (10, b""),                                      # r = 0
    (11, b""),                                      # s = 0
    (10, SECP256K1_N.to_bytes(32, "big")),          # r = n
    (11, (SECP256K1_N - 1).to_bytes(32, "big")),    # s > n / 2 (EIP-2)
])
def test_decode_refuses_bad_typed_signatures(index: int, value: bytes) -> None:
    fields = list(rlp.decode(sign()[1:]))
    fields[index] = value
    assert reason_of(new_pool().decode, b"\x02" + rlp.encode(fields)) in (
        "bad-signature", "malformed", "invalid")


@pytest.mark.parametrize(("index", "value"), [
    (6, (CHAIN_ID * 2 + 40).to_bytes(4, "big")),    # v that is neither 27/28 nor EIP-155
    (7, b""), (8, b""), (8, (SECP256K1_N - 1).to_bytes(32, "big")),
])
def test_decode_refuses_bad_legacy_signatures(index: int, value: bytes) -> None:
    fields = list(rlp.decode(sign(gasPrice=GWEI)))
    fields[index] = value
    assert reason_of(new_pool().decode, rlp.encode(fields)) in (
        "bad-signature", "malformed", "invalid", "wrong-chain-id")


def test_decode_checks_intrinsic_gas_and_tip_cap() -> None:
    pool = new_pool()
    assert reason_of(pool.decode, sign(gas=20_999)) == "intrinsic-gas"
    # calldata: 16 per non-zero byte, 4 per zero byte (EIP-2028)
    assert pool.decode(sign(gas=21_000 + 16 + 4, data=b"\x01\x00")).gas == 21_020
    assert reason_of(pool.decode, sign(gas=21_000 + 16 + 3, data=b"\x01\x00")) == "intrinsic-gas"
    # contract creation: 32000 more, and EIP-3860 initcode words
    assert reason_of(pool.decode, sign(to=None, gas=53_000, data=b"\x60")) == "intrinsic-gas"
    assert reason_of(pool.decode, sign(maxFeePerGas=GWEI, maxPriorityFeePerGas=2 * GWEI)) \
        == "tip-above-cap"


# -- add: checks against the head state ------------------------------------------------------
def test_add_checks_in_geth_order() -> None:
    pool = new_pool(nonce_gap_limit=4)
    state = FakeState(nonces={bytes([1]) * 20: 5}, balances={bytes([1]) * 20: 10**18})
    assert reason_of(pool.add, ptx(0, 5, gas=GAS_LIMIT + 1), state, base_fee=BASE_FEE,
                     block_gas_limit=GAS_LIMIT) == "gas-limit"
    assert reason_of(add, pool, ptx(0, 5, fee=BASE_FEE - 1, tip=0), state) == "fee-cap-too-low"
    assert reason_of(add, pool, ptx(0, 4), state) == "nonce-too-low"
    assert reason_of(add, pool, ptx(0, 5 + 4 + 1), state) == "nonce-gap"
    assert add(pool, ptx(0, 5 + 4), state) is None  # exactly at the gap limit: queued
    assert reason_of(add, pool, ptx(0, 5, value=10**18), state) == "insufficient-funds"
    p = ptx(0, 5)
    add(pool, p, state)
    assert reason_of(add, pool, p, state) == "already-known"
    assert len(pool) == 2 and p.hash in pool and pool.get(p.hash) is p


def test_fee_cap_equal_to_base_fee_is_admitted() -> None:
    pool = new_pool()
    add(pool, ptx(0, 0, fee=BASE_FEE, tip=0))
    assert len(pool) == 1


def test_gap_limit_counts_from_the_first_missing_nonce() -> None:
    pool = new_pool(nonce_gap_limit=2)
    state = FakeState()
    for n in range(3):
        add(pool, ptx(0, n), state)
    # next expected is 3, so 5 is the furthest allowed
    add(pool, ptx(0, 5), state)
    assert reason_of(add, pool, ptx(0, 6), state) == "nonce-gap"
    assert pool.sender_nonces(bytes([1]) * 20) == [0, 1, 2, 5]


def test_insufficient_funds_counts_earlier_pooled_transactions() -> None:
    sender = bytes([1]) * 20
    cost = 21_000 * 10 * GWEI
    state = FakeState(balances={sender: 3 * cost + 5})
    pool = new_pool()
    add(pool, ptx(0, 0), state)
    add(pool, ptx(0, 1), state)
    add(pool, ptx(0, 2, value=5), state)
    assert reason_of(add, pool, ptx(0, 3), state) == "insufficient-funds"
    # filling a gap below them needs only the cost of the ones before it
    pool2 = new_pool()
    add(pool2, ptx(0, 0), state)
    add(pool2, ptx(0, 2), state)
    add(pool2, ptx(0, 1, value=cost + 5), state)  # 0 and 1 together: 2 cost + 5 + cost
    assert len(pool2) == 3


def test_stale_pooled_transactions_do_not_count_against_the_balance() -> None:
    """After the state nonce moves past pooled transactions (a block, anvil_setNonce), their
    cost is no longer the sender's to pay: only nonces from the state nonce on count."""
    sender = bytes([1]) * 20
    cost = 21_000 * 10 * GWEI
    state = FakeState(balances={sender: 2 * cost})
    pool = new_pool()
    add(pool, ptx(0, 0), state)
    add(pool, ptx(0, 1), state)
    state.nonces[sender] = 2  # both executed elsewhere, not yet pruned
    add(pool, ptx(0, 2), state)
    add(pool, ptx(0, 3), state)
    assert pool.sender_nonces(sender) == [0, 1, 2, 3]


# -- replacement -------------------------------------------------------------------------
@pytest.mark.parametrize(("fee", "tip", "accepted"), [
    (11 * GWEI, 11 * GWEI // 10, True),             # exactly +10% on both
    (20 * GWEI, 2 * GWEI, True),
    (11 * GWEI - 1, 2 * GWEI, False),               # cap short by one wei
    (20 * GWEI, 11 * GWEI // 10 - 1, False),        # tip short by one wei
    (10 * GWEI, GWEI, False),                       # same price
    (9 * GWEI, 5 * GWEI, False),
])
def test_replacement_needs_ten_percent_on_cap_and_tip(fee: int, tip: int, accepted: bool) -> None:
    pool = new_pool()
    old = ptx(0, 0, fee=10 * GWEI, tip=GWEI)
    add(pool, old)
    new = ptx(0, 0, fee=fee, tip=tip, salt=1)
    if accepted:
        assert add(pool, new) is old
        assert old.hash not in pool and new.hash in pool
        assert pool.pending(FakeState())[new.sender] == [new]
    else:
        with pytest.raises(InvalidTransaction) as exc:
            add(pool, new)
        assert exc.value.reason == "replacement-underpriced"
        assert str(exc.value).startswith("replacement transaction underpriced")
        assert old.hash in pool and new.hash not in pool
    assert len(pool) == 1


def test_replacement_bump_is_configurable_and_ignores_capacity() -> None:
    pool = new_pool(price_bump_percent=50, capacity=1)
    add(pool, ptx(0, 0, fee=10 * GWEI, tip=2 * GWEI))
    assert reason_of(add, pool, ptx(0, 0, fee=14 * GWEI, tip=3 * GWEI, salt=1)) \
        == "replacement-underpriced"
    add(pool, ptx(0, 0, fee=15 * GWEI, tip=3 * GWEI, salt=2))  # a full pool still replaces
    assert reason_of(add, pool, ptx(1, 0)) == "pool-full"


def test_replacement_frees_the_old_cost() -> None:
    sender = bytes([1]) * 20
    state = FakeState(balances={sender: 21_000 * 30 * GWEI})
    pool = new_pool()
    add(pool, ptx(0, 0, fee=10 * GWEI), state)
    add(pool, ptx(0, 0, fee=20 * GWEI, tip=2 * GWEI, salt=1), state)  # cost now 20 gwei/gas
    add(pool, ptx(0, 1, fee=10 * GWEI), state)  # 20 + 10 fits 30; 10 + 20 + 10 would not
    assert pool.sender_nonces(sender) == [0, 1]


# -- pending, selection ---------------------------------------------------------------------
def test_pending_is_the_gap_free_run_from_the_state_nonce() -> None:
    pool = new_pool()
    state = FakeState(nonces={bytes([1]) * 20: 2})
    for n in (2, 3, 5):
        add(pool, ptx(0, n), state)
    add(pool, ptx(1, 1), state)  # sender 1 is at nonce 0: queued
    pending = pool.pending(state)
    assert [p.nonce for p in pending[bytes([1]) * 20]] == [2, 3]
    assert bytes([2]) * 20 not in pending


def test_select_orders_by_tip_across_senders_and_by_nonce_within() -> None:
    pool = new_pool()
    a0, a1 = ptx(0, 0, tip=1 * GWEI), ptx(0, 1, tip=9 * GWEI)
    b0, b1 = ptx(1, 0, tip=5 * GWEI), ptx(1, 1, tip=2 * GWEI)
    c0 = ptx(2, 0, tip=3 * GWEI)
    for p in (a1, a0, b1, b0, c0):  # insertion order does not matter
        add(pool, p)
    chosen = pool.select(FakeState(), base_fee=BASE_FEE, gas_limit=GAS_LIMIT)
    # b0 (5), c0 (3), b1 (2), a0 (1) unlocks a1 (9)
    assert chosen == [b0, c0, b1, a0, a1]


def test_select_uses_the_effective_tip_at_the_base_fee() -> None:
    """A big tip with a fee cap just over the base fee pays less than a modest full tip."""
    pool = new_pool()
    capped = ptx(0, 0, tip=50 * GWEI, fee=BASE_FEE + GWEI // 2)   # effective tip 0.5 gwei
    modest = ptx(1, 0, tip=GWEI, fee=10 * GWEI)                    # effective tip 1 gwei
    add(pool, capped)
    add(pool, modest)
    assert pool.select(FakeState(), base_fee=BASE_FEE, gas_limit=GAS_LIMIT) == [modest, capped]


def test_select_leaves_underpriced_and_blocked_transactions_waiting() -> None:
    pool = new_pool()
    a0, a1, a2 = ptx(0, 0), ptx(0, 1, fee=2 * GWEI, tip=GWEI), ptx(0, 2)
    b0 = ptx(1, 0, fee=3 * GWEI, tip=GWEI)
    for p in (a0, a1, a2, b0):
        add(pool, p)
    chosen = pool.select(FakeState(), base_fee=5 * GWEI, gas_limit=GAS_LIMIT)
    assert chosen == [a0]  # a1's cap is below 5 gwei; a2 waits behind it; b0 as well
    assert len(pool) == 4  # selection does not remove


def test_select_respects_gas_limit_and_max_count() -> None:
    pool = new_pool()
    big = ptx(0, 0, tip=9 * GWEI, gas=200_000)
    small = [ptx(1, n, tip=GWEI, gas=21_000) for n in range(5)]
    for p in (big, *small):
        add(pool, p)
    chosen = pool.select(FakeState(), base_fee=BASE_FEE, gas_limit=100_000)
    assert chosen == small[:4]  # big does not fit; four 21k transfers do
    assert pool.select(FakeState(), base_fee=BASE_FEE, gas_limit=GAS_LIMIT, max_count=2) \
        == [big, small[0]]


def test_remove_and_prune() -> None:
    pool = new_pool()
    state = FakeState()
    ps = [ptx(0, n) for n in range(4)] + [ptx(1, 0)]
    for p in ps:
        add(pool, p, state)
    assert pool.remove([ps[1].hash, b"\x00" * 32]) == [ps[1]]
    assert pool.sender_nonces(ps[0].sender) == [0, 2, 3]
    state.nonces[ps[0].sender] = 3
    pruned = pool.prune(state, [ps[0].sender, ps[4].sender])
    assert sorted(p.nonce for p in pruned) == [0, 2]
    assert pool.sender_nonces(ps[0].sender) == [3]
    assert pool.sender_nonces(ps[4].sender) == [0]  # its state nonce is still 0
    assert len(pool) == 2
    pool.clear()
    assert len(pool) == 0 and list(pool.all()) == []


# -- properties ------------------------------------------------------------------------------
pool_txs = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 6), st.integers(0, 20), st.integers(1, 30),
              st.sampled_from([21_000, 50_000, 300_000])),
    max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=pool_txs, state_nonces=st.lists(st.integers(0, 2), min_size=4, max_size=4),
       base_fee_gwei=st.integers(1, 15), gas_limit=st.sampled_from([100_000, 400_000, GAS_LIMIT]))
def test_select_is_a_greedy_tip_order_over_gap_free_runs(
    specs: list[tuple[int, int, int, int, int]], state_nonces: list[int], base_fee_gwei: int,
    gas_limit: int,
) -> None:
    state = FakeState(nonces={bytes([s + 1]) * 20: n for s, n in enumerate(state_nonces)})
    pool = new_pool()
    for sender, nonce, tip, fee, gas in specs:
        with contextlib.suppress(InvalidTransaction):  # refusals are tested elsewhere
            add(pool, ptx(sender, nonce, tip=tip * GWEI, fee=max(fee, tip) * GWEI, gas=gas),
                state, base_fee=0)
    base_fee = base_fee_gwei * GWEI
    chosen = pool.select(state, base_fee=base_fee, gas_limit=gas_limit)

    assert sum(p.gas for p in chosen) <= gas_limit
    assert all(p.max_fee >= base_fee for p in chosen)
    assert len({p.hash for p in chosen}) == len(chosen)
    by_sender: dict[bytes, list[int]] = {}
    for p in chosen:
        by_sender.setdefault(p.sender, []).append(p.nonce)
    for sender, nonces in by_sender.items():
        start = state.get_nonce(sender)
        assert nonces == list(range(start, start + len(nonces)))
    # greedy: nothing chosen later, from another sender, was already available with a
    # higher tip when an earlier transaction was chosen
    position = {p.hash: i for i, p in enumerate(chosen)}
    for j, later in enumerate(chosen):
        previous = [p for p in chosen if p.sender == later.sender and p.nonce == later.nonce - 1]
        available_from = position[previous[0].hash] + 1 if previous else 0
        for i in range(available_from, j):
            if chosen[i].sender != later.sender:
                assert chosen[i].effective_tip(base_fee) >= later.effective_tip(base_fee)
    # with room for everything, everything payable is chosen
    if gas_limit == GAS_LIMIT:
        for sender, run in pool.pending(state).items():
            payable = []
            for p in run:
                if p.max_fee < base_fee:
                    break
                payable.append(p.nonce)
            assert by_sender.get(sender, []) == payable


class PoolMachine(RuleBasedStateMachine):
    """The pool against a model: per sender a nonce -> transaction map and the geth rules."""

    SENDERS = 3
    GAP = 3

    def __init__(self) -> None:
        super().__init__()
        self.pool = new_pool(nonce_gap_limit=self.GAP)
        self.state = FakeState(default_balance=0)
        self.model: dict[bytes, dict[int, PooledTransaction]] = {}
        self.salt = 0
        for s in range(self.SENDERS):
            self.state.balances[bytes([s + 1]) * 20] = 21_000 * 25 * GWEI

    def expected_reason(self, p: PooledTransaction) -> str | None:
        mine = self.model.get(p.sender, {})
        state_nonce = self.state.get_nonce(p.sender)
        if p.nonce < state_nonce:
            return "nonce-too-low"
        expected = state_nonce
        while expected in mine:
            expected += 1
        if p.nonce > expected + self.GAP:
            return "nonce-gap"
        committed = sum(q.max_cost for n, q in mine.items() if state_nonce <= n < p.nonce)
        if self.state.get_balance(p.sender) < committed + p.max_cost:
            return "insufficient-funds"
        old = mine.get(p.nonce)
        if old is not None and (p.max_fee * 100 < old.max_fee * 110
                                or p.max_priority_fee * 100 < old.max_priority_fee * 110):
            return "replacement-underpriced"
        return None

    @rule(sender=st.integers(0, SENDERS - 1), nonce=st.integers(0, 8),
          tip=st.integers(0, 10), fee=st.integers(1, 20), value=st.integers(0, 10**14))
    def add_tx(self, sender: int, nonce: int, tip: int, fee: int, value: int) -> None:
        self.salt += 1
        p = ptx(sender, nonce, tip=min(tip, fee) * GWEI, fee=fee * GWEI, value=value,
                salt=self.salt)
        expected = self.expected_reason(p)
        try:
            replaced = add(self.pool, p, self.state, base_fee=0)
        except InvalidTransaction as exc:
            assert exc.reason == expected, (exc, expected)
            return
        assert expected is None, expected
        assert replaced is self.model.get(p.sender, {}).get(p.nonce)
        self.model.setdefault(p.sender, {})[p.nonce] = p

    @rule(sender=st.integers(0, SENDERS - 1), steps=st.integers(1, 3), prune=st.booleans())
    def advance_nonce(self, sender: int, steps: int, prune: bool) -> None:
        """A block (prune=True) or anvil_setNonce (no prune) moves the state nonce."""
        address = bytes([sender + 1]) * 20
        self.state.nonces[address] = self.state.get_nonce(address) + steps
        if prune:
            self.pool.prune(self.state, [address])
            nonce = self.state.nonces[address]
            self.model[address] = {n: q for n, q in self.model.get(address, {}).items()
                                   if n >= nonce}

    @rule(sender=st.integers(0, SENDERS - 1), balance=st.integers(0, 21_000 * 60 * GWEI))
    def set_balance(self, sender: int, balance: int) -> None:
        self.state.balances[bytes([sender + 1]) * 20] = balance

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data())
    def remove_one(self, data: st.DataObject) -> None:
        everything = [q for m in self.model.values() for q in m.values()]
        victim = data.draw(st.sampled_from(everything))
        assert self.pool.remove([victim.hash]) == [victim]
        del self.model[victim.sender][victim.nonce]

    @invariant()
    def matches_the_model(self) -> None:
        everything = {q.hash for m in self.model.values() for q in m.values()}
        assert {p.hash for p in self.pool.all()} == everything
        assert len(self.pool) == len(everything)
        for address in {bytes([s + 1]) * 20 for s in range(self.SENDERS)}:
            assert self.pool.sender_nonces(address) == sorted(self.model.get(address, {}))

    @invariant()
    def pending_runs_are_gap_free(self) -> None:
        for address, run in self.pool.pending(self.state).items():
            start = self.state.get_nonce(address)
            assert [p.nonce for p in run] == list(range(start, start + len(run)))
            assert run == [self.model[address][n] for n in range(start, start + len(run))]


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
