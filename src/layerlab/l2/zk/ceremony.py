"""The ceremony path: a snarkjs Groth16 key from a local powers of tau, proven with groth16py.

:func:`run_ceremony` runs snarkjs's own steps (``powersoftau new``, one ``contribute``,
``prepare phase2``, ``groth16 setup`` over the circuit's ``.r1cs``, one ``zkey
contribute``, ``zkey export verificationkey``); :func:`import_ceremony_key` hands the
``.zkey`` to ``groth16py.import_zkey``, whose proofs verify under the ceremony's key, as
:func:`snarkjs_verify` (snarkjs ``groth16 verify``) checks independently.

A ptau is costly (zk-costs.md: 1.2 min at 2^12, ~25 min at 2^16, ~2 h at 2^18), so a test
runs this on a small circuit only; the rollup's own batch circuit (142k constraints at its
test shape, 2^18) takes its key from a one-time offline ceremony, imported the same way.
Each contribution's entropy is the caller's: a single local contributor knows the toxic
waste, so a key made here is still for tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import groth16py

from layerlab.contracts import get_project_root
from layerlab.l2.zk.circuit import ZkBuildError

__all__ = ["CeremonyKey", "import_ceremony_key", "run_ceremony", "snarkjs_proof_json",
           "snarkjs_verify"]

STEP_TIMEOUT_SECONDS: Final = 1800.0


@dataclass(frozen=True, slots=True)
class CeremonyKey:
    zkey: Path
    vk_json: Path
    power: int
    seconds: dict[str, float]
    """Wall time of each snarkjs step."""


def _snarkjs(root: Path, *args: str) -> float:
    node = shutil.which("node")
    if node is None:
        raise ZkBuildError("Node.js (`node`) is needed to run snarkjs")
    start = time.perf_counter()
    proc = subprocess.run([node, str(root / "node_modules" / "snarkjs" / "build" / "cli.cjs"),
                           *args], capture_output=True, text=True, timeout=STEP_TIMEOUT_SECONDS,
                          check=False)
    if proc.returncode != 0:
        raise ZkBuildError(f"snarkjs {' '.join(args[:2])} failed (exit {proc.returncode}): "
                           f"{(proc.stdout + proc.stderr).strip()[-1500:]}")
    return time.perf_counter() - start


def run_ceremony(r1cs: Path, directory: Path, power: int, entropy: tuple[str, str],
                 root: Path | None = None) -> CeremonyKey:
    """A phase-1 of ``2^power`` and a phase-2 for ``r1cs``, one contribution each (with
    ``entropy[0]`` and ``entropy[1]``), in ``directory``."""
    root = (root or get_project_root()).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    seconds = {
        "powersoftau new": _snarkjs(root, "powersoftau", "new", "bn128", str(power),
                                    str(d / "pot_0000.ptau")),
        "powersoftau contribute": _snarkjs(root, "powersoftau", "contribute",
                                           str(d / "pot_0000.ptau"), str(d / "pot_0001.ptau"),
                                           "--name=layerlab phase 1", f"-e={entropy[0]}"),
        "prepare phase2": _snarkjs(root, "powersoftau", "prepare", "phase2",
                                   str(d / "pot_0001.ptau"), str(d / "pot_final.ptau")),
        "groth16 setup": _snarkjs(root, "groth16", "setup", str(r1cs), str(d / "pot_final.ptau"),
                                  str(d / "circuit_0000.zkey")),
        "zkey contribute": _snarkjs(root, "zkey", "contribute", str(d / "circuit_0000.zkey"),
                                    str(d / "circuit_final.zkey"), "--name=layerlab phase 2",
                                    f"-e={entropy[1]}"),
        "export verificationkey": _snarkjs(root, "zkey", "export", "verificationkey",
                                           str(d / "circuit_final.zkey"), str(d / "vk.json")),
    }
    return CeremonyKey(d / "circuit_final.zkey", d / "vk.json", power, seconds)


def import_ceremony_key(key: CeremonyKey) -> Any:
    """groth16py's proving key for the ceremony's ``.zkey`` (prove with ``prove_wtns``)."""
    imported = groth16py.import_zkey(str(key.zkey))
    return imported[0] if isinstance(imported, tuple) else imported


def snarkjs_proof_json(proof: bytes) -> dict[str, Any]:
    """The 256-byte Ethereum encoding as snarkjs's ``proof.json`` (G2 coordinates in
    (c0, c1) order there, (c1, c0) on Ethereum, EIP-197)."""
    if len(proof) != 256:
        raise ValueError(f"a Groth16 proof is 256 bytes, got {len(proof)}")
    w = [str(int.from_bytes(proof[i:i + 32])) for i in range(0, 256, 32)]
    return {"pi_a": [w[0], w[1], "1"], "pi_b": [[w[3], w[2]], [w[5], w[4]], ["1", "0"]],
            "pi_c": [w[6], w[7], "1"], "protocol": "groth16", "curve": "bn128"}


def snarkjs_verify(vk_json: Path, public: list[int], proof: bytes, directory: Path,
                   root: Path | None = None) -> bool:
    """snarkjs ``groth16 verify`` of ``proof`` for ``public`` under ``vk_json``."""
    root = (root or get_project_root()).resolve()
    node = shutil.which("node")
    if node is None:
        raise ZkBuildError("Node.js (`node`) is needed to run snarkjs")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "proof.json").write_text(json.dumps(snarkjs_proof_json(proof)))
    (directory / "public.json").write_text(json.dumps([str(x) for x in public]))
    proc = subprocess.run([node, str(root / "node_modules" / "snarkjs" / "build" / "cli.cjs"),
                           "groth16", "verify", str(vk_json), str(directory / "public.json"),
                           str(directory / "proof.json")], capture_output=True, text=True,
                          timeout=120, check=False)
    return proc.returncode == 0 and "OK" in proc.stdout
