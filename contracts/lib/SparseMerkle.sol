// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title SparseMerkle
/// @notice Proofs of the keccak sparse Merkle tree of `layerlab.primitives.smt`
/// (`SparseMerkleTree` with `KECCAK_HASHER`): the design of iden3/circomlib (Baylina and
/// Belles, "Sparse Merkle Trees", 2018). A key's path is its bits, least significant first;
/// an empty subtree is 0; a subtree holding one leaf is that leaf;
/// node = keccak256(abi.encode(left, right)), leaf = keccak256(abi.encode(key, value, 1)).
/// Value 0 means absent.
/// @dev `siblings` run from the root down (siblings[i] is the sibling at depth i), without
/// trailing zeros, as `SmtProof.siblings`. `computeRootAfter` is what a one-step fraud proof
/// calls: from a proof of one leaf against the pre-state root it returns the post-state
/// root after an insert, update or delete of that leaf, reverting on a bad proof.
/// Gas of the library alone (measured, random 256-bit keys): verifyInclusion ~3.0k at 1,000
/// leaves (~12 siblings) and ~4.5k at 100,000 (~18); computeRootAfter (it verifies first)
/// ~5.8k insert / ~6.9k update or delete at 1,000 leaves, ~8.9k / ~9.8k at 100,000. About
/// 250 gas per sibling; calldata adds 16 gas per non-zero byte, ~512 per sibling.
library SparseMerkle {
    /// @notice A proof that does not hash to its root, or whose fields contradict each other.
    error SparseMerkleInvalidProof(uint256 root, uint256 key);

    /// @notice `SmtProof` of smt.py, field for field. When `found`, (notFoundKey,
    /// notFoundValue, isOld0) are the deletion witness: the preimage of the last sibling,
    /// a leaf (key, value) when !isOld0, an inner node (left, right) when isOld0 (0, 0 when
    /// there is no sibling).
    struct Proof {
        uint256 root;
        uint256 key;
        bool found;
        uint256 value;
        uint256[] siblings;
        uint256 notFoundKey;
        uint256 notFoundValue;
        bool isOld0;
    }

    uint256 internal constant MAX_DEPTH = 256;

    function hashNode(uint256 left, uint256 right) internal pure returns (uint256 h) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            h := keccak256(0x00, 0x40)
        }
    }

    function hashLeaf(uint256 key, uint256 value) internal pure returns (uint256 h) {
        assembly ("memory-safe") {
            // scratch space past the free memory pointer, not allocated
            let p := mload(0x40)
            mstore(p, key)
            mstore(add(p, 0x20), value)
            mstore(add(p, 0x40), 1)
            h := keccak256(p, 0x60)
        }
    }

    /// @dev Hash `node`, sitting at depth `n` on `key`'s path, up with siblings[0..n-1].
    function _fold(uint256 node, uint256 key, uint256[] memory siblings, uint256 n)
        private
        pure
        returns (uint256)
    {
        for (uint256 i = n; i > 0;) {
            unchecked {
                --i;
            }
            uint256 s = siblings[i];
            node = (key >> i) & 1 == 1 ? hashNode(s, node) : hashNode(node, s);
        }
        return node;
    }

    /// @notice Whether `key` holds `value` (non-zero) under `root`.
    function verifyInclusion(uint256 root, uint256 key, uint256 value, uint256[] memory siblings)
        internal
        pure
        returns (bool)
    {
        if (value == 0 || siblings.length > MAX_DEPTH) return false;
        return _fold(hashLeaf(key, value), key, siblings, siblings.length) == root;
    }

    /// @notice Whether `key` is absent under `root`: its path ends in an empty subtree
    /// (`isOld0`, notFoundKey = notFoundValue = 0) or in the leaf of another key on the
    /// same path (circomlib SMTVerifier with fnc = 1).
    function verifyNonInclusion(
        uint256 root,
        uint256 key,
        uint256[] memory siblings,
        uint256 notFoundKey,
        uint256 notFoundValue,
        bool isOld0
    ) internal pure returns (bool) {
        uint256 n = siblings.length;
        if (n > MAX_DEPTH) return false;
        if (isOld0) {
            if (notFoundKey != 0 || notFoundValue != 0) return false;
            return _fold(0, key, siblings, n) == root;
        }
        if (notFoundKey == key || notFoundValue == 0 || !_samePrefix(notFoundKey, key, n)) return false;
        return _fold(hashLeaf(notFoundKey, notFoundValue), key, siblings, n) == root;
    }

    /// @notice smt.py's `verify_smt_proof`: inclusion with its deletion witness, or
    /// non-inclusion.
    function verify(Proof memory p) internal pure returns (bool) {
        if (!p.found) {
            return p.value == 0
                && verifyNonInclusion(p.root, p.key, p.siblings, p.notFoundKey, p.notFoundValue, p.isOld0);
        }
        return _isDeletionWitness(p) && verifyInclusion(p.root, p.key, p.value, p.siblings);
    }

    /// @notice smt.py's `compute_root_after`: the root after setting `p.key` to `newValue`
    /// (insert when not found, update when found, delete when newValue == 0; setting an
    /// absent key to 0 changes nothing). Reverts with SparseMerkleInvalidProof unless
    /// `verify(p)`.
    function computeRootAfter(Proof memory p, uint256 newValue) internal pure returns (uint256) {
        if (!verify(p)) revert SparseMerkleInvalidProof(p.root, p.key);
        uint256[] memory siblings = p.siblings;
        uint256 n = siblings.length;
        uint256 key = p.key;
        if (p.found) {
            if (newValue != 0) return _fold(hashLeaf(key, newValue), key, siblings, n);
            if (n == 0) return 0;
            if (p.isOld0) return _fold(0, key, siblings, n);
            // the sibling leaf moves up past the empty siblings above it
            uint256 m = n - 1;
            while (m > 0 && siblings[m - 1] == 0) {
                unchecked {
                    --m;
                }
            }
            return _fold(siblings[n - 1], key, siblings, m);
        }
        if (newValue == 0) return p.root;
        uint256 leaf = hashLeaf(key, newValue);
        if (p.isOld0) return _fold(leaf, key, siblings, n);
        return _fold(_joinLeaves(n, key, leaf, p.notFoundKey, hashLeaf(p.notFoundKey, p.notFoundValue)), key, siblings, n);
    }

    /// @dev The subtree at depth `level` holding two leaves whose keys agree below `level`:
    /// split at their first differing bit, inner nodes with one empty child above it.
    function _joinLeaves(uint256 level, uint256 key, uint256 leaf, uint256 otherKey, uint256 otherLeaf)
        private
        pure
        returns (uint256 node)
    {
        uint256 split = level;
        uint256 diff = (key ^ otherKey) >> level;
        while (diff & 1 == 0) {
            diff >>= 1;
            unchecked {
                ++split;
            }
        }
        node = (key >> split) & 1 == 1 ? hashNode(otherLeaf, leaf) : hashNode(leaf, otherLeaf);
        while (split > level) {
            unchecked {
                --split;
            }
            node = (key >> split) & 1 == 1 ? hashNode(0, node) : hashNode(node, 0);
        }
    }

    function _samePrefix(uint256 a, uint256 b, uint256 n) private pure returns (bool) {
        if (n >= 256) return a == b;
        return (a ^ b) & ((uint256(1) << n) - 1) == 0;
    }

    function _isDeletionWitness(Proof memory p) private pure returns (bool) {
        uint256 n = p.siblings.length;
        if (n == 0) return p.isOld0 && p.notFoundKey == 0 && p.notFoundValue == 0;
        uint256 last = p.siblings[n - 1];
        if (p.isOld0) return hashNode(p.notFoundKey, p.notFoundValue) == last;
        if (p.notFoundValue == 0) return false;
        uint256 diff = p.notFoundKey ^ p.key;
        // the sibling leaf agrees with the key below depth n-1 and differs at bit n-1
        uint256 mask = n >= 256 ? type(uint256).max : (uint256(1) << n) - 1;
        if (diff & mask != uint256(1) << (n - 1)) return false;
        return hashLeaf(p.notFoundKey, p.notFoundValue) == last;
    }
}
