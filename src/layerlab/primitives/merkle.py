"""Binary keccak Merkle tree with OpenZeppelin's conventions, so proofs verify on chain.

The tree is that of OpenZeppelin's ``@openzeppelin/merkle-tree`` (``core.ts``) and its
Solidity verifier ``MerkleProof.sol`` (contracts v5):

- a node is the *commutative* hash of its children, ``keccak256(min(a, b) || max(a, b))``
  (``Hashes.commutativeKeccak256``), so a proof is a bare list of siblings, no left/right
  flags and no index;
- the ``n`` leaves are laid out as a complete binary tree in an array of ``2n - 1`` nodes,
  leaf ``i`` at position ``2n - 2 - i``, node ``j`` the hash of ``2j + 1`` and ``2j + 2``; no
  padding to a power of two, so the root of one leaf is that leaf;
- leaves are 32-byte values; :func:`compute_standard_leaf` makes them as
  ``StandardMerkleTree`` does, ``keccak256(keccak256(abi.encode(values...)))``. The double
  hash keeps a leaf from ever being a 64-byte preimage, that is from passing for an inner
  node (the second-preimage attack on Merkle trees).

:class:`MerkleTree` is ``StandardMerkleTree``: leaves sorted by hash unless told not to
(then on-chain multiproofs of leaves a contract rebuilt itself line up), proofs by index
or value, and multiproofs for ``MerkleProof.multiProofVerify``.

Names of the free functions follow the consensus specs (``compute_merkle_proof``,
``is_valid_merkle_branch``); the hashing is OpenZeppelin's, not SSZ's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak

from layerlab.primitives.types import Hash32


def hash_pair(a: bytes, b: bytes) -> Hash32:
    """OpenZeppelin's ``Hashes.commutativeKeccak256``: ``keccak256`` of the sorted pair."""
    return Hash32(keccak(a + b) if a < b else keccak(b + a))


def compute_standard_leaf(types: Sequence[str], values: Sequence[Any]) -> Hash32:
    """``StandardMerkleTree``'s leaf: ``keccak256(keccak256(abi.encode(values)))``, as a
    contract computes it with ``keccak256(bytes.concat(keccak256(abi.encode(...))))``."""
    return Hash32(keccak(keccak(abi_encode(list(types), list(values)))))


def _validate_leaves(leaves: Sequence[bytes]) -> None:
    if not leaves:
        raise ValueError("Merkle tree: expected at least one leaf, got none")
    for i, leaf in enumerate(leaves):
        if len(leaf) != 32:
            raise ValueError(f"Merkle tree: leaf {i} is {len(leaf)} bytes, expected 32")


def compute_merkle_tree(leaves: Sequence[bytes]) -> tuple[Hash32, ...]:
    """Every node, root first, in OpenZeppelin's array layout (``makeMerkleTree``)."""
    _validate_leaves(leaves)
    n = len(leaves)
    tree: list[bytes] = [b""] * (n - 1) + [bytes(leaf) for leaf in reversed(leaves)]
    for j in range(n - 2, -1, -1):
        tree[j] = hash_pair(tree[2 * j + 1], tree[2 * j + 2])
    return tuple(Hash32(node) for node in tree)


def compute_merkle_root(leaves: Sequence[bytes]) -> Hash32:
    """The root of ``leaves`` in the order given (sort them first for ``StandardMerkleTree``)."""
    return compute_merkle_tree(leaves)[0]


def _leaf_position(n: int, index: int) -> int:
    if not 0 <= index < n:
        raise IndexError(f"Merkle tree: leaf index {index} out of range for {n} leaves")
    return 2 * n - 2 - index


def _proof_from_tree(tree: Sequence[Hash32], position: int) -> tuple[Hash32, ...]:
    proof: list[Hash32] = []
    while position > 0:
        sibling = position - 1 if position % 2 == 0 else position + 1
        proof.append(tree[sibling])
        position = (position - 1) // 2
    return tuple(proof)


def compute_merkle_proof(leaves: Sequence[bytes], index: int) -> tuple[Hash32, ...]:
    """The siblings of leaf ``index``, bottom up, for ``MerkleProof.verify``."""
    tree = compute_merkle_tree(leaves)
    return _proof_from_tree(tree, _leaf_position(len(leaves), index))


def process_merkle_proof(leaf: bytes, proof: Sequence[bytes]) -> Hash32:
    """``MerkleProof.processProof``: the root that ``leaf`` and its siblings hash to."""
    node = bytes(leaf)
    for sibling in proof:
        node = hash_pair(node, sibling)
    return Hash32(node)


