"""The rollups' L2 state machine: accounts, tokens, NFTs and a constant-product AMM.

Pure logic, no I/O and no clock: :func:`apply_step` takes the state and one step (a
deposit from the L1 queue, a signed L2 transaction, or a forced transaction) and returns a
:class:`Receipt` with the post-state root. The optimistic rollup posts one root per step
and an L1 contract re-executes a single disputed step from Merkle witnesses of the leaves
it touches; the ZK rollup proves the same transitions in a circuit.

State commitment
================
All state is the leaves of ONE sparse Merkle tree (:mod:`layerlab.primitives.smt`, keccak
here, Poseidon for the ZK rollup). A leaf's key is
``uint256(keccak256(abi.encode(uint256 kind, uint256 a, uint256 b)))`` and its value a
non-zero ``uint256`` (0 is "absent", as an EVM storage slot):

=========  ==========================  ========================================================
kind       (a, b)                      value
=========  ==========================  ========================================================
0 META     (0, 0)                      ``keccak256(abi.encode(uint256 accounts, uint256
                                       nextDeposit, uint256 withdrawals))``
1 ACCOUNT  (index, 0)                  ``keccak256(abi.encode(address owner, uint256 nonce))``
2 ADDRESS  (uint160 owner, 0)          ``index + 1``
3 BALANCE  (token, index)              the balance (absent when 0)
4 NFT      (collection, tokenId)       ``owner index + 1``
5 POOL     (token0, token1)            ``keccak256(abi.encode(uint256 reserve0, uint256
                                       reserve1, uint256 shares))``, token0 < token1
6 SHARES   (token0 << 32 | token1,     LP shares of a pool held by an account (absent when 0)
           index)
7 WITHDRAW (id, 0)                     ``keccak256(abi.encode(address recipient, address
                                       l1Token, uint256 amount))``: what the L1 bridge pays
8 TOKEN    (token, 0)                  ``keccak256(abi.encode(address l1Token))`` (token 0 is
                                       ETH, address(0), present from genesis)
=========  ==========================  ========================================================

Accounts get indices in order of first credit (a deposit or a transfer to a new
address); an NFT collection is its minter's account index (only the creator mints in it).

Semantics of a step
===================
A step that is refused (bad signature, wrong nonce, insufficient balance, slippage...)
changes nothing: the root after it equals the root before, and its receipt says why. So
an invalid transaction in a posted batch, or garbage put in the forced queue, is a no-op
that every verifier agrees on. A sequencer refuses such transactions at admission
instead (:func:`apply_transaction` raises).

The AMM is Uniswap v2's constant product with a 0.3% fee (Adams, Zinsmeister, Robinson,
"Uniswap v2 Core", 2020): ``out = in*997*rOut / (rIn*1000 + in*997)``; the first
liquidity mints ``isqrt(a0*a1)`` shares; later ones ``min(a0*S/r0, a1*S/r1)``. Unlike v2
there is no ``MINIMUM_LIQUIDITY`` lock: it defends against inflating the share price by
donating to the pool, and here no one can move value into a pool except through these
rules. Amounts are ``uint256``, and so is every intermediate of the AMM's arithmetic, as
on the EVM (Solidity's checked arithmetic): a product or sum that does not fit in
``uint256`` refuses the step (``overflow``), so that the L1 one-step prover
(``contracts/rollup/RollupProver.sol``) computes exactly what this module computes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import isqrt
from typing import Any, Final

from eth_hash.auto import keccak

from layerlab.crypto.eip712 import Domain
from layerlab.errors import LayerlabError, MalformedEncoding
from layerlab.l2.rollup.txs import (
    DEPOSIT_KIND,
    FORCED_KIND,
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
    decode_deposit_step,
    decode_tx_step,
)
from layerlab.primitives.smt import KECCAK_HASHER, SmtHasher, SparseMerkleTree

__all__ = [
    "ETH",
    "KIND_ACCOUNT",
    "KIND_ADDRESS",
    "KIND_BALANCE",
    "KIND_META",
    "KIND_NFT",
    "KIND_POOL",
    "KIND_SHARES",
    "KIND_TOKEN",
    "KIND_WITHDRAW",
    "Receipt",
    "RefusedStep",
    "RollupError",
    "RollupState",
    "apply_deposit",
    "apply_step",
    "apply_transaction",
    "compute_leaf_key",
    "get_touched_keys",
]

KIND_META, KIND_ACCOUNT, KIND_ADDRESS, KIND_BALANCE, KIND_NFT = 0, 1, 2, 3, 4
KIND_POOL, KIND_SHARES, KIND_WITHDRAW, KIND_TOKEN = 5, 6, 7, 8
ETH: Final = 0
UINT256_MAX: Final = 2**256 - 1
UINT64_MAX: Final = 2**64 - 1
FEE_NUMERATOR, FEE_DENOMINATOR = 997, 1000
ZERO_ADDRESS: Final = b"\0" * 20


class RollupError(LayerlabError):
    """An L2 step was refused; the state is unchanged.

    ``check`` is a machine-readable tag: ``signature``, ``nonce``, ``balance``,
    ``unknown-account``, ``unknown-token``, ``unknown-pool``, ``unknown-nft``,
    ``not-owner``, ``slippage``, ``zero-amount``, ``overflow``, ``deposit-order``,
    ``malformed``, ``same-token``, ``nft-exists``.
    """

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


class RefusedStep(RollupError):
    """Raised by :func:`apply_transaction` for a transaction the sequencer must not admit."""


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _hash_words(*values: int | bytes) -> int:
    data = b"".join(v.rjust(32, b"\0") if isinstance(v, bytes) else _word(v) for v in values)
    return int.from_bytes(keccak(data), "big")


def compute_leaf_key(kind: int, a: int = 0, b: int = 0) -> int:
    """``uint256(keccak256(abi.encode(kind, a, b)))``: where a piece of state lives."""
    return _hash_words(kind, a, b)


def _pool_id(token0: int, token1: int) -> int:
    return token0 << 32 | token1


@dataclass(slots=True)
class Pool:
    reserve0: int
    reserve1: int
    shares: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of one step: the root after it, and why it was a no-op if it was."""

    kind: str
    ok: bool
    root: int
    check: str = ""
    error: str = ""
    sender: int | None = None
    """Account index of the sender (deposits: of the credited account)."""
    withdrawal_id: int | None = None
    amount_out: int | None = None


