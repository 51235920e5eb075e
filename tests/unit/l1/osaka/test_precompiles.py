"""MODEXP (EIP-7823, EIP-7883) and P256VERIFY (EIP-7951) against go-ethereum's vectors.

``data/modexp_eip7883.json`` and ``data/p256Verify.json`` are go-ethereum's
core/vm/testdata/precompiles files (commit 02b73d4e): input, expected output and the
gas each call requires under Osaka. The P-256 cases are Wycheproof's
``ecdsa_secp256r1_sha256_p1363_test.json`` as the EIP-7951 test vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth._utils.address import force_bytes_to_address
from eth.vm.forks.prague import PragueVM

from layerlab.l1.chain.osaka import MODEXP_MAX_INPUT_LENGTH, P256VERIFY_ADDRESS, OsakaVM

from .chainutil import run_precompile

DATA = Path(__file__).parent / "data"
MODEXP = force_bytes_to_address(b"\x05")
MODEXP_VECTORS = json.loads((DATA / "modexp_eip7883.json").read_text())
P256_VECTORS = json.loads((DATA / "p256Verify.json").read_text())


@pytest.mark.parametrize("case", MODEXP_VECTORS, ids=[c["Name"] for c in MODEXP_VECTORS])
def test_modexp_gas_and_output_follow_eip7883(case: dict[str, object]) -> None:
    data = bytes.fromhex(str(case["Input"]))
    gas = int(str(case["Gas"]))
    done = run_precompile(OsakaVM, MODEXP, data, gas=gas)
    assert done.is_success
    assert done.get_gas_used() == gas
    assert done.output.hex() == case["Expected"]
    short = run_precompile(OsakaVM, MODEXP, data, gas=gas - 1)
    assert short.is_error


def test_modexp_costs_less_in_prague_for_the_same_input() -> None:
    case = next(c for c in MODEXP_VECTORS if c["Name"] == "nagydani-1-square")
    done = run_precompile(PragueVM, MODEXP, bytes.fromhex(case["Input"]), gas=10**6)
    assert done.is_success and done.get_gas_used() < case["Gas"]


def _modexp_input(base_length: int, exponent_length: int, modulus_length: int) -> bytes:
    head = b"".join(n.to_bytes(32, "big") for n in (base_length, exponent_length, modulus_length))
    return head + b"\x02" * base_length + b"\x03" * exponent_length + b"\x05" * modulus_length


@pytest.mark.parametrize("lengths", [(1025, 1, 1), (1, 1025, 1), (1, 1, 1025), (2**255, 1, 1)])
def test_modexp_over_1024_bytes_fails_and_burns_all_gas(lengths: tuple[int, int, int]) -> None:
    if max(lengths) <= 1025:
        data = _modexp_input(*lengths)
    else:
        data = b"".join(n.to_bytes(32, "big") for n in lengths)
    done = run_precompile(OsakaVM, MODEXP, data, gas=10**7)
    assert done.is_error
    assert done.get_gas_used() == 10**7


def test_modexp_at_exactly_1024_bytes_runs() -> None:
    n = MODEXP_MAX_INPUT_LENGTH
    data = _modexp_input(n, 1, n)
    done = run_precompile(OsakaVM, MODEXP, data, gas=10**7)
    assert done.is_success
    base = int.from_bytes(b"\x02" * n, "big")
    modulus = int.from_bytes(b"\x05" * n, "big")
    assert int.from_bytes(done.output, "big") == pow(base, 3, modulus)


@pytest.mark.parametrize("case", P256_VECTORS, ids=[str(i) for i in range(len(P256_VECTORS))])
def test_p256verify_wycheproof_vectors(case: dict[str, object]) -> None:
    done = run_precompile(OsakaVM, P256VERIFY_ADDRESS, bytes.fromhex(str(case["Input"])), gas=100_000)
    assert done.is_success
    assert done.get_gas_used() == case["Gas"] == 6900
    assert done.output.hex() == case["Expected"]


def test_p256verify_input_validation_returns_empty_and_charges_full_gas() -> None:
    valid = bytes.fromhex(str(next(c for c in P256_VECTORS if c["Expected"])["Input"]))
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    p = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
    bad = {
        "short": valid[:159],
        "long": valid + b"\x00",
        "r zero": valid[:32] + bytes(32) + valid[64:],
        "s equal n": valid[:64] + n.to_bytes(32, "big") + valid[96:],
        "qx >= p": valid[:96] + p.to_bytes(32, "big") + valid[128:],
        "infinity": valid[:96] + bytes(64),
        "off curve": valid[:159] + bytes([valid[159] ^ 1]),
        "other hash": bytes([valid[0] ^ 1]) + valid[1:],
    }
    for name, data in bad.items():
        done = run_precompile(OsakaVM, P256VERIFY_ADDRESS, data, gas=6900)
        assert done.is_success, name
        assert done.output == b"", name
        assert done.get_gas_used() == 6900, name
    assert run_precompile(OsakaVM, P256VERIFY_ADDRESS, valid, gas=6899).is_error


def test_p256verify_absent_before_osaka() -> None:
    valid = bytes.fromhex(str(next(c for c in P256_VECTORS if c["Expected"])["Input"]))
    done = run_precompile(PragueVM, P256VERIFY_ADDRESS, valid, gas=100_000)
    assert done.output == b"" and done.get_gas_used() == 0
