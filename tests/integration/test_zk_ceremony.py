"""The ceremony path, for real: a powers of tau made here with snarkjs (2^10), a phase-2
key for a small circuit (a Poseidon preimage, the rollup's hash), imported into groth16py
and proven with; snarkjs's own verifier accepts the proof, and so does snarkjs's Solidity
verifier for the ceremony's key deployed on our L1. The expected public value is
Python's Poseidon (tested against circomlibjs). A proof for another public value, and a
proof made with groth16py's single-party devnet key for the same circuit, are refused
under the ceremony's key, both by snarkjs and on chain.
"""

from __future__ import annotations

import shutil
import time

import groth16py
import pytest
from web3 import Web3

from layerlab.contracts import deploy, get_project_root
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.crypto.poseidon import poseidon
from layerlab.l2.zk.ceremony import import_ceremony_key, run_ceremony, snarkjs_verify
from layerlab.l2.zk.circuit import compile_circom
from layerlab.l2.zk.onchain import compile_verifier_for
from layerlab.l2.zk.prover import compute_wtns, decode_proof
from tests.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

PREIMAGE = """pragma circom 2.1.0;
include "circomlib/circuits/poseidon.circom";
template Preimage() {
    signal input x;
    signal input y;
    signal output h;
    component p = Poseidon(2);
    p.inputs[0] <== x;
    p.inputs[1] <== y;
    h <== p.out;
}
component main = Preimage();
"""


def test_a_snarkjs_ceremony_key_proves_with_groth16py_and_verifies_everywhere(
        node: NodeProcess, w3: Web3) -> None:
    root = get_project_root().resolve()
    d = root / "build" / "zk" / "ceremony-test"
    shutil.rmtree(d, ignore_errors=True)
    constraints, _ = compile_circom(PREIMAGE, d, root, "Preimage")
    assert 0 < constraints < 1 << 10
    start = time.perf_counter()
    key = run_ceremony(d / "main.r1cs", d / "ceremony", 10, ("phase one entropy", "phase two"))
    ceremony_seconds = time.perf_counter() - start

    x, y = 12345, 67890
    h = poseidon([x, y])
    wtns = d / "w.wtns"
    compute_wtns(d / "main_js" / "generate_witness.js", d / "main_js" / "main.wasm",
                 {"x": str(x), "y": str(y)}, wtns)
    pk = import_ceremony_key(key)
    proof = bytes(groth16py.prove_wtns(pk, str(wtns)))
    assert len(proof) == 256

    # snarkjs's verifier, and groth16py's under the ceremony's vk
    assert snarkjs_verify(key.vk_json, [h], proof, d / "check")
    assert not snarkjs_verify(key.vk_json, [h + 1], proof, d / "check")
    ceremony_vk = groth16py.Verifier(groth16py.VerifyingKey.from_snarkjs(key.vk_json.read_text()))
    assert ceremony_vk.verify(proof, [h])
    # a devnet key for the same circuit proves under its own vk, never under the ceremony's
    devnet_pk, devnet_vk = groth16py.setup(str(d / "main.r1cs"))
    devnet_proof = bytes(groth16py.prove_wtns(devnet_pk, str(wtns)))
    assert groth16py.Verifier(devnet_vk).verify(devnet_proof, [h])
    assert not snarkjs_verify(key.vk_json, [h], devnet_proof, d / "check")

    # on our L1: snarkjs's Solidity verifier rendered from the ceremony's vk
    deployer = derive_dev_accounts()[0].address
    verifier = deploy(w3, compile_verifier_for(key.vk_json, d / "ceremony"), sender=deployer)
    assert verifier.functions.verifyProof(*decode_proof(proof), [h]).call() is True
    assert verifier.functions.verifyProof(*decode_proof(proof), [h ^ 1]).call() is False
    assert verifier.functions.verifyProof(*decode_proof(devnet_proof), [h]).call() is False
    print(f"\nceremony for {constraints} constraints at 2^{key.power}: {ceremony_seconds:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in key.seconds.items())})")
