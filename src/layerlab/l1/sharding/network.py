"""``layerlab net up --shards S``: S shard chains and their beacon coordinator, as processes.

Each shard is a devnet node process of its own (``layerlab node --config
shardK/chain.json --block-time T``): own data directory, RPC port, and chain id
``base_chain_id + K``; its genesis funds the dev accounts and the beacon system account
(``crossshard.system_genesis_alloc``). After the shards answer, the cross-shard contract
is deployed on each (the system account's first transaction, so it has one address on
every shard), then the coordinator (``layerlab net coordinator``, :mod:`.coordinator`)
starts. Everything is recorded in ``<dir>/net.json``; ``status`` reads each shard's head
by RPC and the coordinator's ``beacon.json``; ``down`` stops every process. Processes
are started, waited for and stopped through :mod:`layerlab.orchestration`, as in
:mod:`layerlab.l1.network`; only 127.0.0.1 is used.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from layerlab.errors import ConfigError, LayerlabError
from layerlab.orchestration import (
    free_port,
    read_description,
    rpc_call,
    spawn,
    stop,
    wait_ready_file,
    wait_rpc,
    write_json_atomically,
)

__all__ = ["DEFAULT_BASE_CHAIN_ID", "DEFAULT_RESERVE_WEI", "ShardSpec", "down", "is_sharded", "status", "up"]

DEFAULT_BASE_CHAIN_ID = 31337
DEFAULT_RESERVE_WEI = 10_000 * 10**18
"""What the cross-shard contract holds on each shard to pay claims from (value is
conserved: a ``send`` locks value on its shard, a ``claim`` releases it from this reserve)."""


@dataclass
class ShardSpec:
    """One shard process."""

    index: int
    chain_id: int
    rpc_port: int
    data_dir: str
    config: str
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def log_path(self) -> Path:
        return Path(self.data_dir) / "node.log"


def shard_genesis(chain_id: int, timestamp: int, reserve_wei: int,
                  gas_limit: int | None = None) -> dict[str, Any]:
    """A shard's chain config: its chain id, a fixed genesis time, the system account."""
    from layerlab.l1.sharding import crossshard

    alloc = crossshard.system_genesis_alloc(reserve_wei)
    config: dict[str, Any] = {"chainId": chain_id, "timestamp": timestamp, "alloc": alloc}
    if gas_limit is not None:
        config["gasLimit"] = gas_limit
    return config


def _deploy_cross_shard(specs: list[ShardSpec], reserve_wei: int) -> str:
    from web3 import Web3

    from layerlab.l1.sharding import crossshard

    def deploy(spec: ShardSpec) -> str:
        w3 = Web3(Web3.HTTPProvider(spec.url, request_kwargs={"timeout": 60}))
        return str(crossshard.deploy(w3, spec.index, len(specs), reserve_wei))

    with ThreadPoolExecutor(len(specs)) as pool:  # each waits for its shard's next block
        addresses = set(pool.map(deploy, specs))
    if addresses != {crossshard.CROSS_SHARD_ADDRESS}:
        raise LayerlabError(
            f"CrossShard deployed at {sorted(addresses)}, expected {crossshard.CROSS_SHARD_ADDRESS}")
    return str(crossshard.CROSS_SHARD_ADDRESS)


def is_sharded(directory: Path) -> bool:
    path = directory / "net.json"
    return path.exists() and "shards" in json.loads(path.read_text())


