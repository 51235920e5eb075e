"""A Plasma user's watcher: it checks every child block, keeps the proofs of its users'
outputs, and exits or challenges on its own.

Plasma's security is the exit game, and the exit game only protects users who watch
(Plasma MVP, "Minimal Viable Plasma", 2018; More Viable Plasma, 2018). A watcher:

1. follows the L1 contract's events (:class:`~layerlab.l2.follower.L1Follower`, its cursor
   stored with the blocks it derived from them): ``DepositCreated`` adds a deposit
   block, ``BlockSubmitted`` makes it fetch that block from the operator, check that its
   transactions hash to the committed root and re-execute them (:class:`ChildChain`);
2. raises an alarm on the first block that is **withheld** (the operator does not serve
   it) or **invalid** (a double spend, money from nothing, a forged signature). From then
   on the chain is unsafe: the watcher starts a standard exit for every output of its users
   older than that block (they exit before anything the bad block created, by priority),
   and an in-flight exit for each transaction its users signed that it has not seen in a
   valid block, piggybacking its users' outputs of it (MoreVP);
3. challenges any exit of an output it has seen spent in a valid block (the spender's
   signature is the proof), taking the exiter's bond;
4. piggybacks its users' outputs of an in-flight exit someone else started.

The watcher keeps every block it fetched, the L1 cursor and its users' in-flight
transactions in a :class:`RecordStore` when given a ``data_dir``, so it resumes after a
restart with the proofs it needs. A watcher must run at least once per exit period
(``minExitPeriod``): that is the "users must watch" of Plasma's trust model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from eth_account import Account
from web3 import Web3

from layerlab.errors import LayerlabError, MalformedEncoding
from layerlab.l2.follower import EventReceived, EventRetracted, L1Follower, Writes
from layerlab.l2.l1client import ContractEvent
from layerlab.l2.plasma.machine import ChildBlock, ChildChain, InvalidBlockFound, spend
from layerlab.l2.plasma.onchain import PlasmaContract
from layerlab.l2.plasma.records import block_key, deposit_key, deposit_record, restore_ledger
from layerlab.l2.plasma.types import (
    BLOCK_OFFSET,
    PlasmaError,
    SignedTransaction,
    Transaction,
    Utxo,
    decode_position,
)
from layerlab.l2.store import RecordStore
from layerlab.orchestration import RpcError, rpc_call

__all__ = ["Alarm", "Watcher"]

log = logging.getLogger(__name__)

_INFLIGHT: Final = b"f:"
FETCH_ATTEMPTS: Final = 3
FETCH_RETRY_SECONDS: Final = 0.3


@dataclass(frozen=True)
class Alarm:
    """Something the watcher acted on: ``withheld`` or ``invalid-block`` (``blknum``),
    ``spent-exit`` (an exit it challenged), ``exit`` (an exit it started)."""

    kind: str
    blknum: int
    detail: str


@dataclass
class _Actions:
    exits: dict[int, int] = field(default_factory=dict)
    """Our standard exits: utxo position -> exit id."""
    in_flight_exits: set[bytes] = field(default_factory=set)
    piggybacks: set[tuple[bytes, int]] = field(default_factory=set)
    challenged: set[int] = field(default_factory=set)


class Watcher:
    """Watches one child chain for the users whose keys it holds (see the module docstring)."""

    def __init__(self, contract: PlasmaContract, operator_url: str, keys: Sequence[bytes],
                 data_dir: Path | None = None, start_block: int = 0) -> None:
        self.contract = contract
        self.operator_url = operator_url
        self.keys = {bytes.fromhex(Account.from_key(k).address[2:]): k for k in keys}
        self.chain = ChildChain(contract.domain)
        self.halted_at: int | None = None
        """The first withheld or invalid child block; None while the chain is safe."""
        self.alarms: list[Alarm] = []
        self.in_flight: dict[bytes, SignedTransaction] = {}
        self.spent_by: dict[int, tuple[SignedTransaction, int]] = {}
        self.done = _Actions()
        self.store = RecordStore(data_dir / "watcher") if data_dir is not None else None
        self.follower = L1Follower(contract.l1, start_block=start_block, store=self.store)
        self._puts: dict[bytes, Any] = {}
        self._restore()

    # ------------------------------------------------------------------ the users' side
    @property
    def addresses(self) -> list[bytes]:
        return list(self.keys)

    def balance(self, owner: bytes, token: bytes = b"\0" * 20) -> int:
        return self.chain.balance(owner, token)

    def pay(self, sender: bytes, to: bytes, amount: int) -> SignedTransaction:
        """Sign a payment from ``sender``'s outputs (change back to it) and send it to the
        operator; it stays in flight until the watcher sees it in a valid block."""
        mine = [u for u in self.chain.utxos_of(sender) if not self._in_flight_input(u.position)]
        tx = spend(mine, to, amount, sender)
        stx = tx.sign(self.contract.domain, [self.keys[sender]] * len(tx.inputs))
        self.send(stx)
        return stx

    def send(self, stx: SignedTransaction) -> bytes:
        """Record ``stx`` as in flight (on disk first), then give it to the operator."""
        self.in_flight[stx.tx.tx_hash] = stx
        if self.store is not None:
            self.store.put(_INFLIGHT + stx.tx.tx_hash, stx.to_json())
        reply = rpc_call(self.operator_url, "plasma_sendTransaction", [stx.to_json()])
        return bytes.fromhex(str(reply["txHash"])[2:])

    def _in_flight_input(self, position: int) -> bool:
        return any(position in s.tx.inputs for s in self.in_flight.values())

    # ------------------------------------------------------------------ following
    def poll(self) -> list[Alarm]:
        """Process the L1's events since the cursor; act on what they show. Returns the
        alarms raised in this round."""
        before = len(self.alarms)
        self._puts = {}
        for change in self.follower.poll():
            if isinstance(change, EventReceived):
                self._on_event(change.event)
            elif isinstance(change, EventRetracted):
                # a root or deposit an L1 reorg dropped: the operator commits it again (or
                # a watcher sees that it does not); nothing of ours to undo yet
                log.warning("plasma watcher: L1 reorg dropped %s in block %d", change.event.name,
                            change.event.block_number)
        if self.store is not None:
            self.follower.commit(Writes(self._puts))
        if self.halted_at is not None:
            self.exit_everything()
        return self.alarms[before:]

    def _on_event(self, event: ContractEvent) -> None:
        name, args = event.name, event.args
        if name == "DepositCreated":
            blknum = int(args["blknum"])
            if blknum not in self.chain.blocks:
                owner, token = _addr(args["owner"]), _addr(args["token"])
                self.chain.add_deposit(blknum, owner, token, int(args["amount"]))
                self._puts[deposit_key(blknum)] = deposit_record(owner, token, int(args["amount"]))
        elif name == "BlockSubmitted":
            self._on_block(int(args["blknum"]), bytes(args["root"]))
        elif name == "ExitStarted":
            self._on_exit(int(args["exitId"]), int(args["utxoPos"]))
        elif name == "InFlightExitStarted":
            self._on_in_flight_exit(event)

    def _on_block(self, blknum: int, root: bytes) -> None:
        if self.halted_at is not None or blknum in self.chain.blocks:
            return
        block = self._fetch_block(blknum, root)
        if block is None:
            return
        try:
            self.chain.apply_block(block)
        except InvalidBlockFound as exc:
            self._halt(Alarm("invalid-block", blknum, str(exc)))
            return
        except PlasmaError as exc:
            self._halt(Alarm("invalid-block", blknum, str(exc)))
            return
        self._puts[block_key(blknum)] = block.to_json()
        self._index_block(block)

    def _fetch_block(self, blknum: int, root: bytes) -> ChildBlock | None:
        """The block's data from the operator, checked against the root on L1; None (and the
        chain halted) when it is not served after a few tries."""
        for attempt in range(FETCH_ATTEMPTS):  # a transport hiccup is not a withheld block
            try:
                block = ChildBlock.from_json(
                    rpc_call(self.operator_url, "plasma_getBlock", [blknum], timeout=10))
                if block.blknum != blknum or block.root != root:
                    raise MalformedEncoding(f"the operator served block {block.blknum} with "
                                            f"root 0x{block.root.hex()}; L1 holds 0x{root.hex()}")
                return block
            except (RpcError, OSError, MalformedEncoding) as exc:
                if attempt == FETCH_ATTEMPTS - 1:
                    self._halt(Alarm("withheld", blknum, str(exc)))
                else:
                    time.sleep(FETCH_RETRY_SECONDS)
        return None

    def _index_block(self, block: ChildBlock) -> None:
        for stx in block.txs:
            for i, position in enumerate(stx.tx.inputs):
                self.spent_by[position] = (stx, i)
            if self.in_flight.pop(stx.tx.tx_hash, None) is not None and self.store is not None:
                self.store.write({}, (_INFLIGHT + stx.tx.tx_hash,))

    def _halt(self, alarm: Alarm) -> None:
        log.warning("plasma watcher: %s at block %d: %s", alarm.kind, alarm.blknum, alarm.detail)
        self.alarms.append(alarm)
        self.halted_at = alarm.blknum

    # ------------------------------------------------------------------ exits
    def exit_everything(self) -> None:
        """Exit each of our outputs older than the bad block, and each transaction in flight."""
        if self.halted_at is None:
            return
        limit = self.halted_at * BLOCK_OFFSET
        for owner, key in self.keys.items():
            for utxo in self.chain.utxos_of(owner):
                # an input of a payment in flight leaves by that payment's in-flight exit:
                # exiting it alone would void the payment's outputs (the payee's money)
                if (utxo.position < limit and utxo.position not in self.done.exits
                        and not self._in_flight_input(utxo.position)):
                    self._start_exit(key, utxo)
        for tx_hash, stx in list(self.in_flight.items()):
            if tx_hash not in self.done.in_flight_exits:
                self._start_in_flight_exit(stx)

    def exit_output(self, position: int) -> int:
        """Start a standard exit of one of our outputs (a user's choice, not an alarm)."""
        utxo = self.chain.utxos.get(position)
        if utxo is None or utxo.output.owner not in self.keys:
            raise PlasmaError("not-owner", f"output {position} is not one of ours")
        return self._start_exit(self.keys[utxo.output.owner], utxo)

    def _start_exit(self, key: bytes, utxo: Utxo) -> int:
        blknum, txindex, _ = decode_position(utxo.position)
        proof = self.chain.blocks[blknum].proof(txindex)
        try:
            _, exit_id = self.contract.start_standard_exit(key, utxo.position, utxo.tx, proof)
        except LayerlabError as exc:
            log.warning("exit of %d failed: %s", utxo.position, exc)
            self.done.exits[utxo.position] = -1
            return -1
        self.done.exits[utxo.position] = exit_id
        self.alarms.append(Alarm("exit", blknum, f"standard exit {exit_id} of {utxo.position}"))
        return exit_id

    def _start_in_flight_exit(self, stx: SignedTransaction) -> None:
        self.done.in_flight_exits.add(stx.tx.tx_hash)
        input_txs: list[Transaction] = []
        proofs: list[tuple[int, ...]] = []
        for position in stx.tx.inputs:
            blknum, txindex, _ = decode_position(position)
            block = self.chain.blocks[blknum]
            input_txs.append(block.txs[txindex].tx)
            proofs.append(block.proof(txindex))
        starter = self.keys[next(iter(self.keys))]
        try:
            self.contract.start_in_flight_exit(starter, stx, input_txs, proofs)
        except LayerlabError as exc:
            log.warning("in-flight exit of 0x%s failed: %s", stx.tx.tx_hash.hex(), exc)
            return
        self.alarms.append(Alarm("exit", self.halted_at or 0,
                                 f"in-flight exit of 0x{stx.tx.tx_hash.hex()}"))
        self._piggyback_ours(stx.tx)

    def _piggyback_ours(self, tx: Transaction) -> None:
        for index, output in enumerate(tx.outputs):
            key = self.keys.get(output.owner)
            if key is None or (tx.tx_hash, index) in self.done.piggybacks:
                continue
            self.done.piggybacks.add((tx.tx_hash, index))
            try:
                self.contract.piggyback(key, tx, index, True)
            except LayerlabError as exc:
                log.warning("piggyback of output %d of 0x%s failed: %s", index,
                            tx.tx_hash.hex(), exc)

    def _on_in_flight_exit(self, event: ContractEvent) -> None:
        """Piggyback our outputs of someone's in-flight exit (its bytes are in the calldata)."""
        try:
            sent = self.contract.w3.eth.get_transaction(event.tx_hash)  # type: ignore[arg-type]
            _, args = self.contract.l1.contract.decode_function_input(sent["input"])
            tx = Transaction.decode(bytes(args["txBytes"]))
        except (ValueError, KeyError, MalformedEncoding) as exc:
            log.warning("in-flight exit %s: cannot read its transaction: %s",
                        event.args.get("exitId"), exc)
            return
        self._piggyback_ours(tx)

    def _on_exit(self, exit_id: int, position: int) -> None:
        spender = self.spent_by.get(position)
        if spender is None or exit_id in self.done.challenged:
            return
        stx, input_index = spender
        challenger = next(iter(self.keys.values()))
        try:
            self.contract.challenge_standard_exit(challenger, exit_id, stx, input_index)
        except LayerlabError as exc:
            log.warning("challenge of exit %d failed: %s", exit_id, exc)
            return
        self.done.challenged.add(exit_id)
        self.alarms.append(Alarm("spent-exit", decode_position(position)[0],
                                 f"challenged exit {exit_id} of spent output {position}"))

    # ------------------------------------------------------------------ persistence
    def _restore(self) -> None:
        if self.store is None:
            return
        for block in restore_ledger(self.store, self.chain):
            self._index_block(block)
        for _, value in self.store.items(_INFLIGHT):
            stx = SignedTransaction.from_json(value)
            self.in_flight[stx.tx.tx_hash] = stx

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _addr(value: Any) -> bytes:
    return bytes.fromhex(Web3.to_checksum_address(value)[2:])

