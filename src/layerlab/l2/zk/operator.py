"""The ZK rollup's operator as a service: sequencer and prover in one process.

Like zkSync Lite's server (its ``eth_watch``, ``state_keeper``, ``prover`` and
``eth_sender`` in one binary): it admits EdDSA-signed transfers and withdrawals by
JSON-RPC (``zk_sendTransaction``; the reply comes after the step was checked against the
account's key, balance and nonce, applied to the operator's head state and journaled),
credits the L1 deposit queue's ``Deposited`` events through the shared
:class:`~layerlab.l2.follower.L1Follower`, and every ``batch_interval`` seconds seals a
batch of the circuit's shape (the next ``M`` queued deposits as the contract holds them,
then up to ``N`` transfers and ``W`` withdrawals in admission order), proves it in a
worker *process* (:class:`~concurrent.futures.ProcessPoolExecutor`: the event loop keeps
admitting transactions meanwhile) and submits it with ``submitBatch``, which verifies the
proof and pays the batch's withdrawals.

**Crash safety.** Each admitted transaction is written to LevelDB before its reply; a batch
is written (its range of the journal, its deposits and root) before it is sent to L1, and
again with its receipt. A restart replays the batches the L1 verified (a sealed batch the
L1 does not hold is dropped and sealed again from the same journal), then the unbatched
deposits and transactions into the head state, so a SIGKILL at any moment loses no
acknowledged transaction.

JSON-RPC: ``zk_sendTransaction(tx)`` -> ``{seq, root}``, where ``tx`` is
``{"type": "transfer", "from", "to", "amount", "nonce", "signature": {"r8x", "r8y", "s"}}``
or ``{"type": "withdrawal", "from", "recipient": "0x..", ...}`` (amounts in gwei, numbers
as JSON integers or decimal strings); ``zk_getAccount(index | {"ax", "ay"})``;
``zk_getReceipt(seq)`` -> ``{seq, status: pending|proving|verified, batch, l1Tx}``;
``zk_status()`` (the batches, each with its witness, proving and verification times).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from web3 import Web3

from layerlab.crypto.babyjubjub import EdDSASignature
from layerlab.errors import LayerlabError
from layerlab.l2.follower import EventReceived, EventRetracted, L1Change, L1Follower, Writes
from layerlab.l2.service import JsonRpcServer, cancel_tasks, follow_l1
from layerlab.l2.store import RecordStore
from layerlab.l2.zk.circuit import build_circuit
from layerlab.l2.zk.onchain import ZkRollupContract
from layerlab.l2.zk.prover import ZkProof, ZkProver
from layerlab.l2.zk.state import (
    BatchShape,
    BatchWitness,
    QueuedDeposit,
    Transfer,
    Withdrawal,
    ZkState,
    ZkTxError,
    apply_deposit,
    apply_transfer,
    apply_withdrawal,
    build_batch,
)
from layerlab.orchestration import LOOPBACK, wait_for_stop_signal, write_ready_file

__all__ = ["OperatorConfig", "ZkOperator", "decode_tx", "encode_tx", "run_operator"]

log = logging.getLogger(__name__)

TX: Final = b"t:"
DEPOSIT: Final = b"d:"
BATCH: Final = b"b:"

ZkTx = Transfer | Withdrawal


@dataclass(frozen=True)
class OperatorConfig:
    private_key: bytes
    data_dir: Path
    l1_url: str
    contract_address: str
    shape: BatchShape
    project_root: Path | None = None
    host: str = LOOPBACK
    port: int = 0
    batch_interval: float = 1.0
    poll_interval: float = 0.25
    start_block: int = 0


def _key(prefix: bytes, n: int) -> bytes:
    return prefix + n.to_bytes(8, "big")


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    number = int(value, 0) if isinstance(value, str) else value
    if number < 0:
        raise ValueError(f"{what} must not be negative, got {number}")
    return number


def encode_tx(tx: ZkTx) -> dict[str, Any]:
    """The JSON form ``zk_sendTransaction`` takes (and the journal keeps)."""
    sig = {"r8x": str(tx.signature.r8[0]), "r8y": str(tx.signature.r8[1]),
           "s": str(tx.signature.s)}
    if isinstance(tx, Transfer):
        return {"type": "transfer", "from": tx.from_index, "to": tx.to_index,
                "amount": tx.amount, "nonce": tx.nonce, "signature": sig}
    return {"type": "withdrawal", "from": tx.from_index, "recipient": "0x" + tx.recipient.hex(),
            "amount": tx.amount, "nonce": tx.nonce, "signature": sig}


def decode_tx(value: Any) -> ZkTx:
    """Parse the JSON form; a malformed one raises ``ValueError`` (JSON-RPC -32602)."""
    if not isinstance(value, dict):
        raise ValueError(f"a transaction is a JSON object, got {type(value).__name__}")
    sig = value.get("signature")
    if not isinstance(sig, dict):
        raise ValueError("the transaction has no signature object {r8x, r8y, s}")
    signature = EdDSASignature((_int(sig.get("r8x"), "r8x"), _int(sig.get("r8y"), "r8y")),
                               _int(sig.get("s"), "s"))
    common = (_int(value.get("from"), "from"),)
    amount, nonce = _int(value.get("amount"), "amount"), _int(value.get("nonce"), "nonce")
    if value.get("type") == "transfer":
        return Transfer(*common, _int(value.get("to"), "to"), amount, nonce, signature)
    if value.get("type") == "withdrawal":
        recipient = bytes.fromhex(str(value.get("recipient", "")).removeprefix("0x"))
        if len(recipient) != 20:
            raise ValueError(f"recipient must be a 20-byte address, got {len(recipient)} bytes")
        return Withdrawal(*common, recipient, amount, nonce, signature)
    raise ValueError(f"type must be 'transfer' or 'withdrawal', got {value.get('type')!r}")


def apply_tx(state: ZkState, tx: ZkTx) -> None:
    if isinstance(tx, Transfer):
        apply_transfer(state, tx)
    else:
        apply_withdrawal(state, tx)


def copy_state(state: ZkState) -> ZkState:
    return ZkState(state.depth, dict(state.accounts))


# ---------------------------------------------------------------------- the prover process
_PROVER: ZkProver | None = None


def _init_prover(shape: BatchShape, root: Path | None) -> None:
    global _PROVER
    _PROVER = ZkProver(build_circuit(shape, root))


def _prove(witness: BatchWitness) -> ZkProof:
    if _PROVER is None:
        raise RuntimeError("the prover process was not initialised")
    return _PROVER.prove(witness)


# ---------------------------------------------------------------------- the operator
@dataclass
class _Batch:
    index: int
    first: int
    """Journal sequence number of its first transaction."""
    count: int
    deposits: tuple[QueuedDeposit, ...]
    root: int
    status: str = "proving"
    witness_seconds: float = 0.0
    prove_seconds: float = 0.0
    verify_seconds: float = 0.0
    gas_used: int = 0
    l1_tx: str = ""

    def record(self) -> dict[str, Any]:
        return {"index": self.index, "first": self.first, "count": self.count,
                "deposits": [[str(d.ax), str(d.ay), d.amount] for d in self.deposits],
                "root": str(self.root), "status": self.status,
                "witnessSeconds": round(self.witness_seconds, 3),
                "proveSeconds": round(self.prove_seconds, 3),
                "verifySeconds": round(self.verify_seconds, 3), "gasUsed": self.gas_used,
                "l1Tx": self.l1_tx}

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> _Batch:
        return cls(int(r["index"]), int(r["first"]), int(r["count"]),
                   tuple(QueuedDeposit(int(ax), int(ay), int(a)) for ax, ay, a in r["deposits"]),
                   int(r["root"]), str(r["status"]), float(r["witnessSeconds"]),
                   float(r["proveSeconds"]), float(r["verifySeconds"]), int(r["gasUsed"]),
                   str(r["l1Tx"]))


class ZkOperator:
    """One ZK rollup's operator (see the module docstring)."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.shape = config.shape
        self.w3 = Web3(Web3.HTTPProvider(config.l1_url, request_kwargs={"timeout": 300}))
        self.rollup = ZkRollupContract(
            self.w3, self.w3.eth.contract(address=Web3.to_checksum_address(config.contract_address),
                                          abi=_abi()))
        self.store = RecordStore(config.data_dir / "operator")
        self.follower = L1Follower(self.rollup.l1, store=self.store,
                                   start_block=config.start_block)
        self.txs: list[ZkTx] = []
        """Every admitted transaction, in order (the journal's content)."""
        self.head = ZkState(self.shape.depth)
        """All verified batches, then every known deposit and admitted transaction."""
        self.proven = ZkState(self.shape.depth)
        """The state after the verified batches (the next batch starts from it)."""
        self.batched = 0
        """How many of ``txs`` are in verified batches."""
        self.consumed = 0
        """How many queued deposits verified batches took."""
        self.deposits_seen: set[int] = set()
        self.batches: list[_Batch] = []
        self.proving: _Batch | None = None
        self.unconfirmed: list[_Batch] = []
        """Sealed batches sent (or about to be) that the L1 was not seen to verify."""
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._seal_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._server = JsonRpcServer({
            "zk_sendTransaction": self._rpc_send,
            "zk_getAccount": self._rpc_account,
            "zk_getReceipt": self._rpc_receipt,
            "zk_status": self._rpc_status,
        }, {"zk_sealBatch": self._rpc_seal})
        self.port = config.port

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await asyncio.to_thread(self._restore)
        # the circuit is built (or found in the cache) once, here; the worker loads its key
        await asyncio.to_thread(build_circuit, self.shape, self.config.project_root)
        self._start_pool()
        self.port = await self._server.start(self.config.host, self.config.port)
        self._tasks += [asyncio.create_task(follow_l1(
            self.follower, self.apply_l1, interval=self.config.poll_interval,
            start_block=self.config.start_block)), asyncio.create_task(self._batch_loop())]
        log.info("zk operator on %s:%d: %d transactions, %d batches verified", self.config.host,
                 self.port, len(self.txs), len(self.batches))

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        await self._server.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    def _restore(self) -> None:
        """Replay the journal: verified batches, then what is not batched yet."""
        self.txs = [decode_tx(value) for _, value in self.store.items(TX)]
        on_l1 = int(self.rollup.l1.call("batchCount"))
        for _, value in list(self.store.items(BATCH)):
            batch = _Batch.from_record(value)
            if batch.index >= on_l1:  # sealed, not verified (yet: its tx may be in flight)
                self.unconfirmed.append(batch)
                continue
            self._advance(batch)
        self._adopt_landed(on_l1)
        if self.proven.root != self.rollup.state_root():
            raise LayerlabError(f"the journal's {len(self.batches)} batches end at root "
                                f"{self.proven.root:#x}; the L1 holds {self.rollup.state_root():#x}")
        self.head = copy_state(self.proven)
        self.deposits_seen = set(range(self.consumed))
        for key, value in self.store.items(DEPOSIT):
            self._credit(int.from_bytes(key[len(DEPOSIT):]), QueuedDeposit(*map(int, value)))
        for tx in self.txs[self.batched:]:
            apply_tx(self.head, tx)

    def _advance(self, batch: _Batch) -> None:
        """Apply a batch the L1 verified to the proven state (a replay of the journal)."""
        witness = build_batch(self.proven, self.shape, batch.deposits,
                              *self._split(self.txs[batch.first:batch.first + batch.count]))
        if witness.new_root != batch.root:
            raise LayerlabError(f"batch {batch.index} replays to root {witness.new_root:#x}, "
                                f"not the {batch.root:#x} it was proven with")
        batch.status = "verified"
        self.batches.append(batch)
        self.batched = batch.first + batch.count
        self.consumed += len(batch.deposits)

    def _adopt_landed(self, on_l1: int) -> None:
        """The L1 verified a batch this operator sent but did not see land (killed, or the
        receipt lost): find it among the sealed ones by the L1's root and take it."""
        if on_l1 == len(self.batches):
            return
        root = self.rollup.state_root()
        landed = next((b for b in self.unconfirmed
                       if b.index == len(self.batches) and b.root == root), None)
        if on_l1 != len(self.batches) + 1 or landed is None:
            raise LayerlabError(f"the L1 holds {on_l1} batches ending at root {root:#x}; this "
                                f"operator knows {len(self.batches)} and no sealed batch "
                                "with that root")
        self._advance(landed)
        self.unconfirmed = []
        self.store.put(_key(BATCH, landed.index), landed.record())
        log.info("batch %d was verified on L1 while unrecorded; adopted", landed.index)

    def _credit(self, deposit_id: int, dep: QueuedDeposit) -> None:
        if deposit_id in self.deposits_seen:
            return
        self.deposits_seen.add(deposit_id)
        apply_deposit(self.head, dep)

    # ------------------------------------------------------------------ admission
    def admit(self, tx: ZkTx) -> int:
        """Check ``tx`` against the head state and apply it (raises :class:`ZkTxError`,
        nothing changed); journal it and return its sequence number."""
        apply_tx(self.head, tx)
        seq = len(self.txs)
        self.store.put(_key(TX, seq), encode_tx(tx))
        self.txs.append(tx)
        return seq

    # ------------------------------------------------------------------ the L1
    def apply_l1(self, changes: list[L1Change]) -> None:
        """Credit queued deposits to the head state, stored with the follower's cursor."""
        puts: dict[bytes, Any] = {}
        for change in changes:
            if isinstance(change, EventRetracted):
                log.warning("an L1 reorg retracted %s; deposits are taken from the L1's queue "
                            "when a batch is sealed", change.event.name)
            if not isinstance(change, EventReceived) or change.event.name != "Deposited":
                continue
            args = change.event.args
            deposit_id = int(args["id"])
            dep = QueuedDeposit(int(args["ax"]), int(args["ay"]), int(args["amountGwei"]))
            if deposit_id not in self.deposits_seen:
                self._credit(deposit_id, dep)
                puts[_key(DEPOSIT, deposit_id)] = [str(dep.ax), str(dep.ay), dep.amount]
        self.follower.commit(Writes(puts))

    # ------------------------------------------------------------------ batches
    def _split(self, txs: Sequence[ZkTx]) -> tuple[list[Transfer], list[Withdrawal]]:
        return ([t for t in txs if isinstance(t, Transfer)],
                [t for t in txs if isinstance(t, Withdrawal)])

    def _take(self, deposits: Sequence[QueuedDeposit]) -> int:
        """How many pending transactions, in order, the next batch can hold: transfers
        come before withdrawals in the circuit, so a transfer after a withdrawal waits for
        the next batch, as does one that needs a deposit this batch does not take."""
        trial = copy_state(self.proven)
        for dep in deposits:
            apply_deposit(trial, dep)
        transfers = withdrawals = 0
        count = 0
        for tx in self.txs[self.batched:]:
            if isinstance(tx, Transfer):
                if withdrawals or transfers == self.shape.n_transfers:
                    break
            elif withdrawals == self.shape.n_withdrawals:
                break
            try:
                apply_tx(trial, tx)
            except ZkTxError:
                break
            transfers += isinstance(tx, Transfer)
            withdrawals += isinstance(tx, Withdrawal)
            count += 1
        return count

    def _start_pool(self) -> None:
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_prover, initargs=(self.shape, self.config.project_root))

    async def _batch_loop(self) -> None:
        """A batch every ``batch_interval`` seconds; any failure is logged and retried (a
        prover process that died is started again)."""
        while True:
            await asyncio.sleep(self.config.batch_interval)
            try:
                await self.seal_batch()
            except BrokenProcessPool:
                log.error("the prover process died; starting another")
                self._start_pool()
            except Exception:
                log.exception("sealing a batch failed (will retry)")

    async def seal_batch(self) -> _Batch | None:
        """Seal, prove and submit the next batch (None when there is nothing to batch)."""
        async with self._seal_lock:
            on_l1 = await asyncio.to_thread(self.rollup.l1.call, "batchCount")
            await asyncio.to_thread(self._adopt_landed, int(on_l1))
            queue = await asyncio.to_thread(self.rollup.pending_deposits)
            deposits = tuple(queue[:self.shape.n_deposits])
            count = self._take(deposits)
            if not deposits and not count:
                return None
            first = self.batched
            index = len(self.batches)
            trial = copy_state(self.proven)
            witness = build_batch(trial, self.shape, deposits,
                                  *self._split(self.txs[first:first + count]))
            batch = _Batch(index, first, count, deposits, witness.new_root)
            self.store.put(_key(BATCH, index), batch.record())
            self.proving = batch
            try:
                loop = asyncio.get_running_loop()
                proof: ZkProof = await loop.run_in_executor(self._pool, _prove, witness)
                batch.witness_seconds, batch.prove_seconds = (proof.witness_seconds,
                                                              proof.prove_seconds)
                again = await asyncio.to_thread(self.rollup.pending_deposits)
                if tuple(again[:self.shape.n_deposits]) != deposits:
                    self.store.write({}, (_key(BATCH, index),))
                    log.info("batch %d: a deposit arrived while it proved; sealing again", index)
                    return None
                start = time.perf_counter()
                self.unconfirmed.append(batch)
                receipt = await asyncio.to_thread(self.rollup.submit, self.config.private_key,
                                                  witness, proof.proof)
                batch.verify_seconds = time.perf_counter() - start
            except BaseException:
                self.proving = None
                raise
            batch.status, batch.gas_used = "verified", receipt.gas_used
            batch.l1_tx = "0x" + bytes(receipt.receipt["transactionHash"]).hex()
            self.store.put(_key(BATCH, index), batch.record())
            self.proven = trial
            self.batched = first + count
            self.consumed += len(deposits)
            self.batches.append(batch)
            self.unconfirmed = []
            self.proving = None
            log.info("batch %d verified: %d deposits, %d transactions, witness %.2f s, proof "
                     "%.2f s, submitBatch %.2f s (%d gas)", index, len(deposits), count,
                     batch.witness_seconds, batch.prove_seconds, batch.verify_seconds,
                     batch.gas_used)
            return batch

    # ------------------------------------------------------------------ JSON-RPC
    def _rpc_send(self, params: list[Any]) -> dict[str, Any]:
        seq = self.admit(decode_tx(params[0]))
        return {"seq": seq, "root": str(self.head.root)}

    def _rpc_account(self, params: list[Any]) -> dict[str, Any] | None:
        who = params[0]
        if isinstance(who, dict):
            index = self.head.find_index((_int(who.get("ax"), "ax"), _int(who.get("ay"), "ay")))
            if index is None:
                return None
        else:
            index = _int(who, "index")
        account = self.head.accounts.get(index)
        if account is None:
            return None
        proven = self.proven.accounts.get(index)
        return {"index": index, "ax": str(account.ax), "ay": str(account.ay),
                "balance": account.balance, "nonce": account.nonce,
                "provenBalance": 0 if proven is None else proven.balance}

    def _rpc_receipt(self, params: list[Any]) -> dict[str, Any] | None:
        seq = _int(params[0], "seq")
        if seq >= len(self.txs):
            return None
        for batch in self.batches:
            if batch.first <= seq < batch.first + batch.count:
                return {"seq": seq, "status": "verified", "batch": batch.index,
                        "l1Tx": batch.l1_tx}
        p = self.proving
        if p is not None and p.first <= seq < p.first + p.count:
            return {"seq": seq, "status": "proving", "batch": p.index, "l1Tx": None}
        return {"seq": seq, "status": "pending", "batch": None, "l1Tx": None}

    def _rpc_status(self, params: list[Any]) -> dict[str, Any]:
        return {"contract": self.rollup.l1.address,
                "shape": [self.shape.n_transfers, self.shape.n_deposits,
                          self.shape.n_withdrawals, self.shape.depth],
                "transactions": len(self.txs), "pending": len(self.txs) - self.batched,
                "depositsConsumed": self.consumed, "root": str(self.head.root),
                "provenRoot": str(self.proven.root),
                "proving": None if self.proving is None else self.proving.index,
                "batches": [b.record() for b in self.batches]}

    async def _rpc_seal(self, params: list[Any]) -> dict[str, Any] | None:
        batch = await self.seal_batch()
        return None if batch is None else batch.record()


def _abi() -> Any:
    from layerlab.contracts import load_artifact

    return list(load_artifact("ZkRollup").abi)


async def run_operator(config: OperatorConfig, ready_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM; announce the port in ``ready_file``."""
    operator = ZkOperator(config)
    await operator.start()
    write_ready_file(ready_file, {"port": operator.port})
    try:
        await wait_for_stop_signal()
    finally:
        await operator.stop()
