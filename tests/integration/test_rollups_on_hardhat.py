"""Both rollups deploy and run on Hardhat's node, not only on ours.

An L2 reaches its L1 only through JSON-RPC and the contract artifacts (DESIGN §3), so the
optimistic rollup's fraud-proof game and the ZK rollup's Groth16 verifier must work on any
EVM node. On the npm ``hardhat`` node: the optimistic rollup posts an honest batch, loses
a fraudulent one to a challenger at the one-step proof, and pays a withdrawal once after
the challenge window (reached with Hardhat's ``evm_increaseTime``); the ZK rollup accepts
a proven batch that consumes a deposit, refuses a forged proof, and pays a withdrawal as
soon as its batch is verified.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from web3 import Web3

from layerlab.bench.hardhat import HardhatNode, HardhatNodeConfig, HardhatNodeError
from layerlab.crypto.babyjubjub import prv2pub
from layerlab.l2.rollup.machine import ETH, RollupState
from layerlab.l2.rollup.optimistic import (
    MINIMAL,
    RollupTxError,
    deploy_rollup,
    execute_batch,
    play_challenger,
)
from layerlab.l2.zk.circuit import build_circuit
from layerlab.l2.zk.onchain import ZkRollupTxError, deploy_zk_rollup
from layerlab.l2.zk.prover import ZkProver
from layerlab.l2.zk.state import GWEI, BatchShape, ZkState, build_batch, sign_withdrawal
from tests.integration.test_optimistic_rollup_fraud import (
    ALICE,
    BOB,
    DEPLOYER,
    ETHER,
    SEQUENCER,
    VERIFIER,
    bob_batch,
    first_batch,
    lying_roots,
)
from tests.nodeproc import rpc

pytestmark = pytest.mark.slow

ZK_SHAPE = BatchShape(n_transfers=2, n_deposits=1, n_withdrawals=1, depth=8)
"""The shape the other ZK tests use, so the compiled circuit and key come from the cache."""


@pytest.fixture(scope="module")
def hardhat() -> Iterator[Web3]:
    node = HardhatNode(HardhatNodeConfig(block_interval_seconds=1.0))
    try:
        node.start()
    except HardhatNodeError as exc:
        pytest.skip(f"Hardhat node unavailable: {exc}")
    try:
        rpc(node.url, "evm_setAutomine", [True])
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        assert w3.client_version.lower().startswith("hardhat")
        yield w3
    finally:
        node.stop()


def test_the_optimistic_rollup_and_its_fraud_proof_run_on_hardhat(hardhat: Web3) -> None:
    w3 = hardhat
    rollup = deploy_rollup(w3, DEPLOYER.address, SEQUENCER.address, MINIMAL)
    rollup.bond(SEQUENCER.private_key, MINIMAL.proposer_bond)
    honest = RollupState()
    _, index = first_batch(rollup, honest)  # Alice deposits 5, pays Bob 1, withdraws 2
    assert rollup.state_root(index) == honest.root

    # a false root: the same valid transfers, roots from a state with 100 ETH from nothing
    batch = bob_batch(rollup, honest)
    roots = lying_roots(honest, batch, rollup.domain, 1, lambda s: s._set_balance(
        ETH, s.index_of[BOB.address_bytes], 100 * ETHER))
    rollup.submit_batch(SEQUENCER.private_key, batch, roots[-1])
    bad = rollup.batch_count() - 1
    verifier = execute_batch(copy.deepcopy(honest), batch, rollup.domain)
    dispute = rollup.challenge(VERIFIER.private_key, bad, MINIMAL.challenger_bond)
    play_challenger(rollup, VERIFIER.private_key, dispute, verifier,
                    lambda lo, hi: rollup.bisect(SEQUENCER.private_key, dispute,
                                                 roots[(lo + hi) // 2]))
    [resolved] = [e for e in rollup.events(0) if e.name == "DisputeResolved"]
    assert resolved.args["winner"] == VERIFIER.address
    assert rollup.batch_count() == bad
    assert rollup.l1.call("bonds", SEQUENCER.address) == 0

    with pytest.raises(RollupTxError) as err:
        rollup.finalize_withdrawal(BOB.private_key, index, honest, 0)
    assert err.value.error_name == "NotFinal"
    rpc(str(w3.provider.endpoint_uri), "evm_increaseTime", [MINIMAL.challenge_window + 1])
    rpc(str(w3.provider.endpoint_uri), "evm_mine", [])
    before = w3.eth.get_balance(ALICE.address)
    rollup.finalize_withdrawal(BOB.private_key, index, honest, 0)
    assert w3.eth.get_balance(ALICE.address) == before + 2 * ETHER
    with pytest.raises(RollupTxError) as err:
        rollup.finalize_withdrawal(BOB.private_key, index, honest, 0)
    assert err.value.error_name == "AlreadyWithdrawn"


def test_the_zk_rollup_and_its_verifier_run_on_hardhat(hardhat: Web3) -> None:
    w3 = hardhat
    build = build_circuit(ZK_SHAPE)
    prover = ZkProver(build)
    rollup = deploy_zk_rollup(w3, DEPLOYER.address, SEQUENCER.address, build)
    alice = b"\x01" * 32
    recipient = bytes.fromhex("00000000000000000000000000000000000b0b00")
    rollup.deposit(ALICE.private_key, *prv2pub(alice), 1000 * GWEI)
    state = ZkState(ZK_SHAPE.depth)
    first = build_batch(state, ZK_SHAPE, rollup.pending_deposits(), [], [])
    proof = prover.prove(first)
    forged = bytearray(proof.proof)
    forged[7] ^= 1
    with pytest.raises(ZkRollupTxError) as info:
        rollup.submit(SEQUENCER.private_key, first, bytes(forged))
    assert info.value.error_name == "InvalidProof"
    rollup.submit(SEQUENCER.private_key, first, proof.proof)
    assert rollup.state_root() == first.new_root

    second = build_batch(state, ZK_SHAPE, [], [], [sign_withdrawal(alice, 0, recipient, 250, 0)])
    before = w3.eth.get_balance(Web3.to_checksum_address(recipient))
    rollup.submit(SEQUENCER.private_key, second, prover.prove(second).proof)
    assert rollup.state_root() == second.new_root == state.root
    assert w3.eth.get_balance(Web3.to_checksum_address(recipient)) - before == 250 * GWEI
