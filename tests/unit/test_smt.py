"""Sparse Merkle tree (primitives/smt.py): circomlibjs's algorithm, proofs, one-step roots.

A dict is the model of the tree's contents; a line-by-line Python port of circomlibjs
``smt.js`` (find, insert, update, delete over a node database) is the model of its shape
and of the SMTProcessor inputs each operation returns.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak as reference_keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.errors import InvalidProof, LayerlabError
from layerlab.primitives.smt import (
    KECCAK_HASHER,
    SmtKeyError,
    SmtProof,
    SmtUpdate,
    SparseMerkleTree,
    compute_root_after,
    validate_smt_proof,
    verify_smt_proof,
)

H = KECCAK_HASHER


# --- circomlibjs smt.js, ported literally (F is the integers; hash0/hash1 are keccak) -----


class CircomlibjsSmt:
    """iden3/circomlibjs src/smt.js (``SMT`` with ``SMTMemDB``): same branches, same order."""

    def __init__(self) -> None:
        self.db: dict[int, list[int]] = {}
        self.root = 0

    @staticmethod
    def bits(key: int) -> list[int]:
        return [(key >> i) & 1 for i in range(256)]

    def find(self, key: int) -> dict[str, Any]:
        return self._find(key, self.bits(key), self.root, 0)

    def _find(self, key: int, key_bits: list[int], root: int, level: int) -> dict[str, Any]:
        if root == 0:
            return {"found": False, "siblings": [], "notFoundKey": key, "notFoundValue": 0, "isOld0": True}
        record = self.db[root]
        if len(record) == 3 and record[0] == 1:
            if record[1] == key:
                return {"found": True, "siblings": [], "foundValue": record[2], "isOld0": False}
            return {
                "found": False,
                "siblings": [],
                "notFoundKey": record[1],
                "notFoundValue": record[2],
                "isOld0": False,
            }
        if key_bits[level] == 0:
            res = self._find(key, key_bits, record[0], level + 1)
            res["siblings"].insert(0, record[1])
        else:
            res = self._find(key, key_bits, record[1], level + 1)
            res["siblings"].insert(0, record[0])
        return res

    def update(self, key: int, new_value: int) -> dict[str, Any]:
        res_find = self.find(key)
        res: dict[str, Any] = {
            "oldRoot": self.root,
            "oldKey": key,
            "oldValue": res_find["foundValue"],
            "newKey": key,
            "newValue": new_value,
            "siblings": res_find["siblings"],
        }
        rt_old = H.hash_leaf(key, res_find["foundValue"])
        rt_new = H.hash_leaf(key, new_value)
        self.db[rt_new] = [1, key, new_value]
        key_bits = self.bits(key)
        for level in range(len(res_find["siblings"]) - 1, -1, -1):
            sibling = res_find["siblings"][level]
            if key_bits[level]:
                old_node, new_node = [sibling, rt_old], [sibling, rt_new]
            else:
                old_node, new_node = [rt_old, sibling], [rt_new, sibling]
            rt_old = H.hash_node(*old_node)
            rt_new = H.hash_node(*new_node)
            self.db[rt_new] = new_node
        res["newRoot"] = rt_new
        self.root = rt_new
        return res

    def delete(self, key: int) -> dict[str, Any]:
        res_find = self.find(key)
        assert res_find["found"], "Key does not exists"
        res: dict[str, Any] = {"siblings": [], "delKey": key, "delValue": res_find["foundValue"]}
        rt_old = H.hash_leaf(key, res_find["foundValue"])
        sibs = res_find["siblings"]
        mixed = False
        if sibs:
            record = self.db[sibs[-1]]
            if len(record) == 3 and record[0] == 1:
                mixed = False
                res.update(oldKey=record[1], oldValue=record[2], isOld0=False)
                rt_new = sibs[-1]
            elif len(record) == 2:
                mixed = True
                res.update(oldKey=key, oldValue=0, isOld0=True)
                rt_new = 0
            else:
                raise AssertionError("Invalid node. Database corrupted")
        else:
            rt_new = 0
            res.update(oldKey=key, oldValue=0, isOld0=True)
        key_bits = self.bits(key)
        for level in range(len(sibs) - 1, -1, -1):
            new_sibling = sibs[level]
            if level == len(sibs) - 1 and not res["isOld0"]:
                new_sibling = 0
            old_sibling = sibs[level]
            rt_old = H.hash_node(old_sibling, rt_old) if key_bits[level] else H.hash_node(rt_old, old_sibling)
            if new_sibling != 0:
                mixed = True
            if mixed:
                res["siblings"].insert(0, sibs[level])
                new_node = [new_sibling, rt_new] if key_bits[level] else [rt_new, new_sibling]
                rt_new = H.hash_node(*new_node)
                self.db[rt_new] = new_node
        self.root = rt_new
        res["newRoot"] = rt_new
        res["oldRoot"] = rt_old
        return res

    def insert(self, key: int, value: int) -> dict[str, Any]:
        res: dict[str, Any] = {"oldRoot": self.root}
        new_key_bits = self.bits(key)
        res_find = self.find(key)
        assert not res_find["found"], "Key already exists"
        res["siblings"] = res_find["siblings"]  # the same list, as in JS
        added_one = False
        mixed = False
        rt_old = 0
        if not res_find["isOld0"]:
            old_key_bits = self.bits(res_find["notFoundKey"])
            i = len(res["siblings"])
            while old_key_bits[i] == new_key_bits[i]:
                res["siblings"].append(0)
                i += 1
            rt_old = H.hash_leaf(res_find["notFoundKey"], res_find["notFoundValue"])
            res["siblings"].append(rt_old)
            added_one = True
            mixed = False
        elif res["siblings"]:
            mixed = True
            rt_old = 0
        rt = H.hash_leaf(key, value)
        self.db[rt] = [1, key, value]
        for i in range(len(res["siblings"]) - 1, -1, -1):
            if i < len(res["siblings"]) - 1 and res["siblings"][i] != 0:
                mixed = True
            if mixed:
                old_sibling = res_find["siblings"][i]
                rt_old = (
                    H.hash_node(old_sibling, rt_old) if new_key_bits[i] else H.hash_node(rt_old, old_sibling)
                )
            pair = [res["siblings"][i], rt] if new_key_bits[i] else [rt, res["siblings"][i]]
            rt = H.hash_node(*pair)
            self.db[rt] = pair
        if added_one:
            res["siblings"].pop()
        while res["siblings"] and res["siblings"][-1] == 0:
            res["siblings"].pop()
        res.update(
            oldKey=res_find["notFoundKey"],
            oldValue=res_find["notFoundValue"],
            newRoot=rt,
            isOld0=res_find["isOld0"],
        )
        self.root = rt
        return res


def processor_inputs(res: dict[str, Any], fnc: tuple[int, int], key: int, value: int) -> SmtUpdate:
    """What circomlib's test/smtprocessor.js feeds SMTProcessor from a circomlibjs result."""
    old0 = bool(res.get("isOld0", False)) and fnc != (0, 1)
    return SmtUpdate(
        old_root=res["oldRoot"],
        new_root=res["newRoot"],
        siblings=tuple(res["siblings"]),
        old_key=0 if old0 else res["oldKey"],
        old_value=0 if old0 else res["oldValue"],
        is_old0=old0,
        new_key=res["delKey"] if fnc == (1, 1) else key,
        new_value=res["delValue"] if fnc == (1, 1) else value,
        fnc=fnc,
    )


