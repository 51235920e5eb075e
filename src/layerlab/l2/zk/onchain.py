"""The ZK rollup on L1: snarkjs's verifier for the build's key, ``ZkRollup.sol``, a client.

The verifier's source is snarkjs's own Groth16 template (``verifier_groth16.sol.ejs``,
194k gas to verify one public input, zk-costs.md) rendered from the build's ``vk.json`` by
``scripts/zk_verifier.mjs`` into ``build/zk/<key>/ZkVerifier.sol`` and compiled there
with the project's solc: the key is made per machine, so its verifier is not committed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from layerlab.contracts import (
    ContractArtifact,
    compile_sources,
    deploy,
    get_project_root,
    load_artifact,
)
from layerlab.errors import ContractCompileError
from layerlab.l2.l1client import L1Contract, L1TxError
from layerlab.l2.zk.circuit import CircuitBuild
from layerlab.l2.zk.prover import decode_proof
from layerlab.l2.zk.state import GWEI, BatchWitness, QueuedDeposit

__all__ = ["ZkRollupContract", "ZkRollupTxError", "compile_verifier", "compile_verifier_for",
           "deploy_zk_rollup"]

SUBMIT_BASE_GAS = 450_000
"""submitBatch's bound before data and items: 21k + the Groth16 check (~194k) + SHA-256 +
root and counter writes (measured: 312-327k for a batch of 2 transfers, a deposit and a
withdrawal)."""
SUBMIT_GAS_PER_ITEM = 40_000
"""Per transfer, deposit or withdrawal slot of the circuit (a withdrawal pays out; measured
well under this)."""


class ZkRollupTxError(L1TxError):
    """A ``ZkRollup`` call or transaction was refused (its custom error by name)."""


def compile_verifier(build: CircuitBuild, root: Path | None = None) -> ContractArtifact:
    """snarkjs's verifier for ``build``'s key, rendered and compiled once per build."""
    return compile_verifier_for(build.directory / "vk.json", build.directory, root)


def compile_verifier_for(vk_json: Path, directory: Path,
                         root: Path | None = None) -> ContractArtifact:
    """snarkjs's verifier for the verification key ``vk_json`` (snarkjs's JSON shape, from
    groth16py or ``snarkjs zkey export verificationkey``), rendered into ``directory`` as
    ``ZkVerifier.sol`` and compiled; cached there as ``ZkVerifier.json``."""
    root = (root or get_project_root()).resolve()
    cached = directory / "ZkVerifier.json"
    if cached.is_file():
        data = json.loads(cached.read_text())
        return ContractArtifact(name=data["name"], abi=tuple(data["abi"]),
                                bytecode=bytes.fromhex(data["bytecode"]),
                                deployed_bytecode=bytes.fromhex(data["deployedBytecode"]),
                                source_name="ZkVerifier.sol")
    node = shutil.which("node")
    if node is None:
        raise ContractCompileError("Node.js (`node`) is needed to render snarkjs's verifier")
    source = directory / "ZkVerifier.sol"
    proc = subprocess.run([node, str(root / "scripts" / "zk_verifier.mjs"), str(vk_json),
                           str(source)], capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise ContractCompileError(f"rendering snarkjs's verifier failed: {proc.stderr.strip()}")
    sources = {"ZkVerifier.sol": source.read_text()}
    artifact = compile_sources(sources, root)["Groth16Verifier"]
    cached.write_text(json.dumps({
        "name": artifact.name, "abi": list(artifact.abi), "bytecode": artifact.bytecode.hex(),
        "deployedBytecode": artifact.deployed_bytecode.hex()}))
    return artifact


@dataclass(frozen=True, slots=True)
class BatchReceipt:
    gas_used: int
    calldata_bytes: int
    receipt: TxReceipt


def deploy_zk_rollup(w3: Web3, deployer: str, operator: str, build: CircuitBuild,
                     genesis_root: int = 0) -> ZkRollupContract:
    """Deploy the build's verifier and a ``ZkRollup`` using it, from ``deployer``."""
    verifier = deploy(w3, compile_verifier(build), sender=deployer)
    shape = build.shape
    contract = deploy(w3, load_artifact("ZkRollup"), verifier.address, operator, genesis_root,
                      shape.n_transfers, shape.n_deposits, shape.n_withdrawals, shape.depth,
                      sender=deployer)
    return ZkRollupContract(w3, contract)


class ZkRollupContract:
    """``ZkRollup`` through :class:`L1Contract`."""

    def __init__(self, w3: Web3, contract: Contract) -> None:
        self.l1 = L1Contract(w3, contract, name="ZkRollup", error=ZkRollupTxError)
        self.fn = contract.functions
        self._items = sum(int(self.l1.call(name)) for name in
                          ("nTransfers", "nDeposits", "nWithdrawals"))

    def state_root(self) -> int:
        return int(self.l1.call("stateRoot"))

    def pending_deposits(self) -> list[QueuedDeposit]:
        """The queue from ``nextDeposit`` on, in order (the next batch must take the first M)."""
        start, end = int(self.l1.call("nextDeposit")), int(self.l1.call("depositCount"))
        return [QueuedDeposit(*(int(x) for x in self.l1.call("deposits", i)))
                for i in range(start, end)]

    def deposit(self, key: bytes, ax: int, ay: int, amount_wei: int) -> TxReceipt:
        return self.l1.transact(key, "ZkRollup.deposit", self.fn.deposit(ax, ay), value=amount_wei)

    def submit_batch(self, key: bytes, new_root: int, data: bytes, proof: bytes) -> BatchReceipt:
        words = [w for part in decode_proof(proof) for w in
                 (part if isinstance(part[0], int) else [x for pair in part for x in pair])]
        fn: Any = self.fn.submitBatch(new_root, data, words)
        # a bound, not an estimate: eth_estimateGas re-runs the pairing check once per step
        # of its search, and on a node whose BN254 precompiles are pure Python (py-evm's
        # py_ecc, ~1 s a pairing) that is most of a minute
        gas = SUBMIT_BASE_GAS + 16 * len(data) + SUBMIT_GAS_PER_ITEM * self._items
        receipt = self.l1.transact(key, "ZkRollup.submitBatch", fn, gas=gas)
        return BatchReceipt(int(receipt["gasUsed"]), len(data), receipt)

    def submit(self, key: bytes, witness: BatchWitness, proof: bytes) -> BatchReceipt:
        return self.submit_batch(key, witness.new_root, witness.data, proof)

    @staticmethod
    def wei(gwei: int) -> int:
        return gwei * GWEI
