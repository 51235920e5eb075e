"""How a Plasma ledger is kept on disk (the operator's journal, a watcher's copy).

Deposit blocks are ``d:<blknum>`` -> ``{owner, token, amount}`` and child blocks
``b:<blknum>`` -> the block's JSON (its transactions and root), block numbers as 8 bytes
big-endian so LevelDB iterates them in order. :func:`restore_ledger` replays both into a
:class:`~layerlab.l2.plasma.machine.ChildChain` in block-number order (a child block may
spend a deposit made just before it).
"""

from __future__ import annotations

from typing import Any, Final

from layerlab.l2.plasma.machine import ChildBlock, ChildChain
from layerlab.l2.store import RecordStore

__all__ = ["BLOCK", "DEPOSIT", "block_key", "deposit_key", "deposit_record", "restore_ledger"]

DEPOSIT: Final = b"d:"
BLOCK: Final = b"b:"


def deposit_key(blknum: int) -> bytes:
    return DEPOSIT + blknum.to_bytes(8, "big")


def block_key(blknum: int) -> bytes:
    return BLOCK + blknum.to_bytes(8, "big")


def deposit_record(owner: bytes, token: bytes, amount: int) -> dict[str, Any]:
    return {"owner": owner.hex(), "token": token.hex(), "amount": str(amount)}


def restore_ledger(store: RecordStore, chain: ChildChain) -> list[ChildBlock]:
    """Replay the stored deposits and child blocks into ``chain``; returns the child blocks
    (trusted: they were checked, or sealed, before they were stored)."""
    records: list[tuple[int, Any, bool]] = [
        (int.from_bytes(k[len(DEPOSIT):], "big"), v, True) for k, v in store.items(DEPOSIT)]
    records += [(int.from_bytes(k[len(BLOCK):], "big"), v, False) for k, v in store.items(BLOCK)]
    blocks = []
    for blknum, value, is_deposit in sorted(records, key=lambda r: r[0]):
        if is_deposit:
            chain.add_deposit(blknum, bytes.fromhex(value["owner"]),
                              bytes.fromhex(value["token"]), int(value["amount"]))
        else:
            block = ChildBlock.from_json(value)
            chain.commit_block(block)
            blocks.append(block)
    return blocks
