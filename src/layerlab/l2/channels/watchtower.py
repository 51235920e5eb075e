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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account

from layerlab.errors import ChannelError
from layerlab.l2.channels.machine import decode_signed_state, encode_signed_state
from layerlab.l2.channels.onchain import ChannelContract, ChannelStatus, ChannelTxError
from layerlab.l2.channels.signing import is_signed_by
from layerlab.l2.channels.types import ChannelId, SignedState
from layerlab.l2.channels.wire import read_frame, write_frame
from layerlab.l2.store import RecordStore
from layerlab.orchestration import wait_for_stop_signal, write_ready_file

log = logging.getLogger(__name__)

STATE_PREFIX = b"state:"
CURSOR_KEY = b"cursor"


@dataclass(frozen=True, slots=True)
class Contest:
    """A challenge the tower sent: which channel, the closed nonce and ours."""

    channel_id: ChannelId
    closed_nonce: int
    our_nonce: int
    tx_hash: bytes
    gas_used: int


class Watchtower:
    """Keeps the latest states of its clients' channels and contests stale closes."""

    def __init__(self, contract: ChannelContract, private_key: bytes, store: RecordStore) -> None:
        self.contract = contract
        self.key = private_key
        self.address = Account.from_key(private_key).address
        self.store = store
        self.contests: list[Contest] = []

    # -- registrations -------------------------------------------------------------------
    def register(self, signed: SignedState) -> bool:
        """Keep ``signed`` if it is valid and newer than what we hold; True if kept."""
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
        self.store.put(STATE_PREFIX + state.channel_id, encode_signed_state(signed))
        return True

    def get_state(self, channel_id: bytes) -> SignedState | None:
        raw = self.store.get(STATE_PREFIX + channel_id)
        return None if raw is None else decode_signed_state(raw)

    # -- watching L1 ---------------------------------------------------------------------
    def poll(self) -> list[Contest]:
        """Scan new L1 blocks for closes; challenge those on states older than ours."""
        cursor = int(self.store.get(CURSOR_KEY) or 0)
        head = self.contract.block_number()
        if head < cursor:
            return []
        contests = []
        for event in self.contract.events(cursor, head):
            if event.name != "ChannelClosed" or event.channel_id is None:
                continue
            held = self.get_state(event.channel_id)
            closed_nonce = int(event.args.get("nonce", 0))
            if held is None or held.state.nonce <= closed_nonce:
                continue
            try:
                receipt = self.contract.challenge(self.key, held)
            except ChannelTxError as exc:
                log.warning("challenge of 0x%s failed: %s", event.channel_id.hex(), exc)
                continue
            contest = Contest(event.channel_id, closed_nonce, held.state.nonce,
                              bytes(receipt["transactionHash"]), int(receipt["gasUsed"]))
            log.info("contested close of 0x%s at nonce %d with nonce %d",
                     event.channel_id.hex(), closed_nonce, held.state.nonce)
            contests.append(contest)
        self.store.put(CURSOR_KEY, head + 1)
        self.contests.extend(contests)
        return contests


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
        while True:
            try:
                self.tower.poll()
            except Exception:  # L1 unreachable for a moment: try again next round
                log.exception("watchtower poll failed")
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
