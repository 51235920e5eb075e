"""The comparison row: one system running one workload, measured the same way as the others.

Definitions (shared/DESIGN.md section 5): *throughput* is transactions included per second
of wall time under a saturating burst; *soft confirmation* is the time until the system
says "accepted" (here: a receipt); *finality* is the time until reverting needs breaking
the system's security assumption (a single-node devnet: its own block, there is no fork
to lose it to); *cost* is gas and fee per transaction, and L1 gas and bytes for L2s.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ETH_USD = 3000.0
"""The one ETH price every USD figure uses (a fixed assumption, not a market feed)."""


@dataclass(frozen=True, slots=True)
class SystemResult:
    """One row of the comparison table."""

    system: str
    workload: str
    transactions: int
    tps: float
    soft_confirmation_ms_p50: float
    soft_confirmation_ms_p99: float
    finality: str
    gas_per_tx: float
    fee_per_tx_gwei: float
    fee_per_tx_usd: float
    l1_bytes_per_tx: float


def percentile(samples: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``samples``; 0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else 0.0


def render_table(rows: list[SystemResult], console: Console, title: str) -> None:
    table = Table(title=title)
    for name in ("system", "workload", "txs", "TPS", "soft p50", "soft p99", "final",
                 "gas/tx", "fee gwei", "fee USD", "bytes/tx"):
        table.add_column(name, justify="left" if name in ("system", "workload", "final")
                         else "right")
    def ms(value: float) -> str:
        return f"{value:,.1f} ms" if value < 10 else f"{value:,.0f} ms"

    for r in rows:
        table.add_row(
            r.system, r.workload, str(r.transactions), f"{r.tps:,.0f}",
            ms(r.soft_confirmation_ms_p50), ms(r.soft_confirmation_ms_p99),
            r.finality, f"{r.gas_per_tx:,.0f}", f"{r.fee_per_tx_gwei:,.0f}",
            f"{r.fee_per_tx_usd:.4f}", f"{r.l1_bytes_per_tx:,.0f}",
        )
    console.print(table)


def write_json(rows: list[SystemResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in rows], indent=2))
