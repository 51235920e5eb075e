"""The Plasma operator: a service that takes signed child-chain transactions by JSON-RPC,
builds blocks, commits their roots on L1 and serves the block data.

The operator is trusted for liveness and data availability only (Plasma MVP): it orders
transactions and publishes blocks, but it cannot spend an output without its owner's
signature, and if it publishes an invalid block or withholds one, the watchers exit.

**Crash safety.** Every admitted transaction is written to a :class:`RecordStore` (one
LevelDB write) *before* its acknowledgement; sealing a block writes the block and deletes
its pending records in one atomic batch *before* its root is sent to L1; each deposit the
L1 contract made is written in the same batch as the L1 follower's cursor
(:class:`~layerlab.l2.follower.L1Follower`; a deposit a reorg drops is removed again while
unspent). A restart rebuilds the ledger from the
deposits and blocks on disk, re-admits the pending transactions, and submits any sealed
block whose root the L1 does not hold yet, so a SIGKILL at any moment loses no
acknowledged transaction and never commits two roots for one block number.

JSON-RPC methods (POST /, JSON-RPC 2.0):

- ``plasma_sendTransaction({tx, signatures})`` -> ``{txHash}`` (refusals: code -32000 with
  ``data.check``, see :class:`~layerlab.l2.plasma.types.PlasmaError`)
- ``plasma_getBlock(blknum)`` -> ``{blknum, root, txs}``; a withheld block is error -32001
- ``plasma_getUtxos(owner)`` -> the owner's unspent outputs with their creating transaction
- ``plasma_getExitData(utxoPos)`` -> ``{utxoPos, tx, proof}`` for ``startStandardExit``
- ``plasma_status()`` -> ``{contract, nextChildBlock, pending, blocks, submitted}``
- ``plasma_sealBlock()`` -> seal and submit a block now (also done every
  ``block_interval`` seconds while transactions wait)
- with ``adversarial=True`` only (tests of the exit game): ``plasma_debugWithhold(blknum)``
  withholds the data of every block from ``blknum`` on, and
  ``plasma_debugInject({tx, signatures})`` puts a transaction in the next block unchecked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from web3 import Web3

from layerlab.l2.follower import (
    EventReceived,
    EventRetracted,
    L1Change,
    L1Follower,
    Writes,
)
from layerlab.l2.l1client import ContractEvent
from layerlab.l2.plasma.machine import ChildBlock, ChildChain
from layerlab.l2.plasma.onchain import PlasmaContract
from layerlab.l2.plasma.records import block_key, deposit_key, deposit_record, restore_ledger
from layerlab.l2.plasma.types import (
    CHILD_BLOCK_INTERVAL,
    MAX_TXS_PER_BLOCK,
    PlasmaError,
    SignedTransaction,
    decode_position,
    encode_position,
)
from layerlab.l2.service import JsonRpcServer, cancel_tasks, every, follow_l1
from layerlab.l2.store import RecordStore
from layerlab.orchestration import LOOPBACK, wait_for_stop_signal, write_ready_file

__all__ = ["Operator", "OperatorConfig", "run_operator"]

log = logging.getLogger(__name__)

PENDING: Final = b"p:"
EXITED: Final = b"x:"
WITHHELD_CODE: Final = -32001


@dataclass(frozen=True)
class OperatorConfig:
    private_key: bytes
    data_dir: Path
    l1_url: str
    contract_address: str
    host: str = LOOPBACK
    port: int = 0
    block_interval: float = 1.0
    """Seconds between blocks while transactions wait."""
    max_block_txs: int = MAX_TXS_PER_BLOCK
    poll_interval: float = 0.25
    """Seconds between reads of the L1's deposit events."""
    adversarial: bool = False
    start_block: int = 0
    """Where the L1 follower starts without a stored cursor (the contract's deployment)."""


class Withheld(PlasmaError):
    """The block's data is not served (the adversarial operator of the exit-game tests)."""

    rpc_code = WITHHELD_CODE


def _key(prefix: bytes, n: int) -> bytes:
    return prefix + n.to_bytes(8, "big")


