"""``layerlab compare``: the same workloads on every system, measured the same way.

Systems run one after the other on this machine, each on 127.0.0.1 only, each torn down
before the next starts so that none steals the others' cores:

* **L1 devnet**: one py-evm node in this process with interval blocks, all four
  workloads (:mod:`layerlab.bench.l1_workloads`); the scaling section repeats the
  transfer burst at several block gas limits.
* **L1 PoW / PoS / PoW->PoS (the Merge)**: networks of node processes (``net up``); the
  workloads are sent to node 0 and finality is probed by sending transfers and polling
  ``layerlab_status`` until the node reports their block final (k confirmations, a
  finalized checkpoint).
* **Payment channels**: four channel-node processes on the devnet
  (:mod:`layerlab.bench.channels`): direct micropayments and 3-hop HTLC payments; L1 gas
  is the open and close over the channel's payments.
* **Plasma, the optimistic rollup, the ZK rollup**: their contracts on a devnet node
  process and their operators' machines (:mod:`layerlab.bench.plasma`,
  :mod:`layerlab.bench.rollup`, :mod:`layerlab.bench.zk`); L1 gas and bytes come from the
  block, batch and proof transactions' receipts.
* A system that is not built yet (the sharded L1) shows as not available, with its issue.

Every figure comes from receipts, blocks, and the services' own answers; see
:mod:`layerlab.bench.compare_model` for the definitions.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from layerlab.bench.compare_model import (
    MEASURED,
    NOT_AVAILABLE,
    UNSUPPORTED,
    WORKLOADS,
    Measurement,
    SystemInfo,
    TrustModel,
)
from layerlab.bench.l1_workloads import L1WorkloadRun, run_l1_workload
from layerlab.crypto.keys import derive_dev_accounts

log = logging.getLogger(__name__)

__all__ = ["SYSTEMS", "CompareOptions", "CompareResult", "ScalingPoint", "run_compare"]

DEVNET_BLOCK_TIME = 1.0
MERGE_BLOCK = 12
"""The Merge network's fork block. The burst waits until the PoW chain is two blocks short
of it (bounded), so the transfers cross the fork; the row says which blocks they filled."""
MERGE_LEAD_BLOCKS = 2
SCALING_BURST = 2000
"""Transfers per scaling run: more than a 15M-gas block holds (714), so the limit shows."""
CHANNEL_SETTLE_BLOCKS = 20
"""The settle (dispute) window, in L1 blocks, that the channel bench's nodes open with."""
ZK_QUICK_TX, ZK_FULL_TX = 4, 16
"""Transfers the ZK rollup proves in the quick and full comparisons (each batch of two is
seconds of proving on 2 cores, so a --tx burst would take hours; the rows say the count)."""


def _l1_trust(producers: int, kind: str) -> TrustModel:
    return TrustModel(
        custody="no one without the key; a majority of "
                + ("hash power" if kind == "pow" else "stake" if kind == "pos" else
                   "the single node's operator") + " can reorder or censor",
        watch="nothing",
        operator_gone="the chain stops until another producer runs"
        if producers == 1 else "the others carry on",
        producers=producers, user_must_watch=False, data_on_l1=True, validity_proven=True)


def _l1_system(key: str, name: str, kind: str, producers: int, finality: str) -> SystemInfo:
    return SystemInfo(key, name, "L1", "block gas limit" if producers == 1 else "node count",
                      _l1_trust(producers, kind), finality, "none: funds are on the L1")


