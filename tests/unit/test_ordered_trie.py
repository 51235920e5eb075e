"""The one-pass ordered trie equals py-evm's HexaryTrie construction, root and nodes."""

from __future__ import annotations

from eth.db.trie import _make_trie_root_and_nodes
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.primitives.ordered_trie import BLANK_ROOT, compute_ordered_trie_root

reference = _make_trie_root_and_nodes.__wrapped__


def test_empty_trie_is_the_blank_root() -> None:
    assert compute_ordered_trie_root([]) == (BLANK_ROOT, {})
    assert reference(()) [0] == BLANK_ROOT


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=80), max_size=300))
def test_root_and_nodes_match_hexary_trie(items: list[bytes]) -> None:
    root, nodes = compute_ordered_trie_root(items)
    ref_root, ref_nodes = reference(tuple(items))
    assert root == ref_root
    # every node we store is one HexaryTrie stores, and the root resolves
    assert set(nodes) <= set(ref_nodes)
    assert all(nodes[h] == ref_nodes[h] for h in nodes)
    if items:
        assert root in nodes


def test_sizes_around_branch_boundaries() -> None:
    for n in (1, 2, 15, 16, 17, 127, 128, 129, 255, 256, 257, 1000):
        items = [bytes([i % 251]) * (1 + i % 40) for i in range(n)]
        assert compute_ordered_trie_root(items)[0] == reference(tuple(items))[0], n
