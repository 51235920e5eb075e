"""The Plasma figures of the comparison, checked against what the L1 recorded."""

from __future__ import annotations

import pytest
from web3 import Web3

from layerlab.bench.plasma import measure_plasma
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.plasma.onchain import MINIMAL
from tests.nodeproc import NodeProcess

pytestmark = pytest.mark.slow


def test_plasma_figures_come_from_the_receipts(node: NodeProcess, w3: Web3) -> None:
    keys = [a.private_key for a in derive_dev_accounts()]
    start = int(w3.eth.block_number)
    (run,), setup = measure_plasma(node.url, keys, ("transfer",), 30, 10, MINIMAL,
                                   mass_exit_outputs=4)
    assert run.transactions == 30 and run.blocks == 3
    # every submitBlock of the run: its gas and calldata, divided over the block's txs
    submits = []
    for n in range(start + 1, int(w3.eth.block_number) + 1):
        for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]:
            if bytes(tx["input"])[:4] == Web3.keccak(text="submitBlock(uint256,bytes32)")[:4]:
                submits.append((int(w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"]),
                                len(bytes(tx["input"]))))
    # the split blocks of the setup, the run's 3 blocks, the mass exit's gift block and
    # its withheld block
    run_submits = submits[-5:-2]
    assert run.l1_gas == sum(g for g, _ in run_submits)
    assert run.l1_bytes == sum(b for _, b in run_submits) == 3 * 68
    assert len(run.soft_ms) == 30 and all(ms > 0 for ms in run.soft_ms)
    assert all(0 < s < 60 for s in run.final_s)
    exit_info = setup["exit"]
    # a fresh output waits two exit periods from its block (OMG's exitable timestamp)
    assert MINIMAL.min_exit_period <= exit_info["delay_s"] <= 2 * MINIMAL.min_exit_period
    mass = setup["mass_exit"]
    assert mass["alarm"] == "withheld" and mass["exits"] == mass["outputs_held"] == 4
    assert mass["gas"] > 4 * 100_000


def test_a_mass_exit_of_several_users_exits_each_from_its_own_account(node: NodeProcess,
                                                                       w3: Web3) -> None:
    accounts = derive_dev_accounts()
    keys = [a.private_key for a in accounts]
    holders = keys[6:9]
    (_run,), setup = measure_plasma(node.url, keys, ("transfer",), 6, 6, MINIMAL,
                                    mass_exit_outputs=6, mass_exit_holders=holders)
    mass = setup["mass_exit"]
    assert mass["users"] == 3 and mass["exits"] == mass["outputs_held"] == 6
    # each user started its own exits (and paid their bonds) from its own L1 account
    first = int(w3.eth.block_number) - mass["l1_blocks"]
    starters = {}
    for n in range(first + 1, int(w3.eth.block_number) + 1):
        for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]:
            starters[tx["from"]] = starters.get(tx["from"], 0) + 1
    assert {accounts[i].address: 2 for i in (6, 7, 8)}.items() <= starters.items()
