"""The optimistic rollup's verifier (challenger) as a service.

An optimistic rollup is safe if one honest party re-executes every batch and disputes a
wrong root within the challenge window (the OP Stack's op-challenger, Arbitrum's BOLD
validators). This service derives the L2 state from L1 alone: it follows the rollup's
``BatchSubmitted`` events through the shared :class:`~layerlab.l2.follower.L1Follower`,
reads each batch's steps from the ``submitBatch`` calldata, re-executes them with the
machine, and when the claimed root differs from its own it opens a dispute with its bond and
plays the bisection game to the one-step proof on chain (or wins by the defender's
timeout). A removed batch (``BatchesRemoved``, after a lost dispute) rolls its state back.
It trusts nobody's data but the L1's.

JSON-RPC: ``verifier_status()`` -> ``{batches, root, disputes: {id: outcome}}``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from web3 import Web3

from layerlab.errors import LayerlabError, MalformedEncoding
from layerlab.l2.follower import EventReceived, L1Change, L1Follower
from layerlab.l2.l1client import ContractEvent
from layerlab.l2.rollup.codec import decode_inbox
from layerlab.l2.rollup.machine import RollupError, RollupState
from layerlab.l2.rollup.optimistic import (
    MINIMAL,
    Batch,
    ExecutedBatch,
    RollupContract,
    Turn,
    choose,
    drive_dispute,
    execute_batch,
)
from layerlab.l2.service import JsonRpcServer, cancel_tasks, follow_l1
from layerlab.orchestration import LOOPBACK, wait_for_stop_signal, write_ready_file

__all__ = ["Verifier", "VerifierConfig", "run_verifier"]

log = logging.getLogger(__name__)

KEPT_SNAPSHOTS: Final = 64
"""States kept before recent batches, to roll back a batch a dispute removes."""


@dataclass(frozen=True)
class VerifierConfig:
    private_key: bytes
    l1_url: str
    contract_address: str
    host: str = LOOPBACK
    port: int = 0
    poll_interval: float = 0.25
    start_block: int = 0
    challenger_bond: int = MINIMAL.challenger_bond


class Verifier:
    """Re-executes every batch from L1 data; disputes and proves wrong roots."""

    def __init__(self, config: VerifierConfig) -> None:
        self.config = config
        self.w3 = Web3(Web3.HTTPProvider(config.l1_url, request_kwargs={"timeout": 120}))
        self.rollup = RollupContract.at(self.w3, config.contract_address)
        self.domain = self.rollup.domain
        self.follower = L1Follower(self.rollup.l1, start_block=config.start_block)
        self.state = RollupState()
        self.before: dict[int, RollupState] = {}
        """The state before each batch it applied (to roll back a removed batch)."""
        self.outcomes: dict[int, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._server = JsonRpcServer({"verifier_status": self._rpc_status})
        self.port = config.port

    async def start(self) -> None:
        self.port = await self._server.start(self.config.host, self.config.port)
        self._tasks.append(asyncio.create_task(follow_l1(
            self.follower, self.apply_l1, interval=self.config.poll_interval,
            start_block=self.config.start_block, on_rewind=self._reset)))

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        await self._server.stop()

    def _reset(self) -> None:
        """Derive everything again from the deployment (after a reorg too deep to undo)."""
        self.state, self.before = RollupState(), {}

    async def apply_l1(self, changes: list[L1Change]) -> None:
        for change in changes:
            if not isinstance(change, EventReceived):
                continue
            event = change.event
            if event.name == "BatchSubmitted":
                await self._check_batch(event)
            elif event.name == "BatchesRemoved":
                first = int(event.args["fromIndex"])
                if first in self.before:
                    self.state = self.before[first]
                    for index in [i for i in self.before if i >= first]:
                        del self.before[index]
                    log.info("batches from %d removed on L1: state rolled back", first)

    def _read_batch(self, event: ContractEvent) -> Batch:
        sent = self.w3.eth.get_transaction(event.tx_hash)  # type: ignore[arg-type]
        _, args = self.rollup.l1.contract.decode_function_input(sent["input"])
        return Batch(tuple(decode_inbox(bytes(args["steps"]))))

    async def _check_batch(self, event: ContractEvent) -> None:
        index = int(event.args["batchIndex"])
        if index == 0:  # the genesis root, set at deployment
            return
        claimed = int.from_bytes(bytes(event.args["stateRoot"]), "big")
        try:
            batch = await asyncio.to_thread(self._read_batch, event)
        except (MalformedEncoding, ValueError) as exc:  # the contract refuses such calldata
            log.error("batch %d: unreadable calldata: %s", index, exc)
            return
        self.before[index] = copy.deepcopy(self.state)
        for old in [i for i in self.before if i < index - KEPT_SNAPSHOTS]:
            del self.before[old]  # far older than any batch still in its window here
        try:
            executed = execute_batch(self.state, batch, self.domain)
        except RollupError as exc:  # a deposit step that does not apply: the batch is invalid
            log.error("batch %d does not apply (%s); the contract should not have taken it",
                      index, exc)
            return
        if executed.post_root == claimed:
            log.info("batch %d: %d steps, root %#x agrees", index, len(batch.steps), claimed)
            return
        log.warning("batch %d claims root %#x; re-execution gives %#x: disputing", index,
                    claimed, executed.post_root)
        self._tasks.append(asyncio.ensure_future(self._dispute(index, executed)))

    async def _dispute(self, index: int, executed: ExecutedBatch) -> None:
        """Open a dispute and play the challenger to its end (bounded)."""
        try:
            dispute_id = await asyncio.to_thread(self.rollup.challenge, self.config.private_key,
                                                 index, self.config.challenger_bond)
        except LayerlabError as exc:
            log.error("could not dispute batch %d: %s", index, exc)
            self.outcomes[-index] = f"not opened: {exc}"
            return
        self.outcomes[dispute_id] = "open"
        key = self.config.private_key

        async def move(turn: Turn, d: dict[str, Any]) -> bool:
            lo, hi = int(d["lo"]), int(d["hi"])
            if turn is Turn.CHALLENGER:
                agree = choose(executed, lo, hi, int.from_bytes(d["midRoot"], "big"))
                await asyncio.to_thread(self.rollup.choose, key, dispute_id, agree)
                return True
            if turn is Turn.ONE_STEP:
                await asyncio.to_thread(self.rollup.prove_step, key, dispute_id, executed, lo)
                return True
            # the defender's turn: wait, and end it if its deadline passes
            head = await asyncio.to_thread(self.w3.eth.get_block, "latest")
            if int(head["timestamp"]) <= int(d["deadline"]):
                return False
            await asyncio.to_thread(self.rollup.timeout, key, dispute_id)
            return True

        if await drive_dispute(self.rollup, dispute_id, move):
            resolved = [e for e in await asyncio.to_thread(self.rollup.events, 0)
                        if e.name == "DisputeResolved" and int(e.args["disputeId"]) == dispute_id]
            self.outcomes[dispute_id] = str(resolved[-1].args["how"]) if resolved else "resolved"
            return
        self.outcomes[dispute_id] = "unfinished after the move bound"

    def _rpc_status(self, params: list[Any]) -> dict[str, Any]:
        return {"batches": len(self.before), "root": hex(self.state.root),
                "disputes": {str(k): v for k, v in self.outcomes.items()}}


async def run_verifier(config: VerifierConfig, ready_file: Path | None = None) -> None:
    verifier = Verifier(config)
    await verifier.start()
    write_ready_file(ready_file, {"port": verifier.port})
    try:
        await wait_for_stop_signal()
    finally:
        await verifier.stop()
