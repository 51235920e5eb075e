"""Ethereum JSON-RPC over HTTP and WebSocket (eth_, net_, web3_, debug_, evm_/anvil_ dev methods)."""