def is_valid_merkle_branch(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """``MerkleProof.verify``: whether ``proof`` shows ``leaf`` under ``root``."""
    if len(leaf) != 32 or len(root) != 32 or any(len(s) != 32 for s in proof):
        return False
    return process_merkle_proof(leaf, proof) == root


@dataclass(frozen=True, slots=True)
class MerkleMultiProof:
    """The arguments of ``MerkleProof.multiProofVerify(proof, proofFlags, root, leaves)``.

    ``leaves`` are in the order the verifier consumes them (deepest tree position first);
    flag ``i`` says whether step ``i`` hashes two already known nodes (True) or a known
    node and the next ``proof`` element (False).
    """

    leaves: tuple[Hash32, ...]
    proof: tuple[Hash32, ...]
    proof_flags: tuple[bool, ...]


def _multiproof_from_tree(tree: Sequence[Hash32], positions: Sequence[int]) -> MerkleMultiProof:
    """OpenZeppelin ``getMultiProof``: a queue of positions, deepest first."""
    ordered = sorted(positions, reverse=True)
    if len(set(ordered)) != len(ordered):
        raise ValueError(f"Merkle multiproof: duplicated leaf in {list(positions)}")
    queue = list(ordered)
    proof: list[Hash32] = []
    flags: list[bool] = []
    head = 0
    while head < len(queue) and queue[head] > 0:
        j = queue[head]
        head += 1
        sibling = j - 1 if j % 2 == 0 else j + 1
        if head < len(queue) and queue[head] == sibling:
            flags.append(True)
            head += 1
        else:
            flags.append(False)
            proof.append(tree[sibling])
        queue.append((j - 1) // 2)
    if not ordered:
        proof.append(tree[0])
    return MerkleMultiProof(tuple(tree[p] for p in ordered), tuple(proof), tuple(flags))


def process_merkle_multiproof(multiproof: MerkleMultiProof) -> Hash32:
    """``MerkleProof.processMultiProof``: the root the leaves, siblings and flags hash to.

    Raises ``ValueError`` when the counts do not fit (the contract reverts with
    ``MerkleProofInvalidMultiproof``).
    """
    leaves, proof, flags = multiproof.leaves, multiproof.proof, multiproof.proof_flags
    if len(leaves) + len(proof) != len(flags) + 1:
        raise ValueError(
            f"Merkle multiproof: {len(leaves)} leaves and {len(proof)} proof nodes do not fit "
            f"{len(flags)} flags (need leaves + proof == flags + 1)"
        )
    queue = list(leaves)
    head = proof_head = 0
    for step, flag in enumerate(flags):
        if head >= len(queue) or (flag and head + 1 >= len(queue)) or (not flag and proof_head >= len(proof)):
            raise ValueError(f"Merkle multiproof: step {step} has nothing left to hash")
        a = queue[head]
        head += 1
        if flag:
            b = queue[head]
            head += 1
        else:
            b = proof[proof_head]
            proof_head += 1
        queue.append(hash_pair(a, b))
    if flags:
        if proof_head != len(proof):
            raise ValueError(f"Merkle multiproof: {len(proof) - proof_head} proof nodes left unused")
        return Hash32(queue[-1])
    return Hash32(bytes(leaves[0] if leaves else proof[0]))


def is_valid_merkle_multiproof(multiproof: MerkleMultiProof, root: bytes) -> bool:
    """``MerkleProof.multiProofVerify``."""
    try:
        return process_merkle_multiproof(multiproof) == root
    except ValueError:
        return False


class MerkleTree:
    """OpenZeppelin's ``StandardMerkleTree`` (or, given hashed leaves, its ``SimpleMerkleTree``).

    Build with :meth:`of` from values and ABI types (leaves from
    :func:`compute_standard_leaf`) or directly from 32-byte leaves. By default leaves are
    sorted by hash (``sortLeaves``); ``index`` arguments are always positions in the
    caller's original order.
    """

    __slots__ = ("_leaves", "_position", "_tree")

    def __init__(self, leaves: Sequence[bytes], sort_leaves: bool = True) -> None:
        _validate_leaves(leaves)
        order = sorted(range(len(leaves)), key=lambda i: leaves[i]) if sort_leaves else range(len(leaves))
        tree_leaves = [Hash32(bytes(leaves[i])) for i in order]
        self._tree = compute_merkle_tree(tree_leaves)
        n = len(leaves)
        self._position: dict[int, int] = {i: 2 * n - 2 - k for k, i in enumerate(order)}
        self._leaves = tuple(Hash32(bytes(leaf)) for leaf in leaves)

    @classmethod
    def of(
        cls, values: Sequence[Sequence[Any]], types: Sequence[str], sort_leaves: bool = True
    ) -> MerkleTree:
        """``StandardMerkleTree.of(values, types)``."""
        return cls([compute_standard_leaf(types, v) for v in values], sort_leaves)

    @property
    def root(self) -> Hash32:
        return self._tree[0]

    @property
    def leaves(self) -> tuple[Hash32, ...]:
        """The leaves in the caller's order."""
        return self._leaves

    def __len__(self) -> int:
        return len(self._leaves)

    def get_proof(self, index: int) -> tuple[Hash32, ...]:
        """The proof of the leaf given at ``index`` (``MerkleProof.verify``)."""
        if not 0 <= index < len(self._leaves):
            raise IndexError(f"Merkle tree: leaf index {index} out of range for {len(self._leaves)} leaves")
        return _proof_from_tree(self._tree, self._position[index])

    def get_multiproof(self, indices: Sequence[int]) -> MerkleMultiProof:
        """One multiproof of the leaves given at ``indices`` (``MerkleProof.multiProofVerify``)."""
        for index in indices:
            if not 0 <= index < len(self._leaves):
                raise IndexError(
                    f"Merkle multiproof: leaf index {index} out of range for {len(self._leaves)} leaves"
                )
        return _multiproof_from_tree(self._tree, [self._position[i] for i in indices])
