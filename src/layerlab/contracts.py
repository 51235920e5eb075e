"""Compile the project's Solidity contracts into cached JSON artifacts, and deploy them.

Compilation
    Every ``contracts/**/*.sol`` is compiled in a single solc run through the pinned npm
    ``solc`` (solcjs), driven by ``scripts/solc_compile.js`` with solc's standard-JSON
    interface (https://docs.soliditylang.org/en/latest/using-the-compiler.html). Settings
    are fixed (:data:`SOLC_SETTINGS`: optimizer on with 200 runs, EVM version Cancun) so
    that every node, test and benchmark runs the same bytecode. Source unit names are paths
    relative to ``contracts/`` (``test/LabToken.sol``); imports of ``@openzeppelin/...``
    and other npm packages resolve from ``node_modules/``.

    Each contract defined under ``contracts/`` becomes ``build/contracts/<Name>.json`` with
    ``abi``, ``bytecode``, ``deployedBytecode`` (0x-hex), ``sourceName``, the SHA-256 of
    its source file (``sourceHash``) and the build's ``cacheKey``; the layout matches
    Hardhat's artifacts closely enough for ethers' ``ContractFactory``. The cache key is a
    SHA-256 over every source file, the compiler settings, the solc version and the
    versions of the npm packages the sources import; it is stored in
    ``build/contracts/.cache-key`` and, when it still matches, nothing is recompiled.
    A file lock serialises concurrent builds (parallel tests, several nodes).

Deployment
    :func:`deploy` and :func:`get_contract` work with any web3.py ``Web3`` connected to any
    EVM JSON-RPC endpoint (our devnet, Hardhat, Anvil, a testnet): deploy either signs
    locally with eth-account and sends ``eth_sendRawTransaction``, or asks the node to sign
    with ``eth_sendTransaction`` from an unlocked account.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from eth_account import Account
from eth_typing import ABI
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import Web3Exception

from layerlab.errors import ContractCompileError, LayerlabError

__all__ = [
    "SOLC_SETTINGS",
    "ArtifactNotFoundError",
    "ContractArtifact",
    "ContractCompileError",
    "ContractDeployError",
    "compile_all",
    "compile_sources",
    "deploy",
    "get_contract",
    "get_project_root",
    "load_artifact",
]

logger = logging.getLogger(__name__)

SOLC_SETTINGS: Final[Mapping[str, Any]] = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
}
"""Compiler settings of every build; part of the cache key."""

SOLC_TIMEOUT_SECONDS: Final = 600.0
"""Upper bound on one solc run (a cold build of the whole tree takes seconds)."""

DEPLOY_RECEIPT_TIMEOUT_SECONDS: Final = 120.0

_SCRIPT: Final = Path("scripts") / "solc_compile.js"
_BUILD_DIR: Final = Path("build") / "contracts"
_CACHE_KEY_FILE: Final = ".cache-key"
_NPM_HINT: Final = "run `npm ci` in the layerlab checkout (or `make deps`)"
_OUTPUTS: Final = (
    "abi",
    "evm.bytecode.object",
    "evm.bytecode.linkReferences",
    "evm.deployedBytecode.object",
)
_IMPORT_RE: Final = re.compile(r"""\bimport\s+(?:[^"';]*?\s+from\s+)?["']([^"']+)["']""")
_LOCATION_RE: Final = re.compile(r"-->\s*(?P<file>.+?):(?P<line>\d+):(?P<col>\d+):")


class ContractDeployError(LayerlabError):
    """A contract could not be deployed: the transaction failed, reverted or timed out."""


class ArtifactNotFoundError(LayerlabError):
    """No contract of the requested name is defined under ``contracts/``."""


@dataclass(frozen=True, slots=True)
class ContractArtifact:
    """One compiled contract: what a client needs to deploy it and talk to it.

    ``bytecode`` is the creation code (constructor arguments are appended at deploy time);
    ``deployed_bytecode`` is the runtime code that ends up at the contract's address. Both
    are empty for interfaces and abstract contracts. ``source_name`` is the solc source
    unit name, a path relative to ``contracts/``.
    """

    name: str
    abi: ABI
    bytecode: bytes
    deployed_bytecode: bytes
    source_name: str


@dataclass(frozen=True, slots=True)
class _Toolchain:
    node: str
    script: Path
    include_paths: tuple[Path, ...]
    solc_version: str


