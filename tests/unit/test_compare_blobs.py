"""The comparison's calldata-vs-blobs figures for the optimistic rollup, in the terminal, the
JSON and the HTML report, on a synthetic row (no chain)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from layerlab.bench.compare import CompareOptions, CompareResult
from layerlab.bench.compare_model import MEASURED, Measurement
from layerlab.bench.report import render_terminal, to_json, write_html

BLOBS = {"transactions": 200, "batches": 1, "blobs": 1, "l1_gas_per_tx": 922.0,
         "blob_gas_per_tx": 655.36, "fee_wei_per_tx": 9.338e11, "blob_fee_wei_per_tx": 655.36,
         "blob_bytes_per_tx": 132.0, "source": "receipts"}


def result(with_blobs: bool) -> CompareResult:
    out = CompareResult(CompareOptions(quick=True, batch_size=200))
    out.rows = [Measurement(
        "optimistic-rollup", "transfer", MEASURED, transactions=200, tps=100.0,
        l1_gas_per_tx=5946.0, l1_bytes_per_tx=132.0, fee_wei_per_tx=6.6129e12,
        extra={"batch_size": 200, **({"blobs": BLOBS} if with_blobs else {})})]
    out.seconds = 1.0
    return out


def test_terminal_shows_calldata_and_blobs_side_by_side() -> None:
    console = Console(record=True, width=300)
    render_terminal(result(True), console)
    text = console.export_text()
    assert ("transfer in batches of 200: calldata 5,946 L1 gas/tx, fee 6,612.9 gwei/tx; "
            "blobs 922 L1 gas/tx + 655 blob gas/tx, fee 933.8 gwei/tx (1 blobs") in text
    console = Console(record=True, width=300)
    render_terminal(result(False), console)
    assert "blob gas/tx" not in console.export_text()


def test_json_row_carries_the_blob_figures() -> None:
    (row,) = to_json(result(True))["rows"]
    assert row["extra"]["blobs"] == BLOBS
    assert row["l1_gas_per_tx"] == 5946.0


def test_html_report_has_the_calldata_and_blob_columns(tmp_path: Path) -> None:
    write_html(result(True), tmp_path / "with.html")
    page = (tmp_path / "with.html").read_text()
    table = page[page.index("<table id='blobs'>"):]
    table = table[:table.index("</table>")]
    cells = [c.split("</td>")[0] for c in table.split("<td>")[1:]]
    assert cells[2:] == ["200", "5,946", "6,612.9", "922", "655", "933.8", "1"]
    write_html(result(False), tmp_path / "without.html")
    assert "<table id='blobs'>" not in (tmp_path / "without.html").read_text()
