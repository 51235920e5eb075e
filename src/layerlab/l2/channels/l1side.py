"""A channel node's L1 side: what it learns from the channel contract and does on it.

An :class:`~layerlab.l2.follower.L1Follower` reads the channel contract in a worker
thread; its changes are applied on the event loop: channels opened by others feed the
routing graph; a close by a peer on a state older than ours is challenged at once;
preimages revealed by ``claimLock`` settle the upstream lock; each new block moves the
switch's clock and runs the block-numbered deadlines (expired locks of a silent peer are
failed upstream and, if needed, the channel is closed and settled on L1). A reorg's
retracted events undo what they can (a retracted open leaves the graph, a retracted close
is not settled). The follower keeps no cursor on disk: the graph is not stored either, so
a restarted node reads the contract from block 0 again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from layerlab.l2.channels import machine as m
from layerlab.l2.channels.onchain import ChannelContract, ChannelStatus, ChannelTxError
from layerlab.l2.channels.routing import (
    ChannelGraph,
    FeePolicy,
    GraphChannel,
    apply_channel,
    apply_channel_closed,
    apply_policy,
    create_graph,
)
from layerlab.l2.channels.switch import HtlcSwitch
from layerlab.l2.channels.types import ChannelId, SignedState
from layerlab.l2.follower import EventReceived, L1Change, L1Follower, NewBlock, ReorgTooDeep
from layerlab.l2.l1client import ContractEvent
from layerlab.l2.service import cancel_tasks
from layerlab.primitives.types import Address, Wei

log = logging.getLogger(__name__)

SETTLE_GRACE_BLOCKS = 3
"""Blocks the non-closer waits after the settle block before settling itself."""
MAX_L1_REWINDS = 10
"""Reorgs deeper than the follower's history after which the node stops reading the L1."""


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


