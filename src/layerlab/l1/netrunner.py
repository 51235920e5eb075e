"""Running a networked node: the RPC server plus the p2p service and block production.

``layerlab node --config chain.json --p2p-port P --peers 127.0.0.1:Q [--mine]
[--validators 0,1]`` runs this; the consensus (pow, pos or merge) comes from the chain
config, which every node of a network shares (``layerlab net up`` writes it). The
node, its engine, the network service and the producer share one asyncio loop (one
thread), so the node's single-threaded state is never touched concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from layerlab.errors import ConfigError, ConsensusError
from layerlab.l1.chain.config import ChainConfig, GenesisAccount
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.consensus.beacon import (
    PosEngine,
    decode_attestation,
    decode_slashing,
    encode_slashing,
)
from layerlab.l1.consensus.engine import ConsensusEngine
from layerlab.l1.consensus.merge import MergeEngine, make_engine, pos_of, pow_of
from layerlab.l1.consensus.pow import PowEngine
from layerlab.l1.consensus.staking import STAKING_ADDRESS, staking_runtime_code
from layerlab.l1.node import Node
from layerlab.l1.p2p import wire
from layerlab.l1.p2p.service import NetworkService, Peer
from layerlab.l1.producer import PosValidator, PowMiner
from layerlab.l1.rpc.server import RpcServer
from layerlab.l1.runner import run_until_signal, serve
from layerlab.l1.storage import ChainDB

log = logging.getLogger(__name__)


@dataclass
class NetOptions:
    p2p_port: int
    peers: list[tuple[str, int]] = field(default_factory=list)
    mine: bool = False
    coinbase: bytes = b"\x00" * 20
    duty: float = 1.0
    validator_indices: list[int] = field(default_factory=list)
    byzantine: list[str] = field(default_factory=list)


@dataclass
class _Producers:
    """What ``layerlab_status`` reports about this node's block production."""

    items: list[PowMiner | PosValidator]

    def status(self) -> dict[str, object]:
        return {str(p.status()["role"]): p.status() for p in self.items}


def engine_factory(config: ChainConfig) -> Callable[[ChainDB, EvmChain], ConsensusEngine]:
    if config.consensus.engine not in ("pow", "pos", "merge"):
        raise ConfigError(f"consensus engine {config.consensus.engine!r} cannot run on a network node")
    return lambda db, chain: make_engine(config, db, chain)


def with_staking_contract(config: ChainConfig) -> ChainConfig:
    """PoS and merge chains hold the staking contract at a fixed address from genesis
    (as EIP-7002's system contracts are predeployed), so every node's genesis is the same."""
    if config.consensus.engine not in ("pos", "merge") or STAKING_ADDRESS in config.alloc:
        return config
    return replace(
        config, alloc={**config.alloc, STAKING_ADDRESS: GenesisAccount(code=staking_runtime_code())}
    )


def make_node(config: ChainConfig, data_dir: Path | None) -> Node:
    config = with_staking_contract(config)
    return Node(config, data_dir=data_dir, engine_factory=engine_factory(config))


def consensus_handler(node: Node, network: NetworkService) -> Callable[[int, bytes, Peer], None]:
    """Gossiped attestations and slashing evidence go to the active PoS engine."""

    def handle(msg_id: int, data: bytes, peer: Peer) -> None:
        engine = pos_of(node.engine)
        if engine is None:
            raise ConsensusError("no proof-of-stake chain here yet")
        if msg_id == wire.ATTESTATION:
            for evidence in engine.on_attestation(decode_attestation(data)):
                network.broadcast_vote(wire.SLASHING, encode_slashing(evidence))
        else:
            engine.on_slashing(decode_slashing(data))
        node.refresh_head()  # votes move LMD-GHOST

    return handle


def serve_network(
    node: Node, host: str, port: int, opts: NetOptions, on_ready: Callable[[RpcServer], None] | None = None
) -> None:
    """Serve RPC, p2p and production until SIGINT/SIGTERM; then close the database."""

    async def main(stop: asyncio.Event) -> None:
        network = NetworkService(node, host, opts.p2p_port, static_peers=opts.peers)
        network.on_consensus = consensus_handler(node, network)
        node.attach(network=network)
        await network.start()
        producers: list[PowMiner | PosValidator] = []
        engine = node.engine
        if opts.mine and isinstance(engine, PowEngine | MergeEngine):
            producers.append(
                PowMiner(
                    node,
                    lambda: pow_of(engine),
                    opts.coinbase,
                    duty=opts.duty,
                    on_block=lambda b: network.broadcast_block(b, b""),
                )
            )
        if opts.validator_indices and isinstance(engine, PosEngine | MergeEngine):
            producers.append(
                PosValidator(
                    node,
                    lambda: pos_of(engine),
                    opts.validator_indices,
                    coinbase=opts.coinbase,
                    publish_block=lambda b, body: network.broadcast_block(b, body),
                    publish_vote=network.broadcast_vote,
                    byzantine=opts.byzantine,
                )
            )
        node.attach(producer=_Producers(producers))
        for producer in producers:
            await producer.start()
        try:
            await serve(node, host, port, stop=stop, on_ready=on_ready)
        finally:
            for producer in producers:
                await producer.stop()
            await network.stop()

    run_until_signal(node, main)
