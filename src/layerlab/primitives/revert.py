"""The revert payloads Solidity defines for every contract (Solidity docs, "Error handling:
Assert, Require, Revert and Exceptions"): ``Error(string)`` for ``require``/``revert`` with
a reason, and ``Panic(uint256)`` for failed asserts, overflows, division by zero and the
like. Contracts' own custom errors are decoded by ABI where their ABI is known.
"""

from __future__ import annotations

from typing import Final

from eth_abi.abi import decode as abi_decode

ERROR_SELECTOR: Final = bytes.fromhex("08c379a0")
"""``keccak256("Error(string)")[:4]``."""
PANIC_SELECTOR: Final = bytes.fromhex("4e487b71")
"""``keccak256("Panic(uint256)")[:4]``."""


def decode_builtin_revert(payload: bytes) -> tuple[str, dict[str, str | int]] | None:
    """``("Error", {"reason": ...})`` or ``("Panic", {"code": ...})`` for the built-in
    revert payloads; None for anything else, a malformed one included."""
    selector, body = payload[:4], payload[4:]
    try:
        if selector == ERROR_SELECTOR:
            return "Error", {"reason": str(abi_decode(["string"], body)[0])}
        if selector == PANIC_SELECTOR:
            return "Panic", {"code": int(abi_decode(["uint256"], body)[0])}
    except Exception:  # eth_abi raises several unrelated types for malformed data
        return None
    return None
