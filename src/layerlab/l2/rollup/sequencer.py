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

JSON-RPC: ``rollup_sendTransaction(stepHex)`` -> ``{seq, txHash, root}``;
``rollup_getAccount(address)`` -> ``{nonce, balances}``; ``rollup_getBalance(address,
token=0)``; ``rollup_status()``; ``rollup_sealBatch()``; and the lookups a wallet or bridge
UI needs (as op-node's ``optimism_outputAtBlock`` and the withdrawal-proof helpers of the
OP SDK):

- ``rollup_getReceipt(txHash)``: the step's outcome and where it is: ``status`` is
  ``soft`` (acknowledged, not yet in a batch on L1), ``posted`` (in a batch on L1, within
  its challenge window or disputed) or ``final``; ``batchIndex``, ``stepIndex`` (its leaf
  in the batch's steps tree) and ``postRoot``. A step's hash is ``keccak256(step)``, the
  leaf ``submitBatch`` commits to.
- ``rollup_getBatch(index)``: the L1 transaction that posted it, its steps and state roots,
  step count, challenge deadline (``finalAt``), open disputes and status (``sealed``,
  ``posted``, ``disputed``, ``final``).
- ``rollup_getWithdrawalProof(withdrawalId | txHash)``: the arguments of
  ``finalizeWithdrawal`` against the state root of the batch holding the withdrawal.

Unknown hashes, indices and withdrawals are JSON-RPC errors -32000 with ``data.check``
``unknown-tx``, ``unknown-batch``, ``unknown-withdrawal`` (or ``not-batched`` for a
withdrawal still soft). Receipts are recomputed from the journal on restart; the L1
transaction of each batch is journaled with the batch.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from eth_account import Account
from eth_hash.auto import keccak
from web3 import Web3

from layerlab.l2.follower import EventReceived, L1Change, L1Follower, Writes
from layerlab.l2.rollup.machine import (
    ETH,
    Receipt,
    RollupError,
    RollupState,
    apply_step,
    apply_transaction,
)
from layerlab.l2.rollup.optimistic import (
    Batch,
    ExecutedBatch,
    RollupContract,
    Turn,
    drive_dispute,
    execute_batch,
)
from layerlab.l2.rollup.txs import decode_tx_step
from layerlab.l2.rollup.witness import prove_withdrawal
from layerlab.l2.service import JsonRpcServer, cancel_tasks, every, follow_l1
from layerlab.l2.store import RecordStore
from layerlab.orchestration import LOOPBACK, wait_for_stop_signal, write_ready_file

__all__ = ["Sequencer", "SequencerConfig", "run_sequencer"]

log = logging.getLogger(__name__)

STEP: Final = b"s:"
BATCH: Final = b"b:"
L1_TX: Final = b"t:"
FRAUD_CREDIT: Final = 100 * 10**18


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
        self.follower = L1Follower(self.rollup.l1, store=self.store,
                                   start_block=config.start_block)
        self.state = RollupState()
        self.steps: list[bytes] = []
        """Every admitted step, in order (the journal's content)."""
        self.receipts: list[Receipt] = []
        """The receipt of each step (recomputed from the journal on restart)."""
        self.seq_of: dict[bytes, int] = {}
        """Step hash (``keccak256(step)``) -> its position in ``steps``."""
        self.withdrawal_seq: dict[int, int] = {}
        """Withdrawal id -> the position of the step that made it."""
        self.l1_txs: dict[int, str] = {}
        """Batch index -> the hash of the L1 transaction that posted it."""
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
            "rollup_getBalance": self._rpc_balance,
            "rollup_status": self._rpc_status,
        }, {"rollup_sealBatch": self._rpc_seal, "rollup_getReceipt": self._rpc_receipt,
            "rollup_getBatch": self._rpc_batch,
            "rollup_getWithdrawalProof": self._rpc_withdrawal_proof})
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
            self._record(step, apply_step(self.state, step, self.domain))
        for key, value in self.store.items(L1_TX):
            self.l1_txs[int.from_bytes(key[len(L1_TX):], "big")] = str(value)
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
        receipt = apply_transaction(self.state, signed, self.domain)
        self.store.put(_key(STEP, len(self.steps)), step.hex())
        return self._record(step, receipt)

    def _record(self, step: bytes, receipt: Receipt) -> int:
        """Append an applied (and journaled, or about to be) step and index its receipt."""
        seq = len(self.steps)
        self.steps.append(step)
        self.receipts.append(receipt)
        self.seq_of[bytes(keccak(step))] = seq
        if receipt.withdrawal_id is not None:
            self.withdrawal_seq[receipt.withdrawal_id] = seq
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
        receipt = await asyncio.to_thread(self.rollup.submit_batch, self.config.private_key,
                                          Batch(sealed.steps), sealed.root)
        self._note_l1_tx(sealed.index, bytes(receipt["transactionHash"]))
        log.info("batch %d: %d steps, root %#x", sealed.index, len(sealed.steps), sealed.root)

    def _note_l1_tx(self, index: int, tx_hash: bytes) -> None:
        self.l1_txs[index] = "0x" + tx_hash.hex()
        self.store.put(_key(L1_TX, index), self.l1_txs[index])

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
            if event.name == "BatchSubmitted":
                index = int(event.args["batchIndex"])
                self.l1_txs[index] = "0x" + event.tx_hash.hex()
                puts[_key(L1_TX, index)] = self.l1_txs[index]
            if event.name == "BatchesRemoved":  # a dispute we lost took them: batch again
                for i in [i for i in self.l1_txs if i >= int(event.args["fromIndex"])]:
                    del self.l1_txs[i]
                    puts.pop(_key(L1_TX, i), None)
                    deletes.append(_key(L1_TX, i))
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
                seq = self._record(step, apply_step(self.state, step, self.domain))
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

        async def move(turn: Turn, d: dict[str, Any]) -> bool:
            nonlocal executed
            lo, hi = int(d["lo"]), int(d["hi"])
            if turn is Turn.DEFENDER:
                await asyncio.to_thread(self.rollup.bisect, self.config.private_key,
                                        dispute_id, sealed.roots[(lo + hi) // 2])
                return True
            if turn is Turn.ONE_STEP:
                if executed is None:
                    executed = execute_batch(self._state_at(sealed.first),
                                             Batch(sealed.steps), self.domain)
                await asyncio.to_thread(self.rollup.prove_step, self.config.private_key,
                                        dispute_id, executed, lo)
                return True
            return False

        if await drive_dispute(self.rollup, dispute_id, move):
            log.info("dispute %d over", dispute_id)

    # ------------------------------------------------------------------ JSON-RPC
    def _rpc_send(self, params: list[Any]) -> dict[str, Any]:
        step = bytes.fromhex(str(params[0]).removeprefix("0x"))
        seq = self.admit(step)
        return {"seq": seq, "txHash": "0x" + keccak(step).hex(), "root": hex(self.state.root)}

    def _rpc_account(self, params: list[Any]) -> dict[str, Any]:
        address = bytes.fromhex(str(params[0]).removeprefix("0x"))
        return {"nonce": self.state.nonce(address),
                "balances": {str(t): str(self.state.balance(t, address))
                             for t in range(len(self.state.l1_tokens) or 1)}}

    def _rpc_balance(self, params: list[Any]) -> str:
        address = bytes.fromhex(str(params[0]).removeprefix("0x"))
        token = int(params[1]) if len(params) > 1 else ETH
        return str(self.state.balance(token, address))

    def _rpc_status(self, params: list[Any]) -> dict[str, Any]:
        return {"contract": self.rollup.l1.address, "steps": len(self.steps),
                "pending": len(self.steps) - self.batched, "batches": len(self.sealed),
                "root": hex(self.state.root), "disputes": sorted(self.defending)}

    async def _rpc_seal(self, params: list[Any]) -> dict[str, Any] | None:
        sealed = await self.seal_batch()
        return None if sealed is None else {"index": sealed.index, "steps": len(sealed.steps),
                                            "root": hex(sealed.root)}


    # -- lookups: receipts, batches, withdrawal proofs
    def _sealed_holding(self, seq: int) -> _Sealed | None:
        for sealed in self.sealed.values():
            if sealed.first <= seq < sealed.first + len(sealed.steps):
                return sealed
        return None

    def _seq_of_hash(self, value: Any) -> int:
        text = str(value).removeprefix("0x")
        tx_hash = bytes.fromhex(text)
        if len(tx_hash) != 32:
            raise ValueError(f"a transaction hash is 32 bytes, got {len(tx_hash)}")
        seq = self.seq_of.get(tx_hash)
        if seq is None:
            raise RollupError("unknown-tx", f"no step with hash 0x{text} (the sequencer has "
                                            f"{len(self.steps)} steps)")
        return seq

    async def _rpc_receipt(self, params: list[Any]) -> dict[str, Any]:
        seq = self._seq_of_hash(params[0])
        receipt = self.receipts[seq]
        out: dict[str, Any] = {
            "txHash": "0x" + keccak(self.steps[seq]).hex(), "seq": seq, "kind": receipt.kind,
            "ok": receipt.ok, "check": receipt.check or None, "error": receipt.error or None,
            "status": "soft", "batchIndex": None, "stepIndex": None,
            "postRoot": _hex(receipt.root), "withdrawalId": receipt.withdrawal_id,
            "amountOut": None if receipt.amount_out is None else str(receipt.amount_out)}
        sealed = self._sealed_holding(seq)
        if sealed is not None:
            step_index = seq - sealed.first
            out |= {"batchIndex": sealed.index, "stepIndex": step_index,
                    "postRoot": _hex(sealed.roots[step_index + 1])}
            if sealed.index < await asyncio.to_thread(self.rollup.batch_count):
                final = await asyncio.to_thread(self.rollup.is_final, sealed.index)
                out["status"] = "final" if final else "posted"
        return out

    async def _rpc_batch(self, params: list[Any]) -> dict[str, Any]:
        index = _parse_index(params[0], "batch index")
        on_l1 = await asyncio.to_thread(self.rollup.batch_count)
        sealed = self.sealed.get(index)
        if index >= on_l1:
            if sealed is None:
                raise RollupError("unknown-batch", f"no batch {index}: the L1 holds {on_l1} "
                                                   f"(genesis included), none sealed beyond")
            return {"index": index, "status": "sealed", "l1TxHash": None,
                    "stateRoot": _hex(sealed.root), "stepsRoot": "0x" +
                    Batch(sealed.steps).steps_root.hex(), "txCount": len(sealed.steps),
                    "firstSeq": sealed.first, "submittedAt": None, "challengeDeadline": None,
                    "openDisputes": 0, "proposer": None}
        batch = await asyncio.to_thread(self.rollup.get_batch, index)
        final_at = await asyncio.to_thread(self.rollup.final_at, index)
        final = await asyncio.to_thread(self.rollup.is_final, index)
        disputes = int(batch["openDisputes"])
        return {"index": index,
                "status": "final" if final else "disputed" if disputes else "posted",
                "l1TxHash": self.l1_txs.get(index),
                "stateRoot": "0x" + bytes(batch["stateRoot"]).hex(),
                "stepsRoot": "0x" + bytes(batch["stepsRoot"]).hex(),
                "txCount": int(batch["stepCount"]),
                "firstSeq": None if sealed is None else sealed.first,
                "submittedAt": int(batch["submittedAt"]), "challengeDeadline": final_at,
                "openDisputes": disputes, "proposer": batch["proposer"]}

    async def _rpc_withdrawal_proof(self, params: list[Any]) -> dict[str, Any]:
        value = params[0]
        if isinstance(value, str) and len(value.removeprefix("0x")) == 64:
            seq = self._seq_of_hash(value)
            wid = self.receipts[seq].withdrawal_id
            if wid is None:
                raise RollupError("unknown-withdrawal", f"step {value} ({self.receipts[seq].kind}"
                                                        f") made no withdrawal")
        else:
            wid = _parse_index(value, "withdrawal id")
            if wid not in self.withdrawal_seq:
                raise RollupError("unknown-withdrawal", f"withdrawal {wid} does not exist "
                                                        f"({len(self.withdrawal_seq)} so far)")
            seq = self.withdrawal_seq[wid]
        sealed = self._sealed_holding(seq)
        if sealed is None:
            raise RollupError("not-batched", f"withdrawal {wid} (step {seq}) is not in a batch "
                                             f"yet; ask again once it is posted")
        state = await asyncio.to_thread(self._state_at, sealed.first + len(sealed.steps))
        recipient, l1_token, amount = state.withdrawals[wid]
        return {"withdrawalId": wid, "txHash": "0x" + keccak(self.steps[seq]).hex(),
                "batchIndex": sealed.index, "stateRoot": _hex(state.root),
                "recipient": Web3.to_checksum_address(recipient),
                "token": Web3.to_checksum_address(l1_token), "amount": str(amount),
                "proof": "0x" + prove_withdrawal(state, wid).hex()}


async def run_sequencer(config: SequencerConfig, ready_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM; announce the port in ``ready_file``."""
    sequencer = Sequencer(config)
    await sequencer.start()
    write_ready_file(ready_file, {"port": sequencer.port})
    try:
        await wait_for_stop_signal()
    finally:
        await sequencer.stop()


def _hex(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def _parse_index(value: Any, what: str) -> int:
    index = value if isinstance(value, int) else int(str(value), 0)
    if index < 0:
        raise ValueError(f"{what} must not be negative, got {index}")
    return index