def get_project_root() -> Path:
    """Return the layerlab checkout: ``$LAYERLAB_ROOT``, else the nearest directory above
    this module or the working directory that holds ``scripts/solc_compile.js``."""
    env = os.environ.get("LAYERLAB_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    cwd = Path.cwd().resolve()
    for parent in (*here.parents, cwd, *cwd.parents):
        if (parent / _SCRIPT).is_file():
            return parent
    raise ContractCompileError(
        f"cannot find the layerlab checkout ({_SCRIPT} above {here} or {cwd}); set LAYERLAB_ROOT"
    )


def compile_all(root: Path | None = None, force: bool = False) -> dict[str, ContractArtifact]:
    """Compile every ``<root>/contracts/**/*.sol`` and return the artifacts by contract name.

    ``root`` defaults to :func:`get_project_root`. When the cache key in
    ``<root>/build/contracts/.cache-key`` matches the current sources, settings and
    compiler, the artifacts on disk are returned without running solc, unless ``force``.
    Raises :class:`ContractCompileError` on a compile error (naming file, line and solc's
    message) or when Node.js / the npm ``solc`` package is missing.
    """
    root = (root or get_project_root()).resolve()
    sources = _read_sources(root / "contracts")
    toolchain = _find_toolchain(root)
    key = _compute_cache_key(sources, toolchain)
    out_dir = root / _BUILD_DIR
    with _build_lock(out_dir):
        if not force and _read_cache_key(out_dir) == key:
            cached = _read_artifacts(out_dir, key)
            if cached or (cached is not None and not sources):
                return cached
        output = _run_solc(_make_standard_input(sources), toolchain, root) if sources else {}
        artifacts = _extract_artifacts(output, sources)
        _write_artifacts(out_dir, artifacts, sources, key, toolchain.solc_version)
    return {name: artifact for name, artifact in sorted(artifacts.items())}


def compile_sources(sources: Mapping[str, str], root: Path | None = None
                    ) -> dict[str, ContractArtifact]:
    """Compile Solidity sources given as ``{file name: text}`` (generated ones, such as a
    verifier rendered per key) with the project's solc and settings; uncached."""
    root = (root or get_project_root()).resolve()
    output = _run_solc(_make_standard_input(sources), _find_toolchain(root), root)
    return _extract_artifacts(output, sources)


def load_artifact(name: str, root: Path | None = None) -> ContractArtifact:
    """Return the artifact of contract ``name``, compiling first if it is missing or stale.

    Raises :class:`ArtifactNotFoundError` if no contract of that name exists.
    """
    root = (root or get_project_root()).resolve()
    out_dir = root / _BUILD_DIR
    key = _compute_cache_key(_read_sources(root / "contracts"), _find_toolchain(root))
    path = out_dir / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        data = {}
    if data.get("cacheKey") == key:
        return _artifact_from_json(data)
    artifacts = compile_all(root, force=_read_cache_key(out_dir) == key)
    if name not in artifacts:
        known = ", ".join(sorted(artifacts)) or "none"
        raise ArtifactNotFoundError(
            f"no contract named {name!r} under {root / 'contracts'} (known: {known})"
        )
    return artifacts[name]


def deploy(
    w3: Web3,
    artifact: ContractArtifact,
    *args: Any,
    sender: str,
    private_key: str | None = None,
    timeout: float = DEPLOY_RECEIPT_TIMEOUT_SECONDS,
) -> Contract:
    """Deploy ``artifact`` with constructor ``args`` and return the bound contract.

    With ``private_key`` the creation transaction is signed locally (eth-account; gas,
    fees and chain id come from the node) and sent with ``eth_sendRawTransaction``; the key
    must belong to ``sender``. Without it the node signs for ``sender`` through
    ``eth_sendTransaction``. Waits up to ``timeout`` seconds for the receipt and raises
    :class:`ContractDeployError` if the transaction fails, reverts or is not mined.
    """
    if not artifact.bytecode:
        raise ContractDeployError(
            f"cannot deploy {artifact.name}: it has no bytecode (interface or abstract contract)"
        )
    sender_address = Web3.to_checksum_address(sender)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    constructor = factory.constructor(*args)
    try:
        if private_key is None:
            tx_hash = constructor.transact({"from": sender_address})
        else:
            account = Account.from_key(private_key)
            if account.address != sender_address:
                raise ContractDeployError(
                    f"cannot deploy {artifact.name}: private key is for {account.address}, "
                    f"not sender {sender_address}"
                )
            tx = constructor.build_transaction(
                {
                    "from": sender_address,
                    "nonce": w3.eth.get_transaction_count(sender_address, "pending"),
                }
            )
            signed = account.sign_transaction(cast(dict[str, Any], tx))
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    except Web3Exception as exc:
        raise ContractDeployError(f"deploying {artifact.name} failed: {exc}") from exc
    address = receipt.get("contractAddress")
    if receipt["status"] != 1 or not address:
        raise ContractDeployError(
            f"deploying {artifact.name} failed: tx {tx_hash.to_0x_hex()} has status "
            f"{receipt['status']}, gas used {receipt['gasUsed']}"
        )
    return get_contract(w3, artifact, address)


def get_contract(w3: Web3, artifact: ContractArtifact, address: str) -> Contract:
    """Bind ``artifact``'s ABI to an already deployed contract at ``address``."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact.abi)


# -- compilation steps ----------------------------------------------------------------------


def _read_sources(contracts_dir: Path) -> dict[str, str]:
    """Map each source unit name (path relative to ``contracts_dir``) to its text."""
    if not contracts_dir.is_dir():
        raise ContractCompileError(f"no contracts directory at {contracts_dir}")
    return {
        path.relative_to(contracts_dir).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(contracts_dir.rglob("*.sol"))
        if path.is_file()
    }


def _find_toolchain(root: Path) -> _Toolchain:
    """Locate node, the compile script and ``node_modules`` (of ``root``, then of the
    layerlab checkout); raise with the ``npm ci`` hint if any is missing."""
    node = shutil.which("node")
    if node is None:
        raise ContractCompileError(
            f"Node.js (`node`) is not on PATH: install Node 20, then {_NPM_HINT}"
        )
    project = get_project_root()
    candidates = dict.fromkeys(p / "node_modules" for p in (root, project))
    include_paths = tuple(p for p in candidates if p.is_dir())
    for modules in include_paths:
        package_json = modules / "solc" / "package.json"
        if package_json.is_file():
            version = str(json.loads(package_json.read_text())["version"])
            return _Toolchain(node, project / _SCRIPT, include_paths, version)
    raise ContractCompileError(
        f"the npm package `solc` is not installed under {project}: {_NPM_HINT}"
    )


def _compute_cache_key(sources: Mapping[str, str], toolchain: _Toolchain) -> str:
    """SHA-256 over sources, settings, solc version and the imported npm packages' versions."""
    material = {
        "sources": {name: _sha256(text) for name, text in sources.items()},
        "settings": SOLC_SETTINGS,
        "outputs": _OUTPUTS,
        "solc": toolchain.solc_version,
        "packages": _imported_package_versions(sources, toolchain.include_paths),
    }
    return _sha256(json.dumps(material, sort_keys=True))


def _imported_package_versions(
    sources: Mapping[str, str], include_paths: tuple[Path, ...]
) -> dict[str, str]:
    versions: dict[str, str] = {}
    for text in sources.values():
        for target in _IMPORT_RE.findall(text):
            if target.startswith("."):
                continue
            parts = target.split("/")
            package = "/".join(parts[:2] if target.startswith("@") else parts[:1])
            for modules in include_paths:
                package_json = modules / package / "package.json"
                if package_json.is_file():
                    versions[package] = str(json.loads(package_json.read_text()).get("version"))
                    break
    return versions


def _make_standard_input(sources: Mapping[str, str]) -> dict[str, Any]:
    # Select outputs for our own units only: solc then skips code generation for the
    # library contracts they import, which roughly halves a cold build.
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            **SOLC_SETTINGS,
            "outputSelection": {name: {"*": list(_OUTPUTS)} for name in sources},
        },
    }


