"""A running payment-channel network for integration tests: start, drive, attack, stop.

:func:`running_network` wraps :func:`layerlab.l2.channels.network.up` / ``down`` so no
process outlives a test (``down`` runs in ``finally``, after stopped processes are
resumed). :class:`ChannelNet` drives the nodes through their control API, the L1 through
JSON-RPC (``anvil_mine``) and the contract through :class:`ChannelContract`, and plays
the operator who kills (``SIGKILL``), freezes (``SIGSTOP``) and restarts node processes.
Every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from web3 import Web3

from layerlab.crypto.keys import DevAccount, derive_dev_accounts
from layerlab.l2.channels import machine as m
from layerlab.l2.channels import network
from layerlab.l2.channels.node import CHANNEL_PREFIX
from layerlab.l2.channels.onchain import ChannelContract, ChannelEvent
from layerlab.l2.channels.types import ChannelId
from layerlab.l2.store import RecordStore
from layerlab.orchestration import spawn, wait_ready_file
from tests.nodeproc import rpc
from tests.waiting import wait_until

T = TypeVar("T")
ETHER = 10**18
FEE = network.DEFAULT_FEE


def compute_fee(forwarded: int, fee: dict[str, int] = FEE) -> int:
    """BOLT 7's forwarding fee, written out independently of the routing module."""
    return fee["base_fee"] + forwarded * fee["proportional_millionths"] // 1_000_000


