"""The beacon process of a sharded network: one slot at a time, it crosslinks every shard.

``layerlab net coordinator --dir D`` (started by ``layerlab net up --shards S``) reads
``D/net.json``, then every slot (``preset.slot_seconds``):

1. reads each shard's new blocks by JSON-RPC since its last crosslinked header (at most
   :data:`~.crosslink.MAX_HEADERS_PER_CROSSLINK` per slot) and, unless ``--no-verify``,
   re-executes them on a py-evm replica of the shard (``debug_getRawBlock``);
2. has each shard's committee of the slot's epoch sign those headers (BLS, aggregated);
3. as fisherman, checks every not-yet-final crosslinked header against the replica and
   turns a state root that re-execution does not give into a :class:`ShardFraudProof`;
4. proposes the beacon block with the crosslinks and fraud proofs
   (:meth:`BeaconChain.produce_block`, so pos.py's FFG finalizes as the slots go);
5. relays every newly finalized crosslink (shard, number, state root) to every other
   shard with ``crossshard.post_crosslink``, from one thread per destination shard;
6. writes ``D/beacon.json`` (heads, last and final crosslinks, slashings), which
   ``layerlab net status`` shows.

``--byzantine forge-state-root:K@N`` makes shard K's committee sign, once, a header of
block N or later whose state root is forged: the attack the fisherman step defeats.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from layerlab.errors import LayerlabError
from layerlab.l1.chain.config import load_config
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.pos import PRESETS
from layerlab.l1.sharding.chain import BeaconChain
from layerlab.l1.sharding.crosslink import (
    MAX_HEADERS_PER_CROSSLINK,
    ShardFraudProof,
    ShardHeader,
    get_final_header,
    get_latest_header,
)
from layerlab.l1.sharding.replay import ShardReplica
from layerlab.orchestration import read_description, rpc_call, write_json_atomically

__all__ = ["Coordinator", "header_from_rpc", "run"]

log = logging.getLogger(__name__)


def _b32(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def header_from_rpc(shard: int, block: dict[str, Any]) -> ShardHeader:
    return ShardHeader(shard, int(block["number"], 16), _b32(block["hash"]), _b32(block["parentHash"]),
                       _b32(block["stateRoot"]))


def _summary(header: ShardHeader, slot: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"number": header.number, "hash": "0x" + header.hash.hex(),
                           "stateRoot": "0x" + header.state_root.hex()}
    if slot is not None:
        out["slot"] = slot
    return out


@dataclass
class Forgery:
    """``forge-state-root:K@N``: shard K's committee signs a forged root once, at block >= N."""

    shard: int
    from_number: int
    done: bool = False

    @classmethod
    def parse(cls, text: str) -> Forgery | None:
        if not text:
            return None
        kind, _, arg = text.partition(":")
        shard, _, number = arg.partition("@")
        if kind != "forge-state-root" or not shard.isdigit():
            raise LayerlabError(f"--byzantine must be forge-state-root:K[@N], got {text!r}")
        return cls(int(shard), int(number) if number.isdigit() else 1)