SYSTEMS: dict[str, SystemInfo] = {s.key: s for s in (
    _l1_system("l1-devnet", "L1 devnet (py-evm, 1 node)", "devnet", 1,
               "its own block (one node: no fork to lose it to)"),
    _l1_system("l1-pow", "L1 PoW network (4 nodes)", "pow", 4,
               "k confirmations (minimal preset: 6)"),
    _l1_system("l1-pos", "L1 PoS network (4 nodes)", "pos", 4,
               "finalized checkpoint (Casper FFG, two epochs)"),
    _l1_system("l1-merge", "L1 PoW->PoS at the Merge (4 nodes)", "pos", 4,
               "k confirmations before the fork, checkpoints after"),
    SystemInfo("l1-sharded", "L1 with execution shards", "L1", "shard count",
               _l1_trust(4, "pos"), "crosslinked into a finalized beacon block",
               "none: funds are on the L1 (a cross-shard transfer waits for its receipt's "
               "crosslink)", built=False, issue=16),
    SystemInfo("channels", "payment channels (4 nodes, 3 channels)", "L2", "route length",
               TrustModel(
                   custody="no one: every state carries both signatures",
                   watch="the L1, for a revoked state closing the channel, within the settle "
                         "window (or a watchtower)",
                   operator_gone="close unilaterally with the last signed state and wait out "
                                 "the settle window",
                   producers=2, user_must_watch=True, data_on_l1=False, validity_proven=True),
               "both signatures (instant)",
               f"cooperative close: 1 L1 block; unilateral: the {CHANNEL_SETTLE_BLOCKS}-block "
               "settle window"),
    SystemInfo("plasma", "Plasma (UTXO child chain, MVP + in-flight exits)", "L2", "block size",
               TrustModel("no one can take funds of a user who watches: an invalid or withheld "
                          "block is answered by exits of the older outputs, which go first; "
                          "the operator can censor and withhold data",
                          "every child block, at least once per exit period (or run a watcher)",
                          "everyone exits to L1 (a mass exit: one L1 exit per output)",
                          1, True, False, False),
               "the block's root committed on L1 (withdrawal: the exit period after)",
               "the exit period (an output's exit waits 1 to 2 periods)"),
    SystemInfo("optimistic-rollup", "optimistic rollup", "L2", "batch size",
               TrustModel("no one, if one honest verifier challenges in the window",
                          "one honest verifier must watch the batches",
                          "anyone may post batches once the sequencer is overdue",
                          1, False, True, False),
               "challenge window over (minimal preset: 600 s; mainnet-like: 7 days)",
               "the challenge window"),
    SystemInfo("zk-rollup", "ZK rollup (Groth16)", "L2", "batch size",
               TrustModel("no one: every batch carries a validity proof",
                          "nothing", "users exit with a proof against the last root",
                          1, False, True, True),
               "the batch's proof verified on L1", "the batch that carries it: proven and "
               "verified on L1, no window"),
)}

UNSUPPORTED_REASONS: dict[tuple[str, str], str] = {
    ("channels", "nft"): "a channel holds one asset between its two parties: there is no "
                         "shared state in which a token contract could mint",
    ("channels", "swap"): "a pool is state shared by every trader; a channel is state of two "
                          "parties, so an AMM cannot live in one",
    ("zk-rollup", "nft"): "the circuit proves ETH deposits, transfers and withdrawals only; "
                          "NFT leaves would need their own tree and constraints",
    ("zk-rollup", "swap"): "an AMM step in the circuit (a division, a pool leaf) is not "
                           "built; the batch circuit proves transfers only",
    ("plasma", "nft"): "Plasma MVP's outputs are fungible amounts; an NFT needs per-coin "
                       "histories (Plasma Cash), which this chain does not implement",
    ("plasma", "swap"): "an AMM pool is state no single owner can exit with: the exit game "
                        "guards owned outputs only (the reason rollups replaced Plasma)",
}


@dataclass(frozen=True, slots=True)
class CompareOptions:
    tx: int = 1000
    """Transactions per workload burst."""
    nodes: int = 4
    batch_size: int = 200
    preset: str = "minimal"
    systems: tuple[str, ...] = tuple(SYSTEMS)
    workloads: tuple[str, ...] = tuple(WORKLOADS)
    quick: bool = False
    """Networks run transfers only; the scaling section runs two sizes."""
    latency_samples: int = 5
    eth_price: float = 3000.0
    currency: str = "USD"
    gas_limits: tuple[int, ...] = (15_000_000, 30_000_000, 100_000_000)


