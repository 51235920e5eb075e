// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {BlobElements} from "../lib/BlobElements.sol";

/// @notice Exposes BlobElements for tests.
contract BlobElementsHarness {
    function evaluationPoint(uint256 index) external view returns (uint256) {
        return BlobElements.evaluationPoint(index);
    }

    /// @return the 31 payload bytes of element `index` once proven (layerlab's blob layout:
    /// a zero byte, then 31 bytes)
    function readElement(bytes32 versionedHash, uint256 index, bytes32 value, bytes calldata commitment,
        bytes calldata proof) external view returns (bytes31) {
        BlobElements.verifyElement(versionedHash, index, value, commitment, proof);
        return bytes31(value << 8);
    }
}
