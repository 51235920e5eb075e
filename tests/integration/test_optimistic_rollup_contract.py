"""OptimisticRollup.sol on a real node: queues, forced inclusion, bonds, the bisection game.

The L2 rules are replaced by a toy state machine (``HashChainProver``: root after a step =
keccak256(root || step)) so that these tests exercise the contract's own protocol: the
deposit and forced queues that a batch must consume in order and in time, the challenge
window, every move and timeout of the dispute game, the removal of a proven-false batch
and of every batch built on it, and withdrawals paid once against final roots. Each
attack (a skipped deposit, censorship, a false root, a lying or silent party, a false
challenge, an early or double withdrawal) is tried and defeated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
DEPLOYER, SEQUENCER, ALICE, CHALLENGER, PROPOSER = DEV[0], DEV[1], DEV[2], DEV[3], DEV[4]
ETHER = 10**18
WINDOW = 600  # seconds
MOVE = 60  # seconds per move
DELAY = 5  # blocks
PROPOSER_BOND = ETHER
CHALLENGER_BOND = ETHER // 2
GENESIS = b"\x11" * 32


# ---------------------------------------------------------------- the toy L2 and its proofs


def encode_steps(steps: list[bytes]) -> bytes:
    return b"".join(len(s).to_bytes(2, "big") + s for s in steps)


def merkle_levels(steps: list[bytes]) -> list[list[bytes]]:
    width = 1
    while width < len(steps):
        width *= 2
    level = [keccak(s) for s in steps] + [b"\x00" * 32] * (width - len(steps))
    levels = [level]
    while len(level) > 1:
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def step_proof(steps: list[bytes], index: int) -> list[bytes]:
    return [level[(index >> depth) ^ 1] for depth, level in enumerate(merkle_levels(steps)[:-1])]


def roots_after(pre: bytes, steps: list[bytes]) -> list[bytes]:
    """roots[i] = the root before step i; roots[len] = after the last step."""
    roots = [pre]
    for step in steps:
        roots.append(keccak(roots[-1] + step))
    return roots


def tx_step(i: int) -> bytes:
    return b"\x01" + i.to_bytes(8, "big")


def deposit_step(index: int, sender: str, to: str, token: str, token_id: int, amount: int) -> bytes:
    return (b"\xd0" + index.to_bytes(8, "big") + bytes.fromhex(sender[2:]) + bytes.fromhex(to[2:])
            + bytes.fromhex(token[2:]) + token_id.to_bytes(4, "big") + amount.to_bytes(32, "big"))


# ---------------------------------------------------------------- fixtures


@dataclass
class Rollup:
    w3: Web3
    node: NodeProcess
    contract: Contract

    def send(self, who: Any, fn: Any, value: int = 0) -> dict[str, Any]:
        tx = fn.transact({"from": who.address, "value": value})
        receipt = dict(self.w3.eth.wait_for_transaction_receipt(tx, timeout=30))
        assert receipt["status"] == 1
        return receipt

    def refused(self, who: Any, fn: Any, error: str, value: int = 0) -> None:
        selectors = {keccak(text=_signature(e))[:4]: e["name"] for e in self.contract.abi
                     if e["type"] == "error"}
        with pytest.raises(ContractCustomError) as info:
            fn.call({"from": who.address, "value": value})
        data = info.value.data
        raw = bytes.fromhex((data if isinstance(data, str) else data["data"])[2:])
        assert selectors.get(raw[:4]) == error, f"reverted with {selectors.get(raw[:4])}, not {error}"

    def advance(self, seconds: int) -> None:
        """Mine a block ``seconds`` after the head (hardhat-network-helpers' time.increase).

        evm_increaseTime moves the wall clock's offset, and the head can already be ahead
        of the wall clock when blocks were mined within one second, so it is not used here.
        """
        head = self.w3.eth.get_block("latest")["timestamp"]
        rpc(self.node.url, "evm_mine", [head + seconds])

    def mine(self, blocks: int) -> None:
        rpc(self.node.url, "anvil_mine", [hex(blocks)])

    def tip(self) -> tuple[int, bytes]:
        count = self.contract.functions.batchCount().call()
        return count - 1, bytes(self.contract.functions.getBatch(count - 1).call()[0])

    def post(self, steps: list[bytes], root: bytes | None = None, who: Any = SEQUENCER) -> tuple[int, bytes]:
        """Post a batch on the current tip; the honest root unless ``root`` is given."""
        _, pre = self.tip()
        honest = roots_after(pre, steps)[-1]
        self.send(who, self.contract.functions.submitBatch(encode_steps(steps), root or honest))
        index, _ = self.tip()
        return index, honest


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"


@pytest.fixture()
def rollup(node: NodeProcess, w3: Web3) -> Iterator[Rollup]:
    prover = deploy(w3, load_artifact("HashChainProver"), sender=DEPLOYER.address)
    contract = deploy(w3, load_artifact("OptimisticRollup"), SEQUENCER.address, prover.address, GENESIS,
                      (WINDOW, MOVE, DELAY, PROPOSER_BOND, CHALLENGER_BOND), sender=DEPLOYER.address)
    r = Rollup(w3, node, contract)
    r.send(SEQUENCER, contract.functions.bond(), value=PROPOSER_BOND)
    yield r


# ---------------------------------------------------------------- queues and batches


def test_a_batch_consumes_deposits_in_order_and_byte_for_byte(rollup: Rollup) -> None:
    c = rollup.contract
    rollup.send(ALICE, c.functions.depositETH(ALICE.address), value=3 * ETHER)
    rollup.send(ALICE, c.functions.depositETH(ALICE.address), value=ETHER)
    zero = "0x" + "00" * 20
    d0 = deposit_step(0, ALICE.address, ALICE.address, zero, 0, 3 * ETHER)
    d1 = deposit_step(1, ALICE.address, ALICE.address, zero, 0, ETHER)
    forged = deposit_step(0, ALICE.address, ALICE.address, zero, 0, 30 * ETHER)  # money from nothing
    root = b"\x22" * 32
    rollup.refused(SEQUENCER, c.functions.submitBatch(encode_steps([forged]), root), "QueueMismatch")
    rollup.refused(SEQUENCER, c.functions.submitBatch(encode_steps([d1]), root), "QueueMismatch")  # skips d0
    rollup.refused(SEQUENCER, c.functions.submitBatch(encode_steps([d0, d1, d1]), root), "QueueExhausted")
    rollup.refused(ALICE, c.functions.submitBatch(encode_steps([d0]), root), "NotSequencer")
    index, _ = rollup.post([d0, tx_step(1), d1])
    batch = c.functions.getBatch(index).call()
    assert tuple(batch[2:5]) == (3, 2, 0)  # stepCount, depositsUntil, forcedUntil
    assert bytes(batch[1]) == merkle_levels([d0, tx_step(1), d1])[-1][0]
    assert c.functions.computeStepsRoot(encode_steps([d0, tx_step(1), d1])).call()[0] == batch[1]


def test_malformed_batches_are_refused(rollup: Rollup) -> None:
    c = rollup.contract
    root = b"\x22" * 32
    for data in (b"", b"\x00", b"\x00\x00\x01", b"\x00\x05abc", b"\x00\x01a\x00"):
        rollup.refused(SEQUENCER, c.functions.submitBatch(data, root), "MalformedSteps")


def test_censorship_ends_through_forced_inclusion(rollup: Rollup) -> None:
    c = rollup.contract
    censored = b"\x01signed-l2-tx-of-alice"
    rollup.send(ALICE, c.functions.forceInclude(censored))
    rollup.post([tx_step(1)])  # within the delay the sequencer may still leave it out
    rollup.mine(DELAY + 1)
    rollup.refused(SEQUENCER, c.functions.submitBatch(encode_steps([tx_step(2)]), b"\x33" * 32),
                   "MessageOverdue")
    assert c.functions.isSequencerOverdue().call()
    # now anyone bonded may post, and must include the forced transaction
    rollup.refused(PROPOSER, c.functions.submitBatch(encode_steps([tx_step(2)]), b"\x33" * 32),
                   "InsufficientBond")
    rollup.send(PROPOSER, c.functions.bond(), value=PROPOSER_BOND)
    rollup.refused(PROPOSER, c.functions.submitBatch(encode_steps([tx_step(2)]), b"\x33" * 32),
                   "MessageOverdue")
    index, _ = rollup.post([b"\xf0" + censored, tx_step(2)], who=PROPOSER)
    assert c.functions.getBatch(index).call()[4] == 1 and not c.functions.isSequencerOverdue().call()
    rollup.refused(PROPOSER, c.functions.submitBatch(encode_steps([tx_step(3)]), b"\x33" * 32),
                   "NotSequencer")  # the sequencer is back in charge


def test_an_overdue_deposit_blocks_the_sequencer_until_included(rollup: Rollup) -> None:
    c = rollup.contract
    rollup.send(ALICE, c.functions.depositETH(ALICE.address), value=ETHER)
    rollup.mine(DELAY + 1)
    rollup.refused(SEQUENCER, c.functions.submitBatch(encode_steps([tx_step(1)]), b"\x33" * 32),
                   "MessageOverdue")
    step = deposit_step(0, ALICE.address, ALICE.address, "0x" + "00" * 20, 0, ETHER)
    rollup.post([step])


# ---------------------------------------------------------------- the dispute game


def play_bisection(rollup: Rollup, dispute: int, steps: list[bytes], claimed: list[bytes],
                   true: list[bytes]) -> None:
    """Defender posts its claimed roots; the challenger compares them with the true ones."""
    c = rollup.contract
    while True:
        d = c.functions.disputes(dispute).call()
        lo, hi, turn = d[1], d[2], d[4]
        if turn == 3:  # OneStep
            return
        mid = (lo + hi) // 2
        rollup.send(SEQUENCER, c.functions.bisect(dispute, claimed[mid]))
        rollup.send(CHALLENGER, c.functions.choose(dispute, claimed[mid] == true[mid]))


def test_a_false_root_is_proven_false_and_removed_with_every_batch_on_it(rollup: Rollup, w3: Web3) -> None:
    c = rollup.contract
    good, _ = rollup.post([tx_step(i) for i in range(3)])
    steps = [tx_step(i) for i in range(10, 23)]
    _, pre = rollup.tip()
    true = roots_after(pre, steps)
    claimed = true[:7] + [keccak(b"lie" + bytes([i])) for i in range(7, len(true))]  # wrong from step 6 on
    bad, _ = rollup.post(steps, root=claimed[-1])
    later, _ = rollup.post([tx_step(99)], root=keccak(claimed[-1] + tx_step(99)))
    rollup.send(CHALLENGER, c.functions.challenge(bad), value=CHALLENGER_BOND)
    rollup.refused(CHALLENGER, c.functions.bisect(0, b"\x00" * 32), "NotParty")
    rollup.refused(SEQUENCER, c.functions.choose(0, True), "WrongTurn")
    play_bisection(rollup, 0, steps, claimed, true)
    d = c.functions.disputes(0).call()
    assert (d[1], d[2]) == (6, 7) and bytes(d[7]) == true[6]
    rollup.refused(CHALLENGER, c.functions.proveStep(0, steps[6], step_proof(steps, 5), b""), "BadStepProof")
    with pytest.raises(Exception, match="witness does not prove"):
        c.functions.proveStep(0, steps[6], step_proof(steps, 6), b"bad").call({"from": CHALLENGER.address})
    before = w3.eth.get_balance(CHALLENGER.address)
    receipt = rollup.send(CHALLENGER, c.functions.proveStep(0, steps[6], step_proof(steps, 6), b""))
    paid = w3.eth.get_balance(CHALLENGER.address) - before + receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert paid == CHALLENGER_BOND + PROPOSER_BOND // 2
    assert c.functions.bonds(SEQUENCER.address).call() == 0
    assert c.functions.burned().call() == PROPOSER_BOND // 2
    assert c.functions.batchCount().call() == bad  # bad and later are gone, good stays
    assert later > bad and rollup.tip()[0] == good
    rollup.refused(SEQUENCER, c.functions.submitBatch(encode_steps(steps), true[-1]), "InsufficientBond")
    rollup.send(SEQUENCER, c.functions.bond(), value=PROPOSER_BOND)
    index, _ = rollup.post(steps)  # the honest chain continues from the last valid root
    assert index == bad and bytes(c.functions.getBatch(index).call()[0]) == true[-1]


def test_a_false_challenge_of_an_honest_root_costs_the_challenger_its_bond(rollup: Rollup) -> None:
    c = rollup.contract
    steps = [tx_step(i) for i in range(5)]
    _, pre = rollup.tip()
    true = roots_after(pre, steps)
    index, _ = rollup.post(steps)
    rollup.send(CHALLENGER, c.functions.challenge(index), value=CHALLENGER_BOND)
    dispute = c.functions.disputeCount().call() - 1
    # the challenger claims to disagree where the defender is right
    while c.functions.disputes(dispute).call()[4] != 3:
        d = c.functions.disputes(dispute).call()
        mid = (d[1] + d[2]) // 2
        rollup.send(SEQUENCER, c.functions.bisect(dispute, true[mid]))
        rollup.send(CHALLENGER, c.functions.choose(dispute, False))
    d = c.functions.disputes(dispute).call()
    rollup.send(SEQUENCER, c.functions.proveStep(dispute, steps[d[1]], step_proof(steps, d[1]), b""))
    assert c.functions.bonds(SEQUENCER.address).call() == PROPOSER_BOND + CHALLENGER_BOND // 2
    assert c.functions.batchCount().call() == index + 1
    assert c.functions.getBatch(index).call()[7] == 0  # no open dispute left


def test_a_silent_defender_loses_by_timeout(rollup: Rollup) -> None:
    c = rollup.contract
    index, _ = rollup.post([tx_step(1), tx_step(2)])
    rollup.send(CHALLENGER, c.functions.challenge(index), value=CHALLENGER_BOND)
    dispute = c.functions.disputeCount().call() - 1
    rollup.refused(CHALLENGER, c.functions.timeout(dispute), "DeadlineNotReached")
    rollup.advance(MOVE + 1)
    rollup.refused(SEQUENCER, c.functions.bisect(dispute, b"\x00" * 32), "DeadlinePassed")
    rollup.send(CHALLENGER, c.functions.timeout(dispute))
    assert c.functions.batchCount().call() == index  # even an honest root goes if not defended


def test_a_silent_challenger_loses_by_timeout(rollup: Rollup) -> None:
    c = rollup.contract
    steps = [tx_step(1), tx_step(2), tx_step(3)]
    _, pre = rollup.tip()
    true = roots_after(pre, steps)
    index, _ = rollup.post(steps)
    rollup.send(CHALLENGER, c.functions.challenge(index), value=CHALLENGER_BOND)
    dispute = c.functions.disputeCount().call() - 1
    rollup.send(SEQUENCER, c.functions.bisect(dispute, true[1]))
    rollup.advance(MOVE + 1)
    rollup.send(SEQUENCER, c.functions.timeout(dispute))
    assert c.functions.batchCount().call() == index + 1
    assert c.functions.bonds(SEQUENCER.address).call() == PROPOSER_BOND + CHALLENGER_BOND // 2


def test_disputes_only_within_the_window_and_with_a_bond(rollup: Rollup) -> None:
    c = rollup.contract
    index, _ = rollup.post([tx_step(1)])
    rollup.refused(CHALLENGER, c.functions.challenge(index), "InsufficientBond", value=CHALLENGER_BOND - 1)
    rollup.refused(CHALLENGER, c.functions.challenge(0), "GenesisNotDisputable", value=CHALLENGER_BOND)
    rollup.advance(WINDOW + 1)
    rollup.refused(CHALLENGER, c.functions.challenge(index), "WindowClosed", value=CHALLENGER_BOND)


# ---------------------------------------------------------------- withdrawals and bonds


def test_withdrawals_wait_for_the_window_and_are_paid_once(rollup: Rollup, w3: Web3) -> None:
    c = rollup.contract
    rollup.send(ALICE, c.functions.depositETH(ALICE.address), value=2 * ETHER)
    zero = "0x" + "00" * 20
    leaf_root = keccak(abi_encode(["uint256", "address", "address", "uint256"],
                                  [7, ALICE.address, zero, ETHER]))
    step = deposit_step(0, ALICE.address, ALICE.address, zero, 0, 2 * ETHER)
    rollup.send(SEQUENCER, c.functions.submitBatch(encode_steps([step]), leaf_root))
    index, _ = rollup.tip()
    finalize = c.functions.finalizeWithdrawal(index, 7, ALICE.address, zero, ETHER, b"")
    rollup.refused(ALICE, finalize, "NotFinal")
    rollup.refused(SEQUENCER, c.functions.unbond(PROPOSER_BOND), "BondLocked")
    rollup.advance(WINDOW + 1)
    rollup.refused(ALICE, c.functions.finalizeWithdrawal(index, 7, ALICE.address, zero, 2 * ETHER, b""),
                   "BadWithdrawalProof")
    before = w3.eth.get_balance(ALICE.address)
    receipt = rollup.send(DEPLOYER, finalize)
    assert w3.eth.get_balance(ALICE.address) - before == ETHER
    assert receipt["gasUsed"] < 80_000
    rollup.refused(ALICE, finalize, "AlreadyWithdrawn")
    rollup.send(SEQUENCER, c.functions.unbond(PROPOSER_BOND))
    assert c.functions.bonds(SEQUENCER.address).call() == 0
