"""A local payment-channel network: an L1, the channel contract, N node processes, a tower.

``layerlab channels up --nodes N`` (as Polar does for Lightning) starts, on 127.0.0.1:

* an L1 devnet node process (unless ``--l1-url`` names a running EVM chain),
* the ``PaymentChannels`` contract, deployed with dev account 0,
* N channel-node processes, node i holding dev account i, each with a peer port and a
  control port,
* a watchtower process holding the last dev account's key (it only pays gas),

and writes ``network.json`` in the network directory: the L1 URL, the contract, and each
node's address, ports, fee policy and pid. Nodes read it to find peers; the CLI reads it
to talk to them; ``layerlab channels down`` stops every process it lists.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from layerlab.errors import ChannelError
from layerlab.orchestration import free_port, spawn, stop, wait_ready_file, wait_rpc

DEFAULT_NET_DIR = Path(".layerlab/channels")
DEFAULT_FEE = {"base_fee": 1, "proportional_millionths": 100, "cltv_delta": 10}


def up(nodes: int, net_dir: Path = DEFAULT_NET_DIR, l1_url: str | None = None,
       with_tower: bool = True, settle_timeout: int = 20) -> dict[str, Any]:
    """Start the network and return its description (also written to network.json)."""
    from web3 import Web3

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.channels.onchain import deploy_channels

    if not 1 <= nodes <= 64:
        raise ChannelError(f"--nodes must be between 1 and 64, got {nodes}")
    net_dir.mkdir(parents=True, exist_ok=True)
    if (net_dir / "network.json").exists():
        raise ChannelError(f"{net_dir} already holds a network; run `layerlab channels down`")
    accounts = derive_dev_accounts(count=nodes + 2)
    desc: dict[str, Any] = {"nodes": {}, "pids": []}
    l1 = None
    if l1_url is None:
        port = free_port()
        l1 = spawn(["node", "--in-memory", "--quiet", "--port", str(port),
                     "--accounts", str(nodes + 2)], net_dir / "l1.log")
        desc["pids"].append(l1.pid)
        l1_url = f"http://127.0.0.1:{port}"
    desc["l1_url"] = l1_url
    wait_rpc(l1_url, l1, log_path=net_dir / "l1.log")
    w3 = Web3(Web3.HTTPProvider(l1_url, request_kwargs={"timeout": 60}))
    contract = deploy_channels(w3, accounts[0].private_key)
    desc["contract"] = contract.address
    (net_dir / "network.json").write_text(json.dumps(desc, indent=2))
    procs = []
    for i in range(1, nodes + 1):
        ready = net_dir / f"node{i}.ready"
        ready.unlink(missing_ok=True)
        args = ["channels", "node", "--net-dir", str(net_dir), "--index", str(i),
                "--settle-timeout", str(settle_timeout)]
        proc = spawn(args, net_dir / f"node{i}.log")
        procs.append((i, ready, proc))
        desc["pids"].append(proc.pid)  # recorded at once, so `down` stops it whatever happens
    (net_dir / "network.json").write_text(json.dumps(desc, indent=2))
    for i, ready, proc in procs:
        info = wait_ready_file(ready, proc, log_path=ready.with_suffix(".log"))
        desc["nodes"][info["address"]] = {"index": i, "host": "127.0.0.1", "port": info["port"],
                                          "control_port": info["control_port"], "pid": proc.pid,
                                          "fee": DEFAULT_FEE}
    if with_tower:
        ready = net_dir / "tower.ready"
        ready.unlink(missing_ok=True)
        proc = spawn(["channels", "tower", "--net-dir", str(net_dir),
                       "--index", str(nodes + 1)], net_dir / "tower.log")
        desc["pids"].append(proc.pid)
        (net_dir / "network.json").write_text(json.dumps(desc, indent=2))
        info = wait_ready_file(ready, proc, log_path=ready.with_suffix(".log"))
        desc["tower"] = {"host": "127.0.0.1", "port": info["port"], "pid": proc.pid,
                         "address": info["address"]}
    (net_dir / "network.json").write_text(json.dumps(desc, indent=2))
    return desc


def load(net_dir: Path = DEFAULT_NET_DIR) -> dict[str, Any]:
    path = net_dir / "network.json"
    if not path.exists():
        raise ChannelError(f"no network in {net_dir}; start one with `layerlab channels up`")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def node_entry(desc: dict[str, Any], index: int) -> tuple[str, dict[str, Any]]:
    for address, entry in desc["nodes"].items():
        if entry["index"] == index:
            return address, entry
    raise ChannelError(f"no node {index} in this network (1..{len(desc['nodes'])})")


def control(desc: dict[str, Any], index: int, method: str, params: dict[str, Any] | None = None,
            timeout: float = 120) -> Any:
    """Call a node's control API."""
    _, entry = node_entry(desc, index)
    body = json.dumps({"method": method, "params": params or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{entry['control_port']}/", body,
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        reply = json.loads(exc.read() or b"{}")
    if "error" in reply:
        raise ChannelError(f"node {index}: {reply['error']}")
    return reply["result"]


def down(net_dir: Path = DEFAULT_NET_DIR, timeout: float = 20) -> int:
    """Stop every process of the network (SIGTERM, then SIGKILL); returns how many."""
    desc = load(net_dir)
    pids = [int(p) for p in desc.get("pids", [])]
    stop(pids, timeout)
    (net_dir / "network.json").unlink(missing_ok=True)
    return len(pids)
