"""Hypothesis state machine over the Plasma ledger: deposits, payments (honest, double
spends, forged), blocks, and a watcher re-executing every block the operator seals."""

from __future__ import annotations

from eth_account import Account
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from layerlab.l2.plasma.machine import ChildBlock, ChildChain, InvalidBlockFound
from layerlab.l2.plasma.types import ETH, Output, PlasmaError, Transaction, plasma_domain

DOMAIN = plasma_domain(1, b"\x01" * 20)
KEYS = [bytes([i + 7]) * 32 for i in range(3)]
ADDRS = [bytes.fromhex(Account.from_key(k).address[2:]) for k in KEYS]
KEY_OF = dict(zip(ADDRS, KEYS, strict=True))


class Ledger(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.operator = ChildChain(DOMAIN)
        self.watcher = ChildChain(DOMAIN)
        self.deposited = 0
        self.fees = 0
        self.deposit_no = 0
        self.spent: set[int] = set()
        self.sealed_spent: set[int] = set()
        """Inputs of transactions in sealed blocks: what the watcher knows is spent."""

    @rule(who=st.integers(0, 2), amount=st.integers(1, 10**6))
    def deposit(self, who: int, amount: int) -> None:
        self.deposit_no += 1
        blknum = self.operator.next_child_block - 1000 + self.deposit_no
        for chain in (self.operator, self.watcher):
            chain.add_deposit(blknum, ADDRS[who], ETH, amount)
        self.deposited += amount

    @rule(data=st.data(), fee=st.integers(0, 3), forge=st.booleans(), reuse=st.booleans())
    def pay(self, data: st.DataObject, fee: int, forge: bool, reuse: bool) -> None:
        spendable = sorted(self.operator.utxos)
        if reuse and self.spent:
            position = data.draw(st.sampled_from(sorted(self.spent)))
        elif spendable:
            position = data.draw(st.sampled_from(spendable))
        else:
            return
        utxo = self.operator.utxos.get(position)
        amount = utxo.output.amount if utxo else 5
        owner = utxo.output.owner if utxo else ADDRS[0]
        to = data.draw(st.sampled_from(ADDRS))
        if amount - fee <= 0:
            return
        tx = Transaction((position,), (Output(to, ETH, amount - fee),))
        key = KEYS[(ADDRS.index(owner) + 1) % 3] if forge else KEY_OF[owner]
        honest = utxo is not None and not forge and position not in self.operator.pending_spent
        before = (dict(self.operator.utxos), len(self.operator.pending))
        try:
            self.operator.admit(tx.sign(DOMAIN, [key]))
        except PlasmaError:
            assert not honest
            assert (dict(self.operator.utxos), len(self.operator.pending)) == before
            return
        assert honest
        self.fees += fee
        self.spent.add(position)

    @precondition(lambda self: len(self.operator.pending) > 0)
    @rule()
    def seal(self) -> None:
        self.deposit_no = 0
        self.sealed_spent |= self.operator.pending_spent
        block = self.operator.seal()
        self.watcher.apply_block(ChildBlock.from_json(block.to_json()))

    @precondition(lambda self: len(self.operator.utxos) > 0)
    @rule(data=st.data())
    def operator_double_spends(self, data: st.DataObject) -> None:
        """A block with a spent or invented input: the watcher refuses it, unchanged."""
        if not self.sealed_spent:
            return
        position = data.draw(st.sampled_from(sorted(self.sealed_spent)))
        forged = Transaction((position,), (Output(ADDRS[0], ETH, 1),)).sign(DOMAIN, [KEYS[0]])
        bad = ChildBlock(self.watcher.next_child_block, (forged,))
        before = dict(self.watcher.utxos)
        try:
            self.watcher.apply_block(bad)
        except InvalidBlockFound:
            assert self.watcher.utxos == before
            return
        raise AssertionError("the watcher accepted a block spending a spent output")

    @invariant()
    def value_is_conserved(self) -> None:
        total = sum(u.output.amount for u in self.operator.utxos.values())
        pending_out = sum(o.amount for s in self.operator.pending for o in s.tx.outputs)
        pending_in = sum(self.operator.utxos[p].output.amount
                         for s in self.operator.pending for p in s.tx.inputs)
        assert total - pending_in + pending_out + self.fees == self.deposited

    @invariant()
    def watcher_agrees_on_sealed_blocks(self) -> None:
        assert set(self.watcher.utxos) == set(self.operator.utxos)


TestLedger = Ledger.TestCase
TestLedger.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
