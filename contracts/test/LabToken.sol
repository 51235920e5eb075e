// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title LabToken
/// @notice A plain OpenZeppelin ERC-20 used by tests, benchmarks and the demo.
/// @dev The whole initial supply is minted to the deployer.
contract LabToken is ERC20 {
    constructor(string memory name_, string memory symbol_, uint256 initialSupply)
        ERC20(name_, symbol_)
    {
        _mint(msg.sender, initialSupply);
    }
}