@dataclass(slots=True)
class RollupState:
    """The L2 state: a sparse Merkle tree and the registries its leaves summarize.

    Mutated only through :func:`apply_step` and friends, which check everything before
    they write, so a refused step leaves it untouched. ``root`` commits to all of it.
    """

    hasher: SmtHasher = KECCAK_HASHER
    tree: SparseMerkleTree = field(init=False)
    owners: list[bytes] = field(default_factory=list)
    nonces: list[int] = field(default_factory=list)
    index_of: dict[bytes, int] = field(default_factory=dict)
    balances: dict[tuple[int, int], int] = field(default_factory=dict)
    nfts: dict[tuple[int, int], int] = field(default_factory=dict)
    pools: dict[tuple[int, int], Pool] = field(default_factory=dict)
    shares: dict[tuple[int, int, int], int] = field(default_factory=dict)
    l1_tokens: dict[int, bytes] = field(default_factory=dict)
    withdrawals: list[tuple[bytes, bytes, int]] = field(default_factory=list)
    next_deposit: int = 0

    def __post_init__(self) -> None:
        self.tree = SparseMerkleTree(self.hasher)
        self._set_token(ETH, ZERO_ADDRESS)
        self._write_meta()

    @property
    def root(self) -> int:
        return self.tree.root

    # -- reads -------------------------------------------------------------------------
    def balance(self, token: int, address: bytes) -> int:
        index = self.index_of.get(address)
        return 0 if index is None else self.balances.get((token, index), 0)

    def nonce(self, address: bytes) -> int:
        index = self.index_of.get(address)
        return 0 if index is None else self.nonces[index]

    def total(self, token: int) -> int:
        """Everything of ``token`` on L2: balances plus pool reserves."""
        held = sum(v for (t, _), v in self.balances.items() if t == token)
        for (t0, t1), pool in self.pools.items():
            held += pool.reserve0 if t0 == token else pool.reserve1 if t1 == token else 0
        return held

    def compute_leaves(self) -> dict[int, int]:
        """Every live leaf of the tree, derived from the registries alone.

        The tree is a cache of this: a state restored from its registries (a snapshot on
        disk) rebuilds the same root, and a test checks that the two never drift apart.
        """
        leaves = {compute_leaf_key(KIND_META): _hash_words(len(self.owners), self.next_deposit,
                                                           len(self.withdrawals))}
        for token, l1_token in self.l1_tokens.items():
            leaves[compute_leaf_key(KIND_TOKEN, token)] = _hash_words(l1_token)
        for index, owner in enumerate(self.owners):
            leaves[compute_leaf_key(KIND_ADDRESS, int.from_bytes(owner, "big"))] = index + 1
            leaves[compute_leaf_key(KIND_ACCOUNT, index)] = _hash_words(owner, self.nonces[index])
        for (token, index), value in self.balances.items():
            leaves[compute_leaf_key(KIND_BALANCE, token, index)] = value
        for (collection, token_id), owner_index in self.nfts.items():
            leaves[compute_leaf_key(KIND_NFT, collection, token_id)] = owner_index + 1
        for (t0, t1), pool in self.pools.items():
            leaves[compute_leaf_key(KIND_POOL, t0, t1)] = _hash_words(pool.reserve0, pool.reserve1,
                                                                      pool.shares)
        for (t0, t1, index), value in self.shares.items():
            leaves[compute_leaf_key(KIND_SHARES, _pool_id(t0, t1), index)] = value
        for wid, (recipient, l1_token, amount) in enumerate(self.withdrawals):
            leaves[compute_leaf_key(KIND_WITHDRAW, wid)] = _hash_words(recipient, l1_token, amount)
        return leaves

    # -- writes: each keeps the registry and its leaf together --------------------------
    def _write_meta(self) -> None:
        self.tree.set(compute_leaf_key(KIND_META),
                      _hash_words(len(self.owners), self.next_deposit, len(self.withdrawals)))

    def _set_token(self, token: int, l1_token: bytes) -> None:
        self.l1_tokens[token] = l1_token
        self.tree.set(compute_leaf_key(KIND_TOKEN, token), _hash_words(l1_token))

    def _new_account(self, address: bytes) -> int:
        index = len(self.owners)
        self.owners.append(address)
        self.nonces.append(0)
        self.index_of[address] = index
        self.tree.set(compute_leaf_key(KIND_ADDRESS, int.from_bytes(address, "big")), index + 1)
        self._write_account(index)
        self._write_meta()
        return index

    def _write_account(self, index: int) -> None:
        self.tree.set(compute_leaf_key(KIND_ACCOUNT, index),
                      _hash_words(self.owners[index], self.nonces[index]))

    def _bump_nonce(self, index: int) -> None:
        self.nonces[index] += 1
        self._write_account(index)

    def _set_balance(self, token: int, index: int, value: int) -> None:
        if value:
            self.balances[(token, index)] = value
        else:
            self.balances.pop((token, index), None)
        self.tree.set(compute_leaf_key(KIND_BALANCE, token, index), value)

    def _set_pool(self, key: tuple[int, int], pool: Pool) -> None:
        self.pools[key] = pool
        self.tree.set(compute_leaf_key(KIND_POOL, *key),
                      _hash_words(pool.reserve0, pool.reserve1, pool.shares))

    def _set_shares(self, key: tuple[int, int], index: int, value: int) -> None:
        if value:
            self.shares[(*key, index)] = value
        else:
            self.shares.pop((*key, index), None)
        self.tree.set(compute_leaf_key(KIND_SHARES, _pool_id(*key), index), value)


