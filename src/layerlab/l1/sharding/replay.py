"""Re-executing shard blocks with py-evm: the verifier side of shard fraud proofs.

A :class:`ShardReplica` is an in-memory py-evm chain from a shard's own genesis config,
which follows the shard by importing its blocks (``debug_getRawBlock``; py-evm re-executes
and checks each one). :meth:`ShardReplica.replay` is the
:data:`~layerlab.l1.sharding.crosslink.Replay` of a fraud proof: it checks that the
proof's block is the crosslinked header's block (hash, parent, number), executes its
transactions on the parent's state (py-evm ``VM.import_block``, without the final
"header unchanged" check nor storing anything) and returns the state root it computes.
"""

from __future__ import annotations

from layerlab.errors import InvalidBlock
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.consensus.types import Root
from layerlab.l1.sharding.crosslink import ShardFraudProof, ShardHeader
from layerlab.l1.storage import MemoryDB

__all__ = ["ShardReplica", "header_of"]


def header_of(shard: int, header: object) -> ShardHeader:
    """The beacon's summary of a py-evm header."""
    return ShardHeader(shard, int(header.block_number), bytes(header.hash),  # type: ignore[attr-defined]
                       bytes(header.parent_hash), bytes(header.state_root))  # type: ignore[attr-defined]


class ShardReplica:
    """A shard's chain re-executed here, from the same genesis (the config must fix the
    genesis timestamp, as the shard's ``chain.json`` does)."""

    def __init__(self, shard: int, config: ChainConfig) -> None:
        self.shard = shard
        self.evm = EvmChain(config, MemoryDB())

    @property
    def genesis(self) -> ShardHeader:
        return header_of(self.shard, self.evm.genesis_header)

    @property
    def number(self) -> int:
        return int(self.evm.head.block_number)

    def follow(self, raw_block: bytes) -> ShardHeader:
        """Import the shard's next block (py-evm validates it); returns its header."""
        block = self.evm.decode_block(raw_block)
        self.evm.import_block(block)
        self.evm.set_head(bytes(block.hash))
        return header_of(self.shard, block.header)

    def replay(self, proof: ShardFraudProof) -> Root:
        block = self.evm.decode_block(proof.block)
        claimed = proof.header
        if (bytes(block.hash), bytes(block.header.parent_hash), int(block.number)) != \
                (claimed.hash, claimed.parent_hash, claimed.number):
            raise InvalidBlock(
                f"block {bytes(block.hash).hex()[:16]} #{block.number} is not the crosslinked shard "
                f"{claimed.shard} block {claimed.hash.hex()[:16]} #{claimed.number}")
        parent = self.evm.get_header_by_hash(bytes(block.header.parent_hash))
        if parent is None:
            raise InvalidBlock(f"parent of shard {claimed.shard} block #{claimed.number} is not known here")
        chain = self.evm.chain
        base = chain.create_header_from_parent(parent, timestamp=int(block.header.timestamp))
        vm = chain.get_vm(base.copy(gas_used=block.header.gas_used))
        return bytes(vm.import_block(block).block.header.state_root)