# --- strategies --------------------------------------------------------------------------

KEY = st.one_of(
    st.integers(0, 40),  # small keys: shared low bits, deep collapses
    st.integers(0, 2**256 - 1),
    st.integers(0, 15).map(lambda x: (x << 248) | 0x5A5A),  # share 248 low bits: paths ~250 deep
)
VALUE = st.integers(1, 2**256 - 1)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[int], list[tuple[int, int]]]:
    """A pool of keys and a sequence of (key, value) sets; value 0 deletes."""
    pool = draw(st.lists(KEY, min_size=1, max_size=14, unique=True))
    ops = draw(
        st.lists(
            st.tuples(st.sampled_from(pool), st.one_of(st.just(0), st.integers(1, 3), VALUE)),
            max_size=60,
        )
    )
    return pool, ops


def build(items: dict[int, int]) -> SparseMerkleTree:
    tree = SparseMerkleTree()
    for key, value in items.items():
        tree.insert(key, value)
    return tree


def absent_probes(pool: list[int], model: dict[int, int]) -> list[int]:
    """Absent keys that meet leaves, empty subtrees, and long shared prefixes."""
    probes = [k for k in pool if k not in model]
    for k in list(model)[:6]:
        probes += [k ^ (1 << 255), k ^ 1, k ^ 2, k + 64]
    return [k for k in probes if 0 <= k < 2**256 and k not in model]


