"""Python's Poseidon, EdDSA-Poseidon and Poseidon sparse Merkle roots equal circomlibjs's.

The reference is circomlibjs 0.1.7 itself, run by ``node`` on the same inputs
(``circomlibjs_ref.mjs`` beside this file); a mismatch in any constant, the BLAKE-512
key derivation or the tree's shape shows up as a different number.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from layerlab.crypto.babyjubjub import (
    BASE8,
    SUB_ORDER,
    EdDSASignature,
    blake512,
    is_on_curve,
    prv2pub,
    sign_poseidon,
    verify_poseidon,
)
from layerlab.crypto.poseidon import POSEIDON_HASHER, SNARK_FIELD, poseidon
from layerlab.primitives.smt import SparseMerkleTree

HERE = Path(__file__).parent
RNG = random.Random(12)


def run_circomlibjs(request: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is needed for the circomlibjs reference (npm ci installs circomlibjs)"
    proc = subprocess.run([node, str(HERE / "circomlibjs_ref.mjs")], input=json.dumps(request),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


POSEIDON_INPUTS = [[1], [1, 2], [0, 0], [SNARK_FIELD - 1, 5, 7], [1, 2, 3, 4],
                   [RNG.randrange(SNARK_FIELD) for _ in range(5)],
                   [RNG.randrange(SNARK_FIELD) for _ in range(6)]]
SIGN = [(bytes(range(32)), 0), (bytes(32), 1234),
        *[(RNG.randbytes(32), RNG.randrange(SNARK_FIELD)) for _ in range(3)]]


def smt_ops() -> list[tuple[str, int, int]]:
    ops: list[tuple[str, int, int]] = []
    keys = RNG.sample(range(256), 12)
    for key in keys:
        ops.append(("insert", key, RNG.randrange(1, SNARK_FIELD)))
    for key in keys[:4]:
        ops.append(("update", key, RNG.randrange(1, SNARK_FIELD)))
    for key in keys[4:9]:
        ops.append(("delete", key, 0))
    ops.append(("insert", keys[5], 99))
    return ops


SMT_OPS = smt_ops()


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return run_circomlibjs({
        "poseidon": [[str(x) for x in inputs] for inputs in POSEIDON_INPUTS],
        "sign": [{"prv": prv.hex(), "msg": str(msg)} for prv, msg in SIGN],
        "smt": [[op, str(k), str(v)] for op, k, v in SMT_OPS],
    })


def test_poseidon_equals_circomlibjs(reference: dict[str, Any]) -> None:
    assert [str(poseidon(inputs)) for inputs in POSEIDON_INPUTS] == reference["poseidon"]


def test_eddsa_poseidon_equals_circomlibjs(reference: dict[str, Any]) -> None:
    for (prv, msg), ref in zip(SIGN, reference["keys"], strict=True):
        pub = prv2pub(prv)
        sig = sign_poseidon(prv, msg)
        assert [str(pub[0]), str(pub[1])] == ref["A"]
        assert [str(sig.r8[0]), str(sig.r8[1]), str(sig.s)] == [*ref["R8"], ref["S"]]
        assert ref["ok"] is True
        assert verify_poseidon(msg, sig, pub)


def test_poseidon_smt_roots_equal_circomlibjs(reference: dict[str, Any]) -> None:
    tree = SparseMerkleTree(POSEIDON_HASHER, depth=8)
    roots = []
    for op, key, value in SMT_OPS:
        if op == "insert":
            tree.insert(key, value)
        elif op == "update":
            tree.update(key, value)
        else:
            tree.delete(key)
        roots.append(str(tree.root))
    assert roots == reference["smt"]


def test_a_signature_verifies_only_for_its_message_and_key() -> None:
    prv = bytes(range(32))
    pub = prv2pub(prv)
    sig = sign_poseidon(prv, 42)
    assert is_on_curve(pub) and is_on_curve(sig.r8)
    assert verify_poseidon(42, sig, pub)
    assert not verify_poseidon(43, sig, pub)
    assert not verify_poseidon(42, sig, prv2pub(bytes(32)))
    assert not verify_poseidon(42, EdDSASignature(sig.r8, (sig.s + 1) % SUB_ORDER), pub)
    # S and S + SUB_ORDER are the same point multiple: the range check is what refuses it
    assert not verify_poseidon(42, EdDSASignature(sig.r8, sig.s + SUB_ORDER), pub)
    assert not verify_poseidon(42, EdDSASignature(BASE8, sig.s), pub)


def test_blake512_known_answers() -> None:
    # From the BLAKE submission (v1.3, appendix): one zero byte, and 144 zero bytes.
    assert blake512(b"\0").hex().startswith("97961587f6d970fa")
    assert blake512(bytes(144)).hex().startswith("313717d608e9cf75")


def test_poseidon_refuses_non_field_inputs() -> None:
    with pytest.raises(ValueError, match="field element"):
        poseidon([SNARK_FIELD])
    with pytest.raises(ValueError, match="inputs"):
        poseidon([])
