"""Blob transactions (EIP-4844) against a real node process: admission of the network form,
the block's blob gas fields, the blob base fee, and the beacon API's sidecars with their
retention window across a restart."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import ckzg
import pytest
import rlp
from eth_account import Account

from layerlab.l1 import blobs
from layerlab.l1.chain.config import ChainConfig
from tests.nodeproc import NodeProcess, call
from tests.unit.test_rpc_blob_fee import fake_exponential

pytestmark = pytest.mark.slow

GAS_PER_BLOB = 2**17  # EIP-4844 constants, as the EIP states them
TARGET_BLOB_GAS = 393216
MAX_BLOB_GAS = 786432
UPDATE_FRACTION = 3338477
RETENTION = 4
CONFIG = ChainConfig()
KEY = CONFIG.dev_accounts[0].private_key
TO = "0x" + "22" * 20




def make_blob(seed: int) -> bytes:
    return b"".join(b"\x00" + bytes([(seed + i) % 256]) * 31 for i in range(4096))


def kzg(blob: bytes) -> tuple[bytes, bytes]:
    setup = blobs.get_trusted_setup()
    commitment = bytes(ckzg.blob_to_kzg_commitment(blob, setup))
    return commitment, bytes(ckzg.compute_blob_kzg_proof(blob, commitment, setup))


def tx_fields(nonce: int, **extra: Any) -> dict[str, Any]:
    return {"type": 3, "chainId": CONFIG.chain_id, "nonce": nonce, "to": TO, "value": 1,
            "gas": 21000, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9,
            "maxFeePerBlobGas": 10**9, "data": b"", **extra}


def network_form(nonce: int, blob: bytes, count: int, *, vhash: bytes | None = None,
                 proof: bytes | None = None, max_fee_per_blob_gas: int = 10**9) -> str:
    """The EIP-4844 network form built by hand around an eth-account-signed body."""
    commitment, good_proof = kzg(blob)
    vh = vhash or blobs.kzg_to_versioned_hash(blobs.KzgCommitment(commitment))
    signed = Account.sign_transaction(
        tx_fields(nonce, blobVersionedHashes=["0x" + vh.hex()] * count,
                  maxFeePerBlobGas=max_fee_per_blob_gas), KEY)
    body = rlp.decode(bytes(signed.raw_transaction)[1:])
    wrapped = rlp.encode([body, [blob] * count, [commitment] * count,
                          [proof or good_proof] * count])
    return "0x" + (b"\x03" + wrapped).hex()


def send_error(url: str, raw: str) -> dict[str, Any]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
                       "params": [raw]}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        reply = json.loads(resp.read())
    assert "error" in reply, reply
    error: dict[str, Any] = reply["error"]
    return error


def sidecars(url: str, block_id: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{url}/eth/v1/beacon/blob_sidecars/{block_id}",
                                    timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def block(url: str, number: int) -> dict[str, Any]:
    result: dict[str, Any] = call(url, "eth_getBlockByNumber", hex(number), False)
    return result


def test_blob_transactions_end_to_end(tmp_path: Path) -> None:
    node = NodeProcess("--no-mining", "--blob-retention", str(RETENTION), data_dir=tmp_path)
    node.start()
    try:
        url = node.url
        status, genesis = sidecars(url, "genesis")
        assert status == 200 and genesis["data"] == []
        assert sidecars(url, "nonsense")[0] == 400
        assert sidecars(url, "99")[0] == 404

        # 1. eth-account's network form (EIP-7594 cell proofs), one blob
        blob1 = make_blob(1)
        signed = Account.sign_transaction(tx_fields(0), KEY, blobs=[blob1])
        tx_hash = call(url, "eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
        call(url, "evm_mine")
        receipt = call(url, "eth_getTransactionReceipt", tx_hash)
        assert receipt["status"] == "0x1" and receipt["blockNumber"] == "0x1"
        assert receipt["blobGasUsed"] == hex(GAS_PER_BLOB) and receipt["blobGasPrice"] == "0x1"
        commitment1, proof1 = kzg(blob1)
        tx = call(url, "eth_getTransactionByHash", tx_hash)
        assert tx["blobVersionedHashes"] == [
            "0x01" + hashlib.sha256(commitment1).hexdigest()[2:]]
        assert tx["maxFeePerBlobGas"] == hex(10**9)
        b1 = block(url, 1)
        assert b1["blobGasUsed"] == hex(GAS_PER_BLOB) and b1["excessBlobGas"] == "0x0"
        for block_id in ("1", "head", "finalized", b1["hash"]):
            status, got = sidecars(url, block_id)
            assert status == 200, got
            assert got["data"] == [{"index": "0", "blob": "0x" + blob1.hex(),
                                    "kzg_commitment": "0x" + commitment1.hex(),
                                    "kzg_proof": "0x" + proof1.hex()}]
        assert sidecars(url, "1?indices=1")[1]["data"] == []

        # 2. refusals, each with its reason
        blob2 = make_blob(2)
        zero_hash = blobs.kzg_to_versioned_hash(blobs.KzgCommitment(b"\xc0" + bytes(47)))
        err = send_error(url, network_form(1, blob2, 1, vhash=zero_hash))
        assert err["code"] == -32000 and "blob 0: computed hash" in err["message"]
        err = send_error(url, network_form(1, blob2, 1, proof=proof1))
        assert err["code"] == -32000 and "KZG proof verification failed" in err["message"]
        bare = Account.sign_transaction(tx_fields(1, blobVersionedHashes=["0x" + zero_hash.hex()]),
                                        KEY)
        err = send_error(url, "0x" + bytes(bare.raw_transaction).hex())
        assert "network form" in err["message"]

        # 3. at most 6 blobs a block: three transactions of 3 blobs span two blocks
        for nonce in (1, 2, 3):
            call(url, "eth_sendRawTransaction", network_form(nonce, blob2, 3))
        call(url, "evm_mine")
        call(url, "evm_mine")
        b2, b3 = block(url, 2), block(url, 3)
        assert (len(b2["transactions"]), int(b2["blobGasUsed"], 16)) == (2, MAX_BLOB_GAS)
        assert (len(b3["transactions"]), int(b3["blobGasUsed"], 16)) == (1, 3 * GAS_PER_BLOB)
        assert int(b3["excessBlobGas"], 16) == max(0, 0 + MAX_BLOB_GAS - TARGET_BLOB_GAS)
        assert len(sidecars(url, "2")[1]["data"]) == 6

        # 4. the sidecars survive a restart
        assert node.stop() == 0
        node.start()
        url = node.url
        status, got = sidecars(url, "2")
        assert status == 200 and len(got["data"]) == 6
        assert got["data"][5]["blob"] == "0x" + blob2.hex()
        assert sidecars(url, "1")[1]["data"][0]["blob"] == "0x" + blob1.hex()

        # 5. full blocks raise the blob base fee by EIP-4844's rule
        for nonce in range(4, 11):
            call(url, "eth_sendRawTransaction", network_form(nonce, blob2, 6))
            call(url, "evm_mine")
        head = block(url, 10)
        assert int(head["blobGasUsed"], 16) == MAX_BLOB_GAS
        excess = int(head["excessBlobGas"], 16)
        prev = block(url, 9)
        assert excess == max(0, int(prev["excessBlobGas"], 16) + MAX_BLOB_GAS - TARGET_BLOB_GAS)
        next_excess = excess + MAX_BLOB_GAS - TARGET_BLOB_GAS
        want_fee = fake_exponential(1, next_excess, UPDATE_FRACTION)
        assert want_fee >= 2
        assert call(url, "eth_blobBaseFee") == hex(want_fee)
        history = call(url, "eth_feeHistory", "0x2", "latest", [])
        assert history["baseFeePerBlobGas"] == [
            hex(fake_exponential(1, int(prev["excessBlobGas"], 16), UPDATE_FRACTION)),
            hex(fake_exponential(1, excess, UPDATE_FRACTION)), hex(want_fee)]
        assert history["blobGasUsedRatio"] == [1.0, 1.0]
        err = send_error(url, network_form(11, blob2, 1, max_fee_per_blob_gas=want_fee - 1))
        assert "max fee per blob gas less than block blob gas fee" in err["message"]
        receipt = call(url, "eth_getTransactionReceipt", head["transactions"][0])
        assert receipt["blobGasPrice"] == hex(fake_exponential(1, excess, UPDATE_FRACTION))

        # 6. the retention window: head 10 keeps blocks 7..10
        for number in (1, 2, 3, 6):
            status, got = sidecars(url, str(number))
            assert status == 404 and "retention window" in got["message"], (number, got)
        for number in (7, 10):
            assert len(sidecars(url, str(number))[1]["data"]) == 6
    finally:
        node.stop()
