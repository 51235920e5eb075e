// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Reverter
/// @notice Exercises every way a call can end, for RPC and client tests: a string revert
///         (`Error(string)`), a custom error, a failed `require`, and a successful state
///         change that emits an event.
contract Reverter {
    error Nope(uint256 code);

    event Set(address indexed who, uint256 value);

    uint256 private _value;

    /// @notice Always reverts with `Error("layerlab: always fails")`.
    function fail() external pure {
        revert("layerlab: always fails");
    }

    /// @notice Always reverts with the custom error `Nope(code)`.
    function failWithCode(uint256 code) external pure {
        revert Nope(code);
    }

    /// @notice Reverts with `Error("x must be positive")` when `x` is 0, else returns `x`.
    function requirePositive(uint256 x) external pure returns (uint256) {
        require(x > 0, "x must be positive");
        return x;
    }

    /// @notice Stores `value` and emits `Set(msg.sender, value)`.
    function set(uint256 value) external {
        _value = value;
        emit Set(msg.sender, value);
    }

    /// @notice Returns the last value stored by `set`.
    function get() external view returns (uint256) {
        return _value;
    }
}
