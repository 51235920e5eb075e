"""A channel node: one process holding one key, its channels, invoices and forwarded HTLCs.

The node composes four parts around the pure core (:mod:`layerlab.l2.channels.machine`):

* :class:`~.transport.PeerTransport`: TCP links to peers on 127.0.0.1, the authenticated
  handshake, :mod:`.wire` frames, read loops and ordered per-peer senders. A frame carries
  a machine message (proposal, ack, reject) and, for an ``AddLock``, the rest of the route
  the lock should follow; or announces a channel the peer opened with us.
* :class:`~.switch.HtlcSwitch`: the channels on disk, one worker per channel (propose,
  await the answer), incoming locks, forwarding, settle/fail, preimages.
* :class:`~.l1side.L1Side`: the follower of the channel contract (routing graph, the L1
  clock, challenges, settlements on L1).
* :class:`~.control.ControlApi`: open, invoice, pay, deposit, send, close, status, and the
  JSON API on a second port (``POST /``) that serves the CLI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from layerlab.errors import ChannelError
from layerlab.l2.channels import machine as m
from layerlab.l2.channels.control import MAX_RETRIES, ControlApi
from layerlab.l2.channels.l1side import MAX_L1_REWINDS, SETTLE_GRACE_BLOCKS, L1Side
from layerlab.l2.channels.onchain import ChannelContract
from layerlab.l2.channels.routing import ChannelGraph, FeePolicy
from layerlab.l2.channels.switch import (
    CHANNEL_PREFIX,
    FORWARD_PREFIX,
    INVOICE_PREFIX,
    PAYMENT_PREFIX,
    PROPOSAL_TIMEOUT,
    RESEND_INTERVAL,
    Forward,
    HtlcSwitch,
    Payment,
    ProposalTimeout,
)
from layerlab.l2.channels.transport import PeerLink, PeerTransport
from layerlab.l2.channels.types import ChannelId
from layerlab.l2.store import RecordStore
from layerlab.orchestration import wait_for_stop_signal, write_ready_file
from layerlab.primitives.types import Address, BlockNumber, ChainId, Wei

__all__ = [
    "CHANNEL_PREFIX", "FORWARD_PREFIX", "INVOICE_PREFIX", "MAX_L1_REWINDS", "MAX_RETRIES",
    "PAYMENT_PREFIX", "PROPOSAL_TIMEOUT", "RESEND_INTERVAL", "SETTLE_GRACE_BLOCKS",
    "ChannelNode", "Forward", "NodeConfig", "Payment", "ProposalTimeout", "run_node",
]

log = logging.getLogger(__name__)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


DEFAULT_FEE_POLICY = FeePolicy(Wei(1), 100, 10)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs to start; ``directory`` is the network's shared listing of
    nodes (address, ports, fee policy), written by ``layerlab channels up``."""

    private_key: bytes
    data_dir: Path
    l1_url: str
    contract_address: str
    host: str = "127.0.0.1"
    port: int = 0
    control_port: int = 0
    fee_policy: FeePolicy = DEFAULT_FEE_POLICY
    directory: Path | None = None
    tower: tuple[str, int] | None = None
    settle_timeout: int = 20
    poll_interval: float = 0.25
    l1_confirmations: int = 0
    """Blocks on top of an L1 event before the node acts on it. 0 acts at once (a
    challenge cannot wait: the dispute window is counted in blocks); on a chain that
    reorganises, a deposit credited off-chain may then vanish."""


