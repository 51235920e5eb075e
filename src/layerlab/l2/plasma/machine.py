"""The Plasma child chain's ledger: the UTXO set, transaction validity, blocks.

Pure: no I/O and no clock. The operator uses a :class:`ChildChain` to admit transactions
and seal blocks; a watcher uses one to re-execute every block it is shown and to find the
first invalid transaction (Plasma MVP's rule: a user who sees an invalid block exits every
output older than it). A refused transaction raises :class:`PlasmaError` with a ``check``
and leaves the chain as it was.

A transaction is valid when (Plasma MVP, "Minimal Viable Plasma", 2018):

- it has at least one input (a transaction without inputs is a deposit, created on L1 only);
- each input is an unspent output of the chain (``unknown-input``) not already spent by
  an admitted transaction (``spent-input``);
- all inputs and outputs have one token (``mixed-tokens``);
- input ``i`` is signed by the owner of the output it spends (``signature``);
- the inputs' total covers the outputs' total (``value``); the rest is the fee.

An admitted transaction's outputs can be spent once its block is sealed (only then do they
have a position). Deposits are blocks of their own, numbered between child blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

from layerlab.crypto.eip712 import Domain
from layerlab.errors import MalformedEncoding
from layerlab.l2.plasma.types import (
    CHILD_BLOCK_INTERVAL,
    MAX_INPUTS,
    MAX_TXS_PER_BLOCK,
    Output,
    PlasmaError,
    SignedTransaction,
    Transaction,
    Utxo,
    compute_block_root,
    deposit_transaction,
    encode_position,
    prove_inclusion,
)

__all__ = ["ChildBlock", "ChildChain", "InvalidBlockFound", "spend", "validate_transaction"]

MAX_DEPOSITS_PER_INTERVAL: Final = CHILD_BLOCK_INTERVAL - 1


@dataclass(frozen=True)
class ChildBlock:
    """A sealed block: its number and its transactions in order (a deposit block holds its
    one unsigned deposit transaction)."""

    blknum: int
    txs: tuple[SignedTransaction, ...]

    @cached_property
    def tx_hashes(self) -> tuple[bytes, ...]:
        return tuple(s.tx.tx_hash for s in self.txs)

    @cached_property
    def root(self) -> bytes:
        return compute_block_root(self.tx_hashes)

    @property
    def is_deposit(self) -> bool:
        return self.blknum % CHILD_BLOCK_INTERVAL != 0

    def proof(self, txindex: int) -> tuple[int, ...]:
        return prove_inclusion(self.tx_hashes, txindex)

    def to_json(self) -> dict[str, Any]:
        return {"blknum": self.blknum, "root": "0x" + self.root.hex(),
                "txs": [s.to_json() for s in self.txs]}

    @classmethod
    def from_json(cls, data: Any) -> ChildBlock:
        try:
            block = cls(int(data["blknum"]),
                        tuple(SignedTransaction.from_json(t) for t in data["txs"]))
            claimed = bytes.fromhex(str(data["root"]).removeprefix("0x"))
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedEncoding(f"Plasma block: {exc}") from exc
        if claimed != block.root:
            raise MalformedEncoding(f"Plasma block {block.blknum}: its transactions hash to "
                                    f"0x{block.root.hex()}, not the claimed 0x{claimed.hex()}")
        return block


def validate_transaction(utxos: Mapping[int, Utxo], spent: Iterable[int] | frozenset[int],
                         stx: SignedTransaction, domain: Domain) -> int:
    """Check ``stx`` against the unspent outputs; returns its fee. Raises PlasmaError."""
    tx = stx.tx
    spent_set = spent if isinstance(spent, (set, frozenset)) else frozenset(spent)
    if not tx.inputs:
        raise PlasmaError("malformed", "a transaction without inputs is a deposit; deposits "
                                       "are made on L1")
    if len(stx.signatures) != len(tx.inputs):
        raise PlasmaError("signature", f"{len(tx.inputs)} inputs but {len(stx.signatures)} "
                                       f"signatures")
    total_in = 0
    owners: list[bytes] = []
    for position in tx.inputs:
        if position in spent_set:
            raise PlasmaError("spent-input", f"input {position} is already spent")
        utxo = utxos.get(position)
        if utxo is None:
            raise PlasmaError("unknown-input", f"input {position} is not an output of the chain")
        if utxo.output.token != tx.token:
            raise PlasmaError("mixed-tokens", f"input {position} is token "
                                              f"0x{utxo.output.token.hex()}, the outputs "
                                              f"0x{tx.token.hex()}")
        total_in += utxo.output.amount
        owners.append(utxo.output.owner)
    for i, (owner, signer) in enumerate(zip(owners, stx.signers(domain), strict=True)):
        if signer != owner:
            shown = "nothing" if signer is None else "0x" + signer.hex()
            raise PlasmaError("signature", f"input {i} ({tx.inputs[i]}) is owned by "
                                           f"0x{owner.hex()}; its signature recovers to {shown}")
    total_out = sum(o.amount for o in tx.outputs)
    if total_out > total_in:
        raise PlasmaError("value", f"outputs total {total_out}, inputs only {total_in}")
    return total_in - total_out


class InvalidBlockFound(PlasmaError):
    """A block holds a transaction the chain's rules refuse: ``txindex`` names it."""

    def __init__(self, blknum: int, txindex: int, cause: PlasmaError) -> None:
        super().__init__(cause.check, f"block {blknum}, transaction {txindex}: {cause}")
        self.blknum = blknum
        self.txindex = txindex
        self.cause = cause


