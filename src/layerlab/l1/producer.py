"""What the block producers of a node share: a background loop on the node's event loop
(:class:`ProducerLoop`), and the status of all of them for ``layerlab_status``
(:class:`Producers`). The producers are the proof-of-work miner (``l1/miner.py``) and
the proof-of-stake validator client (``l1/validator.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class ProducerLoop:
    """A producer's background task on the node's event loop (started and stopped once)."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stop = False

    async def _run(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stop = True
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class Producer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, object]: ...


@dataclass
class Producers:
    """What ``layerlab_status`` reports about this node's block production."""

    items: Sequence[Producer]

    def status(self) -> dict[str, object]:
        return {str(p.status()["role"]): p.status() for p in self.items}