def _refuse(check: str, message: str) -> RefusedStep:
    return RefusedStep(check, message)


def _amount(value: int, what: str, *, positive: bool = True) -> None:
    if value > UINT256_MAX:
        raise _refuse("overflow", f"{what} {value} does not fit in uint256")
    if positive and value <= 0:
        raise _refuse("zero-amount", f"{what} must be positive, got {value}")


def _recipient(state: RollupState, address: bytes) -> int | None:
    """The recipient's index, or None when it is new (created on credit)."""
    if len(address) != 20:
        raise _refuse("malformed", f"recipient must be 20 bytes, got {len(address)}")
    return state.index_of.get(address)


def _credit(state: RollupState, token: int, address: bytes, amount: int) -> int:
    index = state.index_of.get(address)
    if index is None:
        index = state._new_account(address)
    after = state.balances.get((token, index), 0) + amount
    if after > UINT256_MAX:
        raise _refuse("overflow", f"balance of token {token} at {address.hex()} overflows")
    state._set_balance(token, index, after)
    return index


def _debit_check(state: RollupState, token: int, index: int, amount: int) -> None:
    held = state.balances.get((token, index), 0)
    if held < amount:
        raise _refuse("balance", f"account {index} holds {held} of token {token}, needs {amount}")


def _pool_key(token_a: int, token_b: int) -> tuple[tuple[int, int], bool]:
    """The pool's (token0, token1) and whether ``token_a`` is token0."""
    if token_a == token_b:
        raise _refuse("same-token", f"a pool needs two tokens, got {token_a} twice")
    return ((token_a, token_b), True) if token_a < token_b else ((token_b, token_a), False)


