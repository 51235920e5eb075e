"""A watchtower: contests closes on revoked states while the channel's owner is offline.

A Lightning node that goes offline can be robbed: its peer closes the channel on an old
state that paid the peer more, and the settle timeout runs out before the owner returns.
BOLT 13's watchtowers (and Raiden's monitoring service) close that hole: the client hands
the tower every new state it countersigns; the tower watches L1 and, when it sees a close
on a state older than the one it holds, submits the newer one (``challenge``). The
contract pays the victim (never the tower), so the tower can be anyone.

Here a client registers ``(channel id, latest SignedState)`` over TCP after each update; a
registration is kept only if both signatures are the channel participants' and its nonce
is higher than the tower's current one. The tower stores it before acknowledging.
Unlike BOLT 13 the tower sees states in the clear (no encrypted blobs keyed by
transaction id); it learns balances, not keys, and cannot move funds anywhere but to the
victim.

The tower follows the contract with an :class:`~layerlab.l2.follower.L1Follower`. Its
decisions are :meth:`Watchtower.apply_changes`, on the event loop: a ``ChannelClosed`` on a
nonce below the one it holds records a *pending contest*, stored in the same batch as the
follower's cursor (a tower killed between seeing the close and challenging it challenges
after its restart); a retracted close, a newer state already on L1, a settled channel or
the end of the window drops it. Sending the challenges is a separate step
(:meth:`Watchtower.contest_pending`) whose outcome is read from the contract's typed error
(``StaleState``, ``ChallengePeriodOver``...), never from an exception's text; a transport
failure leaves the contest pending for the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3.types import TxReceipt

from layerlab.errors import ChannelError
from layerlab.l2.channels.machine import decode_signed_state, encode_signed_state
from layerlab.l2.channels.onchain import ChannelContract, ChannelStatus, ChannelTxError
from layerlab.l2.channels.signing import is_signed_by
from layerlab.l2.channels.types import ChannelId, SignedState
from layerlab.l2.channels.wire import read_frame, write_frame
from layerlab.l2.follower import (
    EventRetracted,
    L1Change,
    L1Follower,
    L1FollowerError,
    NewBlock,
    ReorgTooDeep,
    Writes,
)
from layerlab.l2.store import RecordStore
from layerlab.orchestration import wait_for_stop_signal, write_ready_file

log = logging.getLogger(__name__)

STATE_PREFIX = b"state:"
CONTEST_PREFIX = b"contest:"
FOLLOWER_KEY = b"follower"
CURSOR_KEY = b"cursor"
"""Where towers before the follower kept their next block (read once, as its start)."""
CONTEST_OVER = frozenset({"StaleState", "ChallengePeriodOver", "WrongStatus", "UnknownChannel"})
"""The contract's refusals of a challenge that mean there is nothing left to contest."""


@dataclass(frozen=True, slots=True)
class Contest:
    """A challenge the tower sent: which channel, the closed nonce and ours."""

    channel_id: ChannelId
    closed_nonce: int
    our_nonce: int
    tx_hash: bytes
    gas_used: int


@dataclass(frozen=True, slots=True)
class PendingContest:
    """A close the tower must contest: the nonce closed on and the window's last block."""

    channel_id: ChannelId
    closed_nonce: int
    settle_block: int


