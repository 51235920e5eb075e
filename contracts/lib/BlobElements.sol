// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title BlobElements
/// @notice Read one field element of an EIP-4844 blob on chain, proven against the blob's
/// versioned hash with the point-evaluation precompile (address 0x0a, 50,000 gas).
///
/// A blob is a polynomial in evaluation form: element `i` is its value at `w^brp(i)`, where
/// `w` is the primitive 4096th root of unity of the BLS12-381 scalar field
/// (`7^((BLS_MODULUS - 1) / 4096)`, EIP-4844's `PRIMITIVE_ROOT_OF_UNITY` = 7) and `brp` is
/// the 12-bit bit reversal (the consensus specs' `bit_reversal_permutation`). So a KZG
/// opening proof at `z = w^brp(i)` with value `y` shows that element `i` is `y`.
/// This is the building block a one-step proof needs to show a disputed step's bytes
/// against a blob (31 bytes per element in layerlab's blob layout).
library BlobElements {
    address internal constant POINT_EVALUATION = address(0x0a);
    uint256 internal constant BLS_MODULUS =
        52435875175126190479447740508185965837690552500527637822603658699938581184513;
    uint256 internal constant FIELD_ELEMENTS_PER_BLOB = 4096;
    uint256 internal constant ROOT_OF_UNITY_4096 =
        0x564c0a11a0f704f4fc3e8acfe0f8245f0ad1347b378fbf96e206da11a5d36306;

    error ElementIndexOutOfRange(uint256 index);
    error PointEvaluationFailed(uint256 index);

    /// @notice The evaluation point of element `index`: `w^brp(index) mod BLS_MODULUS`.
    function evaluationPoint(uint256 index) internal view returns (uint256) {
        if (index >= FIELD_ELEMENTS_PER_BLOB) revert ElementIndexOutOfRange(index);
        uint256 reversed = 0;
        for (uint256 bit = 0; bit < 12; ++bit) {
            reversed |= ((index >> bit) & 1) << (11 - bit);
        }
        return _modexp(ROOT_OF_UNITY_4096, reversed, BLS_MODULUS);
    }

    /// @notice Revert unless element `index` of the blob with `versionedHash` is `value`,
    /// by the precompile's check of `proof` against `commitment` (which it also checks
    /// hashes to `versionedHash`).
    function verifyElement(bytes32 versionedHash, uint256 index, bytes32 value,
        bytes calldata commitment, bytes calldata proof) internal view {
        uint256 z = evaluationPoint(index);
        (bool ok, bytes memory out) = POINT_EVALUATION.staticcall(
            abi.encodePacked(versionedHash, z, value, commitment, proof));
        if (!ok || out.length != 64 || uint256(bytes32(out)) != FIELD_ELEMENTS_PER_BLOB) {
            revert PointEvaluationFailed(index);
        }
    }

    function _modexp(uint256 base, uint256 exponent, uint256 modulus) private view returns (uint256 result) {
        (bool ok, bytes memory out) = address(0x05).staticcall(
            abi.encodePacked(uint256(32), uint256(32), uint256(32), base, exponent, modulus));
        require(ok && out.length == 32, "modexp failed");
        result = uint256(bytes32(out));
    }
}
