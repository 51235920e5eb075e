"""The optimistic rollup for real: the L2 machine, RollupProver.sol and OptimisticRollup.sol
on a node process, driven by web3.py.

A deposit made on L1 is credited on L2 through the queue; an honest batch is posted; a
sequencer that posts a fraudulent state root (it credits itself 100 ETH out of nothing) is
challenged by an honest verifier, loses the bisection game at the one-step proof on L1,
its bond and its batch; a false challenge of an honest batch loses the challenger's bond;
a withdrawal is paid once after the challenge window and refused before it and twice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import pytest
from web3 import Web3

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.eip712 import Domain
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.rollup.machine import ETH, RollupState, apply_step
from layerlab.l2.rollup.optimistic import (
    MINIMAL,
    Batch,
    ExecutedBatch,
    RollupContract,
    RollupTxError,
    choose,
    deploy_rollup,
    execute_batch,
    play_challenger,
)
from layerlab.l2.rollup.txs import Transfer, Withdraw, sign_tx
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
DEPLOYER, SEQUENCER, ALICE, BOB, VERIFIER = DEV[0], DEV[1], DEV[2], DEV[3], DEV[4]
ETHER = 10**18


def addr(account) -> bytes:  # type: ignore[no-untyped-def]
    return account.address_bytes


@pytest.fixture()
def rollup(node: NodeProcess, w3: Web3) -> Iterator[RollupContract]:
    r = deploy_rollup(w3, DEPLOYER.address, SEQUENCER.address, MINIMAL)
    r.bond(SEQUENCER.private_key, MINIMAL.proposer_bond)
    yield r


def advance(node: NodeProcess, w3: Web3, seconds: int) -> None:
    head = w3.eth.get_block("latest")["timestamp"]
    rpc(node.url, "evm_mine", [head + seconds])


def deposit(rollup: RollupContract, who, amount: int) -> bytes:  # type: ignore[no-untyped-def]
    return rollup.queued_step(rollup.deposit_eth(who.private_key, who.address, amount))


def first_batch(rollup: RollupContract, state: RollupState) -> tuple[ExecutedBatch, int]:
    """Alice deposits 5 ETH, pays Bob 1 and withdraws 2 to L1; the sequencer posts it."""
    d = rollup.domain
    steps = [
        deposit(rollup, ALICE, 5 * ETHER),
        sign_tx(Transfer(nonce=0, token=ETH, to=addr(BOB), amount=ETHER), ALICE.private_key,
                d).encode(),
        sign_tx(Withdraw(nonce=1, token=ETH, amount=2 * ETHER, recipient=addr(ALICE)),
                ALICE.private_key, d).encode(),
    ]
    executed = execute_batch(state, Batch(tuple(steps)), d)
    assert all(r.ok for r in executed.receipts)
    rollup.submit_batch(SEQUENCER.private_key, executed.batch, executed.post_root)
    return executed, rollup.batch_count() - 1


def bob_batch(rollup: RollupContract, state: RollupState) -> Batch:
    d = rollup.domain
    return Batch(tuple(
        sign_tx(Transfer(nonce=i, token=ETH, to=addr(ALICE), amount=ETHER // 10), BOB.private_key,
                d).encode() for i in range(5)))


def lying_roots(honest: RollupState, batch: Batch, domain: Domain, at: int,
                forge: Callable[[RollupState], object]) -> list[int]:
    """The roots a lying sequencer claims for ``batch``: its honest execution from
    ``honest`` (left untouched), except that ``forge`` edits the state after step ``at``."""
    lying = copy.deepcopy(honest)
    roots = [lying.root]
    for i, step in enumerate(batch.steps):
        apply_step(lying, step, domain)
        if i == at:
            forge(lying)
        roots.append(lying.root)
    return roots


def test_a_fraudulent_root_is_proven_false_on_chain(node: NodeProcess, w3: Web3,
                                                    rollup: RollupContract) -> None:
    honest = RollupState()
    _, index1 = first_batch(rollup, honest)
    assert rollup.state_root(index1) == honest.root

    # The sequencer's batch is five valid transfers from Bob, but the roots it claims come
    # from a state in which the sequencer credited itself 100 ETH during step 2.
    batch = bob_batch(rollup, honest)
    roots = lying_roots(honest, batch, rollup.domain, 2, lambda s: s._set_balance(
        ETH, s.index_of.get(addr(BOB), 0), 100 * ETHER))
    rollup.submit_batch(SEQUENCER.private_key, batch, roots[-1])
    index2 = rollup.batch_count() - 1

    # The verifier re-executes the batch from its own copy of the state and disagrees.
    verifier = execute_batch(copy.deepcopy(honest), batch, rollup.domain)
    assert verifier.post_root != rollup.state_root(index2)
    before = w3.eth.get_balance(VERIFIER.address)
    dispute = rollup.challenge(VERIFIER.private_key, index2, MINIMAL.challenger_bond)

    def lying_defender(lo: int, hi: int) -> None:
        rollup.bisect(SEQUENCER.private_key, dispute, roots[(lo + hi) // 2])

    play_challenger(rollup, VERIFIER.private_key, dispute, verifier, lying_defender)
    resolved = [e for e in rollup.events(0) if e.name == "DisputeResolved"]
    assert resolved[-1].args["winner"] == VERIFIER.address
    assert "wrong" in resolved[-1].args["how"]
    assert rollup.batch_count() == index2  # the false batch is gone
    assert rollup.l1.call("bonds", SEQUENCER.address) == 0
    # the verifier got its bond back and half the sequencer's, minus gas
    assert w3.eth.get_balance(VERIFIER.address) > before + MINIMAL.proposer_bond // 2 - ETHER // 100


def test_a_false_challenge_loses_its_bond(node: NodeProcess, w3: Web3,
                                          rollup: RollupContract) -> None:
    honest = RollupState()
    first_batch(rollup, honest)
    batch = bob_batch(rollup, honest)
    executed = execute_batch(honest, batch, rollup.domain)
    rollup.submit_batch(SEQUENCER.private_key, batch, executed.post_root)
    index = rollup.batch_count() - 1

    # A griefer disputes the honest root and disagrees with every honest midpoint.
    griefer = DEV[5]
    dispute = rollup.challenge(griefer.private_key, index, MINIMAL.challenger_bond)
    for _ in range(16):
        d = rollup.dispute(dispute)
        turn, lo, hi = int(d["turn"]), int(d["lo"]), int(d["hi"])
        if turn == 1:
            rollup.bisect(SEQUENCER.private_key, dispute, executed.roots[(lo + hi) // 2])
        elif turn == 2:
            rollup.choose(griefer.private_key, dispute, False)
        else:
            break
    assert int(rollup.dispute(dispute)["turn"]) == 3
    # the one-step proof, by whoever sends it, shows the defender's root is right
    rollup.prove_step(SEQUENCER.private_key, dispute, executed, int(rollup.dispute(dispute)["lo"]))
    resolved = [e for e in rollup.events(0) if e.name == "DisputeResolved"]
    assert resolved[-1].args["winner"] == SEQUENCER.address
    assert rollup.batch_count() == index + 1
    assert rollup.l1.call("bonds", SEQUENCER.address) == MINIMAL.proposer_bond \
        + MINIMAL.challenger_bond // 2


def test_a_withdrawal_is_paid_once_after_the_window(node: NodeProcess, w3: Web3,
                                                    rollup: RollupContract) -> None:
    honest = RollupState()
    _, index = first_batch(rollup, honest)
    with pytest.raises(RollupTxError) as err:
        rollup.finalize_withdrawal(BOB.private_key, index, honest, 0)
    assert err.value.error_name == "NotFinal"
    advance(node, w3, MINIMAL.challenge_window + 1)
    before = w3.eth.get_balance(ALICE.address)
    rollup.finalize_withdrawal(BOB.private_key, index, honest, 0)  # anyone may send it
    assert w3.eth.get_balance(ALICE.address) == before + 2 * ETHER
    with pytest.raises(RollupTxError) as err:
        rollup.finalize_withdrawal(BOB.private_key, index, honest, 0)
    assert err.value.error_name == "AlreadyWithdrawn"


def test_a_forged_withdrawal_proof_is_refused(node: NodeProcess, w3: Web3,
                                              rollup: RollupContract) -> None:
    honest = RollupState()
    _, index = first_batch(rollup, honest)
    advance(node, w3, MINIMAL.challenge_window + 1)
    forged = copy.deepcopy(honest)
    forged.withdrawals[0] = (addr(BOB), b"\0" * 20, 4 * ETHER)  # claims 4 ETH to Bob
    with pytest.raises(RollupTxError) as err:
        rollup.finalize_withdrawal(BOB.private_key, index, forged, 0)
    assert err.value.error_name == "BadWithdrawalProof"


def test_censorship_ends_through_forced_inclusion(node: NodeProcess, w3: Web3,
                                                  rollup: RollupContract) -> None:
    """The sequencer ignores Bob; Bob queues his transfer on L1. Once it is overdue, a batch
    without it is refused, and the batch that carries it applies it on L2."""
    honest = RollupState()
    first_batch(rollup, honest)
    tx = sign_tx(Transfer(nonce=0, token=ETH, to=addr(ALICE), amount=ETHER // 2), BOB.private_key,
                 rollup.domain).encode()
    forced = rollup.force_include(BOB.private_key, tx)
    assert forced == b"\xf0" + tx
    rpc(node.url, "anvil_mine", [hex(MINIMAL.inclusion_delay + 1)])
    other = sign_tx(Transfer(nonce=2, token=ETH, to=addr(BOB), amount=1), ALICE.private_key,
                    rollup.domain).encode()
    censoring = execute_batch(copy.deepcopy(honest), Batch((other,)), rollup.domain)
    with pytest.raises(RollupTxError) as err:
        rollup.submit_batch(SEQUENCER.private_key, censoring.batch, censoring.post_root)
    assert err.value.error_name == "MessageOverdue"
    fair = execute_batch(honest, Batch((other, forced)), rollup.domain)
    assert fair.receipts[1].ok
    rollup.submit_batch(SEQUENCER.private_key, fair.batch, fair.post_root)
    assert rollup.state_root(rollup.batch_count() - 1) == honest.root
    assert honest.balance(ETH, addr(BOB)) == ETHER // 2 + 1


def test_mainnet_like_window_is_seven_days(node: NodeProcess, w3: Web3) -> None:
    """The mainnet-like preset's withdrawal waits 7 days, reached with evm_increaseTime."""
    from layerlab.l2.rollup.optimistic import MAINNET_LIKE

    rollup = deploy_rollup(w3, DEPLOYER.address, SEQUENCER.address, MAINNET_LIKE)
    rollup.bond(SEQUENCER.private_key, MAINNET_LIKE.proposer_bond)
    honest = RollupState()
    _, index = first_batch(rollup, honest)
    assert rollup.l1.call("finalAt", index) - rollup.l1.call("getBatch", index)[5] == 7 * 86400
    rpc(node.url, "evm_increaseTime", [6 * 86400])
    rpc(node.url, "evm_mine", [])
    with pytest.raises(RollupTxError) as err:
        rollup.finalize_withdrawal(BOB.private_key, index, honest, 0)
    assert err.value.error_name == "NotFinal"
    rpc(node.url, "evm_increaseTime", [86400 + 60])
    rpc(node.url, "evm_mine", [])
    before = w3.eth.get_balance(ALICE.address)
    rollup.finalize_withdrawal(BOB.private_key, index, honest, 0)
    assert w3.eth.get_balance(ALICE.address) == before + 2 * ETHER


