"""The explorer against a real node: blocks, a rollup batch and its challenge clock, a
Plasma exit with its exit clock from start to payout, a system that is down; and the page
in chromium seeing a new block, a new batch and a new Plasma exit arrive. (The ZK rollup's
verified batches are checked in test_zk_rollup_contract.py, where a proof is made anyway.)

As in test_compare.py, the browser test is skipped without chromium unless
``LAYERLAB_REQUIRE_BROWSER`` is set (CI), where it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.plasma.onchain import MINIMAL, PlasmaContract, deploy_plasma
from layerlab.l2.plasma.types import (
    ETH,
    Output,
    Transaction,
    compute_block_root,
    encode_position,
    prove_inclusion,
)
from layerlab.orchestration import free_port, rpc_call
from layerlab.web.explorer import Explorer, Watched
from tests.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
DEPLOYER, SEQUENCER, OPERATOR, ALICE, BOB = DEV[0], DEV[1], DEV[2], DEV[3], DEV[4]
WINDOW = 600
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def rollup(node: NodeProcess, w3: Web3) -> Contract:
    prover = deploy(w3, load_artifact("HashChainProver"), sender=DEPLOYER.address)
    contract = deploy(w3, load_artifact("OptimisticRollup"), SEQUENCER.address, prover.address,
                      b"\x11" * 32, (WINDOW, 60, 5, 10**18, 10**17), sender=DEPLOYER.address)
    tx = contract.functions.bond().transact({"from": SEQUENCER.address, "value": 10**18})
    w3.eth.wait_for_transaction_receipt(tx)
    return contract


@pytest.fixture(scope="module")
def plasma(node: NodeProcess, w3: Web3) -> PlasmaContract:
    return deploy_plasma(w3, DEPLOYER.address, OPERATOR.address, MINIMAL)


def start_plasma_exit(plasma: PlasmaContract, amount: int) -> int:
    """Alice deposits ``amount`` and pays it to Bob in a committed child block; Bob starts
    the standard exit of that output. Returns the exit id (the output's position)."""
    _receipt, dep_blknum = plasma.deposit(ALICE.private_key, amount)
    tx = Transaction((encode_position(dep_blknum, 0, 0),),
                     (Output(BOB.address_bytes, ETH, amount),))
    _receipt, blknum = plasma.submit_block(OPERATOR.private_key, compute_block_root([tx.tx_hash]))
    pos = encode_position(blknum, 0, 0)
    _receipt, exit_id = plasma.start_standard_exit(BOB.private_key, pos, tx,
                                                   prove_inclusion([tx.tx_hash], 0))
    return exit_id


def post_batch(w3: Web3, contract: Contract, n: int) -> None:
    steps = b"".join(len(s).to_bytes(2, "big") + s for s in (b"\x01" + n.to_bytes(8, "big"),))
    tx = contract.functions.submitBatch(steps, n.to_bytes(32, "big")).transact(
        {"from": SEQUENCER.address})
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1


def test_explorer_follows_blocks_and_batches(node: NodeProcess, w3: Web3, rollup: Contract) -> None:
    explorer = Explorer(node.url, [Watched("OptimisticRollup", rollup.address)])
    assert explorer.poll_once()
    view = explorer.view.to_json()
    assert view["l1"]["up"] and view["l1"]["head"] == w3.eth.block_number
    head = view["blocks"][0]["number"]
    post_batch(w3, rollup, 1)
    assert explorer.poll_once()
    view = explorer.view.to_json()
    assert view["blocks"][0]["number"] > head
    assert view["blocks"][0]["txs"][0]["to"] == rollup.address
    [batch] = [b for b in view["batches"] if b["index"] == 1]
    assert batch["steps"] == 1 and not batch["removed"]
    assert batch["final_at"] == batch["submitted_at"] + WINDOW
    assert 0 < batch["seconds_left"] <= WINDOW
    assert any(e["name"] == "BatchSubmitted" for e in view["events"])
    assert not explorer.poll_once()  # nothing new: nothing changed


def test_explorer_follows_plasma_blocks_and_an_exit_to_its_payout(
        node: NodeProcess, w3: Web3, plasma: PlasmaContract) -> None:
    explorer = Explorer(node.url, [Watched("PlasmaChain", plasma.address)])
    explorer.poll_once()
    exit_id = start_plasma_exit(plasma, 10**17)
    assert explorer.poll_once()
    view = explorer.view.to_json()
    kinds = {b["number"]: b["deposit"] for b in view["plasma_blocks"]}
    assert True in kinds.values() and False in kinds.values()  # a deposit and an operator block
    [row] = [e for e in view["exits"] if e["id"] == exit_id]
    exitable_at = plasma.exit(exit_id).exitable_at
    assert row["owner"] == BOB.address and row["amount"] == str(10**17)
    assert row["state"] == "exiting" and row["exitable_at"] == exitable_at
    assert row["seconds_left"] == exitable_at - view["blocks"][0]["timestamp"] > 0
    # past its clock, anyone processes the queue and Bob is paid
    rpc_call(node.url, "evm_mine", [exitable_at + 1])
    plasma.process_exits(ALICE.private_key, ETH, 10)
    assert explorer.poll_once()
    [row] = [e for e in explorer.view.to_json()["exits"] if e["id"] == exit_id]
    assert row["state"] == "paid" and row["seconds_left"] == 0
    assert explorer.view.to_json()["events"][0]["system"] == "PlasmaChain"


def test_a_system_that_is_down_is_shown_as_down() -> None:
    explorer = Explorer(f"http://127.0.0.1:{free_port()}")
    explorer.poll_once()
    view = explorer.view.to_json()
    assert view["l1"]["up"] is False and view["l1"]["error"]


@pytest.fixture()
def explorer_process(node: NodeProcess, rollup: Contract,
                     plasma: PlasmaContract) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "layerlab.cli", "explorer", "--l1", node.url,
         "--rollup", rollup.address, "--plasma", plasma.address, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                import urllib.request

                urllib.request.urlopen(url + "/api/view", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _text(page: Any, selector: str) -> str:
    return str(page.locator(selector).first.inner_text())


def test_page_shows_a_new_block_a_new_batch_and_an_exit(
        node: NodeProcess, w3: Web3, rollup: Contract, plasma: PlasmaContract,
        explorer_process: str, tmp_path: Any) -> None:
    if CHROMIUM is None:
        if os.environ.get("LAYERLAB_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(explorer_process)
            page.wait_for_function("document.querySelector('#l1-state').textContent === 'up'",
                                   timeout=20_000)
            page.wait_for_selector("#blocks tbody tr", timeout=20_000)
            before = int(_text(page, "#blocks tbody tr td"))
            rpc_call(node.url, "evm_mine")
            page.wait_for_function(
                f"Number(document.querySelector('#blocks tbody tr td').textContent) > {before}",
                timeout=20_000)
            batches = rollup.functions.batchCount().call()
            post_batch(w3, rollup, batches)
            page.wait_for_function(
                f"[...document.querySelectorAll('#batches tbody tr td:first-child')]"
                f".some(td => td.textContent === '{batches}')", timeout=20_000)
            row = page.locator("#batches tbody tr").first.inner_text()
            assert "s left" in row
            exit_id = start_plasma_exit(plasma, 2 * 10**17)
            page.wait_for_function(
                f"[...document.querySelectorAll('#exits tbody tr td:first-child')]"
                f".some(td => td.textContent === '{exit_id}')", timeout=20_000)
            row = page.locator("#exits tbody tr").first.inner_text()
            assert "exiting" in row and "s left" in row and str(2 * 10**17) in row
            page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
        finally:
            browser.close()
