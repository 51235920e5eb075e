"""Consensus and network benchmark: 4-node PoW and PoS networks of real processes.

Reports, for each consensus (written to ``benchmarks/results/consensus.json``):

* **TPS with 4 nodes**: pre-signed transfers sent by JSON-RPC batches to node 0 (the
  driver of ``bench.rpc_load``), gossiped to the others, included by whichever node mines
  or proposes; TPS = included / (first send .. last inclusion seen).
* **Block propagation**: for each block, the spread between the first node to have it
  (its producer) and the last of the four, from the nodes' own arrival clocks (one
  machine, one clock); p50 / p95 / max.
* **Time to finality**: PoW reports the k-confirmation wait (``k`` x the mean block
  interval); PoS the time from a block's slot to the moment node 0 reports it finalized
  (polling ``layerlab_status``), in seconds and slots.
* **BLS**: aggregate verification rate (``FastAggregateVerify``) for committees of 16, 64
  and 512 keys, and single verifications per second.

Every network runs on 127.0.0.1 and is torn down at the end; every loop is bounded.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from layerlab.bench.metrics import ETH_USD, percentile
from layerlab.bench.rpc_load import run_rpc_load
from layerlab.bench.workload import TransferWorkloadSpec, compute_transfer_workload
from layerlab.crypto import bls
from layerlab.l1 import network as l1net
from layerlab.primitives.types import ChainId

RESULTS = Path("benchmarks/results/consensus.json")
NODES = 4
IDLE_SECONDS = 8.0
"""Blocks made before the transfer burst: propagation of small blocks on quiet nodes."""


def bls_rates(seconds: float = 1.0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    message = b"\x42" * 32
    for n in (16, 64, 512):
        sks = [bls.secret_key(i.to_bytes(4, "big")) for i in range(n)]
        pks = [bls.public_key(sk) for sk in sks]
        agg = bls.aggregate([bls.sign(sk, message) for sk in sks])
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds and count < 10_000:
            assert bls.fast_aggregate_verify(pks, message, agg)
            count += 1
        rate = count / (time.perf_counter() - start)
        out[f"aggregate_verify_{n}_per_s"] = round(rate, 1)
        out[f"signatures_checked_{n}_per_s"] = round(rate * n)
    sk = bls.secret_key(b"single")
    pk, sig = bls.public_key(sk), bls.sign(sk, message)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds and count < 10_000:
        assert bls.verify(pk, message, sig)
        count += 1
    out["single_verify_per_s"] = round(count / (time.perf_counter() - start), 1)
    return out


def propagation(
    specs: list[l1net.NodeSpec], since: float = 0.0, until: float = float("inf")
) -> dict[str, float]:
    """Spread of first-seen times of each block over the nodes, for blocks first seen
    between ``since`` and ``until``."""
    arrivals = [l1net.rpc(s.url, "layerlab_blockArrivals", timeout=10) for s in specs]
    spreads = []
    for block in arrivals[0]:
        times = [a[block] for a in arrivals if block in a]
        if len(times) == len(specs) and since <= min(times) < until:
            spreads.append((max(times) - min(times)) * 1000)
    if not spreads:
        return {"blocks": 0}
    return {
        "blocks": len(spreads),
        "p50_ms": round(percentile(spreads, 50), 2),
        "p95_ms": round(percentile(spreads, 95), 2),
        "max_ms": round(max(spreads), 2),
    }


def run_network(consensus: str, tx_count: int, settle: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"layerlab-bench-{consensus}-") as tmp:
        directory = Path(tmp)
        specs = l1net.up(directory, NODES, consensus)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if all(len(l1net.rpc(s.url, "admin_peers")) == NODES - 1 for s in specs):
                    break
                time.sleep(0.2)
            time.sleep(settle)
            idle_start = time.time()
            time.sleep(IDLE_SECONDS)
            load_start = time.time()
            workload = compute_transfer_workload(
                TransferWorkloadSpec(tx_count=tx_count, chain_id=ChainId(31337), sender_count=10)
            )
            load = run_rpc_load(specs[0].url, workload.raw_transactions, inclusion_timeout=180)
            result: dict[str, Any] = {
                "nodes": NODES,
                "transactions": tx_count,
                "included": load.included_count,
                "tps": round(load.tps, 1),
                "seconds": round(load.seconds, 2),
                "blocks_used": load.blocks_used,
                "propagation_idle": propagation(specs, idle_start, load_start),
                "propagation": propagation(specs, load_start),
            }
            costs: dict[str, float] = {}
            result["soft_confirmation_ms"] = soft_confirmations(specs[0].url, specs[1].url, costs=costs)
            result["fee_wei_per_transfer"] = costs.get("fee_wei", 0)
            result["bytes_per_transfer"] = costs.get("bytes", 0)
            status = l1net.rpc(specs[0].url, "layerlab_status")
            if consensus == "pow":
                head = status["head"]
                genesis = l1net.rpc(specs[0].url, "eth_getBlockByNumber", ["0x0", False])
                interval = (head["timestamp"] - int(genesis["timestamp"], 16)) / max(head["number"], 1)
                k = status["finalized"]["k"]
                result["finality"] = {
                    "kind": f"{k} confirmations",
                    "mean_block_interval_s": round(interval, 2),
                    "seconds": round(k * interval, 1),
                    "attacker_10pct_success": status["finalized"]["attacker_success_10pct"],
                }
            else:
                result["finality"] = pos_finality(specs[0], status)
            result["reorgs"] = status["reorgs"]
            return result
        finally:
            l1net.down(directory)


def soft_confirmations(
    send_url: str, watch_url: str, samples: int = 5, costs: dict[str, float] | None = None
) -> list[float]:
    """Milliseconds from sending one transfer to node 0 until node 1 has its receipt
    (bounded: ``samples`` transfers, 30 s each at most); ``costs`` gets the fee in wei
    and the size in bytes of the last one."""
    from eth_account import Account

    from layerlab.crypto.keys import derive_dev_accounts

    sender = derive_dev_accounts()[9]
    out: list[float] = []
    for _ in range(samples):
        nonce = int(l1net.rpc(send_url, "eth_getTransactionCount", [sender.address, "pending"]), 16)
        tx = {
            "chainId": 31337,
            "nonce": nonce,
            "to": b"\xab" * 20,
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 100 * 10**9,
            "maxPriorityFeePerGas": 2 * 10**9,
            "type": 2,
        }
        raw = "0x" + bytes(Account.sign_transaction(tx, sender.private_key).raw_transaction).hex()
        start = time.perf_counter()
        tx_hash = l1net.rpc(send_url, "eth_sendRawTransaction", [raw])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            receipt = l1net.rpc(watch_url, "eth_getTransactionReceipt", [tx_hash])
            if receipt:
                out.append(round((time.perf_counter() - start) * 1000, 1))
                if costs is not None:
                    costs["fee_wei"] = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
                    costs["bytes"] = len(raw) // 2 - 1
                break
            time.sleep(0.02)
    return out


def system_row(consensus: str, result: dict[str, Any]) -> Any:
    """The demo's comparison row for a 4-node network run."""
    from layerlab.bench.metrics import SystemResult

    fin = result["finality"]
    if consensus == "pow":
        finality = f"{fin['kind']} ~{fin['seconds']:.0f} s"
    else:
        finality = f"checkpoint ~{fin.get('seconds_mean', 0):.0f} s ({fin.get('slots_mean', 0):.0f} slots)"
    lat = result["soft_confirmation_ms"]
    fee = float(result["fee_wei_per_transfer"])
    return SystemResult(
        system=f"L1 {consensus.upper()} network (4 nodes)",
        workload="ETH transfer",
        transactions=result["included"],
        tps=result["tps"],
        soft_confirmation_ms_p50=percentile(lat, 50),
        soft_confirmation_ms_p99=percentile(lat, 99),
        finality=finality,
        gas_per_tx=21_000.0,
        fee_per_tx_gwei=fee / 1e9,
        fee_per_tx_usd=fee / 1e18 * ETH_USD,
        l1_bytes_per_tx=float(result["bytes_per_transfer"]),
    )


