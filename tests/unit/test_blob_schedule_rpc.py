"""The node's blob figures follow the fork schedule, not Cancun's constants.

``eth_blobBaseFee``, ``eth_feeHistory``'s blob columns, a receipt's ``blobGasPrice`` and
the pool's per-block blob limit, on devnets whose genesis carries an excess blob gas, for
Cancun (EIP-4844: target 3, max 6, fraction 3,338,477), Prague (EIP-7691: target 6, max 9,
fraction 5,007,716) and Osaka (Prague's figures with EIP-7918's bound by execution cost).
The expected fees come from EIP-4844's ``fake_exponential``
(:func:`tests.unit.test_rpc_blob_fee.fake_exponential`).
"""

from __future__ import annotations

import ckzg
import pytest
import rlp
from eth_account import Account

from layerlab.l1 import blobs
from layerlab.l1.chain.config import ChainConfig, GenesisHeader
from layerlab.l1.chain.forks import ForkSchedule
from layerlab.l1.node import MiningMode, Node
from layerlab.l1.rpc.methods import RpcApi
from tests.unit.test_rpc_blob_fee import fake_exponential

GAS_PER_BLOB = 2**17
EXCESS = 10_000_000
FIGURES = {  # fork: (target blobs, max blobs, update fraction), as the EIPs state them
    "cancun": (3, 6, 3_338_477),
    "prague": (6, 9, 5_007_716),
    "osaka": (6, 9, 5_007_716),
}


def make_node(fork: str, excess: int = EXCESS) -> tuple[Node, dict[str, object]]:
    config = ChainConfig(forks=ForkSchedule.from_genesis(fork),
                         header=GenesisHeader(excess_blob_gas=excess))
    node = Node(config, mining=MiningMode.MANUAL)
    return node, RpcApi(node).methods  # type: ignore[return-value]


@pytest.mark.parametrize("fork", ["cancun", "prague", "osaka"])
def test_blob_base_fee_and_fee_history_use_the_forks_figures(fork: str) -> None:
    target, _, fraction = FIGURES[fork]
    node, m = make_node(fork)
    try:
        assert int(m["eth_blobBaseFee"](), 16) == fake_exponential(1, EXCESS, fraction)  # type: ignore[operator]
        history = m["eth_feeHistory"]("0x1", "latest")  # type: ignore[operator]
        if fork == "osaka":
            # EIP-7918: blobs cheaper than BLOB_BASE_COST (2^13) gas of execution each keep
            # the excess (plus used * (max - target) / max, here 0)
            assert 2**13 * node.head.base_fee_per_gas > GAS_PER_BLOB * fake_exponential(
                1, EXCESS, fraction)
            child_excess = EXCESS
        else:
            child_excess = EXCESS - target * GAS_PER_BLOB
        assert [int(f, 16) for f in history["baseFeePerBlobGas"]] == [
            fake_exponential(1, EXCESS, fraction), fake_exponential(1, child_excess, fraction)]
        assert history["blobGasUsedRatio"] == [0.0]
        assert node.next_blob_base_fee() == fake_exponential(1, child_excess, fraction)
        raw = _blob_tx(node.config.dev_accounts[0].private_key, 0, 1, node.config.chain_id,
                       cell_proofs=fork == "osaka")
        tx_hash = m["eth_sendRawTransaction"]("0x" + raw.hex())  # type: ignore[operator]
        mined = node.mine()
        assert int(mined.block.header.excess_blob_gas) == child_excess
        receipt = m["eth_getTransactionReceipt"](tx_hash)  # type: ignore[operator]
        assert int(receipt["blobGasPrice"], 16) == fake_exponential(1, child_excess, fraction)
        assert int(m["eth_blobBaseFee"](), 16) == fake_exponential(1, child_excess, fraction)  # type: ignore[operator]
    finally:
        node.close()


def _blob_tx(key: bytes, nonce: int, count: int, chain_id: int, cell_proofs: bool = False) -> bytes:
    """A blob transaction in network form: blob proofs (EIP-4844) or cell proofs (EIP-7594)."""
    blob = b"".join(b"\x00" + bytes([i % 256]) * 31 for i in range(4096))
    setup = blobs.get_trusted_setup()
    commitment = bytes(ckzg.blob_to_kzg_commitment(blob, setup))
    proof = bytes(ckzg.compute_blob_kzg_proof(blob, commitment, setup))
    vhash = blobs.kzg_to_versioned_hash(blobs.KzgCommitment(commitment))
    signed = Account.sign_transaction({
        "type": 3, "chainId": chain_id, "nonce": nonce, "to": "0x" + "22" * 20, "value": 0,
        "gas": 21_000, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9,
        "maxFeePerBlobGas": 10**6, "blobVersionedHashes": ["0x" + vhash.hex()] * count}, key)
    body = rlp.decode(bytes(signed.raw_transaction)[1:])
    if cell_proofs:
        cells = [bytes(p) for p in ckzg.compute_cells_and_kzg_proofs(blob, setup)[1]]
        return b"\x03" + rlp.encode([body, 1, [blob] * count, [commitment] * count, cells * count])
    return b"\x03" + rlp.encode([body, [blob] * count, [commitment] * count, [proof] * count])


@pytest.mark.parametrize("fork", ["cancun", "prague"])
def test_blocks_take_as_many_blobs_as_the_fork_allows(fork: str) -> None:
    _, max_blobs, fraction = FIGURES[fork]
    node, m = make_node(fork, excess=0)
    try:
        keys = [a.private_key for a in node.config.dev_accounts[:2]]
        for key in keys:  # 4 + 4 blobs: one block under Cancun's 6, both under Prague's 9
            m["eth_sendRawTransaction"]("0x" + _blob_tx(key, 0, 4, node.config.chain_id).hex())  # type: ignore[operator]
        mined = node.mine()
        used = int(mined.block.header.blob_gas_used)
        assert used == GAS_PER_BLOB * (8 if max_blobs >= 8 else 4)
        tx_hash = "0x" + bytes(mined.block.transactions[0].hash).hex()
        receipt = m["eth_getTransactionReceipt"](tx_hash)  # type: ignore[operator]
        assert int(receipt["blobGasPrice"], 16) == fake_exponential(1, 0, fraction) == 1
        ratio = m["eth_feeHistory"]("0x1", "latest")["blobGasUsedRatio"]  # type: ignore[operator]
        assert ratio == [used / (GAS_PER_BLOB * max_blobs)]
    finally:
        node.close()
