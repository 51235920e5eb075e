"""The ZK rollup's L2 state and the witness of a batch for ``circuits/zk_rollup.circom``.

Accounts are leaves of a Poseidon sparse Merkle tree (:mod:`layerlab.primitives.smt` with
:data:`~layerlab.crypto.poseidon.POSEIDON_HASHER`, depth ``D``): key = account index,
value = ``Poseidon(ax, ay, balance, nonce)`` where ``(ax, ay)`` is the owner's Baby Jubjub
key. Balances and amounts are in gwei (the L1 contract converts), amounts at most 48 bits.

A batch applies, in this order, ``M`` queued deposits (credited to an account of the same
key, or inserted at a new index), ``N`` transfers and ``W`` withdrawals (a debit whose
amount the L1 contract pays to an L1 address), each signed with EdDSA-Poseidon
(:mod:`layerlab.crypto.babyjubjub`). :func:`build_batch` checks each step as the circuit
does and refuses with :class:`ZkTxError` what the circuit could not prove, then returns the
circuit's inputs and the published bytes; the public input of the proof is
:func:`compute_public_hash` of those bytes, which the contract recomputes with SHA-256.

This is not the optimistic rollup's machine (:mod:`layerlab.l2.rollup.machine`): that one
keys accounts by secp256k1 address and signs with EIP-712, which would cost ~1.5M
constraints a signature in-circuit; the operations proven here are its transfers,
deposits and withdrawals of ETH.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from layerlab.crypto.babyjubjub import EdDSASignature, Point, prv2pub, sign_poseidon, verify_poseidon
from layerlab.crypto.poseidon import POSEIDON_HASHER, poseidon
from layerlab.errors import LayerlabError
from layerlab.primitives.smt import SparseMerkleTree

__all__ = [
    "AMOUNT_BITS",
    "Account",
    "BatchShape",
    "BatchWitness",
    "QueuedDeposit",
    "Transfer",
    "Withdrawal",
    "ZkState",
    "ZkTxError",
    "apply_deposit",
    "apply_transfer",
    "apply_withdrawal",
    "build_batch",
    "compute_public_hash",
    "sign_transfer",
    "sign_withdrawal",
]

AMOUNT_BITS: Final = 48
BALANCE_BITS: Final = 64
GWEI: Final = 10**9
_DUMMY_KEY: Final = bytes(32)
"""Padding slots carry a valid signature of this key over 0 (the circuit ignores it, but
circomlib's EdDSA verifier needs a point on the curve to compute at all)."""


class ZkTxError(LayerlabError):
    """A step the circuit cannot prove; ``check`` names the failed check."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True, slots=True)
class BatchShape:
    """The circuit's build parameters: transfers, deposits and withdrawals per batch, depth."""

    n_transfers: int
    n_deposits: int
    n_withdrawals: int
    depth: int

    def __post_init__(self) -> None:
        if self.depth % 8 or not 8 <= self.depth <= 32:
            raise ValueError(f"tree depth {self.depth} must be a multiple of 8 in 8..32")
        if min(self.n_transfers, self.n_deposits, self.n_withdrawals) < 1:
            raise ValueError(f"a batch needs at least one slot of each kind, got {self}")

    @property
    def index_bytes(self) -> int:
        return self.depth // 8

    @property
    def transfer_bytes(self) -> int:
        return 2 * self.index_bytes + AMOUNT_BITS // 8

    @property
    def withdrawal_bytes(self) -> int:
        return self.index_bytes + 20 + AMOUNT_BITS // 8

    @property
    def data_bytes(self) -> int:
        """Length of ``submitBatch``'s calldata ``data``."""
        return (self.n_transfers * self.transfer_bytes + self.n_deposits * self.index_bytes
                + self.n_withdrawals * self.withdrawal_bytes)


@dataclass(frozen=True, slots=True)
class Account:
    ax: int
    ay: int
    balance: int
    nonce: int

    @property
    def leaf(self) -> int:
        return poseidon([self.ax, self.ay, self.balance, self.nonce])


@dataclass(frozen=True, slots=True)
class QueuedDeposit:
    """A deposit in the L1 contract's queue: a Baby Jubjub key and an amount in gwei."""

    ax: int
    ay: int
    amount: int

    def record(self) -> bytes:
        """The 70 bytes the contract hashes for it (``ax || ay || uint48 amount``)."""
        return self.ax.to_bytes(32) + self.ay.to_bytes(32) + self.amount.to_bytes(6)


@dataclass(frozen=True, slots=True)
class Transfer:
    from_index: int
    to_index: int
    amount: int
    nonce: int
    signature: EdDSASignature

    @staticmethod
    def message(from_index: int, to_index: int, amount: int, nonce: int) -> int:
        return poseidon([1, from_index, to_index, amount, nonce])


@dataclass(frozen=True, slots=True)
class Withdrawal:
    from_index: int
    recipient: bytes
    amount: int
    nonce: int
    signature: EdDSASignature

    @staticmethod
    def message(from_index: int, recipient: bytes, amount: int, nonce: int) -> int:
        return poseidon([2, from_index, int.from_bytes(recipient), amount, nonce])


def sign_transfer(prv: bytes, from_index: int, to_index: int, amount: int, nonce: int) -> Transfer:
    msg = Transfer.message(from_index, to_index, amount, nonce)
    return Transfer(from_index, to_index, amount, nonce, sign_poseidon(prv, msg))


def sign_withdrawal(prv: bytes, from_index: int, recipient: bytes, amount: int,
                    nonce: int) -> Withdrawal:
    msg = Withdrawal.message(from_index, recipient, amount, nonce)
    return Withdrawal(from_index, recipient, amount, nonce, sign_poseidon(prv, msg))


@dataclass(slots=True)
class ZkState:
    """Accounts by index and the Poseidon tree over them (mutated only by :func:`build_batch`)."""

    depth: int
    accounts: dict[int, Account] = field(default_factory=dict)
    tree: SparseMerkleTree = field(init=False)

    def __post_init__(self) -> None:
        self.tree = SparseMerkleTree(POSEIDON_HASHER, self.depth)
        for index, account in self.accounts.items():
            self.tree.insert(index, account.leaf)

    @property
    def root(self) -> int:
        return self.tree.root

    def get_account(self, index: int) -> Account:
        account = self.accounts.get(index)
        if account is None:
            raise ZkTxError("unknown-account", f"account {index} does not exist")
        return account

    def find_index(self, pub: Point) -> int | None:
        return next((i for i, a in sorted(self.accounts.items()) if (a.ax, a.ay) == pub), None)

    def next_free_index(self) -> int:
        index = 0
        while index in self.accounts:
            index += 1
        if index >= 1 << self.depth:
            raise ZkTxError("tree-full", f"all {1 << self.depth} accounts are taken")
        return index

    def _siblings(self, key: int) -> list[int]:
        proof = self.tree.prove(key)
        return list(proof.siblings) + [0] * (self.depth - len(proof.siblings))

    def put(self, index: int, account: Account) -> None:
        """Set account ``index`` with no checks: a replay of data an L1 verified."""
        self._write(index, account)

    def _write(self, index: int, account: Account) -> None:
        self.accounts[index] = account
        self.tree.set(index, account.leaf)


@dataclass(frozen=True, slots=True)
class BatchWitness:
    """What proving and submitting one batch takes."""

    shape: BatchShape
    old_root: int
    new_root: int
    data: bytes
    """``submitBatch``'s calldata (transfers, deposit indices, withdrawals)."""
    deposit_records: bytes
    """What the contract appends from its queue (``QueuedDeposit.record`` each, zero padded)."""
    public_hash: int
    inputs: dict[str, Any]
    """The circuit's input signals (decimal strings), for circom's witness generator."""


def compute_public_hash(old_root: int, new_root: int, data: bytes, deposit_records: bytes) -> int:
    """``uint256(sha256(oldRoot || newRoot || data || depositRecords))`` with the top 3 bits
    cleared, the circuit's one public signal."""
    digest = hashlib.sha256(old_root.to_bytes(32) + new_root.to_bytes(32) + data
                            + deposit_records).digest()
    return int.from_bytes(digest) & ((1 << 253) - 1)


def _check_amount(amount: int, what: str) -> None:
    if not 0 < amount < 1 << AMOUNT_BITS:
        raise ZkTxError("amount", f"{what} amount {amount} gwei is not in 1..2^{AMOUNT_BITS}-1")


def _check_signed(state: ZkState, index: int, nonce: int, msg: int, sig: EdDSASignature,
                  amount: int, what: str) -> Account:
    account = state.get_account(index)
    if not verify_poseidon(msg, sig, (account.ax, account.ay)):
        raise ZkTxError("signature", f"{what} from account {index}: the signature does not "
                                     "verify under the account's key")
    if nonce != account.nonce:
        raise ZkTxError("nonce", f"{what} from account {index} has nonce {nonce}, the "
                                 f"account's next is {account.nonce}")
    if account.balance < amount:
        raise ZkTxError("balance", f"{what} from account {index}: holds {account.balance} gwei, "
                                   f"needs {amount}")
    return account


def apply_deposit(state: ZkState, dep: QueuedDeposit) -> int:
    """Credit ``dep`` as a batch would (to the account of its key, or a new one at the next
    free index) without a witness; returns the index. Raises :class:`ZkTxError`, nothing
    changed."""
    _check_amount(dep.amount, "deposit")
    index = state.find_index((dep.ax, dep.ay))
    before = Account(dep.ax, dep.ay, 0, 0) if index is None else state.accounts[index]
    index = state.next_free_index() if index is None else index
    if before.balance + dep.amount >= 1 << BALANCE_BITS:
        raise ZkTxError("overflow", f"deposit to account {index} overflows its balance")
    state._write(index, Account(dep.ax, dep.ay, before.balance + dep.amount, before.nonce))
    return index


def apply_transfer(state: ZkState, tx: Transfer) -> None:
    """Check ``tx`` as the circuit does and apply it (no witness); on :class:`ZkTxError`
    nothing changed."""
    _check_amount(tx.amount, "transfer")
    msg = Transfer.message(tx.from_index, tx.to_index, tx.amount, tx.nonce)
    sender = _check_signed(state, tx.from_index, tx.nonce, msg, tx.signature, tx.amount,
                           "transfer")
    receiver = state.get_account(tx.to_index)
    if tx.to_index != tx.from_index and receiver.balance + tx.amount >= 1 << BALANCE_BITS:
        raise ZkTxError("overflow", f"transfer to account {tx.to_index} overflows its balance")
    state._write(tx.from_index, Account(sender.ax, sender.ay, sender.balance - tx.amount,
                                        sender.nonce + 1))
    receiver = state.accounts[tx.to_index]
    state._write(tx.to_index, Account(receiver.ax, receiver.ay, receiver.balance + tx.amount,
                                      receiver.nonce))


def apply_withdrawal(state: ZkState, w: Withdrawal) -> None:
    """Check ``w`` as the circuit does and debit it (no witness); on :class:`ZkTxError`
    nothing changed."""
    _check_amount(w.amount, "withdrawal")
    if len(w.recipient) != 20:
        raise ZkTxError("malformed", f"withdrawal recipient is {len(w.recipient)} bytes, not 20")
    msg = Withdrawal.message(w.from_index, w.recipient, w.amount, w.nonce)
    sender = _check_signed(state, w.from_index, w.nonce, msg, w.signature, w.amount, "withdrawal")
    state._write(w.from_index, Account(sender.ax, sender.ay, sender.balance - w.amount,
                                       sender.nonce + 1))


def _dummy_signature() -> tuple[Point, EdDSASignature]:
    return prv2pub(_DUMMY_KEY), sign_poseidon(_DUMMY_KEY, 0)


def _s(values: Sequence[int]) -> list[str]:
    return [str(v) for v in values]


def build_batch(state: ZkState, shape: BatchShape, deposits: Sequence[QueuedDeposit],
                transfers: Sequence[Transfer], withdrawals: Sequence[Withdrawal]) -> BatchWitness:
    """Apply one batch to ``state`` and return its witness; on :class:`ZkTxError` the state
    is unchanged."""
    if state.depth != shape.depth:
        raise ValueError(f"state depth {state.depth} differs from the circuit's {shape.depth}")
    for what, items, cap in (("deposits", deposits, shape.n_deposits),
                             ("transfers", transfers, shape.n_transfers),
                             ("withdrawals", withdrawals, shape.n_withdrawals)):
        if len(items) > cap:
            raise ZkTxError("batch-size", f"{len(items)} {what} exceed the circuit's {cap}")
    saved_accounts, saved_root = dict(state.accounts), state.root
    try:
        return _build(state, shape, deposits, transfers, withdrawals)
    except BaseException:
        state.accounts = saved_accounts
        state.tree.checkout(saved_root)  # nodes are content addressed: a root is a snapshot
        raise


def _build(state: ZkState, shape: BatchShape, deposits: Sequence[QueuedDeposit],
           transfers: Sequence[Transfer], withdrawals: Sequence[Withdrawal]) -> BatchWitness:
    ib = shape.index_bytes
    old_root = state.root
    dummy_pub, dummy_sig = _dummy_signature()
    zeros = [0] * shape.depth
    inp: dict[str, list[Any]] = {k: [] for k in (
        "depIndex", "depAx", "depAy", "depAmount", "depIsNew", "depBalance", "depNonce",
        "depSiblings", "depOtherKey", "depOtherValue", "depIsOld0",
        "txFrom", "txTo", "txAmount", "txAx", "txAy", "txBalance", "txNonce", "txSiblings",
        "txR8x", "txR8y", "txS", "txToAx", "txToAy", "txToBalance", "txToNonce", "txToSiblings",
        "wFrom", "wRecipient", "wAmount", "wAx", "wAy", "wBalance", "wNonce", "wSiblings",
        "wR8x", "wR8y", "wS")}
    dep_indices = b""
    records = b""
    for i in range(shape.n_deposits):
        if i >= len(deposits):
            for k, v in (("depIndex", 0), ("depAx", 0), ("depAy", 0), ("depAmount", 0),
                         ("depIsNew", 0), ("depBalance", 0), ("depNonce", 0), ("depOtherKey", 0),
                         ("depOtherValue", 0), ("depIsOld0", 0)):
                inp[k].append(v)
            inp["depSiblings"].append(zeros)
            dep_indices += bytes(ib)
            records += bytes(70)
            continue
        dep = deposits[i]
        _check_amount(dep.amount, "deposit")
        index = state.find_index((dep.ax, dep.ay))
        is_new = index is None
        if index is None:
            index = state.next_free_index()
            proof = state.tree.prove(index)
            before = Account(dep.ax, dep.ay, 0, 0)
            other_key, other_value = (0, 0) if proof.is_old0 else (proof.not_found_key,
                                                                    proof.not_found_value)
            is_old0 = int(proof.is_old0)
        else:
            before = state.accounts[index]
            other_key = other_value = is_old0 = 0
        if before.balance + dep.amount >= 1 << BALANCE_BITS:
            raise ZkTxError("overflow", f"deposit to account {index} overflows its balance")
        inp["depSiblings"].append(state._siblings(index))
        for k, v in (("depIndex", index), ("depAx", dep.ax), ("depAy", dep.ay),
                     ("depAmount", dep.amount), ("depIsNew", int(is_new)),
                     ("depBalance", before.balance), ("depNonce", before.nonce),
                     ("depOtherKey", other_key), ("depOtherValue", other_value),
                     ("depIsOld0", is_old0)):
            inp[k].append(v)
        state._write(index, Account(dep.ax, dep.ay, before.balance + dep.amount, before.nonce))
        dep_indices += index.to_bytes(ib)
        records += dep.record()

    tx_data = b""
    for i in range(shape.n_transfers):
        if i >= len(transfers):
            for k, v in (("txFrom", 0), ("txTo", 0), ("txAmount", 0), ("txAx", dummy_pub[0]),
                         ("txAy", dummy_pub[1]), ("txBalance", 0), ("txNonce", 0),
                         ("txR8x", dummy_sig.r8[0]), ("txR8y", dummy_sig.r8[1]),
                         ("txS", dummy_sig.s), ("txToAx", 0), ("txToAy", 0), ("txToBalance", 0),
                         ("txToNonce", 0)):
                inp[k].append(v)
            inp["txSiblings"].append(zeros)
            inp["txToSiblings"].append(zeros)
            tx_data += bytes(shape.transfer_bytes)
            continue
        tx = transfers[i]
        _check_amount(tx.amount, "transfer")
        msg = Transfer.message(tx.from_index, tx.to_index, tx.amount, tx.nonce)
        sender = _check_signed(state, tx.from_index, tx.nonce, msg, tx.signature, tx.amount,
                               "transfer")
        state.get_account(tx.to_index)
        inp["txSiblings"].append(state._siblings(tx.from_index))
        state._write(tx.from_index, Account(sender.ax, sender.ay, sender.balance - tx.amount,
                                            sender.nonce + 1))
        receiver = state.accounts[tx.to_index]
        if receiver.balance + tx.amount >= 1 << BALANCE_BITS:
            raise ZkTxError("overflow", f"transfer to account {tx.to_index} overflows its balance")
        inp["txToSiblings"].append(state._siblings(tx.to_index))
        state._write(tx.to_index, Account(receiver.ax, receiver.ay, receiver.balance + tx.amount,
                                          receiver.nonce))
        for k, v in (("txFrom", tx.from_index), ("txTo", tx.to_index), ("txAmount", tx.amount),
                     ("txAx", sender.ax), ("txAy", sender.ay), ("txBalance", sender.balance),
                     ("txNonce", sender.nonce), ("txR8x", tx.signature.r8[0]),
                     ("txR8y", tx.signature.r8[1]), ("txS", tx.signature.s),
                     ("txToAx", receiver.ax), ("txToAy", receiver.ay),
                     ("txToBalance", receiver.balance), ("txToNonce", receiver.nonce)):
            inp[k].append(v)
        tx_data += tx.from_index.to_bytes(ib) + tx.to_index.to_bytes(ib) + tx.amount.to_bytes(6)

    w_data = b""
    for i in range(shape.n_withdrawals):
        if i >= len(withdrawals):
            for k, v in (("wFrom", 0), ("wRecipient", 0), ("wAmount", 0), ("wAx", dummy_pub[0]),
                         ("wAy", dummy_pub[1]), ("wBalance", 0), ("wNonce", 0),
                         ("wR8x", dummy_sig.r8[0]), ("wR8y", dummy_sig.r8[1]), ("wS", dummy_sig.s)):
                inp[k].append(v)
            inp["wSiblings"].append(zeros)
            w_data += bytes(shape.withdrawal_bytes)
            continue
        w = withdrawals[i]
        _check_amount(w.amount, "withdrawal")
        if len(w.recipient) != 20:
            raise ZkTxError("malformed", f"withdrawal recipient is {len(w.recipient)} bytes, not 20")
        msg = Withdrawal.message(w.from_index, w.recipient, w.amount, w.nonce)
        sender = _check_signed(state, w.from_index, w.nonce, msg, w.signature, w.amount,
                               "withdrawal")
        inp["wSiblings"].append(state._siblings(w.from_index))
        state._write(w.from_index, Account(sender.ax, sender.ay, sender.balance - w.amount,
                                           sender.nonce + 1))
        for k, v in (("wFrom", w.from_index), ("wRecipient", int.from_bytes(w.recipient)),
                     ("wAmount", w.amount), ("wAx", sender.ax), ("wAy", sender.ay),
                     ("wBalance", sender.balance), ("wNonce", sender.nonce),
                     ("wR8x", w.signature.r8[0]), ("wR8y", w.signature.r8[1]),
                     ("wS", w.signature.s)):
            inp[k].append(v)
        w_data += w.from_index.to_bytes(ib) + w.recipient + w.amount.to_bytes(6)

    new_root = state.root
    data = tx_data + dep_indices + w_data
    public_hash = compute_public_hash(old_root, new_root, data, records)
    inputs: dict[str, Any] = {"oldRoot": str(old_root), "newRoot": str(new_root)}
    for k, values in inp.items():
        inputs[k] = [_s(v) if isinstance(v, list) else str(v) for v in values]
    return BatchWitness(shape, old_root, new_root, data, records, public_hash, inputs)