def _fits(value: int, what: str) -> int:
    if value > UINT256_MAX:
        raise _refuse("overflow", f"{what} ({value}) does not fit in uint256")
    return value


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """Uniswap v2's ``getAmountOut`` with the 0.3% fee, in uint256 arithmetic."""
    with_fee = _fits(amount_in * FEE_NUMERATOR, "amount in x 997")
    numerator = _fits(with_fee * reserve_out, "the swap's numerator")
    denominator = _fits(_fits(reserve_in * FEE_DENOMINATOR, "reserve x 1000") + with_fee,
                        "the swap's denominator")
    return numerator // denominator


# -- transitions ---------------------------------------------------------------------------
def apply_deposit(state: RollupState, deposit: Deposit) -> Receipt:
    """Credit an L1 deposit; it must be the next message of the queue."""
    if deposit.index != state.next_deposit:
        raise _refuse("deposit-order",
                      f"deposit {deposit.index} out of order: the next is {state.next_deposit}")
    _amount(deposit.amount, "deposit amount")
    known = state.l1_tokens.get(deposit.token)
    if known is not None and known != deposit.l1_token:
        raise _refuse("unknown-token", f"token {deposit.token} is {known.hex()}, the deposit "
                                       f"says {deposit.l1_token.hex()}")
    if known is None and deposit.token != len(state.l1_tokens):
        raise _refuse("unknown-token", f"new token id {deposit.token}, expected "
                                       f"{len(state.l1_tokens)}")
    if known is None:
        state._set_token(deposit.token, deposit.l1_token)
    state.next_deposit += 1
    if state.balance(deposit.token, deposit.to) + deposit.amount > UINT256_MAX:
        # The L1 already took the funds (a token with a huge supply can do this): the
        # message is consumed so the queue moves on, and credits nothing.
        state._write_meta()
        return Receipt("Deposit", False, state.root, "overflow",
                       f"deposit {deposit.index} overflows the balance of {deposit.to.hex()}")
    index = _credit(state, deposit.token, deposit.to, deposit.amount)
    state._write_meta()
    return Receipt("Deposit", True, state.root, sender=index)


def _sender(state: RollupState, signed: SignedTx, domain: Domain) -> int:
    address = signed.recover_sender(domain)
    if address is None:
        raise _refuse("signature", "the signature does not recover to an address")
    index = state.index_of.get(address)
    if index is None:
        raise _refuse("unknown-account", f"signer {address.hex()} has no L2 account "
                                         "(a signature for another chain or rollup "
                                         "recovers to a stranger)")
    if signed.tx.nonce != state.nonces[index]:
        raise _refuse("nonce", f"nonce {signed.tx.nonce}, the account's next is "
                               f"{state.nonces[index]} (a replay, or out of order)")
    return index


