"""Prove and verify a batch: circom's wasm computes the witness, groth16py proves.

The witness comes from the circuit's own ``generate_witness.js`` (circom's WASM witness
calculator under ``node``, 0.5-2 s), the proof from ``groth16py.prove_wtns`` (arkworks,
about 2x snarkjs's speed, zk-costs.md). The proof is Groth16 over BN254 with one public
input, the batch's :func:`~layerlab.l2.zk.state.compute_public_hash`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import groth16py

from layerlab.errors import InvalidProof
from layerlab.l2.zk.circuit import CircuitBuild
from layerlab.l2.zk.state import BatchWitness

__all__ = ["ZkProof", "ZkProver", "compute_wtns", "decode_proof"]

WITNESS_TIMEOUT_SECONDS: Final = 600.0


@dataclass(frozen=True, slots=True)
class ZkProof:
    proof: bytes
    """The 256-byte Ethereum encoding (a, b, c as eight uint256 words)."""
    public_hash: int
    witness_seconds: float
    prove_seconds: float


def decode_proof(proof: bytes) -> tuple[list[int], list[list[int]], list[int]]:
    """``(pA, pB, pC)`` as snarkjs's Solidity verifier takes them."""
    if len(proof) != 256:
        raise InvalidProof(f"a Groth16 proof is 256 bytes, got {len(proof)}")
    w = [int.from_bytes(proof[i:i + 32]) for i in range(0, 256, 32)]
    return [w[0], w[1]], [[w[2], w[3]], [w[4], w[5]]], [w[6], w[7]]


def compute_wtns(witness_script: Path, wasm: Path, inputs: dict[str, Any], wtns: Path) -> None:
    """Run circom's ``generate_witness.js`` on ``inputs`` (signal name -> decimal strings)
    into ``wtns``; raises :class:`InvalidProof` when the circuit's constraints fail."""
    node = shutil.which("node")
    if node is None:
        raise InvalidProof("Node.js (`node`) is needed for circom's witness calculator")
    inputs_path = wtns.with_suffix(".json")
    inputs_path.write_text(json.dumps(inputs))
    proc = subprocess.run([node, str(witness_script), str(wasm), str(inputs_path), str(wtns)],
                          capture_output=True, text=True, timeout=WITNESS_TIMEOUT_SECONDS,
                          check=False)
    if proc.returncode != 0 or not wtns.is_file():
        raise InvalidProof(f"the circuit refuses the batch's witness: "
                           f"{(proc.stdout + proc.stderr).strip()[-800:]}")


class ZkProver:
    """Proves batches of one :class:`CircuitBuild` with its devnet key."""

    def __init__(self, build: CircuitBuild) -> None:
        self.build = build
        self._pk = groth16py.ProvingKey.load(str(build.proving_key_path))
        self._verifier = groth16py.Verifier(groth16py.VerifyingKey.from_snarkjs(build.vk_json))

    def compute_witness(self, witness: BatchWitness, wtns: Path) -> None:
        """Write circom's ``.wtns`` for ``witness.inputs``; raises :class:`InvalidProof` when
        the circuit's constraints fail (a step it cannot prove)."""
        compute_wtns(self.build.witness_script, self.build.wasm, witness.inputs, wtns)

    def prove(self, witness: BatchWitness) -> ZkProof:
        with tempfile.TemporaryDirectory(prefix="zkwtns-") as tmp:
            wtns = Path(tmp) / "batch.wtns"
            start = time.perf_counter()
            self.compute_witness(witness, wtns)
            mid = time.perf_counter()
            proof = groth16py.prove_wtns(self._pk, str(wtns))
            end = time.perf_counter()
        return ZkProof(bytes(proof), witness.public_hash, mid - start, end - mid)

    def verify(self, proof: bytes, public_hash: int) -> bool:
        return bool(self._verifier.verify(proof, [public_hash]))