def test_a_silent_lying_defender_loses_its_batch_and_bond_by_timeout(
        node: NodeProcess, w3: Web3, rollup: RollupContract) -> None:
    """The sequencer posts a false root, answers the first bisection, then goes silent:
    after the move timeout the challenger ends the dispute, the batch and the bond go, the
    honest batch is posted from the last valid root, and Alice's withdrawal is paid."""
    honest = RollupState()
    _, index1 = first_batch(rollup, honest)
    batch = bob_batch(rollup, honest)
    roots = lying_roots(honest, batch, rollup.domain, 0, lambda s: s._set_balance(
        ETH, s.index_of[addr(BOB)], 100 * ETHER))
    rollup.submit_batch(SEQUENCER.private_key, batch, roots[-1])
    index2 = rollup.batch_count() - 1
    verifier = execute_batch(copy.deepcopy(honest), batch, rollup.domain)
    dispute = rollup.challenge(VERIFIER.private_key, index2, MINIMAL.challenger_bond)
    d = rollup.dispute(dispute)
    rollup.bisect(SEQUENCER.private_key, dispute, roots[(d["lo"] + d["hi"]) // 2])
    d = rollup.dispute(dispute)
    rollup.choose(VERIFIER.private_key, dispute,
                  choose(verifier, d["lo"], d["hi"], int.from_bytes(d["midRoot"], "big")))
    assert int(rollup.dispute(dispute)["turn"]) == 1  # the defender's move, which never comes
    with pytest.raises(RollupTxError) as err:
        rollup.timeout(VERIFIER.private_key, dispute)
    assert err.value.error_name == "DeadlineNotReached"
    advance(node, w3, MINIMAL.move_timeout + 1)
    before = w3.eth.get_balance(VERIFIER.address)
    rollup.timeout(VERIFIER.private_key, dispute)
    resolved = [e for e in rollup.events(0) if e.name == "DisputeResolved"]
    assert (resolved[-1].args["winner"], resolved[-1].args["how"]) == (VERIFIER.address,
                                                                       "defender timed out")
    assert rollup.batch_count() == index2 and rollup.l1.call("bonds", SEQUENCER.address) == 0
    # bond back plus half the slashed proposer bond, minus gas
    assert w3.eth.get_balance(VERIFIER.address) > before + MINIMAL.challenger_bond \
        + MINIMAL.proposer_bond // 2 - ETHER // 100

    # the honest chain continues from batch index1 (after the sequencer bonds again)
    rollup.bond(SEQUENCER.private_key, MINIMAL.proposer_bond)
    rollup.submit_batch(SEQUENCER.private_key, batch, verifier.post_root)
    assert rollup.state_root(index2) == verifier.post_root
    advance(node, w3, MINIMAL.challenge_window + 1)
    alice = w3.eth.get_balance(ALICE.address)
    rollup.finalize_withdrawal(BOB.private_key, index1, honest, 0)
    assert w3.eth.get_balance(ALICE.address) == alice + 2 * ETHER


def test_an_erc20_deposit_and_withdrawal_end_to_end(node: NodeProcess, w3: Web3,
                                                    rollup: RollupContract) -> None:
    """An OpenZeppelin ERC-20 deposited on L1 becomes L2 token 1, moves on L2 and is paid
    back on L1 by ``safeTransfer`` after the window, with the token's supply conserved."""
    supply = 10**24
    token = deploy(w3, load_artifact("LabToken"), "Lab Token", "LAB", supply,
                   sender=DEPLOYER.address, private_key="0x" + DEPLOYER.private_key.hex())
    for fn, who in ((token.functions.transfer(ALICE.address, supply), DEPLOYER),
                    (token.functions.approve(rollup.l1.address, supply), ALICE)):
        w3.eth.wait_for_transaction_receipt(fn.transact({"from": who.address}))
    d = rollup.domain
    state = RollupState()
    steps = (
        rollup.queued_step(rollup.deposit_erc20(ALICE.private_key, token.address, 700, ALICE.address)),
        sign_tx(Transfer(nonce=0, token=1, to=addr(BOB), amount=300), ALICE.private_key,
                d).encode(),
        sign_tx(Withdraw(nonce=0, token=1, amount=250, recipient=addr(BOB)), BOB.private_key,
                d).encode(),
    )
    executed = execute_batch(state, Batch(steps), d)
    assert all(r.ok for r in executed.receipts), executed.receipts
    rollup.submit_batch(SEQUENCER.private_key, executed.batch, executed.post_root)
    index = rollup.batch_count() - 1
    assert state.withdrawals[0] == (addr(BOB), bytes.fromhex(token.address[2:]), 250)
    with pytest.raises(RollupTxError) as err:
        rollup.finalize_withdrawal(BOB.private_key, index, state, 0)
    assert err.value.error_name == "NotFinal"
    advance(node, w3, MINIMAL.challenge_window + 1)
    rollup.finalize_withdrawal(ALICE.private_key, index, state, 0)
    balance = token.functions.balanceOf
    assert balance(BOB.address).call() == 250
    assert balance(rollup.l1.address).call() == 700 - 250 == state.total(1)
    assert balance(ALICE.address).call() + balance(BOB.address).call() \
        + balance(rollup.l1.address).call() == supply
