"""Following the L1: a contract's decoded events as state changes, with reorgs retracted.

Every L2 service learns what happened on its L1 the same way: it reads the contract's
logs block by block from a saved cursor and turns each into a state change its pure core
applies (raiden's ``ContractReceiveChannelOpened``, ``ContractReceiveChannelClosed``...).
This module is that one reader. Each :meth:`L1Follower.poll`

1. reads the head;
2. checks the blocks it delivered last (it keeps the number, hash and events of the last
   ``history`` of them) against the canonical chain, newest first, down to the first one
   that is still canonical: the *fork point*. Each event of a dropped block is handed back
   as :class:`EventRetracted`, newest first (what a web3 filter reports as a log with
   ``removed: true``, and what raiden avoids by waiting for confirmations). A fork below
   the kept history raises :class:`ReorgTooDeep` rather than guess;
3. reads the blocks after the cursor up to ``head - confirmations``, at most
   ``max_blocks`` of them, logs by ``eth_getLogs`` in chunks, and hands each event over as
   :class:`EventReceived`, in chain order. An event is delivered once ``confirmations``
   blocks are on top of its block; with ``confirmations=0`` at once, and it may be
   retracted later;
4. reports the head as :class:`NewBlock` when it changed, once every event up to
   ``head - confirmations`` has been delivered (the clock of block-numbered deadlines:
   lock expiries, settle and challenge windows; a consumer catching up must not decide a
   deadline passed before it has read the events that came before it).

Reads are checked against each other: the new blocks must extend the last delivered one
(``parentHash``), and each log must come from the block the follower read at its height,
or the chain moved while it was read and the new blocks wait for the next poll. A poll
that fails changes nothing; the error is :class:`L1Unavailable`, never an exception of the
transport.

The follower decides nothing. A consumer applies the changes (on its event loop or in a
plain loop), then stores what it derived from them *together with* the follower's state
(:meth:`L1Follower.commit` writes both in one LevelDB batch), so a process killed at any
moment restarts from a cursor that matches its own records: nothing lost, nothing applied
twice. Until ``commit`` the changes are only in memory; a restart delivers them again.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from hexbytes import HexBytes
from web3.exceptions import BlockNotFound, Web3Exception
from web3.types import BlockIdentifier, LogReceipt

from layerlab.errors import LayerlabError
from layerlab.l2.l1client import ContractEvent, L1Contract
from layerlab.l2.store import RecordStore
from layerlab.primitives.types import BlockNumber, Hash32

__all__ = [
    "DEFAULT_HISTORY",
    "EventReceived",
    "EventRetracted",
    "L1Change",
    "L1Follower",
    "L1FollowerError",
    "L1Unavailable",
    "NewBlock",
    "ReorgTooDeep",
    "Writes",
]

log = logging.getLogger(__name__)

DEFAULT_HISTORY: Final = 64
"""Blocks kept beyond the confirmation depth to find a fork point (Ethereum PoS reorgs are
a few blocks; a PoW devnet's longer)."""
DEFAULT_MAX_BLOCKS: Final = 2000
DEFAULT_CHUNK_BLOCKS: Final = 500
_FORMAT: Final = 1
_T = TypeVar("_T")


class L1FollowerError(LayerlabError):
    """The L1 could not be followed."""


class L1Unavailable(L1FollowerError):
    """A read of the L1 failed (node unreachable, timed out, or answered with an error);
    the poll changed nothing and may be retried."""


class ReorgTooDeep(L1FollowerError):
    """The chain dropped blocks below the history the follower keeps: it cannot say which
    delivered events are gone. ``fork_below`` is the oldest block it still knew."""

    def __init__(self, message: str, fork_below: int) -> None:
        super().__init__(message)
        self.fork_below = fork_below


@dataclass(frozen=True, slots=True)
class EventReceived:
    """A contract event with ``confirmations`` blocks on top of it."""

    event: ContractEvent


@dataclass(frozen=True, slots=True)
class EventRetracted:
    """An event delivered earlier whose block left the canonical chain."""

    event: ContractEvent


@dataclass(frozen=True, slots=True)
class NewBlock:
    """The L1 head moved (forward, or back after a reorg to a shorter chain), and every
    event up to ``number - confirmations`` has been delivered."""

    number: BlockNumber
    hash: Hash32


L1Change = EventReceived | EventRetracted | NewBlock
"""What a poll hands to the consumer."""


@dataclass(frozen=True, slots=True)
class Writes:
    """Records a consumer derived from a batch of changes, stored atomically with the
    follower's cursor by :meth:`L1Follower.commit`."""

    puts: Mapping[bytes, Any] = field(default_factory=dict)
    deletes: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class _Header:
    number: BlockNumber
    hash: Hash32
    parent_hash: Hash32


@dataclass(frozen=True, slots=True)
class _Block:
    """A delivered block: its hash and the logs of its events (kept raw to restore)."""

    number: BlockNumber
    hash: Hash32
    logs: tuple[Mapping[str, Any], ...]
    events: tuple[ContractEvent, ...]


class L1Follower:
    """Follows one contract's events (see the module docstring).

    ``start_block`` is where a follower without a stored state begins (the contract's
    deployment block, say); ``store`` and ``key`` are where :meth:`commit` keeps its
    state, restored on construction. ``poll`` is synchronous (a thread or a plain loop);
    :meth:`poll_async` and :meth:`run` serve an asyncio consumer.
    """

    def __init__(self, contract: L1Contract, *, start_block: int = 0, confirmations: int = 0,
                 history: int = DEFAULT_HISTORY, max_blocks: int = DEFAULT_MAX_BLOCKS,
                 chunk_blocks: int = DEFAULT_CHUNK_BLOCKS, store: RecordStore | None = None,
                 key: bytes = b"l1-follower") -> None:
        if confirmations < 0 or history < 1 or max_blocks < 1 or chunk_blocks < 1:
            raise L1FollowerError(
                f"follower of {contract.name}: confirmations {confirmations} must be >= 0, "
                f"history {history}, max_blocks {max_blocks} and chunk_blocks {chunk_blocks} >= 1")
        self.contract = contract
        self.confirmations = confirmations
        self.history = history
        self.max_blocks = max_blocks
        self.chunk_blocks = chunk_blocks
        self.store = store
        self.key = key
        self._start = BlockNumber(start_block)
        self._cursor = BlockNumber(start_block)
        self._blocks: tuple[_Block, ...] = ()
        self._head: NewBlock | None = None
        self._lock = threading.Lock()
        if store is not None:
            self._restore(store.get(key))

    @property
    def cursor(self) -> BlockNumber:
        """The next block to deliver."""
        return self._cursor

    @property
    def head(self) -> NewBlock | None:
        """The last head reported (as :class:`NewBlock`)."""
        return self._head

    # -- following ---------------------------------------------------------------------
    def poll(self) -> list[L1Change]:
        """One round: retractions (newest first), receptions (in chain order), then the
        head if it moved. Raises :class:`L1Unavailable` (nothing changed) or
        :class:`ReorgTooDeep`."""
        with self._lock:
            head = self._get_header("latest")
            if head is None:
                raise L1Unavailable(f"{self._where()}: the node has no latest block")
            kept, dropped = self._find_fork(head)
            if not kept and dropped and dropped[0].number > self._start:
                raise ReorgTooDeep(
                    f"{self._where()}: none of the {len(dropped)} kept blocks "
                    f"{dropped[0].number}..{dropped[-1].number} is canonical any more "
                    f"(head {head.number}); the fork is below block {dropped[0].number}",
                    dropped[0].number)
            changes: list[L1Change] = [
                EventRetracted(event) for block in reversed(dropped)
                for event in reversed(block.events)]
            cursor = BlockNumber(dropped[0].number) if dropped else self._cursor
            last = min(head.number - self.confirmations, cursor + self.max_blocks - 1)
            if last >= cursor:
                scanned = self._scan(cursor, BlockNumber(last), kept[-1] if kept else None)
                if scanned is not None:
                    new_blocks, received = scanned
                    kept = (*kept, *new_blocks)
                    cursor = BlockNumber(last + 1)
                    changes += [EventReceived(event) for event in received]
            moved = NewBlock(head.number, head.hash)
            caught_up = cursor > head.number - self.confirmations
            if caught_up and moved != self._head:
                changes.append(moved)
                self._head = moved
            self._blocks = kept[-self.history:]
            self._cursor = cursor
            return changes

    def rewind(self, block: int) -> None:
        """Forget the kept blocks and deliver again from ``block`` (after a
        :class:`ReorgTooDeep`, by a consumer that can apply events twice). Nothing is
        retracted: the consumer rebuilds what it derived, or tolerates stale records."""
        with self._lock:
            self._start = self._cursor = BlockNumber(block)
            self._blocks = ()
            self._head = None

    async def poll_async(self) -> list[L1Change]:
        """:meth:`poll` in a worker thread (it only reads; the caller decides)."""
        return await asyncio.to_thread(self.poll)

    async def run(self, apply: Callable[[list[L1Change]], Awaitable[Writes | None] | Writes | None],
                  interval: float) -> None:
        """Until cancelled: poll every ``interval`` seconds, hand a non-empty batch of
        changes to ``apply`` on the event loop, and (with a store) commit what it returns
        with the follower's state. An unavailable L1 is logged and retried; a
        :class:`ReorgTooDeep` ends the loop."""
        while True:
            try:
                changes = await self.poll_async()
            except L1Unavailable as exc:
                log.warning("%s (will retry)", exc)
            else:
                if changes:
                    outcome = apply(changes)
                    writes = await outcome if inspect.isawaitable(outcome) else outcome
                    if self.store is not None:
                        self.commit(writes)
            await asyncio.sleep(interval)

    # -- persistence -------------------------------------------------------------------
    def records(self) -> dict[bytes, Any]:
        """The follower's state as records, for a consumer writing its own batch."""
        return {self.key: {
            "format": _FORMAT, "start": self._start, "cursor": self._cursor,
            "head": None if self._head is None else [self._head.number, _hex(self._head.hash)],
            "blocks": [[b.number, _hex(b.hash), list(b.logs)] for b in self._blocks],
        }}

    def commit(self, writes: Writes | None = None) -> None:
        """Store ``writes`` and the follower's state in one atomic batch."""
        if self.store is None:
            raise L1FollowerError(f"{self._where()}: commit needs a store")
        writes = writes or Writes()
        self.store.write({**writes.puts, **self.records()}, writes.deletes)

    def _restore(self, raw: Any) -> None:
        if raw is None:
            return
        if not isinstance(raw, Mapping) or raw.get("format") != _FORMAT:
            raise L1FollowerError(f"{self._where()}: stored state under {self.key!r} has an "
                                  f"unknown format: {str(raw)[:80]}")
        self._start = BlockNumber(int(raw["start"]))
        self._cursor = BlockNumber(int(raw["cursor"]))
        head = raw.get("head")
        self._head = None if head is None else NewBlock(BlockNumber(int(head[0])),
                                                        Hash32(_unhex(head[1])))
        blocks = []
        for number, block_hash, logs in raw["blocks"]:
            events = tuple(e for e in (self.contract.decode_log(_log_from_json(j)) for j in logs)
                           if e is not None)
            blocks.append(_Block(BlockNumber(int(number)), Hash32(_unhex(block_hash)),
                                 tuple(logs), events))
        self._blocks = tuple(blocks)

    # -- reading -----------------------------------------------------------------------
    def _find_fork(self, head: _Header) -> tuple[tuple[_Block, ...], tuple[_Block, ...]]:
        """Split the kept blocks into those still canonical and those dropped."""
        keep = len(self._blocks)
        while keep > 0:
            block = self._blocks[keep - 1]
            if block.number <= head.number:
                header = head if block.number == head.number else self._get_header(block.number)
                if header is not None and header.hash == block.hash:
                    break
            keep -= 1
        return self._blocks[:keep], self._blocks[keep:]

    def _scan(self, first: BlockNumber, last: BlockNumber, parent: _Block | None
              ) -> tuple[tuple[_Block, ...], list[ContractEvent]] | None:
        """Blocks ``first..last``: the kept ones (the newest ``history``) and the events of
        all; None when the chain moved while they were read."""
        window = max(first, last - self.history + 1)
        headers: list[_Header] = []
        for number in range(window, last + 1):
            header = self._get_header(number)
            if header is None:
                return None
            expected = headers[-1].hash if headers else (
                parent.hash if parent is not None and parent.number == number - 1 else None)
            if expected is not None and header.parent_hash != expected:
                log.info("%s: block %d does not extend block %d as read: the chain moved",
                         self._where(), number, number - 1)
                return None
            headers.append(header)
        by_block: dict[int, list[tuple[LogReceipt, ContractEvent]]] = {}
        received: list[ContractEvent] = []
        for start in range(first, last + 1, self.chunk_blocks):
            end = min(last, start + self.chunk_blocks - 1)
            logs = self._read(f"eth_getLogs {start}..{end}",
                              functools.partial(self.contract.get_logs, start, end))
            for raw in logs:
                number = int(raw["blockNumber"])
                if number >= window and bytes(raw["blockHash"]) != headers[number - window].hash:
                    log.info("%s: a log of block %d is from another block than the one read",
                             self._where(), number)
                    return None
                event = self.contract.decode_log(raw)
                if event is None:
                    continue
                received.append(event)
                by_block.setdefault(number, []).append((raw, event))
        blocks = tuple(
            _Block(h.number, h.hash, tuple(_log_to_json(raw) for raw, _ in by_block.get(h.number, ())),
                   tuple(event for _, event in by_block.get(h.number, ())))
            for h in headers)
        return blocks, received

    def _get_header(self, block: BlockIdentifier) -> _Header | None:
        def read() -> _Header | None:
            try:
                data = self.contract.w3.eth.get_block(block)
            except BlockNotFound:
                return None
            return _Header(BlockNumber(int(data["number"])), Hash32(bytes(data["hash"])),
                           Hash32(bytes(data["parentHash"])))
        return self._read(f"eth_getBlockByNumber({block!r})", read)

    def _read(self, what: str, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except (Web3Exception, OSError) as exc:
            raise L1Unavailable(f"{self._where()}: {what} failed: {type(exc).__name__}: "
                                f"{exc}") from exc

    def _where(self) -> str:
        provider = getattr(self.contract.w3.provider, "endpoint_uri", "?")
        return f"follower of {self.contract.name} at {provider}"


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


def _log_to_json(raw: LogReceipt) -> dict[str, Any]:
    return {
        "address": str(raw["address"]),
        "topics": [_hex(bytes(t)) for t in raw["topics"]],
        "data": _hex(bytes(raw["data"])),
        "blockNumber": int(raw["blockNumber"]),
        "blockHash": _hex(bytes(raw["blockHash"])),
        "transactionHash": _hex(bytes(raw["transactionHash"])),
        "transactionIndex": int(raw["transactionIndex"]),
        "logIndex": int(raw["logIndex"]),
    }


def _log_from_json(value: Mapping[str, Any]) -> LogReceipt:
    topics: Sequence[str] = value["topics"]
    entry: Any = {
        "address": value["address"],
        "topics": [HexBytes(t) for t in topics],
        "data": HexBytes(value["data"]),
        "blockNumber": int(value["blockNumber"]),
        "blockHash": HexBytes(value["blockHash"]),
        "transactionHash": HexBytes(value["transactionHash"]),
        "transactionIndex": int(value["transactionIndex"]),
        "logIndex": int(value["logIndex"]),
        "removed": False,
    }
    return entry  # type: ignore[no-any-return]
