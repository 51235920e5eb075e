"""A channel node's control API: the operations the CLI asks for, and the small JSON API
(``POST /`` on the control port, ``{"method", "params"}`` -> ``{"result"}`` or
``{"error"}``) that serves them: ``info``, ``open``, ``invoice``, ``pay``, ``deposit``,
``send`` (direct payments), ``close``, ``status``.

Payments (BOLT 4/11): an invoice names the payee and ``sha256(preimage)``; the payer finds
the cheapest route with capacity (:func:`routing.find_route`) and offers a lock on the
first hop, carrying the rest of the route (BOLT 4 carries it in an onion; here it travels
in the clear); the switch does the rest. A failed attempt is retried on a route avoiding
the failing channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web
from web3 import Web3

from layerlab.errors import ChannelError
from layerlab.l2.channels import machine as m
from layerlab.l2.channels.invoice import (
    Invoice,
    compute_preimage,
    create_invoice,
    decode_invoice,
    encode_invoice,
)
from layerlab.l2.channels.l1side import L1Side
from layerlab.l2.channels.onchain import ChannelContract, ChannelStatus
from layerlab.l2.channels.routing import NoRoute, RoutingError, find_route
from layerlab.l2.channels.switch import INVOICE_PREFIX, Forward, HtlcSwitch, Payment
from layerlab.l2.channels.transport import PeerTransport
from layerlab.l2.channels.types import ChannelId, Domain, Hashlock
from layerlab.l2.store import RecordStore
from layerlab.primitives.types import Address, BlockNumber, ChainId, Timestamp, Wei

log = logging.getLogger(__name__)

MAX_RETRIES = 5
"""Route attempts per payment (BOLT 4 leaves this to the payer; lnd's default is larger)."""


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


class ControlApi:
    """The node's operations over its switch, L1 side and transport."""

    def __init__(self, *, key: bytes, address: Address, store: RecordStore,
                 contract: ChannelContract, domain: Domain, switch: HtlcSwitch,
                 l1: L1Side, transport: PeerTransport, settle_timeout: int,
                 poll_interval: float) -> None:
        self.key = key
        self.address = address
        self.store = store
        self.contract = contract
        self.domain = domain
        self.chain_id = ChainId(domain.chain_id)
        self.switch = switch
        self.l1 = l1
        self.transport = transport
        self.settle_timeout = settle_timeout
        self.poll_interval = poll_interval
        self.control_port = 0
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_post("/", self._on_control)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.control_port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ operations
    async def open_channel(self, peer: bytes, amount: int) -> bytes:
        """Open and fund a channel with ``peer`` on L1, then tell the peer about it."""
        channel_id, _ = await asyncio.to_thread(
            self.contract.open, self.key, Web3.to_checksum_address(peer), amount,
            self.settle_timeout)
        channel = m.create_channel(role="a", private_key=self.key, peer=Address(peer),
                                   domain=self.domain, channel_id=channel_id,
                                   deposit_a=Wei(amount), deposit_b=Wei(0),
                                   config=m.ChannelConfig(
                                       settle_timeout=BlockNumber(self.settle_timeout)))
        self.switch.save_channel(channel)
        self.switch.start_worker(channel_id)
        self.l1.add_to_graph(channel_id, self.address, peer, amount, 0)
        await self.transport.send(peer, {"type": "channel_opened", "channel_id": _hex(channel_id)})
        return bytes(channel_id)

    async def accept_channel(self, peer: bytes, channel_id: ChannelId) -> None:
        """A peer says it opened a channel with us: check it on L1, then track it."""
        if channel_id in self.switch.channels:
            return
        onchain = await asyncio.to_thread(self.contract.get_channel, channel_id)
        if (onchain.status != ChannelStatus.OPEN
                or _unhex(onchain.participant_a) != peer
                or _unhex(onchain.participant_b) != self.address):
            raise ChannelError(f"channel 0x{channel_id.hex()} is not open between us on L1")
        channel = m.create_channel(role="b", private_key=self.key, peer=Address(peer),
                                   domain=self.domain, channel_id=channel_id,
                                   deposit_a=Wei(onchain.deposit_a), deposit_b=Wei(onchain.deposit_b),
                                   config=m.ChannelConfig(
                                       settle_timeout=BlockNumber(onchain.settle_timeout)))
        self.switch.save_channel(channel)
        self.switch.start_worker(channel_id)
        self.l1.add_to_graph(channel_id, peer, self.address, onchain.deposit_a, onchain.deposit_b)

    def create_invoice(self, amount: int, description: str = "") -> str:
        preimage = compute_preimage()
        invoice = create_invoice(private_key=self.key, chain_id=self.chain_id, amount=Wei(amount),
                                 preimage=preimage, timestamp=Timestamp(int(time.time())),
                                 description=description)
        self.store.put(INVOICE_PREFIX + invoice.payment_hash, {
            "amount": amount, "preimage": _hex(preimage), "paid": False})
        return encode_invoice(invoice)

    async def pay(self, text: str, timeout: float = 60.0) -> Payment:
        """Pay an invoice over the cheapest route, retrying around failed channels."""
        invoice: Invoice = decode_invoice(text, chain_id=self.chain_id)
        hashlock = bytes(invoice.payment_hash)
        payment = Payment(hashlock, invoice.amount, bytes(invoice.payee))
        self.switch.payments[hashlock] = payment
        deadline = time.monotonic() + timeout
        while payment.status == "pending" and payment.attempts < MAX_RETRIES \
                and time.monotonic() < deadline:
            payment.attempts += 1
            try:
                route = find_route(self.l1.graph, self.address, Address(invoice.payee),
                                   Wei(invoice.amount), current_block=self.switch.block,
                                   min_final_delta=invoice.min_final_expiry_delta,
                                   exclude_edges=[ChannelId(c) for c in payment.excluded])
            except (NoRoute, RoutingError) as exc:
                payment.error = str(exc)
                break
            first = route.hops[0]
            hops = [{"channel_id": _hex(h.channel_id), "amount": h.amount, "expiry": h.expiry}
                    for h in route.hops[1:]]
            failed = self.switch.attempt_failed.setdefault(hashlock, asyncio.Event())
            failed.clear()
            outcome = await self.switch.submit_safely(first.channel_id, m.AddLock(
                first.amount, Hashlock(hashlock), first.expiry), {"hops": hops})
            if not isinstance(outcome, m.UpdateCommitted):
                payment.error = str(outcome)
                if self.switch.signed_lock(first.channel_id, hashlock):
                    # the first hop may still take the lock we signed: another route could
                    # make us pay twice, so this payment ends here (its lock times out)
                    break
                payment.excluded.append(bytes(first.channel_id))
                continue
            self.switch.forwards[hashlock] = Forward(hashlock, b"", bytes(first.channel_id), "origin")
            done = asyncio.ensure_future(failed.wait())
            while payment.status == "pending" and not failed.is_set() \
                    and time.monotonic() < deadline:
                await asyncio.wait([done], timeout=0.05)
            done.cancel()
        if payment.status == "pending":
            # a lock of ours still committed or signed on the first hop may yet be settled
            # (or failed back): the outcome is unknown until then, not "failed"
            first_hop = self.switch.forwards.get(hashlock)
            out = first_hop.out_channel if first_hop is not None else None
            live = out is not None and (
                m.get_lock(self.switch.channels[out].latest.state, Hashlock(hashlock)) is not None
                or self.switch.signed_lock(out, hashlock))
            payment.status = "in_flight" if live else "failed"
            payment.finished = time.perf_counter()
        self.switch.save_payment(payment)
        return payment

    async def deposit(self, channel_id: bytes, amount: int) -> dict[str, Any]:
        """Top up our side of a channel on L1, then bring the signed state up to it."""
        receipt = await asyncio.to_thread(self.contract.deposit, self.key, ChannelId(channel_id),
                                          amount)
        event = await self._sync_deposits(channel_id)
        return {"gas_used": int(receipt["gasUsed"]),
                "nonce": event.state.state.nonce if isinstance(event, m.UpdateCommitted) else None}

    async def _sync_deposits(self, channel_id: bytes) -> m.Event | str | None:
        """Record the channel's L1 deposits and propose a ``Deposit`` update for them
        (the peer accepts it once it has seen them on L1 too; a refusal is retried)."""
        onchain = await asyncio.to_thread(self.contract.get_channel, ChannelId(channel_id))
        channel = self.switch.channels[channel_id]
        if (onchain.deposit_a, onchain.deposit_b) != (channel.l1_deposit_a, channel.l1_deposit_b):
            self.switch.save_channel(m.apply_observed_deposits(channel, Wei(onchain.deposit_a),
                                                         Wei(onchain.deposit_b)))
        state = self.switch.channels[channel_id].latest.state
        if (state.deposit_a, state.deposit_b) == (onchain.deposit_a, onchain.deposit_b):
            return None
        outcome: m.Event | str | None = None
        for _ in range(20):
            outcome = await self.switch.submit_safely(channel_id, m.Deposit(
                Wei(onchain.deposit_a), Wei(onchain.deposit_b)))
            if isinstance(outcome, m.UpdateCommitted):
                break
            await asyncio.sleep(self.poll_interval)  # the peer has not seen it yet
        return outcome

    async def send(self, channel_id: bytes, amount: int) -> m.Event:
        """A direct payment to the channel's peer (no HTLC)."""
        event = await self.switch.submit(channel_id, m.Pay(Wei(amount)))
        if not isinstance(event, m.UpdateCommitted):
            raise ChannelError(f"payment refused: {getattr(event, 'reason', event)}")
        return event

    async def close(self, channel_id: bytes, cooperative: bool = True) -> dict[str, Any]:
        """Close cooperatively (one L1 transaction) or unilaterally (then settle later)."""
        channel = self.switch.channels[channel_id]
        if cooperative:
            event = await self.switch.submit(channel_id, m.Close())
            if isinstance(event, m.UpdateCommitted):
                receipt = await asyncio.to_thread(self.contract.cooperative_close, self.key,
                                                  event.state)
                return {"mode": "cooperative", "gas_used": int(receipt["gasUsed"])}
            log.info("cooperative close refused (%s); closing unilaterally", event)
        signed = m.compute_close_state(self.switch.channels.get(channel_id, channel))
        receipt = await asyncio.to_thread(self.contract.close, self.key, signed)
        return {"mode": "unilateral", "gas_used": int(receipt["gasUsed"]),
                "nonce": signed.state.nonce}

    def status(self) -> dict[str, Any]:
        return {
            "address": _hex(self.address), "block": self.switch.block,
            "channels": [{
                "channel_id": _hex(cid), "peer": _hex(ch.peer), "role": ch.role,
                "nonce": ch.latest.state.nonce, "my_balance": int(m.get_my_balance(ch)),
                "peer_balance": int(m.get_peer_balance(ch)), "locks": len(ch.latest.state.locks),
                "closed": m.is_closed(ch),
            } for cid, ch in self.switch.channels.items()],
            "payments": {_hex(h): p.status for h, p in self.switch.payments.items()},
            "invoices": {_hex(k[len(INVOICE_PREFIX):]): bool(v.get("paid"))
                         for k, v in self.store.items(INVOICE_PREFIX)},
        }

    # ------------------------------------------------------------------ control API
    async def _on_control(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            result = await self.control(str(body.get("method")), body.get("params") or {})
            return web.json_response({"result": result})
        except (ChannelError, KeyError, ValueError, TypeError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)

    async def control(self, method: str, params: dict[str, Any]) -> Any:
        if method == "info":
            return {"address": _hex(self.address), "port": self.transport.port,
                    "control_port": self.control_port}
        if method == "open":
            return _hex(await self.open_channel(_unhex(params["peer"]), int(params["amount"])))
        if method == "invoice":
            return self.create_invoice(int(params["amount"]), str(params.get("description", "")))
        if method == "pay":
            payment = await self.pay(str(params["invoice"]), float(params.get("timeout", 60)))
            return {"status": payment.status, "attempts": payment.attempts,
                    "error": payment.error,
                    "ms": round((payment.finished - payment.started) * 1000, 3)}
        if method == "deposit":
            return await self.deposit(_unhex(params["channel_id"]), int(params["amount"]))
        if method == "send":
            count = int(params.get("count", 1))
            start = time.perf_counter()
            for _ in range(count):
                await self.send(_unhex(params["channel_id"]), int(params["amount"]))
            seconds = time.perf_counter() - start
            return {"count": count, "seconds": seconds, "per_second": count / seconds}
        if method == "close":
            return await self.close(_unhex(params["channel_id"]),
                                    bool(params.get("cooperative", True)))
        if method == "status":
            return self.status()
        raise ChannelError(f"unknown control method {method!r}")


