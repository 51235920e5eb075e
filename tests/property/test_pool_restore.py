"""Property: no acknowledged, still-valid transaction is missing after a restart (issue 17).

A hypothesis state machine drives an in-process node on a LevelDB data dir through random
pool histories: admissions (in and out of nonce order, within and beyond the gap limit),
fee-bump replacements, blocks, and restarts (the node object dropped and a new one
opened on the same directory, which sees exactly what a SIGKILLed process left on disk,
since every acknowledgement is written before it returns). The model is the set of
acknowledged transactions that no later acknowledged replacement superseded and whose
nonce no block used; after every restart the pool must hold exactly that set.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from eth_account import Account
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from layerlab.errors import InvalidTransaction
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.node import MiningMode, Node

CONFIG = ChainConfig(genesis_timestamp=1_700_000_000, dev_account_count=4)
ACCOUNTS = CONFIG.dev_accounts
GWEI = 10**9


def _sign(sender: int, nonce: int, tip: int) -> bytes:
    tx = {"chainId": CONFIG.chain_id, "nonce": nonce, "to": ACCOUNTS[3].address, "value": tip,
          "gas": 21000, "maxFeePerGas": 50 * GWEI * tip, "maxPriorityFeePerGas": GWEI * tip}
    return bytes(Account.sign_transaction(tx, ACCOUNTS[sender].private_key).raw_transaction)


class PoolHistory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pool-history-"))
        self.node = Node(CONFIG, data_dir=self.dir, mining=MiningMode.MANUAL)
        self.model: dict[tuple[int, int], tuple[bytes, int]] = {}
        """(sender, nonce) -> (hash, tip) of the live acknowledged transaction."""
        self.next_nonce = {s: 0 for s in range(3)}
        """Per sender, the first nonce not yet acknowledged (to draw near-order nonces)."""

    def _state_nonce(self, sender: int) -> int:
        return self.node.reader().get_nonce(ACCOUNTS[sender].address_bytes)

    @rule(sender=st.integers(0, 2), skip=st.integers(-2, 70), tip=st.integers(1, 3))
    def admit(self, sender: int, skip: int, tip: int) -> None:
        nonce = max(0, self.next_nonce[sender] + skip) if skip > 0 else self.next_nonce[sender]
        old = self.model.get((sender, nonce))
        try:
            tx_hash = self.node.submit_raw(_sign(sender, nonce, tip + (old[1] if old else 0)))
        except InvalidTransaction as exc:
            assert exc.reason in ("nonce-gap", "nonce-too-low", "replacement-underpriced",
                                  "already-known"), exc
            return
        self.model[(sender, nonce)] = (tx_hash, tip + (old[1] if old else 0))
        self.next_nonce[sender] = max(self.next_nonce[sender], nonce + 1)

    @rule(sender=st.integers(0, 2), count=st.integers(20, 60))
    def burst(self, sender: int, count: int) -> None:
        """A run of consecutive nonces, as a wallet or a load generator sends them."""
        for _ in range(count):
            nonce = self.next_nonce[sender]
            try:
                tx_hash = self.node.submit_raw(_sign(sender, nonce, 1))
            except InvalidTransaction as exc:  # beyond the gap limit of a queued run
                assert exc.reason == "nonce-gap", exc
                return
            self.model[(sender, nonce)] = (tx_hash, 1)
            self.next_nonce[sender] = nonce + 1

    @rule(sender=st.integers(0, 2), data=st.data())
    def replace(self, sender: int, data: st.DataObject) -> None:
        keys = sorted(k for k in self.model if k[0] == sender)
        if not keys:
            return
        key = data.draw(st.sampled_from(keys))
        tx_hash = self.node.submit_raw(_sign(sender, key[1], self.model[key][1] * 2))
        self.model[key] = (tx_hash, self.model[key][1] * 2)

    @rule()
    def mine(self) -> None:
        self.node.mine()
        for sender in range(3):
            nonce = self._state_nonce(sender)
            for key in [k for k in self.model if k[0] == sender and k[1] < nonce]:
                del self.model[key]

    @rule()
    def restart(self) -> None:
        self.node.close()
        self.node = Node(CONFIG, data_dir=self.dir, mining=MiningMode.MANUAL)
        pooled = {p.hash for p in self.node.pool.all()}
        assert pooled == {h for h, _ in self.model.values()}

    @invariant()
    def pool_is_the_model(self) -> None:
        assert {p.hash for p in self.node.pool.all()} == {h for h, _ in self.model.values()}

    def teardown(self) -> None:
        self.node.close()
        shutil.rmtree(self.dir, ignore_errors=True)


PoolHistory.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
TestPoolHistory = PoolHistory.TestCase