@dataclass(frozen=True, slots=True)
class ScalingPoint:
    system: str
    knob: str
    value: float
    tps: float | None
    l1_gas_per_tx: float | None = None
    soft_p50_ms: float | None = None


@dataclass(slots=True)
class CompareResult:
    options: CompareOptions
    rows: list[Measurement] = field(default_factory=list)
    scaling: list[ScalingPoint] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    seconds: float = 0.0


Progress = Callable[[str], None]


def _l1_row(system: str, run: L1WorkloadRun, final_s: tuple[float, ...], source: str
            ) -> Measurement:
    load = run.load
    problems = []
    if not load.is_complete:
        problems.append(f"{load.included_count}/{load.tx_count} included; "
                        + "; ".join(load.error_samples))
    if run.failed:
        problems.append(f"{run.failed} of {run.receipts_read} receipts read reverted")
    reason = "; ".join(problems)
    return Measurement(
        system=system, workload=run.workload, status=MEASURED, reason=reason,
        transactions=load.included_count, seconds=load.seconds, tps=load.tps,
        soft_ms=run.latency_ms, final_s=final_s, l1_gas_per_tx=run.gas_per_tx,
        l1_bytes_per_tx=run.bytes_per_tx, fee_wei_per_tx=run.fee_wei_per_tx,
        withdrawal_delay_s=0.0, withdrawal_delay_blocks=0, source=source,
        extra={"blocks_used": load.blocks_used, "first_block": load.first_block,
               "last_block": load.last_block, "receipts_read": run.receipts_read,
               "reverted": run.failed})


@contextlib.contextmanager
def _devnet(gas_limit: int = 100_000_000) -> Iterator[tuple[str, list[bytes]]]:
    from layerlab.l1.chain.config import ChainConfig
    from layerlab.l1.launcher import BackgroundNode
    from layerlab.l1.node import MiningMode, Node

    config = ChainConfig(gas_limit=gas_limit)
    node = Node(config, mining=MiningMode.INTERVAL, block_time=DEVNET_BLOCK_TIME)
    with BackgroundNode(node) as url:
        yield url, [a.private_key for a in config.dev_accounts]


@contextlib.contextmanager
def devnet_process(accounts: int = 10) -> Iterator[tuple[str, list[bytes]]]:
    """A devnet node in its own OS process (automining) with ``accounts`` funded dev
    accounts, for services that share the machine with it: an L2 sequencer in this process
    must not share its GIL with py-evm. Yields its URL and the accounts' keys."""
    from layerlab.orchestration import start_devnet, stop

    with tempfile.TemporaryDirectory(prefix="layerlab-l1-") as tmp:
        pid, url = start_devnet(Path(tmp), accounts=accounts)
        try:
            yield url, [a.private_key for a in derive_dev_accounts(count=accounts)]
        finally:
            stop([pid])


def _run_devnet(opts: CompareOptions, progress: Progress) -> tuple[list[Measurement],
                                                                    list[ScalingPoint]]:
    rows: list[Measurement] = []
    with _devnet() as (url, keys):
        for workload in opts.workloads:
            progress(f"L1 devnet: {opts.tx} x {workload}")
            run = run_l1_workload(url, keys, workload, opts.tx,
                                  latency_samples=opts.latency_samples,
                                  block_time=DEVNET_BLOCK_TIME)
            # one node, no fork: the block that holds it is final, so finality = inclusion
            rows.append(_l1_row("l1-devnet", run, tuple(ms / 1000 for ms in run.latency_ms),
                                "receipts of the burst; latency: send until receipt"))
    points = []
    limits = opts.gas_limits[::2] if opts.quick else opts.gas_limits
    burst = max(opts.tx, SCALING_BURST)
    for limit in limits:
        progress(f"L1 devnet scaling: {burst} transfers at a {limit:,} gas limit")
        with _devnet(limit) as (url, keys):
            run = run_l1_workload(url, keys, "transfer", burst, latency_samples=1,
                                  block_time=DEVNET_BLOCK_TIME)
        points.append(ScalingPoint("l1-devnet", "block gas limit", limit, run.load.tps,
                                   run.gas_per_tx, None))
    return rows, points


