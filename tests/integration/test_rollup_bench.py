"""The optimistic rollup's comparison figures, recomputed from what the L1 recorded.

``measure_rollup`` runs against a node process; afterwards this test reads every
``BatchSubmitted`` transaction back from the chain, decodes its calldata, replays the
batches through a fresh L2 machine and demands the same state roots the contract stored,
then recomputes gas and bytes per transaction from those receipts.
"""

from __future__ import annotations

import pytest
from web3 import Web3

from layerlab.bench.rollup import measure_rollup
from layerlab.contracts import get_contract, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.rollup.codec import decode_inbox
from layerlab.l2.rollup.machine import RollupState, apply_step
from layerlab.l2.rollup.optimistic import MINIMAL, RollupContract
from tests.nodeproc import NodeProcess

pytestmark = pytest.mark.slow


def test_figures_match_the_chain(node: NodeProcess, w3: Web3) -> None:
    keys = [a.private_key for a in derive_dev_accounts()]
    start = w3.eth.block_number
    runs, setup = measure_rollup(node.url, keys, ("transfer", "swap"), 60, 25, MINIMAL)
    assert [r.workload for r in runs] == ["transfer", "swap"]
    assert all(r.transactions == 60 and r.refused == 0 and r.batches == 3 for r in runs)
    assert setup["deposit_gas_mean"] > 21_000

    # find the rollup: the contract that emitted BatchSubmitted since `start`
    artifact = load_artifact("OptimisticRollup")
    topic = Web3.keccak(text="BatchSubmitted(uint256,address,bytes32,bytes32,uint256,uint256,uint256)")
    logs = w3.eth.get_logs({"fromBlock": start, "topics": [topic]})
    address = logs[0]["address"]
    rollup = RollupContract(w3, get_contract(w3, artifact, address),
                            get_contract(w3, artifact, address).functions.prover().call())
    contract = rollup.l1.contract
    state = RollupState()
    receipts = []
    for log in logs:
        tx = w3.eth.get_transaction(log["transactionHash"])
        fn, args = contract.decode_function_input(tx["input"])
        assert fn.fn_name == "submitBatch"
        for step in decode_inbox(bytes(args["steps"])):
            apply_step(state, step, rollup.domain)
        index = rollup.l1.decode_log(log).args["batchIndex"]  # type: ignore[union-attr]
        assert rollup.state_root(index) == state.root == int.from_bytes(args["stateRoot"], "big")
        receipts.append((w3.eth.get_transaction_receipt(log["transactionHash"]),
                         len(bytes(args["steps"]))))
    # batch 1 is the setup (deposits + liquidity); then 3 batches per workload
    assert len(receipts) == 1 + 3 * 2
    for run, chunk in zip(runs, (receipts[1:4], receipts[4:7]), strict=True):
        assert run.l1_gas == sum(r["gasUsed"] for r, _ in chunk)
        assert run.inbox_bytes == sum(n for _, n in chunk) == 60 * (2 + (130 if run.workload
                                                                          == "transfer" else 146))
        assert run.compressed_bytes < run.inbox_bytes