class ChannelNode:
    """One payment-channel node (see the module docstring)."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.key = config.private_key
        self.address = Address(bytes.fromhex(Account.from_key(self.key).address[2:]))
        self.store = RecordStore(config.data_dir / "node")
        self.w3 = Web3(Web3.HTTPProvider(config.l1_url, request_kwargs={"timeout": 30}))
        self.contract = ChannelContract.at(self.w3, config.contract_address)
        self.domain = self.contract.domain()
        self.chain_id = ChainId(self.domain.chain_id)
        self.transport = PeerTransport(self.key, self.address, find_peer=self._find_peer,
                                       on_frame=self._on_frame, on_connected=self._on_connected,
                                       host=config.host, port=config.port)
        self.switch = HtlcSwitch(key=self.key, store=self.store, fee_policy=config.fee_policy,
                                 send=self.transport.send_quietly, find_tower=self._tower,
                                 close_on_l1=self._close_unilaterally)
        self.l1 = L1Side(contract=self.contract, key=self.key, address=self.address,
                         switch=self.switch, directory=self.directory,
                         poll_interval=config.poll_interval,
                         confirmations=config.l1_confirmations)
        self.api = ControlApi(key=self.key, address=self.address, store=self.store,
                              contract=self.contract, domain=self.domain, switch=self.switch,
                              l1=self.l1, transport=self.transport,
                              settle_timeout=config.settle_timeout,
                              poll_interval=config.poll_interval)
        self._tower_checked = -10.0
        self._tower_cached: tuple[str, int] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.switch.block = BlockNumber(await asyncio.to_thread(self.contract.block_number))
        self.switch.restore()
        await self.transport.start()
        await self.api.start(self.config.host, self.config.control_port)
        self.l1.start()
        self.switch.start()
        log.info("node 0x%s: peers on %d, control on %d, %d channels", self.address.hex(),
                 self.port, self.control_port, len(self.channels))

    async def stop(self) -> None:
        await self.l1.stop()
        await self.switch.stop()
        await self.transport.stop()
        await self.api.stop()
        self.store.close()

    # ------------------------------------------------------------------ views
    @property
    def port(self) -> int:
        return self.transport.port

    @property
    def control_port(self) -> int:
        return self.api.control_port

    @property
    def channels(self) -> dict[bytes, m.Channel]:
        return self.switch.channels

    @property
    def payments(self) -> dict[bytes, Payment]:
        return self.switch.payments

    @property
    def block(self) -> BlockNumber:
        return self.switch.block

    @property
    def graph(self) -> ChannelGraph:
        return self.l1.graph

    @property
    def l1_cursor(self) -> int:
        """The next L1 block the watcher will read."""
        return self.l1.l1_cursor

    # ------------------------------------------------------------------ peers and tower
    def directory(self) -> dict[str, Any]:
        if self.config.directory is None or not self.config.directory.exists():
            return {}
        data: dict[str, Any] = json.loads(self.config.directory.read_text())
        return data

    def _find_peer(self, peer: bytes) -> tuple[str, int] | None:
        entry = self.directory().get("nodes", {}).get(_hex(peer))
        return None if entry is None else (entry["host"], entry["port"])

    def _on_connected(self, peer: bytes) -> None:
        self.switch.reestablish(peer)

    async def _on_frame(self, link: PeerLink, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "channel_opened":
            await self.api.accept_channel(link.address, ChannelId(_unhex(frame["channel_id"])))
        elif kind == "msg":
            self.switch.on_msg_frame(link.address, frame)
        else:
            raise ChannelError(f"unknown frame type {kind!r}")

    def _tower(self) -> tuple[str, int] | None:
        """The watchtower to hand states to: configured, or listed in the directory."""
        if self.config.tower is not None:
            return self.config.tower
        now = time.monotonic()
        if now - self._tower_checked > 1.0:
            self._tower_checked = now
            entry = self.directory().get("tower")
            self._tower_cached = (entry["host"], int(entry["port"])) if entry else None
        return self._tower_cached

    async def _close_unilaterally(self, channel_id: bytes) -> dict[str, Any]:
        return await self.api.close(channel_id, cooperative=False)

    # ------------------------------------------------------------------ operations
    async def submit(self, channel_id: bytes, update: m.Update,
                     forward: dict[str, Any] | None = None) -> m.Event:
        """Propose ``update`` on a channel once nothing else is in flight; await its fate."""
        return await self.switch.submit(channel_id, update, forward)

    async def open_channel(self, peer: bytes, amount: int) -> bytes:
        return await self.api.open_channel(peer, amount)

    def create_invoice(self, amount: int, description: str = "") -> str:
        return self.api.create_invoice(amount, description)

    async def pay(self, text: str, timeout: float = 60.0) -> Payment:
        return await self.api.pay(text, timeout)

    async def deposit(self, channel_id: bytes, amount: int) -> dict[str, Any]:
        return await self.api.deposit(channel_id, amount)

    async def send(self, channel_id: bytes, amount: int) -> m.Event:
        return await self.api.send(channel_id, amount)

    async def close(self, channel_id: bytes, cooperative: bool = True) -> dict[str, Any]:
        return await self.api.close(channel_id, cooperative)

    def status(self) -> dict[str, Any]:
        return self.api.status()

    async def control(self, method: str, params: dict[str, Any]) -> Any:
        return await self.api.control(method, params)


async def run_node(config: NodeConfig, ready_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM; write ``{address, port, control_port}`` to ``ready_file``."""
    node = ChannelNode(config)
    await node.start()
    write_ready_file(ready_file, {"address": _hex(node.address), "port": node.port,
                                  "control_port": node.control_port})
    try:
        await wait_for_stop_signal()
    finally:
        await node.stop()