def measure_finality(url: str, samples: int = 3, timeout: float = 120.0) -> list[float]:
    """Seconds from sending a transfer until the node reports its block final.

    Final is what ``layerlab_status`` says: the k-deep block under PoW, the finalized
    checkpoint under PoS. Bounded: ``samples`` transfers and ``timeout`` seconds in all.
    """
    from eth_account import Account

    from layerlab.orchestration import rpc_call

    sender = derive_dev_accounts()[9]
    chain_id = int(rpc_call(url, "eth_chainId"), 16)
    sent: list[tuple[float, str]] = []
    for _ in range(samples):
        nonce = int(rpc_call(url, "eth_getTransactionCount", [sender.address, "pending"]), 16)
        tx = {"chainId": chain_id, "nonce": nonce, "to": b"\xab" * 20, "value": 1,
              "gas": 21_000, "maxFeePerGas": 100 * 10**9, "maxPriorityFeePerGas": 2 * 10**9,
              "type": 2}
        raw = "0x" + bytes(Account.sign_transaction(tx, sender.private_key).raw_transaction).hex()
        sent.append((time.monotonic(), rpc_call(url, "eth_sendRawTransaction", [raw])))
        time.sleep(0.7)
    done: dict[str, float] = {}
    blocks: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(sent) and time.monotonic() < deadline:
        status = rpc_call(url, "layerlab_status")
        final = int(status.get("finalized", {}).get("number", -1))
        for start, tx_hash in sent:
            if tx_hash in done:
                continue
            if tx_hash not in blocks:
                receipt = rpc_call(url, "eth_getTransactionReceipt", [tx_hash])
                if receipt:
                    blocks[tx_hash] = int(receipt["blockNumber"], 16)
            if tx_hash in blocks and final >= blocks[tx_hash]:
                done[tx_hash] = time.monotonic() - start
        time.sleep(0.2)
    return sorted(done.values())


def _run_network(system: str, opts: CompareOptions, progress: Progress) -> list[Measurement]:
    from layerlab.l1 import network as l1net
    from layerlab.orchestration import rpc_call

    consensus = {"l1-pow": "pow", "l1-pos": "pos", "l1-merge": "merge"}[system]
    workloads = [w for w in opts.workloads if not opts.quick or w == "transfer"]
    rows: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix=f"layerlab-compare-{consensus}-") as tmp:
        directory = Path(tmp)
        progress(f"{SYSTEMS[system].name}: starting {opts.nodes} node processes")
        specs = l1net.up(directory, opts.nodes, consensus, preset=opts.preset,
                          merge_block=MERGE_BLOCK if consensus == "merge" else None)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(
                    len(rpc_call(s.url, "admin_peers")) == opts.nodes - 1 for s in specs):
                time.sleep(0.2)
            keys = [a.private_key for a in derive_dev_accounts()[:9]]
            url = specs[0].url
            if consensus == "merge":
                progress(f"{SYSTEMS[system].name}: mining up to the fork")
                deadline = time.monotonic() + 90
                while (int(rpc_call(url, "eth_blockNumber"), 16) < MERGE_BLOCK - MERGE_LEAD_BLOCKS
                       and time.monotonic() < deadline):
                    time.sleep(0.2)
            for workload in workloads:
                progress(f"{SYSTEMS[system].name}: {opts.tx} x {workload}")
                first = int(rpc_call(url, "eth_blockNumber"), 16) + 1
                run = run_l1_workload(url, keys, workload, opts.tx,
                                      latency_samples=opts.latency_samples, block_time=1.0,
                                      inclusion_timeout=180)
                row = _l1_row(system, run, (), "receipts from node 0; latency: send to "
                              "node 0 until its receipt")
                if consensus == "merge":
                    last = int(rpc_call(url, "eth_blockNumber"), 16)
                    side = ("before" if last < MERGE_BLOCK else "after" if first >= MERGE_BLOCK
                            else "across")
                    row = replace(row, reason=f"the burst ran over blocks {first}-{last}: "
                                  f"{side} the fork at block {MERGE_BLOCK}",
                                  extra=row.extra | {"burst_blocks": [first, last]})
                rows.append(row)
            progress(f"{SYSTEMS[system].name}: waiting for finality")
            final = tuple(measure_finality(url))
            rows = [replace(r, final_s=final) for r in rows]
            if consensus == "merge":
                # where the burst fell against the fork: before, across or after it
                rows = [replace(r, extra=r.extra | {"merge_block": MERGE_BLOCK}) for r in rows]
        finally:
            l1net.down(directory)
    return rows