class Watchtower:
    """Keeps the latest states of its clients' channels and contests stale closes."""

    def __init__(self, contract: ChannelContract, private_key: bytes, store: RecordStore, *,
                 confirmations: int = 0, start_block: int | None = None) -> None:
        self.contract = contract
        self.key = private_key
        self.address = Account.from_key(private_key).address
        self.store = store
        self.contests: list[Contest] = []
        # A challenge is urgent and harmless if its close is retracted (it is refused, at
        # the cost of the estimate): the default acts on unconfirmed closes.
        self.follower = L1Follower(
            contract.l1, store=store, key=FOLLOWER_KEY, confirmations=confirmations,
            start_block=int(store.get(CURSOR_KEY) or 0) if start_block is None else start_block)

    # -- registrations -------------------------------------------------------------------
    def register(self, signed: SignedState) -> bool:
        """Keep ``signed`` if it is valid and newer than what we hold; True if kept. A
        state newer than the one a channel is closing on is contested too."""
        state = signed.state
        if not state.is_conserving():
            raise ChannelError(f"state nonce {state.nonce} does not conserve funds")
        onchain = self.contract.get_channel(state.channel_id)
        if onchain.status == ChannelStatus.NONE:
            raise ChannelError(f"unknown channel 0x{state.channel_id.hex()}")
        domain = self.contract.domain()
        a = bytes.fromhex(onchain.participant_a[2:])
        b = bytes.fromhex(onchain.participant_b[2:])
        if not (is_signed_by(domain, state, signed.sig_a, a)
                and is_signed_by(domain, state, signed.sig_b, b)):
            raise ChannelError(f"state nonce {state.nonce} is not signed by both participants")
        held = self.get_state(state.channel_id)
        if held is not None and held.state.nonce >= state.nonce:
            return False
        puts: dict[bytes, Any] = {STATE_PREFIX + state.channel_id: encode_signed_state(signed)}
        if onchain.status == ChannelStatus.CLOSING and onchain.nonce < state.nonce:
            puts[CONTEST_PREFIX + state.channel_id] = {
                "closed_nonce": onchain.nonce, "settle_block": int(onchain.settle_block)}
        self.store.write(puts)
        return True

    def get_state(self, channel_id: bytes) -> SignedState | None:
        raw = self.store.get(STATE_PREFIX + channel_id)
        return None if raw is None else decode_signed_state(raw)

    def get_pending(self) -> list[PendingContest]:
        """The closes still to contest, by channel id."""
        return [PendingContest(ChannelId(key[len(CONTEST_PREFIX):]), int(raw["closed_nonce"]),
                               int(raw["settle_block"]))
                for key, raw in self.store.items(CONTEST_PREFIX)]

    # -- watching L1 ---------------------------------------------------------------------
    def apply_changes(self, changes: list[L1Change]) -> Writes:
        """The tower's decisions on a batch of L1 changes: which closes to contest, which
        contests are over. Returns the records to commit with the follower's cursor."""
        pending: dict[bytes, dict[str, int] | None] = {}
        for change in changes:
            if isinstance(change, NewBlock):
                for contest in self.get_pending():
                    if change.number > contest.settle_block:
                        pending[contest.channel_id] = None  # the window is over
                continue
            event = change.event
            channel_id = event.args.get("channelId")
            if not isinstance(channel_id, bytes):
                continue
            held = self.get_state(channel_id)
            if isinstance(change, EventRetracted):
                if event.name == "ChannelClosed":
                    log.info("close of 0x%s retracted by a reorg: not contesting it",
                             channel_id.hex())
                    pending[channel_id] = None
            elif event.name == "ChannelClosed":
                closed_nonce = int(event.args["nonce"])
                if held is not None and held.state.nonce > closed_nonce:
                    pending[channel_id] = {"closed_nonce": closed_nonce,
                                           "settle_block": int(event.args["settleBlock"])}
            elif event.name == "ChannelUpdated":
                if held is None or held.state.nonce <= int(event.args["nonce"]):
                    pending[channel_id] = None
            elif event.name in ("ChannelChallenged", "ChannelSettled", "CooperativelyClosed"):
                pending[channel_id] = None
        return Writes({CONTEST_PREFIX + cid: value for cid, value in pending.items()
                       if value is not None},
                      tuple(CONTEST_PREFIX + cid for cid, value in pending.items() if value is None))

    def contest_pending(self) -> list[Contest]:
        """Challenge every pending close (blocking; :meth:`contest_pending_async` on a loop)."""
        contests = []
        for contest in self.get_pending():
            held = self.get_state(contest.channel_id)
            outcome = self._send_challenge(held) if held is not None else None
            done = self._apply_outcome(contest, held, outcome)
            if done is not None:
                contests.append(done)
        return contests

    async def contest_pending_async(self) -> list[Contest]:
        """:meth:`contest_pending` with the transactions in worker threads and the
        decisions on the event loop."""
        contests = []
        for contest in self.get_pending():
            held = self.get_state(contest.channel_id)
            outcome = await asyncio.to_thread(self._send_challenge, held) if held else None
            done = self._apply_outcome(contest, held, outcome)
            if done is not None:
                contests.append(done)
        return contests

    def poll(self) -> list[Contest]:
        """One blocking round: follow the L1, decide, commit, challenge."""
        self.follower.commit(self.apply_changes(self.follower.poll()))
        return self.contest_pending()

    def _send_challenge(self, held: SignedState) -> TxReceipt | ChannelTxError:
        try:
            return self.contract.challenge(self.key, held)
        except ChannelTxError as exc:
            return exc

    def _apply_outcome(self, contest: PendingContest, held: SignedState | None,
                       outcome: TxReceipt | ChannelTxError | None) -> Contest | None:
        key = CONTEST_PREFIX + contest.channel_id
        if held is None or outcome is None:
            self.store.write({}, (key,))
            return None
        if isinstance(outcome, ChannelTxError):
            if outcome.error_name in CONTEST_OVER:
                log.info("nothing left to contest on 0x%s: %s", contest.channel_id.hex(), outcome)
                self.store.write({}, (key,))
            else:
                log.warning("challenge of 0x%s failed (will retry): %s",
                            contest.channel_id.hex(), outcome)
            return None
        self.store.write({}, (key,))
        done = Contest(contest.channel_id, contest.closed_nonce, held.state.nonce,
                       bytes(outcome["transactionHash"]), int(outcome["gasUsed"]))
        log.info("contested close of 0x%s at nonce %d with nonce %d",
                 contest.channel_id.hex(), contest.closed_nonce, held.state.nonce)
        self.contests.append(done)
        return done


