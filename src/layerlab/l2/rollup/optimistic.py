"""The optimistic rollup's off-chain side: batches, the verifier's moves, the L1 client.

An optimistic rollup (the OP Stack, Arbitrum) posts batches and state roots to L1
without proofs; anyone who re-executes a batch and gets another root disputes it within the
challenge window and wins an interactive bisection game (Arbitrum whitepaper, 2018,
section 4) that ends with ONE step re-executed on L1 (``RollupProver.sol``). This module
holds what both parties compute:

- :class:`Batch`: a batch's steps, the Merkle tree ``OptimisticRollup.submitBatch``
  stores (``keccak256(step)`` leaves padded with zero leaves to a power of two, parents
  ``keccak256(left || right)``) and each step's inclusion proof;
- :class:`ExecutedBatch`: the batch re-executed from the state before it: the root
  before every step (``roots[i]``; ``roots[-1]`` is the honest post-state root), and the
  witness of any step for the one-step proof;
- :func:`choose`: the honest challenger's move (agree with the defender's midpoint root iff
  it is the root the challenger computed), and :func:`compute_bisection`: the honest
  defender's;
- :class:`RollupContract`: the ``OptimisticRollup`` contract through the shared L1 client.

The contract's queue checks make deposits and forced transactions impossible to skip; an
invalid L2 transaction is a no-op; so the only way to cheat is a wrong root, and one honest
verifier suffices to remove it (the "1-of-N" trust assumption).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from eth_hash.auto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from layerlab.contracts import deploy, get_contract, load_artifact
from layerlab.crypto.eip712 import Domain
from layerlab.errors import InvalidProof, LayerlabError
from layerlab.l2 import blobpost
from layerlab.l2.l1client import ContractEvent, L1Contract, ProtocolTxError
from layerlab.l2.rollup.codec import decode_inbox, encode_inbox
from layerlab.l2.rollup.machine import Receipt, RollupError, RollupState, apply_step
from layerlab.l2.rollup.txs import rollup_domain
from layerlab.l2.rollup.witness import StepWitness, compute_step_witness, prove_withdrawal

__all__ = [
    "Batch",
    "ExecutedBatch",
    "RollupConfig",
    "RollupContract",
    "RollupTxError",
    "Turn",
    "choose",
    "compute_bisection",
    "deploy_rollup",
    "drive_dispute",
    "execute_batch",
    "play_challenger",
    "read_blob_batch",
]

ZERO: Final = b"\0" * 32
BATCH_BASE_GAS: Final = 150_000
BATCH_STEP_GAS: Final = 12_000
BLOB_BATCH_GAS: Final = 250_000
"""Gas limit of ``submitBatchBlobs`` (measured ~180k: the batch's storage, the blob
hashes' commitment, two events; independent of the batch's size)."""
QUEUED_KINDS: Final = (0xD0, 0xF0)


class RollupTxError(ProtocolTxError, RollupError):
    """An ``OptimisticRollup`` call or transaction was refused (its custom error by name)."""


@dataclass(frozen=True, slots=True)
class Batch:
    steps: tuple[bytes, ...]

    @property
    def inbox(self) -> bytes:
        """The calldata ``submitBatch`` takes (``uint16 length || step`` each)."""
        return encode_inbox(self.steps)

    def levels(self) -> list[list[bytes]]:
        width = 1
        while width < len(self.steps):
            width *= 2
        level = [bytes(keccak(s)) for s in self.steps] + [ZERO] * (width - len(self.steps))
        levels = [level]
        while len(level) > 1:
            level = [bytes(keccak(level[i] + level[i + 1])) for i in range(0, len(level), 2)]
            levels.append(level)
        return levels

    @property
    def steps_root(self) -> bytes:
        return self.levels()[-1][0]

    def step_proof(self, index: int) -> list[bytes]:
        """Siblings of leaf ``index``, bottom up (``proveStep``'s ``stepProof``)."""
        return [level[(index >> depth) ^ 1] for depth, level in enumerate(self.levels()[:-1])]


@dataclass(slots=True)
class ExecutedBatch:
    """A batch re-executed from the state before it (which is kept, copied)."""

    batch: Batch
    before: RollupState
    roots: list[int]
    receipts: list[Receipt]
    domain: Domain

    @property
    def post_root(self) -> int:
        return self.roots[-1]

    def witness(self, index: int) -> StepWitness:
        """The one-step proof witness of step ``index`` (re-executes steps before it)."""
        state = copy.deepcopy(self.before)
        for step in self.batch.steps[:index]:
            apply_step(state, step, self.domain)
        return compute_step_witness(state, self.batch.steps[index], self.domain)


def execute_batch(state: RollupState, batch: Batch, domain: Domain) -> ExecutedBatch:
    """Apply ``batch`` to ``state`` (which advances) and record the root before each step."""
    before = copy.deepcopy(state)
    roots, receipts = [state.root], []
    for step in batch.steps:
        receipts.append(apply_step(state, step, domain))
        roots.append(state.root)
    return ExecutedBatch(batch, before, roots, receipts, domain)


def compute_bisection(executed: ExecutedBatch, lo: int, hi: int) -> int:
    """The honest defender's move: the root before step ``(lo + hi) // 2``."""
    return executed.roots[(lo + hi) // 2]


def choose(executed: ExecutedBatch, lo: int, hi: int, mid_root: int) -> bool:
    """The honest challenger's move: agree iff the midpoint root is the one it computed.

    Agreeing moves the dispute to ``[mid, hi]``, disagreeing to ``[lo, mid]``; either
    way the range still starts at a root both accept and ends at one the challenger
    rejects, so after log2(steps) moves one step is left, and the L1 re-executes it.
    """
    return executed.roots[(lo + hi) // 2] == mid_root


@dataclass(frozen=True, slots=True)
class RollupConfig:
    """``OptimisticRollup.Config`` (seconds, seconds, L1 blocks, wei, wei)."""

    challenge_window: int
    move_timeout: int
    inclusion_delay: int
    proposer_bond: int
    challenger_bond: int

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.challenge_window, self.move_timeout, self.inclusion_delay,
                self.proposer_bond, self.challenger_bond)


log = logging.getLogger(__name__)

MAX_DISPUTE_MOVES: Final = 64
"""Bound on the moves (and waits) a party's loop makes in one dispute: a game over n steps
takes about 2 log2(n) moves, 20 at a batch of 1,000."""
DISPUTE_POLL_SECONDS: Final = 0.25
"""How long a party waits before reading the dispute again when it is not its turn."""


class Turn(IntEnum):
    """Whose move a dispute waits for: ``OptimisticRollup.sol``'s ``enum Turn``."""

    NONE = 0
    """The dispute is over."""
    DEFENDER = 1
    """The proposer must bisect: post the root at the midpoint of ``[lo, hi)``."""
    CHALLENGER = 2
    """The challenger must agree or disagree with the midpoint root."""
    ONE_STEP = 3
    """One step is left: anyone proves it on chain (``proveStep``)."""


MINIMAL: Final = RollupConfig(challenge_window=600, move_timeout=60, inclusion_delay=5,
                              proposer_bond=10**18, challenger_bond=10**17)
MAINNET_LIKE: Final = RollupConfig(challenge_window=7 * 24 * 3600, move_timeout=3600 * 24,
                                   inclusion_delay=7200, proposer_bond=10**18,
                                   challenger_bond=10**17)
"""OP Stack mainnet: 7-day window; Arbitrum's delayed inbox force-inclusion is 24 h (~7,200
blocks at 12 s)."""


def deploy_rollup(w3: Web3, deployer: str, sequencer: str, config: RollupConfig = MINIMAL,
                  genesis: RollupState | None = None, *,
                  blob_batches: bool = False) -> RollupContract:
    """Deploy a ``RollupProver`` and an ``OptimisticRollup`` using it, from ``deployer``.

    ``blob_batches`` opts the deployment into ``submitBatchBlobs``; blob batches cannot be
    disputed yet, so that mode trusts the sequencer for their roots (off by default)."""
    prover = deploy(w3, load_artifact("RollupProver"), sender=deployer)
    root = (genesis or RollupState()).root.to_bytes(32, "big")
    contract = deploy(w3, load_artifact("OptimisticRollup"), sequencer, prover.address, root,
                      config.as_tuple(), sender=deployer)
    if blob_batches:
        tx = contract.functions.enableBlobBatches().transact({"from": deployer})
        if w3.eth.wait_for_transaction_receipt(tx, timeout=60)["status"] != 1:
            raise RollupTxError("enableBlobBatches failed")
    return RollupContract(w3, contract, prover.address)


class RollupContract:
    """``OptimisticRollup`` (and its prover's domain) through :class:`L1Contract`."""

    def __init__(self, w3: Web3, contract: Contract, prover: str) -> None:
        self.l1 = L1Contract(w3, contract, name="OptimisticRollup", error=RollupTxError)
        self.fn = contract.functions
        self.domain = rollup_domain(w3.eth.chain_id, bytes.fromhex(prover[2:]))

    @classmethod
    def at(cls, w3: Web3, address: str) -> RollupContract:
        contract = get_contract(w3, load_artifact("OptimisticRollup"), address)
        return cls(w3, contract, contract.functions.prover().call())

    # -- reads
    def batch_count(self) -> int:
        return int(self.l1.call("batchCount"))

    def state_root(self, index: int) -> int:
        return int.from_bytes(self.l1.call("getBatch", index)[0], "big")

    def get_batch(self, index: int) -> dict[str, Any]:
        """``getBatch(index)`` by field name (``UnknownBatch`` past the tip)."""
        keys = ("stateRoot", "stepsRoot", "stepCount", "depositsUntil", "forcedUntil",
                "submittedAt", "proposer", "openDisputes")
        return dict(zip(keys, self.l1.call("getBatch", index), strict=True))

    def final_at(self, index: int) -> int:
        """The L1 timestamp from which batch ``index`` is final (if undisputed)."""
        return int(self.l1.call("finalAt", index))

    def is_final(self, index: int) -> bool:
        return bool(self.l1.call("isFinal", index))

    def dispute_count(self) -> int:
        return int(self.l1.call("disputeCount"))

    def dispute(self, dispute_id: int) -> dict[str, Any]:
        d = self.l1.call("disputes", dispute_id)
        keys = ("batchIndex", "lo", "hi", "deadline", "turn", "challenger", "defender",
                "loRoot", "hiRoot", "midRoot", "challengerBond")
        return dict(zip(keys, d, strict=True))

    def events(self, from_block: int) -> list[ContractEvent]:
        return self.l1.events(from_block)

    # -- the parties' moves
    def bond(self, key: bytes, amount: int) -> TxReceipt:
        return self.l1.transact(key, "bond", self.fn.bond(), amount)

    def deposit_eth(self, key: bytes, to: str, amount: int) -> TxReceipt:
        return self.l1.transact(key, "depositETH", self.fn.depositETH(to), amount)

    def deposit_erc20(self, key: bytes, token: str, amount: int, to: str) -> TxReceipt:
        """Deposit ``amount`` of ``token`` (approved to this contract first) for ``to``."""
        return self.l1.transact(key, "depositERC20", self.fn.depositERC20(token, amount, to))

    def queued_step(self, receipt: TxReceipt) -> bytes:
        """The step a deposit or ``forceInclude`` receipt queued (what a batch must carry)."""
        (event,) = [e for e in self.l1.receipt_events(receipt)
                    if e.name in ("DepositQueued", "ForcedQueued")]
        return bytes(event.args["step"])

    def force_include(self, key: bytes, l2_tx: bytes) -> bytes:
        """Queue a signed L2 transaction the sequencer must include within
        ``inclusionDelay`` L1 blocks; returns the forced step (``0xF0 || tx``)."""
        return self.queued_step(self.l1.transact(key, "forceInclude", self.fn.forceInclude(l2_tx)))

    def submit_batch(self, key: bytes, batch: Batch, state_root: int) -> TxReceipt:
        """Post ``batch``; its gas limit is an upper bound (measured: ~6.2k gas a transfer at
        200 steps, ~11k at 25; a queued deposit costs a storage read more), not an estimate,
        so the L1 executes the batch once."""
        data = batch.inbox
        gas = BATCH_BASE_GAS + len(batch.steps) * BATCH_STEP_GAS + 16 * len(data)
        gas = min(gas, int(self.l1.w3.eth.get_block("latest")["gasLimit"]))
        return self.l1.transact(key, "submitBatch",
                                self.fn.submitBatch(data, state_root.to_bytes(32, "big")), gas=gas)

    def submit_batch_blobs(self, key: bytes, batch: Batch, state_root: int) -> TxReceipt:
        """Post ``batch`` in blobs (its inbox bytes, :func:`blobpost.encode_blobs`) with its
        steps root, step count and ``state_root`` as calldata (``submitBatchBlobs``). A
        blob batch carries no deposits or forced transactions (the contract cannot check
        them against its queues) and cannot be disputed: see ``submitBatchBlobs``."""
        queued = [i for i, s in enumerate(batch.steps) if s[0] in QUEUED_KINDS]
        if queued:
            raise RollupTxError(f"submitBatchBlobs: step {queued[0]} is a queued message; "
                                "deposits and forced transactions go in calldata batches",
                                "QueuedStepInBlob")
        fn = self.fn.submitBatchBlobs(batch.steps_root, len(batch.steps),
                                      state_root.to_bytes(32, "big"))
        return blobpost.send_blob_transaction(self.l1, key, "submitBatchBlobs", fn,
                                              blobpost.encode_blobs(batch.inbox),
                                              BLOB_BATCH_GAS, RollupTxError, "NoBlobs")

    def blob_batch(self, index: int) -> bytes | None:
        """keccak256 of blob batch ``index``'s versioned hashes; None for a calldata batch."""
        is_blob, hashes_hash = self.l1.call("blobBatch", index)
        return bytes(hashes_hash) if is_blob else None

    def challenge(self, key: bytes, batch_index: int, bond: int) -> int:
        receipt = self.l1.transact(key, "challenge", self.fn.challenge(batch_index), bond)
        opened = [e for e in self.l1.receipt_events(receipt) if e.name == "DisputeOpened"]
        return int(opened[0].args["disputeId"])

    def bisect(self, key: bytes, dispute_id: int, mid_root: int) -> TxReceipt:
        return self.l1.transact(key, "bisect",
                                self.fn.bisect(dispute_id, mid_root.to_bytes(32, "big")))

    def choose(self, key: bytes, dispute_id: int, agree: bool) -> TxReceipt:
        return self.l1.transact(key, "choose", self.fn.choose(dispute_id, agree))

    def timeout(self, key: bytes, dispute_id: int) -> TxReceipt:
        """End a dispute whose mover let its deadline pass: that party loses."""
        return self.l1.transact(key, "timeout", self.fn.timeout(dispute_id))

    def prove_step(self, key: bytes, dispute_id: int, executed: ExecutedBatch,
                   index: int) -> TxReceipt:
        w = executed.witness(index)
        fn = self.fn.proveStep(dispute_id, executed.batch.steps[index],
                               executed.batch.step_proof(index), w.witness)
        return self.l1.transact(key, "proveStep", fn)

    def finalize_withdrawal(self, key: bytes, batch_index: int, state: RollupState,
                            withdrawal_id: int) -> TxReceipt:
        recipient, l1_token, amount = state.withdrawals[withdrawal_id]
        return self.pay_withdrawal(key, batch_index, withdrawal_id, recipient, l1_token, amount,
                                   prove_withdrawal(state, withdrawal_id))

    def pay_withdrawal(self, key: bytes, batch_index: int, withdrawal_id: int, recipient: bytes,
                       l1_token: bytes, amount: int, proof: bytes) -> TxReceipt:
        """``finalizeWithdrawal`` from its parts (what ``rollup_getWithdrawalProof`` gives)."""
        fn = self.fn.finalizeWithdrawal(batch_index, withdrawal_id,
                                        Web3.to_checksum_address(recipient),
                                        Web3.to_checksum_address(l1_token), amount, proof)
        return self.l1.transact(key, "finalizeWithdrawal", fn)


def play_challenger(rollup: RollupContract, key: bytes, dispute_id: int,
                    executed: ExecutedBatch, defender: Callable[[int, int], object]) -> None:
    """Drive a dispute to its end as the honest challenger, calling ``defender(lo, hi)``
    (which bisects, or does not) when it is the defender's turn. Bounded: a dispute over
    n steps takes about 2 log2(n) moves."""
    for _ in range(MAX_DISPUTE_MOVES):
        d = rollup.dispute(dispute_id)
        turn, lo, hi = Turn(int(d["turn"])), int(d["lo"]), int(d["hi"])
        if turn is Turn.NONE:
            return
        if turn is Turn.DEFENDER:
            defender(lo, hi)
        elif turn is Turn.CHALLENGER:
            rollup.choose(key, dispute_id, choose(executed, lo, hi,
                                                  int.from_bytes(d["midRoot"], "big")))
        else:
            rollup.prove_step(key, dispute_id, executed, lo)
    raise RollupError("dispute", f"dispute {dispute_id} did not end within "
                      f"{MAX_DISPUTE_MOVES} moves")


DisputeMove = Callable[[Turn, dict[str, Any]], Awaitable[bool]]
"""A party's answer to one reading of a dispute: make its move (and return True) or
return False to wait for the other party."""


async def drive_dispute(rollup: RollupContract, dispute_id: int, move: DisputeMove) -> bool:
    """Play one party of dispute ``dispute_id`` from an asyncio service (the sequencer
    defends, the verifier challenges): read the dispute, hand every turn but the end to
    ``move``, and wait :data:`DISPUTE_POLL_SECONDS` when it did not move or its move was
    refused (a refused move is logged and tried again on the next reading, since the
    other party may have moved in between). Bounded by :data:`MAX_DISPUTE_MOVES` readings;
    True if the dispute ended within them."""
    for _ in range(MAX_DISPUTE_MOVES):
        d = await asyncio.to_thread(rollup.dispute, dispute_id)
        turn = Turn(int(d["turn"]))
        if turn is Turn.NONE:
            return True
        try:
            moved = await move(turn, d)
        except LayerlabError as exc:
            log.warning("dispute %d: move failed: %s", dispute_id, exc)
            moved = False
        if not moved:
            await asyncio.sleep(DISPUTE_POLL_SECONDS)
    return False


def read_blob_batch(rollup: RollupContract, beacon_url: str, batch_index: int,
                    from_block: int = 0) -> Batch:
    """Derive blob batch ``batch_index`` as a verifier does: its ``BlobBatchSubmitted``
    event's versioned hashes (checked against what the contract stored), the blobs from
    the beacon API of the block that included it (each checked against its hash), decoded
    to the inbox bytes and steps, and those checked against the claimed steps root and
    count; raise :class:`InvalidProof` if any check fails."""
    stored = rollup.blob_batch(batch_index)
    if stored is None:
        raise InvalidProof(f"batch {batch_index} is not a blob batch")
    events = [e for e in rollup.events(from_block)
              if e.name == "BlobBatchSubmitted" and int(e.args["batchIndex"]) == batch_index]
    posted = [e for e in events if keccak(b"".join(e.args["blobHashes"])) == stored]
    if not posted:
        raise InvalidProof(f"batch {batch_index}: no BlobBatchSubmitted event with the blob "
                           "hashes the contract stored")
    event = posted[-1]
    hashes = [bytes(h) for h in event.args["blobHashes"]]
    blobs = blobpost.fetch_blobs(beacon_url, int(event.block_number), hashes)
    batch = Batch(tuple(decode_inbox(blobpost.decode_blobs(blobs))))
    claimed = rollup.l1.call("getBatch", batch_index)
    if batch.steps_root != bytes(claimed[1]) or len(batch.steps) != int(claimed[2]):
        raise InvalidProof(f"batch {batch_index}: its blobs hold {len(batch.steps)} steps with "
                           f"root 0x{batch.steps_root.hex()}, the proposer claimed "
                           f"{int(claimed[2])} with 0x{bytes(claimed[1]).hex()}")
    return batch