def _run_channels(opts: CompareOptions, progress: Progress) -> tuple[list[Measurement],
                                                                      list[ScalingPoint]]:
    from layerlab.bench.channels import measure_channels

    with _devnet() as (url, _keys):
        progress(f"payment channels: 4 node processes, {opts.tx} direct payments and 3-hop "
                 "HTLC payments")
        report = measure_channels(payments=opts.tx, hop_payments=min(opts.tx, 30), l1_url=url)
    pair, hops, gas = report["pair"], report["three_hop"], report["l1_gas"]
    per_payment_ms = 1000 / pair["payments_per_second"] if pair["payments_per_second"] else None
    common: dict[str, Any] = {
        "l1_gas_per_tx": gas["per_payment_amortized"],
        "l1_bytes_per_tx": gas["calldata_bytes_per_payment"],
        "fee_wei_per_tx": gas["fee_per_payment_wei"],
        "withdrawal_delay_s": CHANNEL_SETTLE_BLOCKS * DEVNET_BLOCK_TIME,
        "withdrawal_delay_blocks": CHANNEL_SETTLE_BLOCKS,
        "source": "the channel nodes' own timings; L1 gas from the open and close receipts "
                  "spread over the channel's payments",
    }
    hop_ms = tuple(hops.get("latencies_ms", ()))
    rows = []
    if "micropayment" in opts.workloads:
        soft = (per_payment_ms,) if per_payment_ms else ()
        rows.append(Measurement(
            system="channels", workload="micropayment", status=MEASURED,
            transactions=pair["payments"], seconds=pair["seconds"],
            tps=pair["payments_per_second"], soft_ms=soft,
            final_s=tuple(s / 1000 for s in soft),
            extra={"kind": "direct payments on one channel (mean time per payment)"},
            **common))
    if "transfer" in opts.workloads:
        ok = hops["payments"] - hops["failed"]
        rows.append(Measurement(
            system="channels", workload="transfer", status=MEASURED,
            reason=f"{hops['failed']} of {hops['payments']} failed" if hops["failed"] else "",
            transactions=ok, seconds=sum(hop_ms) / 1000,
            tps=1000 / hops["mean_ms"] if hops["mean_ms"] else None,
            soft_ms=hop_ms, final_s=tuple(ms / 1000 for ms in hop_ms),
            extra={"kind": "3-hop HTLC payments to a payee with no direct channel, "
                           "one at a time"},
            **common))
    points = [ScalingPoint("channels", "route length", 1, pair["payments_per_second"], None,
                           per_payment_ms),
              ScalingPoint("channels", "route length", 3,
                           1000 / hops["mean_ms"] if hops["mean_ms"] else None, None,
                           hops["p50_ms"])]
    return rows, points


