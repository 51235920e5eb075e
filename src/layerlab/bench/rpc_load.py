"""Push pre-signed transactions through a node's JSON-RPC and time them until included.

The driver measures what a user sees end to end: transactions go out as JSON-RPC 2.0 batch
requests of ``batch_size`` ``eth_sendRawTransaction`` calls (at most ``concurrency`` batches
in flight), while a poller follows ``eth_blockNumber`` and reads each new block with
``eth_getBlockByNumber(n, false)`` to see which of the transactions it holds. The clock
runs from the first send to the moment the poller sees the block holding the last accepted
transaction, so TPS = included / that time (DESIGN.md section 5) and includes RPC decoding,
pool admission, block building, execution and the interval wait of the last block.

JSON bodies are encoded before the clock starts, so client-side serialisation is not
charged to the node. Transaction hashes are computed locally (keccak256 of the raw
envelope) and compared with those the node returns.

Only loopback URLs (127.0.0.0/8, ::1, localhost) are accepted: a load generator must not be
pointed at anybody else's machine. Every wait is bounded (``send_timeout``,
``inclusion_timeout``); on timeout the result says so rather than raising.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

import aiohttp

from layerlab.bench.workload import compute_transaction_hash
from layerlab.errors import LayerlabError
from layerlab.primitives.types import BlockNumber

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 200
DEFAULT_CONCURRENCY = 2
DEFAULT_POLL_INTERVAL = 0.05


class RpcLoadError(LayerlabError):
    """The load driver was misconfigured (non-loopback URL, bad sizes) or the node is unusable."""


@dataclass(frozen=True, slots=True)
class RpcLoadResult:
    """Outcome of one load run; times are wall-clock seconds on the driver's clock."""

    tx_count: int
    """Transactions the driver was given."""
    accepted_count: int
    """Answered with a result (a transaction hash) by ``eth_sendRawTransaction``."""
    rejected_count: int
    """Answered with an error, or whose batch failed or was not answered in time."""
    included_count: int
    """Found in a block after the run started."""
    error_samples: tuple[str, ...]
    """The first few distinct rejection messages."""
    send_seconds: float
    """First send to the last batch answered."""
    seconds: float
    """First send to the last inclusion seen (or to giving up)."""
    tps: float
    """``included_count / seconds``."""
    blocks_used: int
    """Distinct blocks holding at least one of the transactions."""
    first_block: BlockNumber | None
    last_block: BlockNumber | None
    timed_out: bool
    """True when not every accepted transaction was seen included before the deadline."""

    @property
    def is_complete(self) -> bool:
        """True when every transaction was accepted and included."""
        return self.included_count == self.tx_count and self.rejected_count == 0


@dataclass(slots=True)
class _Progress:
    """Mutable bookkeeping shared by the sender and the poller of one run."""

    waiting: set[str]
    """Hex hashes of transactions not yet seen in a block and not rejected."""
    included_blocks: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    accepted: int = 0
    error_samples: list[str] = field(default_factory=list)
    sending_done: bool = False
    send_finished_at: float = 0.0
    last_inclusion_at: float = 0.0

    def add_error(self, message: str, limit: int) -> None:
        if len(self.error_samples) < limit and message not in self.error_samples:
            self.error_samples.append(message)


