"""The comparison's outputs: a terminal table, JSON, and one self-contained HTML report.

The HTML report inlines plotly.js (``include_plotlyjs=True`` on the first figure), so it
opens offline with no CDN. Its plots: throughput per system and workload, the
distributions of soft-confirmation and finality latency, L1 cost per transaction on a log
scale, withdrawal delay, the scaling curves, and a trilemma chart whose scoring rules are
printed beside it (:data:`layerlab.bench.compare_model.TRILEMMA_RULES`). Published
figures of Ethereum and public L2s stand in their own table, each with its source.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from layerlab.bench.compare import SYSTEMS, CompareResult
from layerlab.bench.compare_model import (
    MEASURED,
    TRILEMMA_RULES,
    WORKLOADS,
    Measurement,
    Reference,
    TrilemmaScore,
    compute_trilemma,
    format_number,
)

__all__ = ["REFERENCES", "render_terminal", "to_json", "write_html", "write_json"]

REFERENCES: Final[tuple[Reference, ...]] = (
    Reference("Ethereum mainnet", "slot time", "12 s",
              "consensus-specs, phase0 SECONDS_PER_SLOT"),
    Reference("Ethereum mainnet", "finality", "~12.8 min (2 epochs of 32 slots)",
              "consensus-specs, Casper FFG (Buterin & Griffith 2017)"),
    Reference("Ethereum mainnet", "gas per transfer", "21,000", "Ethereum yellow paper, G_transaction"),
    Reference("Ethereum mainnet", "transfer throughput", "~140 tx/s (36M gas / 12 s / 21,000)",
              "shared/DESIGN.md section 5, from the 36M gas limit of 2025"),
    Reference("Bitcoin", "block interval", "10 min", "Nakamoto 2008, section 11"),
    Reference("Optimism / Arbitrum", "withdrawal delay", "7 days (challenge window)",
              "OP Stack specs (withdrawals); Arbitrum docs (challenge period)"),
    Reference("rollups", "L1 bytes per transfer", "~12-16 bytes compressed",
              "shared/DESIGN.md section 5; zkSync Lite pubdata"),
    Reference("ZK rollups", "Groth16 verification gas", "~200-250k gas per proof",
              "EIP-197 pairing costs; snarkjs verifier (shared/zk-costs.md: ~194k + 6.6k per input)"),
    Reference("Lightning", "payment latency", "seconds per multi-hop payment",
              "BOLT 2 and 4: HTLC add/commit/revoke round trips per hop"),
)


def _cell(row: Measurement, name: str, price: float) -> str:
    if row.status != MEASURED:
        return ""
    values: dict[str, str] = {
        "txs": str(row.transactions),
        "TPS": format_number(row.tps),
        "soft p50": format_number(row.soft_p50_ms, " ms"),
        "soft p99": format_number(row.soft_p99_ms, " ms"),
        "final p50": format_number(row.final_p50_s, " s", 1),
        "final p99": format_number(row.final_p99_s, " s", 1),
        "L1 gas/tx": format_number(row.l1_gas_per_tx),
        "L1 B/tx": format_number(row.l1_bytes_per_tx),
        "fee gwei": format_number(row.fee_gwei_per_tx),
        "fee fiat": format_number(row.fee_fiat_per_tx(price), "", 4),
        "withdraw": format_number(row.withdrawal_delay_s, " s"),
    }
    return values[name]


COLUMNS: Final = ("txs", "TPS", "soft p50", "soft p99", "final p50", "final p99",
                  "L1 gas/tx", "L1 B/tx", "fee gwei", "fee fiat", "withdraw")


TERMINAL_COLUMNS: Final = ("TPS", "soft p50", "soft p99", "final p50", "L1 gas/tx", "L1 B/tx",
                           "fee fiat", "withdraw")
"""The terminal shows these (80 columns); the JSON and the HTML report carry all of them."""


def _grouped(rows: list[Measurement]) -> list[tuple[Measurement, str]]:
    """Rows with the workload label to show: a system's figureless rows that share one
    reason collapse into one line naming their workloads."""
    out: list[tuple[Measurement, str]] = []
    for row in rows:
        prev = out[-1][0] if out else None
        if (prev is not None and row.status != MEASURED and prev.status == row.status
                and prev.system == row.system and prev.reason == row.reason):
            out[-1] = (prev, f"{out[-1][1]}, {row.workload}")
        else:
            out.append((row, row.workload))
    return out


def render_terminal(result: CompareResult, console: Console) -> None:
    """The comparison table; rows without figures say why in the last column."""
    opts = result.options
    table = Table(title=f"layerlab comparison (one machine, one run, {result.seconds:,.0f} s)")
    table.add_column("system")
    table.add_column("workload")
    for name in TERMINAL_COLUMNS:
        table.add_column(opts.currency + "/tx" if name == "fee fiat" else name, justify="right")
    table.add_column("note")
    for row, workloads in _grouped(result.rows):
        if row.status == MEASURED:
            table.add_row(SYSTEMS[row.system].name, workloads,
                          *(_cell(row, c, opts.eth_price) for c in TERMINAL_COLUMNS), row.reason)
        else:
            table.add_row(SYSTEMS[row.system].name, workloads, *([""] * len(TERMINAL_COLUMNS)),
                          f"[yellow]{row.status}[/yellow]: {row.reason}")
    console.print(table)
    for row, b in _blob_rows(result):
        console.print(
            f"{SYSTEMS[row.system].name}, {row.workload} in batches of "
            f"{row.extra.get('batch_size')}: calldata {format_number(row.l1_gas_per_tx)} "
            f"L1 gas/tx, fee {format_number(row.fee_gwei_per_tx, '', 1)} gwei/tx; blobs "
            f"{format_number(b['l1_gas_per_tx'])} L1 gas/tx + "
            f"{format_number(b['blob_gas_per_tx'])} blob gas/tx, fee "
            f"{format_number(b['fee_wei_per_tx'] / 1e9, '', 1)} gwei/tx "
            f"({b['blobs']} blobs; blob mode is not disputable yet)")
    console.print(f"fees at each chain's own base fee; {opts.currency} at "
                  f"{opts.eth_price:,.0f} per ETH (a fixed assumption, not a market price). "
                  "Finality in seconds; withdraw: seconds from asking to leave to funds on L1.")


def compute_scores(result: CompareResult) -> list[TrilemmaScore]:
    scores = []
    for key, info in SYSTEMS.items():
        score = compute_trilemma(info, [r for r in result.rows if r.system == key])
        if score is not None:
            scores.append(score)
    return scores


def to_json(result: CompareResult) -> dict[str, Any]:
    opts = result.options
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.started)),
        "seconds": round(result.seconds, 1),
        "options": {k: getattr(opts, k) for k in opts.__dataclass_fields__},
        "fiat": {"currency": opts.currency, "eth_price": opts.eth_price},
        "workloads": WORKLOADS,
        "systems": {k: {"name": s.name, "layer": s.layer, "built": s.built,
                        "finality_rule": s.finality_rule, "withdrawal_rule": s.withdrawal_rule,
                        "scaling_knob": s.knob,
                        "trust": {"custody": s.trust.custody, "watch": s.trust.watch,
                                  "operator_gone": s.trust.operator_gone,
                                  "producers": s.trust.producers}}
                    for k, s in SYSTEMS.items()},
        "rows": [r.to_json(opts.eth_price) for r in result.rows],
        "scaling": [{"system": p.system, "knob": p.knob, "value": p.value, "tps": p.tps,
                     "l1_gas_per_tx": p.l1_gas_per_tx, "soft_p50_ms": p.soft_p50_ms}
                    for p in result.scaling],
        "trilemma": {"rules": list(TRILEMMA_RULES),
                     "scores": [{"system": s.system, "scalability": s.scalability,
                                 "security": s.security, "decentralization": s.decentralization,
                                 "why": list(s.why)} for s in compute_scores(result)]},
        "references": [{"system": r.system, "figure": r.figure, "value": r.value,
                        "source": r.source, "kind": "reference"} for r in REFERENCES],
    }


def write_json(result: CompareResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(result), indent=1, default=str))


def _label(row: Measurement) -> str:
    return SYSTEMS[row.system].name


def _figures(result: CompareResult) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go

    measured = [r for r in result.rows if r.status == MEASURED]
    figs: list[tuple[str, Any]] = []

    tput = go.Figure()
    for workload in WORKLOADS:
        rows = [r for r in measured if r.workload == workload and r.tps is not None]
        if rows:
            tput.add_bar(name=workload, x=[_label(r) for r in rows], y=[r.tps for r in rows])
    tput.update_layout(title="Throughput (transactions per second, higher is better)",
                       barmode="group", yaxis_title="tx/s")
    figs.append(("throughput", tput))

    for name, attr, title in (("soft-latency", "soft_ms", "Soft confirmation latency (ms"),
                              ("finality", "final_s", "Time to finality (s")):
        box = go.Figure()
        for r in measured:
            if getattr(r, attr):
                box.add_box(y=list(getattr(r, attr)), name=f"{_label(r)}: {r.workload}",
                            boxpoints="all")
        box.update_layout(title=f"{title}, log scale)", yaxis_type="log", showlegend=False)
        figs.append((name, box))

    cost = go.Figure()
    for workload in WORKLOADS:
        rows = [r for r in measured if r.workload == workload and r.l1_gas_per_tx]
        if rows:
            cost.add_bar(name=workload, x=[_label(r) for r in rows],
                         y=[r.l1_gas_per_tx for r in rows])
    cost.update_layout(title="L1 gas per transaction (log scale, lower is better)",
                       barmode="group", yaxis_type="log", yaxis_title="gas")
    figs.append(("cost", cost))

    delay = go.Figure()
    seen: dict[str, float] = {}
    for r in measured:
        if r.withdrawal_delay_s is not None:
            seen[_label(r)] = r.withdrawal_delay_s
    delay.add_bar(x=list(seen), y=[max(v, 0.1) for v in seen.values()],
                  text=[f"{v:,.0f} s" for v in seen.values()])
    delay.update_layout(title="Withdrawal delay to L1 (s, log scale; L1 systems: none, shown "
                              "as 0.1)", yaxis_type="log")
    figs.append(("withdrawal", delay))

    scaling = go.Figure()
    for system in sorted({p.system for p in result.scaling}):
        points = [p for p in result.scaling if p.system == system and p.tps is not None]
        if points:
            scaling.add_scatter(x=[p.value for p in points], y=[p.tps for p in points],
                                mode="lines+markers",
                                name=f"{SYSTEMS[system].name} vs {points[0].knob}")
    scaling.update_layout(title="Scaling: throughput against each system's knob",
                          xaxis_type="log", yaxis_title="tx/s")
    figs.append(("scaling", scaling))

    tri = go.Figure()
    axes = ["scalability", "security", "decentralization"]
    for s in compute_scores(result):
        values = [s.scalability, s.security, s.decentralization]
        tri.add_scatterpolar(r=[*values, values[0]], theta=[*axes, axes[0]], fill="toself",
                             name=SYSTEMS[s.system].name)
    tri.update_layout(title="Trilemma (scores 0-3 by the rules below)",
                      polar={"radialaxis": {"range": [0, 3], "dtick": 1}})
    figs.append(("trilemma", tri))
    return figs


def _blob_rows(result: CompareResult) -> list[tuple[Measurement, dict[str, Any]]]:
    """Rows measured both ways: their calldata figures and ``extra["blobs"]`` (EIP-4844)."""
    return [(r, r.extra["blobs"]) for r in result.rows
            if r.status == MEASURED and isinstance(r.extra.get("blobs"), dict)]


def _blobs_html(result: CompareResult) -> str:
    rows = _blob_rows(result)
    if not rows:
        return "<p>No system posted its data both ways in this run.</p>"
    body = "".join(
        f"<tr><td>{html.escape(SYSTEMS[r.system].name)}</td><td>{html.escape(r.workload)}</td>"
        f"<td>{r.extra.get('batch_size')}</td>"
        f"<td>{format_number(r.l1_gas_per_tx)}</td><td>{format_number(r.fee_gwei_per_tx, '', 1)}</td>"
        f"<td>{format_number(b['l1_gas_per_tx'])}</td><td>{format_number(b['blob_gas_per_tx'])}</td>"
        f"<td>{format_number(b['fee_wei_per_tx'] / 1e9, '', 1)}</td><td>{b['blobs']}</td></tr>"
        for r, b in rows)
    return ("<table id='blobs'><thead><tr><th>system</th><th>workload</th><th>batch size</th>"
            "<th>calldata: L1 gas/tx</th><th>calldata: fee (gwei/tx)</th>"
            "<th>blobs: L1 gas/tx</th><th>blobs: blob gas/tx</th><th>blobs: fee (gwei/tx)</th>"
            "<th>blobs</th></tr></thead><tbody>" + body + "</tbody></table>"
            "<p>The same transactions at the same batch size, posted as calldata and as "
            "EIP-4844 blobs (blob gas is priced by its own base fee; blob batches cannot be "
            "disputed yet, see issue 16).</p>")


def _table_html(result: CompareResult) -> str:
    opts = result.options
    head = "".join(f"<th>{html.escape(c)}</th>" for c in
                   ("system", "workload", *COLUMNS, "status", "note"))
    body = []
    for r in result.rows:
        cells = [SYSTEMS[r.system].name, r.workload,
                 *(_cell(r, c, opts.eth_price) for c in COLUMNS), r.status, r.reason]
        body.append(f"<tr class='{r.status}'>" + "".join(
            f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _trust_html() -> str:
    rows = "".join(
        f"<tr><td>{html.escape(s.name)}</td><td>{html.escape(s.trust.custody)}</td>"
        f"<td>{html.escape(s.trust.watch)}</td><td>{html.escape(s.trust.operator_gone)}</td>"
        f"<td>{html.escape(s.finality_rule)}</td><td>{html.escape(s.withdrawal_rule)}</td></tr>"
        for s in SYSTEMS.values())
    return ("<table><thead><tr><th>system</th><th>who can stop or steal funds</th>"
            "<th>what a user must watch</th><th>if the operator disappears</th>"
            "<th>finality</th><th>withdrawal</th></tr></thead><tbody>" + rows + "</tbody></table>")


def _references_html() -> str:
    rows = "".join(f"<tr><td>{html.escape(r.system)}</td><td>{html.escape(r.figure)}</td>"
                   f"<td>{html.escape(r.value)}</td><td>{html.escape(r.source)}</td></tr>"
                   for r in REFERENCES)
    return ("<table class='reference'><thead><tr><th>system</th><th>figure</th><th>value"
            "</th><th>source</th></tr></thead><tbody>" + rows + "</tbody></table>")


STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child, td:nth-child(2) { text-align: left; }
tr.not-available td, tr.unsupported td { color: #888; }
table.reference { background: #f7f7f7; }
.plot { max-width: 1100px; }
"""


