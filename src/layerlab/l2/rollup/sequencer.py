"""The optimistic rollup's sequencer as a service: JSON-RPC in, batches on L1 out.

Like the OP Stack's op-node (sequencer mode) plus op-batcher in one process: it admits
signed L2 transactions by JSON-RPC (``rollup_sendTransaction``; the reply is the soft
confirmation, after :func:`~layerlab.l2.rollup.machine.apply_transaction` accepted it and
the step was journaled), takes the L1's deposit and forced-inclusion queues in order
through the shared :class:`~layerlab.l2.follower.L1Follower`, and posts a batch every
``batch_interval`` seconds (or when ``max_batch_steps`` wait) with ``submitBatch``. It
defends its batches: when a dispute opens on one, it bisects with the roots it computed and
proves the disputed step on chain (either party may), so a false challenge loses its bond.

**Crash safety.** Every admitted step is written to LevelDB before its reply; a batch is
written (its step range and claimed root) before it is sent to L1. A restart replays the
journal into the state, resubmits any sealed batch the L1 does not hold, and carries on,
so a SIGKILL at any moment loses no acknowledged transaction.

``fraud_from_batch`` makes a dishonest sequencer for the fraud-proof tests: from that batch
on it claims roots of a state in which it credited itself 100 ETH at the batch's first
step, and it defends those roots (consistently) in the bisection game, which it loses at
the one-step proof.

JSON-RPC: ``rollup_sendTransaction(stepHex)`` -> ``{seq, root}``; ``rollup_getAccount(
address)`` -> ``{nonce, balances}``; ``rollup_status()``; ``rollup_sealBatch()``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from eth_account import Account
from web3 import Web3

from layerlab.errors import LayerlabError
from layerlab.l2.follower import EventReceived, L1Change, L1Follower, Writes
from layerlab.l2.rollup.machine import ETH, RollupError, RollupState, apply_step, apply_transaction
from layerlab.l2.rollup.optimistic import Batch, ExecutedBatch, RollupContract, execute_batch
from layerlab.l2.rollup.txs import decode_tx_step
from layerlab.l2.service import JsonRpcServer, cancel_tasks, every, follow_l1
from layerlab.l2.store import RecordStore
from layerlab.orchestration import LOOPBACK, wait_for_stop_signal, write_ready_file

__all__ = ["Sequencer", "SequencerConfig", "run_sequencer"]

log = logging.getLogger(__name__)

STEP: Final = b"s:"
BATCH: Final = b"b:"
FOLLOWER: Final = b"l1-follower"
FRAUD_CREDIT: Final = 100 * 10**18
DISPUTE_POLL_SECONDS: Final = 0.25
MAX_DISPUTE_MOVES: Final = 64


@dataclass(frozen=True)
class SequencerConfig:
    private_key: bytes
    data_dir: Path
    l1_url: str
    contract_address: str
    host: str = LOOPBACK
    port: int = 0
    batch_interval: float = 1.0
    max_batch_steps: int = 200
    poll_interval: float = 0.25
    start_block: int = 0
    fraud_from_batch: int | None = None


def _key(prefix: bytes, n: int) -> bytes:
    return prefix + n.to_bytes(8, "big")


@dataclass
class _Sealed:
    index: int
    first: int
    """Journal sequence number of its first step."""
    steps: tuple[bytes, ...]
    root: int
    """The root it claims (the true one, unless the sequencer lies)."""
    roots: list[int]
    """The root before each step and after the last: what the defender bisects with."""


class Sequencer:
    """One rollup's sequencer (see the module docstring)."""

    def __init__(self, config: SequencerConfig) -> None:
        self.config = config
        self.w3 = Web3(Web3.HTTPProvider(config.l1_url, request_kwargs={"timeout": 120}))
        self.rollup = RollupContract.at(self.w3, config.contract_address)
        self.domain = self.rollup.domain
        self.address = Account.from_key(config.private_key).address
        self.store = RecordStore(config.data_dir / "sequencer")
        self.follower = L1Follower(self.rollup.l1, store=self.store, key=FOLLOWER,
                                   start_block=config.start_block)
        self.state = RollupState()
        self.steps: list[bytes] = []
        """Every admitted step, in order (the journal's content)."""
        self.batched = 0
        """How many of ``steps`` are in sealed batches."""
        self.batch_state = RollupState()
        """The state after the first ``batched`` steps (the next batch starts from it)."""
        self.sealed: dict[int, _Sealed] = {}
        self.lying_state: RollupState | None = None
        self.defending: set[int] = set()
        self._seal_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._server = JsonRpcServer({
            "rollup_sendTransaction": self._rpc_send,
            "rollup_getAccount": self._rpc_account,
            "rollup_status": self._rpc_status,
        }, {"rollup_sealBatch": self._rpc_seal})
        self.port = config.port

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._restore()
        await self._submit_unsubmitted()
        self.port = await self._server.start(self.config.host, self.config.port)
        self._tasks += [asyncio.create_task(follow_l1(
            self.follower, self.apply_l1, interval=self.config.poll_interval,
            start_block=self.config.start_block)), asyncio.create_task(every(
                self.config.batch_interval, self.seal_batch, "posting a batch"))]
        log.info("sequencer %s on %s:%d: %d steps, %d batches sealed", self.address,
                 self.config.host, self.port, len(self.steps), len(self.sealed))

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        await self._server.stop()
        self.store.close()

    def _restore(self) -> None:
        """Replay the journal: every step in order, then the sealed batches over them."""
        for _, value in self.store.items(STEP):
            step = bytes.fromhex(value)
            apply_step(self.state, step, self.domain)
            self.steps.append(step)
        for _, value in self.store.items(BATCH):
            first, count = int(value["first"]), int(value["count"])
            steps = tuple(self.steps[first:first + count])
            sealed = self._execute(int(value["index"]), first, steps, self.batch_state)
            self.sealed[sealed.index] = sealed
            self.batched = first + count

    # ------------------------------------------------------------------ admission
    def admit(self, step: bytes) -> int:
        """Admit one transaction step (raises RollupError, nothing changed); journal it."""
        signed = decode_tx_step(step)
        apply_transaction(self.state, signed, self.domain)
        return self._journal(step)

    def _journal(self, step: bytes) -> int:
        seq = len(self.steps)
        self.store.put(_key(STEP, seq), step.hex())
        self.steps.append(step)
        return seq

    # ------------------------------------------------------------------ batches
    def _execute(self, index: int, first: int, steps: tuple[bytes, ...],
                 before: RollupState) -> _Sealed:
        """The sealed batch over ``steps`` from ``before`` (which advances), with the roots
        this sequencer claims: the true ones, or the lie of ``fraud_from_batch``."""
        executed = execute_batch(before, Batch(steps), self.domain)
        roots = list(executed.roots)
        fraud = self.config.fraud_from_batch
        if fraud is not None and index >= fraud:
            lying = copy.deepcopy(self.lying_state or executed.before)
            roots = [lying.root]
            for i, step in enumerate(steps):
                apply_step(lying, step, self.domain)
                if i == 0:
                    me = bytes.fromhex(self.address[2:])
                    lying._set_balance(ETH, lying.index_of.get(me, 0), FRAUD_CREDIT)
                roots.append(lying.root)
            self.lying_state = lying
        return _Sealed(index, first, steps, roots[-1], roots)

    async def seal_batch(self) -> _Sealed | None:
        async with self._seal_lock:
            await self._submit_unsubmitted()
            if self.batched == len(self.steps):
                return None
            count = min(len(self.steps) - self.batched, self.config.max_batch_steps)
            first = self.batched
            steps = tuple(self.steps[first:first + count])
            index = max([*self.sealed, await asyncio.to_thread(self.rollup.batch_count) - 1]) + 1
            sealed = self._execute(index, first, steps, self.batch_state)
            self.store.put(_key(BATCH, index), {"index": index, "first": first, "count": count,
                                                "root": hex(sealed.root)})
            self.sealed[index] = sealed
            self.batched = first + count
            await self._submit(sealed)
            return sealed

    def _state_at(self, seq: int) -> RollupState:
        """The state after the first ``seq`` steps (a replay: the journal is the truth)."""
        state = RollupState()
        for step in self.steps[:seq]:
            apply_step(state, step, self.domain)
        return state

    async def _submit_unsubmitted(self) -> None:
        on_l1 = await asyncio.to_thread(self.rollup.batch_count)
        for index in sorted(self.sealed):
            if index >= on_l1:
                await self._submit(self.sealed[index])

    async def _submit(self, sealed: _Sealed) -> None:
        on_l1 = await asyncio.to_thread(self.rollup.batch_count)
        if on_l1 != sealed.index:
            raise RollupError("batch-order", f"the L1 holds {on_l1} batches; this one is "
                                             f"{sealed.index}")
        await asyncio.to_thread(self.rollup.submit_batch, self.config.private_key,
                                Batch(sealed.steps), sealed.root)
        log.info("batch %d: %d steps, root %#x", sealed.index, len(sealed.steps), sealed.root)

    # ------------------------------------------------------------------ the L1
    def apply_l1(self, changes: list[L1Change]) -> None:
        """Queue the L1's deposits and forced transactions as steps, in queue order, and
        defend any dispute on our batches; store the steps with the follower's cursor."""
        puts: dict[bytes, Any] = {}
        deletes: list[bytes] = []
        for change in changes:
            if not isinstance(change, EventReceived):
                continue
            event = change.event
            if event.name == "BatchesRemoved":  # a dispute we lost took them: batch again
                gone = sorted(i for i in self.sealed if i >= int(event.args["fromIndex"]))
                if gone:
                    self.batched = self.sealed[gone[0]].first
                    for i in gone:
                        del self.sealed[i]
                        deletes.append(_key(BATCH, i))
                    self.batch_state = self._state_at(self.batched)
                    self.lying_state = None
                    log.warning("batches %s were removed on L1; their steps will be posted "
                                "again", gone)
            if event.name in ("DepositQueued", "ForcedQueued"):
                step = bytes(event.args["step"])
                if step in self.steps:  # delivered again after a rewind
                    continue
                apply_step(self.state, step, self.domain)
                seq = len(self.steps)
                self.steps.append(step)
                puts[_key(STEP, seq)] = step.hex()
            elif event.name == "DisputeOpened":
                dispute_id, batch_index = int(event.args["disputeId"]), int(event.args["batchIndex"])
                if batch_index in self.sealed and dispute_id not in self.defending:
                    self.defending.add(dispute_id)
                    self._tasks.append(asyncio.ensure_future(self._defend(dispute_id, batch_index)))
        self.follower.commit(Writes(puts, tuple(deletes)))

    async def _defend(self, dispute_id: int, batch_index: int) -> None:
        """Play the defender: bisect with our roots; prove the last step ourselves."""
        sealed = self.sealed[batch_index]
        executed: ExecutedBatch | None = None
        for _ in range(MAX_DISPUTE_MOVES):
            d = await asyncio.to_thread(self.rollup.dispute, dispute_id)
            turn, lo, hi = int(d["turn"]), int(d["lo"]), int(d["hi"])
            try:
                if turn == 0:
                    log.info("dispute %d over", dispute_id)
                    return
                if turn == 1:
                    await asyncio.to_thread(self.rollup.bisect, self.config.private_key,
                                            dispute_id, sealed.roots[(lo + hi) // 2])
                elif turn == 3:
                    if executed is None:
                        executed = execute_batch(self._state_at(sealed.first),
                                                 Batch(sealed.steps), self.domain)
                    await asyncio.to_thread(self.rollup.prove_step, self.config.private_key,
                                            dispute_id, executed, lo)
                else:
                    await asyncio.sleep(DISPUTE_POLL_SECONDS)
            except LayerlabError as exc:
                log.warning("dispute %d: move failed: %s", dispute_id, exc)
                await asyncio.sleep(DISPUTE_POLL_SECONDS)

    # ------------------------------------------------------------------ JSON-RPC
    def _rpc_send(self, params: list[Any]) -> dict[str, Any]:
        seq = self.admit(bytes.fromhex(str(params[0]).removeprefix("0x")))
        return {"seq": seq, "root": hex(self.state.root)}

    def _rpc_account(self, params: list[Any]) -> dict[str, Any]:
        address = bytes.fromhex(str(params[0]).removeprefix("0x"))
        return {"nonce": self.state.nonce(address),
                "balances": {str(t): str(self.state.balance(t, address))
                             for t in range(len(self.state.l1_tokens) or 1)}}

    def _rpc_status(self, params: list[Any]) -> dict[str, Any]:
        return {"contract": self.rollup.l1.address, "steps": len(self.steps),
                "pending": len(self.steps) - self.batched, "batches": len(self.sealed),
                "root": hex(self.state.root), "disputes": sorted(self.defending)}

    async def _rpc_seal(self, params: list[Any]) -> dict[str, Any] | None:
        sealed = await self.seal_batch()
        return None if sealed is None else {"index": sealed.index, "steps": len(sealed.steps),
                                            "root": hex(sealed.root)}


async def run_sequencer(config: SequencerConfig, ready_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM; announce the port in ``ready_file``."""
    sequencer = Sequencer(config)
    await sequencer.start()
    write_ready_file(ready_file, {"port": sequencer.port})
    try:
        await wait_for_stop_signal()
    finally:
        await sequencer.stop()
