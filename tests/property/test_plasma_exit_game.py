"""Hypothesis state machine over Plasma's exit game, played on the real contract.

Each example deploys a fresh PlasmaChain on a node process. Rules: deposits; honest child
blocks (payments the ledger model accepts); a thief's block (the operator spends an honest
output to itself, signing with its own key, or pays itself from nothing); honest exits;
dishonest exits of spent outputs (which the watcher in the model challenges at once);
time passing and exits processed. Honest users behave as the watcher does: on an invalid
block they exit every output they hold that is older than it.

Invariants, checked against the contract's events:
- no output is paid twice;
- a challenged exit is never paid, and every exit of a spent output could be challenged;
- every honest exit is paid in full once processed, whatever the thief's exits do (the
  priority rule of Plasma MVP), and the thief is never paid more than it deposited.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from web3 import Web3

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.plasma.machine import ChildBlock, ChildChain
from layerlab.l2.plasma.onchain import MINIMAL, PlasmaContract, deploy_plasma
from layerlab.l2.plasma.types import (
    BLOCK_OFFSET,
    ETH,
    Output,
    SignedTransaction,
    Transaction,
    decode_position,
    encode_position,
)
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
DEPLOYER, OPERATOR = DEV[0], DEV[1]
USERS = DEV[2:5]
ETHER = 10**18


@pytest.fixture(scope="module")
def exit_game_node() -> NodeProcess:
    node = NodeProcess("--in-memory").start()
    yield node  # type: ignore[misc]
    node.stop()


class ExitGame(RuleBasedStateMachine):
    node: NodeProcess

    def __init__(self) -> None:
        super().__init__()
        self.w3 = Web3(Web3.HTTPProvider(self.node.url, request_kwargs={"timeout": 60}))
        self.plasma: PlasmaContract = deploy_plasma(self.w3, DEPLOYER.address, OPERATOR.address,
                                                    MINIMAL)
        self.chain = ChildChain(self.plasma.domain)
        self.deposits = 0
        self.spent_by: dict[int, tuple[SignedTransaction, int]] = {}
        self.exits: dict[int, tuple[int, bool]] = {}  # exit id -> (amount, honest)
        self.challenged: set[int] = set()
        self.paid_outputs: list[int] = []
        self.paid: dict[int, int] = {}
        self.thief_paid = 0
        self.first_bad: int | None = None
        self.processed: set[int] = set()

    @initialize(amounts=st.lists(st.integers(1, 5), min_size=2, max_size=3))
    def funded(self, amounts: list[int]) -> None:
        for user, amount in enumerate(amounts):
            self.deposit(user, amount)

    # -- the child chain (nobody deposits into a chain its watchers have seen go bad)
    @precondition(lambda self: self.first_bad is None)
    @rule(user=st.integers(0, 2), amount=st.integers(1, 5))
    def deposit(self, user: int, amount: int) -> None:
        _, blknum = self.plasma.deposit(USERS[user].private_key, amount * ETHER // 10)
        self.chain.add_deposit(blknum, USERS[user].address_bytes, ETH, amount * ETHER // 10)

    def _commit(self, block: ChildBlock) -> None:
        _, blknum = self.plasma.submit_block(OPERATOR.private_key, block.root)
        assert blknum == block.blknum

    @precondition(lambda self: self.first_bad is None)
    @rule(data=st.data())
    def honest_block(self, data: st.DataObject) -> None:
        owned = [u for u in self.chain.utxos.values()
                 if any(u.output.owner == a.address_bytes for a in USERS)]
        if not owned:
            return
        utxo = data.draw(st.sampled_from(sorted(owned, key=lambda u: u.position)))
        key = next(a.private_key for a in USERS if a.address_bytes == utxo.output.owner)
        to = data.draw(st.sampled_from(USERS)).address_bytes
        stx = Transaction((utxo.position,), (Output(to, ETH, utxo.output.amount),)).sign(
            self.plasma.domain, [key])
        self.chain.admit(stx)
        block = self.chain.seal()
        self.spent_by[utxo.position] = (stx, 0)
        self._commit(block)

    @precondition(lambda self: self.first_bad is None)
    @rule(data=st.data(), from_nothing=st.booleans())
    def thief_block(self, data: st.DataObject, from_nothing: bool) -> None:
        """The operator commits a block whose only transaction pays it: spending a user's
        output with the operator's own signature, or spending an output that never was."""
        owned = sorted(self.chain.utxos)
        if from_nothing or not owned:
            position = encode_position(self.chain.next_child_block - 1000 + 999, 0, 0)
            amount = ETHER // 10  # small enough that the deposits could pay it
        else:
            position = data.draw(st.sampled_from(owned))
            amount = self.chain.utxos[position].output.amount
        theft = Transaction((position,), (Output(OPERATOR.address_bytes, ETH, amount),)).sign(
            self.plasma.domain, [OPERATOR.private_key])
        block = ChildBlock(self.chain.next_child_block, (theft,))
        self._commit(block)
        self.first_bad = block.blknum
        self.chain.skip_block(block.blknum)
        # the watchers' answer: every honest output older than the bad block exits now
        for utxo in sorted(self.chain.utxos.values(), key=lambda u: u.position):
            if utxo.position < block.blknum * BLOCK_OFFSET:
                self._exit(utxo.position, honest=True)
        _, exit_id = self.plasma.start_standard_exit(
            OPERATOR.private_key, encode_position(block.blknum, 0, 0), theft.tx, block.proof(0))
        self.exits[exit_id] = (amount, False)

    # -- exits
    def _exit(self, position: int, honest: bool) -> None:
        utxo = self.chain.utxos[position]
        key = next(a.private_key for a in USERS if a.address_bytes == utxo.output.owner)
        blknum, txindex, _ = decode_position(position)
        _, exit_id = self.plasma.start_standard_exit(key, position, utxo.tx,
                                                     self.chain.blocks[blknum].proof(txindex))
        self.exits[exit_id] = (utxo.output.amount, honest)
        self.chain.remove_exited(position)

    @precondition(lambda self: self.first_bad is None)
    @rule(data=st.data())
    def honest_exit(self, data: st.DataObject) -> None:
        owned = sorted(p for p, u in self.chain.utxos.items()
                       if any(u.output.owner == a.address_bytes for a in USERS))
        if owned:
            self._exit(data.draw(st.sampled_from(owned)), honest=True)

    @rule(data=st.data())
    def exit_spent_output(self, data: st.DataObject) -> None:
        """A user exits an output she already spent; a watcher challenges it with her spend."""
        spent = sorted(p for p in self.spent_by if p not in self.exits)
        if not spent:
            return
        position = data.draw(st.sampled_from(spent))
        spender, index = self.spent_by[position]
        blknum, txindex, oindex = decode_position(position)
        block = self.chain.blocks[blknum]
        tx = block.txs[txindex].tx
        owner = tx.outputs[oindex].owner
        key = next(a.private_key for a in USERS if a.address_bytes == owner)
        _, exit_id = self.plasma.start_standard_exit(key, position, tx, block.proof(txindex))
        self.exits[exit_id] = (tx.outputs[oindex].amount, False)
        self.plasma.challenge_standard_exit(USERS[0].private_key, exit_id, spender, index)
        self.challenged.add(exit_id)
        assert not self.plasma.exit(exit_id).exists

    @rule()
    def process(self) -> None:
        head = self.w3.eth.get_block("latest")["timestamp"]
        rpc(self.node.url, "evm_mine", [head + 2 * MINIMAL.min_exit_period + 1])
        receipt = self.plasma.process_exits(DEPLOYER.private_key, ETH, 64)
        for event in self.plasma.l1.receipt_events(receipt):
            if event.name == "ExitFinalized":
                exit_id = int(event.args["exitId"])
                self.processed.add(exit_id)
                if event.args["paid"]:
                    self.paid_outputs.append(exit_id)
                    self.paid[exit_id] = int(event.args["amount"])
                    if event.args["owner"] == OPERATOR.address:
                        self.thief_paid += int(event.args["amount"])

    # -- invariants
    @invariant()
    def no_output_paid_twice(self) -> None:
        assert len(self.paid_outputs) == len(set(self.paid_outputs))

    @invariant()
    def challenged_exits_are_never_paid(self) -> None:
        assert not self.challenged & set(self.paid)

    @invariant()
    def honest_exits_are_paid_in_full(self) -> None:
        for exit_id in self.processed:
            amount, honest = self.exits[exit_id]
            if honest:
                assert self.paid.get(exit_id) == amount, f"honest exit {exit_id} not paid"

    @invariant()
    def the_thief_takes_nothing(self) -> None:
        assert self.thief_paid == 0


@pytest.mark.usefixtures("exit_game_node")
def test_exit_game(exit_game_node: NodeProcess) -> None:
    ExitGame.node = exit_game_node
    run = ExitGame.TestCase()
    run.settings = settings(max_examples=20, stateful_step_count=10, deadline=None,
                            suppress_health_check=list(HealthCheck))
    run.runTest()
