"""What every L2 service process does at start and stop (channel node, watchtower...)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any


def write_ready_file(path: Path | None, info: dict[str, Any]) -> None:
    """Announce a started service: ``info`` plus its pid, written atomically (rename)."""
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**info, "pid": os.getpid()}))
    tmp.replace(path)


async def wait_for_stop_signal() -> None:
    """Return on SIGINT or SIGTERM (Ctrl-C or ``layerlab ... down``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