def validate_loopback_url(url: str) -> None:
    """Raise :class:`RpcLoadError` unless ``url`` is http(s) to localhost or a loopback IP."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RpcLoadError(f"RPC URL must be http or https, got scheme {parts.scheme!r} in {url}")
    host = parts.hostname
    if host is None:
        raise RpcLoadError(f"RPC URL has no host: {url}")
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise RpcLoadError(
            f"RPC URL host must be localhost or a loopback address, got {host!r}"
        ) from None
    if not address.is_loopback:
        raise RpcLoadError(f"RPC URL host must be a loopback address, got {host}")


class LoadOptions(TypedDict, total=False):
    """The keyword options of :func:`drive_rpc_load`, shared by its blocking wrapper."""

    batch_size: int
    concurrency: int
    send_timeout: float
    inclusion_timeout: float
    poll_interval: float
    error_sample_limit: int


def run_rpc_load(url: str, raw_transactions: Sequence[bytes],
                 **options: Unpack[LoadOptions]) -> RpcLoadResult:
    """Blocking wrapper of :func:`drive_rpc_load` (runs its own event loop)."""
    return asyncio.run(drive_rpc_load(url, raw_transactions, **options))


async def drive_rpc_load(
    url: str,
    raw_transactions: Sequence[bytes],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    send_timeout: float = 120.0,
    inclusion_timeout: float = 120.0,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    error_sample_limit: int = 5,
) -> RpcLoadResult:
    """Send ``raw_transactions`` in JSON-RPC batches and wait until the node includes them.

    Sending stops after ``send_timeout`` seconds (unanswered batches count as rejected);
    waiting for inclusion stops ``inclusion_timeout`` seconds after sending ended.
    """
    validate_loopback_url(url)
    for name, value in (("batch size", batch_size), ("concurrency", concurrency)):
        if value < 1:
            raise RpcLoadError(f"{name} must be at least 1, got {value}")
    for name, seconds in (
        ("send timeout", send_timeout),
        ("inclusion timeout", inclusion_timeout),
        ("poll interval", poll_interval),
    ):
        if not seconds > 0:
            raise RpcLoadError(f"{name} must be positive, got {seconds}")

    hashes = ["0x" + compute_transaction_hash(tx).hex() for tx in raw_transactions]
    batches = [
        (
            start,
            hashes[start : start + batch_size],
            _encode_send_batch(raw_transactions[start : start + batch_size], start),
        )
        for start in range(0, len(raw_transactions), batch_size)
    ]
    progress = _Progress(waiting=set(hashes))

    try:
        started_at, finished_at = await _run(
            url,
            batches,
            progress,
            concurrency,
            send_timeout,
            inclusion_timeout,
            poll_interval,
            error_sample_limit,
        )
    except (aiohttp.ClientError, ValueError) as exc:
        raise RpcLoadError(f"talking to the node at {url} failed: {exc!r}") from exc

    included = len(progress.included_blocks)
    timed_out = bool(progress.waiting)
    end = finished_at if timed_out or not included else progress.last_inclusion_at
    seconds = end - started_at
    blocks = set(progress.included_blocks.values())
    return RpcLoadResult(
        tx_count=len(raw_transactions),
        accepted_count=progress.accepted,
        rejected_count=progress.rejected,
        included_count=included,
        error_samples=tuple(progress.error_samples),
        send_seconds=progress.send_finished_at - started_at,
        seconds=seconds,
        tps=included / seconds if seconds > 0 else 0.0,
        blocks_used=len(blocks),
        first_block=BlockNumber(min(blocks)) if blocks else None,
        last_block=BlockNumber(max(blocks)) if blocks else None,
        timed_out=timed_out,
    )


async def _run(
    url: str,
    batches: Sequence[tuple[int, list[str], bytes]],
    progress: _Progress,
    concurrency: int,
    send_timeout: float,
    inclusion_timeout: float,
    poll_interval: float,
    error_sample_limit: int,
) -> tuple[float, float]:
    """Send and poll concurrently; return the clock at the first send and at the end."""
    timeout = aiohttp.ClientTimeout(total=send_timeout + inclusion_timeout)
    connector = aiohttp.TCPConnector(limit=concurrency + 1)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start_block = await _get_block_number(session, url)
        started_at = time.perf_counter()
        poller = asyncio.create_task(
            _poll_inclusions(session, url, start_block, progress, poll_interval)
        )
        try:
            await _send_batches(
                session, url, batches, concurrency, send_timeout, progress, error_sample_limit
            )
            progress.sending_done = True
            progress.send_finished_at = time.perf_counter()
            try:
                await asyncio.wait_for(asyncio.shield(poller), inclusion_timeout)
            except TimeoutError:
                logger.warning(
                    "%d accepted transactions not included within %.1f s",
                    len(progress.waiting),
                    inclusion_timeout,
                )
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        return started_at, time.perf_counter()


def _encode_send_batch(raw_transactions: Sequence[bytes], first_id: int) -> bytes:
    """JSON body of one batch: ids are the transactions' positions in the workload."""
    return json.dumps(
        [
            {
                "jsonrpc": "2.0",
                "id": first_id + offset,
                "method": "eth_sendRawTransaction",
                "params": ["0x" + tx.hex()],
            }
            for offset, tx in enumerate(raw_transactions)
        ],
        separators=(",", ":"),
    ).encode()


