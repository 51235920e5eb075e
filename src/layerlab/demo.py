"""``make demo`` and ``layerlab compare``: every system, the same workloads, one report.

Everything runs on this machine on embedded defaults (no server to install): an in-process
py-evm devnet, networks of node processes for PoW, PoS and the Merge, and the payment
channel nodes, all on 127.0.0.1 and torn down at the end (see :mod:`layerlab.bench.compare`).
The outputs are a table in the terminal, a JSON file and one self-contained HTML report
(:mod:`layerlab.bench.report`); the command prints where it wrote them.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from layerlab.bench.compare import SYSTEMS, CompareOptions, CompareResult, run_compare
from layerlab.bench.compare_model import WORKLOADS
from layerlab.bench.report import render_terminal, write_html, write_json

REPORT_DIR = Path("build/reports")


def _subset(value: str | None, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    if value is None:
        return known
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in chosen if v not in known]
    if unknown or not chosen:
        raise ValueError(f"unknown {what} {', '.join(unknown) or '(none given)'}; "
                         f"known: {', '.join(known)}")
    return chosen


def run_comparison(*, tx: int = 1000, nodes: int = 4, batch_size: int = 200,
                   preset: str = "minimal", systems: str | None = None,
                   workloads: str | None = None, quick: bool = False,
                   eth_price: float = 3000.0, currency: str = "USD",
                   json_out: Path | None = None, html_out: Path | None = None,
                   console: Console | None = None) -> CompareResult:
    console = console or Console()
    opts = CompareOptions(
        tx=tx, nodes=nodes, batch_size=batch_size, preset=preset, quick=quick,
        systems=_subset(systems, tuple(SYSTEMS), "system"),
        workloads=_subset(workloads, tuple(WORKLOADS), "workload"),
        eth_price=eth_price, currency=currency)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_out = json_out or REPORT_DIR / f"compare-{stamp}.json"
    html_out = html_out or REPORT_DIR / f"compare-{stamp}.html"
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("starting", total=None)
        last: list[str] = []

        def say(text: str) -> None:
            if last:
                progress.console.print(f"[dim]done:[/dim] {last[-1]}")
            last.append(text)
            progress.update(task, description=text)

        result = run_compare(opts, say)
        progress.update(task, description=f"all systems done in {result.seconds:,.0f} s")
    render_terminal(result, console)
    write_json(result, json_out)
    write_html(result, html_out)
    console.print(f"JSON: {json_out}\nHTML report: {html_out.resolve()}")
    return result
