"""Calldata against blobs for the optimistic rollup's batches, at the same batch size (200
transfers): the blob run's figures are recomputed from the receipts the L1 recorded, its
batches derived back from the beacon API and replayed to the roots the contract stored."""

from __future__ import annotations

import pytest
from web3 import Web3

from layerlab.bench.rollup import measure_rollup
from layerlab.contracts import get_contract, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.rollup.codec import decode_inbox
from layerlab.l2.rollup.machine import RollupState, apply_step
from layerlab.l2.rollup.optimistic import MINIMAL, RollupContract, read_blob_batch
from tests.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

GAS_PER_BLOB = 2**17  # EIP-4844
BLOB_PAYLOAD = 4095 * 31  # blobpost's layout: a header element, 31 bytes per other element
TRANSFER_INBOX_BYTES = 2 + 130  # length prefix + a signed transfer (test_rollup_bench)
BATCH = 200


def test_blob_batches_cost_less_l1_gas_at_the_same_size(node: NodeProcess, w3: Web3) -> None:
    keys = [a.private_key for a in derive_dev_accounts()]
    (calldata,), _ = measure_rollup(node.url, keys, ("transfer",), BATCH, BATCH, MINIMAL)
    start = w3.eth.block_number
    (blob,), _ = measure_rollup(node.url, keys, ("transfer",), BATCH, BATCH, MINIMAL,
                                blobs=True)
    assert calldata.transactions == blob.transactions == BATCH
    assert calldata.batches == blob.batches == 1
    assert calldata.inbox_bytes == blob.inbox_bytes == BATCH * TRANSFER_INBOX_BYTES
    assert calldata.blobs == 0 and calldata.blob_gas == 0
    assert blob.blobs == -(-blob.inbox_bytes // BLOB_PAYLOAD) == 1

    artifact = load_artifact("OptimisticRollup")
    topic = Web3.keccak(text="BlobBatchSubmitted(uint256,bytes32[])")
    logs = w3.eth.get_logs({"fromBlock": start, "topics": [topic]})
    assert len(logs) == 1
    address = logs[0]["address"]
    rollup = RollupContract(w3, get_contract(w3, artifact, address),
                            get_contract(w3, artifact, address).functions.prover().call())
    receipt = w3.eth.get_transaction_receipt(logs[0]["transactionHash"])
    assert receipt["type"] == 3
    assert blob.l1_gas == receipt["gasUsed"]
    assert blob.blob_gas == receipt["blobGasUsed"] == GAS_PER_BLOB
    assert blob.l1_fee_wei == (receipt["gasUsed"] * receipt["effectiveGasPrice"]
                               + receipt["blobGasUsed"] * receipt["blobGasPrice"])

    # the setup batch (calldata: deposits and the pool) then the blob batch, replayed
    state = RollupState()
    (setup_event,) = [e for e in rollup.events(start)
                      if e.name == "BatchSubmitted" and e.args["batchIndex"] == 1]
    setup_tx = w3.eth.get_transaction(setup_event.tx_hash)
    setup_fn, setup_args = rollup.l1.contract.decode_function_input(setup_tx["input"])
    assert setup_fn.fn_name == "submitBatch"
    for step in decode_inbox(bytes(setup_args["steps"])):
        apply_step(state, step, rollup.domain)
    assert rollup.state_root(1) == state.root
    derived = read_blob_batch(rollup, node.url, 2, start)
    assert len(derived.steps) == BATCH
    for step in derived.steps:
        apply_step(state, step, rollup.domain)
    assert rollup.state_root(2) == state.root

    # the point of blobs: the batch's data no longer pays calldata gas
    assert blob.l1_gas * 5 < calldata.l1_gas
    print(f"\nbatch of {BATCH} transfers: calldata {calldata.l1_gas / BATCH:,.0f} L1 gas/tx, "
          f"fee {calldata.l1_fee_wei / BATCH / 1e9:,.1f} gwei/tx; blobs "
          f"{blob.l1_gas / BATCH:,.0f} L1 gas/tx + {blob.blob_gas / BATCH:,.0f} blob gas/tx, "
          f"fee {blob.l1_fee_wei / BATCH / 1e9:,.1f} gwei/tx "
          f"(blob part {blob.blob_fee_wei / BATCH:,.0f} wei/tx)")


def test_make_bench_reports_both_postings() -> None:
    from layerlab.bench.l2 import bench_rollup

    report = bench_rollup([25])
    (calldata,), (blob,) = report["batches"], report["blob_batches"]
    assert calldata["batch_size"] == blob["batch_size"] == 25
    assert calldata["transactions"] == blob["transactions"] == 50
    assert calldata["blobs"] == 0 and blob["blobs"] == blob["batches"] == 2
    assert blob["blob_gas_per_tx"] == 2 * GAS_PER_BLOB / 50
    assert blob["l1_gas_per_tx"] < calldata["l1_gas_per_tx"]