def pos_finality(spec: l1net.NodeSpec, status: dict[str, Any], samples: int = 6) -> dict[str, Any]:
    """Seconds from a block's slot to node 0 reporting it finalized (bounded wait)."""
    delays: list[float] = []
    seen_final = status["finalized"]["number"]
    deadline = time.monotonic() + 60
    while len(delays) < samples and time.monotonic() < deadline:
        st = l1net.rpc(spec.url, "layerlab_status")
        number = st["finalized"]["number"]
        if number > seen_final:
            block = l1net.rpc(spec.url, "eth_getBlockByNumber", [hex(number), False])
            delays.append(time.time() - int(block["timestamp"], 16))
            seen_final = number
        time.sleep(0.1)
    if not delays:
        return {"samples": 0}
    mean = statistics.mean(delays)
    return {
        "samples": len(delays),
        "seconds_mean": round(mean, 2),
        "seconds_max": round(max(delays), 2),
        "slots_mean": round(mean / 1.0, 1),
        "slot_seconds": 1,
        "slots_per_epoch": 4,
        "note": "minimal preset; mainnet-like (12 s slots, 32-slot epochs) needs ~2.5 epochs = ~16 min",
    }


def main() -> None:
    results = {"bls": bls_rates()}
    print(json.dumps({"bls": results["bls"]}, indent=1), flush=True)
    for consensus in ("pow", "pos"):
        results[consensus] = run_network(consensus, tx_count=3000, settle=3.0)
        print(json.dumps({consensus: results[consensus]}, indent=1), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
