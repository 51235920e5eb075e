"""geth's genesis format and the fork schedule: published genesis hashes, Frontier to Osaka
and its BPO forks in one chain, refused fork keys, and ``alloc`` in the genesis state."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from eth.vm.forks import (
    BerlinVM,
    ByzantiumVM,
    CancunVM,
    ConstantinopleVM,
    FrontierVM,
    HomesteadVM,
    IstanbulVM,
    LondonVM,
    ParisVM,
    PetersburgVM,
    PragueVM,
    ShanghaiVM,
    SpuriousDragonVM,
    TangerineWhistleVM,
)
from eth_account import Account
from eth_utils import to_checksum_address

from layerlab.errors import ConfigError, UnknownConfigKey, UnsupportedFork
from layerlab.l1.chain.config import parse_config
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.chain.genesis import parse_geth_genesis
from layerlab.l1.chain.osaka import BlobSchedule, OsakaVM
from layerlab.l1.storage import open_db

DATA = Path(__file__).parents[3] / "data" / "genesis"

# The genesis hashes each network publishes (and geth's params/config.go lists).
PUBLISHED = {
    "mainnet": "0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3",
    "sepolia": "0x25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9",
    "holesky": "0xb5f7f912443c940f21fd611f12828d75b534364ed9e95ca4e307729a4661bde4",
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress((DATA / f"{name}.json.gz").read_bytes()))
    return data


@pytest.mark.parametrize("name", ["sepolia", "holesky"])
def test_testnet_genesis_files_give_their_published_hashes(name: str) -> None:
    chain = EvmChain(parse_config(_load(name)), open_db(None))
    assert "0x" + chain.genesis_hash.hex() == PUBLISHED[name]
    assert chain.config.forks.last.name == "bpo2"  # their whole schedule through BPO2 is run


def test_mainnet_genesis_gives_its_published_hash() -> None:
    data = _load("mainnet")
    with pytest.raises(UnsupportedFork) as refused:  # the DAO fork's state change
        parse_config(data)
    assert refused.value.key == "daoForkBlock"
    config = parse_geth_genesis(data, genesis_only=True)
    assert config.forks.last.name == "frontier"
    assert "0x" + EvmChain(config, open_db(None)).genesis_hash.hex() == PUBLISHED["mainnet"]


# -- a schedule from Frontier to BPO2 in 16 blocks ----------------------------------------
T0 = 1_000_000
FUNDED = Account.from_key(b"\x11" * 32)
RECIPIENT = to_checksum_address("0x" + "ab" * 20)
BPO1 = {"target": 7, "max": 11, "baseFeeUpdateFraction": 6_000_000}
BPO2 = {"target": 8, "max": 12, "baseFeeUpdateFraction": 7_000_000}
EXPECTED_VMS = [  # block number -> py-evm VM (or ours) that must execute it
    FrontierVM, HomesteadVM, TangerineWhistleVM, SpuriousDragonVM, ByzantiumVM,
    ConstantinopleVM, PetersburgVM, IstanbulVM, BerlinVM, LondonVM, LondonVM, ParisVM,
    ShanghaiVM, CancunVM, PragueVM, OsakaVM, OsakaVM, OsakaVM,
]


def frontier_to_osaka_genesis(chain_id: int = 4242) -> dict[str, Any]:
    """Block n has timestamp T0 + 10 n; forks start at blocks 1..11, then every 10 s."""
    return {
        "config": {
            "chainId": chain_id, "homesteadBlock": 1, "eip150Block": 2, "eip155Block": 3,
            "eip158Block": 3, "byzantiumBlock": 4, "constantinopleBlock": 5, "petersburgBlock": 6,
            "istanbulBlock": 7, "muirGlacierBlock": 7, "berlinBlock": 8, "londonBlock": 9,
            "arrowGlacierBlock": 10, "grayGlacierBlock": 10,
            "terminalTotalDifficulty": 10**30, "mergeNetsplitBlock": 11,
            "shanghaiTime": T0 + 120, "cancunTime": T0 + 130, "pragueTime": T0 + 140,
            "osakaTime": T0 + 150, "bpo1Time": T0 + 160, "bpo2Time": T0 + 170,
            "depositContractAddress": "0x00000000219ab540356cbb839cbe05303d7705fa",
            "blobSchedule": {
                "cancun": {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477},
                "prague": {"target": 6, "max": 9, "baseFeeUpdateFraction": 5007716},
                "osaka": {"target": 6, "max": 9, "baseFeeUpdateFraction": 5007716},
                "bpo1": BPO1, "bpo2": BPO2,
            },
        },
        "nonce": "0x42", "timestamp": hex(T0), "extraData": "0x" + b"genesis".hex(),
        "gasLimit": "0x1c9c380", "difficulty": "0x20000", "coinbase": "0x" + "00" * 20,
        "mixHash": "0x" + "00" * 32,
        "alloc": {
            FUNDED.address: {"balance": hex(10**24)},
            # PUSH1 0 SLOAD PUSH1 1 ADD PUSH1 0 SSTORE STOP: adds one to slot 0
            "cc" * 20: {"balance": "7", "nonce": "0x3", "code": "0x6000546001016000" + "5500",
                        "storage": {"0x00": "0x05", "0x" + "ff" * 32: "0x" + "12" * 32}},
        },
    }


def test_schedule_picks_each_blocks_vm() -> None:
    schedule = parse_config(frontier_to_osaka_genesis()).forks
    names = [schedule.fork_at(n, T0 + 10 * n).name for n in range(18)]
    assert names == ["frontier", "homestead", "tangerineWhistle", "spuriousDragon", "byzantium",
                     "constantinople", "petersburg", "muirGlacier", "berlin", "london",
                     "grayGlacier", "paris", "shanghai", "cancun", "prague", "osaka", "bpo1", "bpo2"]
    for n, expected in enumerate(EXPECTED_VMS):
        assert issubclass(schedule.fork_at(n, T0 + 10 * n).vm_class, expected), n
    bpo1 = schedule.fork_at(16, T0 + 160).vm_class
    bpo2 = schedule.fork_at(17, T0 + 170).vm_class
    assert bpo1.blob_schedule == BlobSchedule(7, 11, 6_000_000)  # type: ignore[attr-defined]
    assert bpo2.blob_schedule == BlobSchedule(8, 12, 7_000_000)  # type: ignore[attr-defined]
    assert issubclass(bpo2, bpo1)
    # a timestamp fork waits for its time, whatever the number
    assert schedule.fork_at(100, T0 + 119).name == "paris"


def _transfer(chain: EvmChain, nonce: int, number: int) -> Any:
    tx: dict[str, Any] = {"nonce": nonce, "to": RECIPIENT, "value": 1000 + number, "gas": 21_000}
    if number >= 3:  # EIP-155 from Spurious Dragon
        tx["chainId"] = chain.config.chain_id
    if number >= 9:  # EIP-1559 from London
        tx.update(maxFeePerGas=10**11, maxPriorityFeePerGas=10**9)
    elif number >= 8:  # EIP-2930 from Berlin
        tx.update(gasPrice=10**10, accessList=[])
    else:
        tx["gasPrice"] = 10**10
    raw = Account.sign_transaction(tx, FUNDED.key).raw_transaction
    return chain.tx_builder.decode(bytes(raw))


def test_one_chain_mines_across_every_fork() -> None:
    chain = EvmChain(parse_config(frontier_to_osaka_genesis()), open_db(None))
    for number in range(1, 18):
        mined = chain.mine([_transfer(chain, number - 1, number)], timestamp=T0 + 10 * number)
        header = mined.block.header
        assert issubclass(chain.get_vm_class(header), EXPECTED_VMS[number])
        assert mined.receipts[0].gas_used == 21_000
        assert hasattr(header, "base_fee_per_gas") == (number >= 9)
        assert hasattr(header, "withdrawals_root") == (number >= 12)
        assert hasattr(header, "blob_gas_used") == (number >= 13)
        assert hasattr(header, "requests_hash") == (number >= 14)
        assert (header.difficulty == 0) == (number >= 11)
    state = chain.get_state()
    assert state.get_balance(bytes.fromhex(RECIPIENT[2:])) == sum(1000 + n for n in range(1, 18))
    assert state.get_nonce(bytes.fromhex(FUNDED.address[2:])) == 17


def test_alloc_code_storage_nonce_and_balance_are_in_the_state() -> None:
    chain = EvmChain(parse_config(frontier_to_osaka_genesis()), open_db(None))
    state = chain.get_state(chain.genesis_header)
    contract = b"\xcc" * 20
    assert state.get_code(contract) == bytes.fromhex("60005460010160005500")
    assert state.get_nonce(contract) == 3
    assert state.get_balance(contract) == 7
    assert state.get_storage(contract, 0) == 5
    assert state.get_storage(contract, 2**256 - 1) == int("12" * 32, 16)
    assert state.get_balance(bytes.fromhex(FUNDED.address[2:])) == 10**24
    genesis = chain.genesis_header
    assert genesis.extra_data == b"genesis" and genesis.nonce == (0x42).to_bytes(8, "big")
    assert genesis.difficulty == 0x20000 and genesis.gas_limit == 30_000_000
    assert genesis.timestamp == T0 and chain.config.chain_id == 4242
    # the code runs: a call adds one to slot 0 (executed under Frontier, block 1)
    call = {"nonce": 0, "to": to_checksum_address("0x" + "cc" * 20), "value": 0, "gas": 100_000,
            "gasPrice": 10**10}
    tx = Account.sign_transaction(call, FUNDED.key).raw_transaction
    chain.mine([chain.tx_builder.decode(bytes(tx))], timestamp=T0 + 10)
    assert chain.get_state().get_storage(contract, 0) == 6


@pytest.mark.parametrize("key", ["amsterdamTime", "verkleTime"])
def test_a_fork_the_node_lacks_is_refused_by_name(key: str) -> None:
    data = frontier_to_osaka_genesis()
    data["config"][key] = T0 + 200
    with pytest.raises(UnsupportedFork, match=key) as refused:
        parse_config(data)
    assert refused.value.key == key


def test_unknown_keys_are_refused_by_name() -> None:
    data = frontier_to_osaka_genesis()
    data["config"]["fooBlock"] = 3
    with pytest.raises(UnknownConfigKey, match="fooBlock") as refused:
        parse_config(data)
    assert refused.value.keys == ["fooBlock"]
    data = frontier_to_osaka_genesis()
    data["stateRoot"] = "0x00"
    with pytest.raises(UnknownConfigKey, match="stateRoot"):
        parse_config(data)


def test_bpo_fork_without_its_blob_schedule_entry_is_refused() -> None:
    data = frontier_to_osaka_genesis()
    del data["config"]["blobSchedule"]["bpo2"]
    with pytest.raises(ConfigError, match=r"blobSchedule\.bpo2 is missing"):
        parse_config(data)


def test_osaka_blob_schedule_must_match_osakas() -> None:
    data = frontier_to_osaka_genesis()
    data["config"]["blobSchedule"]["osaka"] = {"target": 9, "max": 12, "baseFeeUpdateFraction": 5007716}
    with pytest.raises(ConfigError, match=r"blobSchedule\.osaka"):
        parse_config(data)


def test_forks_out_of_order_are_refused() -> None:
    data = frontier_to_osaka_genesis()
    del data["config"]["osakaTime"]
    with pytest.raises(ConfigError, match="bpo1Time is set but an earlier fork"):
        parse_config(data)
