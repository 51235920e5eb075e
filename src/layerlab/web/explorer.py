"""``layerlab explorer``: a live web page of the L1 and the L2 contracts settled on it.

The explorer reads only what any client can: the L1's JSON-RPC (blocks, transactions,
``layerlab_status`` for finality and consensus when the node offers it,
``layerlab_validators`` under PoS) and the logs of the contracts it is told about
(``PaymentChannels``: the channel graph with deposits and closes; ``OptimisticRollup``:
batches with their challenge clocks, disputes, withdrawals; ``PlasmaChain``: committed
child blocks and exits with their exit clocks, challenges and payouts; ``ZkRollup``:
batches with their Groth16 proof, the verification's L1 gas and the roots it moved). It
never reads a service's private state: an exit's ``exitableAt`` comes from the contract's
public ``exits`` view, a ZK batch's proof from its L1 transaction's calldata.

A poller follows the chain (every ``poll_seconds``, at most ``MAX_BLOCKS_PER_POLL`` new
blocks and ``MAX_LOG_RANGE`` blocks of logs per round) in a worker thread, since web3's
HTTP calls block; the aiohttp server on the event loop pushes each new view to every
browser over a WebSocket (``/ws``) and serves it as JSON (``/api/view``). A system that
does not answer is shown as down with the error, and the page keeps the last view it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiohttp import WSMsgType, web
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import Web3Exception

from layerlab.contracts import load_artifact

log = logging.getLogger(__name__)

__all__ = ["Explorer", "Watched", "build_app", "run_explorer"]

MAX_BLOCKS_PER_POLL: Final = 20
MAX_LOG_RANGE: Final = 2_000
KEPT_BLOCKS: Final = 30
KEPT_EVENTS: Final = 100
PAGE: Final = Path(__file__).with_name("explorer.html")


@dataclass(frozen=True, slots=True)
class Watched:
    """A contract whose events the explorer decodes: ``kind`` is its artifact name."""

    kind: str
    address: str


@dataclass(slots=True)
class View:
    """What the page shows; every field is JSON."""

    l1: dict[str, Any] = field(default_factory=lambda: {"up": False, "error": "not polled yet"})
    blocks: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEPT_BLOCKS))
    status: dict[str, Any] | None = None
    validators: list[dict[str, Any]] | None = None
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[int, dict[str, Any]] = field(default_factory=dict)
    plasma_blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    exits: dict[int, dict[str, Any]] = field(default_factory=dict)
    zk_batches: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEPT_EVENTS))
    challenge_window: int | None = None

    def to_json(self) -> dict[str, Any]:
        # challenge clocks run on chain time: the contract compares block.timestamp, and a
        # devnet's head can be ahead of (or, after time travel, far from) the wall clock
        now = self.blocks[-1]["timestamp"] if self.blocks else int(time.time())
        batches = []
        for index, b in sorted(self.batches.items(), reverse=True)[:20]:
            b = dict(b)
            if self.challenge_window is not None and b.get("submitted_at") is not None:
                b["final_at"] = b["submitted_at"] + self.challenge_window
                b["seconds_left"] = max(0, b["final_at"] - now)
            batches.append({"index": index, **b})
        exits = []
        for exit_id, e in sorted(self.exits.items(), reverse=True)[:20]:
            e = dict(e)
            if e.get("exitable_at") is not None:
                e["seconds_left"] = max(0, e["exitable_at"] - now)
            exits.append({"id": exit_id, **e})
        return {"l1": self.l1, "blocks": list(self.blocks)[::-1], "status": self.status,
                "validators": self.validators, "channels": list(self.channels.values()),
                "batches": batches, "exits": exits,
                "plasma_blocks": [{"number": n, **b} for n, b in
                                  sorted(self.plasma_blocks.items(), reverse=True)[:20]],
                "zk_batches": [{"index": n, **b} for n, b in
                               sorted(self.zk_batches.items(), reverse=True)[:20]],
                "events": list(self.events)[::-1]}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _tx_row(tx: Any) -> dict[str, Any]:
    return {"hash": _plain(tx["hash"]), "from": tx["from"], "to": tx.get("to"),
            "value": str(tx["value"])}


class Explorer:
    """Follows the L1 and the watched contracts; :meth:`poll_once` is one bounded round."""

    def __init__(self, l1_url: str, watched: list[Watched] | None = None) -> None:
        self.w3 = Web3(Web3.HTTPProvider(l1_url, request_kwargs={"timeout": 5}))
        self.l1_url = l1_url
        self.view = View()
        self.next_block: int | None = None
        self.log_cursor: int = 0
        self.contracts: dict[str, Contract] = {}
        self.topics: dict[bytes, tuple[str, Contract, str]] = {}
        for item in watched or []:
            artifact = load_artifact(item.kind)
            contract = self.w3.eth.contract(address=Web3.to_checksum_address(item.address),
                                            abi=artifact.abi)
            self.contracts[item.kind] = contract
            for entry in artifact.abi:
                if entry["type"] == "event":
                    sig = f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"
                    self.topics[keccak(text=sig)] = (item.kind, contract, entry["name"])

    # -- one round ---------------------------------------------------------------------
    def poll_once(self) -> bool:
        """Fetch what is new; returns whether the view changed."""
        try:
            changed = self._poll()
        except (OSError, Web3Exception, ValueError) as exc:
            was_up = self.view.l1.get("up")
            self.view.l1 = {"up": False, "url": self.l1_url,
                            "error": f"{type(exc).__name__}: {exc}"[:300]}
            return bool(was_up) or True
        return changed

    def _poll(self) -> bool:
        head = int(self.w3.eth.block_number)
        was_down = not self.view.l1.get("up")
        self.view.l1 = {"up": True, "url": self.l1_url, "head": head,
                        "chain_id": int(self.w3.eth.chain_id)}
        if self.next_block is None:
            self.next_block = max(0, head - 9)
        changed = was_down
        stop = min(head, self.next_block + MAX_BLOCKS_PER_POLL - 1)
        for number in range(self.next_block, stop + 1):
            block = self.w3.eth.get_block(number, full_transactions=True)
            self.view.blocks.append({
                "number": number, "hash": _plain(block["hash"]),
                "timestamp": int(block["timestamp"]), "miner": block.get("miner"),
                "gas_used": int(block["gasUsed"]), "base_fee": int(block.get("baseFeePerGas", 0)),
                "txs": [_tx_row(tx) for tx in block["transactions"][:50]],
                "tx_count": len(block["transactions"])})
            changed = True
        self.next_block = stop + 1
        status = self._optional("layerlab_status")
        if status != self.view.status:
            self.view.status, changed = status, True
        if status and status.get("consensus") in ("pos", "merge"):
            validators = self._optional("layerlab_validators")
            if validators != self.view.validators:
                self.view.validators, changed = validators, True
        if self.contracts:
            changed |= self._poll_logs(stop)
        return changed

    def _optional(self, method: str) -> Any:
        """A layerlab_* method, or None on a node that does not have it (Hardhat, Anvil)."""
        reply = self.w3.provider.make_request(method, [])  # type: ignore[arg-type]
        return _plain(reply.get("result")) if "error" not in reply else None

    def _poll_logs(self, head: int) -> bool:
        if "OptimisticRollup" in self.contracts and self.view.challenge_window is None:
            config = self.contracts["OptimisticRollup"].functions.config().call()
            self.view.challenge_window = int(config[0])
        end = min(head, self.log_cursor + MAX_LOG_RANGE - 1)
        if end < self.log_cursor:
            return False
        logs = self.w3.eth.get_logs({"fromBlock": self.log_cursor, "toBlock": end,
                                     "address": [c.address for c in self.contracts.values()]})
        self.log_cursor = end + 1
        for entry in logs:
            found = self.topics.get(bytes(entry["topics"][0])) if entry["topics"] else None
            if found is None:
                continue
            kind, contract, name = found
            event = contract.events[name]().process_log(entry)
            self._apply(kind, name, _plain(dict(event["args"])), int(entry["blockNumber"]),
                        _plain(entry["transactionHash"]))
        return bool(logs)

    def _apply(self, kind: str, name: str, args: dict[str, Any], block: int,
               tx_hash: str) -> None:
        self.view.events.append({"system": kind, "name": name, "block": block, "args": args})
        if kind == "PaymentChannels":
            self._apply_channel(name, args)
        elif kind == "OptimisticRollup":
            self._apply_rollup(name, args, block)
        elif kind == "PlasmaChain":
            self._apply_plasma(name, args, block)
        elif kind == "ZkRollup" and name == "BatchVerified":
            self._apply_zk_batch(args, block, tx_hash)

    def _apply_channel(self, name: str, args: dict[str, Any]) -> None:
        channels = self.view.channels
        if name == "ChannelOpened":
            channels[args["channelId"]] = {
                "id": args["channelId"], "a": args["participantA"], "b": args["participantB"],
                "token": args["token"], "deposit": str(args["deposit"]), "state": "open"}
        elif name == "Deposited" and args["channelId"] in channels:
            channels[args["channelId"]]["deposit"] = str(args["totalDeposit"])
        elif name in ("ChannelClosed", "CooperativelyClosed", "ChannelSettled") \
                and args["channelId"] in channels:
            channels[args["channelId"]]["state"] = {
                "ChannelClosed": "closing", "CooperativelyClosed": "closed",
                "ChannelSettled": "settled"}[name]

    def _apply_rollup(self, name: str, args: dict[str, Any], block: int) -> None:
        batches = self.view.batches
        if name == "BatchSubmitted":
            stamp = int(self.w3.eth.get_block(block)["timestamp"])
            batches[int(args["batchIndex"])] = {
                "state_root": args["stateRoot"], "steps": int(args["stepCount"]),
                "proposer": args["proposer"], "block": block, "submitted_at": stamp,
                "disputes": 0, "removed": False}
        elif name == "DisputeOpened" and int(args["batchIndex"]) in batches:
            batches[int(args["batchIndex"])]["disputes"] += 1
        elif name == "BatchesRemoved":
            start = int(args["fromIndex"])
            for index in range(start, start + int(args["count"])):
                if index in batches:
                    batches[index]["removed"] = True

    def _apply_plasma(self, name: str, args: dict[str, Any], block: int) -> None:
        """Child blocks, and exits on their way out: the priority queue's ``exitableAt``
        (OMG's exitable timestamp) read once from the public ``exits`` view."""
        exits = self.view.exits
        if name == "BlockSubmitted":
            self.view.plasma_blocks[int(args["blknum"])] = {"root": args["root"], "block": block,
                                                            "deposit": False}
        elif name == "DepositCreated":
            self.view.plasma_blocks[int(args["blknum"])] = {
                "root": None, "block": block, "deposit": True, "owner": args["owner"],
                "amount": str(args["amount"])}
        elif name == "ExitStarted":
            exit_id = int(args["exitId"])
            record = self.contracts["PlasmaChain"].functions.exits(exit_id).call()
            exits[exit_id] = {"kind": "standard", "owner": args["owner"],
                              "amount": str(args["amount"]), "token": args["token"],
                              "utxo_pos": int(args["utxoPos"]), "started_block": block,
                              "exitable_at": int(record[1]) or None, "state": "exiting"}
        elif name == "InFlightExitStarted":
            exits[int(args["exitId"])] = {"kind": "in-flight", "owner": args["starter"],
                                          "amount": None, "token": None, "utxo_pos": None,
                                          "started_block": block, "exitable_at": None,
                                          "state": "exiting"}
        elif name in ("ExitChallenged", "InFlightExitChallenged") \
                and int(args["exitId"]) in exits:
            exits[int(args["exitId"])]["state"] = "challenged"
        elif name == "ExitFinalized" and int(args["exitId"]) in exits:
            exits[int(args["exitId"])]["state"] = "paid" if args["paid"] else "processed, not paid"
        elif name == "InFlightExitFinalized" and int(args["exitId"]) in exits:
            exits[int(args["exitId"])]["state"] = (
                "finalized (canonical)" if args["canonical"] else "finalized (not canonical)")

    def _apply_zk_batch(self, args: dict[str, Any], block: int, tx_hash: str) -> None:
        """A verified ZK batch: the proof and data from its ``submitBatch`` calldata, the
        verification's cost from its receipt (what any client of the L1 can read)."""
        tx = self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        _fn, params = self.contracts["ZkRollup"].decode_function_input(tx["input"])
        self.view.zk_batches[int(args["batch"])] = {
            "old_root": hex(int(args["oldRoot"])), "new_root": hex(int(args["newRoot"])),
            "deposits": int(args["depositsConsumed"]), "block": block, "tx": tx_hash,
            "gas_used": int(receipt["gasUsed"]), "data_bytes": len(params["data"]),
            "proof": [hex(int(w)) for w in params["proof"]], "status": "verified (Groth16)"}


# -- the server -------------------------------------------------------------------------
def build_app(explorer: Explorer, poll_seconds: float = 0.5) -> web.Application:
    app = web.Application()
    clients: set[web.WebSocketResponse] = set()

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    async def view(_request: web.Request) -> web.Response:
        return web.json_response(explorer.view.to_json())

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        clients.add(ws)
        try:
            await ws.send_str(json.dumps(explorer.view.to_json()))
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            clients.discard(ws)
        return ws

    async def follow(_app: web.Application) -> Any:
        async def loop() -> None:
            while True:
                changed = await asyncio.to_thread(explorer.poll_once)
                if changed or explorer.view.batches or explorer.view.exits:  # clocks tick
                    text = json.dumps(explorer.view.to_json())
                    for ws in list(clients):
                        with contextlib.suppress(ConnectionResetError, RuntimeError):
                            await ws.send_str(text)
                await asyncio.sleep(poll_seconds)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.router.add_get("/", page)
    app.router.add_get("/api/view", view)
    app.router.add_get("/ws", socket)
    app.cleanup_ctx.append(follow)
    return app


def run_explorer(l1_url: str, watched: list[Watched], port: int,
                 host: str = "127.0.0.1") -> None:
    """Serve the explorer until interrupted."""
    log.info("explorer on http://%s:%d for %s", host, port, l1_url)
    web.run_app(build_app(Explorer(l1_url, watched)), host=host, port=port, print=None)
