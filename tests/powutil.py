"""In-process proof-of-work nodes for tests: same genesis, blocks sealed synchronously."""

from __future__ import annotations

from eth.abc import BlockAPI
from eth_account import Account

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l1.chain.config import ChainConfig, ConsensusConfig
from layerlab.l1.consensus.pow import PowEngine, Sealer
from layerlab.l1.launcher import engine_factory
from layerlab.l1.node import Node

DEV = derive_dev_accounts()
GENESIS_TS = 1_700_000_000
CONFIG = ChainConfig(genesis_timestamp=GENESIS_TS, consensus=ConsensusConfig(engine="pow"))


def pow_node() -> Node:
    return Node(CONFIG, data_dir=None, engine_factory=engine_factory(CONFIG))


def engine(node: Node) -> PowEngine:
    assert isinstance(node.engine, PowEngine)
    return node.engine


def seal(node: Node, block: BlockAPI, difficulty: int) -> BlockAPI:
    sealer = Sealer(block.header, difficulty)
    while True:
        header = sealer.search(20_000)
        if header is not None:
            return block.copy(header=header)


def mine(node: Node, *, gap: int = 2, coinbase: bytes = b"\x01" * 20) -> BlockAPI:
    """Mine one block on ``node``'s head from its pool, ``gap`` seconds after the parent."""
    parent = node.head
    ts = parent.timestamp + gap
    block, receipts = node.build_template(timestamp=ts, coinbase=coinbase)
    eng = engine(node)
    sealed = seal(node, block, eng.difficulty_for(parent, ts))
    node.commit_local(sealed, b"", receipts)
    return sealed


def transfer(sender: int, to: bytes, value: int, nonce: int, tip: int = 10**9) -> bytes:
    tx = {"chainId": CONFIG.chain_id, "nonce": nonce, "to": "0x" + to.hex(), "value": value,
          "gas": 21_000, "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": tip, "type": 2}
    return bytes(Account.sign_transaction(tx, DEV[sender].private_key).raw_transaction)


def share(src: Node, dst: Node) -> int:
    """Give ``dst`` every canonical block of ``src`` it lacks (as sync would); count them."""
    n = 0
    for number in range(1, src.head.block_number + 1):
        header = src.chain.get_header_by_number(number)
        assert header is not None
        if not dst.has_block(header.hash):
            dst.import_block(src.chain.get_block(header), b"", now=float(header.timestamp))
            n += 1
    return n
