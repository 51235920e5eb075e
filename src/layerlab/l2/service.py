"""The JSON-RPC front of an L2 service (Plasma operator, rollup sequencer, verifier).

One aiohttp app on 127.0.0.1 answering JSON-RPC 2.0 POSTs at ``/``: a method table of
synchronous handlers (they run on the event loop, so they must be quick: validate, journal,
answer) plus asynchronous ones for work that waits on the L1. Errors map to JSON-RPC codes
as geth does: -32700 parse error, -32600 invalid request, -32601 unknown method, -32602
invalid params (a malformed transaction), -32000 refused by the protocol with
``data.check`` the machine-readable reason, and any service-specific code a handler's
exception carries in ``rpc_code``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

from aiohttp import web

from layerlab.errors import LayerlabError, MalformedEncoding
from layerlab.l2.follower import L1Change, L1Follower, ReorgTooDeep

__all__ = [
    "REFUSED_CODE",
    "AsyncHandler",
    "JsonRpcServer",
    "SyncHandler",
    "cancel_tasks",
    "every",
    "follow_l1",
]

log = logging.getLogger(__name__)

REFUSED_CODE: Final = -32000
SyncHandler = Callable[[list[Any]], Any]
AsyncHandler = Callable[[list[Any]], Awaitable[Any]]


class JsonRpcServer:
    """Serve ``methods`` (sync) and ``async_methods`` on ``host:port`` (0: any free port)."""

    def __init__(self, methods: Mapping[str, SyncHandler],
                 async_methods: Mapping[str, AsyncHandler] | None = None) -> None:
        self.methods = dict(methods)
        self.async_methods = dict(async_methods or {})
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/", self._on_rpc)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _on_rpc(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return reply(None, error={"code": -32700, "message": "parse error"})
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            return reply(None, error={"code": -32600, "message": "invalid request"})
        req_id, method, params = body.get("id"), body["method"], body.get("params")
        args = params if isinstance(params, list) else [] if params is None else [params]
        try:
            if method in self.async_methods:
                return reply(req_id, await self.async_methods[method](args))
            handler = self.methods.get(method)
            if handler is None:
                return reply(req_id, error={"code": -32601, "message": f"no method {method}"})
            return reply(req_id, handler(args))
        except (MalformedEncoding, KeyError, IndexError, TypeError, ValueError) as exc:
            return reply(req_id, error={"code": -32602, "message": f"invalid params: {exc}"})
        except LayerlabError as exc:
            error: dict[str, Any] = {"code": getattr(exc, "rpc_code", REFUSED_CODE),
                                     "message": str(exc)}
            check = getattr(exc, "check", None)
            if check is not None:
                error["data"] = {"check": check}
            return reply(req_id, error=error)


def reply(req_id: Any, result: Any = None, error: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    return web.json_response(body, dumps=lambda v: json.dumps(v, separators=(",", ":")))


async def cancel_tasks(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel a service's background tasks and wait for each to end."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def follow_l1(follower: L1Follower, apply: Callable[[list[L1Change]], Any], *,
                    interval: float, start_block: int,
                    on_rewind: Callable[[], None] | None = None) -> None:
    """A service's L1 loop: read in a worker thread, ``apply`` the changes on the event loop
    (where the JSON-RPC handlers change the same state; ``apply`` may be a coroutine
    function), every ``interval`` seconds. A reorg deeper than the follower's history
    makes it read again from ``start_block`` (``on_rewind`` resets what was derived); a
    failed read is retried next round."""
    while True:
        try:
            result = apply(await follower.poll_async())
            if asyncio.iscoroutine(result):
                await result
        except ReorgTooDeep:
            log.error("an L1 reorg deeper than the follower's history: reading again from "
                      "block %d", start_block)
            follower.rewind(start_block)
            if on_rewind is not None:
                on_rewind()
        except LayerlabError as exc:
            log.warning("reading the L1 failed (will retry): %s", exc)
        await asyncio.sleep(interval)


async def every(interval: float, work: Callable[[], Awaitable[Any]], what: str) -> None:
    """Run ``work`` every ``interval`` seconds (a sequencer's batches, an operator's
    blocks); a failure is logged and retried next time."""
    while True:
        await asyncio.sleep(interval)
        try:
            await work()
        except LayerlabError as exc:
            log.warning("%s failed (will retry): %s", what, exc)
