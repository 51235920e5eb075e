"""Running a networked node: the RPC server plus the p2p service and block production.

``layerlab node --consensus pow --p2p-port P --peers 127.0.0.1:Q --mine`` runs this. The
node, its engine, the network service and the producer share one asyncio loop (one
thread), so the node's single-threaded state is never touched concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from layerlab.errors import ConfigError
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.consensus.engine import ConsensusEngine
from layerlab.l1.consensus.pow import PRESETS as POW_PRESETS
from layerlab.l1.consensus.pow import PowEngine
from layerlab.l1.node import Node
from layerlab.l1.p2p.service import NetworkService
from layerlab.l1.producer import PowMiner
from layerlab.l1.rpc.server import RpcServer
from layerlab.l1.runner import serve, tune_gc
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


def engine_factory(config: ChainConfig) -> Callable[[ChainDB, EvmChain], ConsensusEngine]:
    c = config.consensus
    if c.engine == "pow":
        params = POW_PRESETS[c.preset]

        def make_pow(db: ChainDB, chain: EvmChain) -> ConsensusEngine:
            genesis = chain.get_header_by_number(0)
            assert genesis is not None
            return PowEngine(db, params, genesis)

        return make_pow
    raise ConfigError(f"consensus engine {c.engine!r} cannot run on a network node yet")


def make_node(config: ChainConfig, data_dir: Path | None) -> Node:
    return Node(config, data_dir=data_dir, engine_factory=engine_factory(config))


def serve_network(node: Node, host: str, port: int, opts: NetOptions,
                  on_ready: Callable[[RpcServer], None] | None = None) -> None:
    """Serve RPC, p2p and production until SIGINT/SIGTERM; then close the database."""
    tune_gc()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        network = NetworkService(node, host, opts.p2p_port, static_peers=opts.peers)
        node.network = network
        await network.start()
        producer: PowMiner | None = None
        engine = node.engine
        if opts.mine and isinstance(engine, PowEngine):
            producer = PowMiner(node, lambda: engine, opts.coinbase, duty=opts.duty,
                                on_block=lambda b: network.broadcast_block(b, b""))
            node.producer = producer
            await producer.start()
        try:
            await serve(node, host, port, stop=stop, on_ready=on_ready)
        finally:
            if producer:
                await producer.stop()
            await network.stop()

    try:
        asyncio.run(main())
    finally:
        node.close()