class WatchtowerServer:
    """The tower as a service: TCP registrations in, a polling loop over L1."""

    def __init__(self, tower: Watchtower, host: str = "127.0.0.1", port: int = 0,
                 poll_interval: float = 0.5) -> None:
        self.tower = tower
        self.host = host
        self.port = port
        self.poll_interval = poll_interval
        self._server: asyncio.AbstractServer | None = None
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._poller = asyncio.create_task(self._poll_loop())

    async def stop(self) -> None:
        if self._poller:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def _poll_loop(self) -> None:
        """Read the L1 in a worker thread, decide and commit here, then challenge."""
        follower = self.tower.follower
        while True:
            try:
                changes = await follower.poll_async()
            except ReorgTooDeep as exc:
                # contests derived from closes the reorg dropped are refused by the
                # contract (WrongStatus) and then dropped: reading again is safe
                log.error("watchtower: %s; reading the contract again from block 0", exc)
                follower.rewind(0)
            except L1FollowerError as exc:  # unreachable for a moment
                log.warning("watchtower: %s", exc)
            else:
                follower.commit(self.tower.apply_changes(changes))
            if self.tower.get_pending():
                await self.tower.contest_pending_async()
            await asyncio.sleep(self.poll_interval)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                message = await read_frame(reader)
                reply: dict[str, Any]
                try:
                    if message.get("type") != "register":
                        raise ChannelError(f"unknown request {message.get('type')!r}")
                    kept = self.tower.register(decode_signed_state(message.get("signed")))
                    reply = {"type": "registered", "kept": kept}
                except (ChannelError, ValueError) as exc:
                    reply = {"type": "error", "message": str(exc)}
                await write_frame(writer, reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ChannelError as exc:
            log.info("dropping watchtower client: %s", exc)
        finally:
            writer.close()


async def register_with_tower(host: str, port: int, signed: SignedState,
                              timeout: float = 10.0) -> bool:
    """Client side: hand a signed state to a tower; True if the tower kept it."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        await write_frame(writer, {"type": "register", "signed": encode_signed_state(signed)})
        reply = await asyncio.wait_for(read_frame(reader), timeout)
    finally:
        writer.close()
    if reply.get("type") == "error":
        raise ChannelError(f"watchtower refused the state: {reply.get('message')}")
    return bool(reply.get("kept"))


def open_tower(contract: ChannelContract, private_key: bytes, data_dir: Path) -> Watchtower:
    return Watchtower(contract, private_key, RecordStore(data_dir / "tower"))


async def run_tower(l1_url: str, contract_address: str, private_key: bytes, data_dir: Path,
                    ready_file: Path | None = None) -> None:
    """Run a watchtower service until SIGINT/SIGTERM."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(l1_url, request_kwargs={"timeout": 30}))
    tower = open_tower(ChannelContract.at(w3, contract_address), private_key, data_dir)
    server = WatchtowerServer(tower)
    await server.start()
    write_ready_file(ready_file, {"address": tower.address, "port": server.port})
    try:
        await wait_for_stop_signal()
    finally:
        await server.stop()
        tower.store.close()
