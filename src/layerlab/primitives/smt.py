"""Sparse Merkle tree of iden3/circomlib, with a pluggable hash.

The design is that of Baylina and Bellés, "Sparse Merkle Trees" (iden3, 2018), as built by
circomlib's ``smt.circom`` circuits (``SMTVerifier``, ``SMTProcessor``) and circomlibjs's
``smt.js``:

- the tree maps keys ``0 <= key < 2**depth`` to non-zero values; the path of a key is its
  bits, least significant first (bit 0 chooses the root's child: 0 left, 1 right);
- an empty subtree is ``0``;
- a subtree that holds a single leaf *is* that leaf: a leaf sits at the shallowest level
  where no other key shares its path, so a tree of ``n`` random keys is about ``log2(n)``
  levels deep whatever ``depth`` is;
- an internal node is ``hash_node(left, right)`` (circomlib's ``hash0``,
  ``Poseidon(l, r)``), a leaf is ``hash_leaf(key, value)`` (``hash1``,
  ``Poseidon(key, value, 1)``).

With :data:`KECCAK_HASHER` proofs are about ``log2(n)`` siblings of 32 bytes and cheap to
check in Solidity (``contracts/lib/SparseMerkle.sol`` computes the same roots). With a
Poseidon hasher the roots, and the :class:`SmtUpdate` of every insert, update and delete,
are those of circomlibjs, so they can be fed to circomlib's ``SMTProcessor`` (pad
``siblings`` with zeros to ``nLevels``).

Value 0 means "absent" (as a storage slot in the EVM): :meth:`SparseMerkleTree.insert` and
:meth:`~SparseMerkleTree.update` refuse it, :meth:`~SparseMerkleTree.set` with 0 deletes,
and :func:`compute_root_after` with 0 deletes.

Storage is content addressed: each node is kept under its hash and never changed or
removed, so a root *is* a snapshot, and :meth:`SparseMerkleTree.checkout` moves to any
earlier root in O(1) (a state machine's rollback). Memory grows by about ``log2(n)`` nodes
per write (measured: ~3 KB per write, ~300 MB for 100,000 inserts) until
:meth:`SparseMerkleTree.prune` drops what no kept root reaches.

Measured (one core of this 2-core machine, keccak through safe-pysha3): on a 10,000-leaf
tree of random 256-bit keys (paths ~14.6 siblings) about 30,000 updates/s, 35,000
inserts/s, 29,000 deletes/s, 135,000 proofs/s built and 46,000 proofs/s verified; with
eth_hash's default pycryptodome backend about 2.3x slower (13,000 updates/s).

A note on soundness of deletions. A delete changes the shape of the tree: when the deleted
leaf's last sibling is itself a leaf, that leaf moves up past the empty siblings above it.
The proof therefore carries a *deletion witness* for a found key (the preimage of its last
sibling, see :class:`SmtProof`), so that :func:`compute_root_after` can tell the two cases
apart from the proof alone. circomlib's ``SMTProcessor`` takes the post-delete siblings
from the prover without such a witness.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from layerlab.errors import InvalidProof, LayerlabError

keccak: Callable[[bytes], bytes]
try:  # safe-pysha3 hashes 32-96 bytes ~4x faster than eth_hash's default pycryptodome backend
    from eth_hash.backends.pysha3 import keccak256 as keccak
except ImportError:  # pragma: no cover - same digests, slower
    from eth_hash.auto import keccak as _auto_keccak

    keccak = _auto_keccak

logger = logging.getLogger(__name__)

MAX_DEPTH = 256
_WORD = 2**256
_ONE_WORD = (1).to_bytes(32)


class SmtKeyError(LayerlabError, KeyError):
    """An insert met a key already present, or an update or delete a key that is absent."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SmtHasher(Protocol):
    """The two hash functions of the tree (circomlib's ``hash0`` and ``hash1``)."""

    name: str

    def hash_node(self, left: int, right: int) -> int: ...

    def hash_leaf(self, key: int, value: int) -> int: ...


class KeccakHasher:
    """keccak256 over ABI-encoded words, so that Solidity computes the same nodes.

    ``hash_node = uint256(keccak256(abi.encode(uint256 left, uint256 right)))`` and
    ``hash_leaf = uint256(keccak256(abi.encode(uint256 key, uint256 value, uint256 1)))``:
    a leaf preimage is 96 bytes, a node's 64, so a leaf can never pass for a node.
    """

    name: str = "keccak"

    def hash_node(self, left: int, right: int) -> int:
        return int.from_bytes(keccak(left.to_bytes(32) + right.to_bytes(32)))

    def hash_leaf(self, key: int, value: int) -> int:
        return int.from_bytes(keccak(key.to_bytes(32) + value.to_bytes(32) + _ONE_WORD))


