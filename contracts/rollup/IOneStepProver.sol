// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IOneStepProver
/// @notice The rule of one step of an L2 state machine, executed on L1 at the end of a
/// fraud-proof game: from the agreed state root before the step, the step's bytes and
/// Merkle witnesses of the leaves the step touches, compute the state root after it.
/// @dev A prover must revert when the witnesses do not prove the leaves against `preRoot`
/// (so that a party cannot win with made-up witnesses), and must return `preRoot` for a
/// step that its rules refuse (a bad signature, a stale nonce, too little balance): an
/// invalid L2 transaction is a no-op, as the OP Stack's derivation drops invalid
/// transactions, so a sequencer cannot make a batch invalid by including one and a
/// censored user's forced transaction cannot block the chain.
interface IOneStepProver {
    function executeStep(bytes32 preRoot, bytes calldata step, bytes calldata witness)
        external
        view
        returns (bytes32 postRoot);
}
