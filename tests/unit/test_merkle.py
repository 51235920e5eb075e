"""Binary keccak Merkle tree (primitives/merkle.py) with OpenZeppelin's layout and hashing.

The on-chain check against ``MerkleProof.sol`` is tests/unit/test_merkle_contracts.py.
"""

from __future__ import annotations

import dataclasses

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.primitives.merkle import (
    MerkleMultiProof,
    MerkleTree,
    compute_merkle_proof,
    compute_merkle_root,
    compute_merkle_tree,
    compute_standard_leaf,
    hash_pair,
    is_valid_merkle_branch,
    is_valid_merkle_multiproof,
    process_merkle_multiproof,
    process_merkle_proof,
)

LEAF = st.binary(min_size=32, max_size=32)
LEAVES = st.lists(LEAF, min_size=1, max_size=70, unique=True)


def leaf(i: int) -> bytes:
    return keccak(i.to_bytes(32, "big"))


def test_hash_pair_is_commutative_keccak() -> None:
    a, b = leaf(1), leaf(2)
    lo, hi = sorted((a, b))
    assert hash_pair(a, b) == hash_pair(b, a) == keccak(lo + hi)


def test_layout_of_small_trees() -> None:
    """OpenZeppelin makeMerkleTree: leaf i at 2n-2-i, node j = hash(2j+1, 2j+2)."""
    l0, l1, l2 = leaf(0), leaf(1), leaf(2)
    assert compute_merkle_root([l0]) == l0
    assert compute_merkle_root([l0, l1]) == hash_pair(l0, l1)
    # n = 3: [root, H(l1, l0), l2, l1, l0]
    assert compute_merkle_tree([l0, l1, l2]) == (
        hash_pair(hash_pair(l1, l0), l2),
        hash_pair(l1, l0),
        l2,
        l1,
        l0,
    )
    assert compute_merkle_proof([l0, l1, l2], 2) == (hash_pair(l0, l1),)
    assert compute_merkle_proof([l0, l1, l2], 0) == (l1, l2)
    assert compute_merkle_proof([l0], 0) == ()


def test_standard_leaf_is_double_keccak_of_abi_encoding() -> None:
    account, amount = "0x" + "11" * 20, 5 * 10**18
    encoded = abi_encode(["address", "uint256"], [account, amount])
    assert compute_standard_leaf(["address", "uint256"], [account, amount]) == keccak(keccak(encoded))


def test_errors() -> None:
    with pytest.raises(ValueError, match="at least one leaf"):
        compute_merkle_root([])
    with pytest.raises(ValueError, match="leaf 1 is 31 bytes"):
        compute_merkle_root([leaf(0), b"\x00" * 31])
    with pytest.raises(IndexError, match="index 3 out of range for 3 leaves"):
        compute_merkle_proof([leaf(0), leaf(1), leaf(2)], 3)
    tree = MerkleTree([leaf(0), leaf(1)])
    with pytest.raises(IndexError, match="index -1"):
        tree.get_proof(-1)
    with pytest.raises(ValueError, match="duplicated"):
        tree.get_multiproof([0, 0])
    assert not is_valid_merkle_branch(b"\x00" * 31, (), b"\x00" * 31)
    with pytest.raises(ValueError, match="do not fit"):
        process_merkle_multiproof(MerkleMultiProof((leaf(0),), (leaf(1),), ()))


@settings(max_examples=120, deadline=None)
@given(LEAVES, st.data())
def test_every_proof_verifies_and_tampering_fails(leaves: list[bytes], data: st.DataObject) -> None:
    root = compute_merkle_root(leaves)
    for i, item in enumerate(leaves):
        proof = compute_merkle_proof(leaves, i)
        assert len(proof) <= len(leaves).bit_length()
        assert process_merkle_proof(item, proof) == root
        assert is_valid_merkle_branch(item, proof, root)
        assert not is_valid_merkle_branch(keccak(item), proof, root)
        if proof:
            j = data.draw(st.integers(0, len(proof) - 1))
            bad = list(proof)
            bad[j] = keccak(bad[j])
            assert not is_valid_merkle_branch(item, bad, root)
            assert not is_valid_merkle_branch(item, proof[:-1], root)


@settings(max_examples=120, deadline=None)
@given(LEAVES, st.data())
def test_standard_tree_sorts_and_multiproves(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree(leaves)
    assert tree.root == compute_merkle_root(sorted(leaves))
    assert MerkleTree(leaves, sort_leaves=False).root == compute_merkle_root(leaves)
    assert tree.leaves == tuple(leaves) and len(tree) == len(leaves)
    for i, item in enumerate(leaves):
        assert is_valid_merkle_branch(item, tree.get_proof(i), tree.root)
    indices = data.draw(st.lists(st.integers(0, len(leaves) - 1), unique=True))
    multi = tree.get_multiproof(indices)
    assert sorted(multi.leaves) == sorted(leaves[i] for i in indices)
    assert is_valid_merkle_multiproof(multi, tree.root)
    if multi.leaves:
        bad_leaves = (keccak(multi.leaves[0]), *multi.leaves[1:])
        assert not is_valid_merkle_multiproof(dataclasses.replace(multi, leaves=bad_leaves), tree.root)
    if multi.proof:
        bad_proof = (keccak(multi.proof[0]), *multi.proof[1:])
        assert not is_valid_merkle_multiproof(dataclasses.replace(multi, proof=bad_proof), tree.root)


def test_of_values_matches_standard_leaves() -> None:
    values = [["0x" + f"{i:040x}", i * 10] for i in range(1, 6)]
    tree = MerkleTree.of(values, ["address", "uint256"])
    expected = [compute_standard_leaf(["address", "uint256"], v) for v in values]
    assert tree.leaves == tuple(expected)
    assert tree.root == compute_merkle_root(sorted(expected))
