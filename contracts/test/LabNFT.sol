// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// @title LabNFT
/// @notice An OpenZeppelin ERC-721 with open minting, used by tests and benchmarks.
/// @dev Token ids start at 1 and increase by one per mint. Anyone may mint: test use only.
contract LabNFT is ERC721 {
    uint256 private _lastTokenId;

    constructor() ERC721("LabNFT", "LNFT") {}

    /// @notice Mints the next token id to `to` and returns it.
    function mint(address to) external returns (uint256 tokenId) {
        tokenId = ++_lastTokenId;
        _safeMint(to, tokenId);
    }

    /// @notice Number of tokens minted so far (none are ever burned).
    function totalMinted() external view returns (uint256) {
        return _lastTokenId;
    }
}
