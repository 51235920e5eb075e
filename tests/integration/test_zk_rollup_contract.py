"""The ZK rollup on a real node: snarkjs's verifier for the devnet key and ZkRollup.sol.

Deposits queue on L1; a batch that consumes them, with transfers and a withdrawal, is
proven by groth16py and accepted, which moves the root and pays the withdrawal at once; a
forged proof, a valid proof for other data, a replay of the accepted batch (a stale old
root), and a batch that skips a queued deposit are each refused. Gas is measured.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3

from layerlab.crypto.babyjubjub import prv2pub
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.zk.circuit import CircuitBuild, build_circuit
from layerlab.l2.zk.onchain import ZkRollupContract, ZkRollupTxError, deploy_zk_rollup
from layerlab.l2.zk.prover import ZkProver
from layerlab.l2.zk.state import (
    GWEI,
    BatchShape,
    ZkState,
    build_batch,
    sign_transfer,
    sign_withdrawal,
)
from layerlab.web.explorer import Explorer, Watched
from tests.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

SHAPE = BatchShape(n_transfers=2, n_deposits=1, n_withdrawals=1, depth=8)
DEV = derive_dev_accounts()
DEPLOYER, OPERATOR, USER = DEV[0], DEV[1], DEV[2]
ALICE, BOB = b"\x01" * 32, b"\x02" * 32
RECIPIENT = bytes.fromhex("00000000000000000000000000000000000a11ce")


@pytest.fixture(scope="module")
def build() -> CircuitBuild:
    return build_circuit(SHAPE)


@pytest.fixture(scope="module")
def prover(build: CircuitBuild) -> ZkProver:
    return ZkProver(build)


@pytest.fixture()
def rollup(node: NodeProcess, w3: Web3, build: CircuitBuild) -> Iterator[ZkRollupContract]:
    yield deploy_zk_rollup(w3, DEPLOYER.address, OPERATOR.address, build)


def test_batches_are_accepted_only_with_their_proof(rollup: ZkRollupContract, w3: Web3,
                                                    prover: ZkProver) -> None:
    state = ZkState(SHAPE.depth)
    assert rollup.state_root() == state.root == 0
    rollup.deposit(USER.private_key, *prv2pub(ALICE), 1000 * GWEI)
    rollup.deposit(USER.private_key, *prv2pub(BOB), 50 * GWEI)
    queue = rollup.pending_deposits()
    assert len(queue) == 2 and queue[0].amount == 1000

    # batch 1: the first deposit and a transfer from it
    first = build_batch(state, SHAPE, queue[:1], [], [])
    proof1 = prover.prove(first)
    # skipping the queued deposit: the operator proves a batch that leaves it out
    skipper = ZkState(SHAPE.depth)
    skipped = build_batch(skipper, SHAPE, [], [], [])
    with pytest.raises(ZkRollupTxError) as info:
        rollup.submit(OPERATOR.private_key, skipped, prover.prove(skipped).proof)
    assert info.value.error_name == "InvalidProof"
    # a forged proof
    forged = bytearray(proof1.proof)
    forged[100] ^= 1
    with pytest.raises(ZkRollupTxError) as info:
        rollup.submit(OPERATOR.private_key, first, bytes(forged))
    assert info.value.error_name == "InvalidProof"
    # a valid proof, but for other data (another new root)
    with pytest.raises(ZkRollupTxError) as info:
        rollup.submit_batch(OPERATOR.private_key, first.new_root ^ 1, first.data, proof1.proof)
    assert info.value.error_name == "InvalidProof"
    with pytest.raises(ZkRollupTxError) as info:
        rollup.submit_batch(OPERATOR.private_key, first.new_root, first.data[:-1] + b"\x01",
                            proof1.proof)
    assert info.value.error_name == "InvalidProof"
    assert rollup.state_root() == 0

    accepted = rollup.submit(OPERATOR.private_key, first, proof1.proof)
    assert rollup.state_root() == first.new_root
    assert len(rollup.pending_deposits()) == 1
    # the same batch again: its old root is stale now
    with pytest.raises(ZkRollupTxError) as info:
        rollup.submit(OPERATOR.private_key, first, proof1.proof)
    assert info.value.error_name == "InvalidProof"

    # batch 2: Bob's deposit, two transfers, a withdrawal paid at once
    second = build_batch(state, SHAPE, rollup.pending_deposits(),
                         [sign_transfer(ALICE, 0, 1, 300, 0), sign_transfer(BOB, 1, 0, 10, 0)],
                         [sign_withdrawal(ALICE, 0, RECIPIENT, 100, 1)])
    proof2 = prover.prove(second)
    assert prover.verify(proof2.proof, second.public_hash)
    recipient = Web3.to_checksum_address(RECIPIENT)
    before = w3.eth.get_balance(recipient)
    full = rollup.submit(OPERATOR.private_key, second, proof2.proof)
    assert rollup.state_root() == second.new_root == state.root
    assert w3.eth.get_balance(recipient) - before == 100 * GWEI
    assert rollup.pending_deposits() == []
    print(f"\nsubmitBatch gas: {accepted.gas_used} (deposit only), {full.gas_used} (deposit, "
          f"2 transfers, a withdrawal paid); calldata {full.calldata_bytes} B; "
          f"prove {proof2.prove_seconds:.1f} s + witness {proof2.witness_seconds:.1f} s")
    assert full.gas_used < 400_000

    # the explorer shows both verified batches, read from the chain alone: roots from the
    # event, the proof from the submitBatch calldata, the verification gas from the receipt
    explorer = Explorer(str(w3.provider.endpoint_uri), [Watched("ZkRollup", rollup.l1.address)])
    assert explorer.poll_once()
    shown = {b["index"]: b for b in explorer.view.to_json()["zk_batches"]}
    assert sorted(shown) == [0, 1]
    assert shown[1]["new_root"] == hex(second.new_root) and shown[1]["deposits"] == 1
    assert shown[1]["old_root"] == hex(first.new_root)
    assert shown[1]["gas_used"] == full.gas_used and shown[1]["data_bytes"] == len(second.data)
    assert [int(w, 16) for w in shown[1]["proof"]] == [
        int.from_bytes(proof2.proof[i:i + 32]) for i in range(0, 256, 32)]