@dataclass
class Coordinator:
    """The beacon chain plus its view of the shards (RPC URLs, replicas, relay threads)."""

    urls: list[str]
    beacon: BeaconChain
    replicas: list[ShardReplica] | None
    status_path: Path
    forgery: Forgery | None = None
    relay: bool = True
    genesis_time: float = field(default_factory=time.time)
    frauds: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    relayed: dict[int, dict[int, int]] = field(default_factory=dict)
    relay_errors: list[str] = field(default_factory=list)
    _raw: dict[tuple[int, bytes], tuple[int, bytes]] = field(default_factory=dict)
    """(shard, block hash) -> (number, RLP) of crosslinked blocks not final yet."""
    _relays: list[ThreadPoolExecutor] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._relays = [ThreadPoolExecutor(1, thread_name_prefix=f"relay{d}") for d in range(len(self.urls))]
        self._final = [get_final_header(self.beacon.state, s).number for s in range(len(self.urls))]

    @property
    def slot_seconds(self) -> float:
        return float(self.beacon.state.beacon.preset.slot_seconds)

    def current_slot(self) -> int:
        return int((time.time() - self.genesis_time) // self.slot_seconds) + 1

    # -- reading the shards ----------------------------------------------------------------
    def new_headers(self, shard: int) -> list[ShardHeader]:
        """The shard's blocks after its last crosslinked header (followed by the replica)."""
        latest = get_latest_header(self.beacon.state, shard)
        head = int(rpc_call(self.urls[shard], "eth_blockNumber"), 16)
        headers = []
        for number in range(latest.number + 1, min(head, latest.number + MAX_HEADERS_PER_CROSSLINK) + 1):
            block = rpc_call(self.urls[shard], "eth_getBlockByNumber", [hex(number), False])
            header = header_from_rpc(shard, block)
            if self.replicas is not None:
                replica = self.replicas[shard]
                raw = _b32(rpc_call(self.urls[shard], "debug_getRawBlock", [hex(number)]))
                if replica.number < number:
                    replica.follow(raw)
                self._raw[(shard, header.hash)] = (number, raw)
            headers.append(header)
        return headers

    def fraud_proofs(self) -> list[ShardFraudProof]:
        """Crosslinked, not yet final headers whose re-execution gives another state root."""
        if self.replicas is None:
            return []
        proofs = []
        for shard, record in enumerate(self.beacon.state.shards):
            for link in record.links[record.final_count:]:
                for header in link.crosslink.headers:
                    computed = self.replicas[shard].evm.get_header_by_hash(header.hash)
                    kept = self._raw.get((shard, header.hash))
                    if computed is None or kept is None:
                        continue
                    if bytes(computed.state_root) != header.state_root:
                        proofs.append(ShardFraudProof(header, kept[1]))
                        break
        return proofs

    def replay(self, proof: ShardFraudProof) -> bytes:
        if self.replicas is None:
            raise LayerlabError("fraud proofs need shard replicas (--verify)")
        return self.replicas[proof.header.shard].replay(proof)

    # -- one slot --------------------------------------------------------------------------
    def step(self, slot: int) -> None:
        crosslinks = []
        for shard in range(len(self.urls)):
            try:
                headers = self.new_headers(shard)
            except (OSError, LayerlabError) as exc:
                log.warning("shard %d unreadable at slot %d: %s", shard, slot, exc)
                continue
            if not headers:
                continue
            forgery = self.forgery
            if forgery and not forgery.done and forgery.shard == shard \
                    and headers[-1].number >= forgery.from_number:
                forged = hashlib.sha256(b"forged state root" + headers[-1].hash).digest()
                headers[-1] = replace(headers[-1], state_root=forged)
                forgery.done = True
                log.warning("byzantine: shard %d committee signs a forged root for block #%d",
                            shard, headers[-1].number)
            crosslinks.append(self.beacon.sign_crosslink(shard, headers, slot))
        proofs = self.fraud_proofs()
        slashed_before = {i for i, v in enumerate(self.beacon.state.beacon.validators) if v.slashed}
        result = self.beacon.produce_block(slot, crosslinks if not proofs else [], proofs, replay=self.replay)
        if result.block is None:
            return
        for proof in proofs:
            self.frauds.append({"slot": slot, "shard": proof.header.shard, "number": proof.header.number,
                                "forgedStateRoot": "0x" + proof.header.state_root.hex()})
        slashed = sorted(i for i, v in enumerate(self.beacon.state.beacon.validators)
                         if v.slashed and i not in slashed_before)
        if slashed:
            self.frauds[-1]["slashed"] = slashed
            log.warning("slot %d: fraud proven, validators %s slashed", slot, slashed)
        for link, check in result.refused:
            self.refused.append({"slot": slot, "shard": link.shard, "check": check})
        self._relay_finalized()
        self._forget_final_blocks()

    def _forget_final_blocks(self) -> None:
        """Raw blocks are kept for fraud proofs only until their crosslink is final."""
        final = {s: get_final_header(self.beacon.state, s).number for s in range(len(self.urls))}
        for key in [k for k, (number, _) in self._raw.items() if number <= final[k[0]]]:
            del self._raw[key]

    def _relay_finalized(self) -> None:
        for source in range(len(self.urls)):
            final = get_final_header(self.beacon.state, source)
            if final.number <= self._final[source]:
                continue
            self._final[source] = final.number
            if not self.relay:
                continue
            for dest in range(len(self.urls)):
                if dest != source:
                    self._relays[dest].submit(self._post, dest, source, final)

    def _post(self, dest: int, source: int, header: ShardHeader) -> None:
        try:
            from web3 import Web3

            from layerlab.l1.sharding import crossshard

            w3 = Web3(Web3.HTTPProvider(self.urls[dest], request_kwargs={"timeout": 30}))
            crossshard.post_crosslink(w3, source, header.number, header.state_root)
        except Exception as exc:  # a relay failure is reported, never fatal to the beacon
            with self._lock:
                self.relay_errors.append(f"to shard {dest}: {type(exc).__name__}: {exc}"[:300])
            return
        with self._lock:
            self.relayed.setdefault(dest, {})[source] = header.number

    # -- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        state = self.beacon.state
        beacon = state.beacon
        shards = []
        for shard, record in enumerate(state.shards):
            last = record.links[-1] if record.links else None
            final = record.links[record.final_count - 1] if record.final_count else None
            shards.append({
                "shard": shard,
                "crosslink": _summary(last.crosslink.tip, last.slot) if last else None,
                "final": _summary(final.crosslink.tip, final.slot) if final else None,
                "crosslinks": len(record.links),
            })
        with self._lock:
            relayed = {str(d): {str(s): n for s, n in v.items()} for d, v in self.relayed.items()}
            errors = list(self.relay_errors[-5:])
        return {
            "slot": beacon.slot, "epoch": pos.get_current_epoch(beacon),
            "slotSeconds": self.slot_seconds, "genesisTime": self.genesis_time,
            "justified": {"epoch": beacon.current_justified.epoch},
            "finalized": {"epoch": beacon.finalized.epoch},
            "validators": len(beacon.validators),
            "slashed": [i for i, v in enumerate(beacon.validators) if v.slashed],
            "shards": shards, "frauds": self.frauds, "refused": self.refused[-20:],
            "relayed": relayed, "relayErrors": errors, "updated": time.time(),
        }

    def run(self, stop: threading.Event) -> None:
        next_slot = self.current_slot()
        while not stop.is_set():
            slot = self.current_slot()
            if slot >= next_slot:
                try:
                    self.step(slot)
                except (LayerlabError, OSError, ValueError, KeyError):  # a bad shard answer
                    log.exception("slot %d failed", slot)  # costs a slot, not the beacon
                write_json_atomically(self.status_path, self.status())
                next_slot = slot + 1
            stop.wait(max(0.0, self.genesis_time + (next_slot - 1) * self.slot_seconds - time.time()))
        for executor in self._relays:
            executor.shutdown(wait=False, cancel_futures=True)


def build(directory: Path) -> Coordinator:
    """The coordinator of the sharded network described in ``directory/net.json``."""
    desc = read_description(directory / "net.json", "sharded network", "layerlab net up --shards S")
    shards = desc["shards"]
    preset = PRESETS[desc.get("preset", "minimal")]
    verify = bool(desc.get("verify", True))
    replicas = [ShardReplica(s["index"], load_config(Path(s["config"]))) for s in shards] if verify else None
    urls = [f"http://127.0.0.1:{s['rpc_port']}" for s in shards]
    genesis = [header_from_rpc(s["index"], rpc_call(url, "eth_getBlockByNumber", ["0x0", False]))
               for s, url in zip(shards, urls, strict=True)]
    if replicas is not None:
        for replica, header in zip(replicas, genesis, strict=True):
            if replica.genesis != header:
                raise LayerlabError(f"shard {header.shard}: replica genesis {replica.genesis.hash.hex()} "
                                    f"differs from the node's {header.hash.hex()}")
    beacon = BeaconChain(int(desc["validators"]), genesis, preset=preset)
    return Coordinator(urls, beacon, replicas, directory / "beacon.json",
                       forgery=Forgery.parse(desc.get("byzantine", "")), relay=bool(desc.get("relay", True)))


def run(directory: Path) -> None:
    """``layerlab net coordinator``: run until SIGTERM or SIGINT."""
    coordinator = build(directory)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    write_json_atomically(coordinator.status_path, coordinator.status())
    with contextlib.suppress(KeyboardInterrupt):
        coordinator.run(stop)
