"""Process orchestration: start a service process, wait until it is ready, stop it, read its log.

Every ``layerlab ... up`` command (the L1 network, the channel network, each L2's
services) and every test harness that runs real processes goes through this module, so
that a service is started, waited for and stopped the same way everywhere:

* :func:`spawn` runs ``python -m layerlab.cli ARGS`` in its own session (its own process
  group, so a stop reaches its children too), with stdout and stderr appended to a log file.
* A service says it is ready either by answering JSON-RPC (:func:`wait_rpc`) or by
  writing a *ready file* atomically (:func:`write_ready_file` in the service,
  :func:`wait_ready_file` in the parent), a JSON object with its ports and pid.
* :func:`stop` sends SIGTERM to each process group, waits, then SIGKILLs what is left.
  Services handle SIGTERM with :func:`wait_for_stop_signal` and shut down cleanly.
* Waiting is always bounded in time, and a process that exits while it is waited for
  is reported at once with the tail of its log.

Only loopback addresses (127.0.0.1) are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from layerlab.errors import LayerlabError

__all__ = [
    "LOOPBACK",
    "RpcError",
    "ServiceError",
    "free_port",
    "is_alive",
    "parse_peer_address",
    "read_description",
    "rpc_call",
    "spawn",
    "start_devnet",
    "stop",
    "tail",
    "wait_for_stop_signal",
    "wait_ready_file",
    "wait_rpc",
    "write_json_atomically",
    "write_ready_file",
]

LOOPBACK = "127.0.0.1"
POLL_SECONDS = 0.05


class ServiceError(LayerlabError):
    """A service process could not be started, did not become ready, or died."""


class RpcError(LayerlabError):
    """A JSON-RPC call returned an error object; ``code`` and ``data`` are its fields."""

    def __init__(self, method: str, error: Mapping[str, Any]) -> None:
        self.method = method
        self.code = error.get("code")
        self.data = error.get("data")
        self.error = dict(error)
        super().__init__(f"{method}: {error.get('message')} (code {self.code})")


def parse_peer_address(text: object) -> tuple[str, int]:
    """``"127.0.0.1:<port>"`` (or ``localhost:<port>``) as ``("127.0.0.1", port)``; peers
    are on the loopback only in this lab. Raises :class:`ServiceError` naming the text."""
    if not isinstance(text, str) or text.count(":") != 1:
        raise ServiceError(f"peer address must be 'host:port', got {text!r}")
    host, port = text.split(":")
    if host not in (LOOPBACK, "localhost") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServiceError(f"peer address must be {LOOPBACK}:<port>, got {text!r}")
    return LOOPBACK, int(port)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago (bind to 0, read, close)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rpc_call(url: str, method: str, params: list[Any] | Mapping[str, Any] | None = None,
             timeout: float = 10) -> Any:
    """One JSON-RPC 2.0 call over HTTP; returns ``result`` or raises :class:`RpcError`.

    Transport failures raise ``OSError`` (``urllib.error.URLError`` is one).
    """
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": params if params is not None else []})
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # a JSON-RPC error may come with a 4xx/5xx status
        raw = exc.read()
        try:
            reply = json.loads(raw)
        except ValueError:
            raise OSError(f"{method}: HTTP {exc.code} from {url}: {raw[:200]!r}") from exc
    if isinstance(reply, dict) and reply.get("error") is not None:
        raise RpcError(method, reply["error"])
    return reply["result"]


def spawn(args: list[str], log_path: Path, *, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m layerlab.cli ARGS`` in a new session, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "layerlab.cli", *args], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd,
            env=None if env is None else {**os.environ, **env},
        )


def tail(log_path: Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    if log_path is None or not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _died(what: str, proc: subprocess.Popen[bytes] | None, log_path: Path | None) -> ServiceError | None:
    if proc is None or proc.poll() is None:
        return None
    shown = tail(log_path)
    return ServiceError(f"{what} exited with code {proc.returncode} before it was ready"
                        + (f"; its log ends:\n{shown}" if shown else ""))


def wait_ready_file(path: Path, proc: subprocess.Popen[bytes] | None = None, *,
                    timeout: float = 60, log_path: Path | None = None) -> dict[str, Any]:
    """Wait until the ready file ``path`` exists and return its JSON object."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with contextlib.suppress(ValueError):  # written by rename, so never partial
                data: dict[str, Any] = json.loads(path.read_text())
                return data
        if (err := _died(str(path.stem), proc, log_path)) is not None:
            raise err
        time.sleep(POLL_SECONDS)
    raise ServiceError(f"{path} did not appear within {timeout:.0f} s"
                       + (f"; the log ends:\n{tail(log_path)}" if log_path else ""))