def _run_solc(standard_input: Mapping[str, Any], toolchain: _Toolchain, root: Path) -> Any:
    command = [toolchain.node, str(toolchain.script), "--base-path", str(root / "contracts")]
    for modules in toolchain.include_paths:
        command += ["--include-path", str(modules)]
    try:
        proc = subprocess.run(
            command,
            input=json.dumps(standard_input),
            capture_output=True,
            text=True,
            timeout=SOLC_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ContractCompileError(
            f"solc did not finish within {SOLC_TIMEOUT_SECONDS:.0f} s"
        ) from exc
    except OSError as exc:
        raise ContractCompileError(f"cannot run {toolchain.node}: {exc}; {_NPM_HINT}") from exc
    if proc.returncode != 0:
        hint = f"; {_NPM_HINT}" if proc.returncode == 2 else ""
        raise ContractCompileError(
            f"{_SCRIPT} exited with code {proc.returncode}: {proc.stderr.strip()}{hint}"
        )
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ContractCompileError(f"solc printed invalid JSON: {proc.stdout[:200]!r}") from exc


def _extract_artifacts(
    output: Mapping[str, Any], sources: Mapping[str, str]
) -> dict[str, ContractArtifact]:
    """Turn solc's standard-JSON output into artifacts, or raise on any error."""
    errors = []
    for diagnostic in output.get("errors", []):
        text = _describe_diagnostic(diagnostic, sources)
        if diagnostic.get("severity") == "error":
            errors.append(text)
        else:
            logger.warning("solc: %s", text)
    if errors:
        count = f"{len(errors)} error{'s' if len(errors) > 1 else ''}"
        raise ContractCompileError(f"solc found {count}:\n" + "\n".join(errors))

    artifacts: dict[str, ContractArtifact] = {}
    for source_name, contracts in output.get("contracts", {}).items():
        if source_name not in sources:
            continue
        for name, compiled in contracts.items():
            if name in artifacts:
                raise ContractCompileError(
                    f"contract name {name!r} is defined in both "
                    f"contracts/{artifacts[name].source_name} and contracts/{source_name}; "
                    "artifacts are stored by name, so rename one"
                )
            evm = compiled["evm"]
            if evm["bytecode"].get("linkReferences"):
                libraries = sorted(
                    lib for refs in evm["bytecode"]["linkReferences"].values() for lib in refs
                )
                raise ContractCompileError(
                    f"contracts/{source_name}: {name} needs linking to external libraries "
                    f"{libraries}; make their functions internal"
                )
            artifacts[name] = ContractArtifact(
                name=name,
                abi=tuple(compiled["abi"]),
                bytecode=bytes.fromhex(evm["bytecode"]["object"]),
                deployed_bytecode=bytes.fromhex(evm["deployedBytecode"]["object"]),
                source_name=source_name,
            )
    return artifacts


def _describe_diagnostic(diagnostic: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    """``contracts/x.sol:12:5: TypeError: message`` from one solc diagnostic."""
    kind = diagnostic.get("type", "Error")
    message = diagnostic.get("message", "").strip()
    location = diagnostic.get("sourceLocation") or {}
    unit = location.get("file")
    if not unit:
        return f"{kind}: {message}"
    shown = f"contracts/{unit}" if unit in sources else unit
    match = _LOCATION_RE.search(diagnostic.get("formattedMessage", ""))
    if match:
        return f"{shown}:{match['line']}:{match['col']}: {kind}: {message}"
    start = location.get("start", -1)
    if unit in sources and start >= 0:
        prefix = sources[unit].encode("utf-8")[:start]
        line = prefix.count(b"\n") + 1
        col = start - (prefix.rfind(b"\n") + 1) + 1
        return f"{shown}:{line}:{col}: {kind}: {message}"
    return f"{shown}: {kind}: {message}"


# -- build directory ------------------------------------------------------------------------


@contextmanager
def _build_lock(out_dir: Path) -> Iterator[None]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_cache_key(out_dir: Path) -> str | None:
    try:
        return (out_dir / _CACHE_KEY_FILE).read_text().strip()
    except FileNotFoundError:
        return None


def _read_artifacts(out_dir: Path, key: str) -> dict[str, ContractArtifact] | None:
    """Artifacts of build ``key`` from disk, or None if any is unreadable or stale.

    An empty result for a non-empty tree means the files were deleted: the caller rebuilds.
    """
    artifacts: dict[str, ContractArtifact] = {}
    for path in sorted(out_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if data.get("cacheKey") != key:
            return None
        artifacts[data["contractName"]] = _artifact_from_json(data)
    return artifacts


def _write_artifacts(
    out_dir: Path,
    artifacts: Mapping[str, ContractArtifact],
    sources: Mapping[str, str],
    key: str,
    solc_version: str,
) -> None:
    """Write one JSON per contract, drop artifacts of removed contracts, then the key."""
    (out_dir / _CACHE_KEY_FILE).unlink(missing_ok=True)
    for old in out_dir.glob("*.json"):
        if old.stem not in artifacts:
            old.unlink()
    for name, artifact in artifacts.items():
        data = {
            "contractName": name,
            "sourceName": artifact.source_name,
            "abi": list(artifact.abi),
            "bytecode": "0x" + artifact.bytecode.hex(),
            "deployedBytecode": "0x" + artifact.deployed_bytecode.hex(),
            "sourceHash": _sha256(sources[artifact.source_name]),
            "cacheKey": key,
            "compiler": {"name": "solc-js", "version": solc_version, "settings": SOLC_SETTINGS},
        }
        _write_atomically(out_dir / f"{name}.json", json.dumps(data, indent=2) + "\n")
    _write_atomically(out_dir / _CACHE_KEY_FILE, key + "\n")


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _artifact_from_json(data: Mapping[str, Any]) -> ContractArtifact:
    return ContractArtifact(
        name=data["contractName"],
        abi=tuple(data["abi"]),
        bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(data["deployedBytecode"].removeprefix("0x")),
        source_name=data["sourceName"],
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
