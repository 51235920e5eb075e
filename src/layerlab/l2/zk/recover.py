"""The L2 state from the L1 alone: what a user needs to leave when the operator is gone.

Every verified batch published its data as ``submitBatch`` calldata (transfers
``from || to || amount``, the account index of each deposit it consumed, withdrawals
``from || recipient || amount``; padding slots are zero, and a real amount never is), and
the deposits it consumed are in the contract's queue. Nonces are not published, but each
real transfer or withdrawal adds one to its sender's, so :func:`recover_state` replays the
batches in order into a :class:`~layerlab.l2.zk.state.ZkState` and checks each root
against the one the batch's proof moved the contract to (``BatchVerified.newRoot``). The
result feeds :meth:`~layerlab.l2.zk.onchain.ZkRollupContract.escape`.
"""

from __future__ import annotations

from typing import Any

from layerlab.errors import LayerlabError
from layerlab.l2.zk.onchain import ZkRollupContract
from layerlab.l2.zk.state import Account, BatchShape, QueuedDeposit, ZkState

__all__ = ["RecoveryError", "apply_published_batch", "recover_state"]


class RecoveryError(LayerlabError):
    """The published data does not replay to the roots the L1 verified."""


def apply_published_batch(state: ZkState, shape: BatchShape, data: bytes,
                          deposits: list[QueuedDeposit]) -> None:
    """Apply one batch's published ``data`` and the ``deposits`` it consumed (in order)."""
    if len(data) != shape.data_bytes:
        raise RecoveryError(f"batch data is {len(data)} bytes, the shape's is {shape.data_bytes}")
    ib, at = shape.index_bytes, 0

    def take(n: int) -> int:
        nonlocal at
        value = int.from_bytes(data[at:at + n])
        at += n
        return value

    transfers = [(take(ib), take(ib), take(6)) for _ in range(shape.n_transfers)]
    indices = [take(ib) for _ in range(shape.n_deposits)]
    withdrawals = []
    for _ in range(shape.n_withdrawals):
        sender = take(ib)
        at += 20  # the recipient, paid on L1
        withdrawals.append((sender, take(6)))
    for index, dep in zip(indices, deposits, strict=False):
        old = state.accounts.get(index, Account(dep.ax, dep.ay, 0, 0))
        state.put(index, Account(dep.ax, dep.ay, old.balance + dep.amount, old.nonce))
    for sender, receiver, amount in transfers:
        if amount:
            a = state.get_account(sender)
            state.put(sender, Account(a.ax, a.ay, a.balance - amount, a.nonce + 1))
            b = state.get_account(receiver)
            state.put(receiver, Account(b.ax, b.ay, b.balance + amount, b.nonce))
    for sender, amount in withdrawals:
        if amount:
            a = state.get_account(sender)
            state.put(sender, Account(a.ax, a.ay, a.balance - amount, a.nonce + 1))


def recover_state(rollup: ZkRollupContract, from_block: int = 0) -> ZkState:
    """Replay every verified batch from L1 events and calldata (see the module docstring)."""
    call = rollup.l1.call
    shape = BatchShape(int(call("nTransfers")), int(call("nDeposits")),
                       int(call("nWithdrawals")), int(call("depth")))
    state = ZkState(shape.depth)
    consumed = 0
    w3, contract = rollup.l1.w3, rollup.l1.contract
    for event in rollup.l1.events(from_block):
        if event.name != "BatchVerified":
            continue
        if int(event.args["oldRoot"]) != state.root:
            raise RecoveryError(f"batch {event.args['batch']} starts at root "
                                f"{int(event.args['oldRoot']):#x}, the replay is at {state.root:#x}")
        tx: Any = w3.eth.get_transaction(event.tx_hash)  # type: ignore[arg-type]
        _, params = contract.decode_function_input(tx["input"])
        n = int(event.args["depositsConsumed"])
        deposits = [QueuedDeposit(*(int(x) for x in call("deposits", i)))
                    for i in range(consumed, consumed + n)]
        consumed += n
        apply_published_batch(state, shape, bytes(params["data"]), deposits)
        if state.root != int(event.args["newRoot"]):
            raise RecoveryError(f"batch {event.args['batch']} replays to {state.root:#x}, the "
                                f"L1 verified {int(event.args['newRoot']):#x}")
    return state
