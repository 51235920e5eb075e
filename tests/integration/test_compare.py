"""The comparison end to end: its figures against what the chain recorded, and its report
opened in a real browser (Debian's chromium, driven by Playwright).

The browser test is skipped where chromium is missing unless ``LAYERLAB_REQUIRE_BROWSER``
is set, as CI sets it (``.ci/run`` installs chromium), so there it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from layerlab.bench.l1_workloads import run_l1_workload
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.launcher import BackgroundNode
from layerlab.l1.node import MiningMode, Node

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def devnet() -> Iterator[tuple[str, list[bytes]]]:
    config = ChainConfig(gas_limit=100_000_000)
    node = Node(config, mining=MiningMode.INTERVAL, block_time=0.5)
    with BackgroundNode(node) as url:
        yield url, [a.private_key for a in config.dev_accounts]


@pytest.mark.parametrize("workload", ["nft", "swap"])
def test_workload_figures_match_the_blocks(devnet: tuple[str, list[bytes]], workload: str) -> None:
    url, keys = devnet
    w3 = Web3(Web3.HTTPProvider(url))
    run = run_l1_workload(url, keys, workload, 80, latency_samples=2, block_time=0.5)
    load = run.load
    assert load.is_complete and load.included_count == 80
    assert run.failed == 0 and run.receipts_read == 80
    assert load.first_block is not None and load.last_block is not None
    # the burst's blocks hold the burst and nothing else: recompute gas per tx from them
    gas, count = 0, 0
    for number in range(load.first_block, load.last_block + 1):
        block = w3.eth.get_block(number, full_transactions=False)
        for tx_hash in block["transactions"]:
            receipt = w3.eth.get_transaction_receipt(tx_hash)
            assert receipt["status"] == 1
            gas += receipt["gasUsed"]
            count += 1
    assert count == 80
    assert run.gas_per_tx == pytest.approx(gas / count)
    assert len(run.latency_ms) == 2 and all(ms > 0 for ms in run.latency_ms)


def test_compare_cli_json_and_report_in_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("LAYERLAB_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    out_json, out_html = tmp_path / "c.json", tmp_path / "c.html"
    proc = subprocess.run(
        [sys.executable, "-m", "layerlab.cli", "compare", "--quick", "--tx", "120",
         "--systems", "l1-devnet,l1-sharded", "--workloads", "transfer,nft",
         "--json", str(out_json), "--html", str(out_html)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert str(out_html.resolve()) in proc.stdout.replace("\n", "")
    data = json.loads(out_json.read_text())
    rows = {(r["system"], r["workload"]): r for r in data["rows"]}
    transfer = rows[("l1-devnet", "transfer")]
    assert transfer["status"] == "measured" and transfer["transactions"] == 120
    assert transfer["l1_gas_per_tx"] == 21_000  # a value transfer's gas (yellow paper)
    assert rows[("l1-devnet", "nft")]["l1_gas_per_tx"] > 21_000
    assert rows[("l1-sharded", "transfer")]["status"] == "not-available"

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(out_html.resolve().as_uri())
            page.wait_for_selector("#plot-trilemma .main-svg", timeout=30_000)
            for name in ("throughput", "soft-latency", "finality", "cost", "withdrawal",
                         "scaling", "trilemma"):
                assert page.locator(f"#plot-{name} .main-svg").count() >= 1, name
            # the throughput plot drew a bar for the measured row
            assert page.locator("#plot-throughput .bars path").count() >= 1
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000
