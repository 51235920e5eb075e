"""Witnesses of one L2 step for the L1 one-step prover (contracts/rollup/RollupProver.sol).

A fraud proof ends with one disputed step re-executed on L1 from the agreed pre-state
root. The L1 holds no L2 state, only roots, so the party that proves the step hands the
prover the leaves the step touches, each with a sparse-Merkle proof against the pre-state
root (Arbitrum's one-step proofs carry the machine's touched memory the same way), and,
for each leaf it changes, a proof against the root after the writes before it. This module
builds that witness from a :class:`~layerlab.l2.rollup.machine.RollupState` and applies the
step, so the state ends where the prover's answer does.

Encoding: ``abi.encode(Read[] reads, SparseMerkle.Proof[] writes)`` with
``Read = (SparseMerkle.Proof proof, uint256[] opening)``; ``opening`` is the preimage
words of a hashed leaf (META, POOL, TOKEN) or empty. Writes are in the order of the reads,
one per leaf whose value changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from eth_abi.abi import encode as abi_encode

from layerlab.crypto.eip712 import Domain
from layerlab.errors import MalformedEncoding
from layerlab.l2.rollup.machine import (
    KIND_ACCOUNT,
    KIND_ADDRESS,
    KIND_BALANCE,
    KIND_META,
    KIND_POOL,
    KIND_TOKEN,
    KIND_WITHDRAW,
    Receipt,
    RollupError,
    RollupState,
    apply_step,
    compute_leaf_key,
    get_touched_keys,
)
from layerlab.l2.rollup.txs import DEPOSIT_KIND, FORCED_KIND, decode_deposit_step, decode_tx_step
from layerlab.primitives.smt import SmtProof

__all__ = ["StepWitness", "compute_step_witness", "encode_smt_proof", "get_step_keys",
           "prove_withdrawal"]

PROOF_ABI: Final = "(uint256,uint256,bool,uint256,uint256[],uint256,uint256,bool)"


@dataclass(frozen=True, slots=True)
class StepWitness:
    pre_root: int
    post_root: int
    receipt: Receipt
    witness: bytes
    """The ``witness`` argument of ``RollupProver.executeStep``."""
    reads: int
    writes: int


def _proof_tuple(proof: SmtProof) -> tuple[Any, ...]:
    return (proof.root, proof.key, proof.found, proof.value, list(proof.siblings),
            proof.not_found_key, proof.not_found_value, proof.is_old0)


def encode_smt_proof(proof: SmtProof) -> bytes:
    """``abi.encode(SparseMerkle.Proof)``, as ``finalizeWithdrawal`` takes it."""
    return abi_encode([PROOF_ABI], [_proof_tuple(proof)])


def get_step_keys(state: RollupState, step: bytes, domain: Domain) -> list[int]:
    """The leaves the prover reads for ``step`` in ``state`` (a superset of those it writes)."""
    if step[:1] == bytes([DEPOSIT_KIND]):
        deposit = decode_deposit_step(step)
        index = state.index_of.get(deposit.to, len(state.owners))
        return [compute_leaf_key(KIND_META), compute_leaf_key(KIND_TOKEN, deposit.token),
                compute_leaf_key(KIND_ADDRESS, int.from_bytes(deposit.to, "big")),
                compute_leaf_key(KIND_ACCOUNT, index),
                compute_leaf_key(KIND_BALANCE, deposit.token, index)]
    body = step[1:] if step[:1] == bytes([FORCED_KIND]) else step
    try:
        signed = decode_tx_step(body)
    except MalformedEncoding:
        return []
    return get_touched_keys(state, signed, domain)


def _openings(state: RollupState) -> dict[int, list[int]]:
    out = {compute_leaf_key(KIND_META): [len(state.owners), state.next_deposit,
                                         len(state.withdrawals)]}
    for token, l1_token in state.l1_tokens.items():
        out[compute_leaf_key(KIND_TOKEN, token)] = [int.from_bytes(l1_token, "big")]
    for (t0, t1), pool in state.pools.items():
        out[compute_leaf_key(KIND_POOL, t0, t1)] = [pool.reserve0, pool.reserve1, pool.shares]
    return out


def compute_step_witness(state: RollupState, step: bytes, domain: Domain) -> StepWitness:
    """Apply ``step`` to ``state`` and return the witness that proves it on L1.

    Raises what :func:`~layerlab.l2.rollup.machine.apply_step` raises (a deposit that
    cannot apply), leaving ``state`` unchanged.
    """
    tree = state.tree
    pre_root = tree.root
    keys = get_step_keys(state, step, domain)
    openings = _openings(state)
    reads = []
    before: dict[int, int] = {}
    for key in keys:
        proof = tree.prove(key)
        before[key] = proof.value if proof.found else 0
        reads.append((_proof_tuple(proof), openings.get(key, []) if proof.found else []))
    receipt = apply_step(state, step, domain)
    post_root = tree.root
    after = {key: tree.get(key) or 0 for key in keys}
    tree.checkout(pre_root)
    writes = []
    for key in keys:
        if after[key] != before[key]:
            writes.append(_proof_tuple(tree.prove(key)))
            tree.set(key, after[key])
    if tree.root != post_root:
        tree.checkout(post_root)
        raise RollupError("witness", f"the step changed leaves outside its witness keys: "
                                     f"{tree.root:#x} != {post_root:#x}")
    data = abi_encode([f"({PROOF_ABI},uint256[])[]", f"{PROOF_ABI}[]"], [reads, writes])
    return StepWitness(pre_root, post_root, receipt, data, len(reads), len(writes))


def prove_withdrawal(state: RollupState, withdrawal_id: int) -> bytes:
    """The ``proof`` argument of ``finalizeWithdrawal`` for withdrawal ``withdrawal_id``."""
    if not 0 <= withdrawal_id < len(state.withdrawals):
        raise RollupError("unknown-withdrawal", f"withdrawal {withdrawal_id} does not exist "
                                                f"({len(state.withdrawals)} so far)")
    return encode_smt_proof(state.tree.prove(compute_leaf_key(KIND_WITHDRAW, withdrawal_id)))
