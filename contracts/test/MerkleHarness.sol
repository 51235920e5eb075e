// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SparseMerkle} from "../lib/SparseMerkle.sol";

/// @title MerkleHarness
/// @notice Exposes OpenZeppelin's MerkleProof and our SparseMerkle library to tests, which
/// check Python proofs (layerlab.primitives.merkle / smt) on chain and measure gas.
contract MerkleHarness {
    /// @notice A sparse Merkle root kept in storage, moved by `applySmt` as a rollup would.
    uint256 public smtRoot;

    error StaleSmtRoot(uint256 proofRoot, uint256 storedRoot);

    // ------------------------------------------------------------ OpenZeppelin MerkleProof

    function verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf) external pure returns (bool) {
        return MerkleProof.verify(proof, root, leaf);
    }

    function processProof(bytes32[] calldata proof, bytes32 leaf) external pure returns (bytes32) {
        return MerkleProof.processProof(proof, leaf);
    }

    function multiProofVerify(
        bytes32[] calldata proof,
        bool[] calldata proofFlags,
        bytes32 root,
        bytes32[] calldata leaves
    ) external pure returns (bool) {
        return MerkleProof.multiProofVerify(proof, proofFlags, root, leaves);
    }

    /// @notice StandardMerkleTree's leaf for ["address", "uint256"], as an airdrop computes it.
    function standardLeaf(address account, uint256 amount) external pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
    }

    // ------------------------------------------------------------ SparseMerkle

    function smtHashNode(uint256 left, uint256 right) external pure returns (uint256) {
        return SparseMerkle.hashNode(left, right);
    }

    function smtHashLeaf(uint256 key, uint256 value) external pure returns (uint256) {
        return SparseMerkle.hashLeaf(key, value);
    }

    function smtVerifyInclusion(uint256 root, uint256 key, uint256 value, uint256[] calldata siblings)
        external
        pure
        returns (bool)
    {
        return SparseMerkle.verifyInclusion(root, key, value, siblings);
    }

    function smtVerifyNonInclusion(
        uint256 root,
        uint256 key,
        uint256[] calldata siblings,
        uint256 notFoundKey,
        uint256 notFoundValue,
        bool isOld0
    ) external pure returns (bool) {
        return SparseMerkle.verifyNonInclusion(root, key, siblings, notFoundKey, notFoundValue, isOld0);
    }

    function smtVerify(SparseMerkle.Proof calldata p) external pure returns (bool) {
        return SparseMerkle.verify(p);
    }

    function smtComputeRootAfter(SparseMerkle.Proof calldata p, uint256 newValue) external pure returns (uint256) {
        return SparseMerkle.computeRootAfter(p, newValue);
    }

    // ------------------------------------------------------------ gas of the library alone

    function gasVerifyInclusion(uint256 root, uint256 key, uint256 value, uint256[] calldata siblings)
        external
        view
        returns (bool ok, uint256 gasUsed)
    {
        uint256[] memory s = siblings;
        uint256 start = gasleft();
        ok = SparseMerkle.verifyInclusion(root, key, value, s);
        gasUsed = start - gasleft();
    }

    function gasComputeRootAfter(SparseMerkle.Proof calldata p, uint256 newValue)
        external
        view
        returns (uint256 root, uint256 gasUsed)
    {
        SparseMerkle.Proof memory m = p;
        uint256 start = gasleft();
        root = SparseMerkle.computeRootAfter(m, newValue);
        gasUsed = start - gasleft();
    }

    // ------------------------------------------------------------ a stored root, as a rollup

    function setSmtRoot(uint256 root) external {
        smtRoot = root;
    }

    /// @notice Move the stored root by one insert, update or delete proven against it.
    function applySmt(SparseMerkle.Proof calldata p, uint256 newValue) external {
        if (p.root != smtRoot) revert StaleSmtRoot(p.root, smtRoot);
        smtRoot = SparseMerkle.computeRootAfter(p, newValue);
    }
}
