// SPDX-License-Identifier: MIT
// Vendored from the npm package @eth-optimism/contracts-bedrock 0.17.3 (MIT, Copyright (c) 2022
// Optimism; license in LICENSE beside this file), file src/libraries/rlp/RLPErrors.sol, unchanged but for its pragma (0.8.15 -> ^0.8.15).
// The package cannot be imported as it is: its RLPErrors.sol pins `pragma solidity 0.8.15`,
// which the project's solc 0.8.30 refuses.
pragma solidity ^0.8.15;

/// @notice The length of an RLP item must be greater than zero to be decodable
error EmptyItem();

/// @notice The decoded item type for list is not a list item
error UnexpectedString();

/// @notice The RLP item has an invalid data remainder
error InvalidDataRemainder();

/// @notice Decoded item type for bytes is not a string item
error UnexpectedList();

/// @notice The length of the content must be greater than the RLP item length
error ContentLengthMismatch();

/// @notice Invalid RLP header for RLP item
error InvalidHeader();
