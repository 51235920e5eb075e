// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title QuirkyToken
/// @notice An ERC-20 with the two misbehaviours a token-holding contract must survive, for
/// tests: it refuses transfers to `blocked` recipients (as USDC's blacklist does) and can
/// burn a `feeBps` share of every transfer (fee-on-transfer tokens).
contract QuirkyToken is ERC20 {
    error RecipientBlocked(address recipient);

    mapping(address => bool) public blocked;
    uint256 public feeBps;

    constructor(uint256 initialSupply) ERC20("Quirky Token", "QRK") {
        _mint(msg.sender, initialSupply);
    }

    function setBlocked(address account, bool isBlocked) external {
        blocked[account] = isBlocked;
    }

    function setFeeBps(uint256 bps) external {
        feeBps = bps;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (blocked[to]) revert RecipientBlocked(to);
        uint256 fee = from == address(0) || to == address(0) ? 0 : value * feeBps / 10_000;
        if (fee != 0) super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
