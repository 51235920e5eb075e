"""The ZK rollup on the comparison's workloads, measured on a real L1.

The circuit is the one the tests build (``BatchShape(2 transfers, 1 deposit, 1 withdrawal,
depth 8)``, compiled once and cached by source hash under ``build/zk/``) with its devnet
Groth16 key. Two users deposit on L1; then each workload's transfers, signed with
EdDSA-Poseidon outside the timing, are taken by the operator in batches of the circuit's
size: checked and applied to the Poseidon state (``build_batch``: the soft confirmation),
proven (circom's witness, groth16py's prover) and submitted to ``ZkRollup.submitBatch``,
which verifies the proof on L1: that receipt is the transactions' finality and, for a
withdrawal in the batch, its payment (no challenge window). L1 gas and calldata per
transaction are the batch receipts' divided by the batch's transfers.

Throughput here is proving-bound and sequential (one batch proven at a time on 2 cores);
a production prover pipelines batches and runs on many cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from web3 import Web3

from layerlab.crypto.babyjubjub import prv2pub
from layerlab.l2.zk.circuit import build_circuit
from layerlab.l2.zk.onchain import deploy_zk_rollup
from layerlab.l2.zk.prover import ZkProver
from layerlab.l2.zk.state import (
    GWEI,
    BatchShape,
    Transfer,
    ZkState,
    build_batch,
    sign_transfer,
    sign_withdrawal,
)

__all__ = ["BENCH_SHAPE", "ZkRun", "measure_zk"]

BENCH_SHAPE = BatchShape(n_transfers=2, n_deposits=1, n_withdrawals=1, depth=8)
"""The shape tests/integration/test_zk_rollup_contract.py builds: one cached compile."""
USER_KEYS = (b"\x0a" * 32, b"\x0b" * 32)
AMOUNTS_GWEI = {"transfer": 1_000_000, "micropayment": 1_000}


@dataclass(slots=True)
class ZkRun:
    workload: str
    transactions: int
    seconds: float
    soft_ms: list[float]
    final_s: list[float]
    batches: int
    l1_gas: int
    l1_fee_wei: int
    l1_bytes: int
    prove_seconds: float
    witness_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tps(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0


def measure_zk(l1_url: str, keys: list[bytes], workloads: tuple[str, ...], tx: int,
               shape: BatchShape = BENCH_SHAPE) -> tuple[list[ZkRun], dict[str, Any]]:
    """Deploy the ZK rollup on ``l1_url`` and run each workload; returns the runs and the
    setup's figures (circuit size, compile and setup time, one withdrawal's delay)."""
    build = build_circuit(shape)
    prover = ZkProver(build)
    w3 = Web3(Web3.HTTPProvider(l1_url, request_kwargs={"timeout": 120}))
    deployer, operator, user = keys[0], keys[1], keys[2]
    rollup = deploy_zk_rollup(w3, Account.from_key(deployer).address,
                              Account.from_key(operator).address, build)
    state = ZkState(shape.depth)
    for prv in USER_KEYS:
        rollup.deposit(user, *prv2pub(prv), 10**9 * GWEI)
    nonces = [0, 0]

    def batch(transfers: list[Transfer], withdraw: bool = False) -> tuple[Any, Any, float]:
        t0 = time.perf_counter()
        withdrawals = [sign_withdrawal(USER_KEYS[0], 0, bytes.fromhex(
            Account.from_key(user).address[2:]), 1000, nonces[0])] if withdraw else []
        if withdraw:
            nonces[0] += 1
        witness = build_batch(state, shape, rollup.pending_deposits()[:shape.n_deposits],
                              transfers, withdrawals)
        soft = time.perf_counter() - t0
        proof = prover.prove(witness)
        return rollup.submit(operator, witness, proof.proof), proof, soft

    # the deposits enter the state one batch each (M = 1), before any transfer from them
    for _ in USER_KEYS:
        batch([])
    runs: list[ZkRun] = []
    for workload in workloads:
        amount = AMOUNTS_GWEI.get(workload, AMOUNTS_GWEI["transfer"])
        soft_ms: list[float] = []
        final: list[float] = []
        gas = fee = size = batches = done = 0
        prove = witness_s = 0.0
        started = time.perf_counter()
        while done < tx:
            transfers = []
            for _ in range(min(shape.n_transfers, tx - done)):
                sender = done % 2
                transfers.append(sign_transfer(USER_KEYS[sender], sender, 1 - sender, amount,
                                               nonces[sender]))
                nonces[sender] += 1
                done += 1
            t0 = time.perf_counter()
            receipt, proof, soft = batch(transfers)
            final += [time.perf_counter() - t0] * len(transfers)
            soft_ms += [soft * 1000 / len(transfers)] * len(transfers)
            gas += receipt.gas_used
            fee += receipt.gas_used * int(receipt.receipt["effectiveGasPrice"])
            size += receipt.calldata_bytes
            prove += proof.prove_seconds
            witness_s += proof.witness_seconds
            batches += 1
        runs.append(ZkRun(workload, done, time.perf_counter() - started, soft_ms, final,
                          batches, gas, fee, size, prove, witness_s))
    # one withdrawal: from its signature to the ETH on L1 is one batch proven and verified
    t0 = time.perf_counter()
    receipt, _, _ = batch([], withdraw=True)
    setup = {"constraints": build.constraints, "compile_seconds": build.compile_seconds,
             "setup_seconds": build.setup_seconds, "key": build.key_label,
             "batch_size": shape.n_transfers, "depth": shape.depth,
             "withdrawal_seconds": time.perf_counter() - t0,
             "withdrawal_batch_gas": receipt.gas_used}
    return runs, setup
