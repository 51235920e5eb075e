"""Proof of work: a hashcash seal over the block header, difficulty retargeting, and the
heaviest-chain rule.

**Seal.** A block is sealed when ``keccak256(rlp(header)) <= 2**256 // difficulty``
(hashcash, Back 2002; Nakamoto 2008 section 4). The miner varies an 8-byte nonce carried
in the header's ``extra_data``: the execution header is Cancun's, whose ``difficulty`` and
``nonce`` fields are fixed to zero since the Merge (EIP-3675), so the seal is the block
hash itself and ``difficulty`` lives in the consensus record the node keeps per block,
recomputed by every verifier from the parent (it is never taken from the sender).
Unlike Ethash this is not memory-hard; the point is the protocol, not ASIC resistance.

**Retargeting.** Homestead's rule (EIP-2) with the target time as a parameter::

    diff = parent_diff + parent_diff // Q * max(1 - (ts - parent_ts) // T, -99)

Blocks faster than ``T`` raise the difficulty by ``1/Q``, slower ones lower it by up to
``99/Q``; a floor keeps it positive.

**Fork choice.** The canonical chain is the one with the most total difficulty (the sum
of its blocks' difficulties), not the longest; ties keep the block seen first.

**Finality** is probabilistic: a block ``k`` deep is reversed only if an attacker with a
fraction ``q`` of the hash power catches up, with probability given by
:func:`attacker_success_probability` (Nakamoto 2008, section 11).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI
from eth_hash.auto import keccak

from layerlab.errors import InvalidBlock
from layerlab.l1.consensus.engine import HEAD_KEY, ConsensusEngine, Finality
from layerlab.l1.storage import ChainDB

NONCE_SIZE = 8
MAX_DIFFICULTY_DROP = -99


@dataclass(frozen=True, slots=True)
class PowParams:
    """Proof-of-work rules of a chain (a preset or the ``pow`` key of a chain config)."""

    target_block_time: int
    initial_difficulty: int
    min_difficulty: int
    adjustment_quotient: int
    confirmations: int
    """``k`` in the k-confirmation finality figure reported by ``net status``."""
    max_future_seconds: int = 15
    name: str = "custom"


MINIMAL = PowParams(
    target_block_time=2,
    initial_difficulty=20_000,
    min_difficulty=1_000,
    adjustment_quotient=16,
    confirmations=6,
    name="minimal",
)
MAINNET_LIKE = PowParams(
    target_block_time=13,
    initial_difficulty=2_000_000,
    min_difficulty=131_072,
    adjustment_quotient=2048,
    confirmations=12,
    name="mainnet-like",
)
PRESETS = {"minimal": MINIMAL, "mainnet-like": MAINNET_LIKE}


def next_difficulty(params: PowParams, parent_difficulty: int, parent_timestamp: int, timestamp: int) -> int:
    """The difficulty a child block must meet (EIP-2 retarget toward ``target_block_time``)."""
    elapsed = timestamp - parent_timestamp
    factor = max(1 - elapsed // params.target_block_time, MAX_DIFFICULTY_DROP)
    step = max(parent_difficulty // params.adjustment_quotient, 1)
    return max(parent_difficulty + step * factor, params.min_difficulty)


def seal_target(difficulty: int) -> int:
    return 2**256 // difficulty


def meets(block_hash: bytes, difficulty: int) -> bool:
    return int.from_bytes(block_hash, "big") <= seal_target(difficulty)


def check_seal(header: BlockHeaderAPI, difficulty: int) -> None:
    """Raise :class:`InvalidBlock` unless ``header`` carries a valid seal for ``difficulty``."""
    if len(header.extra_data) != NONCE_SIZE:
        raise InvalidBlock(
            f"bad seal: block {header.block_number} extra_data must be an {NONCE_SIZE}-byte "
            f"nonce, got {len(header.extra_data)} bytes"
        )
    if not meets(header.hash, difficulty):
        raise InvalidBlock(
            f"bad seal: block {header.block_number} hash 0x{header.hash.hex()} is above the "
            f"target for difficulty {difficulty}"
        )


class Sealer:
    """Searches nonces for one header, a chunk at a time (so a node stays responsive).

    The header is RLP-encoded once; each attempt rewrites the 8 nonce bytes in place and
    hashes the buffer, which is what ``header.hash`` computes, without re-encoding.
    """

    def __init__(self, header: BlockHeaderAPI, difficulty: int, start_nonce: int = 0) -> None:
        self.header = header
        self.target = seal_target(difficulty)
        low = rlp.encode(header.copy(extra_data=b"\x00" * NONCE_SIZE))
        high = rlp.encode(header.copy(extra_data=b"\xff" * NONCE_SIZE))
        offset = next(i for i in range(len(low)) if low[i] != high[i])
        self._buffer = bytearray(low)
        self._offset = offset
        self.nonce = start_nonce
        self.attempts = 0

    def search(self, attempts: int) -> BlockHeaderAPI | None:
        """Try up to ``attempts`` nonces; return the sealed header, or None."""
        buf, off, target = self._buffer, self._offset, self.target
        end = self.nonce + attempts
        nonce = self.nonce
        while nonce < end:
            buf[off : off + NONCE_SIZE] = (nonce % 2**64).to_bytes(NONCE_SIZE, "big")
            if int.from_bytes(keccak(bytes(buf)), "big") <= target:
                self.attempts += nonce - self.nonce + 1
                self.nonce = nonce + 1
                return self.header.copy(extra_data=(nonce % 2**64).to_bytes(NONCE_SIZE, "big"))
            nonce += 1
        self.attempts += attempts
        self.nonce = end
        return None


def attacker_success_probability(q: float, k: int) -> float:
    """Probability that an attacker with hash-power share ``q`` ever overtakes a block
    buried ``k`` deep (Nakamoto 2008, section 11: Poisson catch-up of a random walk)."""
    p = 1.0 - q
    if q >= p:
        return 1.0
    lam = k * (q / p)
    total = 1.0
    for i in range(k + 1):
        poisson = math.exp(-lam) * lam**i / math.factorial(i)
        total -= poisson * (1 - (q / p) ** (k - i))
    return max(total, 0.0)


@dataclass(frozen=True, slots=True)
class PowRecord:
    """What a node keeps per PoW block: its required difficulty and the chain's total."""

    difficulty: int
    total_difficulty: int

    def encode(self) -> bytes:
        return bytes(rlp.encode([self.difficulty, self.total_difficulty]))

    @classmethod
    def decode(cls, data: bytes) -> PowRecord:
        difficulty, total = rlp.decode(data)
        return cls(int.from_bytes(difficulty, "big"), int.from_bytes(total, "big"))


