"""The optimistic rollup on the comparison's workloads, measured on a real L1.

The rollup contracts (``OptimisticRollup`` + ``RollupProver``) are deployed on the L1 the
caller gives; users deposit ETH through the bridge (L1 transactions, their receipts
counted), an LP deposits an ERC-20 and seeds a pool; then each workload's L2
transactions are signed by their users (outside the timing: that is the wallets' work),
admitted one by one by the sequencer (:func:`~layerlab.l2.rollup.machine.apply_transaction`:
signature, nonce, balance, state update; the soft confirmation), and posted in batches of
``batch_size`` with ``submitBatch`` (calldata) or, with ``blobs``, ``submitBatchBlobs`` (the
same inbox bytes in EIP-4844 blobs, :mod:`layerlab.l2.blobpost`). L1 gas, fee and data
bytes per transaction come from the batch receipts (a blob batch's fee adds its blob gas
times the blob base fee it paid); the compressed size of each batch (codec.py) is
recorded beside the bytes actually posted.

What is not measured here: the sequencer runs in this process (no RPC hop to it), and
finality is the contract's rule (a root is final ``challengeWindow`` seconds after it was
posted without an open dispute), read from the contract rather than waited out.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from web3 import Web3

from layerlab.contracts import deploy, load_artifact
from layerlab.l2.l1client import L1Contract
from layerlab.l2.rollup.codec import compress, encode_compact
from layerlab.l2.rollup.machine import (
    ETH,
    RollupError,
    RollupState,
    apply_deposit,
    apply_transaction,
)
from layerlab.l2.rollup.optimistic import MINIMAL, Batch, RollupConfig, deploy_rollup
from layerlab.l2.rollup.txs import (
    AddLiquidity,
    L2Tx,
    MintNFT,
    SignedTx,
    Swap,
    Transfer,
    TransferNFT,
    decode_deposit_step,
    sign_tx,
)

__all__ = ["RollupRun", "measure_rollup"]

USERS = 8
TOKEN = 1
BLOB_GAS_PER_BLOB = 2**17
"""EIP-4844 ``GAS_PER_BLOB``."""


@dataclass(slots=True)
class RollupRun:
    workload: str
    transactions: int
    seconds: float
    execute_seconds: float
    soft_ms: list[float]
    batches: int
    l1_gas: int
    l1_fee_wei: int
    inbox_bytes: int
    compressed_bytes: int
    refused: int
    challenge_window: int
    blobs: int = 0
    """Blobs the batches carried (0: posted as calldata)."""
    blob_gas: int = 0
    blob_fee_wei: int = 0
    """The blob part of ``l1_fee_wei`` (blob gas times the blob base fee paid)."""

    @property
    def tps(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0


def _workload_txs(kind: str, count: int, state: RollupState, users: list[bytes],
                  rng: random.Random) -> list[tuple[int, L2Tx]]:
    """(user index, unsigned tx) pairs, with each user's nonces in order."""
    addrs = [bytes.fromhex(Account.from_key(k).address[2:]) for k in users]
    nonces = [state.nonce(a) for a in addrs]
    out: list[tuple[int, L2Tx]] = []
    minted: list[tuple[int, int]] = []  # (collection = account index, token id)
    for i in range(count):
        who = i % len(users)
        to = addrs[(who + 1 + rng.randrange(len(users) - 1)) % len(users)]
        tx: L2Tx
        if kind == "transfer":
            tx = Transfer(nonce=nonces[who], token=ETH, to=to, amount=rng.randrange(1, 10**15))
        elif kind == "micropayment":
            tx = Transfer(nonce=nonces[who], token=ETH, to=addrs[0] if who else addrs[1],
                          amount=1000)
        elif kind == "nft":
            mine = [m for m in minted if m[0] == state.index_of[addrs[who]]]
            if i % 2 == 0 or not mine:
                token_id = i
                tx = MintNFT(nonce=nonces[who], token_id=token_id, to=addrs[who])
                minted.append((state.index_of[addrs[who]], token_id))
            else:
                collection, token_id = mine.pop()
                minted.remove((collection, token_id))
                tx = TransferNFT(nonce=nonces[who], collection=collection, token_id=token_id,
                                 to=to)
        else:  # swap: ETH for the token, then back
            if i // len(users) % 2 == 0:
                tx = Swap(nonce=nonces[who], token_in=ETH, token_out=TOKEN, amount_in=10**15,
                          min_out=1)
            else:
                tx = Swap(nonce=nonces[who], token_in=TOKEN, token_out=ETH, amount_in=10**12,
                          min_out=1)
        nonces[who] += 1
        out.append((who, tx))
    return out


