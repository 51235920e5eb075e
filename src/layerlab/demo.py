"""``make demo``: an embedded devnet, a token, a burst of transfers, and the comparison table.

Everything runs in this process on embedded defaults: a py-evm node (in memory, 1 s
interval blocks, the standard dev accounts) serves JSON-RPC on a free 127.0.0.1 port, and
the demo drives it through that RPC like any client would:

1. deploy an OpenZeppelin ERC20 (``contracts/test/LabToken.sol``);
2. a burst of pre-signed ETH transfers in JSON-RPC batches (throughput);
3. a burst of pre-signed ERC20 transfers (throughput, gas);
4. a few transfers one at a time, each waited for (confirmation latency).

Later capabilities (L2s) add their rows to the same table.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from rich.console import Console
from web3 import Web3

from layerlab.bench.metrics import ETH_USD, SystemResult, percentile, render_table, write_json
from layerlab.bench.rpc_load import run_rpc_load
from layerlab.contracts import deploy, load_artifact
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.node import MiningMode, Node
from layerlab.l1.runner import BackgroundNode

BLOCK_TIME = 1.0
LATENCY_SAMPLES = 10


def _presign(w3: Web3, keys: list[bytes], count: int,
             build: Callable[[int], dict[str, Any]]) -> list[bytes]:
    """Sign ``count`` EIP-1559 transactions round-robin over ``keys`` with local nonces."""
    nonces = {k: int(w3.eth.get_transaction_count(Account.from_key(k).address, "pending"))
              for k in keys}
    fee = w3.eth.gas_price * 3
    raws = []
    for i in range(count):
        key = keys[i % len(keys)]
        tx = build(i) | {"nonce": nonces[key], "chainId": w3.eth.chain_id,
                         "maxFeePerGas": fee, "maxPriorityFeePerGas": 10**9}
        nonces[key] += 1
        raws.append(bytes(Account.sign_transaction(tx, key).raw_transaction))
    return raws


def _cost(w3: Web3, raws: list[bytes]) -> tuple[float, float]:
    """Mean gas used and mean fee (wei) over the receipts of ``raws``."""
    gas = fee = 0
    for raw in raws:
        receipt = w3.eth.get_transaction_receipt(Web3.keccak(raw))
        gas += receipt["gasUsed"]
        fee += receipt["gasUsed"] * receipt["effectiveGasPrice"]
    return gas / len(raws), fee / len(raws)


def _latencies(w3: Web3, key: bytes, to: str) -> list[float]:
    """Send transfers one at a time; milliseconds from send until the receipt exists."""
    acct = Account.from_key(key)
    rng = random.Random(7)
    out = []
    for _ in range(LATENCY_SAMPLES):
        time.sleep(rng.uniform(0, BLOCK_TIME))  # arrive at a random point of the slot
        tx = {"to": to, "value": 1, "gas": 21000, "chainId": w3.eth.chain_id,
              "nonce": w3.eth.get_transaction_count(acct.address, "pending"),
              "maxFeePerGas": w3.eth.gas_price * 3, "maxPriorityFeePerGas": 10**9}
        raw = acct.sign_transaction(tx).raw_transaction
        start = time.perf_counter()
        tx_hash = w3.eth.send_raw_transaction(raw)
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _channel_rows(l1_url: str, payments: int) -> list[SystemResult]:
    """Rows for the payment-channel network (see :mod:`layerlab.bench.channels`)."""
    from layerlab.bench.channels import measure_channels

    report = measure_channels(payments=payments, hop_payments=30, l1_url=l1_url)
    pair, hops, gas = report["pair"], report["three_hop"], report["l1_gas"]
    fee = gas["fee_per_payment_wei"]
    common = {"finality": "both signatures (instant)", "gas_per_tx": gas["per_payment_amortized"],
              "fee_per_tx_gwei": fee / 1e9, "fee_per_tx_usd": fee / 1e18 * ETH_USD,
              "l1_bytes_per_tx": gas["calldata_bytes_per_payment"]}
    per_payment_ms = 1000 / pair["payments_per_second"]
    return [
        SystemResult(system="payment channel (2 nodes)", workload="micropayment",
                     transactions=pair["payments"], tps=pair["payments_per_second"],
                     soft_confirmation_ms_p50=per_payment_ms,
                     soft_confirmation_ms_p99=per_payment_ms, **common),
        SystemResult(system="payment channels (3 hops)", workload="micropayment (HTLC)",
                     transactions=hops["payments"] - hops["failed"],
                     tps=1000 / hops["mean_ms"] if hops["mean_ms"] else 0.0,
                     soft_confirmation_ms_p50=hops["p50_ms"],
                     soft_confirmation_ms_p99=hops["p99_ms"], **common),
    ]


def run_demo(transfers: int = 1000, json_out: Path | None = None,
             console: Console | None = None, network_transfers: int = 1000) -> list[SystemResult]:
    console = console or Console()
    config = ChainConfig(gas_limit=100_000_000)
    node = Node(config, mining=MiningMode.INTERVAL, block_time=BLOCK_TIME)
    keys = [a.private_key for a in config.dev_accounts]
    rows: list[SystemResult] = []
    with BackgroundNode(node) as url:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
        console.print(f"[bold]layerlab devnet[/bold] at {url}: chain {w3.eth.chain_id}, "
                      f"py-evm Cancun, {BLOCK_TIME:.0f} s blocks, in memory")

        token = deploy(w3, load_artifact("LabToken"), "Lab Token", "LAB", 10**27,
                       sender=config.dev_accounts[0].address,
                       private_key="0x" + keys[0].hex())
        console.print(f"deployed LabToken (OpenZeppelin ERC20) at {token.address}")
        # fund the other senders with tokens for the ERC20 burst
        for acct in config.dev_accounts[1:]:
            token.functions.transfer(acct.address, 10**24).transact(
                {"from": config.dev_accounts[0].address})
        w3.eth.wait_for_transaction_receipt(
            token.functions.transfer(config.dev_accounts[0].address, 0).transact(
                {"from": config.dev_accounts[0].address}), timeout=30)

        recipients = [Web3.to_checksum_address(bytes([0xAB, i % 256]) + b"\x00" * 18)
                      for i in range(100)]
        eth_raws = _presign(w3, keys, transfers, lambda i: {
            "to": recipients[i % 100], "value": 10**12, "gas": 21000})
        console.print(f"burst: {transfers} ETH transfers in JSON-RPC batches of 200 ...")
        eth_run = run_rpc_load(url, eth_raws, batch_size=200, inclusion_timeout=120)

        data = [token.functions.transfer(r, 10**18)._encode_transaction_data()
                for r in recipients]
        erc_count = max(1, transfers // 2)
        erc_raws = _presign(w3, keys, erc_count, lambda i: {
            "to": token.address, "value": 0, "gas": 80_000, "data": data[i % 100]})
        console.print(f"burst: {erc_count} ERC20 transfers ...")
        erc_run = run_rpc_load(url, erc_raws, batch_size=200, inclusion_timeout=120)

        console.print(f"latency: {LATENCY_SAMPLES} transfers sent one at a time ...")
        lat = _latencies(w3, keys[-1], recipients[0])

        for name, run, raws in (("ETH transfer", eth_run, eth_raws),
                                ("ERC20 transfer", erc_run, erc_raws)):
            gas, fee = _cost(w3, raws[:200])
            rows.append(SystemResult(
                system="L1 devnet (py-evm, 1 node)", workload=name,
                transactions=run.included_count, tps=run.tps,
                soft_confirmation_ms_p50=percentile(lat, 50),
                soft_confirmation_ms_p99=percentile(lat, 99),
                finality="1 block (single node)",
                gas_per_tx=gas, fee_per_tx_gwei=fee / 1e9,
                fee_per_tx_usd=fee / 1e18 * ETH_USD,
                l1_bytes_per_tx=sum(len(r) for r in raws) / len(raws),
            ))
            if not run.is_complete:
                console.print(f"[yellow]{name}: {run.included_count}/{run.tx_count} included; "
                              f"errors: {run.error_samples}[/yellow]")
        console.print("payment channels: 4 node processes, channels 1-2-3-4 on this L1 ...")
        rows.extend(_channel_rows(url, transfers))
    from layerlab.bench.consensus import run_network, system_row

    for consensus in ("pow", "pos"):
        console.print(f"L1 {consensus.upper()} network: 4 node processes on 127.0.0.1, "
                      f"{network_transfers} transfers ...")
        rows.append(system_row(consensus, run_network(consensus, network_transfers, settle=2.0)))
    render_table(rows, console, "layerlab comparison (same machine, same run)")
    console.print(f"fees at the devnet's base fee; USD at {ETH_USD:,.0f} USD/ETH. "
                  "Soft confirmation: send until receipt, with 1 s blocks.")
    if json_out:
        write_json(rows, json_out)
        console.print(f"wrote {json_out}")
    return rows
