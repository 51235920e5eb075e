"""The comparison's values: systems, workloads, measurements, and the rules that score them.

Definitions (shared/DESIGN.md section 5): *throughput* is transactions included per second
of wall time under a saturating burst; *soft confirmation* is the time until the system
says "accepted" (an L1 receipt, a channel's acknowledgement, an L2 receipt); *finality* is
the time until undoing it needs breaking the system's security assumption (PoW: k
confirmations; PoS: a finalized checkpoint, Casper FFG; optimistic rollup: the challenge
window; ZK rollup: the proof verified on L1; channel: both signatures); *cost* is L1 gas,
L1 bytes and fee per transaction; *withdrawal delay* is the time from asking to leave the
system to holding the funds on L1.

A row is either measured (every number from what the chains and services recorded), or
says why it has no numbers: ``not-available`` (the system or workload is not built or was
not run) or ``unsupported`` (the system cannot run that workload, and why). A missing
figure is ``None`` and shows as a dash, never as a made-up number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

from layerlab.bench.metrics import percentile

__all__ = [
    "MEASURED",
    "NOT_AVAILABLE",
    "UNSUPPORTED",
    "WORKLOADS",
    "Measurement",
    "Reference",
    "SystemInfo",
    "TrilemmaScore",
    "TrustModel",
    "compute_trilemma",
]

MEASURED: Final = "measured"
NOT_AVAILABLE: Final = "not-available"
UNSUPPORTED: Final = "unsupported"
Status = Literal["measured", "not-available", "unsupported"]

WORKLOADS: Final[dict[str, str]] = {
    "transfer": "plain value transfers between accounts",
    "micropayment": "many tiny payments (1 gwei on L1, 1 wei in a channel)",
    "nft": "ERC-721 mints and transfers",
    "swap": "swaps on a constant-product AMM pool (Uniswap v2 rule, 0.3% fee)",
}


@dataclass(frozen=True, slots=True)
class TrustModel:
    """Who a user must trust, in the words the report shows and the flags it scores."""

    custody: str
    """Who can stop or steal funds."""
    watch: str
    """What a user (or someone paid to) must watch to stay safe."""
    operator_gone: str
    """What happens if the operator (or the block producers) disappear."""
    producers: int
    """Independent parties producing blocks (or operating the L2) in this run."""
    user_must_watch: bool
    """Safety needs the user or a delegate online within a deadline."""
    data_on_l1: bool
    """Everything needed to rebuild a user's balance is on (or is) the L1."""
    validity_proven: bool
    """Every state transition is proven or re-executed by every node, not assumed."""


@dataclass(frozen=True, slots=True)
class SystemInfo:
    key: str
    name: str
    layer: str
    """``L1`` or ``L2``."""
    knob: str
    """What its scaling section varies."""
    trust: TrustModel
    finality_rule: str
    withdrawal_rule: str
    built: bool = True
    issue: int | None = None
    """The issue that builds it, when it is not built yet."""


def _pct(samples: tuple[float, ...], pct: float) -> float | None:
    return percentile(list(samples), pct) if samples else None


@dataclass(frozen=True, slots=True)
class Measurement:
    """One system running one workload (or the reason it did not)."""

    system: str
    workload: str
    status: Status
    reason: str = ""
    transactions: int = 0
    seconds: float = 0.0
    tps: float | None = None
    soft_ms: tuple[float, ...] = ()
    """Soft-confirmation samples, milliseconds."""
    final_s: tuple[float, ...] = ()
    """Finality samples, seconds."""
    l1_gas_per_tx: float | None = None
    l1_bytes_per_tx: float | None = None
    fee_wei_per_tx: float | None = None
    withdrawal_delay_s: float | None = None
    withdrawal_delay_blocks: int | None = None
    source: str = ""
    """How the figures were obtained (what recorded them)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def soft_p50_ms(self) -> float | None:
        return _pct(self.soft_ms, 50)

    @property
    def soft_p99_ms(self) -> float | None:
        return _pct(self.soft_ms, 99)

    @property
    def final_p50_s(self) -> float | None:
        return _pct(self.final_s, 50)

    @property
    def final_p99_s(self) -> float | None:
        return _pct(self.final_s, 99)

    @property
    def fee_gwei_per_tx(self) -> float | None:
        return None if self.fee_wei_per_tx is None else self.fee_wei_per_tx / 1e9

    def fee_fiat_per_tx(self, eth_price: float) -> float | None:
        return None if self.fee_wei_per_tx is None else self.fee_wei_per_tx / 1e18 * eth_price

    def to_json(self, eth_price: float) -> dict[str, Any]:
        out = asdict(self)
        out["soft_ms"] = list(self.soft_ms)
        out["final_s"] = list(self.final_s)
        out |= {"soft_p50_ms": self.soft_p50_ms, "soft_p99_ms": self.soft_p99_ms,
                "final_p50_s": self.final_p50_s, "final_p99_s": self.final_p99_s,
                "fee_gwei_per_tx": self.fee_gwei_per_tx,
                "fee_fiat_per_tx": self.fee_fiat_per_tx(eth_price)}
        return out


@dataclass(frozen=True, slots=True)
class Reference:
    """A published figure of a public system, shown beside ours and marked as such."""

    system: str
    figure: str
    value: str
    source: str


@dataclass(frozen=True, slots=True)
class TrilemmaScore:
    system: str
    scalability: int
    security: int
    decentralization: int
    why: tuple[str, ...]


TRILEMMA_RULES: Final = (
    "Each axis scores 0 to 3 from this run's figures and the system's trust model.",
    "Scalability: the best measured throughput of the system over its workloads: "
    "0 below 50 tx/s, 1 from 50, 2 from 500, 3 from 5,000 tx/s.",
    "Security: start at 3; minus 1 if a user must watch and react within a deadline to "
    "stay safe; minus 1 if the data needed to rebuild a user's balance is not on the L1; "
    "minus 1 if state transitions are assumed valid rather than executed by every node or "
    "proven; never below 0.",
    "Decentralization: by the independent block producers (or operators) in this run: "
    "0 for one with no exit to an L1 that does not need it, 1 for one operator whose users "
    "can exit to the L1, 2 for 2 to 9, 3 for 10 or more.",
)


def compute_trilemma(info: SystemInfo, rows: list[Measurement]) -> TrilemmaScore | None:
    """The system's trilemma scores by :data:`TRILEMMA_RULES`; None without measurements."""
    tps = [r.tps for r in rows if r.status == MEASURED and r.tps is not None]
    if not tps:
        return None
    best = max(tps)
    scalability = sum(best >= t for t in (50, 500, 5000))
    t = info.trust
    security = max(0, 3 - t.user_must_watch - (not t.data_on_l1) - (not t.validity_proven))
    if t.producers >= 10:
        decentralization = 3
    elif t.producers >= 2:
        decentralization = 2
    else:
        decentralization = 1 if info.layer == "L2" else 0
    why = (f"best throughput {best:,.0f} tx/s",
           f"user must watch: {'yes' if t.user_must_watch else 'no'}; data on L1: "
           f"{'yes' if t.data_on_l1 else 'no'}; transitions checked: "
           f"{'yes' if t.validity_proven else 'no'}",
           f"{t.producers} producer(s) in this run")
    return TrilemmaScore(info.key, scalability, security, decentralization, why)


def format_number(value: float | None, unit: str = "", digits: int = 0) -> str:
    """A figure for a table cell: a dash when missing, thousands separators otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if 0 < abs(value) < 10 and digits == 0:
        digits = 2 if abs(value) < 1 else 1
    return f"{value:,.{digits}f}{unit}"