def apply_transaction(state: RollupState, signed: SignedTx, domain: Domain) -> Receipt:
    """Apply one signed L2 transaction, or raise :class:`RefusedStep` changing nothing."""
    sender = _sender(state, signed, domain)
    tx = signed.tx
    handler = _HANDLERS.get(type(tx))
    if handler is None:
        raise _refuse("malformed", f"unknown transaction kind {type(tx).__name__}")
    out = handler(state, sender, tx)
    state._bump_nonce(sender)
    return Receipt(type(tx).__name__, True, state.root, sender=sender,
                   withdrawal_id=out.get("withdrawal_id"), amount_out=out.get("amount_out"))


def _transfer(state: RollupState, sender: int, tx: Transfer) -> dict[str, int]:
    _amount(tx.amount, "amount")
    _recipient(state, tx.to)
    if tx.token not in state.l1_tokens:
        raise _refuse("unknown-token", f"token {tx.token} was never deposited")
    _debit_check(state, tx.token, sender, tx.amount)
    to = state.index_of.get(tx.to)
    if to is not None and to != sender and \
            state.balances.get((tx.token, to), 0) + tx.amount > UINT256_MAX:
        raise _refuse("overflow", f"balance of token {tx.token} at {tx.to.hex()} overflows")
    state._set_balance(tx.token, sender, state.balances[(tx.token, sender)] - tx.amount)
    _credit(state, tx.token, tx.to, tx.amount)
    return {}


def _mint(state: RollupState, sender: int, tx: MintNFT) -> dict[str, int]:
    _recipient(state, tx.to)
    if (sender, tx.token_id) in state.nfts:
        raise _refuse("nft-exists", f"NFT {tx.token_id} of collection {sender} exists")
    owner = state.index_of.get(tx.to)
    if owner is None:
        owner = state._new_account(tx.to)
    _set_nft(state, sender, tx.token_id, owner)
    return {}


def _set_nft(state: RollupState, collection: int, token_id: int, owner: int) -> None:
    state.nfts[(collection, token_id)] = owner
    state.tree.set(compute_leaf_key(KIND_NFT, collection, token_id), owner + 1)


def _transfer_nft(state: RollupState, sender: int, tx: TransferNFT) -> dict[str, int]:
    _recipient(state, tx.to)
    owner = state.nfts.get((tx.collection, tx.token_id))
    if owner is None:
        raise _refuse("unknown-nft", f"NFT {tx.token_id} of collection {tx.collection} "
                                     "does not exist")
    if owner != sender:
        raise _refuse("not-owner", f"NFT {tx.token_id} of collection {tx.collection} belongs "
                                   f"to account {owner}, not {sender}")
    to = state.index_of.get(tx.to)
    if to is None:
        to = state._new_account(tx.to)
    _set_nft(state, tx.collection, tx.token_id, to)
    return {}


def _swap(state: RollupState, sender: int, tx: Swap) -> dict[str, int]:
    _amount(tx.amount_in, "amount in")
    _amount(tx.min_out, "minimum out", positive=False)
    key, zero_for_one = _pool_key(tx.token_in, tx.token_out)
    pool = state.pools.get(key)
    if pool is None or pool.shares == 0:
        raise _refuse("unknown-pool", f"no pool for tokens {key}")
    r_in, r_out = (pool.reserve0, pool.reserve1) if zero_for_one else (pool.reserve1, pool.reserve0)
    if r_in + tx.amount_in > UINT256_MAX:
        raise _refuse("overflow", "the pool's reserve would overflow")
    out = get_amount_out(tx.amount_in, r_in, r_out)
    if out == 0 or out < tx.min_out:
        raise _refuse("slippage", f"the swap gives {out}, the minimum is {tx.min_out}")
    _debit_check(state, tx.token_in, sender, tx.amount_in)
    if state.balances.get((tx.token_out, sender), 0) + out > UINT256_MAX:
        raise _refuse("overflow", "the output overflows the sender's balance")
    state._set_balance(tx.token_in, sender,
                       state.balances[(tx.token_in, sender)] - tx.amount_in)
    state._set_balance(tx.token_out, sender, state.balances.get((tx.token_out, sender), 0) + out)
    r_in, r_out = r_in + tx.amount_in, r_out - out
    state._set_pool(key, Pool(*((r_in, r_out) if zero_for_one else (r_out, r_in)), pool.shares))
    return {"amount_out": out}


