"""The comparison's model, scoring rules and outputs, on synthetic results (no chain)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from layerlab.bench.compare import SYSTEMS, UNSUPPORTED_REASONS, CompareOptions, CompareResult, run_compare
from layerlab.bench.compare_model import (
    MEASURED,
    NOT_AVAILABLE,
    UNSUPPORTED,
    Measurement,
    compute_trilemma,
    format_number,
)
from layerlab.bench.report import _grouped, render_terminal, to_json, write_html


def measured(system: str, workload: str, tps: float, **kw: object) -> Measurement:
    return Measurement(system, workload, MEASURED, transactions=100, tps=tps,
                       soft_ms=(1.0, 2.0, 3.0, 40.0), final_s=(0.5, 0.7),
                       l1_gas_per_tx=21_000.0, l1_bytes_per_tx=110.0, fee_wei_per_tx=2.1e13,
                       withdrawal_delay_s=0.0, **kw)  # type: ignore[arg-type]


def sample_result() -> CompareResult:
    result = CompareResult(CompareOptions(quick=True))
    result.rows = [
        measured("l1-devnet", "transfer", 600.0),
        measured("channels", "micropayment", 1500.0),
        Measurement("channels", "nft", UNSUPPORTED, UNSUPPORTED_REASONS[("channels", "nft")]),
        Measurement("l1-sharded", "transfer", NOT_AVAILABLE, "not built yet (issue 16)"),
        Measurement("l1-sharded", "swap", NOT_AVAILABLE, "not built yet (issue 16)"),
    ]
    result.seconds = 12.0
    return result


def test_percentiles_and_fiat() -> None:
    row = measured("l1-devnet", "transfer", 10.0)
    assert row.soft_p50_ms == 2.0 and row.soft_p99_ms == 40.0
    assert row.fee_gwei_per_tx == pytest.approx(21_000)
    assert row.fee_fiat_per_tx(2000.0) == pytest.approx(2.1e13 / 1e18 * 2000)
    empty = Measurement("plasma", "transfer", NOT_AVAILABLE, "not built")
    assert empty.soft_p50_ms is None and empty.fee_fiat_per_tx(1.0) is None
    assert format_number(None) == "-"


@pytest.mark.parametrize(("tps", "expected"), [(49.9, 0), (50, 1), (499, 1), (500, 2), (5000, 3)])
def test_scalability_thresholds(tps: float, expected: int) -> None:
    score = compute_trilemma(SYSTEMS["l1-devnet"], [measured("l1-devnet", "transfer", tps)])
    assert score is not None and score.scalability == expected


def test_security_and_decentralization_follow_the_trust_model() -> None:
    dev = compute_trilemma(SYSTEMS["l1-devnet"], [measured("l1-devnet", "transfer", 1)])
    pos = compute_trilemma(SYSTEMS["l1-pos"], [measured("l1-pos", "transfer", 1)])
    ch = compute_trilemma(SYSTEMS["channels"], [measured("channels", "micropayment", 1)])
    opt = compute_trilemma(SYSTEMS["optimistic-rollup"],
                           [measured("optimistic-rollup", "transfer", 1)])
    assert dev is not None and (dev.security, dev.decentralization) == (3, 0)
    assert pos is not None and (pos.security, pos.decentralization) == (3, 2)
    # channels: must watch, and the balances are not on L1
    assert ch is not None and ch.security == 1
    # optimistic: transitions assumed valid; one operator whose users can exit
    assert opt is not None and (opt.security, opt.decentralization) == (2, 1)
    plasma = compute_trilemma(SYSTEMS["plasma"], [measured("plasma", "transfer", 1)])
    # Plasma: users must watch, the block data is not on L1, transitions are not checked
    assert plasma is not None and (plasma.security, plasma.decentralization) == (0, 1)
    zk = compute_trilemma(SYSTEMS["zk-rollup"], [measured("zk-rollup", "transfer", 1)])
    # ZK rollup: nothing to watch, data on L1, every transition proven
    assert zk is not None and (zk.security, zk.decentralization) == (3, 1)
    assert compute_trilemma(SYSTEMS["l1-sharded"], []) is None


def test_systems_not_built_and_unsupported_pairs_have_no_figures() -> None:
    result = run_compare(CompareOptions(systems=("l1-sharded",)))
    assert {r.status for r in result.rows} == {NOT_AVAILABLE}
    assert all(r.tps is None and r.l1_gas_per_tx is None for r in result.rows)
    assert {r.reason for r in result.rows} == {"not built yet (issue 16)"}
    plasma = run_compare(CompareOptions(systems=("plasma",), workloads=("nft", "swap")))
    assert {r.status for r in plasma.rows} == {UNSUPPORTED}
    with pytest.raises(ValueError, match="unknown system"):
        run_compare(CompareOptions(systems=("l3",)))
    with pytest.raises(ValueError, match="unknown workload"):
        run_compare(CompareOptions(systems=("l1-sharded",), workloads=("bridge",)))


def test_terminal_groups_figureless_rows_and_names_the_reason() -> None:
    result = sample_result()
    groups = _grouped(result.rows)
    assert [label for _row, label in groups] == ["transfer", "micropayment", "nft",
                                                 "transfer, swap"]
    console = Console(width=200, record=True)
    render_terminal(result, console)
    text = console.export_text()
    assert "not built yet (issue 16)" in text and "shared state" in text
    assert "600" in text and "1,500" in text


def test_json_has_every_row_the_rules_and_marked_references() -> None:
    data = json.loads(json.dumps(to_json(sample_result()), default=str))
    assert len(data["rows"]) == 5
    assert data["rows"][0]["soft_p50_ms"] == 2.0
    assert data["rows"][3]["tps"] is None and data["rows"][3]["status"] == NOT_AVAILABLE
    assert len(data["trilemma"]["rules"]) >= 4
    assert {s["system"] for s in data["trilemma"]["scores"]} == {"l1-devnet", "channels"}
    assert data["references"] and all(r["kind"] == "reference" and r["source"]
                                      for r in data["references"])


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_html(sample_result(), path)
    doc = path.read_text()
    # no script or stylesheet is fetched from anywhere
    assert not re.search(r"<script[^>]+src=", doc)
    assert not re.search(r"<link[^>]+href=['\"]https?:", doc)
    assert doc.count("Plotly.newPlot") == 7
    for name in ("throughput", "soft-latency", "finality", "cost", "withdrawal", "scaling",
                 "trilemma"):
        assert f"id='plot-{name}'" in doc
    assert "Scoring rules" in doc and "published, not measured here" in doc
    assert "not built yet (issue 16)" in doc


def test_a_system_that_fails_becomes_rows_that_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from layerlab.bench import compare

    def broken(_opts: object, _say: object) -> None:
        raise ConnectionRefusedError("node 0 did not answer")

    monkeypatch.setattr(compare, "_run_devnet", broken)
    result = run_compare(CompareOptions(systems=("l1-devnet", "l1-sharded"),
                                        workloads=("transfer", "swap")))
    dev = [r for r in result.rows if r.system == "l1-devnet"]
    assert [r.workload for r in dev] == ["transfer", "swap"]
    assert all(r.status == NOT_AVAILABLE and "node 0 did not answer" in r.reason for r in dev)
    assert all(r.tps is None for r in dev)
