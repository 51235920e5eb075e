"""The rollups' L2 state machine, read as a spec: pre-state, step, expected post-state.

Every refusal is tried and must leave the root (and every balance) exactly as it was; a
hypothesis state machine drives random histories and checks conservation of value, the
monotone nonces, and that the incremental root equals a tree rebuilt from the registries.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from layerlab.l2.rollup.machine import (
    ETH,
    KIND_BALANCE,
    KIND_WITHDRAW,
    UINT256_MAX,
    RefusedStep,
    RollupState,
    apply_deposit,
    apply_step,
    apply_transaction,
    compute_leaf_key,
    get_amount_out,
    get_touched_keys,
)
from layerlab.l2.rollup.txs import (
    AddLiquidity,
    Deposit,
    L2Tx,
    MintNFT,
    RemoveLiquidity,
    SignedTx,
    Swap,
    Transfer,
    TransferNFT,
    Withdraw,
    rollup_domain,
    sign_tx,
)
from layerlab.primitives.smt import SparseMerkleTree

DOMAIN = rollup_domain(1337, b"\x5f" * 20)
KEYS = [bytes([i + 1]) * 32 for i in range(4)]
ADDR = [bytes.fromhex(Account.from_key(k).address[2:]) for k in KEYS]
TOKEN_L1 = b"\xaa" * 20
STRANGER = b"\x42" * 20


def deposit(state: RollupState, to: bytes, amount: int, token: int = ETH,
            l1_token: bytes = b"\0" * 20) -> None:
    receipt = apply_deposit(state, Deposit(state.next_deposit, to, to, l1_token, token, amount))
    assert receipt.ok


def signed(who: int, tx_cls: type[L2Tx], state: RollupState, **fields: object) -> SignedTx:
    nonce = fields.pop("nonce", state.nonce(ADDR[who]))
    return sign_tx(tx_cls(nonce=nonce, **fields), KEYS[who], DOMAIN)


def apply(state: RollupState, who: int, tx_cls: type[L2Tx], **fields: object):
    return apply_transaction(state, signed(who, tx_cls, state, **fields), DOMAIN)


@pytest.fixture
def state() -> RollupState:
    s = RollupState()
    deposit(s, ADDR[0], 1000)
    deposit(s, ADDR[0], 5000, token=1, l1_token=TOKEN_L1)
    deposit(s, ADDR[1], 10)
    return s


def snapshot(s: RollupState) -> tuple[object, ...]:
    return (s.root, dict(s.balances), list(s.nonces), dict(s.nfts),
            {k: (p.reserve0, p.reserve1, p.shares) for k, p in s.pools.items()},
            dict(s.shares), list(s.withdrawals), list(s.owners), s.next_deposit)


def rebuilt_root(s: RollupState) -> int:
    """The root of a fresh tree holding the leaves derived from the registries of ``s``."""
    fresh = SparseMerkleTree(s.hasher)
    for key, value in s.compute_leaves().items():
        fresh.set(key, value)
    return fresh.root


# -- deposits ---------------------------------------------------------------------------------
def test_deposits_create_accounts_in_order_and_credit(state: RollupState) -> None:
    assert state.owners == [ADDR[0], ADDR[1]]
    assert state.balance(ETH, ADDR[0]) == 1000
    assert state.balance(1, ADDR[0]) == 5000
    assert state.l1_tokens == {0: b"\0" * 20, 1: TOKEN_L1}
    assert state.next_deposit == 3
    assert state.tree.get(compute_leaf_key(KIND_BALANCE, ETH, 1)) == 10


def test_a_deposit_out_of_queue_order_is_refused(state: RollupState) -> None:
    before = snapshot(state)
    with pytest.raises(RefusedStep) as err:
        apply_deposit(state, Deposit(5, ADDR[0], ADDR[0], b"\0" * 20, ETH, 1))
    assert err.value.check == "deposit-order"
    assert snapshot(state) == before


def test_a_deposit_naming_a_token_id_for_another_l1_token_is_refused(state: RollupState) -> None:
    with pytest.raises(RefusedStep) as err:
        apply_deposit(state, Deposit(3, ADDR[0], ADDR[0], b"\xbb" * 20, 1, 1))
    assert err.value.check == "unknown-token"
    with pytest.raises(RefusedStep):
        apply_deposit(state, Deposit(3, ADDR[0], ADDR[0], b"\xbb" * 20, 7, 1))


def test_a_deposit_that_would_overflow_is_consumed_and_credits_nothing(state: RollupState) -> None:
    deposit(state, ADDR[2], UINT256_MAX, token=2, l1_token=b"\xcc" * 20)
    receipt = apply_deposit(state, Deposit(4, ADDR[2], ADDR[2], b"\xcc" * 20, 2, 1))
    assert not receipt.ok and receipt.check == "overflow"
    assert state.next_deposit == 5
    assert state.balance(2, ADDR[2]) == UINT256_MAX


# -- transfers --------------------------------------------------------------------------------
def test_transfer_moves_value_and_bumps_the_nonce(state: RollupState) -> None:
    receipt = apply(state, 0, Transfer, token=ETH, to=STRANGER, amount=300)
    assert receipt.ok and receipt.root == state.root and receipt.sender == 0
    assert state.balance(ETH, ADDR[0]) == 700
    assert state.balance(ETH, STRANGER) == 300
    assert state.nonce(ADDR[0]) == 1
    assert state.index_of[STRANGER] == 2
    assert rebuilt_root(state) == state.root


def test_transfer_to_self_changes_only_the_nonce(state: RollupState) -> None:
    apply(state, 0, Transfer, token=ETH, to=ADDR[0], amount=1000)
    assert state.balance(ETH, ADDR[0]) == 1000
    assert state.nonce(ADDR[0]) == 1


def test_transfer_of_everything_removes_the_balance_leaf(state: RollupState) -> None:
    apply(state, 1, Transfer, token=ETH, to=ADDR[0], amount=10)
    assert compute_leaf_key(KIND_BALANCE, ETH, 1) not in state.tree
    assert rebuilt_root(state) == state.root


@pytest.mark.parametrize(("who", "fields", "check"), [
    (0, {"token": ETH, "to": STRANGER, "amount": 1001}, "balance"),
    (0, {"token": ETH, "to": STRANGER, "amount": 0}, "zero-amount"),
    (0, {"token": 9, "to": STRANGER, "amount": 1}, "unknown-token"),
    (0, {"token": ETH, "to": STRANGER, "amount": 1, "nonce": 1}, "nonce"),
    (2, {"token": ETH, "to": STRANGER, "amount": 1}, "unknown-account"),
])
def test_refused_transfers_change_nothing(state: RollupState, who: int, fields: dict[str, object],
                                          check: str) -> None:
    before = snapshot(state)
    with pytest.raises(RefusedStep) as err:
        apply(state, who, Transfer, **fields)
    assert err.value.check == check
    assert snapshot(state) == before


def test_a_replayed_transaction_is_refused(state: RollupState) -> None:
    tx = signed(0, Transfer, state, token=ETH, to=STRANGER, amount=1)
    apply_transaction(state, tx, DOMAIN)
    with pytest.raises(RefusedStep) as err:
        apply_transaction(state, tx, DOMAIN)
    assert err.value.check == "nonce"
    assert state.balance(ETH, STRANGER) == 1


def test_a_transaction_signed_for_another_rollup_is_refused(state: RollupState) -> None:
    tx = sign_tx(Transfer(nonce=0, token=ETH, to=STRANGER, amount=1), KEYS[0],
                 rollup_domain(1337, b"\x60" * 20))
    with pytest.raises(RefusedStep) as err:
        apply_transaction(state, tx, DOMAIN)
    assert err.value.check == "unknown-account"


def test_a_bad_signature_is_refused(state: RollupState) -> None:
    tx = SignedTx(Transfer(nonce=0, token=ETH, to=STRANGER, amount=1), b"\0" * 65)
    with pytest.raises(RefusedStep) as err:
        apply_transaction(state, tx, DOMAIN)
    assert err.value.check == "signature"


def test_a_recipient_whose_balance_would_overflow_is_refused_before_the_debit() -> None:
    s = RollupState()
    deposit(s, ADDR[0], UINT256_MAX)
    deposit(s, ADDR[1], 5)
    before = snapshot(s)
    with pytest.raises(RefusedStep) as err:
        apply(s, 1, Transfer, token=ETH, to=ADDR[0], amount=5)
    assert err.value.check == "overflow"
    assert snapshot(s) == before


# -- NFTs -----------------------------------------------------------------------------------
def test_mint_then_transfer_an_nft(state: RollupState) -> None:
    apply(state, 0, MintNFT, token_id=1, to=ADDR[0])
    assert state.nfts[(0, 1)] == 0
    apply(state, 0, TransferNFT, collection=0, token_id=1, to=STRANGER)
    assert state.nfts[(0, 1)] == state.index_of[STRANGER]
    before = snapshot(state)
    with pytest.raises(RefusedStep) as err:
        apply(state, 0, TransferNFT, collection=0, token_id=1, to=ADDR[0])
    assert err.value.check == "not-owner"
    with pytest.raises(RefusedStep) as err:
        apply(state, 0, MintNFT, token_id=1, to=ADDR[0])
    assert err.value.check == "nft-exists"
    with pytest.raises(RefusedStep) as err:
        apply(state, 0, TransferNFT, collection=0, token_id=2, to=ADDR[0])
    assert err.value.check == "unknown-nft"
    assert snapshot(state) == before


def test_collections_are_per_minter(state: RollupState) -> None:
    apply(state, 0, MintNFT, token_id=1, to=ADDR[0])
    apply(state, 1, MintNFT, token_id=1, to=ADDR[1])
    assert state.nfts == {(0, 1): 0, (1, 1): 1}


# -- AMM ------------------------------------------------------------------------------------
def test_pool_lifecycle_follows_uniswap_v2(state: RollupState) -> None:
    receipt = apply(state, 0, AddLiquidity, token0=0, token1=1, amount0=400, amount1=1600,
                    min_shares=800)
    assert receipt.amount_out == 800  # isqrt(400 * 1600)
    pool = state.pools[(0, 1)]
    assert (pool.reserve0, pool.reserve1, pool.shares) == (400, 1600, 800)

    out = get_amount_out(100, 400, 1600)
    assert out == 100 * 997 * 1600 // (400 * 1000 + 100 * 997) == 319
    receipt = apply(state, 0, Swap, token_in=0, token_out=1, amount_in=100, min_out=out)
    assert receipt.amount_out == out
    assert state.balance(1, ADDR[0]) == 5000 - 1600 + out
    # the constant product never decreases (the fee stays in the pool)
    pool = state.pools[(0, 1)]
    assert pool.reserve0 * pool.reserve1 >= 400 * 1600

    reverse = apply(state, 0, Swap, token_in=1, token_out=0, amount_in=50, min_out=1)
    assert reverse.amount_out == get_amount_out(50, 1600 - out, 500)

    apply(state, 0, RemoveLiquidity, token0=0, token1=1, shares=800, min0=1, min1=1)
    assert state.pools[(0, 1)].shares == 0
    assert state.total(ETH) == 1010 and state.total(1) == 5000
    assert state.balance(ETH, ADDR[0]) == 1000 and state.balance(1, ADDR[0]) == 5000


@pytest.mark.parametrize(("tx_cls", "fields", "check"), [
    (Swap, {"token_in": 0, "token_out": 1, "amount_in": 10, "min_out": 0}, "unknown-pool"),
    (Swap, {"token_in": 0, "token_out": 0, "amount_in": 10, "min_out": 0}, "same-token"),
    (AddLiquidity, {"token0": 1, "token1": 0, "amount0": 1, "amount1": 1, "min_shares": 0},
     "malformed"),
    (AddLiquidity, {"token0": 0, "token1": 1, "amount0": 1001, "amount1": 1, "min_shares": 0},
     "balance"),
    (AddLiquidity, {"token0": 0, "token1": 1, "amount0": 4, "amount1": 4, "min_shares": 5},
     "slippage"),
    (RemoveLiquidity, {"token0": 0, "token1": 1, "shares": 1, "min0": 0, "min1": 0},
     "unknown-pool"),
])
def test_refused_pool_operations_change_nothing(state: RollupState, tx_cls: type[L2Tx],
                                                fields: dict[str, object], check: str) -> None:
    before = snapshot(state)
    with pytest.raises(RefusedStep) as err:
        apply(state, 0, tx_cls, **fields)
    assert err.value.check == check
    assert snapshot(state) == before


def test_swap_slippage_and_burning_shares_one_does_not_hold(state: RollupState) -> None:
    apply(state, 0, AddLiquidity, token0=0, token1=1, amount0=400, amount1=1600, min_shares=0)
    before = snapshot(state)
    with pytest.raises(RefusedStep) as err:
        apply(state, 0, Swap, token_in=0, token_out=1, amount_in=100, min_out=320)
    assert err.value.check == "slippage"
    with pytest.raises(RefusedStep) as err:
        apply(state, 1, RemoveLiquidity, token0=0, token1=1, shares=1, min0=0, min1=0)
    assert err.value.check == "balance"
    with pytest.raises(RefusedStep) as err:
        apply(state, 0, RemoveLiquidity, token0=0, token1=1, shares=800, min0=401, min1=0)
    assert err.value.check == "slippage"
    assert snapshot(state) == before


# -- withdrawals ------------------------------------------------------------------------------
def test_withdraw_burns_on_l2_and_writes_a_withdrawal_leaf(state: RollupState) -> None:
    receipt = apply(state, 0, Withdraw, token=1, amount=42, recipient=STRANGER)
    assert receipt.withdrawal_id == 0
    assert state.balance(1, ADDR[0]) == 5000 - 42
    assert state.withdrawals == [(STRANGER, TOKEN_L1, 42)]
    assert compute_leaf_key(KIND_WITHDRAW, 0) in state.tree
    assert state.total(1) == 5000 - 42
    receipt = apply(state, 0, Withdraw, token=ETH, amount=1, recipient=ADDR[0])
    assert receipt.withdrawal_id == 1


# -- steps as a batch carries them ------------------------------------------------------------
def test_a_refused_step_in_a_batch_is_a_no_op_with_its_reason(state: RollupState) -> None:
    before = state.root
    step = signed(0, Transfer, state, token=ETH, to=STRANGER, amount=10**9).encode()
    receipt = apply_step(state, step, DOMAIN)
    assert not receipt.ok and receipt.check == "balance" and receipt.root == before
    garbage = apply_step(state, b"\x01\x02", DOMAIN)
    assert not garbage.ok and garbage.check == "malformed" and garbage.root == before


def test_forced_and_deposit_steps(state: RollupState) -> None:
    step = signed(0, Transfer, state, token=ETH, to=STRANGER, amount=5).encode()
    assert apply_step(state, b"\xf0" + step, DOMAIN).ok
    assert state.balance(ETH, STRANGER) == 5
    dep = Deposit(3, ADDR[1], ADDR[1], b"\0" * 20, ETH, 7).encode()
    assert apply_step(state, dep, DOMAIN).ok
    assert state.balance(ETH, ADDR[1]) == 17
    with pytest.raises(RefusedStep):
        apply_step(state, dep, DOMAIN)  # the same queue message twice: the batch is invalid


def test_touched_keys_cover_every_leaf_a_step_changes(state: RollupState) -> None:
    """The one-step prover gets witnesses for exactly these keys: a leaf that changes
    and is not among them would make an honest step unprovable on L1."""
    apply(state, 0, AddLiquidity, token0=0, token1=1, amount0=100, amount1=100, min_shares=0)
    apply(state, 0, MintNFT, token_id=5, to=ADDR[0])
    cases = [
        signed(0, Transfer, state, token=ETH, to=b"\x77" * 20, amount=1),
        signed(0, Transfer, state, token=1, to=ADDR[1], amount=1),
        signed(0, MintNFT, state, token_id=9, to=b"\x78" * 20),
        signed(0, TransferNFT, state, collection=0, token_id=5, to=b"\x79" * 20),
        signed(0, Swap, state, token_in=1, token_out=0, amount_in=10, min_out=1),
        signed(0, AddLiquidity, state, token0=0, token1=1, amount0=10, amount1=10, min_shares=1),
        signed(0, RemoveLiquidity, state, token0=0, token1=1, shares=5, min0=0, min1=0),
        signed(0, Withdraw, state, token=1, amount=3, recipient=STRANGER),
    ]
    for tx in cases:
        tx = sign_tx(type(tx.tx)(**{**_fields(tx.tx), "nonce": state.nonce(ADDR[0])}), KEYS[0],
                     DOMAIN)
        keys = set(get_touched_keys(state, tx, DOMAIN))
        before = state.compute_leaves()
        apply_transaction(state, tx, DOMAIN)
        after = state.compute_leaves()
        assert rebuilt_root(state) == state.root
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        assert changed <= keys, type(tx.tx).__name__


def _fields(tx: L2Tx) -> dict[str, object]:
    return {name: getattr(tx, name) for _, name in tx.STRUCT.members}


# -- random histories -------------------------------------------------------------------------
class RollupHistory(RuleBasedStateMachine):
    """Random deposits and transactions (valid and not); the invariants are the machine's
    promises: value is conserved (what was deposited is on L2 or withdrawn), nonces only
    go up, refused steps change nothing, and the root is the root of the live leaves."""

    def __init__(self) -> None:
        super().__init__()
        self.state = RollupState()
        self.deposited = {ETH: 0, 1: 0}
        self.last_nonces: list[int] = []

    @rule(who=st.integers(0, 3), amount=st.integers(1, 10**6), token=st.sampled_from([0, 1]))
    def deposit(self, who: int, amount: int, token: int) -> None:
        if token == 1 and 1 not in self.state.l1_tokens:
            deposit(self.state, ADDR[who], amount, 1, TOKEN_L1)
        else:
            deposit(self.state, ADDR[who], amount, token,
                    TOKEN_L1 if token == 1 else b"\0" * 20)
        self.deposited[token] += amount

    @rule(who=st.integers(0, 3), to=st.integers(0, 3), amount=st.integers(0, 2 * 10**6),
          token=st.sampled_from([0, 1]), skew=st.sampled_from([0, 0, 0, 1, -1]))
    def transfer(self, who: int, to: int, amount: int, token: int, skew: int) -> None:
        nonce = max(0, self.state.nonce(ADDR[who]) + skew)
        self._try(who, Transfer(nonce=nonce, token=token, to=ADDR[to], amount=amount))

    @rule(who=st.integers(0, 3), a0=st.integers(1, 10**5), a1=st.integers(1, 10**5))
    def add(self, who: int, a0: int, a1: int) -> None:
        self._try(who, AddLiquidity(nonce=self.state.nonce(ADDR[who]), token0=0, token1=1,
                                    amount0=a0, amount1=a1, min_shares=0))

    @rule(who=st.integers(0, 3), amount=st.integers(1, 10**5), zero_for_one=st.booleans())
    def swap(self, who: int, amount: int, zero_for_one: bool) -> None:
        t_in, t_out = (0, 1) if zero_for_one else (1, 0)
        self._try(who, Swap(nonce=self.state.nonce(ADDR[who]), token_in=t_in, token_out=t_out,
                            amount_in=amount, min_out=0))

    @rule(who=st.integers(0, 3), shares=st.integers(1, 10**5))
    def remove(self, who: int, shares: int) -> None:
        self._try(who, RemoveLiquidity(nonce=self.state.nonce(ADDR[who]), token0=0, token1=1,
                                       shares=shares, min0=0, min1=0))

    @rule(who=st.integers(0, 3), amount=st.integers(1, 10**6), token=st.sampled_from([0, 1]))
    def withdraw(self, who: int, amount: int, token: int) -> None:
        self._try(who, Withdraw(nonce=self.state.nonce(ADDR[who]), token=token, amount=amount,
                                recipient=STRANGER))

    def _try(self, who: int, tx: L2Tx) -> None:
        step = sign_tx(tx, KEYS[who], DOMAIN).encode()
        before = snapshot(self.state)
        receipt = apply_step(self.state, step, DOMAIN)
        if not receipt.ok:
            assert snapshot(self.state) == before

    @invariant()
    def value_is_conserved(self) -> None:
        for token, total in self.deposited.items():
            withdrawn = sum(a for _, l1, a in self.state.withdrawals
                            if l1 == (TOKEN_L1 if token == 1 else b"\0" * 20))
            assert self.state.total(token) + withdrawn == total

    @invariant()
    def nonces_only_go_up(self) -> None:
        nonces = list(self.state.nonces)
        assert all(a >= b for a, b in zip(nonces, self.last_nonces, strict=False))
        self.last_nonces = nonces

    @invariant()
    def root_is_the_root_of_the_live_leaves(self) -> None:
        assert rebuilt_root(self.state) == self.state.root


RollupHistory.TestCase.settings = settings(max_examples=40, stateful_step_count=25,
                                           deadline=None)
test_random_histories = RollupHistory.TestCase