def _add_liquidity(state: RollupState, sender: int, tx: AddLiquidity) -> dict[str, int]:
    if tx.token0 >= tx.token1:
        raise _refuse("malformed", f"token0 {tx.token0} must be below token1 {tx.token1}")
    for token, amount in ((tx.token0, tx.amount0), (tx.token1, tx.amount1)):
        _amount(amount, f"amount of token {token}")
        _debit_check(state, token, sender, amount)
    _amount(tx.min_shares, "minimum shares", positive=False)
    key = (tx.token0, tx.token1)
    pool = state.pools.get(key) or Pool(0, 0, 0)
    if pool.shares == 0:
        minted = isqrt(_fits(tx.amount0 * tx.amount1, "amount0 x amount1"))
    else:
        minted = min(_fits(tx.amount0 * pool.shares, "amount0 x shares") // pool.reserve0,
                     _fits(tx.amount1 * pool.shares, "amount1 x shares") // pool.reserve1)
    if minted == 0 or minted < tx.min_shares:
        raise _refuse("slippage", f"the deposit mints {minted} shares, the minimum is "
                                  f"{tx.min_shares}")
    if max(pool.reserve0 + tx.amount0, pool.reserve1 + tx.amount1, pool.shares + minted) \
            > UINT256_MAX:
        raise _refuse("overflow", "the pool's reserves would overflow")
    for token, amount in ((tx.token0, tx.amount0), (tx.token1, tx.amount1)):
        state._set_balance(token, sender, state.balances[(token, sender)] - amount)
    state._set_pool(key, Pool(pool.reserve0 + tx.amount0, pool.reserve1 + tx.amount1,
                              pool.shares + minted))
    state._set_shares(key, sender, state.shares.get((*key, sender), 0) + minted)
    return {"amount_out": minted}


def _remove_liquidity(state: RollupState, sender: int, tx: RemoveLiquidity) -> dict[str, int]:
    key = (tx.token0, tx.token1)
    pool = state.pools.get(key)
    if pool is None or pool.shares == 0:
        raise _refuse("unknown-pool", f"no pool for tokens {key}")
    _amount(tx.shares, "shares")
    held = state.shares.get((*key, sender), 0)
    if held < tx.shares:
        raise _refuse("balance", f"account {sender} holds {held} shares, burns {tx.shares}")
    out0 = _fits(tx.shares * pool.reserve0, "shares x reserve0") // pool.shares
    out1 = _fits(tx.shares * pool.reserve1, "shares x reserve1") // pool.shares
    if out0 < tx.min0 or out1 < tx.min1:
        raise _refuse("slippage", f"removal gives ({out0}, {out1}), minimum ({tx.min0}, "
                                  f"{tx.min1})")
    for token, out in ((tx.token0, out0), (tx.token1, out1)):
        if state.balances.get((token, sender), 0) + out > UINT256_MAX:
            raise _refuse("overflow", f"the removal overflows the balance of token {token}")
    state._set_shares(key, sender, held - tx.shares)
    state._set_pool(key, Pool(pool.reserve0 - out0, pool.reserve1 - out1, pool.shares - tx.shares))
    for token, out in ((tx.token0, out0), (tx.token1, out1)):
        state._set_balance(token, sender, state.balances.get((token, sender), 0) + out)
    return {}


def _withdraw(state: RollupState, sender: int, tx: Withdraw) -> dict[str, int]:
    _amount(tx.amount, "amount")
    if len(tx.recipient) != 20:
        raise _refuse("malformed", f"L1 recipient must be 20 bytes, got {len(tx.recipient)}")
    l1_token = state.l1_tokens.get(tx.token)
    if l1_token is None:
        raise _refuse("unknown-token", f"token {tx.token} was never deposited")
    _debit_check(state, tx.token, sender, tx.amount)
    state._set_balance(tx.token, sender, state.balances[(tx.token, sender)] - tx.amount)
    wid = len(state.withdrawals)
    state.withdrawals.append((tx.recipient, l1_token, tx.amount))
    state.tree.set(compute_leaf_key(KIND_WITHDRAW, wid),
                   _hash_words(tx.recipient, l1_token, tx.amount))
    state._write_meta()
    return {"withdrawal_id": wid}


_HANDLERS: dict[type[L2Tx], Callable[[RollupState, int, Any], dict[str, int]]] = {
    Transfer: _transfer, MintNFT: _mint, TransferNFT: _transfer_nft, Swap: _swap,
             AddLiquidity: _add_liquidity, RemoveLiquidity: _remove_liquidity,
             Withdraw: _withdraw}


def apply_step(state: RollupState, step: bytes, domain: Domain) -> Receipt:
    """Apply one batch step; a refused or malformed step is a no-op whose receipt says why.

    Deposits are the exception: the L1 contract only accepts batches that carry the queue's
    messages byte for byte and in order, so a deposit step that does not apply means the
    batch itself is invalid, and :class:`RefusedStep` is raised.
    """
    if step[:1] == bytes([DEPOSIT_KIND]):
        return apply_deposit(state, decode_deposit_step(step))
    body = step[1:] if step[:1] == bytes([FORCED_KIND]) else step
    try:
        return apply_transaction(state, decode_tx_step(body), domain)
    except MalformedEncoding as exc:
        return Receipt("malformed", False, state.root, "malformed", str(exc))
    except RollupError as exc:
        return Receipt("refused", False, state.root, exc.check, str(exc))


def get_touched_keys(state: RollupState, signed: SignedTx, domain: Domain) -> list[int]:
    """The leaves a transaction reads or writes: the witnesses its one-step proof needs.

    For a sender that recovers: its ADDRESS and ACCOUNT leaves; then per kind (recipients
    that are new add their ADDRESS and ACCOUNT leaves and the META leaf):
    Transfer: sender and recipient BALANCE, the TOKEN; MintNFT / TransferNFT: the NFT;
    Swap: both BALANCEs and the POOL; Add/RemoveLiquidity: both BALANCEs, the POOL and the
    sender's SHARES; Withdraw: the BALANCE, the TOKEN, META and the new WITHDRAW leaf.
    """
    address = signed.recover_sender(domain)
    if address is None:
        return []
    keys = [compute_leaf_key(KIND_ADDRESS, int.from_bytes(address, "big"))]
    sender = state.index_of.get(address)
    if sender is None:
        return keys
    keys.append(compute_leaf_key(KIND_ACCOUNT, sender))
    tx = signed.tx

    def recipient(to: bytes) -> list[int]:
        index = state.index_of.get(to)
        new = index if index is not None else len(state.owners)
        out = [compute_leaf_key(KIND_ADDRESS, int.from_bytes(to, "big"))]
        if index is None:
            out += [compute_leaf_key(KIND_ACCOUNT, new), compute_leaf_key(KIND_META)]
        return out

    if isinstance(tx, Transfer):
        to = state.index_of.get(tx.to, len(state.owners))
        keys += [compute_leaf_key(KIND_TOKEN, tx.token),
                 compute_leaf_key(KIND_BALANCE, tx.token, sender),
                 compute_leaf_key(KIND_BALANCE, tx.token, to), *recipient(tx.to)]
    elif isinstance(tx, MintNFT | TransferNFT):
        collection = sender if isinstance(tx, MintNFT) else tx.collection
        keys += [compute_leaf_key(KIND_NFT, collection, tx.token_id), *recipient(tx.to)]
    elif isinstance(tx, Swap | AddLiquidity | RemoveLiquidity):
        a, b = (tx.token_in, tx.token_out) if isinstance(tx, Swap) else (tx.token0, tx.token1)
        t0, t1 = min(a, b), max(a, b)
        keys += [compute_leaf_key(KIND_BALANCE, t0, sender),
                 compute_leaf_key(KIND_BALANCE, t1, sender), compute_leaf_key(KIND_POOL, t0, t1)]
        if not isinstance(tx, Swap):
            keys.append(compute_leaf_key(KIND_SHARES, _pool_id(t0, t1), sender))
    elif isinstance(tx, Withdraw):
        keys += [compute_leaf_key(KIND_TOKEN, tx.token),
                 compute_leaf_key(KIND_BALANCE, tx.token, sender), compute_leaf_key(KIND_META),
                 compute_leaf_key(KIND_WITHDRAW, len(state.withdrawals))]
    return list(dict.fromkeys(keys))
