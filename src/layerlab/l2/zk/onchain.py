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
from layerlab.l2.zk.state import GWEI, BatchWitness, QueuedDeposit, ZkState

__all__ = ["DEFAULT_ESCAPE_BLOCKS", "ZkRollupContract", "ZkRollupTxError", "compile_verifier",
           "compile_verifier_for", "deploy_zk_rollup", "poseidon_artifacts"]

SUBMIT_BASE_GAS = 450_000
"""submitBatch's bound before data and items: 21k + the Groth16 check (~194k) + SHA-256 +
root and counter writes (measured: 312-327k for a batch of 2 transfers, a deposit and a
withdrawal)."""
SUBMIT_GAS_PER_ITEM = 40_000
"""Per transfer, deposit or withdrawal slot of the circuit (a withdrawal pays out; measured
well under this)."""


ESCAPE_BASE_GAS = 120_000
ESCAPE_GAS_PER_HASH = 60_000
"""A bound on circomlibjs's Poseidon contracts (~30-50k gas a hash, zk-costs.md)."""


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


DEFAULT_ESCAPE_BLOCKS = 1000
"""Blocks without a batch after which anyone may freeze the rollup (the escape hatch)."""


def poseidon_artifacts(root: Path | None = None) -> dict[int, ContractArtifact]:
    """circomlibjs's generated Poseidon contracts for 2, 3 and 4 inputs (what the escape
    hatch hashes a Merkle path with), made once by ``scripts/poseidon_contracts.mjs`` and
    cached in ``build/zk/poseidon.json``."""
    root = (root or get_project_root()).resolve()
    cached = root / "build" / "zk" / "poseidon.json"
    if not cached.is_file():
        node = shutil.which("node")
        if node is None:
            raise ContractCompileError("Node.js (`node`) is needed for circomlibjs's Poseidon "
                                       "contracts")
        proc = subprocess.run([node, str(root / "scripts" / "poseidon_contracts.mjs"), "2", "3",
                               "4"], capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise ContractCompileError(f"circomlibjs's Poseidon contracts: {proc.stderr.strip()}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(proc.stdout)
    data = json.loads(cached.read_text())
    return {int(n): ContractArtifact(name=f"Poseidon{n}", abi=tuple(v["abi"]),
                                     bytecode=bytes.fromhex(v["bytecode"].removeprefix("0x")),
                                     deployed_bytecode=b"", source_name="circomlibjs")
            for n, v in data.items()}


def deploy_zk_rollup(w3: Web3, deployer: str, operator: str, build: CircuitBuild,
                     genesis_root: int = 0,
                     escape_blocks: int = DEFAULT_ESCAPE_BLOCKS) -> ZkRollupContract:
    """Deploy the build's verifier, circomlibjs's Poseidon contracts and a ``ZkRollup``
    using them, from ``deployer``."""
    verifier = deploy(w3, compile_verifier(build), sender=deployer)
    hashers = [deploy(w3, artifact, sender=deployer).address
               for _, artifact in sorted(poseidon_artifacts().items())]
    shape = build.shape
    contract = deploy(w3, load_artifact("ZkRollup"), verifier.address, operator, genesis_root,
                      shape.n_transfers, shape.n_deposits, shape.n_withdrawals, shape.depth,
                      escape_blocks, *hashers, sender=deployer)
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

    def freeze(self, key: bytes) -> TxReceipt:
        return self.l1.transact(key, "ZkRollup.freeze", self.fn.freeze())

    def escape(self, key: bytes, state: ZkState, index: int) -> TxReceipt:
        """Claim account ``index``'s balance in ``state`` (the last verified root) on its
        Merkle proof; paid to the L1 address that first deposited to its key."""
        account = state.get_account(index)
        siblings = list(state.tree.prove(index).siblings)
        fn: Any = self.fn.escape(index, account.ax, account.ay, account.balance, account.nonce,
                                 siblings)
        return self.l1.transact(key, "ZkRollup.escape", fn, gas=ESCAPE_BASE_GAS
                                + ESCAPE_GAS_PER_HASH * (len(siblings) + 2))

    def refund_deposit(self, key: bytes, deposit_id: int) -> TxReceipt:
        return self.l1.transact(key, "ZkRollup.refundDeposit", self.fn.refundDeposit(deposit_id))

    @staticmethod
    def wei(gwei: int) -> int:
        return gwei * GWEI
