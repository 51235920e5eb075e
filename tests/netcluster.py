"""A network of real ``layerlab node`` processes (pow, pos or merge) for integration tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from layerlab.l1 import network as l1net
from layerlab.l1.network import NodeSpec, rpc
from tests.waiting import wait_until

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """:func:`tests.waiting.wait_until`, a node that is not up yet counting as "not yet"."""
    return wait_until(predicate, timeout, what, interval, tolerate=(OSError, l1net.LayerlabError))


class Cluster:
    """``with Cluster(tmp, 4, "pow") as net``: N node processes, fully meshed."""

    def __init__(self, directory: Path, nodes: int, consensus: str, *, validators: int = 4,
                 merge_block: int | None = None, start: bool = True) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "chain.json"
        self.config.write_text(json.dumps(l1net.chain_config(
            consensus, validators=validators, merge_block=merge_block)))
        self.specs: list[NodeSpec] = l1net.plan(self.dir, nodes, consensus, validators)
        self.started = start

    def __enter__(self) -> Cluster:
        if self.started:
            for i in range(len(self.specs)):
                self.specs[i].start(self.config)
            for spec in self.specs:
                spec.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        for spec in self.specs:
            self.kill(spec.index, signal.SIGTERM)
        time.sleep(0.5)
        for spec in self.specs:
            self.kill(spec.index)

    # -- processes -----------------------------------------------------------------------
    def start(self, index: int) -> None:
        self.specs[index].start(self.config)
        self.specs[index].wait_ready()

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        pid = self.specs[index].pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, sig)
            if sig == signal.SIGKILL:
                os.waitpid(pid, 0)
                self.specs[index].pid = None

    def log(self, index: int) -> str:
        path = Path(self.specs[index].data_dir) / "node.log"
        return path.read_text()[-4000:] if path.exists() else ""

    # -- rpc -----------------------------------------------------------------------------
    def call(self, index: int, method: str, *params: Any) -> Any:
        return rpc(self.specs[index].url, method, list(params), timeout=30)

    def status(self, index: int) -> dict[str, Any]:
        result: dict[str, Any] = self.call(index, "layerlab_status")
        return result

    def head(self, index: int) -> tuple[int, str]:
        h = self.status(index)["head"]
        return h["number"], h["hash"]

    def heads(self, indices: list[int] | None = None) -> list[tuple[int, str]]:
        return [self.head(i) for i in (indices if indices is not None else range(len(self.specs)))]

    def converged(self, indices: list[int] | None = None, min_height: int = 0) -> bool:
        heads = self.heads(indices)
        return len({h for _, h in heads}) == 1 and heads[0][0] >= min_height

    def wait_converged(self, timeout: float = 60, min_height: int = 0,
                       indices: list[int] | None = None) -> tuple[int, str]:
        """Wait until the nodes agree on a head, checked twice 0.5 s apart (still mining)."""
        def agree() -> tuple[int, str] | None:
            if not self.converged(indices, min_height):
                return None
            return self.heads(indices)[0]

        return wait_for(agree, timeout, f"nodes {indices or 'all'} to converge")

    def p2p(self, index: int) -> str:
        return f"127.0.0.1:{self.specs[index].p2p_port}"

    def partition(self, left: list[int], right: list[int]) -> None:
        for a in left:
            for b in right:
                self.call(a, "admin_removePeer", self.p2p(b))
                self.call(b, "admin_removePeer", self.p2p(a))

    def heal(self, left: list[int], right: list[int]) -> None:
        for a in left:
            for b in right:
                self.call(a, "admin_addPeer", self.p2p(b))
                self.call(b, "admin_addPeer", self.p2p(a))
