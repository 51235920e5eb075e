"""The batch circuit, for real: compiled (cached under build/zk/), devnet key, proofs.

A valid batch of deposits, transfers and a withdrawal proves and verifies; the proof does
not verify for any other public hash; the operator refuses a bad signature, a wrong nonce
and too little balance; and a prover fed such a step anyway gets no witness at all.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from layerlab.crypto.babyjubjub import prv2pub
from layerlab.errors import InvalidProof
from layerlab.l2.zk.circuit import CircuitBuild, build_circuit
from layerlab.l2.zk.prover import ZkProver
from layerlab.l2.zk.state import (
    BatchShape,
    QueuedDeposit,
    ZkState,
    ZkTxError,
    build_batch,
    sign_transfer,
    sign_withdrawal,
)

pytestmark = pytest.mark.slow

SHAPE = BatchShape(n_transfers=2, n_deposits=1, n_withdrawals=1, depth=8)
ALICE, BOB = b"\x01" * 32, b"\x02" * 32


@pytest.fixture(scope="module")
def build() -> CircuitBuild:
    return build_circuit(SHAPE)


@pytest.fixture(scope="module")
def prover(build: CircuitBuild) -> ZkProver:
    return ZkProver(build)


def funded_state() -> ZkState:
    state = ZkState(SHAPE.depth)
    build_batch(state, SHAPE, [QueuedDeposit(*prv2pub(ALICE), 1000)], [], [])
    build_batch(state, SHAPE, [QueuedDeposit(*prv2pub(BOB), 50)], [], [])
    return state


def test_a_valid_batch_proves_and_verifies(build: CircuitBuild, prover: ZkProver) -> None:
    assert build.constraints > 0 and build.key_label.startswith("devnet")
    state = funded_state()
    witness = build_batch(state, SHAPE, [QueuedDeposit(*prv2pub(ALICE), 5)],
                          [sign_transfer(ALICE, 0, 1, 300, 0), sign_transfer(BOB, 1, 0, 10, 0)],
                          [sign_withdrawal(ALICE, 0, b"\x11" * 20, 100, 1)])
    assert state.accounts[0].balance == 1000 + 5 - 300 + 10 - 100
    assert state.accounts[1].balance == 50 + 300 - 10
    assert witness.new_root == state.root != witness.old_root
    proof = prover.prove(witness)
    assert prover.verify(proof.proof, witness.public_hash)
    assert not prover.verify(proof.proof, witness.public_hash ^ 1)
    print(f"\nN=2 M=1 W=1 D=8: {build.constraints} constraints, compile {build.compile_seconds} s, "
          f"setup {build.setup_seconds} s, witness {proof.witness_seconds:.2f} s, "
          f"prove {proof.prove_seconds:.2f} s")


@pytest.mark.parametrize(("check", "tx"), [
    ("signature", sign_transfer(BOB, 0, 1, 10, 0)),
    ("nonce", sign_transfer(ALICE, 0, 1, 10, 1)),
    ("balance", sign_transfer(ALICE, 0, 1, 1001, 0)),
])
def test_the_operator_refuses_unprovable_transfers(check: str, tx: object) -> None:
    state = funded_state()
    root = state.root
    with pytest.raises(ZkTxError) as info:
        build_batch(state, SHAPE, [], [tx], [])  # type: ignore[list-item]
    assert info.value.check == check
    assert state.root == root and state.accounts[0].balance == 1000




@pytest.mark.parametrize("change", ["bad-signature", "overdraft", "wrong-nonce"])
def test_a_prover_fed_an_invalid_step_cannot_prove(prover: ZkProver, tmp_path: Path,
                                                   change: str) -> None:
    state = funded_state()
    witness = build_batch(state, SHAPE, [], [sign_transfer(ALICE, 0, 1, 300, 0)], [])
    inputs = dict(witness.inputs)
    if change == "bad-signature":
        inputs["txS"] = [str(int(inputs["txS"][0]) + 1), *inputs["txS"][1:]]
    elif change == "overdraft":  # claim 2000 where the account holds 1000
        inputs["txAmount"] = ["2000", *inputs["txAmount"][1:]]
    else:
        inputs["txNonce"] = ["1", *inputs["txNonce"][1:]]
    with pytest.raises(InvalidProof, match="refuses"):
        prover.compute_witness(dataclasses.replace(witness, inputs=inputs), tmp_path / "w.wtns")
