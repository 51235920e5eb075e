"""Chain: genesis, fork schedule, the py-evm adapter, the block builder and EIP-1559 fees."""
