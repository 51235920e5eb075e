"""Cryptographic wrappers (secp256k1 keys, BLS, KZG); imports nothing else of layerlab."""