def write_html(result: CompareResult, path: Path) -> None:
    """One HTML file with everything inline (plotly.js included once)."""
    import plotly.io as pio

    parts = []
    for i, (name, fig) in enumerate(_figures(result)):
        fig.update_layout(height=450, margin={"t": 60})
        parts.append(f"<div class='plot' id='plot-{name}'>" + pio.to_html(
            fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"fig-{name}") + "</div>")
    rules = "".join(f"<li>{html.escape(r)}</li>" for r in TRILEMMA_RULES)
    opts = result.options
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>layerlab comparison</title>
<style>{STYLE}</style></head><body>
<h1>layerlab comparison</h1>
<p>Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(result.started))} in
{result.seconds:,.0f} s on one machine; {opts.tx} transactions per burst
{'(quick mode)' if opts.quick else ''}. Every figure comes from what the chains and services
recorded; a dash or a status means there is no figure, never a guess. Fees are at each
chain's own base fee; {html.escape(opts.currency)} at {opts.eth_price:,.0f} per ETH (a fixed
assumption).</p>
<h2>Results</h2>{_table_html(result)}
<h2>Plots</h2>{''.join(parts[:5])}
<h2>Scaling</h2>{parts[5]}
<h2>Trilemma</h2>{parts[6]}<h3>Scoring rules</h3><ul>{rules}</ul>
<h2>Rollup data: calldata against blobs</h2>{_blobs_html(result)}
<h2>Trust assumptions</h2>{_trust_html()}
<h2>Reference figures (published, not measured here)</h2>{_references_html()}
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc)
