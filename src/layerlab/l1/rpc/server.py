"""JSON-RPC 2.0 server over HTTP and WebSocket on one port (aiohttp).

Requests may be single or batched (an array, at most ``max_batch`` entries); a request
body over ``max_body`` bytes is refused before it is parsed. Errors use the standard
codes: -32700 parse error, -32600 invalid request, -32601 method not found, -32602
invalid params, -32603 internal error, -32000 server error (a refused transaction, an
unknown block) and 3 for an execution revert, whose ``data`` carries the revert payload
as geth returns it. A bad request never takes the server down.

WebSocket clients also get ``eth_subscribe`` / ``eth_unsubscribe`` for ``newHeads``,
``logs`` and ``newPendingTransactions`` (the pub/sub API of geth and the execution-apis).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from layerlab.errors import ExecutionReverted, LayerlabError
from layerlab.l1.chain.evm import MinedBlock
from layerlab.l1.node import MiningMode
from layerlab.l1.rpc import blobapi, codec
from layerlab.l1.rpc.codec import InvalidParams, hex_data
from layerlab.l1.rpc.common import block_logs, parse_log_filter
from layerlab.l1.rpc.methods import RpcApi

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
EXECUTION_REVERTED = 3

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
}


def error_response(req_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": req_id, "error": err}


class RpcServer:
    """Serves an :class:`RpcApi` on ``host:port`` and runs interval mining."""

    def __init__(
        self,
        api: RpcApi,
        host: str = "127.0.0.1",
        port: int = 8545,
        *,
        max_body: int = 5 * 1024 * 1024,
        max_batch: int = 1000,
    ) -> None:
        self.api = api
        self.node = api.node
        self.host = host
        self.port = port
        self.max_body = max_body
        self.max_batch = max_batch
        self._runner: web.AppRunner | None = None
        self._miner: asyncio.Task[None] | None = None
        self._sub_ids = itertools.count(1)
        self.sockets: set[web.WebSocketResponse] = set()
        self._arity: dict[str, tuple[int, int]] = {}
        for name, fn in api.methods.items():
            params = inspect.signature(fn).parameters.values()
            required = sum(1 for p in params if p.default is inspect.Parameter.empty)
            self._arity[name] = (required, len(params))

    # -- lifecycle -----------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body + 1)
        app.router.add_route("*", "/", self.handle)
        blobapi.add_routes(app, self.api.namespaces[0])
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        self._miner = asyncio.create_task(self._interval_miner())

    async def stop(self) -> None:
        if self._miner:
            self._miner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._miner
        for ws in list(self.sockets):
            await ws.close()
        if self._runner:
            await self._runner.cleanup()

    async def _interval_miner(self) -> None:
        """Mine every ``block_time`` seconds while the node is in interval mode."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if self.node.mining is not MiningMode.INTERVAL or not self.node.block_time:
                await asyncio.sleep(0.05)
                next_at = loop.time()
                continue
            next_at += self.node.block_time
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self.node.mining is not MiningMode.INTERVAL or not self.node.block_time:
                continue  # switched to manual or automine while this tick slept
            try:
                self.node.mine()
            except Exception:  # one failed block must not end interval mining for good
                log.exception("interval block failed")
            if loop.time() > next_at + self.node.block_time:
                next_at = loop.time()  # fell behind: do not burst to catch up

    # -- HTTP ----------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=CORS)
        if request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.handle_ws(request)
        if request.method != "POST":
            return web.json_response(
                error_response(None, INVALID_REQUEST, "only POST and WebSocket are served"),
                status=405, headers=CORS,
            )
        if request.content_length is not None and request.content_length > self.max_body:
            return self._too_large(request.content_length)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(None)
        response = self.handle_payload(body)
        if response is None:
            return web.Response(status=204, headers=CORS)
        return web.Response(text=response, content_type="application/json", headers=CORS)

    def _too_large(self, size: int | None) -> web.Response:
        detail = f"{size} bytes" if size is not None else "body"
        return web.json_response(
            error_response(None, INVALID_REQUEST,
                           f"request too large: {detail} exceeds the limit of {self.max_body} bytes"),
            status=413, headers=CORS,
        )

    def handle_payload(self, body: bytes | str, ws: web.WebSocketResponse | None = None) -> str | None:
        """Decode a request (or batch), run it, and encode the response (None: no reply)."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return json.dumps(error_response(None, PARSE_ERROR, f"parse error: {exc}"))
        if isinstance(payload, list):
            if not payload:
                return json.dumps(error_response(None, INVALID_REQUEST, "empty batch"))
            if len(payload) > self.max_batch:
                return json.dumps(error_response(
                    None, INVALID_REQUEST,
                    f"batch of {len(payload)} requests exceeds the limit of {self.max_batch}"))
            replies = [r for r in (self.handle_one(item, ws) for item in payload) if r is not None]
            return json.dumps(replies) if replies else None
        reply = self.handle_one(payload, ws)
        return None if reply is None else json.dumps(reply)

    def handle_one(self, req: Any, ws: web.WebSocketResponse | None = None) -> dict[str, Any] | None:
        if not isinstance(req, dict):
            return error_response(None, INVALID_REQUEST, "invalid request: expected an object")
        req_id = req.get("id")
        method = req.get("method")
        if req.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return error_response(req_id, INVALID_REQUEST,
                                  "invalid request: needs jsonrpc '2.0' and a string method")
        params = req.get("params", [])
        if params is None:
            params = []
        if not isinstance(params, list):
            return error_response(req_id, INVALID_PARAMS, "invalid params: expected an array")
        is_notification = "id" not in req
        try:
            result = self.call(method, params, ws)
        except InvalidParams as exc:
            reply = error_response(req_id, INVALID_PARAMS, f"invalid params: {exc}")
        except ExecutionReverted as exc:
            reply = error_response(req_id, EXECUTION_REVERTED, str(exc), hex_data(exc.data))
        except LookupError as exc:
            reply = error_response(req_id, METHOD_NOT_FOUND, str(exc.args[0]))
        except LayerlabError as exc:  # some carry their own code (eth_simulateV1's -380xx)
            reply = error_response(req_id, getattr(exc, "rpc_code", SERVER_ERROR), str(exc))
        except Exception as exc:
            log.exception("internal error in %s", method)
            reply = error_response(req_id, INTERNAL_ERROR, f"internal error: {exc}")
        else:
            reply = {"jsonrpc": "2.0", "id": req_id, "result": result}
        return None if is_notification else reply

    def call(self, method: str, params: list[Any], ws: web.WebSocketResponse | None) -> Any:
        if method in ("eth_subscribe", "eth_unsubscribe"):
            if ws is None:
                raise LookupError(f"the method {method} is only available over WebSocket")
            if method == "eth_subscribe":
                return self.subscribe(ws, params)
            return self.unsubscribe(ws, params)
        fn = self.api.methods.get(method)
        if fn is None:
            raise LookupError(f"the method {method} does not exist/is not available")
        lo, hi = self._arity[method]
        if not lo <= len(params) <= hi:
            raise InvalidParams(f"{method} takes {lo}..{hi} parameters, got {len(params)}")
        try:
            return fn(*params)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise InvalidParams(f"{method}: {exc}") from exc

    # -- WebSocket and subscriptions -----------------------------------------------------
    async def handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=self.max_body, heartbeat=30)
        await ws.prepare(request)
        self.sockets.add(ws)
        ws_state: dict[str, Any] = {"subs": {}, "queue": asyncio.Queue(maxsize=10_000)}
        self._ws_state[id(ws)] = ws_state
        sender = asyncio.create_task(self._ws_sender(ws, ws_state["queue"]))
        try:
            async for msg in ws:
                # web3.py's WebSocketProvider sends its JSON in binary frames; geth accepts both
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    reply = self.handle_payload(msg.data, ws)
                    if reply is not None:
                        await ws.send_str(reply)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            sender.cancel()
            self._unsubscribe_all(ws)
            self.sockets.discard(ws)
            self._ws_state.pop(id(ws), None)
        return ws

    @property
    def _ws_state(self) -> dict[int, dict[str, Any]]:
        state: dict[int, dict[str, Any]] | None = getattr(self, "_ws_state_store", None)
        if state is None:
            state = {}
            self._ws_state_store = state
        return state

    async def _ws_sender(self, ws: web.WebSocketResponse, queue: asyncio.Queue[str]) -> None:
        while True:
            text = await queue.get()
            if ws.closed:
                return
            await ws.send_str(text)

    def _notify(self, ws: web.WebSocketResponse, sub_id: str, result: Any) -> None:
        state = self._ws_state.get(id(ws))
        if state is None:
            return
        message = json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                              "params": {"subscription": sub_id, "result": result}})
        try:
            state["queue"].put_nowait(message)
        except asyncio.QueueFull:
            log.warning("subscriber too slow; dropping notification for %s", sub_id)

    def subscribe(self, ws: web.WebSocketResponse, params: list[Any]) -> str:
        if not params or not isinstance(params[0], str):
            raise InvalidParams("eth_subscribe: expected a subscription type")
        kind = params[0]
        sub_id = hex(next(self._sub_ids) * 0x10001 + 0x1000000000)
        state = self._ws_state[id(ws)]
        if kind == "newHeads":
            def on_block(mined: MinedBlock) -> None:
                out = codec.format_header(mined.block.header)
                out.pop("transactions", None)
                self._notify(ws, sub_id, out)
            self.node.block_listeners.append(on_block)
            state["subs"][sub_id] = ("block", on_block)
        elif kind == "logs":
            flt = parse_log_filter(params[1] if len(params) > 1 else {})

            def on_logs(mined: MinedBlock) -> None:
                header = mined.block.header
                for entry in block_logs(header, mined.block, mined.receipts, flt):
                    self._notify(ws, sub_id, entry)
            self.node.block_listeners.append(on_logs)
            state["subs"][sub_id] = ("block", on_logs)
        elif kind == "newPendingTransactions":
            def on_pending(tx_hash: bytes) -> None:
                self._notify(ws, sub_id, hex_data(tx_hash))
            self.node.pending_listeners.append(on_pending)
            state["subs"][sub_id] = ("pending", on_pending)
        else:
            raise InvalidParams(f"eth_subscribe: unsupported subscription {kind!r}")
        return sub_id

    def unsubscribe(self, ws: web.WebSocketResponse, params: list[Any]) -> bool:
        if not params or not isinstance(params[0], str):
            raise InvalidParams("eth_unsubscribe: expected a subscription id")
        state = self._ws_state.get(id(ws))
        if state is None or params[0] not in state["subs"]:
            return False
        self._drop(state["subs"].pop(params[0]))
        return True

    def _drop(self, sub: tuple[str, Any]) -> None:
        kind, listener = sub
        listeners: list[Any] = (self.node.block_listeners if kind == "block"
                                else self.node.pending_listeners)
        with contextlib.suppress(ValueError):
            listeners.remove(listener)

    def _unsubscribe_all(self, ws: web.WebSocketResponse) -> None:
        state = self._ws_state.get(id(ws))
        if state:
            for sub in state["subs"].values():
                self._drop(sub)
            state["subs"].clear()
