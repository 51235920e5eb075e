"""PlasmaChain.sol on a real node: deposits, child blocks, and each exit-game attack tried
and defeated.

Plasma MVP's standard exits (paid after the period, oldest first; an exit of a spent output
is challenged and never paid; forged proofs, non-owners, double exits and signatures for
another deployment refused; an operator's made-up output exits after every honest older
one and finds the contract empty) and MoreVP's in-flight exits (a transaction in a withheld
block exits with its inputs' proofs; piggybacked outputs are paid; a competitor flips it
non-canonical and its own older inclusion flips it back; spent piggybacks are challenged).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from web3 import Web3
from web3.types import TxReceipt

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.keys import DevAccount, derive_dev_accounts
from layerlab.l2.plasma.onchain import (
    MAINNET_LIKE,
    MINIMAL,
    PlasmaConfig,
    PlasmaContract,
    PlasmaTxError,
    deploy_plasma,
    in_flight_exit_id,
)
from layerlab.l2.plasma.types import (
    ETH,
    Output,
    SignedTransaction,
    Transaction,
    compute_block_root,
    decode_position,
    deposit_transaction,
    encode_position,
    prove_inclusion,
)
from layerlab.primitives.smt import KECCAK_HASHER
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
DEPLOYER, OPERATOR, ALICE, BOB, CAROL, WATCHER = DEV[0], DEV[1], DEV[2], DEV[3], DEV[4], DEV[5]
ETHER = 10**18
PERIOD = MINIMAL.min_exit_period


def a(account: DevAccount) -> bytes:
    return account.address_bytes


def cost(receipt: TxReceipt) -> int:
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


@dataclass
class Child:
    """The child chain as the operator and the honest users know it: each block's txs."""

    plasma: PlasmaContract
    blocks: dict[int, list[Transaction]] = field(default_factory=dict)
    gas: dict[str, int] = field(default_factory=dict)

    def deposit(self, who: DevAccount, amount: int) -> tuple[int, Transaction]:
        receipt, blknum = self.plasma.deposit(who.private_key, amount)
        self.gas["deposit"] = int(receipt["gasUsed"])
        tx = deposit_transaction(blknum, a(who), ETH, amount)
        self.blocks[blknum] = [tx]
        return encode_position(blknum, 0, 0), tx

    def submit(self, *txs: Transaction) -> int:
        root = compute_block_root([t.tx_hash for t in txs])
        receipt, blknum = self.plasma.submit_block(OPERATOR.private_key, root)
        self.gas["submitBlock"] = int(receipt["gasUsed"])
        self.blocks[blknum] = list(txs)
        return blknum

    def proof(self, position: int) -> tuple[int, ...]:
        blknum, txindex, _ = decode_position(position)
        return prove_inclusion([t.tx_hash for t in self.blocks[blknum]], txindex)

    def sign(self, tx: Transaction, *who: DevAccount) -> SignedTransaction:
        return tx.sign(self.plasma.domain, [w.private_key for w in who])


@pytest.fixture()
def plasma(node: NodeProcess, w3: Web3) -> Iterator[PlasmaContract]:
    yield deploy_plasma(w3, DEPLOYER.address, OPERATOR.address, MINIMAL)


@pytest.fixture()
def child(plasma: PlasmaContract) -> Child:
    return Child(plasma)


def advance(node: NodeProcess, w3: Web3, seconds: int) -> None:
    head = w3.eth.get_block("latest")["timestamp"]
    rpc(node.url, "evm_mine", [head + seconds])


def refused(error: str, fn: Any, *args: Any) -> PlasmaTxError:
    with pytest.raises(PlasmaTxError) as err:
        fn(*args)
    assert err.value.error_name == error, str(err.value)
    return err.value


def pay(sender: DevAccount, position: int, *outputs: tuple[DevAccount, int]) -> Transaction:
    del sender  # the signer, for the reader
    return Transaction((position,), tuple(Output(a(o), ETH, v) for o, v in outputs))