class PowEngine(ConsensusEngine):
    """Proof-of-work consensus: seal checks, retargeting and heaviest-chain fork choice."""

    kind = "pow"

    def __init__(self, db: ChainDB, params: PowParams, genesis: BlockHeaderAPI) -> None:
        super().__init__(db)
        self.params = params
        self.genesis = genesis
        self._records: dict[bytes, PowRecord] = {}
        if self.record(genesis.hash) is None:
            rec = PowRecord(params.initial_difficulty, params.initial_difficulty)
            self.db.write_many(self._put(b"pow", genesis.hash, rec.encode()), [])
        stored = self.db.get(HEAD_KEY)
        self._head: bytes = bytes(stored) if stored else bytes(genesis.hash)
        self._head_record = self.record(self._head) or PowRecord(params.initial_difficulty, 0)

    def record(self, block_hash: bytes) -> PowRecord | None:
        rec = self._records.get(block_hash)
        if rec is None:
            data = self._get(b"pow", block_hash)
            if data is None:
                return None
            rec = self._records[block_hash] = PowRecord.decode(data)
        return rec

    def difficulty_for(self, parent: BlockHeaderAPI, timestamp: int) -> int:
        rec = self.record(parent.hash)
        if rec is None:
            raise InvalidBlock(f"no proof-of-work record for parent 0x{parent.hash.hex()}")
        return next_difficulty(self.params, rec.difficulty, parent.timestamp, timestamp)

    def check(self, block: BlockAPI, parent: BlockHeaderAPI, body: bytes, now: float) -> PowRecord:
        header = block.header
        if body:
            raise InvalidBlock(f"block {header.block_number}: a PoW block carries no consensus body")
        if header.timestamp > now + self.params.max_future_seconds:
            raise InvalidBlock(
                f"block {header.block_number}: timestamp {header.timestamp} is more than "
                f"{self.params.max_future_seconds} s in the future"
            )
        difficulty = self.difficulty_for(parent, header.timestamp)
        check_seal(header, difficulty)
        parent_rec = self.record(parent.hash)
        assert parent_rec is not None  # difficulty_for checked it
        return PowRecord(difficulty, parent_rec.total_difficulty + difficulty)

    def accept(
        self, header: BlockHeaderAPI, record: Any, body: bytes, receipts: Sequence[ReceiptAPI]
    ) -> None:
        rec: PowRecord = record
        self._records[header.hash] = rec
        puts = self._put(b"pow", header.hash, rec.encode())
        if rec.total_difficulty > self._head_record.total_difficulty:
            self._head, self._head_record = bytes(header.hash), rec
            puts[HEAD_KEY] = self._head
        self.db.write_many(puts, [])

    def head(self) -> bytes:
        return self._head

    def has_record(self, block_hash: bytes) -> bool:
        return self.record(block_hash) is not None

    def finality(self, head: BlockHeaderAPI) -> Finality:
        k = self.params.confirmations
        number = max(head.block_number - k, 0)
        return Finality(
            "k-confirmations",
            number,
            b"",
            {
                "k": k,
                "attacker_success_10pct": attacker_success_probability(0.10, k),
                "attacker_success_30pct": attacker_success_probability(0.30, k),
            },
        )

    def status(self) -> dict[str, Any]:
        return {
            "consensus": "pow",
            "difficulty": self._head_record.difficulty,
            "totalDifficulty": self._head_record.total_difficulty,
        }
