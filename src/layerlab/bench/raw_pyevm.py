"""Raw py-evm throughput: the ceiling any py-evm node (ours included) can reach for transfers.

A bare Cancun ``MiningChain`` on an in-memory ``AtomicDB`` whose genesis funds the workload's
senders mines the workload in blocks of ``txs_per_block`` with ``chain.mine_all`` (which
applies a block's transactions in one pass; ``apply_transaction`` in a loop is quadratic,
DESIGN.md section 2). Three phases are timed apart:

* decoding the raw EIP-2718 envelopes into py-evm transaction objects,
* recovering each sender from its signature (``tx.sender``, a cached property, so
  ``mine_all`` later reuses it),
* ``mine_all`` itself: execution, receipts, state trie and block persistence.

TPS counts only ``mine_all`` time; :attr:`RawPyEvmResult.pipeline_tps` adds decoding and
recovery, which a node pays at RPC admission instead. There is no JSON-RPC, pool, clock or
consensus here. Each block header is created from its parent with the same gas limit
(valid under the 1/1024 bound) and the parent's timestamp plus ``block_time_seconds``, so
runs are deterministic and do not depend on the wall clock.
"""

from __future__ import annotations

import argparse
import gc
import logging
import time
from dataclasses import dataclass
from typing import Any

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.vm.forks.cancun import CancunVM

from layerlab.bench.workload import (
    TRANSFER_GAS,
    TransferWorkload,
    TransferWorkloadSpec,
    compute_transfer_workload,
)
from layerlab.errors import InvalidBlock
from layerlab.primitives.types import ETHER, GWEI, Timestamp, Wei

logger = logging.getLogger(__name__)

DEFAULT_TXS_PER_BLOCK = 1_500
GENESIS_TIMESTAMP = Timestamp(1_700_000_000)
DEFAULT_INITIAL_BASE_FEE = Wei(GWEI // 1000)
DEFAULT_SENDER_BALANCE = Wei(1_000_000 * ETHER)


@dataclass(frozen=True, slots=True)
class RawPyEvmResult:
    """Timings of one raw py-evm run (seconds of ``time.perf_counter``)."""

    tx_count: int
    included_count: int
    """Transactions with a successful receipt."""
    block_count: int
    txs_per_block: int
    gas_used: int
    decode_seconds: float
    sender_recovery_seconds: float
    mine_seconds: float
    """Sum of the ``mine_all`` calls only."""
    tps: float
    """``included_count / mine_seconds``."""

    @property
    def pipeline_tps(self) -> float:
        """Included transfers per second of decoding + sender recovery + ``mine_all``."""
        total = self.decode_seconds + self.sender_recovery_seconds + self.mine_seconds
        return self.included_count / total if total > 0 else 0.0


def create_bench_chain(
    workload: TransferWorkload,
    *,
    block_gas_limit: int = 1_000_000_000,
    initial_base_fee_per_gas: Wei = DEFAULT_INITIAL_BASE_FEE,
    sender_balance: Wei = DEFAULT_SENDER_BALANCE,
) -> MiningChain:
    """A Cancun ``MiningChain`` in memory whose genesis funds every sender of ``workload``."""
    chain_class = MiningChain.configure(
        __name__="LayerlabBenchChain",
        vm_configuration=((0, CancunVM),),
        chain_id=workload.spec.chain_id,
    )
    genesis_params: dict[str, Any] = {
        "difficulty": 0,
        "gas_limit": block_gas_limit,
        "timestamp": GENESIS_TIMESTAMP,
        "base_fee_per_gas": initial_base_fee_per_gas,
        "coinbase": b"\x00" * 20,
        "extra_data": b"",
        "nonce": b"\x00" * 8,
    }
    genesis_state = {
        bytes(sender.address): {
            "balance": sender_balance,
            "nonce": 0,
            "code": b"",
            "storage": {},
        }
        for sender in workload.senders
    }
    chain: MiningChain = chain_class.from_genesis(AtomicDB(), genesis_params, genesis_state)
    return chain


def measure_raw_pyevm(
    workload: TransferWorkload,
    *,
    txs_per_block: int = DEFAULT_TXS_PER_BLOCK,
    block_gas_limit: int = 1_000_000_000,
    block_time_seconds: int = 12,
) -> RawPyEvmResult:
    """Mine every transfer of ``workload`` with ``mine_all`` and time the three phases.

    Raises :class:`~layerlab.errors.InvalidBlock` if a block cannot hold ``txs_per_block``
    transfers or if a transaction does not succeed.
    """
    if txs_per_block < 1:
        raise ValueError(f"transactions per block must be at least 1, got {txs_per_block}")
    if txs_per_block * TRANSFER_GAS > block_gas_limit:
        raise InvalidBlock(
            f"{txs_per_block} transfers need {txs_per_block * TRANSFER_GAS} gas, "
            f"over the block gas limit {block_gas_limit}"
        )
    chain = create_bench_chain(workload, block_gas_limit=block_gas_limit)
    builder = chain.get_vm().get_transaction_builder()

    started = time.perf_counter()
    transactions = [builder.decode(raw) for raw in workload.raw_transactions]
    decoded = time.perf_counter()
    for transaction in transactions:
        _ = transaction.sender
    recovered = time.perf_counter()

    mine_seconds = 0.0
    included = 0
    gas_used = 0
    blocks = 0
    gc.collect()
    for start in range(0, len(transactions), txs_per_block):
        parent = chain.get_canonical_head()
        chain.header = chain.create_header_from_parent(
            parent,
            gas_limit=parent.gas_limit,
            timestamp=parent.timestamp + block_time_seconds,
        )
        chunk = transactions[start : start + txs_per_block]
        before = time.perf_counter()
        block_result, receipts, _ = chain.mine_all(chunk)
        mine_seconds += time.perf_counter() - before
        blocks += 1
        ok = sum(1 for receipt in receipts if _is_success(receipt.state_root))
        if ok != len(chunk):
            raise InvalidBlock(
                f"block {block_result.imported_block.number}: {len(chunk) - ok} of "
                f"{len(chunk)} transfers failed"
            )
        included += ok
        gas_used += block_result.imported_block.header.gas_used

    return RawPyEvmResult(
        tx_count=len(transactions),
        included_count=included,
        block_count=blocks,
        txs_per_block=txs_per_block,
        gas_used=gas_used,
        decode_seconds=decoded - started,
        sender_recovery_seconds=recovered - decoded,
        mine_seconds=mine_seconds,
        tps=included / mine_seconds if mine_seconds > 0 else 0.0,
    )


def _is_success(status: bytes) -> bool:
    """EIP-658 receipt status: ``b"\\x01"`` for success (post-Byzantium ``state_root`` field)."""
    return status == b"\x01"


def main(argv: list[str] | None = None) -> None:
    """``python -m layerlab.bench.raw_pyevm``: raw py-evm ``mine_all`` transfers/s."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--transfers", type=int, default=6_000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--per-block", type=int, default=DEFAULT_TXS_PER_BLOCK)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    workload = compute_transfer_workload(
        TransferWorkloadSpec(tx_count=args.transfers, sender_count=args.senders)
    )
    signing_seconds = time.perf_counter() - started
    logger.info(
        "pre-signed %d transfers in %.3f s (%.0f tx/s)",
        args.transfers,
        signing_seconds,
        args.transfers / signing_seconds,
    )
    result = measure_raw_pyevm(workload, txs_per_block=args.per_block)
    logger.info("%s", result)
    logger.info(
        "mine_all: %.0f tx/s; with decode+recovery: %.0f tx/s", result.tps, result.pipeline_tps
    )


if __name__ == "__main__":
    main()
