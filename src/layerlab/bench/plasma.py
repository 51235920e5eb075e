"""Plasma on the comparison's workloads, measured on a real L1 with the operator running
as its own process.

Setup: ``PlasmaChain`` is deployed on the L1 the caller gives and the operator process
started against it (``l2/plasma/network.py``). One payer deposits ETH on L1 and splits it,
in fan-out child blocks, into ``block_size`` outputs, so each block can carry
``block_size`` independent payments (a UTXO is spent once per block: its change is
spendable only after the block that creates it).

Each workload round signs ``block_size`` payments (outside the timing: the wallet's work),
sends each to the operator by JSON-RPC (``plasma_sendTransaction``: the round trip is the
soft confirmation, after the operator validated and journaled it), then asks the operator
to seal the block (``plasma_sealBlock``), which commits its root on L1; the time from a
transaction's acknowledgement to its block's ``submitBlock`` receipt is its finality as a
child-chain transaction (its *withdrawal* is later still: the exit period). L1 gas, fee and
calldata bytes per transaction are the ``submitBlock`` receipts' divided by the block's
transactions: Plasma puts 32 bytes on L1 per block, whatever it holds.

The exit side is measured too: one standard exit (start + process after the exit period,
reached with ``evm_increaseTime``), and a **mass exit**: the operator withholds a block and
the payer's watcher exits every output it holds; the report shows that exit's L1 gas, L1
blocks and seconds.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from layerlab.l2.plasma.machine import ChildBlock, ChildChain
from layerlab.l2.plasma.network import spawn_operator
from layerlab.l2.plasma.onchain import MINIMAL, PlasmaConfig, deploy_plasma
from layerlab.l2.plasma.types import ETH, Output, PlasmaError, SignedTransaction, Transaction
from layerlab.l2.plasma.watcher import Watcher
from layerlab.orchestration import RpcError, rpc_call, stop

__all__ = ["PlasmaRun", "measure_plasma"]

MICROPAYMENT_WEI = 10**12
TRANSFER_WEI = 10**15
DEPOSIT_WAIT_SECONDS = 30
SENDERS = 8
"""Concurrent clients sending to the operator."""


@dataclass(slots=True)
class PlasmaRun:
    workload: str
    transactions: int
    seconds: float
    soft_ms: list[float]
    final_s: list[float]
    blocks: int
    l1_gas: int
    l1_fee_wei: int
    l1_bytes: int
    exit_period: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tps(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0


class _Bench:
    def __init__(self, url: str, keys: list[bytes], block_size: int, config: PlasmaConfig,
                 directory: Path) -> None:
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
        self.url = url
        self.deployer, self.operator_key, self.payer, self.payee = keys[0], keys[1], keys[2], keys[3]
        self.holder = keys[4]
        self.payer_addr = bytes.fromhex(Account.from_key(self.payer).address[2:])
        self.payee_addr = bytes.fromhex(Account.from_key(self.payee).address[2:])
        self.config = config
        self.block_size = block_size
        self.contract = deploy_plasma(self.w3, Account.from_key(self.deployer).address,
                                      Account.from_key(self.operator_key).address, config)
        self.domain = self.contract.domain
        self.deploy_block = int(self.w3.eth.block_number)
        self.pid, port = spawn_operator(directory, url, self.contract.address,
                                        block_interval=3600.0, adversarial=True,
                                        start_block=self.deploy_block)
        self.operator_url = f"http://127.0.0.1:{port}"
        self.chain = ChildChain(self.domain)
        """The payer's view: every block the bench sealed, re-applied here."""

    def close(self) -> None:
        stop([self.pid])

    # -- one block of signed transactions through the operator
    def run_block(self, txs: list[SignedTransaction]) -> tuple[list[float], float, int, int, int]:
        """(soft seconds per tx, wall seconds, gas, fee wei, calldata bytes) of one block."""
        def send(stx: SignedTransaction) -> tuple[float, float]:
            t0 = time.perf_counter()
            rpc_call(self.operator_url, "plasma_sendTransaction", [stx.to_json()])
            return t0, time.perf_counter()

        started = time.perf_counter()
        with ThreadPoolExecutor(SENDERS) as pool:  # users send at once, as they would
            times = list(pool.map(send, txs))
        soft = [t1 - t0 for t0, t1 in times]
        acked = [t1 for _, t1 in times]
        head = int(self.w3.eth.block_number)
        sealed = rpc_call(self.operator_url, "plasma_sealBlock", [], timeout=120)
        done = time.perf_counter()
        blknum = int(sealed["blknum"])
        event = next(e for e in self.contract.l1.events(head)
                     if e.name == "BlockSubmitted" and int(e.args["blknum"]) == blknum)
        receipt = self.w3.eth.get_transaction_receipt(event.tx_hash)  # type: ignore[arg-type]
        tx = self.w3.eth.get_transaction(event.tx_hash)  # type: ignore[arg-type]
        block = rpc_call(self.operator_url, "plasma_getBlock", [blknum])
        self.chain.apply_block(ChildBlock.from_json(block))
        gas = int(receipt["gasUsed"])
        fee = gas * int(receipt["effectiveGasPrice"])
        self.final = [done - t for t in acked]
        return soft, done - started, gas, fee, len(bytes(tx["input"]))

    def deposit_and_split(self, total: int) -> tuple[int, int]:
        """Deposit ``total`` and fan it out into ``block_size`` outputs; (gas, L1 txs)."""
        receipt, blknum = self.contract.deposit(self.payer, total)
        gas, l1_txs = int(receipt["gasUsed"]), 1
        self.chain.add_deposit(blknum, self.payer_addr, ETH, total)
        deadline = time.monotonic() + DEPOSIT_WAIT_SECONDS
        while True:  # the operator credits a deposit once it has read the L1's event
            try:
                rpc_call(self.operator_url, "plasma_getBlock", [blknum])
                break
            except RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        while len(self.chain.utxos_of(self.payer_addr)) < self.block_size:
            txs = []
            room = self.block_size - len(self.chain.utxos_of(self.payer_addr))
            for utxo in self.chain.utxos_of(self.payer_addr):
                if room <= 0:
                    break
                parts = min(4, room + 1)
                share = utxo.output.amount // parts
                outputs = [Output(self.payer_addr, ETH, share) for _ in range(parts - 1)]
                outputs.append(Output(self.payer_addr, ETH, utxo.output.amount - share * (parts - 1)))
                txs.append(Transaction((utxo.position,), tuple(outputs)).sign(self.domain, [self.payer]))
                room -= parts - 1
            _, _, g, _, _ = self.run_block(txs)
            gas += g
            l1_txs += 1
        return gas, l1_txs

    def payments(self, amount: int) -> list[SignedTransaction]:
        """One payment to the payee from each of the payer's outputs (change back)."""
        out = []
        for utxo in self.chain.utxos_of(self.payer_addr)[:self.block_size]:
            outputs = [Output(self.payee_addr, ETH, amount)]
            if utxo.output.amount > amount:
                outputs.append(Output(self.payer_addr, ETH, utxo.output.amount - amount))
            out.append(Transaction((utxo.position,), tuple(outputs)).sign(self.domain, [self.payer]))
        return out

    def run_workload(self, workload: str, count: int) -> PlasmaRun:
        amount = MICROPAYMENT_WEI if workload == "micropayment" else TRANSFER_WEI
        soft: list[float] = []
        final: list[float] = []
        seconds, gas, fee, size, blocks, done = 0.0, 0, 0, 0, 0, 0
        while done < count:
            txs = self.payments(amount)[:count - done]
            s, wall, g, f, b = self.run_block(txs)
            soft += s
            final += self.final
            seconds += wall
            gas += g
            fee += f
            size += b
            blocks += 1
            done += len(txs)
        return PlasmaRun(workload, done, seconds, [x * 1000 for x in soft], final, blocks, gas,
                         fee, size, self.config.min_exit_period)

    # -- the exit side
    def _advance_to(self, timestamp: int) -> None:
        """Mine a block at ``timestamp`` (the exit period, waited out on the devnet)."""
        rpc_call(self.url, "evm_mine", [timestamp])

    def one_exit(self) -> dict[str, Any]:
        """A standard exit of one payee output: its start and processing gas, its delay."""
        utxo = self.chain.utxos_of(self.payee_addr)[0]
        blknum = utxo.position // 1_000_000_000
        txindex = (utxo.position // 10_000) % 100_000
        proof = self.chain.blocks[blknum].proof(txindex)
        receipt, exit_id = self.contract.start_standard_exit(self.payee, utxo.position, utxo.tx, proof)
        started_at = int(self.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
        exitable_at = self.contract.exit(exit_id).exitable_at
        delay = exitable_at - started_at
        self._advance_to(exitable_at + 1)
        processed = self.contract.process_exits(self.payee, ETH, 1)
        paid = [e for e in self.contract.l1.receipt_events(processed)
                if e.name == "ExitFinalized" and int(e.args["exitId"]) == exit_id]
        if not paid or not paid[0].args["paid"]:
            raise PlasmaError("exit", f"exit {exit_id} was not paid after its period")
        return {"start_gas": int(receipt["gasUsed"]), "process_gas": int(processed["gasUsed"]),
                "delay_s": delay, "amount_wei": int(paid[0].args["amount"])}

    def mass_exit(self, directory: Path, outputs: int,
                  holders: list[bytes] | None = None) -> dict[str, Any]:
        """``outputs`` outputs shared round-robin among ``holders`` (one user, the bench's
        holder, by default); the operator withholds its next block; the holders' watcher
        exits every one of them, each user paying its own bonds and gas."""
        keys = holders or [self.holder]
        addrs = [bytes.fromhex(Account.from_key(k).address[2:]) for k in keys]
        gifts = [Transaction((u.position,), (Output(addrs[i % len(addrs)], ETH, 10**12),
                                             Output(self.payer_addr, ETH, u.output.amount - 10**12)))
                 .sign(self.domain, [self.payer])
                 for i, u in enumerate(self.chain.utxos_of(self.payer_addr)[:outputs])]
        self.run_block(gifts)
        watcher = Watcher(self.contract, self.operator_url, keys, directory / "mass",
                          start_block=self.deploy_block)
        watcher.poll()
        held = sum(len(watcher.chain.utxos_of(a)) for a in addrs)
        rpc_call(self.operator_url, "plasma_debugWithhold", [self.chain.next_child_block])
        txs = self.payments(1)[:1]
        rpc_call(self.operator_url, "plasma_sendTransaction", [txs[0].to_json()])
        rpc_call(self.operator_url, "plasma_sealBlock", [], timeout=120)
        first = int(self.w3.eth.block_number)
        t0 = time.perf_counter()
        alarms = watcher.poll()
        seconds = time.perf_counter() - t0
        last = int(self.w3.eth.block_number)
        exits = [e for e in self.contract.l1.events(first + 1, last) if e.name == "ExitStarted"]
        gas = 0
        for e in exits:
            receipt = self.w3.eth.get_transaction_receipt(e.tx_hash)  # type: ignore[arg-type]
            gas += int(receipt["gasUsed"])
        watcher.close()
        return {"users": len(keys), "outputs_held": held, "exits": len(exits), "gas": gas,
                "l1_blocks": last - first,
                "seconds": seconds, "alarm": alarms[0].kind if alarms else None,
                "gas_per_exit": gas / len(exits) if exits else None}


def measure_plasma(l1_url: str, keys: list[bytes], workloads: tuple[str, ...], tx: int,
                   block_size: int, config: PlasmaConfig = MINIMAL,
                   exits: bool = True, mass_exit_outputs: int = 20,
                   mass_exit_holders: list[bytes] | None = None,
                   ) -> tuple[list[PlasmaRun], dict[str, Any]]:
    """Deploy Plasma on ``l1_url`` and run each workload in blocks of ``block_size``;
    returns the runs and the setup's and exits' L1 costs (one standard exit; a mass exit
    of ``mass_exit_outputs`` outputs, held by ``mass_exit_holders``, after a withheld
    block)."""
    with tempfile.TemporaryDirectory(prefix="layerlab-plasma-") as tmp:
        bench = _Bench(l1_url, keys, block_size, config, Path(tmp))
        try:
            setup_gas, setup_txs = bench.deposit_and_split(10**20)
            runs = [bench.run_workload(w, tx) for w in workloads]
            setup: dict[str, Any] = {"setup_gas": setup_gas, "setup_l1_txs": setup_txs}
            if exits:
                setup["exit"] = bench.one_exit()
                setup["mass_exit"] = bench.mass_exit(Path(tmp), min(mass_exit_outputs, block_size),
                                                     mass_exit_holders)
            return runs, setup
        finally:
            bench.close()