async def _send_batches(
    session: aiohttp.ClientSession,
    url: str,
    batches: Sequence[tuple[int, list[str], bytes]],
    concurrency: int,
    send_timeout: float,
    progress: _Progress,
    error_sample_limit: int,
) -> None:
    """POST every batch (``concurrency`` at a time, in order) and book the answers."""
    semaphore = asyncio.Semaphore(concurrency)
    answered = [False] * len(batches)

    async def send(index: int) -> None:
        first_id, batch_hashes, body = batches[index]
        async with semaphore:
            try:
                answer = await _post(session, url, body)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                answer = {"error": {"code": None, "message": f"batch failed: {exc!r}"}}
            _book_batch_answer(first_id, batch_hashes, answer, progress, error_sample_limit)
            answered[index] = True

    tasks = [asyncio.create_task(send(index)) for index in range(len(batches))]
    done, pending = await asyncio.wait(tasks, timeout=send_timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for index, was_answered in enumerate(answered):
        if not was_answered:
            _, batch_hashes, _ = batches[index]
            progress.rejected += len(batch_hashes)
            progress.waiting.difference_update(batch_hashes)
            progress.add_error(f"batch not answered within {send_timeout} s", error_sample_limit)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise RpcLoadError(f"sending a batch failed: {task.exception()!r}")


def _book_batch_answer(
    first_id: int,
    batch_hashes: list[str],
    answer: Any,
    progress: _Progress,
    error_sample_limit: int,
) -> None:
    """Count each call of a batch as accepted or rejected (JSON-RPC 2.0 section 6)."""
    if not isinstance(answer, list):
        # One error object for the whole batch (e.g. batch too large, parse error).
        progress.rejected += len(batch_hashes)
        progress.waiting.difference_update(batch_hashes)
        progress.add_error(f"whole batch rejected: {_describe_error(answer)}", error_sample_limit)
        return
    by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
    for offset, tx_hash in enumerate(batch_hashes):
        item = by_id.get(first_id + offset)
        if item is not None and "result" in item:
            if str(item["result"]).lower() == tx_hash:
                progress.accepted += 1
                continue
            message = f"node returned hash {item['result']} for transaction {tx_hash}"
        elif item is None:
            message = "no answer for this call in the batch response"
        else:
            message = _describe_error(item)
        progress.rejected += 1
        progress.waiting.discard(tx_hash)
        progress.add_error(message, error_sample_limit)


def _describe_error(item: Any) -> str:
    """``"code: message"`` of a JSON-RPC error object, or the raw item if it is not one."""
    if isinstance(item, dict) and isinstance(item.get("error"), dict):
        error = item["error"]
        return f"{error.get('code')}: {error.get('message')}"
    return f"unexpected answer {str(item)[:200]}"


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> Any:
    """POST a JSON body; raise ``ValueError`` for a non-200 status."""
    async with session.post(
        url, data=body, headers={"Content-Type": "application/json"}
    ) as response:
        text = await response.read()
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}: {text[:200]!r}")
        return json.loads(text)


async def _call(session: aiohttp.ClientSession, url: str, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call; raise :class:`RpcLoadError` if it answers with an error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    answer = await _post(session, url, body)
    if not isinstance(answer, dict) or "result" not in answer:
        raise RpcLoadError(f"{method} failed: {_describe_error(answer)}")
    return answer["result"]


async def _get_block_number(session: aiohttp.ClientSession, url: str) -> int:
    return int(await _call(session, url, "eth_blockNumber", []), 16)


async def _poll_inclusions(
    session: aiohttp.ClientSession,
    url: str,
    start_block: int,
    progress: _Progress,
    poll_interval: float,
) -> None:
    """Follow the chain head and record which block includes each waiting transaction.

    Returns once sending is done and nothing is waiting; the caller bounds it in time.
    """
    seen = start_block
    while True:
        head = await _get_block_number(session, url)
        if head > seen:
            body = json.dumps(
                [
                    {
                        "jsonrpc": "2.0",
                        "id": number,
                        "method": "eth_getBlockByNumber",
                        "params": [hex(number), False],
                    }
                    for number in range(seen + 1, head + 1)
                ]
            ).encode()
            answers = await _post(session, url, body)
            observed_at = time.perf_counter()
            blocks = {item.get("id"): item.get("result") for item in answers}
            for number in range(seen + 1, head + 1):
                block = blocks.get(number)
                if not isinstance(block, dict):
                    raise RpcLoadError(f"eth_getBlockByNumber({number}) gave no block")
                for tx_hash in block.get("transactions", []):
                    key = str(tx_hash).lower()
                    if key in progress.waiting:
                        progress.waiting.discard(key)
                        progress.included_blocks[key] = number
                        progress.last_inclusion_at = observed_at
            seen = head
        if progress.sending_done and not progress.waiting:
            return
        await asyncio.sleep(poll_interval)
