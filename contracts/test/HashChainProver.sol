// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOneStepProver} from "../rollup/IOneStepProver.sol";

/// @notice A toy state machine for testing the rollup's dispute game apart from the L2
/// rules: the state root after a step is keccak256(preRoot || step); a witness of "bad"
/// makes it revert (witnesses that do not prove the leaves); a withdrawal "leaf" is the
/// root keccak256(abi.encode(id, recipient, token, amount)) itself.
contract HashChainProver is IOneStepProver {
    function executeStep(bytes32 preRoot, bytes calldata step, bytes calldata witness)
        external
        pure
        returns (bytes32)
    {
        require(keccak256(witness) != keccak256("bad"), "witness does not prove the leaves");
        return keccak256(abi.encodePacked(preRoot, step));
    }

    function isWithdrawal(bytes32 stateRoot, uint256 withdrawalId, address recipient, address token,
        uint256 amount, bytes calldata) external pure returns (bool) {
        return stateRoot == keccak256(abi.encode(withdrawalId, recipient, token, amount));
    }
}
