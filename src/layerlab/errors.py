"""The one exception tree of layerlab.

Every error a user can cause (a malformed transaction, a bad signature, a stale channel
state, a forged proof) is a subclass of :class:`LayerlabError` whose message names the
check that failed and the values involved, e.g. ``"nonce too low: address 0xab.., tx
nonce 3, state nonce 5"``. Validity is never checked with ``assert``.
"""

from __future__ import annotations


class LayerlabError(Exception):
    """Root of every layerlab error."""


class ConfigError(LayerlabError):
    """A chain or node configuration is invalid."""


class UnsupportedFork(ConfigError):
    """A chain config schedules a fork this node does not implement; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class UnknownConfigKey(ConfigError):
    """A chain config holds keys this node does not know; ``keys`` lists them."""

    def __init__(self, keys: list[str], message: str) -> None:
        super().__init__(message)
        self.keys = keys


class StorageError(LayerlabError):
    """The data directory is unusable (locked by another node, corrupt, wrong chain)."""


class InvalidTransaction(LayerlabError):
    """A transaction failed a validity check and was not accepted.

    ``reason`` is a short machine-readable tag (``nonce-too-low``, ``insufficient-funds``...)
    so callers can branch on it without parsing the message.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidBlock(LayerlabError):
    """A block failed header, body or execution validation."""


class InvalidProof(LayerlabError):
    """A Merkle, fraud or validity proof did not verify."""


class ExecutionReverted(LayerlabError):
    """An ``eth_call`` or gas estimate hit REVERT; ``data`` holds the revert payload."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message)
        self.data = data


class ChannelError(LayerlabError):
    """A payment-channel message or state transition was refused."""


class ContractCompileError(LayerlabError):
    """solc rejected a Solidity source, or the compiler could not be run."""


class ConsensusError(LayerlabError):
    """A consensus message (block seal, attestation, slashing evidence) was refused."""


class InvalidSignature(ConsensusError):
    """A BLS signature (single or aggregate) did not verify, or a key was malformed."""


class PeerError(LayerlabError):
    """A peer broke the wire protocol (bad frame, bad handshake, invalid data)."""


class MalformedEncoding(LayerlabError):
    """Bytes did not decode to a typed value under the one canonical codec
    (``primitives/codec.py``): not RLP, a non-minimal integer, a wrong field count, a wrong
    fixed length, or a list where bytes were expected (or the reverse)."""
