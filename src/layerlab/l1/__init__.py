"""Layer 1: a py-evm chain with layerlab's own consensus, network, storage and JSON-RPC."""