KECCAK_HASHER: SmtHasher = KeccakHasher()
"""hash_node = int(keccak256(abi.encode(uint256 left, uint256 right))),
   hash_leaf = int(keccak256(abi.encode(uint256 key, uint256 value, uint256 1)))"""


@dataclass(frozen=True, slots=True)
class SmtProof:
    """A proof that ``key`` has ``value`` (``found``) or is absent under ``root``.

    ``siblings`` run from the root down to the leaf level, without trailing zeros; the key's
    bits say on which side each sibling sits.

    When not found, ``(not_found_key, not_found_value, is_old0)`` are circomlib's
    ``(oldKey, oldValue, isOld0)``: the path ends either in an empty subtree
    (``is_old0``, and both are 0) or in the leaf of another key sharing the path.

    When found, the same three fields are the *deletion witness*, the preimage of the last
    sibling (``siblings[-1]``): ``is_old0`` False means it is the leaf
    ``(not_found_key, not_found_value)``, which moves up on delete (circomlib's delete
    ``oldKey, oldValue``); ``is_old0`` True means it is an internal node with children
    ``(not_found_key, not_found_value)``, or that there is no sibling (both 0).
    """

    root: int
    key: int
    found: bool
    value: int
    siblings: tuple[int, ...]
    not_found_key: int
    not_found_value: int
    is_old0: bool


@dataclass(frozen=True, slots=True)
class SmtUpdate:
    """One insert, update or delete, as the inputs of circomlib's ``SMTProcessor``.

    Insert: ``siblings`` and ``(old_key, old_value, is_old0)`` are those of the non-inclusion
    proof of ``new_key`` before the insert (``old_key = old_value = 0`` when ``is_old0``, as
    circomlib's tests feed the circuit). Update: the inclusion siblings, ``old_key ==
    new_key``. Delete: ``new_key, new_value`` are the deleted leaf, ``siblings`` and
    ``(old_key, old_value, is_old0)`` those of its non-inclusion proof *after* the delete
    (the processor runs a delete as an insert backwards).
    """

    old_root: int
    new_root: int
    siblings: tuple[int, ...]
    old_key: int
    old_value: int
    is_old0: bool
    new_key: int
    new_value: int
    fnc: tuple[int, int]


FNC_NOP = (0, 0)
FNC_INSERT = (1, 0)
FNC_UPDATE = (0, 1)
FNC_DELETE = (1, 1)


def _fold(
    hasher: SmtHasher,
    node: int,
    key: int,
    siblings: tuple[int, ...] | list[int],
    store: dict[int, tuple[int, int]] | None,
) -> int:
    """Hash ``node``, sitting at level ``len(siblings)`` on ``key``'s path, up to the root."""
    hash_node = hasher.hash_node
    for level in range(len(siblings) - 1, -1, -1):
        sibling = siblings[level]
        pair = (sibling, node) if (key >> level) & 1 else (node, sibling)
        node = hash_node(*pair)
        if store is not None:
            store[node] = pair
    return node


def _join_leaves(
    hasher: SmtHasher,
    level: int,
    key: int,
    leaf: int,
    other_key: int,
    other_leaf: int,
    store: dict[int, tuple[int, int]] | None,
) -> int:
    """The subtree at ``level`` holding two leaves whose keys agree below ``level``.

    Keys are split at their first differing bit ``d >= level``; levels ``level..d-1`` are
    internal nodes with one empty child (circomlib's "bot" states).
    """
    diff = (key ^ other_key) >> level
    split = level + (diff & -diff).bit_length() - 1
    hash_node = hasher.hash_node
    pair = (other_leaf, leaf) if (key >> split) & 1 else (leaf, other_leaf)
    node = hash_node(*pair)
    if store is not None:
        store[node] = pair
    for lvl in range(split - 1, level - 1, -1):
        pair = (0, node) if (key >> lvl) & 1 else (node, 0)
        node = hash_node(*pair)
        if store is not None:
            store[node] = pair
    return node