def wait_rpc(url: str, proc: subprocess.Popen[bytes] | None = None, *, method: str = "eth_chainId",
             timeout: float = 60, log_path: Path | None = None) -> Any:
    """Wait until ``url`` answers ``method`` (any answer, even an error object); return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return rpc_call(url, method, timeout=2)
        except RpcError as exc:
            return exc.error
        except OSError:
            pass
        if (err := _died(url, proc, log_path)) is not None:
            raise err
        time.sleep(POLL_SECONDS * 2)
    raise ServiceError(f"{url} did not answer {method} within {timeout:.0f} s"
                       + (f"; the log ends:\n{tail(log_path)}" if log_path else ""))


def is_alive(pid: int) -> bool:
    """True while process ``pid`` exists (reaping it first if it is our exited child)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(pids: Iterable[int], timeout: float = 15) -> int:
    """SIGTERM each process group, wait up to ``timeout`` s, then SIGKILL the survivors.

    Returns how many of ``pids`` were running. Each pid is the leader of its own session
    (:func:`spawn` starts it so), so the signal reaches its children as well.
    """
    running = [pid for pid in pids if is_alive(pid)]
    for pid in running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in running:
        while is_alive(pid) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if is_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    return len(running)


def stop_described(desc: Mapping[str, Any], path: Path, timeout: float = 15) -> int:
    """``down`` of a service an ``up`` described in ``path``: stop the processes it lists
    under ``pids`` (:func:`stop`), then remove the description; returns how many ran."""
    count = stop((int(p) for p in desc.get("pids", [])), timeout)
    path.unlink(missing_ok=True)
    return count


def start_devnet(directory: Path, accounts: int | None = None) -> tuple[int, str]:
    """A ``layerlab node --in-memory`` for an ``up`` command that was given no L1: returns
    its pid and URL once it answers (its log is ``directory/l1.log``)."""
    port = free_port()
    args = ["node", "--in-memory", "--quiet", "--port", str(port)]
    if accounts is not None:
        args += ["--accounts", str(accounts)]
    log_path = directory / "l1.log"
    proc = spawn(args, log_path)
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_rpc(url, proc, log_path=log_path)
    except ServiceError:
        stop([proc.pid], timeout=0)
        raise
    return proc.pid, url


def write_json_atomically(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` by rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def read_description(path: Path, what: str, start_hint: str) -> dict[str, Any]:
    """The JSON description a service's ``up`` wrote (``network.json``, ``plasma.json``...);
    a missing one raises :class:`ServiceError` saying how to start one."""
    if not path.exists():
        raise ServiceError(f"no {what} in {path.parent}; start one with `{start_hint}`")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def write_ready_file(path: Path | None, info: Mapping[str, Any]) -> None:
    """Announce a started service: ``info`` plus its pid, written atomically (rename)."""
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**info, "pid": os.getpid()}))
    tmp.replace(path)


async def wait_for_stop_signal() -> None:
    """Return on SIGINT or SIGTERM (Ctrl-C or ``layerlab ... down``)."""
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    await stop_event.wait()
