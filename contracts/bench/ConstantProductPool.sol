// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title ConstantProductPool
/// @notice A Uniswap v2 style pool of two ERC-20 tokens (x * y = k with a 0.3% fee), the
/// L1 side of the comparison's AMM-swap workload. Liquidity shares are this contract's own
/// ERC-20 token.
/// @dev The swap rule is Uniswap v2's getAmountOut (Adams, Zinsmeister, Robinson, "Uniswap
/// v2 Core", 2020, section 3.2.1): out = in * 997 * rOut / (rIn * 1000 + in * 997).
/// Unlike the v2 pair, a swap pulls the input with transferFrom (no flash swaps) and the
/// first deposit mints sqrt(a0 * a1) shares without the MINIMUM_LIQUIDITY lock: this pool
/// is for measuring costs, not for adversarial markets.
contract ConstantProductPool is ERC20 {
    using SafeERC20 for IERC20;

    IERC20 public immutable token0;
    IERC20 public immutable token1;
    uint256 public reserve0;
    uint256 public reserve1;

    error ZeroAmount();
    error UnknownToken(address token);
    error Slippage(uint256 amountOut, uint256 minOut);
    error NoLiquidity();

    event Swap(address indexed trader, address indexed tokenIn, uint256 amountIn, uint256 amountOut);
    event Liquidity(address indexed provider, uint256 amount0, uint256 amount1, uint256 shares);

    constructor(IERC20 a, IERC20 b) ERC20("Pool share", "LP") {
        (token0, token1) = address(a) < address(b) ? (a, b) : (b, a);
    }

    /// @notice Deposit both tokens; shares are proportional to the smaller side's ratio.
    function addLiquidity(uint256 amount0, uint256 amount1) external returns (uint256 shares) {
        if (amount0 == 0 || amount1 == 0) revert ZeroAmount();
        uint256 supply = totalSupply();
        shares = supply == 0
            ? Math.sqrt(amount0 * amount1)
            : Math.min(amount0 * supply / reserve0, amount1 * supply / reserve1);
        if (shares == 0) revert ZeroAmount();
        token0.safeTransferFrom(msg.sender, address(this), amount0);
        token1.safeTransferFrom(msg.sender, address(this), amount1);
        reserve0 += amount0;
        reserve1 += amount1;
        _mint(msg.sender, shares);
        emit Liquidity(msg.sender, amount0, amount1, shares);
    }

    /// @notice Uniswap v2's output amount for `amountIn` of one side.
    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut)
        public
        pure
        returns (uint256)
    {
        uint256 inWithFee = amountIn * 997;
        return inWithFee * reserveOut / (reserveIn * 1000 + inWithFee);
    }

    /// @notice Swap `amountIn` of `tokenIn` for at least `minOut` of the other token.
    function swap(address tokenIn, uint256 amountIn, uint256 minOut) external returns (uint256 amountOut) {
        if (amountIn == 0) revert ZeroAmount();
        bool zeroForOne = tokenIn == address(token0);
        if (!zeroForOne && tokenIn != address(token1)) revert UnknownToken(tokenIn);
        (uint256 rIn, uint256 rOut) = zeroForOne ? (reserve0, reserve1) : (reserve1, reserve0);
        if (rIn == 0 || rOut == 0) revert NoLiquidity();
        amountOut = getAmountOut(amountIn, rIn, rOut);
        if (amountOut < minOut || amountOut == 0) revert Slippage(amountOut, minOut);
        IERC20(tokenIn).safeTransferFrom(msg.sender, address(this), amountIn);
        if (zeroForOne) {
            reserve0 = rIn + amountIn;
            reserve1 = rOut - amountOut;
            token1.safeTransfer(msg.sender, amountOut);
        } else {
            reserve1 = rIn + amountIn;
            reserve0 = rOut - amountOut;
            token0.safeTransfer(msg.sender, amountOut);
        }
        emit Swap(msg.sender, tokenIn, amountIn, amountOut);
    }
}
