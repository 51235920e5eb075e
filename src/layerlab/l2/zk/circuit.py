"""Build the batch circuit and its devnet Groth16 key, cached by source hash.

``circuits/zk_rollup.circom`` is instantiated as ``ZkRollupBatch(N, M, W, D)``
(:class:`~layerlab.l2.zk.state.BatchShape`), compiled with npm ``circom2`` (circom 2.2 in
WASM) with ``--O2`` into ``build/zk/<key>/`` (``main.r1cs``, ``main_js/main.wasm``), where
``<key>`` hashes the circuit source, the shape, and the circom2 and circomlib versions; a
second build of the same key reuses the files. The Groth16 key is a **devnet key**:
groth16py's single-party setup straight from the ``.r1cs`` (no powers of tau), whose
toxic waste the machine that made it knows, so anyone holding the build directory can
forge proofs. It is for tests and devnets only; a production key comes from a snarkjs
ceremony (``groth16py.import_zkey``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import groth16py

from layerlab.contracts import get_project_root
from layerlab.errors import LayerlabError
from layerlab.l2.zk.state import BatchShape

__all__ = ["CircuitBuild", "ZkBuildError", "build_circuit", "compile_circom"]

logger = logging.getLogger(__name__)

COMPILE_TIMEOUT_SECONDS: Final = 1800.0
_SOURCE: Final = "circuits/zk_rollup.circom"
_CONSTRAINTS_RE: Final = re.compile(r"(non-linear|linear) constraints: (\d+)")


class ZkBuildError(LayerlabError):
    """The circuit did not compile, or its key could not be made."""


@dataclass(frozen=True, slots=True)
class CircuitBuild:
    shape: BatchShape
    directory: Path
    constraints: int
    compile_seconds: float
    setup_seconds: float
    key_label: str
    """``"devnet (single-party groth16py setup)"``: never a key for value."""

    @property
    def r1cs(self) -> Path:
        return self.directory / "main.r1cs"

    @property
    def wasm(self) -> Path:
        return self.directory / "main_js" / "main.wasm"

    @property
    def witness_script(self) -> Path:
        return self.directory / "main_js" / "generate_witness.js"

    @property
    def proving_key_path(self) -> Path:
        return self.directory / "devnet.pk"

    @property
    def vk_json(self) -> str:
        return (self.directory / "vk.json").read_text()


def _package_version(root: Path, name: str) -> str:
    path = root / "node_modules" / name / "package.json"
    try:
        return str(json.loads(path.read_text())["version"])
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise ZkBuildError(f"npm package {name} is not installed under {root}: run `npm ci`") from exc


def compute_build_key(shape: BatchShape, root: Path) -> str:
    material = {
        "source": hashlib.sha256((root / _SOURCE).read_bytes()).hexdigest(),
        "main": _main_source(shape),
        "circom2": _package_version(root, "circom2"),
        "circomlib": _package_version(root, "circomlib"),
        "groth16py": groth16py.__version__,
        "flags": "--O2",
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]


def _main_source(shape: BatchShape) -> str:
    return ('pragma circom 2.1.0;\ninclude "zk_rollup.circom";\n'
            f"component main = ZkRollupBatch({shape.n_transfers}, {shape.n_deposits}, "
            f"{shape.n_withdrawals}, {shape.depth});\n")


@contextmanager
def _lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_circuit(shape: BatchShape, root: Path | None = None) -> CircuitBuild:
    """Compile ``shape``'s circuit and make its devnet key, or load both from the cache."""
    root = (root or get_project_root()).resolve()
    key = compute_build_key(shape, root)
    directory = root / "build" / "zk" / key
    info_path = directory / "info.json"
    with _lock(directory):
        if info_path.is_file():
            info: dict[str, Any] = json.loads(info_path.read_text())
        else:
            info = _compile(shape, root, directory)
            info.update(_setup(directory))
            info_path.write_text(json.dumps(info, indent=2) + "\n")
    return CircuitBuild(shape, directory, int(info["constraints"]), float(info["compile_seconds"]),
                        float(info["setup_seconds"]), str(info["key_label"]))


def _compile(shape: BatchShape, root: Path, directory: Path) -> dict[str, Any]:
    constraints, seconds = compile_circom(_main_source(shape), directory, root, str(shape))
    return {"shape": [shape.n_transfers, shape.n_deposits, shape.n_withdrawals, shape.depth],
            "constraints": constraints, "compile_seconds": round(seconds, 2)}


def compile_circom(main_source: str, directory: Path, root: Path | None = None,
                   what: str = "circuit") -> tuple[int, float]:
    """Compile ``main_source`` (it may include ``circuits/`` and ``circomlib/...``) with
    circom2 ``--O2`` into ``directory`` (under ``root``): ``main.r1cs`` and
    ``main_js/main.wasm``. Returns the constraint count and the seconds it took."""
    root = (root or get_project_root()).resolve()
    directory = directory.resolve()
    node = shutil.which("node")
    if node is None:
        raise ZkBuildError("Node.js (`node`) is not on PATH; install Node 20 and run `npm ci`")
    _package_version(root, "circomlib")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.circom").write_text(main_source)
    # circom2's WASI sandbox only sees the working directory and its parents (relative
    # paths), and cannot follow a symlinked node_modules (a git worktree's): circomlib's
    # circuits (3 MB) are copied beside the build and included from there.
    rel = directory.relative_to(root)
    lib = directory / "lib"
    shutil.rmtree(lib, ignore_errors=True)
    shutil.copytree(root / "node_modules" / "circomlib" / "circuits", lib / "circomlib" / "circuits")
    command = [node, "node_modules/circom2/cli.js", str(rel / "main.circom"), "--r1cs", "--wasm",
               "--O2", "-l", "circuits", "-l", str(rel / "lib"), "-o", str(rel)]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True,
                          timeout=COMPILE_TIMEOUT_SECONDS, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not (directory / "main.r1cs").is_file():
        raise ZkBuildError(f"circom2 failed on {what} (exit {proc.returncode}): "
                           f"{(proc.stdout + proc.stderr)[-2000:]}")
    counts = dict(_CONSTRAINTS_RE.findall(proc.stdout))
    constraints = int(counts.get("non-linear", 0)) + int(counts.get("linear", 0))
    logger.info("compiled %s: %d constraints in %.1f s", what, constraints, seconds)
    return constraints, seconds


def _setup(directory: Path) -> dict[str, Any]:
    start = time.perf_counter()
    pk, vk = groth16py.setup(str(directory / "main.r1cs"))
    seconds = time.perf_counter() - start
    pk.save(str(directory / "devnet.pk"))
    (directory / "vk.json").write_text(vk.to_json())
    logger.info("devnet Groth16 setup of %s in %.1f s", directory.name, seconds)
    return {"setup_seconds": round(seconds, 2), "key_label": "devnet (single-party groth16py setup)"}
