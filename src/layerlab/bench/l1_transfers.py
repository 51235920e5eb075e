"""``make bench``: L1 transfer throughput, three ways, on the same pre-signed workload.

1. **raw py-evm**: ``MiningChain.mine_all`` on an in-memory database, no RPC, no pool
   (the ceiling for a py-evm engine used as-is; run in a fresh interpreter so that
   layerlab's py-evm speed-ups are not loaded).
2. **layerlab node**: a ``layerlab node`` process with 1 s interval blocks; the workload
   goes in as JSON-RPC batches of pre-signed ``eth_sendRawTransaction`` calls, and the clock
   stops when the last transaction is seen in a block.
3. **Hardhat node**: the npm ``hardhat`` node with the same settings and the same driver.

Results go to ``benchmarks/results/l1_transfers.json`` and a table on the terminal. The
targets of the devnet issue: layerlab at least 70% of raw py-evm, and at least Hardhat.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from layerlab.bench.hardhat import HardhatNodeConfig, measure_hardhat_transfers
from layerlab.bench.rpc_load import RpcLoadResult, run_rpc_load
from layerlab.bench.workload import TransferWorkloadSpec, compute_transfer_workload
from layerlab.primitives.types import Wei

RESULTS = Path("benchmarks/results")
GAS_LIMIT = 1_000_000_000

RAW_SNIPPET = """
import json, sys
from dataclasses import asdict
from layerlab.bench.raw_pyevm import measure_raw_pyevm
from layerlab.bench.workload import TransferWorkloadSpec, compute_transfer_workload
spec = TransferWorkloadSpec(tx_count=int(sys.argv[1]), sender_count=int(sys.argv[2]))
result = measure_raw_pyevm(compute_transfer_workload(spec), txs_per_block=int(sys.argv[3]))
assert "layerlab.l1.chain.speedups" not in sys.modules
print(json.dumps({**asdict(result), "pipeline_tps": result.pipeline_tps}))
"""


def measure_raw(transfers: int, senders: int, per_block: int) -> dict[str, Any]:
    """Raw py-evm in a fresh interpreter (unpatched py-evm)."""
    out = subprocess.run(
        [sys.executable, "-c", RAW_SNIPPET, str(transfers), str(senders), str(per_block)],
        capture_output=True, text=True, timeout=900, check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _start_node(port: int, storage: tuple[str, ...] = ("--in-memory",)) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "layerlab.cli", "node", *storage, "--quiet",
           "--port", str(port), "--block-time", "1", "--gas-limit", str(GAS_LIMIT)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _wait_ready(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"node at {url} did not answer within {timeout} s")


def run_layerlab(raw_txs: tuple[bytes, ...], batch: int,
                 storage: tuple[str, ...] = ("--in-memory",)) -> RpcLoadResult:
    from layerlab.orchestration import free_port

    port = free_port()
    proc = _start_node(port, storage)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        return run_rpc_load(url, raw_txs, batch_size=batch, inclusion_timeout=300)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _row(result: RpcLoadResult) -> dict[str, Any]:
    return {**asdict(result), "complete": result.is_complete}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=12_000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--per-block", type=int, default=1_500)
    parser.add_argument("--skip-hardhat", action="store_true")
    parser.add_argument("--durability-transfers", type=int, default=3_000,
                        help="transfers for the LevelDB runs, with and without --sync-writes")
    parser.add_argument("--out", type=Path, default=RESULTS / "l1_transfers.json")
    args = parser.parse_args(argv)
    console = Console()

    spec = TransferWorkloadSpec(tx_count=args.transfers, sender_count=args.senders,
                                max_fee_per_gas=Wei(10**10))
    workload = compute_transfer_workload(spec)
    console.print(f"workload: {args.transfers} pre-signed transfers from {args.senders} senders")

    console.print("raw py-evm mine_all ...")
    raw = measure_raw(args.transfers, args.senders, args.per_block)
    console.print("layerlab node (JSON-RPC, 1 s blocks) ...")
    ours = run_layerlab(workload.raw_transactions, args.batch_size)
    hardhat: RpcLoadResult | None = None
    if not args.skip_hardhat:
        console.print("Hardhat node (JSON-RPC, 1 s blocks) ...")
        hardhat = measure_hardhat_transfers(
            workload,
            config=HardhatNodeConfig(block_gas_limit=GAS_LIMIT,
                                     initial_base_fee_per_gas=Wei(10**9)),
            batch_size=args.batch_size,
            inclusion_timeout=300,
        )

    durability = measure_durability(workload.raw_transactions[:args.durability_transfers],
                                    args.batch_size, console)
    report: dict[str, Any] = {
        "benchmark": "l1_transfers",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": _cpus(),
                    "platform": platform.platform()},
        "workload": {"transfers": args.transfers, "senders": args.senders,
                     "batch_size": args.batch_size, "block_time_s": 1.0},
        "raw_pyevm": raw,
        "layerlab": _row(ours),
        "hardhat": _row(hardhat) if hardhat else None,
        "durability": durability,
        "ratios": {
            "layerlab_vs_raw_pyevm": ours.tps / raw["tps"],
            "layerlab_vs_hardhat": (ours.tps / hardhat.tps) if hardhat else None,
        },
        "targets": {
            "at_least_70pct_of_raw_pyevm": ours.tps >= 0.7 * raw["tps"],
            "at_least_hardhat": (ours.tps >= hardhat.tps) if hardhat else None,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))

    table = Table(title="L1 transfers per second (same workload)")
    for col in ("system", "transfers/s", "included", "seconds", "blocks"):
        table.add_column(col, justify="right" if col != "system" else "left")
    table.add_row("raw py-evm mine_all", f"{raw['tps']:.0f}", str(raw["included_count"]),
                  f"{raw['mine_seconds']:.2f}", str(raw["block_count"]))
    table.add_row("layerlab node (RPC)", f"{ours.tps:.0f}", str(ours.included_count),
                  f"{ours.seconds:.2f}", str(ours.blocks_used))
    if hardhat:
        table.add_row("Hardhat node (RPC)", f"{hardhat.tps:.0f}", str(hardhat.included_count),
                      f"{hardhat.seconds:.2f}", str(hardhat.blocks_used))
    for name, row in durability.items():
        if isinstance(row, dict):
            table.add_row(f"layerlab node, {name}", f"{row['tps']:.0f}",
                          str(row["included_count"]), f"{row['seconds']:.2f}",
                          str(row["blocks_used"]))
    console.print(table)
    console.print(f"--sync-writes keeps {durability['sync_vs_leveldb']:.2f} of the LevelDB "
                  "node's rate")
    console.print(f"layerlab / raw py-evm = {report['ratios']['layerlab_vs_raw_pyevm']:.2f}"
                  + (f"; layerlab / Hardhat = {report['ratios']['layerlab_vs_hardhat']:.2f}"
                     if hardhat else ""))
    console.print(f"wrote {args.out}")
    return report


def measure_durability(raw_txs: tuple[bytes, ...], batch: int,
                       console: Console) -> dict[str, Any]:
    """The cost of ``--sync-writes``: the same transfers to a node on LevelDB, with every
    write fsynced before its answer and without (writes reach the OS, which survives a
    killed process but not a power cut)."""
    import tempfile

    rows: dict[str, Any] = {}
    for name, extra in (("LevelDB", ()), ("LevelDB --sync-writes", ("--sync-writes",))):
        console.print(f"layerlab node ({name}, {len(raw_txs)} transfers) ...")
        with tempfile.TemporaryDirectory(prefix="layerlab-bench-") as tmp:
            rows[name] = _row(run_layerlab(raw_txs, batch, ("--data-dir", tmp, *extra)))
    rows["sync_vs_leveldb"] = rows["LevelDB --sync-writes"]["tps"] / rows["LevelDB"]["tps"]
    return rows


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