class Operator:
    """One child chain's operator (see the module docstring)."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.w3 = Web3(Web3.HTTPProvider(config.l1_url, request_kwargs={"timeout": 60}))
        self.contract = PlasmaContract.at(self.w3, config.contract_address)
        self.chain = ChildChain(self.contract.domain, max_block_txs=config.max_block_txs)
        self.store = RecordStore(config.data_dir / "operator")
        self.pending_seq = 0
        self.follower = L1Follower(self.contract.l1, store=self.store,
                                   start_block=config.start_block)
        self.withhold_from: int | None = None
        self.submitted_through = 0
        """The highest child block whose root the L1 holds."""
        self.injected: list[SignedTransaction] = []
        self._seal_lock = asyncio.Lock()
        self._server = JsonRpcServer(self._methods(), {"plasma_sealBlock": self._rpc_seal})
        self._tasks: list[asyncio.Task[None]] = []
        self.port = config.port
        self.soft_latencies: list[float] = []

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._restore()
        await self._submit_unsubmitted()
        self.port = await self._server.start(self.config.host, self.config.port)
        self._tasks.append(asyncio.create_task(follow_l1(
            self.follower, self.apply_l1, interval=self.config.poll_interval,
            start_block=self.config.start_block)))
        self._tasks.append(asyncio.create_task(every(self.config.block_interval,
                                                     self.seal_block, "sealing a block")))
        log.info("plasma operator on %s:%d, contract %s, next block %d, %d pending",
                 self.config.host, self.port, self.contract.address, self.chain.next_child_block,
                 len(self.chain.pending))

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        await self._server.stop()
        self.store.close()

    def _restore(self) -> None:
        blocks = restore_ledger(self.store, self.chain)
        for key, _ in self.store.items(EXITED):
            self.chain.remove_exited(int.from_bytes(key[len(EXITED):], "big"))
        dropped = 0
        for key, value in self.store.items(PENDING):
            self.pending_seq = max(self.pending_seq, int.from_bytes(key[len(PENDING):], "big") + 1)
            stx = SignedTransaction.from_json(value)
            try:
                self.chain.admit(stx)
            except PlasmaError as exc:  # only if an exit on L1 removed its input since
                log.warning("dropping stored transaction 0x%s: %s", stx.tx.tx_hash.hex(), exc)
                self.store.write({}, (key,))
                dropped += 1
        log.info("restored %d child blocks, %d deposits, %d pending (%d dropped)", len(blocks),
                 len(self.chain.blocks) - len(blocks), len(self.chain.pending), dropped)

    # ------------------------------------------------------------------ transactions
    def admit(self, stx: SignedTransaction) -> bytes:
        """Validate, journal, then queue; returns the transaction hash (the soft confirmation)."""
        self.chain.admit(stx)  # raises PlasmaError and leaves the chain unchanged
        self.store.put(_key(PENDING, self.pending_seq), stx.to_json())
        self.pending_seq += 1
        return stx.tx.tx_hash

    async def seal_block(self) -> ChildBlock | None:
        """Seal the waiting transactions into the next block and commit its root on L1."""
        async with self._seal_lock:
            if not self.chain.pending and not self.injected:
                return None
            await self._submit_unsubmitted()
            pending_keys = tuple(k for k, _ in self.store.items(PENDING))
            if self.injected:  # adversarial: an unchecked transaction joins the block
                self.chain.pending.extend(self.injected)
                self.injected = []
            block = self.chain.seal()
            self.store.write({block_key(block.blknum): block.to_json()}, pending_keys)
            await self._submit(block)
            return block

    async def _submit_unsubmitted(self) -> None:
        on_l1 = await asyncio.to_thread(self.contract.next_child_block)
        self.submitted_through = on_l1 - CHILD_BLOCK_INTERVAL
        for blknum in sorted(b for b in self.chain.blocks if b % CHILD_BLOCK_INTERVAL == 0):
            if blknum >= on_l1:
                await self._submit(self.chain.blocks[blknum])

    async def _submit(self, block: ChildBlock) -> None:
        on_l1 = await asyncio.to_thread(self.contract.next_child_block)
        if on_l1 != block.blknum:
            raise PlasmaError("unknown-block", f"the L1 expects block {on_l1}, the operator "
                                               f"sealed {block.blknum}")
        await asyncio.to_thread(self.contract.submit_block, self.config.private_key, block.root,
                                block.blknum)
        self.submitted_through = block.blknum
        log.info("block %d: %d txs, root 0x%s", block.blknum, len(block.txs), block.root.hex())

    # ------------------------------------------------------------------ the L1
    def apply_l1(self, changes: list[L1Change]) -> None:
        """Apply the L1's contract events (deposits credited, exited outputs dropped, a
        dropped deposit removed), then store what they changed with the follower's cursor
        in one batch."""
        puts: dict[bytes, Any] = {}
        deletes: list[bytes] = []
        for change in changes:
            if isinstance(change, EventReceived):
                self._on_l1_event(change.event, puts)
            elif isinstance(change, EventRetracted):
                self._on_l1_retracted(change.event, deletes)
        self.follower.commit(Writes(puts, tuple(deletes)))

    def _on_l1_event(self, event: ContractEvent, puts: dict[bytes, Any]) -> None:
        if event.name == "DepositCreated":
            blknum = int(event.args["blknum"])
            if blknum in self.chain.blocks:
                return
            owner = bytes.fromhex(str(event.args["owner"])[2:])
            token = bytes.fromhex(str(event.args["token"])[2:])
            amount = int(event.args["amount"])
            self.chain.add_deposit(blknum, owner, token, amount)
            puts[deposit_key(blknum)] = deposit_record(owner, token, amount)
        elif event.name == "ExitStarted":
            position = int(event.args["utxoPos"])
            self.chain.remove_exited(position)
            puts[_key(EXITED, position)] = True

    def _on_l1_retracted(self, event: ContractEvent, deletes: list[bytes]) -> None:
        """A reorg dropped a deposit: its output goes while no admitted transaction spends
        it (after that, the block spending it stands on an output L1 no longer has)."""
        if event.name != "DepositCreated":
            return
        blknum = int(event.args["blknum"])
        position = encode_position(blknum, 0, 0)
        if position in self.chain.utxos and position not in self.chain.pending_spent:
            self.chain.utxos.pop(position)
            self.chain.blocks.pop(blknum, None)
            deletes.append(deposit_key(blknum))
        else:
            log.error("deposit block %d was dropped by an L1 reorg after its output was spent",
                      blknum)

    # ------------------------------------------------------------------ JSON-RPC
    def _methods(self) -> dict[str, Callable[[list[Any]], Any]]:
        methods: dict[str, Callable[[list[Any]], Any]] = {
            "plasma_sendTransaction": self._rpc_send,
            "plasma_getBlock": self._rpc_get_block,
            "plasma_getUtxos": self._rpc_get_utxos,
            "plasma_getExitData": self._rpc_exit_data,
            "plasma_status": self._rpc_status,
        }
        if self.config.adversarial:
            methods["plasma_debugWithhold"] = self._rpc_withhold
            methods["plasma_debugInject"] = self._rpc_inject
        return methods

    async def _rpc_seal(self, params: list[Any]) -> dict[str, Any] | None:
        block = await self.seal_block()
        return None if block is None else {
            "blknum": block.blknum, "root": "0x" + block.root.hex(), "txs": len(block.txs)}

    def _rpc_send(self, params: list[Any]) -> dict[str, Any]:
        started = time.perf_counter()
        tx_hash = self.admit(SignedTransaction.from_json(params[0]))
        self.soft_latencies.append(time.perf_counter() - started)
        return {"txHash": "0x" + tx_hash.hex()}

    def _block(self, blknum: int) -> ChildBlock:
        if self.withhold_from is not None and blknum >= self.withhold_from \
                and blknum % CHILD_BLOCK_INTERVAL == 0:
            raise Withheld("withheld", f"block {blknum} is not available")
        block = self.chain.blocks.get(blknum)
        if block is None:
            raise PlasmaError("unknown-block", f"no block {blknum}")
        return block

    def _rpc_get_block(self, params: list[Any]) -> dict[str, Any]:
        return self._block(int(params[0])).to_json()

    def _rpc_get_utxos(self, params: list[Any]) -> list[dict[str, Any]]:
        owner = bytes.fromhex(str(params[0]).removeprefix("0x"))
        return [{"utxoPos": u.position, "owner": "0x" + u.output.owner.hex(),
                 "token": "0x" + u.output.token.hex(), "amount": str(u.output.amount),
                 "tx": "0x" + u.tx.encoded.hex()} for u in self.chain.utxos_of(owner)]

    def _rpc_exit_data(self, params: list[Any]) -> dict[str, Any]:
        position = int(params[0])
        blknum, txindex, _ = decode_position(position)
        block = self._block(blknum)
        if txindex >= len(block.txs):
            raise PlasmaError("unknown-input", f"block {blknum} has no transaction {txindex}")
        return {"utxoPos": position, "tx": "0x" + block.txs[txindex].tx.encoded.hex(),
                "proof": [str(s) for s in block.proof(txindex)]}

    def _rpc_status(self, params: list[Any]) -> dict[str, Any]:
        return {"contract": self.contract.address, "nextChildBlock": self.chain.next_child_block,
                "pending": len(self.chain.pending), "blocks": len(self.chain.blocks),
                "submitted": self.submitted_through, "utxos": len(self.chain.utxos)}

    def _rpc_withhold(self, params: list[Any]) -> bool:
        self.withhold_from = int(params[0])
        return True

    def _rpc_inject(self, params: list[Any]) -> dict[str, Any]:
        stx = SignedTransaction.from_json(params[0])
        self.injected.append(stx)
        return {"txHash": "0x" + stx.tx.tx_hash.hex()}


async def run_operator(config: OperatorConfig, ready_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM; announce the port in ``ready_file``."""
    operator = Operator(config)
    await operator.start()
    write_ready_file(ready_file, {"port": operator.port, "contract": operator.contract.address})
    try:
        await wait_for_stop_signal()
    finally:
        await operator.stop()