# --- fixed vectors ------------------------------------------------------------------------


def test_hasher_is_keccak_of_abi_encoded_words() -> None:
    a, b = 2**256 - 1, 7
    assert H.name == "keccak"
    assert H.hash_node(a, b) == int.from_bytes(reference_keccak(abi_encode(["uint256", "uint256"], [a, b])))
    assert H.hash_leaf(a, b) == int.from_bytes(
        reference_keccak(abi_encode(["uint256", "uint256", "uint256"], [a, b, 1]))
    )


def test_shapes_of_small_trees() -> None:
    tree = SparseMerkleTree()
    assert tree.root == 0 and len(tree) == 0 and tree.get(5) is None
    tree.insert(1, 10)
    leaf1 = H.hash_leaf(1, 10)
    assert tree.root == leaf1  # a lone leaf is the root
    tree.insert(3, 30)  # 1 = 0b01, 3 = 0b11: same bit 0, split at bit 1
    leaf3 = H.hash_leaf(3, 30)
    assert tree.root == H.hash_node(0, H.hash_node(leaf1, leaf3))
    tree.insert(0, 5)  # bit 0 is 0: the empty left child of the root
    assert tree.root == H.hash_node(H.hash_leaf(0, 5), H.hash_node(leaf1, leaf3))
    tree.delete(3)  # 1 moves up to the root's right child
    assert tree.root == H.hash_node(H.hash_leaf(0, 5), leaf1)
    tree.delete(0)
    assert tree.root == leaf1
    tree.delete(1)
    assert tree.root == 0 and len(tree) == 0