def alice_pays_bob(child: Child) -> tuple[int, Transaction, int, Transaction]:
    """Alice deposits 1 ETH and pays Bob 0.6 (0.4 change) in child block 1000."""
    dep_pos, dep_tx = child.deposit(ALICE, ETHER)
    tx = pay(ALICE, dep_pos, (BOB, 6 * ETHER // 10), (ALICE, 4 * ETHER // 10))
    blknum = child.submit(tx)
    return dep_pos, dep_tx, encode_position(blknum, 0, 0), tx


def finalized(plasma: PlasmaContract, receipt: TxReceipt) -> list[tuple[int, bool]]:
    return [(int(e.args["exitId"]), bool(e.args["paid"])) for e in plasma.l1.receipt_events(receipt)
            if e.name == "ExitFinalized"]


# -- blocks, deposits, signatures ---------------------------------------------------------

def test_blocks_and_deposits(w3: Web3, plasma: PlasmaContract, child: Child) -> None:
    assert plasma.operator() == OPERATOR.address and plasma.next_child_block() == 1000
    assert plasma.config() == MINIMAL
    pos, tx = child.deposit(ALICE, ETHER)
    assert pos == encode_position(1, 0, 0)
    root, timestamp = plasma.block(1)
    assert root == compute_block_root([tx.tx_hash])
    assert int.from_bytes(root, "big") == KECCAK_HASHER.hash_leaf(0, int.from_bytes(tx.tx_hash, "big"))
    assert timestamp == w3.eth.get_block("latest")["timestamp"]
    assert child.deposit(BOB, 2)[0] == encode_position(2, 0, 0)
    refused("NotOperator", plasma.submit_block, ALICE.private_key, b"\1" * 32)
    refused("WrongBlockNumber", plasma.submit_block, OPERATOR.private_key, b"\2" * 32, 2000)
    refused("ZeroDeposit", plasma.deposit, ALICE.private_key, 0)
    assert child.submit(pay(ALICE, pos, (BOB, ETHER))) == 1000
    # naming the block makes a retry idempotent: block 1000 again is refused
    refused("WrongBlockNumber", plasma.submit_block, OPERATOR.private_key, b"\2" * 32, 1000)
    assert plasma.next_child_block() == 2000
    # the deposit counter restarted after the child block
    assert child.deposit(CAROL, 3)[0] == encode_position(1001, 0, 0)
    created = [e for e in plasma.events(0) if e.name == "DepositCreated"]
    assert [(e.args["blknum"], e.args["owner"], e.args["amount"]) for e in created] == [
        (1, ALICE.address, ETHER), (2, BOB.address, 2), (1001, CAROL.address, 3)]
    submitted = [e for e in plasma.events(0) if e.name == "BlockSubmitted"]
    assert [(e.args["blknum"], e.args["root"]) for e in submitted] == [(1000, child_root(child, 1000))]


def child_root(child: Child, blknum: int) -> bytes:
    return compute_block_root([t.tx_hash for t in child.blocks[blknum]])


def test_python_signature_recovers_on_chain(w3: Web3, plasma: PlasmaContract) -> None:
    tx = Transaction((encode_position(1, 0, 0), encode_position(1000, 3, 1)),
                     (Output(a(BOB), ETH, 5), Output(a(ALICE), ETH, 7)), b"\x09" * 32)
    signed = tx.sign(plasma.domain, [ALICE.private_key, CAROL.private_key])
    assert plasma.l1.call("domainSeparator") == plasma.domain.separator
    assert plasma.tx_digest(tx) == tx.digest(plasma.domain)
    assert plasma.tx_signer(signed, 0) == ALICE.address
    assert plasma.tx_signer(signed, 1) == CAROL.address
    # signed for another PlasmaChain deployment: recovers to someone else
    other = deploy_plasma(w3, DEPLOYER.address, OPERATOR.address, MINIMAL)
    foreign = tx.sign(other.domain, [ALICE.private_key, ALICE.private_key])
    assert other.tx_signer(foreign, 0) == ALICE.address
    assert plasma.tx_signer(foreign, 0) != ALICE.address
    # a re-encoding of the same transaction (a padding word) is refused: one tx, one id
    shifted = (64).to_bytes(32, "big") + b"\0" * 32 + tx.encoded[32:]
    refused("NonCanonicalEncoding", plasma.l1.call, "txDigest", shifted)


# -- standard exits (Plasma MVP) ----------------------------------------------------------

def test_standard_exit_is_paid_after_its_period_only(node: NodeProcess, w3: Web3,
                                                     plasma: PlasmaContract, child: Child) -> None:
    _, _, pos, tx = alice_pays_bob(child)
    block_ts = plasma.block(1000)[1]
    receipt, exit_id = plasma.start_standard_exit(BOB.private_key, pos, tx, child.proof(pos))
    child.gas["startStandardExit"] = int(receipt["gasUsed"])
    start_ts = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    e = plasma.exit(exit_id)
    assert exit_id == pos and e.owner == BOB.address and e.amount == 6 * ETHER // 10
    assert e.exitable_at == max(block_ts + 2 * PERIOD, start_ts + PERIOD)
    before = w3.eth.get_balance(BOB.address)
    # too early: processing pays nothing and keeps the exit queued
    advance(node, w3, PERIOD)
    receipt = plasma.process_exits(WATCHER.private_key, ETH, 10)
    assert finalized(plasma, receipt) == []
    assert plasma.queue_length() == 1 and plasma.exit(exit_id).exists
    assert w3.eth.get_balance(BOB.address) == before
    # after it: paid once, amount and bond
    advance(node, w3, PERIOD + 1)
    receipt = plasma.process_exits(WATCHER.private_key, ETH, 10)
    assert finalized(plasma, receipt) == [(exit_id, True)]
    assert w3.eth.get_balance(BOB.address) == before + 6 * ETHER // 10 + MINIMAL.exit_bond
    assert plasma.is_exited(tx.output_id(0)) and not plasma.exit(exit_id).exists
    assert plasma.queue_length() == 0
    refused("OutputAlreadyExited", plasma.start_standard_exit, BOB.private_key, pos, tx,
            child.proof(pos))


def test_double_exit_wrong_bond_and_non_owner_refused(plasma: PlasmaContract, child: Child) -> None:
    _, _, pos, tx = alice_pays_bob(child)
    proof = child.proof(pos)
    refused("NotOwner", plasma.start_standard_exit, CAROL.private_key, pos, tx, proof)
    refused("NotOwner", plasma.start_standard_exit, ALICE.private_key, pos, tx, proof)
    wrong = plasma.fn.startStandardExit(pos, tx.encoded, list(proof))
    refused("WrongBond", plasma.l1.transact, BOB.private_key, "startStandardExit", wrong, 1)
    refused("NoSuchOutput", plasma.start_standard_exit, BOB.private_key, pos + 2, tx, proof)
    plasma.start_standard_exit(BOB.private_key, pos, tx, proof)
    err = refused("ExitExists", plasma.start_standard_exit, BOB.private_key, pos, tx, proof)
    assert err.error_args["exitId"] == pos
    assert plasma.queue_length() == 1


def test_forged_inclusion_proofs_refused(plasma: PlasmaContract, child: Child) -> None:
    dep_pos, dep_tx = child.deposit(CAROL, ETHER)
    _, _, pos, tx = alice_pays_bob(child)
    other = pay(CAROL, dep_pos, (CAROL, ETHER))
    blknum = child.submit(other, tx)  # block 2000: Carol's tx at 0, a copy of Alice's at 1
    # Bob claims 1 ETH instead of 0.6 with the real proof
    forged = pay(ALICE, tx.inputs[0], (BOB, ETHER), (ALICE, 4 * ETHER // 10))
    refused("NotIncluded", plasma.start_standard_exit, BOB.private_key, pos, forged, child.proof(pos))
    # the right tx with a proof of another index, or at another index than proven
    pos2 = encode_position(blknum, 1, 0)
    refused("NotIncluded", plasma.start_standard_exit, BOB.private_key, encode_position(blknum, 0, 0),
            tx, child.proof(pos2))
    refused("NotIncluded", plasma.start_standard_exit, BOB.private_key, pos, tx, (1, 2, 3))
    # a block the operator never committed
    refused("UnknownBlock", plasma.start_standard_exit, BOB.private_key, encode_position(5000, 0, 0),
            tx, ())
    refused("BadPosition", plasma.start_standard_exit, BOB.private_key, 5, tx, ())
    # the genuine one at index 1 of block 2000 is fine
    plasma.start_standard_exit(BOB.private_key, pos2, tx, child.proof(pos2))
    del dep_tx


def test_exit_of_a_spent_output_is_challenged_and_never_paid(
        node: NodeProcess, w3: Web3, plasma: PlasmaContract, child: Child) -> None:
    dep_pos, dep_tx, pos, tx = alice_pays_bob(child)
    # Alice tries to take her deposit back although she spent it in block 1000
    _, exit_id = plasma.start_standard_exit(ALICE.private_key, dep_pos, dep_tx, child.proof(dep_pos))
    spending = child.sign(tx, ALICE)
    # a tx that does not spend the output, or not signed by the exit's owner, does not count
    unrelated = child.sign(pay(BOB, pos, (BOB, ETHER // 2)), BOB)
    refused("NotSpendingExitedOutput", plasma.challenge_standard_exit, WATCHER.private_key, exit_id,
            unrelated, 0)
    by_bob = child.sign(tx, BOB)
    refused("BadSignature", plasma.challenge_standard_exit, WATCHER.private_key, exit_id, by_bob, 0)
    before = w3.eth.get_balance(WATCHER.address)
    receipt = plasma.challenge_standard_exit(WATCHER.private_key, exit_id, spending, 0)
    child.gas["challengeStandardExit"] = int(receipt["gasUsed"])
    assert w3.eth.get_balance(WATCHER.address) == before + MINIMAL.exit_bond - cost(receipt)
    assert [e.args["challenger"] for e in plasma.l1.receipt_events(receipt)
            if e.name == "ExitChallenged"] == [WATCHER.address]
    assert not plasma.exit(exit_id).exists
    refused("NoSuchExit", plasma.challenge_standard_exit, WATCHER.private_key, exit_id, spending, 0)
    alice_before = w3.eth.get_balance(ALICE.address)
    advance(node, w3, 2 * PERIOD + 1)
    receipt = plasma.process_exits(WATCHER.private_key, ETH, 10)
    assert finalized(plasma, receipt) == [] and plasma.queue_length() == 0
    assert w3.eth.get_balance(ALICE.address) == alice_before
    assert not plasma.is_exited(dep_tx.output_id(0))


def test_a_signature_for_another_deployment_is_refused(w3: Web3, plasma: PlasmaContract,
                                                       child: Child) -> None:
    dep_pos, dep_tx, _, tx = alice_pays_bob(child)
    _, exit_id = plasma.start_standard_exit(ALICE.private_key, dep_pos, dep_tx, child.proof(dep_pos))
    other = deploy_plasma(w3, DEPLOYER.address, OPERATOR.address, MINIMAL)
    replayed = tx.sign(other.domain, [ALICE.private_key])
    refused("BadSignature", plasma.challenge_standard_exit, WATCHER.private_key, exit_id, replayed, 0)
    refused("BadSignature", plasma.start_in_flight_exit, ALICE.private_key, replayed, [dep_tx],
            [child.proof(dep_pos)])


def test_an_invalid_block_cannot_take_honest_funds(node: NodeProcess, w3: Web3,
                                                   plasma: PlasmaContract, child: Child) -> None:
    """The operator commits block 2000 with a tx spending a deposit that never happened and
    paying itself all the contract holds. Its exit starts first, yet every honest output
    older than the block is paid before it, and it finds the contract empty."""
    carol_pos, carol_tx = child.deposit(CAROL, 2 * ETHER)
    _, _, bob_pos, tx = alice_pays_bob(child)
    bogus = Transaction((encode_position(999, 0, 0),), (Output(a(OPERATOR), ETH, 3 * ETHER),))
    bad_blk = child.submit(bogus)
    bad_pos = encode_position(bad_blk, 0, 0)
    op_before = w3.eth.get_balance(OPERATOR.address)
    receipt, op_exit = plasma.start_standard_exit(OPERATOR.private_key, bad_pos, bogus,
                                                  child.proof(bad_pos))
    op_cost = cost(receipt)
    # the honest users see the invalid block and exit everything older than it
    before = {who.address: w3.eth.get_balance(who.address) for who in (ALICE, BOB, CAROL)}
    exits = []
    for who, pos, t in ((BOB, bob_pos, tx), (ALICE, bob_pos + 1, tx), (CAROL, carol_pos, carol_tx)):
        receipt, exit_id = plasma.start_standard_exit(who.private_key, pos, t, child.proof(pos))
        before[who.address] -= cost(receipt) + MINIMAL.exit_bond
        exits.append(exit_id)
    advance(node, w3, 2 * PERIOD + 1)
    receipt = plasma.process_exits(WATCHER.private_key, ETH, 10)
    order = finalized(plasma, receipt)
    # Carol's deposit (one period after her exit), then block 1000's outputs by position,
    # then the operator's block 2000 output, which cannot be paid: the ETH is gone
    assert order == [(carol_pos, True), (bob_pos, True), (bob_pos + 1, True), (op_exit, False)]
    assert w3.eth.get_balance(BOB.address) == before[BOB.address] + 6 * ETHER // 10 + MINIMAL.exit_bond
    assert w3.eth.get_balance(ALICE.address) == before[ALICE.address] + 4 * ETHER // 10 \
        + MINIMAL.exit_bond
    assert w3.eth.get_balance(CAROL.address) == before[CAROL.address] + 2 * ETHER + MINIMAL.exit_bond
    # the operator got nothing and lost its bond
    assert w3.eth.get_balance(OPERATOR.address) == op_before - op_cost - MINIMAL.exit_bond
    assert w3.eth.get_balance(plasma.address) == MINIMAL.exit_bond  # the operator's, forfeited
    del exits


def test_token_deposit_and_exit(node: NodeProcess, w3: Web3, plasma: PlasmaContract) -> None:
    token = deploy(w3, load_artifact("LabToken"), "Lab", "LAB", 10**24, sender=ALICE.address)
    plasma.l1.transact(ALICE.private_key, "approve", token.functions.approve(plasma.address, 500))
    receipt, blknum = plasma.deposit_token(ALICE.private_key, token.address, 500)
    tx = deposit_transaction(blknum, a(ALICE), bytes.fromhex(token.address[2:]), 500)
    assert plasma.block(blknum)[0] == compute_block_root([tx.tx_hash])
    pos = encode_position(blknum, 0, 0)
    plasma.start_standard_exit(ALICE.private_key, pos, tx, ())
    before = token.functions.balanceOf(ALICE.address).call()
    advance(node, w3, PERIOD + 1)
    receipt = plasma.process_exits(WATCHER.private_key, token.address, 5)
    assert finalized(plasma, receipt) == [(pos, True)]
    assert token.functions.balanceOf(ALICE.address).call() == before + 500
    assert plasma.queue_length(token.address) == 0


# -- in-flight exits (MoreVP) ---------------------------------------------------------------

def withheld_payment(child: Child) -> tuple[int, Transaction, SignedTransaction, int]:
    """Alice pays Bob 0.6 (0.4 change) from her 1 ETH deposit in block 1000, whose root is
    committed but whose data the operator withholds (nobody else has the proof)."""
    dep_pos, dep_tx = child.deposit(ALICE, ETHER)
    tx = pay(ALICE, dep_pos, (BOB, 6 * ETHER // 10), (ALICE, 4 * ETHER // 10))
    signed = child.sign(tx, ALICE)
    blknum = child.submit(tx, pay(CAROL, encode_position(77, 0, 0), (CAROL, 1)))
    return dep_pos, dep_tx, signed, encode_position(blknum, 0, 0)


def test_in_flight_exit_of_a_withheld_block_pays_the_piggybacked_outputs(
        node: NodeProcess, w3: Web3, plasma: PlasmaContract, child: Child) -> None:
    dep_pos, dep_tx, signed, _ = withheld_payment(child)
    tx = signed.tx
    # wrong proofs, signatures and bonds are refused
    refused("NotIncluded", plasma.start_in_flight_exit, ALICE.private_key, signed, [dep_tx], [(5,)])
    refused("BadSignature", plasma.start_in_flight_exit, ALICE.private_key, child.sign(tx, BOB),
            [dep_tx], [()])
    greedy = pay(ALICE, dep_pos, (BOB, ETHER), (ALICE, 1))
    refused("ValueNotConserved", plasma.start_in_flight_exit, ALICE.private_key,
            child.sign(greedy, ALICE), [dep_tx], [()])
    receipt, exit_id = plasma.start_in_flight_exit(ALICE.private_key, signed, [dep_tx],
                                                   [child.proof(dep_pos)])
    child.gas["startInFlightExit"] = int(receipt["gasUsed"])
    assert exit_id == in_flight_exit_id(tx)
    ife = plasma.in_flight_exit(tx)
    assert ife.canonical and ife.starter == ALICE.address and ife.inputs[0][0] == dep_pos
    refused("InFlightExitExists", plasma.start_in_flight_exit, BOB.private_key, signed, [dep_tx], [()])
    # piggybacks: only by the owner, once, with the bond
    refused("NotOwner", plasma.piggyback, CAROL.private_key, tx, 0, True)
    refused("BadIndex", plasma.piggyback, BOB.private_key, tx, 2, True)
    receipt = plasma.piggyback(BOB.private_key, tx, 0, True)
    child.gas["piggyback"] = int(receipt["gasUsed"])
    refused("AlreadyPiggybacked", plasma.piggyback, BOB.private_key, tx, 0, True)
    plasma.piggyback(ALICE.private_key, tx, 1, True)
    assert plasma.in_flight_exit(tx).piggybacked_outputs == 0b11
    # the spent deposit cannot be exited by Alice alongside (a watcher challenges it with
    # the in-flight tx she signed)
    _, dep_exit = plasma.start_standard_exit(ALICE.private_key, dep_pos, dep_tx, ())
    plasma.challenge_standard_exit(WATCHER.private_key, dep_exit, signed, 0)
    alice0, bob0 = w3.eth.get_balance(ALICE.address), w3.eth.get_balance(BOB.address)
    advance(node, w3, 2 * PERIOD + 1)
    receipt = plasma.process_exits(WATCHER.private_key, ETH, 10)
    events = plasma.l1.receipt_events(receipt)
    paid = [(e.args["owner"], e.args["index"], e.args["amount"], e.args["paid"]) for e in events
            if e.name == "InFlightExitPaid"]
    assert paid == [(BOB.address, 0, 6 * ETHER // 10, True), (ALICE.address, 1, 4 * ETHER // 10, True)]
    assert [e.args["canonical"] for e in events if e.name == "InFlightExitFinalized"] == [True]
    assert w3.eth.get_balance(BOB.address) == bob0 + 6 * ETHER // 10 + MINIMAL.piggyback_bond
    assert w3.eth.get_balance(ALICE.address) == alice0 + 4 * ETHER // 10 + MINIMAL.piggyback_bond \
        + MINIMAL.in_flight_exit_bond
    # the outputs and the input are spent for good
    assert plasma.is_exited(tx.output_id(0)) and plasma.is_exited(dep_tx.output_id(0))
    refused("OutputAlreadyExited", plasma.start_standard_exit, ALICE.private_key, dep_pos, dep_tx, ())
    refused("InFlightExitFinished", plasma.piggyback, ALICE.private_key, tx, 0, False)


def test_non_canonical_challenge_and_response(node: NodeProcess, w3: Web3,
                                              plasma: PlasmaContract, child: Child) -> None:
    dep_pos, dep_tx, signed, tx_pos = withheld_payment(child)
    tx = signed.tx
    _, exit_id = plasma.start_in_flight_exit(ALICE.private_key, signed, [dep_tx], [()])
    plasma.piggyback(BOB.private_key, tx, 0, True)
    # Alice also signed a competitor spending the same deposit to Carol (not included)
    competitor = child.sign(pay(ALICE, dep_pos, (CAROL, ETHER)), ALICE)
    refused("SameTransaction", plasma.challenge_not_canonical, CAROL.private_key, tx, 0, signed, 0)
    forged = child.sign(pay(ALICE, dep_pos, (CAROL, ETHER)), CAROL)
    refused("BadSignature", plasma.challenge_not_canonical, CAROL.private_key, tx, 0, forged, 0)
    elsewhere = child.sign(pay(ALICE, tx_pos, (CAROL, 1)), BOB)
    refused("NotSpendingExitedOutput", plasma.challenge_not_canonical, CAROL.private_key, tx, 0,
            elsewhere, 0)
    plasma.challenge_not_canonical(CAROL.private_key, tx, 0, competitor, 0)
    ife = plasma.in_flight_exit(tx)
    assert not ife.canonical and ife.challenger == CAROL.address
    assert ife.competitor_pos == 2**256 - 1
    refused("CompetitorNotOlder", plasma.challenge_not_canonical, WATCHER.private_key, tx, 0,
            competitor, 0)
    # Bob got the block's data: the tx is included at tx_pos, older than any unincluded tx
    refused("NotIncluded", plasma.respond_canonical, BOB.private_key, tx, tx_pos + 10_000,
            child.proof(tx_pos))
    plasma.respond_canonical(BOB.private_key, tx, tx_pos, child.proof(tx_pos))
    ife = plasma.in_flight_exit(tx)
    assert ife.canonical and ife.competitor_pos == tx_pos
    refused("ResponseNotOlder", plasma.respond_canonical, BOB.private_key, tx, tx_pos, child.proof(tx_pos))
    refused("CompetitorNotOlder", plasma.challenge_not_canonical, WATCHER.private_key, tx, 0,
            competitor, 0)
    bob0 = w3.eth.get_balance(BOB.address)
    advance(node, w3, 2 * PERIOD + 1)
    receipt = plasma.process_exits(WATCHER.private_key, ETH, 10)
    assert [e.args["canonical"] for e in plasma.l1.receipt_events(receipt)
            if e.name == "InFlightExitFinalized"] == [True]
    assert w3.eth.get_balance(BOB.address) == bob0 + 6 * ETHER // 10 + MINIMAL.piggyback_bond
    del exit_id


def test_non_canonical_exit_pays_inputs_and_its_bond_to_the_challenger(
        node: NodeProcess, w3: Web3, plasma: PlasmaContract, child: Child) -> None:
    """The competitor is included (block 2000) and older than the in-flight tx, which never
    was: the in-flight tx's outputs are not paid; its bond goes to the challenger."""
    dep_pos, dep_tx = child.deposit(ALICE, ETHER)
    carol_dep, carol_tx = child.deposit(CAROL, ETHER // 2)
    # the in-flight tx spends Alice's and Carol's deposits; the operator includes another
    # tx spending Carol's deposit, which Carol signed too
    tx = Transaction((dep_pos, carol_dep), (Output(a(BOB), ETH, ETHER + ETHER // 2),))
    signed = child.sign(tx, ALICE, CAROL)
    competitor = child.sign(pay(CAROL, carol_dep, (CAROL, ETHER // 2)), CAROL)
    blknum = child.submit(competitor.tx)
    comp_pos = encode_position(blknum, 0, 0)
    _, _ = plasma.start_in_flight_exit(BOB.private_key, signed, [dep_tx, carol_tx], [(), ()])
    plasma.piggyback(BOB.private_key, tx, 0, True)
    plasma.piggyback(ALICE.private_key, tx, 0, False)  # Alice wants her deposit back
    refused("NotOwner", plasma.piggyback, ALICE.private_key, tx, 1, False)
    watcher0 = w3.eth.get_balance(WATCHER.address)
    receipt = plasma.challenge_not_canonical(WATCHER.private_key, tx, 1, competitor, 0, comp_pos,
                                             child.proof(comp_pos))
    watcher0 -= cost(receipt)
    assert plasma.in_flight_exit(tx).competitor_pos == comp_pos
    alice0, bob0 = w3.eth.get_balance(ALICE.address), w3.eth.get_balance(BOB.address)
    advance(node, w3, 2 * PERIOD + 1)
    receipt = plasma.process_exits(CAROL.private_key, ETH, 10)
    events = plasma.l1.receipt_events(receipt)
    assert [e.args["canonical"] for e in events if e.name == "InFlightExitFinalized"] == [False]
    assert [(e.args["owner"], e.args["isOutput"], e.args["amount"]) for e in events
            if e.name == "InFlightExitPaid"] == [(ALICE.address, False, ETHER)]
    assert w3.eth.get_balance(ALICE.address) == alice0 + ETHER + MINIMAL.piggyback_bond
    assert w3.eth.get_balance(BOB.address) == bob0 + MINIMAL.piggyback_bond  # bond back, no value
    assert w3.eth.get_balance(WATCHER.address) == watcher0 + MINIMAL.in_flight_exit_bond
    assert not plasma.is_exited(tx.output_id(0))


def test_piggybacked_input_spent_elsewhere_is_challenged(
        node: NodeProcess, w3: Web3, plasma: PlasmaContract, child: Child) -> None:
    dep_pos, dep_tx, signed, _ = withheld_payment(child)
    tx = signed.tx
    plasma.start_in_flight_exit(BOB.private_key, signed, [dep_tx], [()])
    plasma.piggyback(ALICE.private_key, tx, 0, False)
    double = child.sign(pay(ALICE, dep_pos, (CAROL, ETHER)), ALICE)
    refused("SameTransaction", plasma.challenge_ife_input_spent, WATCHER.private_key, tx, 0, signed, 0)
    refused("BadIndex", plasma.challenge_ife_input_spent, WATCHER.private_key, tx, 1, double, 0)
    watcher0 = w3.eth.get_balance(WATCHER.address)
    receipt = plasma.challenge_ife_input_spent(WATCHER.private_key, tx, 0, double, 0)
    assert w3.eth.get_balance(WATCHER.address) == watcher0 + MINIMAL.piggyback_bond - cost(receipt)
    assert plasma.in_flight_exit(tx).piggybacked_inputs == 0
    refused("NotPiggybacked", plasma.challenge_ife_input_spent, WATCHER.private_key, tx, 0, double, 0)


def test_piggybacked_output_spent_after_inclusion_is_challenged(
        node: NodeProcess, w3: Web3, plasma: PlasmaContract, child: Child) -> None:
    """The tx was included after all and Bob spent his output in block 2000; he still
    piggybacks it on Alice's in-flight exit. A watcher shows the spend: Bob's output is not
    paid (no double payment), Alice's change is."""
    _, dep_tx, signed, tx_pos = withheld_payment(child)
    tx = signed.tx
    bob_spend = child.sign(pay(BOB, tx_pos, (CAROL, 6 * ETHER // 10)), BOB)
    child.submit(bob_spend.tx)
    plasma.start_in_flight_exit(ALICE.private_key, signed, [dep_tx], [()])
    plasma.piggyback(BOB.private_key, tx, 0, True)
    plasma.piggyback(ALICE.private_key, tx, 1, True)
    not_bobs = child.sign(bob_spend.tx, CAROL)
    refused("BadSignature", plasma.challenge_ife_output_spent, WATCHER.private_key, tx, tx_pos,
            child.proof(tx_pos), 0, not_bobs, 0)
    refused("NotIncluded", plasma.challenge_ife_output_spent, WATCHER.private_key, tx, tx_pos,
            (1,), 0, bob_spend, 0)
    refused("NotSpendingExitedOutput", plasma.challenge_ife_output_spent, WATCHER.private_key, tx,
            tx_pos, child.proof(tx_pos), 1, child.sign(bob_spend.tx, ALICE), 0)
    watcher0 = w3.eth.get_balance(WATCHER.address)
    receipt = plasma.challenge_ife_output_spent(WATCHER.private_key, tx, tx_pos, child.proof(tx_pos), 0,
                                                bob_spend, 0)
    watcher0 -= cost(receipt)
    assert w3.eth.get_balance(WATCHER.address) == watcher0 + MINIMAL.piggyback_bond
    assert plasma.in_flight_exit(tx).piggybacked_outputs == 0b10
    bob0, alice0 = w3.eth.get_balance(BOB.address), w3.eth.get_balance(ALICE.address)
    advance(node, w3, 2 * PERIOD + 1)
    receipt = plasma.process_exits(WATCHER.private_key, ETH, 10)
    assert [(e.args["owner"], e.args["index"]) for e in plasma.l1.receipt_events(receipt)
            if e.name == "InFlightExitPaid"] == [(ALICE.address, 1)]
    assert w3.eth.get_balance(BOB.address) == bob0
    assert w3.eth.get_balance(ALICE.address) == alice0 + 4 * ETHER // 10 + MINIMAL.piggyback_bond \
        + MINIMAL.in_flight_exit_bond


def test_standard_exit_and_piggyback_of_one_output_pay_once(
        node: NodeProcess, w3: Web3, plasma: PlasmaContract, child: Child) -> None:
    _, dep_tx, signed, tx_pos = withheld_payment(child)
    tx = signed.tx
    receipt, exit_id = plasma.start_standard_exit(BOB.private_key, tx_pos, tx, child.proof(tx_pos))
    plasma.start_in_flight_exit(ALICE.private_key, signed, [dep_tx], [()])
    plasma.piggyback(BOB.private_key, tx, 0, True)
    bob0 = w3.eth.get_balance(BOB.address)
    advance(node, w3, 2 * PERIOD + 1)
    receipt = plasma.process_exits(WATCHER.private_key, ETH, 10)
    events = plasma.l1.receipt_events(receipt)
    # the in-flight exit (its input is a deposit: one period) comes first and pays Bob;
    # his standard exit of the same output id is then skipped, its bond returned
    names = [e.name for e in events]
    assert names.index("InFlightExitFinalized") < names.index("ExitSkipped")
    assert [e.args["exitId"] for e in events if e.name == "ExitSkipped"] == [exit_id]
    assert "ExitFinalized" not in names
    assert w3.eth.get_balance(BOB.address) == bob0 + 6 * ETHER // 10 + MINIMAL.piggyback_bond \
        + MINIMAL.exit_bond


def test_an_input_exited_first_leaves_nothing_for_the_outputs(
        node: NodeProcess, w3: Web3, plasma: PlasmaContract, child: Child) -> None:
    """Alice pays Bob in a withheld block, then exits her (spent) deposit, and nobody
    challenges it. Her exit comes first and takes the deposit; Bob's in-flight exit of the
    payment then pays no output: the contract never pays one deposit twice (MoreVP's
    "input finalized by another exit")."""
    dep_pos, dep_tx, signed, _ = withheld_payment(child)
    tx = signed.tx
    plasma.start_standard_exit(ALICE.private_key, dep_pos, dep_tx, ())
    plasma.start_in_flight_exit(BOB.private_key, signed, [dep_tx], [()])
    plasma.piggyback(BOB.private_key, tx, 0, True)
    alice0, bob0 = w3.eth.get_balance(ALICE.address), w3.eth.get_balance(BOB.address)
    held = w3.eth.get_balance(plasma.address)
    advance(node, w3, 2 * PERIOD + 1)
    receipt = plasma.process_exits(WATCHER.private_key, ETH, 10)
    events = plasma.l1.receipt_events(receipt)
    assert [e.name for e in events] == ["ExitFinalized", "InFlightExitFinalized"]
    assert w3.eth.get_balance(ALICE.address) == alice0 + ETHER + MINIMAL.exit_bond
    # Bob gets his bonds back and nothing else
    assert w3.eth.get_balance(BOB.address) == bob0 + MINIMAL.piggyback_bond + MINIMAL.in_flight_exit_bond
    assert w3.eth.get_balance(plasma.address) == held - ETHER - MINIMAL.exit_bond \
        - MINIMAL.piggyback_bond - MINIMAL.in_flight_exit_bond == 0
    assert not plasma.is_exited(tx.output_id(0))


def test_late_piggybacks_and_canonicity_challenges_refused(
        node: NodeProcess, w3: Web3, plasma: PlasmaContract, child: Child) -> None:
    """Piggybacks and canonicity challenges belong to the first half of the period, so that
    the second half is left for their challenges and responses (MoreVP)."""
    dep_pos, dep_tx, signed, tx_pos = withheld_payment(child)
    tx = signed.tx
    plasma.start_in_flight_exit(ALICE.private_key, signed, [dep_tx], [()])
    plasma.piggyback(ALICE.private_key, tx, 1, True)
    advance(node, w3, PERIOD // 2 + 1)
    refused("PiggybackPeriodOver", plasma.piggyback, BOB.private_key, tx, 0, True)
    competitor = child.sign(pay(ALICE, dep_pos, (CAROL, ETHER)), ALICE)
    refused("CanonicityChallengePeriodOver", plasma.challenge_not_canonical, CAROL.private_key, tx, 0,
            competitor, 0)
    del tx_pos


# -- the mainnet-like period, and gas ---------------------------------------------------------

def test_mainnet_like_seven_day_period(node: NodeProcess, w3: Web3) -> None:
    plasma = deploy_plasma(w3, DEPLOYER.address, OPERATOR.address, MAINNET_LIKE)
    assert plasma.config() == MAINNET_LIKE
    child = Child(plasma)
    _, _, pos, tx = alice_pays_bob(child)
    _, exit_id = plasma.start_standard_exit(BOB.private_key, pos, tx, child.proof(pos))
    exitable_at = plasma.exit(exit_id).exitable_at
    assert exitable_at >= plasma.block(1000)[1] + 14 * 24 * 3600
    rpc(node.url, "evm_increaseTime", [13 * 24 * 3600])
    rpc(node.url, "evm_mine", [])
    assert w3.eth.get_block("latest")["timestamp"] < exitable_at
    assert finalized(plasma, plasma.process_exits(WATCHER.private_key, ETH, 5)) == []
    rpc(node.url, "evm_increaseTime", [24 * 3600 + 60])
    rpc(node.url, "evm_mine", [])
    assert w3.eth.get_block("latest")["timestamp"] >= exitable_at
    assert finalized(plasma, plasma.process_exits(WATCHER.private_key, ETH, 5)) == [(exit_id, True)]


def test_gas(node: NodeProcess, w3: Web3, plasma: PlasmaContract, child: Child,
             capsys: pytest.CaptureFixture[str]) -> None:
    """Gas of each move, printed (pytest -s) and bounded."""
    gas: dict[str, int] = {}
    deposits = [child.deposit(ALICE, ETHER) for _ in range(4)]
    gas["deposit"] = child.gas["deposit"]
    txs = [pay(ALICE, p, (BOB, ETHER // 2), (ALICE, ETHER // 2)) for p, _ in deposits]
    filler = [pay(CAROL, encode_position(900 + i, 0, 0), (CAROL, 1)) for i in range(60)]
    blknum = child.submit(*txs, *filler)  # 64 txs: proofs of ~6 siblings
    gas["submitBlock"] = child.gas["submitBlock"]
    for i, t in enumerate(txs):
        pos = encode_position(blknum, i, 0)
        receipt, _ = plasma.start_standard_exit(BOB.private_key, pos, t, child.proof(pos))
        gas["startStandardExit"] = int(receipt["gasUsed"])
    dep_pos, dep_tx = deposits[0]
    _, alice_exit = plasma.start_standard_exit(ALICE.private_key, dep_pos, dep_tx, ())
    receipt = plasma.challenge_standard_exit(WATCHER.private_key, alice_exit, child.sign(txs[0], ALICE), 0)
    gas["challengeStandardExit"] = int(receipt["gasUsed"])
    p2, d2 = child.deposit(CAROL, ETHER)
    ife_tx = pay(CAROL, p2, (BOB, ETHER // 2), (CAROL, ETHER // 2))
    receipt, _ = plasma.start_in_flight_exit(CAROL.private_key, child.sign(ife_tx, CAROL), [d2], [()])
    gas["startInFlightExit (1 input, 2 outputs)"] = int(receipt["gasUsed"])
    gas["piggyback"] = int(plasma.piggyback(BOB.private_key, ife_tx, 0, True)["gasUsed"])
    advance(node, w3, 2 * PERIOD + 1)
    # by priority: Alice's challenged deposit exit (one period), the in-flight exit (its
    # input is a deposit: one period), then block blknum's four (two periods)
    skip = plasma.process_exits(WATCHER.private_key, ETH, 1)
    assert not [e for e in plasma.l1.receipt_events(skip) if e.name != "ExitSkipped"]
    gas["processExits (a challenged exit's entry)"] = int(skip["gasUsed"])
    one = plasma.process_exits(WATCHER.private_key, ETH, 1)
    assert "InFlightExitFinalized" in [e.name for e in plasma.l1.receipt_events(one)]
    gas["processExits (an IFE, 1 piggybacked output)"] = int(one["gasUsed"])
    four = plasma.process_exits(WATCHER.private_key, ETH, 10)
    assert len(finalized(plasma, four)) == 4
    gas["processExits per standard exit (4 in one call)"] = int(four["gasUsed"]) // 4
    with capsys.disabled():
        print("\nPlasmaChain gas:")
        for name, used in gas.items():
            print(f"  {name:48s} {used:>8,d}")
    bounds = {"deposit": 120_000, "submitBlock": 80_000, "startStandardExit": 250_000,
              "challengeStandardExit": 80_000, "piggyback": 80_000}
    for name, bound in bounds.items():
        assert gas[name] < bound, (name, gas[name])


def test_configs() -> None:
    assert MINIMAL.as_tuple() == (60, ETHER // 100, ETHER // 200, ETHER // 50)
    assert MAINNET_LIKE.min_exit_period == 7 * 24 * 3600
    assert PlasmaConfig(1, 2, 3, 4).as_tuple() == (1, 2, 3, 4)
