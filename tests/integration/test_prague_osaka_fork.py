"""One chain across the Prague -> Osaka fork, every transaction type on both sides.

A devnet scheduled as geth would (``pragueTime`` at genesis, ``osakaTime`` 100 s later)
mines one block before the fork and one after, each with a legacy, an EIP-2930, an
EIP-1559, an EIP-4844 (one blob, sent in the network form of its fork: blob proofs before
Osaka, EIP-7594 cell proofs from it) and an EIP-7702 transaction. The VM switch is seen
through what only Osaka has: CLZ (EIP-7939) fails as an invalid opcode in the Prague block
and counts leading zeros in the Osaka one, and a transaction gas limit over 2^24
(EIP-7825) is mined before the fork and refused after it. Blocks, transactions and
receipts are then read back through the RPC on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ckzg
import pytest
import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from layerlab.l1 import blobs
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.chain.forks import Activation, ForkSchedule
from layerlab.l1.launcher import BackgroundNode
from layerlab.l1.node import MiningMode, Node
from tests.nodeproc import rpc

GENESIS_TIME = 1_750_000_000
OSAKA_TIME = GENESIS_TIME + 100
TX_GAS_LIMIT_CAP = 2**24  # EIP-7825
GAS_PER_BLOB = 2**17      # EIP-4844
CLZ = Web3.to_checksum_address("0x" + "c1" * 20)
CLZ_CODE = "0x" + "6001" + "1e" + "600055" + "00"  # sstore(0, clz(1)); stop
DELEGATE = Web3.to_checksum_address("0x" + "d1" * 20)
DELEGATE_CODE = "0x602a60005260206000f3"  # return 42
TO = Web3.to_checksum_address("0x" + "22" * 20)
FEES = {"maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}


@pytest.fixture(scope="module")
def devnet() -> Iterator[tuple[str, Web3, ChainConfig]]:
    schedule = ForkSchedule((*ForkSchedule.from_genesis("prague").activations,
                             Activation("osaka", OSAKA_TIME)))
    config = ChainConfig(genesis_timestamp=GENESIS_TIME, forks=schedule)
    with BackgroundNode(Node(config, mining=MiningMode.MANUAL)) as url:
        rpc(url, "anvil_setCode", [CLZ, CLZ_CODE])
        rpc(url, "anvil_setCode", [DELEGATE, DELEGATE_CODE])
        yield url, Web3(Web3.HTTPProvider(url)), config


def blob_network_form(signed_raw: bytes, blob: bytes, cell_proofs: bool) -> str:
    """EIP-4844's network form (wrapper version 0) or EIP-7594's (version 1)."""
    setup = blobs.get_trusted_setup()
    commitment = bytes(ckzg.blob_to_kzg_commitment(blob, setup))
    body = rlp.decode(signed_raw[1:])
    if cell_proofs:
        _, proofs = ckzg.compute_cells_and_kzg_proofs(blob, setup)
        wrapped = rlp.encode([body, 1, [blob], [commitment], [bytes(p) for p in proofs]])
    else:
        proof = bytes(ckzg.compute_blob_kzg_proof(blob, commitment, setup))
        wrapped = rlp.encode([body, [blob], [commitment], [proof]])
    return "0x" + (b"\x03" + wrapped).hex()


def send_every_type(url: str, w3: Web3, accounts: list[LocalAccount], osaka: bool) -> dict[int, str]:
    """One transaction of each type (0 to 4), each from its own sender; type -> hash."""
    chain_id = w3.eth.chain_id

    def nonce(a: LocalAccount) -> int:
        return w3.eth.get_transaction_count(a.address, "pending")

    def send(a: LocalAccount, tx: dict[str, Any]) -> str:
        raw = a.sign_transaction({"chainId": chain_id, "nonce": nonce(a), **tx}).raw_transaction
        return w3.eth.send_raw_transaction(raw).to_0x_hex()

    hashes = {
        0: send(accounts[0], {"to": TO, "value": 1, "gas": 21_000, "gasPrice": 10**11}),
        1: send(accounts[1], {"type": 1, "to": TO, "value": 1, "gas": 30_000, "gasPrice": 10**11,
                              "accessList": [{"address": TO, "storageKeys": []}]}),
        2: send(accounts[2], {"type": 2, "to": TO, "value": 1, "gas": 21_000, **FEES}),
    }
    blob = b"".join(b"\x00" + bytes([(i + osaka) % 256]) * 31 for i in range(4096))
    commitment = bytes(ckzg.blob_to_kzg_commitment(blob, blobs.get_trusted_setup()))
    vhash = blobs.kzg_to_versioned_hash(blobs.KzgCommitment(commitment))
    signed = accounts[3].sign_transaction({
        "type": 3, "chainId": chain_id, "nonce": nonce(accounts[3]), "to": TO, "value": 1,
        "gas": 21_000, **FEES, "maxFeePerBlobGas": 10**9,
        "blobVersionedHashes": ["0x" + vhash.hex()]})
    hashes[3] = str(rpc(url, "eth_sendRawTransaction",
                        [blob_network_form(bytes(signed.raw_transaction), blob, osaka)]))
    authority = Account.create()
    auth = authority.sign_authorization({"chainId": chain_id, "address": DELEGATE, "nonce": 0})
    hashes[4] = send(accounts[4], {"type": 4, "to": authority.address, "value": 0,
                                   "gas": 100_000, **FEES, "accessList": [],
                                   "authorizationList": [auth]})
    hashes[5] = send(accounts[5], {"type": 2, "to": CLZ, "value": 0, "gas": 100_000, **FEES})
    return hashes


def check_block(url: str, w3: Web3, number: int, hashes: dict[int, str]) -> dict[str, Any]:
    block = rpc(url, "eth_getBlockByNumber", [hex(number), True])
    assert isinstance(block, dict)
    by_hash = {tx["hash"]: tx for tx in block["transactions"]}
    assert set(hashes.values()) <= set(by_hash)
    receipts = rpc(url, "eth_getBlockReceipts", [hex(number)])
    assert isinstance(receipts, list)
    assert [r["transactionHash"] for r in receipts] == [tx["hash"] for tx in block["transactions"]]
    for type_id, tx_hash in hashes.items():
        if type_id > 4:
            continue
        assert by_hash[tx_hash]["type"] == hex(type_id)
        receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        assert receipt.status == 1 and receipt.type == type_id
        assert receipt.blockNumber == number
        assert rpc(url, "eth_getTransactionByHash", [tx_hash])["blockNumber"] == hex(number)  # type: ignore[index]
    assert block["blobGasUsed"] == hex(GAS_PER_BLOB)
    assert "requestsHash" in block  # a Prague-and-later header on both sides
    blob_receipt = w3.eth.get_transaction_receipt(hashes[3])  # type: ignore[arg-type]
    assert blob_receipt["blobGasUsed"] == GAS_PER_BLOB
    assert by_hash[hashes[4]]["authorizationList"][0]["address"] == DELEGATE
    return block


def test_every_type_across_the_fork_and_the_vm_switch(
        devnet: tuple[str, Web3, ChainConfig]) -> None:
    url, w3, config = devnet
    accounts = [Account.from_key(a.private_key) for a in config.dev_accounts]

    # -- Prague ------------------------------------------------------------------------
    before = send_every_type(url, w3, accounts, osaka=False)
    over_cap = accounts[6].sign_transaction({
        "type": 2, "chainId": w3.eth.chain_id, "nonce": 0, "to": TO, "value": 1,
        "gas": TX_GAS_LIMIT_CAP + 1, **FEES}).raw_transaction
    capped_hash = w3.eth.send_raw_transaction(over_cap).to_0x_hex()
    rpc(url, "evm_mine", [hex(GENESIS_TIME + 10)])
    prague_block = check_block(url, w3, 1, before)
    assert int(prague_block["timestamp"], 16) < OSAKA_TIME
    assert w3.eth.get_transaction_receipt(capped_hash).status == 1  # type: ignore[arg-type]
    clz_before = w3.eth.get_transaction_receipt(before[5])  # type: ignore[arg-type]
    assert clz_before.status == 0  # CLZ is not an opcode yet
    assert clz_before.gasUsed == 100_000  # an invalid opcode consumes all the gas
    assert w3.eth.get_storage_at(CLZ, 0) == b"\x00" * 32

    # -- Osaka -------------------------------------------------------------------------
    after = send_every_type(url, w3, accounts, osaka=True)
    # admitted under the Prague head (as geth's pool would), then left out of Osaka's block
    over_cap = accounts[6].sign_transaction({
        "type": 2, "chainId": w3.eth.chain_id, "nonce": 1, "to": TO, "value": 1,
        "gas": TX_GAS_LIMIT_CAP + 1, **FEES}).raw_transaction
    late_hash = w3.eth.send_raw_transaction(over_cap).to_0x_hex()
    rpc(url, "evm_mine", [hex(OSAKA_TIME + 10)])
    osaka_block = check_block(url, w3, 2, after)
    assert late_hash not in {tx["hash"] for tx in osaka_block["transactions"]}
    assert rpc(url, "eth_getTransactionReceipt", [late_hash]) is None
    # under an Osaka head the pool refuses it outright; at the cap it is accepted
    with pytest.raises(RuntimeError) as refused:
        rpc(url, "eth_sendRawTransaction", ["0x" + bytes(over_cap).hex()])
    assert refused.value.args[0]["message"] == (
        f"transaction gas limit too high (cap: {TX_GAS_LIMIT_CAP}, tx: {TX_GAS_LIMIT_CAP + 1})")
    at_cap = accounts[6].sign_transaction({
        "type": 2, "chainId": w3.eth.chain_id, "nonce": 1, "to": TO, "value": 1,
        "gas": TX_GAS_LIMIT_CAP, **FEES}).raw_transaction
    w3.eth.send_raw_transaction(at_cap)
    assert osaka_block["parentHash"] == prague_block["hash"]
    assert w3.eth.get_transaction_receipt(after[5]).status == 1  # type: ignore[arg-type]
    assert int.from_bytes(w3.eth.get_storage_at(CLZ, 0), "big") == 255  # EIP-7939: clz(1)
    # calls run on the VM of the block they name
    call = {"to": CLZ, "gas": 100_000}
    assert rpc(url, "eth_call", [call, "latest"]) == "0x"
    with pytest.raises(RuntimeError):
        rpc(url, "eth_call", [call, "0x1"])
    # both blocks stay served after the fork
    assert rpc(url, "eth_getBlockByNumber", ["0x1", False])["hash"] == prague_block["hash"]  # type: ignore[index]
    raw = rpc(url, "debug_getRawBlock", ["0x1"])
    assert isinstance(raw, str) and len(rlp.decode(bytes.fromhex(raw[2:]))[1]) == len(
        prague_block["transactions"])
