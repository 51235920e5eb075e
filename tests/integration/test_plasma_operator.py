"""Plasma end to end: the operator as its own process, users' watchers, a real L1 node.

Payments go through the operator's JSON-RPC and blocks are committed on L1; the operator is
SIGKILLed mid-burst and restarts with every transaction it acknowledged; a withheld block
makes the watchers exit everything (standard exits of old outputs, an in-flight exit of
the payment in the withheld block, piggybacked by both its payer and its payee) and every
user is paid; an invalid block (the operator spends a user's output without her signature)
makes her watcher exit first, so the operator's exit of its invented output finds nothing
left to take; an exit of a spent output is challenged by the watcher that saw it spent.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.plasma.network import spawn_operator
from layerlab.l2.plasma.onchain import MINIMAL, PlasmaContract, deploy_plasma
from layerlab.l2.plasma.types import ETH, Output, PlasmaError, Transaction, encode_position
from layerlab.l2.plasma.watcher import Watcher
from layerlab.orchestration import RpcError, rpc_call, stop
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
DEPLOYER, OPERATOR, ALICE, BOB = DEV[0], DEV[1], DEV[2], DEV[3]
ETHER = 10**18


class Chain:
    def __init__(self, node: NodeProcess, w3: Web3, directory: Path, adversarial: bool) -> None:
        self.node, self.w3, self.dir = node, w3, directory
        self.contract = deploy_plasma(w3, DEPLOYER.address, OPERATOR.address, MINIMAL)
        self.start_block = int(w3.eth.block_number)
        self.adversarial = adversarial
        self.pid, self.port = spawn_operator(directory, node.url, self.contract.address,
                                             block_interval=3600, adversarial=adversarial,
                                             start_block=self.start_block)
        self.url = f"http://127.0.0.1:{self.port}"

    def restart(self, kill: bool = True) -> None:
        stop([self.pid], timeout=0 if kill else 15)
        self.pid, self.port = spawn_operator(self.dir, self.node.url, self.contract.address,
                                             port=self.port, block_interval=3600,
                                             adversarial=self.adversarial,
                                             start_block=self.start_block)

    def watcher(self, *accounts) -> Watcher:  # type: ignore[no-untyped-def]
        return Watcher(PlasmaContract.at(self.w3, self.contract.address), self.url,
                       [a.private_key for a in accounts], start_block=self.start_block)

    def seal(self) -> int:
        return int(rpc_call(self.url, "plasma_sealBlock", [], timeout=60)["blknum"])

    def wait_deposits(self, count: int) -> None:
        deadline = time.monotonic() + 20
        while rpc_call(self.url, "plasma_status")["utxos"] < count:
            if time.monotonic() > deadline:
                raise AssertionError("the operator did not see the deposits")
            time.sleep(0.1)

    def advance(self, seconds: int) -> None:
        head = self.w3.eth.get_block("latest")["timestamp"]
        rpc(self.node.url, "evm_mine", [head + seconds])

    def paid(self, receipt) -> dict[str, int]:  # type: ignore[no-untyped-def]
        out: dict[str, int] = {}
        for e in self.contract.l1.receipt_events(receipt):
            if e.name in ("ExitFinalized", "InFlightExitPaid") and e.args["paid"]:
                out[e.args["owner"]] = out.get(e.args["owner"], 0) + int(e.args["amount"])
        return out


@pytest.fixture()
def chain(node: NodeProcess, w3: Web3, tmp_path: Path) -> Iterator[Chain]:
    c = Chain(node, w3, tmp_path, adversarial=True)
    yield c
    stop([c.pid])


def test_payments_through_the_operator_reach_every_watcher(chain: Chain) -> None:
    alice, bob = chain.watcher(ALICE), chain.watcher(BOB)
    chain.contract.deposit(ALICE.private_key, ETHER)
    chain.wait_deposits(1)
    alice.poll()
    assert alice.balance(ALICE.address_bytes) == ETHER
    stx = alice.pay(ALICE.address_bytes, BOB.address_bytes, ETHER // 4)
    # the operator refuses a second spend of the same output, with its check
    again = Transaction(stx.tx.inputs, (Output(ALICE.address_bytes, ETH, ETHER),))
    with pytest.raises(RpcError) as info:
        rpc_call(chain.url, "plasma_sendTransaction",
                 [again.sign(chain.contract.domain, [ALICE.private_key]).to_json()])
    assert info.value.data == {"check": "spent-input"}
    blknum = chain.seal()
    for w in (alice, bob):
        assert w.poll() == []
    assert bob.balance(BOB.address_bytes) == ETHER // 4
    assert alice.balance(ALICE.address_bytes) == ETHER - ETHER // 4
    assert alice.in_flight == {}
    assert chain.contract.block(blknum)[0] == alice.chain.blocks[blknum].root


def test_a_killed_operator_restarts_with_every_acknowledged_transaction(chain: Chain) -> None:
    payers = 24
    for _ in range(payers):
        chain.contract.deposit(ALICE.private_key, ETHER)
    chain.wait_deposits(payers)
    alice = chain.watcher(ALICE)
    alice.poll()
    txs = [Transaction((u.position,), (Output(BOB.address_bytes, ETH, ETHER),)).sign(
        chain.contract.domain, [ALICE.private_key]) for u in alice.chain.utxos_of(ALICE.address_bytes)]
    acked: list[bytes] = []

    def burst() -> None:
        for i, stx in enumerate(txs):
            try:
                rpc_call(chain.url, "plasma_sendTransaction", [stx.to_json()], timeout=5)
            except (OSError, RpcError):
                return
            acked.append(stx.tx.tx_hash)
            if i % 5 == 4:  # blocks sealed and committed on L1 during the burst
                try:
                    rpc_call(chain.url, "plasma_sealBlock", [], timeout=30)
                except (OSError, RpcError):
                    return

    sender = threading.Thread(target=burst)
    sender.start()
    deadline = time.monotonic() + 20
    while len(acked) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(random.Random(5).uniform(0.0, 0.4))
    chain.restart(kill=True)
    sender.join(30)
    assert 3 <= len(acked) < len(txs), "the kill did not fall inside the burst"
    rpc_call(chain.url, "plasma_sealBlock", [], timeout=60)  # None when nothing was pending
    bob = chain.watcher(BOB)
    assert bob.poll() == []  # every committed block is served and valid
    included = {h for b in bob.chain.blocks.values() for h in b.tx_hashes}
    assert set(acked) <= included, f"{len(set(acked) - included)} acknowledged txs lost"
    on_l1 = chain.contract.next_child_block()
    assert on_l1 == bob.chain.next_child_block  # one root per block number, none skipped
    assert bob.balance(BOB.address_bytes) == ETHER * len(included & {s.tx.tx_hash for s in txs})


def test_withheld_block_every_user_exits_with_what_they_hold(chain: Chain) -> None:
    alice, bob = chain.watcher(ALICE), chain.watcher(BOB)
    chain.contract.deposit(ALICE.private_key, ETHER)
    chain.contract.deposit(ALICE.private_key, 2 * ETHER)
    chain.contract.deposit(BOB.private_key, 3 * ETHER)
    chain.wait_deposits(3)
    alice.poll()
    bob.poll()
    # the next block is withheld: its root is committed, its data never served
    rpc_call(chain.url, "plasma_debugWithhold", [chain.contract.next_child_block()])
    payment = alice.pay(ALICE.address_bytes, BOB.address_bytes, ETHER // 2)
    withheld = chain.seal()
    alarms = alice.poll()
    assert (alarms[0].kind, alarms[0].blknum) == ("withheld", withheld)
    assert alice.halted_at == withheld
    assert payment.tx.tx_hash in alice.done.in_flight_exits
    bob_alarms = bob.poll()
    assert bob_alarms[0].kind == "withheld"
    assert (payment.tx.tx_hash, 0) in bob.done.piggybacks  # Bob's output of Alice's payment
    assert (payment.tx.tx_hash, 1) in alice.done.piggybacks  # Alice's change
    chain.advance(2 * MINIMAL.min_exit_period + 1)
    receipt = chain.contract.process_exits(DEPLOYER.private_key, ETH, 20)
    paid = chain.paid(receipt)
    # Alice: her untouched 2 ETH deposit, her change; Bob: his deposit and the payment
    assert paid[ALICE.address] == 2 * ETHER + (ETHER - ETHER // 2)
    assert paid[BOB.address] == 3 * ETHER + ETHER // 2
    assert chain.contract.queue_length(ETH) == 0


def test_invalid_block_cannot_take_an_honest_users_funds(chain: Chain) -> None:
    alice = chain.watcher(ALICE)
    chain.contract.deposit(ALICE.private_key, ETHER)
    chain.wait_deposits(1)
    alice.poll()
    (utxo,) = alice.chain.utxos_of(ALICE.address_bytes)
    # the operator spends Alice's deposit to itself, signing for her with its own key
    theft = Transaction((utxo.position,), (Output(OPERATOR.address_bytes, ETH, ETHER),)).sign(
        chain.contract.domain, [OPERATOR.private_key])
    rpc_call(chain.url, "plasma_debugInject", [theft.to_json()])
    bad = chain.seal()
    alarms = alice.poll()
    assert alarms[0].kind == "invalid-block" and alarms[0].blknum == bad
    assert "signature" in alarms[0].detail
    assert utxo.position in alice.done.exits  # exited before anything from the bad block
    stolen = encode_position(bad, 0, 0)
    proof = rpc_call(chain.url, "plasma_getExitData", [stolen])
    _, thief_exit = chain.contract.start_standard_exit(
        OPERATOR.private_key, stolen, theft.tx, tuple(int(s) for s in proof["proof"]))
    chain.advance(2 * MINIMAL.min_exit_period + 1)
    receipt = chain.contract.process_exits(DEPLOYER.private_key, ETH, 10)
    finals = [e for e in chain.contract.l1.receipt_events(receipt) if e.name == "ExitFinalized"]
    assert finals[0].args["owner"] == ALICE.address  # Alice first, by priority
    assert chain.paid(receipt).get(ALICE.address) == ETHER
    (thief,) = [e for e in finals if int(e.args["exitId"]) == thief_exit]
    assert thief.args["paid"] is False  # nothing left in custody for the invented output
    assert OPERATOR.address not in chain.paid(receipt)


def test_an_exit_of_a_spent_output_is_challenged_by_the_watcher_that_saw_it(chain: Chain) -> None:
    alice, bob = chain.watcher(ALICE), chain.watcher(BOB)
    chain.contract.deposit(ALICE.private_key, ETHER)
    chain.wait_deposits(1)
    alice.poll()
    (deposit,) = alice.chain.utxos_of(ALICE.address_bytes)
    alice.pay(ALICE.address_bytes, BOB.address_bytes, ETHER)
    chain.seal()
    bob.poll()
    # Alice (her own watcher bypassed) exits the deposit she already spent
    proof = alice.chain.blocks[deposit.position // 10**9].proof(0)
    _, exit_id = chain.contract.start_standard_exit(ALICE.private_key, deposit.position,
                                                    deposit.tx, proof)
    before = chain.w3.eth.get_balance(BOB.address)
    alarms = bob.poll()
    assert [a.kind for a in alarms] == ["spent-exit"]
    assert not chain.contract.exit(exit_id).exists
    assert chain.w3.eth.get_balance(BOB.address) > before  # the bond, net of gas
    chain.advance(2 * MINIMAL.min_exit_period + 1)
    receipt = chain.contract.process_exits(DEPLOYER.private_key, ETH, 10)
    assert ALICE.address not in chain.paid(receipt)


def test_the_watcher_refuses_to_exit_what_is_not_its_own(chain: Chain) -> None:
    alice = chain.watcher(ALICE)
    with pytest.raises(PlasmaError) as info:
        alice.exit_output(encode_position(1, 0, 0))
    assert info.value.check == "not-owner"