class L1Side:
    """The node's view of the channel contract and its L1 transactions (challenge,
    settle); ``directory`` gives the network listing the fee policies come from."""

    def __init__(self, *, contract: ChannelContract, key: bytes, address: Address,
                 switch: HtlcSwitch, directory: Callable[[], dict[str, Any]],
                 poll_interval: float, confirmations: int = 0) -> None:
        self.contract = contract
        self.key = key
        self.address = address
        self.switch = switch
        self.poll_interval = poll_interval
        self.graph: ChannelGraph = create_graph()
        self.follower = L1Follower(contract.l1, confirmations=confirmations)
        self._directory = directory
        self._settle_after: dict[bytes, int] = {}
        """Channels closed unilaterally on L1, by settle block: settle once it passes."""
        self._settling: set[bytes] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._watch_l1()))

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)

    def add_to_graph(self, channel_id: bytes, a: bytes, b: bytes, dep_a: int, dep_b: int) -> None:
        """A channel opened on L1 joins the routing graph, with both deposits as capacity."""
        total = Wei(dep_a + dep_b)
        self.graph = apply_channel(self.graph, GraphChannel(
            ChannelId(channel_id), Address(a), Address(b), total, total))
        self._refresh_policies()

    def _refresh_policies(self) -> None:
        for addr, entry in self._directory().get("nodes", {}).items():
            fee = entry.get("fee", {})
            self.graph = apply_policy(self.graph, Address(_unhex(addr)), FeePolicy(
                Wei(fee.get("base_fee", 1)), int(fee.get("proportional_millionths", 100)),
                int(fee.get("cltv_delta", 10))))

    async def _watch_l1(self) -> None:
        """Follow the channel contract; its changes are applied on the event loop. A reorg
        deeper than the follower's history is handled as a restart would: the graph is
        rebuilt from block 0 (everything else the L1 tells the node is idempotent)."""
        for _ in range(MAX_L1_REWINDS):
            try:
                await self.follower.run(self._on_l1_changes, self.poll_interval)
            except ReorgTooDeep as exc:
                log.error("%s; reading the channel contract again from block 0", exc)
                self.graph = create_graph()
                self.follower.rewind(0)
        log.error("the L1 reorganised too deep %d times: no longer watching it", MAX_L1_REWINDS)

    @property
    def l1_cursor(self) -> int:
        """The next L1 block the watcher will read."""
        return int(self.follower.cursor)

    def _on_l1_changes(self, changes: list[L1Change]) -> None:
        for change in changes:
            if isinstance(change, NewBlock):
                self.switch.block = change.number
                self._on_block()
            elif isinstance(change, EventReceived):
                self._on_l1_event(change.event)
            else:
                self._on_l1_retracted(change.event)

    def _on_block(self) -> None:
        """The L1 clock moved: deadlines of forwarded locks, expired locks, settlements."""
        self.switch.resolve_unsure()
        self.switch.fail_expired()
        for channel_id, settle_after in list(self._settle_after.items()):
            if self.switch.block > settle_after and channel_id not in self._settling:
                self._settling.add(channel_id)
                self.switch.spawn(self._settle_on_l1(ChannelId(channel_id)))

    def _on_l1_event(self, event: ContractEvent) -> None:
        raw_id = event.args.get("channelId")
        if not isinstance(raw_id, bytes):
            return
        cid = ChannelId(raw_id)
        if event.name == "ChannelOpened":
            a, b = _unhex(event.args["participantA"]), _unhex(event.args["participantB"])
            self.add_to_graph(cid, a, b, int(event.args["deposit"]), 0)
        elif event.name in ("ChannelSettled", "CooperativelyClosed", "ChannelChallenged"):
            self.graph = apply_channel_closed(self.graph, cid)
            if event.name != "ChannelChallenged":
                self._settle_after.pop(cid, None)
        elif event.name == "ChannelClosed" and cid in self.switch.channels:
            closer = _unhex(str(event.args["closer"]))
            # the closer settles; the other side only if it has not, a few blocks later
            grace = 0 if closer == self.address else SETTLE_GRACE_BLOCKS
            self._settle_after[cid] = int(event.args["settleBlock"]) + grace
            self._on_closed_on_l1(cid, int(event.args["nonce"]))
        elif event.name == "Deposited" and cid in self.switch.channels:
            channel = self.switch.channels[cid]
            side_a = _unhex(str(event.args["participant"])) == (
                self.address if channel.role == "a" else channel.peer)
            total = int(event.args["totalDeposit"])
            self._observe_deposits(cid, max(channel.l1_deposit_a, total) if side_a
                                   else channel.l1_deposit_a,
                                   channel.l1_deposit_b if side_a
                                   else max(channel.l1_deposit_b, total))
        elif event.name == "LockClaimed":
            self.switch.on_preimage(bytes(event.args["hashlock"]), bytes(event.args["preimage"]))

    def _on_l1_retracted(self, event: ContractEvent) -> None:
        """An event's block left the L1 chain (a reorg): undo what can be undone."""
        raw_id = event.args.get("channelId")
        if not isinstance(raw_id, bytes):
            return
        cid = ChannelId(raw_id)
        if event.name == "ChannelOpened":
            self.graph = apply_channel_closed(self.graph, cid)
        elif event.name == "ChannelClosed":
            self._settle_after.pop(cid, None)
        # A deposit seen stays seen (the machine's L1 deposits only grow) and a preimage
        # learned stays known; a close settled or challenged leaves the graph until the
        # replacing chain shows it again. Confirmations (NodeConfig.l1_confirmations) are
        # the defence against the first.
        log.warning("L1 reorg retracted %s of 0x%s in block %d", event.name,
                    raw_id.hex()[:12], event.block_number)

    async def _settle_on_l1(self, channel_id: ChannelId) -> None:
        """Settle a closed channel whose window is over; the contract's typed refusal says
        whether to try again at a later block (``SettleTooEarly``, ``LockNotExpired``, a
        node unreachable) or to stop (``WrongStatus``: settled already)."""
        try:
            onchain = await asyncio.to_thread(self.contract.get_channel, channel_id)
            if onchain.status != ChannelStatus.CLOSING:
                self._settle_after.pop(channel_id, None)
                return
            await asyncio.to_thread(self.contract.settle, self.key, channel_id)
            self._settle_after.pop(channel_id, None)
            log.info("settled 0x%s on L1", channel_id.hex()[:12])
        except ChannelTxError as exc:
            if exc.error_name in ("WrongStatus", "UnknownChannel"):
                self._settle_after.pop(channel_id, None)
            else:
                log.info("settling 0x%s: %s (will retry at a later block)",
                         channel_id.hex()[:12], exc)
        finally:
            self._settling.discard(channel_id)

    def _observe_deposits(self, channel_id: bytes, deposit_a: int, deposit_b: int) -> None:
        channel = self.switch.channels[channel_id]
        if (deposit_a, deposit_b) != (channel.l1_deposit_a, channel.l1_deposit_b):
            self.switch.save_channel(m.apply_observed_deposits(channel, Wei(deposit_a), Wei(deposit_b)))

    def _on_closed_on_l1(self, channel_id: ChannelId, closed_nonce: int) -> None:
        """A close on a state older than our latest is challenged at once."""
        ours = self.switch.channels[channel_id].latest
        if ours.state.nonce > closed_nonce:
            self.switch.spawn(self._challenge(channel_id, closed_nonce, ours))

    async def _challenge(self, channel_id: ChannelId, closed_nonce: int, ours: SignedState) -> None:
        try:
            await asyncio.to_thread(self.contract.challenge, self.key, ours)
            log.warning("peer closed 0x%s on stale nonce %d; challenged with %d",
                        channel_id.hex()[:12], closed_nonce, ours.state.nonce)
        except ChannelTxError as exc:
            log.warning("challenge failed: %s", exc)