@dataclass
class ChildChain:
    """The ledger of one child chain: the unspent outputs, the sealed blocks, and (for the
    operator) the admitted transactions waiting for the next block."""

    domain: Domain
    utxos: dict[int, Utxo] = field(default_factory=dict)
    blocks: dict[int, ChildBlock] = field(default_factory=dict)
    pending: list[SignedTransaction] = field(default_factory=list)
    pending_spent: set[int] = field(default_factory=set)
    next_child_block: int = CHILD_BLOCK_INTERVAL
    max_block_txs: int = MAX_TXS_PER_BLOCK

    # -- deposits -------------------------------------------------------------------------
    def add_deposit(self, blknum: int, owner: bytes, token: bytes, amount: int) -> ChildBlock:
        """Record the deposit block ``blknum`` the L1 contract created."""
        if blknum in self.blocks:
            raise PlasmaError("deposit", f"block {blknum} is already known")
        if blknum % CHILD_BLOCK_INTERVAL == 0:
            raise PlasmaError("deposit", f"{blknum} is a child block number, not a deposit's")
        tx = deposit_transaction(blknum, owner, token, amount)
        block = ChildBlock(blknum, (SignedTransaction(tx, ()),))
        self.commit_block(block)
        return block

    # -- the operator's side --------------------------------------------------------------
    def admit(self, stx: SignedTransaction) -> int:
        """Validate ``stx`` and queue it for the next block; returns its fee."""
        if len(self.pending) >= self.max_block_txs:
            raise PlasmaError("block-full", f"the next block already holds "
                                            f"{self.max_block_txs} transactions")
        fee = validate_transaction(self.utxos, self.pending_spent, stx, self.domain)
        self.pending.append(stx)
        self.pending_spent.update(stx.tx.inputs)
        return fee

    def seal(self) -> ChildBlock:
        """The next child block, of every admitted transaction; applied to the ledger."""
        block = ChildBlock(self.next_child_block, tuple(self.pending))
        self.commit_block(block)
        self.pending = []
        self.pending_spent = set()
        return block

    # -- the watcher's side ---------------------------------------------------------------
    def apply_block(self, block: ChildBlock) -> None:
        """Re-execute a child block the operator published; raises InvalidBlockFound at its
        first invalid transaction and leaves the ledger as it was."""
        if block.is_deposit:
            raise PlasmaError("malformed", f"block {block.blknum} is a deposit block; deposits "
                                           f"come from the L1 contract's events")
        if block.blknum != self.next_child_block:
            raise PlasmaError("unknown-block", f"expected child block {self.next_child_block}, "
                                               f"got {block.blknum}")
        spent: set[int] = set()
        for i, stx in enumerate(block.txs):
            try:
                validate_transaction(self.utxos, spent, stx, self.domain)
            except PlasmaError as exc:
                raise InvalidBlockFound(block.blknum, i, exc) from exc
            spent.update(stx.tx.inputs)
        self.commit_block(block)

    def skip_block(self, blknum: int) -> None:
        """Move past a child block whose data is withheld (its outputs stay unknown)."""
        if blknum != self.next_child_block:
            raise PlasmaError("unknown-block", f"expected child block {self.next_child_block}")
        self.next_child_block += CHILD_BLOCK_INTERVAL

    # -- reads ----------------------------------------------------------------------------
    def utxos_of(self, owner: bytes) -> list[Utxo]:
        return [u for p, u in sorted(self.utxos.items()) if u.output.owner == owner
                and p not in self.pending_spent]

    def balance(self, owner: bytes, token: bytes) -> int:
        return sum(u.output.amount for u in self.utxos_of(owner) if u.output.token == token)

    def locate(self, tx_hash: bytes) -> tuple[int, int] | None:
        """``(blknum, txindex)`` of a sealed transaction, or None."""
        for blknum, block in self.blocks.items():
            if tx_hash in block.tx_hashes:
                return blknum, block.tx_hashes.index(tx_hash)
        return None

    def commit_block(self, block: ChildBlock) -> None:
        """Apply a block known to be valid (sealed here, or restored from disk)."""
        for txindex, stx in enumerate(block.txs):
            for position in stx.tx.inputs:
                self.utxos.pop(position, None)
            for oindex, output in enumerate(stx.tx.outputs):
                position = encode_position(block.blknum, txindex, oindex)
                self.utxos[position] = Utxo(position, output, stx.tx)
        self.blocks[block.blknum] = block
        if not block.is_deposit:
            self.next_child_block = block.blknum + CHILD_BLOCK_INTERVAL

    def remove_exited(self, position: int) -> None:
        """An output exited on L1 is gone from the child chain too."""
        self.utxos.pop(position, None)


def spend(utxos: Iterable[Utxo], to: bytes, amount: int, change_to: bytes,
          metadata: bytes = b"\0" * 32) -> Transaction:
    """A payment of ``amount`` to ``to`` from ``utxos``, largest first (at most four), with
    the change to ``change_to``."""
    chosen: list[Utxo] = []
    total = 0
    for utxo in sorted(utxos, key=lambda u: -u.output.amount):
        if total >= amount:
            break
        chosen.append(utxo)
        total += utxo.output.amount
    if total < amount or not chosen:
        raise PlasmaError("value", f"outputs total {total}, cannot pay {amount}")
    if len(chosen) > MAX_INPUTS:
        raise PlasmaError("value", f"paying {amount} needs {len(chosen)} inputs, at most "
                                   f"{MAX_INPUTS}: merge outputs first")
    token = chosen[0].output.token
    outputs = [Output(to, token, amount)]
    if total > amount:
        outputs.append(Output(change_to, token, total - amount))
    return Transaction(tuple(sorted(u.position for u in chosen)), tuple(outputs), metadata)
