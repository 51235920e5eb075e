"""Payment-channel benchmark: pair throughput, 3-hop latency, L1 gas per payment.

A network of 4 node processes on 127.0.0.1 (``layerlab channels up``) over an L1 devnet:
channels 1-2, 2-3, 3-4 funded on L1. Measured:

* **pair throughput**: direct payments (one countersigned state each, written to disk by
  both sides before the ack) from node 1 to node 2, back to back;
* **3-hop latency**: invoice on node 4, paid from node 1 (HTLCs added and settled on three
  channels), one payment at a time, p50/p99 of the payer's send-to-preimage time;
* **L1 cost**: gas to open and to close a channel, and the L1 gas per payment amortized over
  the channel's life, against the 21,000 gas of one L1 transfer.

Written to ``benchmarks/results/channels.json``. Issue targets: >= 1,000 payments/s on a pair
and a 3-hop p50 under 50 ms on loopback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from rich.console import Console
from rich.table import Table
from web3 import Web3

from layerlab.bench.metrics import percentile
from layerlab.l2.channels.network import control, down, node_entry, up
from layerlab.l2.channels.onchain import ChannelContract

L1_TRANSFER_GAS = 21_000
DEPOSIT = 10**18


def _l1_cost(contract: ChannelContract, w3: Web3, name: str,
             channel_id: bytes) -> tuple[int, int, int]:
    """Gas used, fee paid (wei) and calldata bytes of the transaction that emitted ``name``."""
    for event in contract.events(0):
        if event.name == name and event.channel_id == channel_id:
            receipt = w3.eth.get_transaction_receipt(HexBytes(event.tx_hash))
            tx = w3.eth.get_transaction(HexBytes(event.tx_hash))
            gas = int(receipt["gasUsed"])
            return gas, gas * int(receipt["effectiveGasPrice"]), len(bytes(tx["input"]))
    raise LookupError(f"no {name} event for channel 0x{channel_id.hex()}")


def measure_channels(*, payments: int = 2000, hop_payments: int = 100,
                     l1_url: str | None = None, net_dir: Path | None = None) -> dict[str, Any]:
    """Run the scenario on a fresh network and return the figures."""
    own_dir = net_dir is None
    directory = net_dir or Path(tempfile.mkdtemp(prefix="layerlab-channels-"))
    try:
        desc = up(4, directory, l1_url, with_tower=False)
        addresses = {i: node_entry(desc, i)[0] for i in range(1, 5)}
        w3 = Web3(Web3.HTTPProvider(desc["l1_url"], request_kwargs={"timeout": 60}))
        contract = ChannelContract.at(w3, desc["contract"])
        ids = {}
        for a, b in ((1, 2), (2, 3), (3, 4)):
            ids[(a, b)] = control(desc, a, "open", {"peer": addresses[b], "amount": DEPOSIT})
        time.sleep(1.0)  # nodes learn the channel graph from L1 events
        channel_12 = bytes.fromhex(ids[(1, 2)][2:])
        open_gas, open_fee, open_bytes = _l1_cost(contract, w3, "ChannelOpened", channel_12)

        pair = control(desc, 1, "send", {"channel_id": ids[(1, 2)], "amount": 1,
                                         "count": payments}, timeout=600)

        latencies = []
        failures = 0
        for _ in range(hop_payments):
            invoice = control(desc, 4, "invoice", {"amount": 1000})
            result = control(desc, 1, "pay", {"invoice": invoice})
            if result["status"] == "succeeded":
                latencies.append(float(result["ms"]))
            else:
                failures += 1

        close = control(desc, 1, "close", {"channel_id": ids[(1, 2)], "cooperative": True})
        close_gas, close_fee, close_bytes = _l1_cost(contract, w3, "CooperativelyClosed", channel_12)
        assert close_gas == int(close["gas_used"])
        lifetime = payments + hop_payments
        per_payment = (open_gas + close_gas) / lifetime
        return {
            "benchmark": "channels",
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pair": {"payments": pair["count"], "seconds": pair["seconds"],
                     "payments_per_second": pair["per_second"]},
            "three_hop": {"payments": hop_payments, "failed": failures,
                          "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                          "latencies_ms": latencies,
                          "mean_ms": statistics.fmean(latencies) if latencies else 0.0},
            "l1_gas": {"open_eth": open_gas, "cooperative_close": close_gas,
                       "payments_over_channel_life": lifetime,
                       "per_payment_amortized": per_payment,
                       "l1_transfer": L1_TRANSFER_GAS,
                       "saving_factor": L1_TRANSFER_GAS / per_payment,
                       "fee_per_payment_wei": (open_fee + close_fee) / lifetime,
                       "calldata_bytes_per_payment": (open_bytes + close_bytes) / lifetime},
            "targets": {"pair_at_least_1000_per_s": pair["per_second"] >= 1000,
                        "three_hop_p50_under_50ms": percentile(latencies, 50) < 50},
        }
    finally:
        try:
            down(directory)
        finally:
            if own_dir:
                shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--hop-payments", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/channels.json"))
    args = parser.parse_args(argv)
    report = measure_channels(payments=args.payments, hop_payments=args.hop_payments)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console = Console()
    table = Table(title="payment channels (4 node processes, 127.0.0.1)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("pair payments/s", f"{report['pair']['payments_per_second']:,.0f}")
    table.add_row("3-hop p50 / p99", f"{report['three_hop']['p50_ms']:.1f} / "
                  f"{report['three_hop']['p99_ms']:.1f} ms")
    gas = report["l1_gas"]
    table.add_row("L1 gas: open (ETH)", f"{gas['open_eth']:,}")
    table.add_row("L1 gas: cooperative close", f"{gas['cooperative_close']:,}")
    table.add_row(f"L1 gas per payment over {gas['payments_over_channel_life']:,} payments",
                  f"{gas['per_payment_amortized']:,.1f} (L1 transfer: {L1_TRANSFER_GAS:,})")
    console.print(table)
    console.print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