def test_regression_vector() -> None:
    tree, ref = SparseMerkleTree(), CircomlibjsSmt()
    for key in (0, 1, 2, 3, 8, 2**255, 2**256 - 1, 0xDEADBEEF):
        tree.insert(key, key // 3 + 1)
        ref.insert(key, key // 3 + 1)
    assert tree.root == ref.root == 0x6F9C8E9FA3253D5916624FC9C87556A3062204FF3C11F72B7F094310DA7D88CD


def test_circomlib_processor_example() -> None:
    """circomlib test/smtprocessor.js: insert 111->222, 333->444, delete both."""
    tree, ref = SparseMerkleTree(depth=10), CircomlibjsSmt()
    assert tree.insert(111, 222) == processor_inputs(ref.insert(111, 222), (1, 0), 111, 222)
    upd = tree.insert(333, 444)
    assert upd == processor_inputs(ref.insert(333, 444), (1, 0), 333, 444)
    # 111 = 0b1101111, 333 = 0b101001101: bits 0 agree, split at bit 1, no siblings above
    assert upd.siblings == () and not upd.is_old0 and (upd.old_key, upd.old_value) == (111, 222)
    assert tree.delete(111) == processor_inputs(ref.delete(111), (1, 1), 111, 0)
    assert tree.delete(333) == processor_inputs(ref.delete(333), (1, 1), 333, 0)
    assert tree.root == ref.root == 0


def test_errors_name_the_check() -> None:
    tree = SparseMerkleTree(depth=8)
    tree.insert(3, 1)
    with pytest.raises(SmtKeyError, match="already present") as exc:
        tree.insert(3, 2)
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, LayerlabError)
    with pytest.raises(SmtKeyError, match="absent"):
        tree.update(4, 1)
    with pytest.raises(SmtKeyError, match="absent"):
        tree.delete(4)
    with pytest.raises(ValueError, match=r"key 256 .*depth 8"):
        tree.insert(256, 1)
    with pytest.raises(ValueError, match="key -1"):
        tree.get(-1)
    with pytest.raises(ValueError, match="0 means absent"):
        tree.insert(4, 0)
    with pytest.raises(ValueError, match="0 means absent"):
        tree.update(3, 0)
    with pytest.raises(ValueError, match="depth 300"):
        SparseMerkleTree(depth=300)
    with pytest.raises(SmtKeyError, match="never a root"):
        tree.checkout(12345)
    assert tree.root == H.hash_leaf(3, 1) and len(tree) == 1  # failed calls changed nothing


def test_set_absent_to_zero_is_a_nop() -> None:
    tree = SparseMerkleTree()
    tree.insert(9, 1)
    root = tree.root
    upd = tree.set(10, 0)
    assert upd.fnc == (0, 0) and upd.old_root == upd.new_root == root == tree.root
    assert compute_root_after(tree.prove(10), 0) == root


def test_invalid_proof_refused_by_compute_root_after() -> None:
    tree = build({1: 1, 2: 2, 3: 3})
    proof = tree.prove(2)
    forged = dataclasses.replace(proof, value=99)
    assert not verify_smt_proof(forged)
    with pytest.raises(InvalidProof, match="expected"):
        validate_smt_proof(forged)
    with pytest.raises(InvalidProof, match=f"key {2:#x}"):
        compute_root_after(forged, 5)


def test_deep_paths() -> None:
    """Keys sharing 250 low bits: proofs of ~251 siblings, mostly zero, still verify."""
    keys = [(x << 250) | 0x123 for x in range(8)]
    tree = build({k: k + 1 for k in keys})
    for k in keys:
        proof = tree.prove(k)
        assert proof.found and len(proof.siblings) == 253 and verify_smt_proof(proof)
    absent = (9 << 250) | 0x123
    proof = tree.prove(absent)
    assert not proof.found and verify_smt_proof(proof)


# --- properties against the models --------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(histories())
def test_operations_match_circomlibjs(history: tuple[list[int], list[tuple[int, int]]]) -> None:
    _, ops = history
    tree, ref = SparseMerkleTree(), CircomlibjsSmt()
    for key, value in ops:
        present = tree.get(key) is not None
        if value == 0 and not present:
            continue
        got = tree.set(key, value)
        if value == 0:
            expected = processor_inputs(ref.delete(key), (1, 1), key, 0)
        elif present:
            expected = processor_inputs(ref.update(key, value), (0, 1), key, value)
        else:
            expected = processor_inputs(ref.insert(key, value), (1, 0), key, value)
        assert got == expected
        assert tree.root == ref.root


@settings(max_examples=150, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_root_is_a_function_of_the_contents(
    history: tuple[list[int], list[tuple[int, int]]], rng: random.Random
) -> None:
    _, ops = history
    tree, model = SparseMerkleTree(), {}
    for key, value in ops:
        if value == 0 and key not in model:
            continue
        tree.set(key, value)
        if value:
            model[key] = value
        else:
            del model[key]
        assert len(tree) == len(model)
    items = list(model.items())
    rng.shuffle(items)
    assert build(dict(items)).root == tree.root
    assert {k: tree.get(k) for k in model} == model


@settings(max_examples=150, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_proofs_verify_and_tampering_fails(
    history: tuple[list[int], list[tuple[int, int]]], rng: random.Random
) -> None:
    pool, ops = history
    tree, model = SparseMerkleTree(), {}
    for key, value in ops:
        if value == 0 and key not in model:
            continue
        tree.set(key, value)
        model.update({key: value}) if value else model.pop(key)
    for key, value in model.items():
        proof = tree.prove(key)
        assert proof.found and proof.value == value and verify_smt_proof(proof), key
        assert not verify_smt_proof(dataclasses.replace(proof, value=value + 1))
        assert not verify_smt_proof(dataclasses.replace(proof, found=False, value=0))
        if proof.siblings:
            i = rng.randrange(len(proof.siblings))
            bad = list(proof.siblings)
            bad[i] ^= 1 << rng.randrange(256)
            assert not verify_smt_proof(dataclasses.replace(proof, siblings=tuple(bad)))
            # a wrong deletion witness (claims a leaf is a node or the reverse) fails too
            assert not verify_smt_proof(dataclasses.replace(proof, is_old0=not proof.is_old0))
            assert not verify_smt_proof(dataclasses.replace(proof, not_found_value=proof.not_found_value ^ 1))
    for key in absent_probes(pool, model):
        proof = tree.prove(key)
        assert not proof.found and proof.value == 0 and verify_smt_proof(proof), key
        assert not verify_smt_proof(dataclasses.replace(proof, found=True, value=1))
        if not proof.is_old0:
            assert not verify_smt_proof(dataclasses.replace(proof, not_found_value=proof.not_found_value + 1))
            assert not verify_smt_proof(dataclasses.replace(proof, not_found_key=key))
        if proof.siblings:
            bad = list(proof.siblings)
            bad[-1] ^= 1
            assert not verify_smt_proof(dataclasses.replace(proof, siblings=tuple(bad)))
    other_root = SparseMerkleTree().root if model else build({1: 1}).root
    if model:
        proof = tree.prove(next(iter(model)))
        assert not verify_smt_proof(dataclasses.replace(proof, root=other_root))


@settings(max_examples=150, deadline=None)
@given(histories(), st.data())
def test_root_after_from_the_proof_alone(
    history: tuple[list[int], list[tuple[int, int]]], data: st.DataObject
) -> None:
    pool, ops = history
    tree, model = SparseMerkleTree(), {}
    for key, value in ops:
        if value == 0 and key not in model:
            continue
        tree.set(key, value)
        model.update({key: value}) if value else model.pop(key)
    before = tree.root
    for key in [*model, *absent_probes(pool, model)][:12]:
        for new_value in (0, 1, data.draw(VALUE)):
            proof = tree.prove(key)
            expected_kind = (
                (1, 1)
                if key in model and new_value == 0
                else (0, 1)
                if key in model
                else (1, 0)
                if new_value
                else (0, 0)
            )
            upd = tree.set(key, new_value)
            assert upd.fnc == expected_kind
            assert compute_root_after(proof, new_value) == tree.root == upd.new_root
            tree.checkout(before)
            assert tree.root == before
    assert {k: tree.get(k) for k in model} == model


@settings(max_examples=100, deadline=None)
@given(histories())
def test_checkout_restores_every_earlier_state(history: tuple[list[int], list[tuple[int, int]]]) -> None:
    pool, ops = history
    tree, model = SparseMerkleTree(), {}
    snapshots: list[tuple[int, dict[int, int]]] = [(tree.root, {})]
    for key, value in ops:
        if value == 0 and key not in model:
            continue
        tree.set(key, value)
        model.update({key: value}) if value else model.pop(key)
        snapshots.append((tree.root, dict(model)))
    for root, contents in reversed(snapshots):
        tree.checkout(root)
        assert len(tree) == len(contents)
        assert {k: tree.get(k) for k in pool if tree.get(k) is not None} == contents
    # writing after a rollback branches off the old state and leaves the later one intact
    last_root, last_contents = snapshots[-1]
    tree.checkout(snapshots[0][0])
    tree.set(pool[0], 7)
    tree.checkout(last_root)
    assert {k: tree.get(k) for k in pool if tree.get(k) is not None} == last_contents


def test_proof_is_frozen() -> None:
    proof = SparseMerkleTree().prove(1)
    assert proof == SmtProof(0, 1, False, 0, (), 0, 0, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        proof.root = 1  # type: ignore[misc]


def test_a_met_leaf_must_lie_on_the_key_path() -> None:
    """Roots no tree can have (a leaf off its own path) are refused even when they hash."""
    sibling = H.hash_leaf(8, 1)
    # key 2 = 0b10 goes left at bit 0; claim leaf 3 (bit 0 = 1) sits there
    root = H.hash_node(H.hash_leaf(3, 5), sibling)
    forged = SmtProof(root, 2, False, 0, (sibling,), 3, 5, False)
    assert not verify_smt_proof(forged)
    assert verify_smt_proof(
        dataclasses.replace(forged, not_found_key=4, root=H.hash_node(H.hash_leaf(4, 5), sibling))
    )
    # deletion witness: the sibling leaf of key 2 must differ from it exactly at the last level
    off_path = H.hash_leaf(4, 1)  # bit 0 of 4 is that of 2: not its sibling
    root = H.hash_node(H.hash_leaf(2, 9), off_path)
    forged = SmtProof(root, 2, True, 9, (off_path,), 4, 1, False)
    assert not verify_smt_proof(forged)
    on_path = H.hash_leaf(3, 1)
    good = SmtProof(H.hash_node(H.hash_leaf(2, 9), on_path), 2, True, 9, (on_path,), 3, 1, False)
    assert verify_smt_proof(good)


@settings(max_examples=100, deadline=None)
@given(histories(), st.data())
def test_prune_keeps_exactly_the_kept_roots(
    history: tuple[list[int], list[tuple[int, int]]], data: st.DataObject
) -> None:
    pool, ops = history
    tree, model = SparseMerkleTree(), {}
    snapshots: list[tuple[int, dict[int, int]]] = []
    for key, value in ops:
        if value == 0 and key not in model:
            continue
        tree.set(key, value)
        model.update({key: value}) if value else model.pop(key)
        snapshots.append((tree.root, dict(model)))
    kept = data.draw(st.lists(st.sampled_from(snapshots), max_size=3)) if snapshots else []
    kept_roots = {root for root, _ in kept}
    tree.prune(root for root, _ in kept)
    assert tree.prune(kept_roots) == 0  # nothing left to remove
    for root, contents in [*kept, (tree.root, model)]:
        tree.checkout(root)
        assert len(tree) == len(contents)
        for key in pool:
            assert tree.get(key) == contents.get(key)
            assert verify_smt_proof(tree.prove(key))
    dropped = {root for root, _ in snapshots} - kept_roots - {tree.root, 0}
    for root in dropped:
        with pytest.raises(SmtKeyError, match="never a root"):
            tree.checkout(root)
    tree.checkout(next(iter(kept_roots), tree.root))
    for key in pool:  # writes still work on a pruned tree
        tree.set(key, 11)
    assert tree.root == build(dict.fromkeys(pool, 11)).root


def test_prune_frees_the_history() -> None:
    tree = SparseMerkleTree()
    for i in range(200):
        tree.set(i % 50, i + 1)
    removed = tree.prune()
    assert removed > 1000
    assert tree.root == build({k: 151 + k for k in range(50)}).root
    with pytest.raises(SmtKeyError, match="prune: root"):
        tree.prune([123])
