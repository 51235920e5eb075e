"""``primitives/revert.py``: Solidity's built-in revert payloads, by their ABI signatures."""

from __future__ import annotations

from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak

from layerlab.primitives.revert import ERROR_SELECTOR, PANIC_SELECTOR, decode_builtin_revert


def selector(signature: str) -> bytes:
    return bytes(keccak(signature.encode()))[:4]


def test_selectors_are_the_signatures_hashes() -> None:
    assert selector("Error(string)") == ERROR_SELECTOR
    assert selector("Panic(uint256)") == PANIC_SELECTOR


def test_error_and_panic_decode() -> None:
    reason = selector("Error(string)") + abi_encode(["string"], ["not enough"])
    assert decode_builtin_revert(reason) == ("Error", {"reason": "not enough"})
    panic = selector("Panic(uint256)") + abi_encode(["uint256"], [0x11])  # arithmetic overflow
    assert decode_builtin_revert(panic) == ("Panic", {"code": 0x11})


def test_anything_else_is_none() -> None:
    assert decode_builtin_revert(b"") is None
    assert decode_builtin_revert(selector("Mine(uint256)") + abi_encode(["uint256"], [1])) is None
    assert decode_builtin_revert(selector("Error(string)") + b"\x00" * 5) is None  # truncated