def measure_rollup(l1_url: str, keys: list[bytes], workloads: tuple[str, ...], tx: int,
                   batch_size: int, config: RollupConfig = MINIMAL,
                   seed: int = 7, blobs: bool = False) -> tuple[list[RollupRun], dict[str, Any]]:
    """Deploy the rollup on ``l1_url`` and run each workload; returns the runs and the
    setup's L1 costs (deposits)."""
    w3 = Web3(Web3.HTTPProvider(l1_url, request_kwargs={"timeout": 60}))
    deployer, sequencer = keys[0], keys[1]
    users = keys[2:2 + USERS]
    d_addr = Account.from_key(deployer).address
    rollup = deploy_rollup(w3, d_addr, Account.from_key(sequencer).address, config,
                           blob_batches=blobs)
    rollup.bond(sequencer, config.proposer_bond)
    state = RollupState()
    domain = rollup.domain
    rng = random.Random(seed)

    # -- setup through the bridge: ETH for every user, the token and ETH for the LP
    token = deploy(w3, load_artifact("LabToken"), "Lab", "LAB", 10**30, sender=d_addr)
    token_client = L1Contract(w3, token, name="LabToken")
    token_client.transact(deployer, "approve", token.functions.approve(rollup.l1.address, 10**30))
    deposit_gas: list[int] = []
    steps: list[bytes] = []
    for key in [deployer, *users]:
        receipt = rollup.deposit_eth(key, Account.from_key(key).address, 10**20)
        deposit_gas.append(int(receipt["gasUsed"]))
        steps.append(rollup.queued_step(receipt))
    receipt = rollup.deposit_erc20(deployer, token.address, 10**24, d_addr)
    steps.append(rollup.queued_step(receipt))
    for step in steps:
        apply_deposit(state, decode_deposit_step(step))
    lp = sign_tx(AddLiquidity(nonce=0, token0=ETH, token1=TOKEN, amount0=10**19,
                              amount1=10**22, min_shares=1), deployer, domain)
    apply_transaction(state, lp, domain)
    steps.append(lp.encode())
    rollup.submit_batch(sequencer, Batch(tuple(steps)), state.root)
    setup = {"deposit_gas_mean": sum(deposit_gas) / len(deposit_gas),
             "erc20_deposit_gas": int(receipt["gasUsed"])}

    runs = []
    for workload in workloads:
        pairs = _workload_txs(workload, tx, state, users, rng)
        signed = [sign_tx(t, users[who], domain) for who, t in pairs]
        runs.append(_run(workload, signed, state, rollup, sequencer, batch_size, config,
                         blobs))
    return runs, setup


def _run(workload: str, signed: list[SignedTx], state: RollupState, rollup: Any,
         sequencer: bytes, batch_size: int, config: RollupConfig,
         blobs: bool = False) -> RollupRun:
    """Admit ``signed`` one by one; a full batch is handed to a poster thread (as the OP
    Stack's op-batcher runs beside the sequencer), so the run's time is what both take."""
    domain = rollup.domain
    soft: list[float] = []
    refused = 0
    execute = 0.0
    pending: list[bytes] = []
    posts: list[Future[Any]] = []
    sizes: list[tuple[int, int]] = []
    submit = rollup.submit_batch_blobs if blobs else rollup.submit_batch
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher") as batcher:

        def post() -> None:
            batch = Batch(tuple(pending))
            sizes.append((len(batch.inbox), len(compress(encode_compact(batch.steps, state)))))
            posts.append(batcher.submit(submit, sequencer, batch, state.root))
            pending.clear()

        for tx in signed:
            t0 = time.perf_counter()
            try:
                apply_transaction(state, tx, domain)
            except RollupError:
                refused += 1
                continue
            took = time.perf_counter() - t0
            execute += took
            soft.append(took * 1000)
            pending.append(tx.encode())
            if len(pending) >= batch_size:
                post()
        if pending:
            post()
        receipts = [f.result() for f in posts]
    seconds = time.perf_counter() - started
    gas = sum(int(r["gasUsed"]) for r in receipts)
    blob_gas = sum(int(r.get("blobGasUsed", 0)) for r in receipts)
    blob_fee = sum(int(r.get("blobGasUsed", 0)) * int(r.get("blobGasPrice", 0)) for r in receipts)
    fee = sum(int(r["gasUsed"]) * int(r["effectiveGasPrice"]) for r in receipts) + blob_fee
    return RollupRun(workload, len(soft), seconds, execute, soft, len(receipts), gas, fee,
                     sum(a for a, _ in sizes), sum(b for _, b in sizes), refused,
                     config.challenge_window, blob_gas // BLOB_GAS_PER_BLOB, blob_gas, blob_fee)
