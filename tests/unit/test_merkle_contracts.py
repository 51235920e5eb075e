"""Python Merkle proofs checked on chain: OpenZeppelin MerkleProof and contracts/lib/SparseMerkle.sol.

``MerkleHarness`` runs on py-evm in process (web3's EthereumTesterProvider). Differential:
random trees are built in Python (primitives/merkle.py, primitives/smt.py); their proofs
must verify on chain, tampered ones must not, and the roots the contract computes after an
insert, update or delete must equal Python's.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError

from layerlab.contracts import compile_all, deploy
from layerlab.primitives.merkle import (
    MerkleTree,
    compute_merkle_proof,
    compute_merkle_root,
    compute_standard_leaf,
)
from layerlab.primitives.smt import KECCAK_HASHER, SmtProof, SparseMerkleTree, compute_root_after

pytestmark = pytest.mark.slow

try:
    from eth_tester.exceptions import TransactionFailed

    REVERTED: tuple[type[Exception], ...] = (ContractLogicError, ContractCustomError, TransactionFailed)
except ImportError:
    REVERTED = (ContractLogicError, ContractCustomError)


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[Web3, Contract]]:
    pytest.importorskip("eth_tester", reason="eth-tester[py-evm] is not installed")
    from web3 import EthereumTesterProvider

    artifacts = compile_all()
    w3 = Web3(EthereumTesterProvider())
    harness = deploy(w3, artifacts["MerkleHarness"], sender=w3.eth.accounts[0])
    yield w3, harness


@pytest.fixture(scope="module")
def harness(chain: tuple[Web3, Contract]) -> Contract:
    return chain[1]


def as_tuple(proof: SmtProof) -> tuple[Any, ...]:
    """``SparseMerkle.Proof`` as web3 encodes a struct."""
    return (
        proof.root,
        proof.key,
        proof.found,
        proof.value,
        list(proof.siblings),
        proof.not_found_key,
        proof.not_found_value,
        proof.is_old0,
    )


def random_key(rng: random.Random) -> int:
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randrange(64)  # shared low bits: deep paths, collapses on delete
    if kind == 1:
        return rng.getrandbits(256)
    return (rng.randrange(8) << 250) | 0x77  # 250 shared bits


def random_smt(rng: random.Random, size: int) -> tuple[SparseMerkleTree, dict[int, int]]:
    tree, model = SparseMerkleTree(), {}
    while len(model) < size:
        key = random_key(rng)
        value = rng.choice([1, 2, rng.getrandbits(256) or 1])
        tree.set(key, value)
        model[key] = value
    for key in rng.sample(sorted(model), len(model) // 4):  # some deletes shape the tree too
        tree.delete(key)
        del model[key]
    return tree, model


# ------------------------------------------------------------------ OpenZeppelin MerkleProof


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 33])
def test_binary_proofs_verify_with_openzeppelin(harness: Contract, size: int) -> None:
    rng = random.Random(size)
    leaves = [rng.randbytes(32) for _ in range(size)]
    root = compute_merkle_root(leaves)
    for i, item in enumerate(leaves):
        proof = list(compute_merkle_proof(leaves, i))
        assert harness.functions.processProof(proof, item).call() == root
        assert harness.functions.verify(proof, root, item).call()
        assert not harness.functions.verify(proof, root, bytes(32)).call()
        if proof:
            bad = [*proof[:-1], bytes(32)]
            assert not harness.functions.verify(bad, root, item).call()


def test_standard_tree_leaves_and_multiproofs_on_chain(harness: Contract) -> None:
    rng = random.Random(7)
    accounts = [Web3.to_checksum_address(rng.randbytes(20)) for _ in range(21)]
    values = [[a, rng.randrange(10**21)] for a in accounts]
    tree = MerkleTree.of(values, ["address", "uint256"])
    for i, (account, amount) in enumerate(values):
        onchain_leaf = harness.functions.standardLeaf(account, amount).call()
        assert onchain_leaf == compute_standard_leaf(["address", "uint256"], [account, amount])
        assert harness.functions.verify(list(tree.get_proof(i)), tree.root, onchain_leaf).call()
        assert not harness.functions.verify(
            list(tree.get_proof(i)), tree.root, tree.leaves[(i + 1) % 21]
        ).call()
    for indices in ([], [0], [3, 4], [0, 5, 9, 20], list(range(21))):
        multi = tree.get_multiproof(indices)
        args = [list(multi.proof), list(multi.proof_flags), tree.root, list(multi.leaves)]
        assert harness.functions.multiProofVerify(*args).call(), indices
        if multi.leaves:
            args[3] = [bytes(32), *multi.leaves[1:]]
            assert not harness.functions.multiProofVerify(*args).call(), indices


# ------------------------------------------------------------------ SparseMerkle.sol


def test_hashes_match(harness: Contract) -> None:
    a, b = 2**256 - 1, 12345
    assert harness.functions.smtHashNode(a, b).call() == KECCAK_HASHER.hash_node(a, b)
    assert harness.functions.smtHashLeaf(a, b).call() == KECCAK_HASHER.hash_leaf(a, b)


@pytest.mark.parametrize("seed", range(6))
def test_smt_proofs_and_roots_after_match_python(harness: Contract, seed: int) -> None:
    rng = random.Random(seed)
    tree, model = random_smt(rng, rng.choice([0, 1, 2, 7, 30]))
    fn = harness.functions
    present = sorted(model)
    absent = [k for k in (random_key(rng) for _ in range(12)) if k not in model]
    absent += [k ^ 1 for k in present[:4] if k ^ 1 not in model]
    for key in present + absent:
        proof = tree.prove(key)
        p = as_tuple(proof)
        assert fn.smtVerify(p).call()
        if proof.found:
            assert fn.smtVerifyInclusion(proof.root, key, proof.value, list(proof.siblings)).call()
            assert not fn.smtVerifyInclusion(proof.root, key, proof.value + 1, list(proof.siblings)).call()
        else:
            args = [
                proof.root,
                key,
                list(proof.siblings),
                proof.not_found_key,
                proof.not_found_value,
                proof.is_old0,
            ]
            assert fn.smtVerifyNonInclusion(*args).call()
            assert not fn.smtVerifyInclusion(proof.root, key, 1, list(proof.siblings)).call()
        if proof.siblings:
            bad = list(proof.siblings)
            bad[rng.randrange(len(bad))] ^= 1
            tampered = dataclasses.replace(proof, siblings=tuple(bad))
            assert not fn.smtVerify(as_tuple(tampered)).call()
            with pytest.raises(REVERTED):
                fn.smtComputeRootAfter(as_tuple(tampered), 5).call()
        for new_value in (0, 1, rng.getrandbits(256)):
            expected = compute_root_after(proof, new_value)
            assert fn.smtComputeRootAfter(p, new_value).call() == expected, (key, new_value)
    wrong = dataclasses.replace(tree.prove(present[0] if present else 1), found=True, value=3, is_old0=True)
    assert not fn.smtVerify(as_tuple(wrong)).call()


def test_applied_updates_move_the_stored_root_as_python(chain: tuple[Web3, Contract]) -> None:
    w3, harness = chain
    sender = w3.eth.accounts[0]
    rng = random.Random(99)
    tree, model = random_smt(rng, 20)
    harness.functions.setSmtRoot(tree.root).transact({"from": sender})
    pool = [*model, *(random_key(rng) for _ in range(10))]
    for _ in range(40):
        key = rng.choice(pool)
        value = rng.choice([0, 0, 1, rng.getrandbits(256)])
        proof = tree.prove(key)
        harness.functions.applySmt(as_tuple(proof), value).transact({"from": sender})
        tree.set(key, value)
        assert harness.functions.smtRoot().call() == tree.root
    stale = tree.prove(pool[0])
    harness.functions.applySmt(as_tuple(tree.prove(pool[1])), 7).transact({"from": sender})
    tree.set(pool[1], 7)
    assert harness.functions.smtRoot().call() == tree.root
    with pytest.raises(REVERTED):
        harness.functions.applySmt(as_tuple(stale), 1).call({"from": sender})


def test_smt_gas_at_a_thousand_leaves(harness: Contract) -> None:
    """Library gas (no calldata, no call overhead) of one verify and one update/insert."""
    rng = random.Random(1000)
    tree = SparseMerkleTree()
    keys = [rng.getrandbits(256) for _ in range(1000)]
    for key in keys:
        tree.insert(key, key % 997 + 1)
    proof = tree.prove(keys[0])
    ok, verify_gas = harness.functions.gasVerifyInclusion(
        proof.root, proof.key, proof.value, list(proof.siblings)
    ).call()
    assert ok
    root, update_gas = harness.functions.gasComputeRootAfter(as_tuple(proof), 5).call()
    assert root == compute_root_after(proof, 5)
    absent = tree.prove(rng.getrandbits(256))
    root, insert_gas = harness.functions.gasComputeRootAfter(as_tuple(absent), 5).call()
    assert root == compute_root_after(absent, 5)
    # ~10 levels at ~150-250 gas each; bounds catch an accidental O(depth) or copying loop
    assert verify_gas < 5_000 and update_gas < 10_000 and insert_gas < 12_000, (
        verify_gas,
        update_gas,
        insert_gas,
    )


def test_roots_no_tree_can_have_are_refused_on_chain(harness: Contract) -> None:
    """As tests/unit/test_smt.py: a met leaf or a deletion witness off the key's path."""
    h = KECCAK_HASHER
    sibling = h.hash_leaf(8, 1)
    forged = SmtProof(h.hash_node(h.hash_leaf(3, 5), sibling), 2, False, 0, (sibling,), 3, 5, False)
    good = SmtProof(h.hash_node(h.hash_leaf(4, 5), sibling), 2, False, 0, (sibling,), 4, 5, False)
    off_path = h.hash_leaf(4, 1)
    forged_witness = SmtProof(h.hash_node(h.hash_leaf(2, 9), off_path), 2, True, 9, (off_path,), 4, 1, False)
    on_path = h.hash_leaf(3, 1)
    good_witness = SmtProof(h.hash_node(h.hash_leaf(2, 9), on_path), 2, True, 9, (on_path,), 3, 1, False)
    for proof, valid in ((forged, False), (good, True), (forged_witness, False), (good_witness, True)):
        assert harness.functions.smtVerify(as_tuple(proof)).call() is valid, proof
    assert harness.functions.smtComputeRootAfter(as_tuple(good_witness), 0).call() == on_path
    with pytest.raises(REVERTED):
        harness.functions.smtComputeRootAfter(as_tuple(forged_witness), 0).call()
