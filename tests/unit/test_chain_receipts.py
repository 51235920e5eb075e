"""``EvmChain.get_receipts``: recent blocks' receipts kept decoded, the same as the trie's."""

from __future__ import annotations

import pytest
import rlp
from eth_account import Account

from layerlab.l1.chain import evm
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.storage import open_db


def test_receipts_are_the_tries_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evm, "RECENT_BLOCKS", 3)
    config = ChainConfig(genesis_timestamp=1_700_000_000)
    a0, a1 = config.dev_accounts[:2]
    chain = EvmChain(config, open_db(None))
    mined = []
    for n in range(6):
        raws = [bytes(Account.sign_transaction(
            {"chainId": 31337, "nonce": 3 * n + i, "to": a1.address, "value": 1 + i,
             "gas": 21_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9},
            a0.private_key).raw_transaction) for i in range(3)]
        mined.append(chain.mine([chain.tx_builder.decode(r) for r in raws],
                                timestamp=1_700_000_012 + 12 * n))
    for block in mined:
        first = chain.get_receipts(block.block.header)
        again = chain.get_receipts(block.block.header)
        assert [rlp.encode(r) for r in first] == [rlp.encode(r) for r in block.receipts]
        assert [rlp.encode(r) for r in again] == [rlp.encode(r) for r in block.receipts]
        assert [r.gas_used for r in first] == [21_000, 42_000, 63_000]  # cumulative
    assert len(chain._receipts) == 3
