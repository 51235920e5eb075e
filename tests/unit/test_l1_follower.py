"""The L1 follower against a scripted chain: reads that race a reorg deliver nothing until
the chain holds still, a failed read changes nothing, and the asyncio wrapper commits what
the consumer derived with the cursor. (The same follower on a node process:
``tests/integration/test_l1_follower.py``.)"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from hexbytes import HexBytes
from web3.exceptions import BlockNotFound

from layerlab.l2.follower import (
    EventReceived,
    EventRetracted,
    L1Change,
    L1Follower,
    L1FollowerError,
    L1Unavailable,
    NewBlock,
    ReorgTooDeep,
    Writes,
)
from layerlab.l2.l1client import ContractEvent, L1Contract
from layerlab.l2.store import RecordStore
from layerlab.primitives.types import BlockNumber

ADDRESS = "0x" + "ab" * 20


@dataclass
class Block:
    number: int
    hash: bytes
    parent: bytes
    values: tuple[int, ...]


@dataclass
class Chain:
    """A chain of blocks whose events are ``Paid(value)``; ``fork`` replaces a suffix."""

    blocks: list[Block] = field(default_factory=list)
    before_get_block: Callable[[int | str], None] | None = None
    before_get_logs: Callable[[], None] | None = None
    down: bool = False
    salt: int = 0

    def __post_init__(self) -> None:
        self.blocks.append(Block(0, self._hash(0), b"\0" * 32, ()))

    def _hash(self, number: int) -> bytes:
        self.salt += 1
        return hashlib.sha256(f"{number}/{self.salt}".encode()).digest()

    def extend(self, *values_per_block: tuple[int, ...]) -> None:
        for values in values_per_block:
            number = len(self.blocks)
            self.blocks.append(Block(number, self._hash(number), self.blocks[-1].hash, values))

    def fork(self, at: int, *values_per_block: tuple[int, ...]) -> None:
        del self.blocks[at:]
        self.extend(*values_per_block)

    # -- what the follower calls -----------------------------------------------------------
    def get_block(self, ident: int | str) -> dict[str, Any]:
        if self.down:
            raise ConnectionError("connection refused")
        if self.before_get_block is not None:
            self.before_get_block(ident)
        number = len(self.blocks) - 1 if ident == "latest" else int(ident)
        if number >= len(self.blocks):
            raise BlockNotFound(f"no block {number}")
        b = self.blocks[number]
        return {"number": b.number, "hash": HexBytes(b.hash), "parentHash": HexBytes(b.parent)}

    def get_logs(self, first: int, last: int) -> list[dict[str, Any]]:
        if self.down:
            raise ConnectionError("connection refused")
        if self.before_get_logs is not None:
            self.before_get_logs()
        return [{"address": ADDRESS, "topics": [HexBytes(b"\1" * 32)],
                 "data": HexBytes(value.to_bytes(32, "big")), "blockNumber": b.number,
                 "blockHash": HexBytes(b.hash), "transactionHash": HexBytes(b"\2" * 32),
                 "transactionIndex": i, "logIndex": i}
                for b in self.blocks[first:last + 1] for i, value in enumerate(b.values)]

    @staticmethod
    def decode_log(raw: dict[str, Any]) -> ContractEvent:
        return ContractEvent("Paid", {"value": int.from_bytes(bytes(raw["data"]), "big")},
                             BlockNumber(int(raw["blockNumber"])), bytes(raw["transactionHash"]),
                             int(raw["logIndex"]), bytes(raw["blockHash"]))


class FakeContract:
    """The part of :class:`L1Contract` the follower uses."""

    name = "Fake"

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.w3 = type("W3", (), {"eth": chain, "provider": None})()
        self.get_logs = chain.get_logs
        self.decode_log = chain.decode_log


def make(chain: Chain, **kwargs: Any) -> L1Follower:
    return L1Follower(cast(L1Contract, FakeContract(chain)), start_block=1, **kwargs)


def received(changes: list[L1Change]) -> list[int]:
    return [c.event.args["value"] for c in changes if isinstance(c, EventReceived)]


def retracted(changes: list[L1Change]) -> list[int]:
    return [c.event.args["value"] for c in changes if isinstance(c, EventRetracted)]


def test_a_reorg_between_reading_headers_and_logs_delivers_nothing_until_it_settles() -> None:
    chain = Chain()
    chain.extend((1,), (2,))
    f = make(chain)

    def reorg() -> None:
        chain.before_get_logs = None
        chain.fork(2, (22,))

    chain.before_get_logs = reorg
    changes = f.poll()
    assert received(changes) == [] and f.cursor == 1  # the logs are not of the blocks read
    assert received(f.poll()) == [1, 22]


def test_a_reorg_between_the_fork_check_and_the_new_blocks_is_caught_by_their_parents() -> None:
    chain = Chain()
    chain.extend((1,), (2,))
    f = make(chain)
    assert received(f.poll()) == [1, 2]
    chain.extend((3,))

    def reorg(ident: int | str) -> None:
        if ident == 3:  # the fork check read block 2; before block 3 is read, 2 is replaced
            chain.before_get_block = None
            chain.fork(2, (20,), (30,))

    chain.before_get_block = reorg
    assert received(f.poll()) == [] and f.cursor == 3
    changes = f.poll()
    assert retracted(changes) == [2] and received(changes) == [20, 30]


def test_a_failed_read_changes_nothing() -> None:
    chain = Chain()
    chain.extend((1,), (2,))
    f = make(chain)
    assert received(f.poll()) == [1, 2]
    chain.fork(2, (3,), (4,))
    before = (f.cursor, f.head, f.records())

    def fail() -> None:
        raise ConnectionError("connection reset")

    chain.before_get_logs = fail
    with pytest.raises(L1Unavailable, match=r"eth_getLogs 2\.\.3 failed: ConnectionError"):
        f.poll()
    assert (f.cursor, f.head, f.records()) == before
    chain.before_get_logs = None
    changes = f.poll()
    assert retracted(changes) == [2] and received(changes) == [3, 4]


def test_history_is_bounded_and_contiguous() -> None:
    chain = Chain()
    chain.extend(*[(i,) for i in range(1, 30)])
    f = make(chain, history=4, max_blocks=10, chunk_blocks=3)
    changes = f.poll()
    assert received(changes) == list(range(1, 11))
    assert not any(isinstance(c, NewBlock) for c in changes)  # not caught up: no clock yet
    blocks = f.records()[b"l1-follower"]["blocks"]
    assert [b[0] for b in blocks] == [7, 8, 9, 10]
    assert received(f.poll()) == list(range(11, 21))
    assert [b[0] for b in f.records()[b"l1-follower"]["blocks"]] == [17, 18, 19, 20]
    changes = f.poll()
    assert received(changes) == list(range(21, 30)) and changes[-1] == NewBlock(
        BlockNumber(29), chain.blocks[29].hash)


def test_after_a_reorg_too_deep_a_rewound_follower_delivers_the_new_chain() -> None:
    chain = Chain()
    chain.extend((1,), (2,), (3,))
    f = make(chain, history=1)
    assert received(f.poll()) == [1, 2, 3]
    chain.fork(2, (20,), (30,))
    with pytest.raises(ReorgTooDeep) as err:
        f.poll()
    assert err.value.fork_below == 3 and f.cursor == 4  # nothing changed
    f.rewind(1)
    changes = f.poll()
    assert retracted(changes) == [] and received(changes) == [1, 20, 30]


@pytest.mark.parametrize("kwargs", [{"confirmations": -1}, {"history": 0}, {"max_blocks": 0},
                                    {"chunk_blocks": 0}])
def test_nonsense_settings_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(L1FollowerError):
        make(Chain(), **kwargs)


def test_run_applies_on_the_loop_and_commits_the_derived_records_with_the_cursor(
        tmp_path: Path) -> None:
    chain = Chain()
    chain.extend((5,), (6,))
    store = RecordStore(tmp_path / "store")
    f = make(chain, store=store)
    seen: list[L1Change] = []

    async def apply(changes: list[L1Change]) -> Writes:
        seen.extend(changes)
        return Writes({b"total": sum(received(seen))})

    async def main() -> None:
        chain.down = True  # unavailable at first: logged and retried
        task = asyncio.create_task(f.run(apply, interval=0.01))
        await asyncio.sleep(0.05)
        chain.down = False
        for _ in range(200):
            if any(isinstance(c, NewBlock) for c in seen):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert received(seen) == [5, 6]
    assert store.get(b"total") == 11
    assert store.get(b"l1-follower")["cursor"] == 3
    store.close()