def _strip_zeros(siblings: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    end = len(siblings)
    while end and siblings[end - 1] == 0:
        end -= 1
    return tuple(siblings[:end])


def _is_word(x: int) -> bool:
    return 0 <= x < _WORD


def _proof_root(proof: SmtProof, hasher: SmtHasher) -> int | None:
    """The root the proof's path hashes to, or None when the proof is malformed."""
    siblings = proof.siblings
    n = len(siblings)
    key = proof.key
    nfk, nfv = proof.not_found_key, proof.not_found_value
    if n > MAX_DEPTH or not all(_is_word(x) for x in (key, proof.value, nfk, nfv, *siblings)):
        return None
    prefix_mask = (1 << n) - 1
    if proof.found:
        if proof.value == 0:
            return None
        if n == 0:
            if not proof.is_old0 or nfk or nfv:
                return None
        elif proof.is_old0:
            if hasher.hash_node(nfk, nfv) != siblings[-1]:
                return None
        elif (
            nfv == 0
            or (nfk ^ key) & prefix_mask != 1 << (n - 1)
            or hasher.hash_leaf(nfk, nfv) != siblings[-1]
        ):
            return None
        return _fold(hasher, hasher.hash_leaf(key, proof.value), key, siblings, None)
    if proof.value != 0:
        return None
    if proof.is_old0:
        if nfk or nfv:
            return None
        return _fold(hasher, 0, key, siblings, None)
    if nfk == key or nfv == 0 or (nfk ^ key) & prefix_mask:
        return None
    return _fold(hasher, hasher.hash_leaf(nfk, nfv), key, siblings, None)


def verify_smt_proof(proof: SmtProof, hasher: SmtHasher = KECCAK_HASHER) -> bool:
    """Whether ``proof`` shows ``proof.key`` found with ``proof.value``, or absent, under
    ``proof.root`` (circomlib's ``SMTVerifier`` with ``fnc`` 0 or 1, plus the deletion
    witness of a found key and the check that a met leaf lies on the key's path)."""
    return _proof_root(proof, hasher) == proof.root


def verify_inclusion(root: int, key: int, value: int, siblings: tuple[int, ...] | list[int],
                     hasher: SmtHasher = KECCAK_HASHER) -> bool:
    """Whether ``key`` holds ``value`` (non-zero) under ``root``: the siblings alone, as
    ``SparseMerkle.sol``'s ``verifyInclusion`` checks them (no deletion witness needed)."""
    if value == 0 or len(siblings) > MAX_DEPTH or not all(_is_word(x) for x in (key, value, *siblings)):
        return False
    return _fold(hasher, hasher.hash_leaf(key, value), key, siblings, None) == root


def validate_smt_proof(proof: SmtProof, hasher: SmtHasher = KECCAK_HASHER) -> None:
    """Raise :class:`~layerlab.errors.InvalidProof` unless :func:`verify_smt_proof` holds."""
    computed = _proof_root(proof, hasher)
    if computed != proof.root:
        shown = "malformed" if computed is None else hex(computed)
        raise InvalidProof(
            f"sparse Merkle proof: key {proof.key:#x} (found={proof.found}, value {proof.value:#x}, "
            f"{len(proof.siblings)} siblings) hashes to root {shown}, expected {proof.root:#x}"
        )


def compute_root_after(proof: SmtProof, new_value: int, hasher: SmtHasher = KECCAK_HASHER) -> int:
    """The root after setting proof.key to new_value (insert when not found, update when
    found, delete when new_value == 0), from the proof alone — what an on-chain one-step
    proof does.

    The proof is checked first (:class:`~layerlab.errors.InvalidProof` if it does not
    verify); setting an absent key to 0 leaves the root unchanged.
    """
    if not _is_word(new_value):
        raise ValueError(f"sparse Merkle value {new_value} is not a 256-bit word")
    validate_smt_proof(proof, hasher)
    key, siblings = proof.key, proof.siblings
    if proof.found:
        if new_value:
            return _fold(hasher, hasher.hash_leaf(key, new_value), key, siblings, None)
        if not siblings:
            return 0
        if proof.is_old0:
            return _fold(hasher, 0, key, siblings, None)
        kept = _strip_zeros(siblings[:-1])
        return _fold(hasher, siblings[-1], key, kept, None)
    if new_value == 0:
        return proof.root
    leaf = hasher.hash_leaf(key, new_value)
    if proof.is_old0:
        return _fold(hasher, leaf, key, siblings, None)
    old_leaf = hasher.hash_leaf(proof.not_found_key, proof.not_found_value)
    node = _join_leaves(hasher, len(siblings), key, leaf, proof.not_found_key, old_leaf, None)
    return _fold(hasher, node, key, siblings, None)


class SparseMerkleTree:
    """A sparse Merkle tree (module docstring) over content-addressed, immutable nodes.

    ``depth`` bounds the keys (``key < 2**depth``) and so the number of siblings of a
    proof; circomlib's circuits take it as ``nLevels``.
    """

    def __init__(self, hasher: SmtHasher = KECCAK_HASHER, depth: int = MAX_DEPTH) -> None:
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"sparse Merkle depth {depth} is not in 1..{MAX_DEPTH}")
        self._hasher = hasher
        self._depth = depth
        self._branches: dict[int, tuple[int, int]] = {}
        self._leaves: dict[int, tuple[int, int]] = {}
        self._sizes: dict[int, int] = {0: 0}
        self._root = 0

    @property
    def root(self) -> int:
        return self._root

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def hasher(self) -> SmtHasher:
        return self._hasher

    def __len__(self) -> int:
        return self._sizes[self._root]

    def _validate_key(self, key: int) -> None:
        if not 0 <= key < 1 << self._depth:
            raise ValueError(f"sparse Merkle key {key} is out of range for depth {self._depth}")

    @staticmethod
    def _validate_value(key: int, value: int) -> None:
        if not 0 < value < _WORD:
            raise ValueError(
                f"sparse Merkle value {value} for key {key:#x} is not a non-zero 256-bit word "
                "(0 means absent: use delete or set)"
            )

    def _walk(self, key: int) -> tuple[list[int], int]:
        """Siblings from the root down, and the node where ``key``'s path ends (0 or a leaf)."""
        branches = self._branches
        node = self._root
        siblings: list[int] = []
        level = 0
        while True:
            pair = branches.get(node)
            if pair is None:
                return siblings, node
            if (key >> level) & 1:
                siblings.append(pair[0])
                node = pair[1]
            else:
                siblings.append(pair[1])
                node = pair[0]
            level += 1

    def _commit(self, new_root: int, size: int) -> None:
        self._root = new_root
        self._sizes[new_root] = size

    def get(self, key: int) -> int | None:
        """The value of ``key``, or None when it is absent."""
        self._validate_key(key)
        _, node = self._walk(key)
        leaf = self._leaves.get(node)
        if leaf is None or leaf[0] != key:
            return None
        return leaf[1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and 0 <= key < 1 << self._depth and self.get(key) is not None

    def insert(self, key: int, value: int) -> SmtUpdate:
        """Add ``key`` (circomlibjs ``insert``); :class:`SmtKeyError` if it is present."""
        self._validate_key(key)
        self._validate_value(key, value)
        hasher = self._hasher
        siblings, node = self._walk(key)
        leaf = hasher.hash_leaf(key, value)
        self._leaves[leaf] = (key, value)
        if node == 0:
            old_key = old_value = 0
            is_old0 = True
            subtree = leaf
        else:
            old_key, old_value = self._leaves[node]
            if old_key == key:
                raise SmtKeyError(f"sparse Merkle insert: key {key:#x} is already present")
            is_old0 = False
            subtree = _join_leaves(hasher, len(siblings), key, leaf, old_key, node, self._branches)
        old_root = self._root
        new_root = _fold(hasher, subtree, key, siblings, self._branches)
        self._commit(new_root, self._sizes[old_root] + 1)
        return SmtUpdate(
            old_root, new_root, tuple(siblings), old_key, old_value, is_old0, key, value, FNC_INSERT
        )

    def _found(self, key: int, operation: str) -> tuple[list[int], int, int]:
        siblings, node = self._walk(key)
        leaf = self._leaves.get(node)
        if leaf is None or leaf[0] != key:
            raise SmtKeyError(f"sparse Merkle {operation}: key {key:#x} is absent")
        return siblings, node, leaf[1]

    def update(self, key: int, value: int) -> SmtUpdate:
        """Change the value of ``key`` (circomlibjs ``update``); :class:`SmtKeyError` if absent."""
        self._validate_key(key)
        self._validate_value(key, value)
        siblings, _, old_value = self._found(key, "update")
        hasher = self._hasher
        leaf = hasher.hash_leaf(key, value)
        self._leaves[leaf] = (key, value)
        old_root = self._root
        new_root = _fold(hasher, leaf, key, siblings, self._branches)
        self._commit(new_root, self._sizes[old_root])
        return SmtUpdate(old_root, new_root, tuple(siblings), key, old_value, False, key, value, FNC_UPDATE)

    def delete(self, key: int) -> SmtUpdate:
        """Remove ``key`` (circomlibjs ``delete``); :class:`SmtKeyError` if absent.

        If the last sibling is a leaf it moves up to the shallowest level where it is alone.
        """
        self._validate_key(key)
        siblings, _, old_value = self._found(key, "delete")
        hasher = self._hasher
        old_key = other_value = 0
        is_old0 = True
        if not siblings:
            kept: tuple[int, ...] = ()
            new_root = 0
        else:
            other = self._leaves.get(siblings[-1])
            if other is None:
                kept = tuple(siblings)
                new_root = _fold(hasher, 0, key, kept, self._branches)
            else:
                old_key, other_value = other
                is_old0 = False
                kept = _strip_zeros(siblings[:-1])
                new_root = _fold(hasher, siblings[-1], key, kept, self._branches)
        old_root = self._root
        self._commit(new_root, self._sizes[old_root] - 1)
        return SmtUpdate(old_root, new_root, kept, old_key, other_value, is_old0, key, old_value, FNC_DELETE)

    def set(self, key: int, value: int) -> SmtUpdate:
        """Insert or update ``key``; value 0 deletes it. Setting an absent key to 0 changes
        nothing and returns circomlib's NOP (``fnc == (0, 0)``, ``new_root == old_root``)."""
        self._validate_key(key)
        present = self.get(key) is not None
        if value == 0:
            if present:
                return self.delete(key)
            proof = self.prove(key)
            return SmtUpdate(
                proof.root,
                proof.root,
                proof.siblings,
                proof.not_found_key,
                proof.not_found_value,
                proof.is_old0,
                key,
                0,
                FNC_NOP,
            )
        if present:
            return self.update(key, value)
        return self.insert(key, value)

    def prove(self, key: int) -> SmtProof:
        """An inclusion or non-inclusion proof of ``key`` under the current root."""
        self._validate_key(key)
        siblings, node = self._walk(key)
        root = self._root
        if node == 0:
            return SmtProof(root, key, False, 0, tuple(siblings), 0, 0, True)
        leaf_key, leaf_value = self._leaves[node]
        if leaf_key != key:
            return SmtProof(root, key, False, 0, tuple(siblings), leaf_key, leaf_value, False)
        witness_a = witness_b = 0
        is_old0 = True
        if siblings:
            other = self._leaves.get(siblings[-1])
            if other is None:
                witness_a, witness_b = self._branches[siblings[-1]]
            else:
                witness_a, witness_b = other
                is_old0 = False
        return SmtProof(root, key, True, leaf_value, tuple(siblings), witness_a, witness_b, is_old0)

    def prune(self, keep: Iterable[int] = ()) -> int:
        """Forget every node not reachable from the current root or a root in ``keep``.

        Nodes are never removed otherwise, so memory grows by about ``log2(n)`` nodes (~3 KB)
        per write; a long-running sequencer prunes once the roots it may roll back to are
        known (e.g. the last finalized batch). Roots not kept can no longer be checked out.
        Returns the number of nodes removed. O(size of the kept trees).
        """
        roots = {self._root, *keep}
        for root in roots:
            if root not in self._sizes:
                raise SmtKeyError(f"sparse Merkle prune: root {root:#x} was never a root of this tree")
        branches, leaves = self._branches, self._leaves
        live_branches: dict[int, tuple[int, int]] = {}
        live_leaves: dict[int, tuple[int, int]] = {}
        stack = [r for r in roots if r]
        while stack:
            node = stack.pop()
            pair = branches.get(node)
            if pair is None:
                live_leaves[node] = leaves[node]
                continue
            if node in live_branches:
                continue
            live_branches[node] = pair
            stack.extend(child for child in pair if child and child not in live_branches)
        removed = len(branches) + len(leaves) - len(live_branches) - len(live_leaves)
        self._branches, self._leaves = live_branches, live_leaves
        self._sizes = {root: self._sizes[root] for root in roots | {0}}
        logger.debug("sparse Merkle prune: kept %d roots, removed %d nodes", len(roots), removed)
        return removed

    def checkout(self, root: int) -> None:
        """Move to ``root``, any root this tree has had (snapshot and rollback, O(1))."""
        if root not in self._sizes:
            raise SmtKeyError(f"sparse Merkle checkout: root {root:#x} was never a root of this tree")
        self._root = root
