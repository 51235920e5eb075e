"""``make bench``: execution-shard throughput with 1, 2 and 4 shards, and cross-shard latency.

For each shard count S a real sharded network is started (``layerlab net up --shards S``:
S shard node processes with 1 s interval blocks, and the beacon coordinator crosslinking
them every 1 s slot). Each shard gets its own pre-signed transfer workload (its chain id,
the dev senders), and all shards are loaded at the same time, one driver thread per shard
(:func:`layerlab.bench.rpc_load.run_rpc_load`: JSON-RPC batches of
``eth_sendRawTransaction``, counted when seen in a block). Total transfers/s =
transfers included on all shards / the longest shard's time from first send to last
inclusion. Shards are separate processes, so they execute in parallel up to the core
count; beyond it they share the cores (and the coordinator takes its slice).

The coordinator runs without its py-evm replicas here (``verify=False``): re-executing
every shard block is the fisherman's job, a cost of its own, not the shards' throughput.

Cross-shard latency: on the 2-shard network, a ``send_cross`` on shard 0, then the slots
until shard 1 holds a relayed finalized crosslink covering the send's block (so the
transfer is claimable), and the claim itself. Results go to
``benchmarks/results/shards.json`` and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from layerlab.bench.rpc_load import RpcLoadResult, run_rpc_load
from layerlab.bench.workload import TransferWorkloadSpec, compute_transfer_workload
from layerlab.errors import LayerlabError
from layerlab.primitives.types import ChainId, Wei

RESULTS = Path("benchmarks/results")
GAS_LIMIT = 1_000_000_000
SHARD_COUNTS = (1, 2, 4)


def _load_shards(urls: list[str], chain_ids: list[int], per_shard: int, senders: int,
                 batch: int) -> list[RpcLoadResult]:
    workloads = [compute_transfer_workload(TransferWorkloadSpec(
        tx_count=per_shard, chain_id=ChainId(chain_id), sender_count=senders, max_fee_per_gas=Wei(10**10)))
        for chain_id in chain_ids]
    with ThreadPoolExecutor(len(urls)) as pool:
        futures = [pool.submit(run_rpc_load, url, w.raw_transactions, batch_size=batch, inclusion_timeout=120)
                   for url, w in zip(urls, workloads, strict=True)]
        return [f.result() for f in futures]


def measure_throughput(shards: int, per_shard: int, senders: int, batch: int, root: Path) -> dict[str, Any]:
    from layerlab.l1.sharding import network as shardnet

    directory = root / f"shards{shards}"
    desc = shardnet.up(directory, shards, verify=False, gas_limit=GAS_LIMIT)
    try:
        urls = [f"http://127.0.0.1:{s['rpc_port']}" for s in desc["shards"]]
        results = _load_shards(urls, [s["chain_id"] for s in desc["shards"]], per_shard, senders, batch)
        st = shardnet.status(directory)
    finally:
        shardnet.down(directory)
    included = sum(r.included_count for r in results)
    seconds = max(r.seconds for r in results)
    return {
        "shards": shards, "transfers": shards * per_shard, "included": included, "seconds": seconds,
        "tps": included / seconds if seconds else 0.0,
        "per_shard": [asdict(r) for r in results],
        "complete": all(r.is_complete for r in results),
        "beacon": {"slot": st["beacon"]["slot"],
                   "finalized_epoch": (st["beacon"]["finalized"] or {}).get("epoch"),
                   "crosslinked": [(r["crosslink"] or {}).get("number") for r in st["shards"]]},
    }


def measure_cross_shard_latency(root: Path, timeout: float = 90) -> dict[str, Any]:
    """Slots from a ``send_cross`` on shard 0 until shard 1 can pay it (a relayed finalized
    crosslink at or after the send's block), then the claim."""
    from eth_account import Account
    from web3 import Web3

    from layerlab.l1.chain.config import parse_config
    from layerlab.l1.sharding import crossshard as xs
    from layerlab.l1.sharding import network as shardnet

    keys = [a.private_key for a in parse_config({}).dev_accounts]
    directory = root / "latency"
    desc = shardnet.up(directory, 2)
    try:
        src, dst = (Web3(Web3.HTTPProvider(f"http://127.0.0.1:{s['rpc_port']}",
                                           request_kwargs={"timeout": 30})) for s in desc["shards"])
        bob = Account.from_key(keys[8]).address
        started = time.monotonic()
        receipt = xs.send_cross(src, keys[6], 1, bob, 10**18)
        sent_slot = shardnet.status(directory)["beacon"]["slot"]
        deadline = time.monotonic() + timeout
        while True:
            st = shardnet.status(directory)
            relayed = (st["beacon"]["relayed"] or {}).get("1", {}).get("0")
            if relayed is not None and relayed >= receipt.block_number:
                break
            if time.monotonic() > deadline:
                raise LayerlabError(
                    f"no finalized crosslink of shard 0 relayed to shard 1 within {timeout} s")
            time.sleep(0.2)
        claimable_slot, claimable_s = st["beacon"]["slot"], time.monotonic() - started
        xs.claim(dst, keys[7], xs.build_claim(src, receipt, relayed))
        claimed_s = time.monotonic() - started
        claimed_slot = shardnet.status(directory)["beacon"]["slot"]
    finally:
        shardnet.down(directory)
    return {"sent_block": receipt.block_number, "relayed_block": relayed,
            "latency_slots": claimable_slot - sent_slot, "latency_seconds": claimable_s,
            "claimed_after_slots": claimed_slot - sent_slot, "claimed_after_seconds": claimed_s}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-shard", type=int, default=1_500, help="transfers sent to each shard")
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--shards", type=str, default=",".join(str(s) for s in SHARD_COUNTS))
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "shards.json")
    args = parser.parse_args(argv)
    console = Console()
    counts = [int(s) for s in args.shards.split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="layerlab-shards-") as tmp:
        for shards in counts:
            console.print(f"{shards} shard(s): {args.per_shard} transfers each ...")
            rows.append(measure_throughput(shards, args.per_shard, args.senders, args.batch_size, Path(tmp)))
        latency = None if args.skip_latency else measure_cross_shard_latency(Path(tmp))
    base = rows[0]["tps"] if rows else 0.0
    report: dict[str, Any] = {
        "benchmark": "shards",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "load_average_at_end": os.getloadavg()},
        "workload": {"per_shard": args.per_shard, "senders": args.senders, "batch_size": args.batch_size,
                     "block_time_s": 1.0, "slot_s": 1.0, "coordinator_verifies": False},
        "throughput": rows,
        "speedup": {str(r["shards"]): (r["tps"] / base if base else None) for r in rows},
        "cross_shard": latency,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    table = Table(title=f"Sharded L1: total transfers/s ({os.cpu_count()} cores)")
    for col in ("shards", "transfers/s", "speed-up", "included", "seconds"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["shards"]), f"{r['tps']:.0f}", f"{r['tps'] / base:.2f}x" if base else "-",
                      f"{r['included']}/{r['transfers']}", f"{r['seconds']:.2f}")
    console.print(table)
    if latency:
        console.print(f"cross-shard transfer 0 -> 1: claimable after {latency['latency_slots']} slots "
                      f"({latency['latency_seconds']:.1f} s), "
                      f"claimed after {latency['claimed_after_seconds']:.1f} s")
    console.print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