def _run_rollup(opts: CompareOptions, progress: Progress) -> tuple[list[Measurement],
                                                                    list[ScalingPoint]]:
    from layerlab.bench.rollup import RollupRun, measure_rollup
    from layerlab.l2.rollup.optimistic import MAINNET_LIKE, MINIMAL

    config = MAINNET_LIKE if opts.preset == "mainnet-like" else MINIMAL

    def row(run: RollupRun) -> Measurement:
        n = max(run.transactions, 1)
        return Measurement(
            system="optimistic-rollup", workload=run.workload, status=MEASURED,
            reason="; ".join(filter(None, [
                f"{run.refused} refused by the sequencer" if run.refused else "",
                f"TPS is what reached L1; the sequencer admits "
                f"{run.transactions / run.execute_seconds:,.0f}/s" if run.execute_seconds else ""])),
            transactions=run.transactions, seconds=run.seconds, tps=run.tps,
            soft_ms=tuple(run.soft_ms), final_s=(float(run.challenge_window),),
            l1_gas_per_tx=run.l1_gas / n, l1_bytes_per_tx=run.inbox_bytes / n,
            fee_wei_per_tx=run.l1_fee_wei / n, withdrawal_delay_s=float(run.challenge_window),
            source="sequencer admission timings (in process); L1 gas, fee and bytes from the "
                   "submitBatch receipts; finality = the contract's challenge window",
            extra={"batches": run.batches, "batch_size": opts.batch_size,
                   "compressed_bytes_per_tx": run.compressed_bytes / n,
                   "execute_tps": run.transactions / run.execute_seconds
                   if run.execute_seconds else None,
                   **({"blobs": blob_figures(blob_run)}
                      if blob_run is not None and run.workload == "transfer" else {})})

    def blob_figures(run: RollupRun) -> dict[str, Any]:
        """The same transfers in the same batch size, posted as blobs (submitBatchBlobs)."""
        n = max(run.transactions, 1)
        return {"transactions": run.transactions, "batches": run.batches, "blobs": run.blobs,
                "l1_gas_per_tx": run.l1_gas / n, "blob_gas_per_tx": run.blob_gas / n,
                "fee_wei_per_tx": run.l1_fee_wei / n,
                "blob_fee_wei_per_tx": run.blob_fee_wei / n,
                "blob_bytes_per_tx": run.inbox_bytes / n,
                "source": "submitBatchBlobs receipts (gasUsed x effectiveGasPrice + "
                          "blobGasUsed x blobGasPrice); blob mode refuses disputes"}

    workloads = tuple(w for w in opts.workloads if w in WORKLOADS)
    with devnet_process() as (url, keys):
        progress(f"optimistic rollup: {opts.tx} x {', '.join(workloads)} in batches of "
                 f"{opts.batch_size}")
        runs, _setup = measure_rollup(url, keys, workloads, opts.tx, opts.batch_size, config)
        blob_run: RollupRun | None = None
        if "transfer" in workloads:
            progress(f"optimistic rollup: {opts.tx} transfers in batches of {opts.batch_size}, "
                     "posted as blobs")
            (blob_run,), _ = measure_rollup(url, keys, ("transfer",), opts.tx, opts.batch_size,
                                            config, blobs=True)
        rows = [row(run) for run in runs]
        blob_run = None  # the scaling points below are calldata runs
        sizes = [max(opts.batch_size // 4, 1)] + ([] if opts.quick else [opts.batch_size * 2])
        transfer = next((r for r in rows if r.workload == "transfer"), None)
        by_size = {opts.batch_size: transfer} if transfer else {}
        for size in sizes:
            progress(f"optimistic rollup: scaling, batch size {size}")
            (run,), _ = measure_rollup(url, keys, ("transfer",), 2 * size, size, config)
            by_size[size] = row(run)
    points = [ScalingPoint("optimistic-rollup", "batch size", size, r.tps, r.l1_gas_per_tx,
                           r.soft_p50_ms) for size, r in sorted(by_size.items())]
    return rows, points


def _run_plasma(opts: CompareOptions, progress: Progress) -> tuple[list[Measurement],
                                                                    list[ScalingPoint]]:
    from layerlab.bench.plasma import PlasmaRun, measure_plasma
    from layerlab.l2.plasma.onchain import MAINNET_LIKE, MINIMAL

    config = MAINNET_LIKE if opts.preset == "mainnet-like" else MINIMAL
    block_size = opts.batch_size

    def row(run: PlasmaRun, setup: dict[str, Any]) -> Measurement:
        n = max(run.transactions, 1)
        exit_info = setup.get("exit") or {}
        mass = setup.get("mass_exit")
        note = (f"mass exit after a withheld block: {mass['exits']} outputs, "
                f"{mass['gas'] / 1e6:.2f} M L1 gas ({mass['gas_per_exit'] / 1e3:.0f}k each), "
                f"{mass['l1_blocks']} L1 blocks, {mass['seconds']:.1f} s"
                if mass and mass.get("exits") and run.workload == "transfer" else "")
        return Measurement(
            system="plasma", workload=run.workload, status=MEASURED, reason=note,
            transactions=run.transactions, seconds=run.seconds, tps=run.tps,
            soft_ms=tuple(run.soft_ms), final_s=tuple(run.final_s),
            l1_gas_per_tx=run.l1_gas / n, l1_bytes_per_tx=run.l1_bytes / n,
            fee_wei_per_tx=run.l1_fee_wei / n,
            withdrawal_delay_s=float(exit_info.get("delay_s", 2 * run.exit_period)),
            source="operator JSON-RPC round trips (soft: validated and journaled); final: "
                   "until the block's submitBlock receipt; L1 gas, fee and bytes from those "
                   "receipts; withdrawal delay from a real exit's exitableAt",
            extra={"blocks": run.blocks, "block_size": block_size, **{
                k: v for k, v in setup.items() if k in ("exit", "mass_exit", "setup_gas")}})

    workloads = tuple(w for w in opts.workloads if (("plasma", w) not in UNSUPPORTED_REASONS))
    with devnet_process() as (url, keys):
        progress(f"Plasma: {opts.tx} x {', '.join(workloads)} in blocks of {block_size}")
        runs, setup = measure_plasma(url, keys, workloads, opts.tx, block_size, config)
        rows = [row(run, setup) for run in runs]
    by_size = {block_size: next((r for r in rows if r.workload == "transfer"), None)}
    for size in [max(block_size // 4, 1)] + ([] if opts.quick else [block_size * 2]):
        progress(f"Plasma: scaling, block size {size}")
        with devnet_process() as (url, keys):
            (run,), setup = measure_plasma(url, keys, ("transfer",), 2 * size, size, config,
                                           exits=False)
        by_size[size] = row(run, setup)
    points = [ScalingPoint("plasma", "block size", size, r.tps, r.l1_gas_per_tx, r.soft_p50_ms)
              for size, r in sorted(by_size.items()) if r is not None]
    return rows, points


def _run_zk(opts: CompareOptions, progress: Progress) -> tuple[list[Measurement],
                                                                list[ScalingPoint]]:
    from layerlab.bench.zk import BENCH_SHAPE, ZkRun, measure_zk

    # proving is seconds per batch of 2: a burst of --tx would take hours, so the ZK rows
    # run a fixed, stated number of transfers and say so
    count = ZK_QUICK_TX if opts.quick else ZK_FULL_TX

    def row(run: ZkRun, setup: dict[str, Any]) -> Measurement:
        n = max(run.transactions, 1)
        return Measurement(
            system="zk-rollup", workload=run.workload, status=MEASURED,
            reason=f"{run.transactions} transfers in batches of {BENCH_SHAPE.n_transfers} "
                   f"(proving {run.prove_seconds / max(run.batches, 1):.1f} s a batch, "
                   f"{setup['constraints']:,} constraints, devnet key)",
            transactions=run.transactions, seconds=run.seconds, tps=run.tps,
            soft_ms=tuple(run.soft_ms), final_s=tuple(run.final_s),
            l1_gas_per_tx=run.l1_gas / n, l1_bytes_per_tx=run.l1_bytes / n,
            fee_wei_per_tx=run.l1_fee_wei / n,
            withdrawal_delay_s=float(setup["withdrawal_seconds"]),
            source="operator checks (soft, per batch over its transfers); final: batch "
                   "built, proven (groth16py) and verified on L1 (submitBatch receipt); gas, "
                   "fee and calldata from those receipts; withdrawal: a real one, paid by "
                   "its batch",
            extra={"batches": run.batches, **setup})

    workloads = tuple(w for w in opts.workloads if ("zk-rollup", w) not in UNSUPPORTED_REASONS)
    if opts.quick:  # a micropayment is the same circuit path as a transfer: one is enough
        workloads = tuple(w for w in workloads if w == "transfer") or workloads[:1]
    with devnet_process() as (url, keys):
        progress(f"ZK rollup: compiling or loading the circuit, then {count} x "
                 f"{', '.join(workloads)}")
        runs, setup = measure_zk(url, keys, workloads, count)
    return [row(run, setup) for run in runs], []


def _placeholder_rows(system: str, workloads: tuple[str, ...]) -> list[Measurement]:
    info = SYSTEMS[system]
    return [Measurement(system, w, NOT_AVAILABLE,
                        f"not built yet (issue {info.issue})") for w in workloads]


def run_compare(opts: CompareOptions, progress: Progress | None = None) -> CompareResult:
    """Run every selected system on every selected workload it supports."""
    say = progress or (lambda text: log.info("%s", text))
    result = CompareResult(options=opts)
    for system in opts.systems:
        if system not in SYSTEMS:
            raise ValueError(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    for workload in opts.workloads:
        if workload not in WORKLOADS:
            raise ValueError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}")
    for system in opts.systems:
        info = SYSTEMS[system]
        supported = tuple(w for w in opts.workloads if (system, w) not in UNSUPPORTED_REASONS)
        result.rows.extend(Measurement(system, w, UNSUPPORTED, UNSUPPORTED_REASONS[(system, w)])
                           for w in opts.workloads if (system, w) in UNSUPPORTED_REASONS)
        if not info.built:
            result.rows.extend(_placeholder_rows(system, supported))
            continue
        try:
            if system == "l1-devnet":
                rows, points = _run_devnet(opts, say)
                result.scaling.extend(points)
            elif system == "channels":
                rows, points = _run_channels(opts, say)
                result.scaling.extend(points)
            elif system == "optimistic-rollup":
                rows, points = _run_rollup(opts, say)
                result.scaling.extend(points)
            elif system == "zk-rollup":
                rows, _ = _run_zk(opts, say)
            elif system == "plasma":
                rows, points = _run_plasma(opts, say)
                result.scaling.extend(points)
            else:
                rows = _run_network(system, opts, say)
        except Exception as exc:  # one system's failure is its rows' status, not the run's end
            log.exception("%s failed", info.name)
            rows = [Measurement(system, w, NOT_AVAILABLE,
                                f"the run failed: {type(exc).__name__}: {exc}")
                    for w in supported]
        result.rows.extend(rows)
        ran = {r.workload for r in rows}
        result.rows.extend(
            Measurement(system, w, NOT_AVAILABLE, "not run with --quick (networks carry "
                        "transfers only); run without --quick")
            for w in supported if w not in ran)
    order = {w: i for i, w in enumerate(WORKLOADS)}
    sys_order = {s: i for i, s in enumerate(SYSTEMS)}
    result.rows.sort(key=lambda r: (sys_order[r.system], order[r.workload]))
    result.seconds = time.time() - result.started
    return result
