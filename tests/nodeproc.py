"""Start real ``layerlab node`` processes on 127.0.0.1 for integration tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from layerlab.l1.network import free_port

ROOT = Path(__file__).resolve().parent.parent


def rpc(url: str, method: str, params: list[object] | None = None, timeout: float = 30) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply["result"]


def call(url: str, method: str, *params: object) -> Any:
    """``rpc`` with the parameters spread: ``call(url, "eth_getBalance", addr, "latest")``."""
    return rpc(url, method, list(params))


class NodeProcess:
    """A node subprocess; ``url`` is its HTTP endpoint, ``ws_url`` its WebSocket one."""

    def __init__(self, *args: str, data_dir: Path | None = None, port: int | None = None,
                 wrapper: list[str] | None = None) -> None:
        self.port = port or free_port()
        self.wrapper = wrapper or []  # a command the node runs under, e.g. strace
        self.args = list(args)
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> NodeProcess:
        cmd = [*self.wrapper, sys.executable, "-m", "layerlab.cli", "node", "--port",
               str(self.port), "--quiet"]
        cmd += ["--data-dir", str(self.data_dir)] if self.data_dir else ["--in-memory"]
        cmd += self.args
        log_dir = self.data_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"node-{self.port}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}: {self.log()}")
            with contextlib.suppress(OSError):
                rpc(self.url, "eth_chainId", timeout=2)
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"node did not answer within {timeout} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()[-3000:] if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> int | None:
        """Ctrl-C (SIGINT) and wait: the clean shutdown path."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL: the crash path."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_node(*args: str, data_dir: Path | None = None) -> Iterator[NodeProcess]:
    node = NodeProcess(*args, data_dir=data_dir)
    with node:
        yield node
