"""Layer 2 systems settled by Solidity contracts on an EVM L1, reached only through JSON-RPC."""