@dataclass
class ChannelNet:
    """A network started by ``network.up`` in ``net_dir``; node ``i`` holds dev account ``i``."""

    net_dir: Path
    desc: dict[str, Any]
    accounts: tuple[DevAccount, ...]
    restarted: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stopped: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.w3 = Web3(Web3.HTTPProvider(self.desc["l1_url"], request_kwargs={"timeout": 60}))
        self.contract = ChannelContract.at(self.w3, self.desc["contract"])

    # -- nodes ---------------------------------------------------------------------------
    def address(self, index: int) -> str:
        """Node ``index``'s address as the network directory spells it (0x, lower case)."""
        return network.node_entry(self.desc, index)[0]

    def checksum(self, index: int) -> str:
        return Web3.to_checksum_address(self.address(index))

    def key(self, index: int) -> bytes:
        return self.accounts[index].private_key

    def pid(self, index: int) -> int:
        return int(network.node_entry(self.desc, index)[1]["pid"])

    def control(self, index: int, method: str, params: dict[str, Any] | None = None,
                timeout: float = 30) -> Any:
        return network.control(self.desc, index, method, params, timeout=timeout)

    def status(self, index: int) -> dict[str, Any]:
        result: dict[str, Any] = self.control(index, "status", timeout=10)
        return result

    def channel(self, index: int, channel_id: str) -> dict[str, Any]:
        """One channel of node ``index``'s status (nonce, my_balance, peer_balance, locks)."""
        for entry in self.status(index)["channels"]:
            if entry["channel_id"] == channel_id:
                return dict(entry)
        raise AssertionError(f"node {index} does not know channel {channel_id}")

    def open(self, opener: int, peer: int, amount: int) -> str:
        channel_id: str = self.control(opener, "open", {"peer": self.address(peer),
                                                            "amount": amount})
        return channel_id

    def send(self, index: int, channel_id: str, amount: int, count: int = 1,
             timeout: float = 30) -> dict[str, Any]:
        result: dict[str, Any] = self.control(index, "send", {
            "channel_id": channel_id, "amount": amount, "count": count}, timeout=timeout)
        return result

    def invoice(self, index: int, amount: int, description: str = "") -> str:
        text: str = self.control(index, "invoice", {"amount": amount, "description": description})
        return text

    def pay(self, index: int, invoice: str, timeout: float = 30) -> dict[str, Any]:
        result: dict[str, Any] = self.control(index, "pay", {"invoice": invoice, "timeout": timeout},
                                              timeout=timeout + 30)
        return result

    def wait_synced(self, *indices: int, timeout: float = 10) -> None:
        """Wait until the nodes have polled the L1 up to its current head (so their routing
        graphs hold every channel opened so far), plus two poll rounds."""
        head = self.block_number()
        for index in indices:
            wait_until(lambda i=index: self.status(i)["block"] >= head, timeout,
                       f"node {index} to see L1 block {head}")
        time.sleep(0.6)

    # -- processes -----------------------------------------------------------------------
    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` and wait until it is gone."""
        pid = self.pid(index)
        self.resume(index)
        os.kill(pid, signal.SIGKILL)
        for proc in self.restarted:
            if proc.pid == pid:
                proc.wait(10)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def freeze(self, index: int) -> None:
        """SIGSTOP node ``index``: it keeps its sockets but answers nothing."""
        os.kill(self.pid(index), signal.SIGSTOP)
        self.stopped.add(index)

    def resume(self, index: int) -> None:
        if index in self.stopped:
            self.stopped.discard(index)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid(index), signal.SIGCONT)

    def restart(self, index: int, timeout: float = 60) -> None:
        """Start node ``index`` again with ``network.up``'s command line and wait for its ready
        file. Its ports are new, so the network directory (``network.json``) is rewritten
        with them, as an operator would, or its peers could not reach it."""
        ready = self.net_dir / f"node{index}.ready"
        ready.unlink(missing_ok=True)
        log_path = self.net_dir / f"node{index}.log"
        proc = spawn(["channels", "node", "--net-dir", str(self.net_dir), "--index", str(index),
                      "--settle-timeout", str(self.desc.get("settle_timeout", 20))], log_path)
        self.restarted.append(proc)
        info = wait_ready_file(ready, proc, timeout=timeout, log_path=log_path)
        entry = network.node_entry(self.desc, index)[1]
        entry.update(port=info["port"], control_port=info["control_port"], pid=proc.pid)
        self.desc["pids"].append(proc.pid)
        self.write_directory()

    def write_directory(self) -> None:
        """Replace network.json atomically (nodes read it while running)."""
        path = self.net_dir / "network.json"
        tmp = path.with_suffix(".tmp")
        on_disk = json.loads(path.read_text())
        on_disk.update(nodes=self.desc["nodes"], pids=self.desc["pids"])
        tmp.write_text(json.dumps(on_disk, indent=2))
        tmp.replace(path)

    def log(self, name: str) -> str:
        """A process's log (``node2``, ``tower``, ``l1``)."""
        path = self.net_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def read_channel(self, index: int, channel_id: str) -> m.Channel:
        """Node ``index``'s channel as stored on its disk; the node must not be running."""
        store = RecordStore(self.net_dir / f"node{index}" / "node")
        try:
            raw = store.get(CHANNEL_PREFIX + bytes.fromhex(channel_id[2:]))
        finally:
            store.close()
        assert raw is not None, f"node {index} stored no channel {channel_id}"
        return m.decode_channel(json.dumps(raw), self.key(index))

    # -- L1 ------------------------------------------------------------------------------
    def rpc(self, method: str, params: list[object] | None = None) -> Any:
        return rpc(self.desc["l1_url"], method, params)

    def mine(self, blocks: int) -> None:
        self.rpc("anvil_mine", [hex(blocks)])

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def l1_balance(self, index: int) -> int:
        return int(self.w3.eth.get_balance(self.checksum(index)))

    def events(self, channel_id: str, name: str | None = None) -> list[ChannelEvent]:
        cid = ChannelId(bytes.fromhex(channel_id[2:]))
        return [e for e in self.contract.events(0) if e.channel_id == cid
                and (name is None or e.name == name)]

    def tx_fee(self, tx_hash: bytes) -> int:
        """Wei the sender of ``tx_hash`` paid for gas."""
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])

    def transactions(self, index: int, after_block: int) -> list[dict[str, Any]]:
        """Node ``index``'s L1 transactions mined after ``after_block``: hash, block,
        status (1 ok, 0 reverted), fee paid, and the contract function's selector."""
        sender = self.checksum(index)
        found = []
        for number in range(after_block + 1, self.block_number() + 1):
            block = self.w3.eth.get_block(number, full_transactions=True)
            for tx in block["transactions"]:
                if tx["from"] != sender:  # type: ignore[index]
                    continue
                receipt = self.w3.eth.get_transaction_receipt(tx["hash"])
                found.append({"hash": bytes(tx["hash"]), "block": number,
                              "status": int(receipt["status"]),
                              "fee": int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"]),
                              "selector": bytes(tx["input"][:4])})
        return found

    def gas_paid(self, index: int, after_block: int) -> int:
        """Wei node ``index`` paid for gas after ``after_block`` (reverted transactions too)."""
        return sum(tx["fee"] for tx in self.transactions(index, after_block))


@contextlib.contextmanager
def running_network(net_dir: Path, nodes: int, *, with_tower: bool = True,
                    settle_timeout: int = 20,
                    fees: dict[int, dict[str, int]] | None = None) -> Iterator[ChannelNet]:
    """``network.up`` in ``net_dir``; ``down`` (and the end of every restarted node) in the
    end whatever happens. ``fees`` overrides the fee policy a node announces in the
    network directory (what the payers route by)."""
    net_dir.mkdir(parents=True, exist_ok=True)
    net: ChannelNet | None = None
    try:
        desc = network.up(nodes, net_dir, with_tower=with_tower, settle_timeout=settle_timeout)
        desc["settle_timeout"] = settle_timeout
        net = ChannelNet(net_dir, desc, derive_dev_accounts(count=nodes + 2))
        for index, fee in (fees or {}).items():
            network.node_entry(desc, index)[1]["fee"] = fee
        if fees:
            net.write_directory()
        yield net
    finally:
        if net is not None:
            for index in list(net.stopped):
                net.resume(index)
        if (net_dir / "network.json").exists():
            network.down(net_dir)
        for proc in net.restarted if net is not None else ():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for log in sorted(net_dir.glob("*.log")):
            tail = log.read_bytes()[-4000:].decode(errors="replace")
            if "Traceback" in tail:
                print(f"--- {log.name} (tail) ---\n{tail}")