def up(directory: Path, shards: int, *, validators: int | None = None, block_time: float = 1.0,
       base_chain_id: int = DEFAULT_BASE_CHAIN_ID, preset: str = "minimal", verify: bool = True,
       relay: bool = True, byzantine: str = "", reserve_wei: int = DEFAULT_RESERVE_WEI,
       gas_limit: int | None = None) -> dict[str, Any]:
    """Start the shards and the coordinator; return the recorded description."""
    if not 1 <= shards <= 16:
        raise ConfigError(f"--shards must be 1..16, got {shards}")
    validators = validators if validators is not None else 8 * shards
    if validators < shards:
        raise ConfigError(f"{validators} validators cannot staff {shards} shard committees")
    state = directory / "net.json"
    if state.exists():
        raise ConfigError(f"{state} exists: run `layerlab net down --dir {directory}` first")
    directory.mkdir(parents=True, exist_ok=True)
    timestamp = int(time.time())
    specs = []
    for k in range(shards):
        data_dir = directory / f"shard{k}"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "chain.json"
        config.write_text(json.dumps(shard_genesis(base_chain_id + k, timestamp, reserve_wei, gas_limit)))
        specs.append(ShardSpec(k, base_chain_id + k, free_port(), str(data_dir), str(config)))
    desc: dict[str, Any] = {"kind": "shards", "preset": preset, "validators": validators,
                            "blockTime": block_time, "verify": verify, "relay": relay,
                            "byzantine": byzantine, "shards": [], "coordinator": None}
    procs = []
    for spec in specs:
        db = str(Path(spec.data_dir) / "db")
        proc = spawn(["node", "--quiet", "--config", spec.config, "--data-dir", db, "--port",
                      str(spec.rpc_port), "--block-time", str(block_time)], spec.log_path)
        spec.pid = proc.pid
        procs.append(proc)
    desc["shards"] = [asdict(s) for s in specs]
    write_json_atomically(state, desc)  # recorded at once, so `down` can stop a failed start
    for spec, proc in zip(specs, procs, strict=True):
        wait_rpc(spec.url, proc, log_path=spec.log_path)
    desc["crossShardAddress"] = _deploy_cross_shard(specs, reserve_wei)
    log_path = directory / "coordinator.log"
    proc = spawn(["net", "coordinator", "--dir", str(directory)], log_path)
    desc["coordinator"] = proc.pid
    write_json_atomically(state, desc)
    wait_ready_file(directory / "beacon.json", proc, log_path=log_path)
    return desc


def load(directory: Path) -> dict[str, Any]:
    return read_description(directory / "net.json", "sharded network", "layerlab net up --shards S")


def status(directory: Path) -> dict[str, Any]:
    """Each shard's head (by RPC) beside its last and final crosslink (from the beacon)."""
    desc = load(directory)
    beacon_path = directory / "beacon.json"
    beacon: dict[str, Any] = json.loads(beacon_path.read_text()) if beacon_path.exists() else {}
    links = {s["shard"]: s for s in beacon.get("shards", [])}
    rows = []
    for s in desc["shards"]:
        spec = ShardSpec(**s)
        row: dict[str, Any] = {"shard": spec.index, "rpc": spec.url, "chainId": spec.chain_id}
        try:
            head = rpc_call(spec.url, "eth_getBlockByNumber", ["latest", False], timeout=5)
            row["head"] = {"number": int(head["number"], 16), "hash": head["hash"]}
        except (OSError, LayerlabError) as exc:
            row["error"] = str(exc)
        link = links.get(spec.index, {})
        row["crosslink"] = link.get("crosslink")
        row["final"] = link.get("final")
        rows.append(row)
    summary = {k: beacon.get(k) for k in ("slot", "epoch", "justified", "finalized", "validators", "slashed",
                                          "frauds", "relayed", "relayErrors", "refused")}
    return {"beacon": summary, "shards": rows, "crossShardAddress": desc.get("crossShardAddress")}


def down(directory: Path, timeout: float = 15) -> int:
    """Stop the coordinator, then every shard; returns how many processes were running."""
    desc = load(directory)
    pids = [desc["coordinator"]] if desc.get("coordinator") else []
    running = stop(pids, timeout)
    running += stop([s["pid"] for s in desc["shards"] if s.get("pid")], timeout)
    (directory / "net.json").unlink()
    (directory / "beacon.json").unlink(missing_ok=True)
    return running
