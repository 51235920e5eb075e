"""Root of an ordered Merkle-Patricia trie, built in one pass (as geth's StackTrie).

Transactions, receipts and withdrawals of a block are committed to by the root of a
hexary Merkle-Patricia trie (Ethereum yellow paper, appendix D) whose keys are
``rlp(index)``. py-evm builds it by inserting into a :class:`trie.HexaryTrie` one key at
a time, re-reading and re-encoding the nodes on the path at every insertion; with all
items known up front the trie can instead be built bottom-up from the sorted keys, each
node encoded and hashed exactly once. The result is identical (tested against
``HexaryTrie``); this is the same idea as geth's ``StackTrie``/``DeriveSha``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rlp
from eth_hash.auto import keccak

BLANK_ROOT = keccak(rlp.encode(b""))


def _nibbles(key: bytes) -> tuple[int, ...]:
    out: list[int] = []
    for byte in key:
        out.append(byte >> 4)
        out.append(byte & 0x0F)
    return tuple(out)


def _hex_prefix(path: Sequence[int], leaf: bool) -> bytes:
    """Compact (hex-prefix) encoding of a nibble path (yellow paper, appendix C)."""
    flag = 2 if leaf else 0
    nibbles = [flag + 1, *path] if len(path) % 2 else [flag, 0, *path]
    return bytes((nibbles[i] << 4) | nibbles[i + 1] for i in range(0, len(nibbles), 2))


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def ref(self, node: list[Any]) -> Any:
        """A child reference: the node itself if its encoding is under 32 bytes, else its hash."""
        encoded = rlp.encode(node)
        if len(encoded) < 32:
            return node
        digest = keccak(encoded)
        self.nodes[digest] = encoded
        return digest

    def build(self, items: list[tuple[tuple[int, ...], bytes]], depth: int) -> list[Any]:
        if len(items) == 1:
            path, value = items[0]
            return [_hex_prefix(path[depth:], True), value]
        # longest common prefix of all paths beyond ``depth``
        first, last = items[0][0], items[-1][0]  # sorted: the extremes bound the prefix
        common = 0
        limit = min(len(first), len(last)) - depth
        while common < limit and first[depth + common] == last[depth + common]:
            common += 1
        if common:
            child = self.build(items, depth + common)
            return [_hex_prefix(first[depth:depth + common], False), self.ref(child)]
        branch: list[Any] = [b""] * 17
        start = 0
        if len(items[0][0]) == depth:  # a key ending here stores its value in the branch
            branch[16] = items[0][1]
            start = 1
        i = start
        while i < len(items):
            nibble = items[i][0][depth]
            j = i + 1
            while j < len(items) and items[j][0][depth] == nibble:
                j += 1
            branch[nibble] = self.ref(self.build(items[i:j], depth + 1))
            i = j
        return branch


def compute_ordered_trie_root(items: Sequence[bytes]) -> tuple[bytes, dict[bytes, bytes]]:
    """Root and nodes (hash -> encoding) of the trie mapping ``rlp(i)`` to ``items[i]``."""
    if not items:
        return BLANK_ROOT, {}
    keyed = sorted(
        (_nibbles(rlp.encode(index)), bytes(value)) for index, value in enumerate(items)
    )
    builder = _Builder()
    root = builder.build(keyed, 0)
    encoded = rlp.encode(root)
    digest = keccak(encoded)
    builder.nodes[digest] = encoded
    return digest, builder.nodes
