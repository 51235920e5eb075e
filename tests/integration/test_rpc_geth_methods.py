"""geth's state, tracing and raw-encoding methods, checked against independent decoders.

Proofs are verified with ``trie.HexaryTrie.get_from_proof`` against the block's state root
(EIP-1186); raw headers, blocks, receipts and transactions are decoded with py-evm and
``rlp`` and re-rooted with an ordered trie to match the header's roots; traces are checked
against receipts, balances and storage read through other methods. A hand-assembled
forwarder contract (CALL to the Reverter with the calldata, return or revert with the
callee's return data) gives the traces a nested call frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth.constants import BLANK_ROOT_HASH
from eth.vm.forks.cancun import CancunVM
from eth.vm.forks.cancun.headers import CancunBlockHeader
from eth_account import Account
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address
from rlp.sedes import big_endian_int
from trie import HexaryTrie
from web3 import Web3
from web3.contract import Contract

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from tests.nodeproc import NodeProcess, rpc
from tests.unit.test_rpc_blob_fee import fake_exponential

pytestmark = pytest.mark.slow

FORWARDER = "0x" + "f0" * 20
STRANGER = "0x" + "5a" * 20


def forwarder_code(target: str) -> str:
    """CALL ``target`` with all gas and this call's data; return (or revert with) its output."""
    return ("0x" + "3660006000" + "37"                      # calldatacopy(0, 0, calldatasize)
            + "60006000" + "36" + "60006000" + "73" + target[2:].lower() + "5a" + "f1"
            + "3d60006000" + "3e"                            # returndatacopy(0, 0, size)
            + "6033" + "57"                                  # success -> jump to 0x33
            + "3d6000fd"                                     # revert(0, returndatasize)
            + "5b" + "3d6000f3")                             # return(0, returndatasize)


def rpc_error(url: str, method: str, params: list[Any]) -> dict[str, Any]:
    with pytest.raises(RuntimeError) as info:
        rpc(url, method, params)
    err: dict[str, Any] = info.value.args[0]
    return err


def word(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


@pytest.fixture(scope="module")
def reverter(node: NodeProcess, w3: Web3) -> Contract:
    contract = deploy(w3, load_artifact("Reverter"), sender=w3.eth.accounts[0])
    rpc(node.url, "anvil_setCode", [FORWARDER, forwarder_code(contract.address)])
    rpc(node.url, "evm_mine", [])  # the dev edit goes into a block: proofs see block roots
    return contract


def send_via_forwarder(w3: Web3, data: str, **extra: Any) -> Any:
    tx_hash = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": Web3.to_checksum_address(
        FORWARDER), "data": data, "gas": 200_000, **extra})
    return w3.eth.wait_for_transaction_receipt(tx_hash)


# -- eth_getProof (EIP-1186) ----------------------------------------------------------------
def verify_account(proof: dict[str, Any], state_root: bytes) -> bytes:
    nodes = [rlp.decode(bytes.fromhex(n[2:])) for n in proof["accountProof"]]
    return bytes(HexaryTrie.get_from_proof(state_root, keccak(bytes.fromhex(proof["address"][2:])),
                                           nodes))


def test_get_proof_verifies_against_the_state_root(node: NodeProcess, w3: Web3,
                                                   reverter: Contract) -> None:
    reverter.functions.set(7).transact({"from": w3.eth.accounts[0]})
    at_seven = w3.eth.block_number
    reverter.functions.set(9).transact({"from": w3.eth.accounts[0]})

    for number, expected in ((at_seven, 7), (w3.eth.block_number, 9)):
        block = w3.eth.get_block(number)
        proof = rpc(node.url, "eth_getProof", [reverter.address, [word(0), "0x1"], hex(number)])
        assert isinstance(proof, dict)
        nonce, balance, storage_root, code_hash = rlp.decode(
            verify_account(proof, bytes(block["stateRoot"])))
        assert int.from_bytes(nonce, "big") == int(proof["nonce"], 16) == 1  # EIP-161
        assert int.from_bytes(balance, "big") == int(proof["balance"], 16) == 0
        assert "0x" + storage_root.hex() == proof["storageHash"]
        assert "0x" + code_hash.hex() == proof["codeHash"] == \
            "0x" + keccak(bytes(w3.eth.get_code(reverter.address, number))).hex()
        slot0, slot1 = proof["storageProof"]
        assert slot0["key"] == word(0) and slot1["key"] == "0x1"  # short keys as quantities
        nodes = [rlp.decode(bytes.fromhex(n[2:])) for n in slot0["proof"]]
        value = HexaryTrie.get_from_proof(storage_root, keccak(bytes(32)), nodes)
        assert rlp.decode(value, sedes=big_endian_int) == int(slot0["value"], 16) == expected
        nodes = [rlp.decode(bytes.fromhex(n[2:])) for n in slot1["proof"]]
        assert HexaryTrie.get_from_proof(storage_root, keccak((1).to_bytes(32, "big")), nodes) \
            == b"" and slot1["value"] == "0x0"  # a proof of absence


def test_get_proof_of_an_account_without_storage_and_of_a_missing_one(
        node: NodeProcess, w3: Web3, reverter: Contract) -> None:
    block = w3.eth.get_block("latest")
    sender = w3.eth.accounts[0]
    proof = rpc(node.url, "eth_getProof", [sender, [word(0)], "latest"])
    assert isinstance(proof, dict)
    account = rlp.decode(verify_account(proof, bytes(block["stateRoot"])))
    assert int.from_bytes(account[1], "big") == w3.eth.get_balance(sender)
    assert proof["storageHash"] == "0x" + BLANK_ROOT_HASH.hex()
    assert proof["storageProof"] == [{"key": word(0), "value": "0x0", "proof": []}]

    missing = rpc(node.url, "eth_getProof", [STRANGER, [], "latest"])
    assert isinstance(missing, dict)
    assert verify_account(missing, bytes(block["stateRoot"])) == b""
    assert missing["balance"] == "0x0" and missing["codeHash"] == word(0)


def test_get_proof_and_get_storage_at_refuse_a_key_over_32_bytes(
        node: NodeProcess, reverter: Contract) -> None:
    long_key = "0x" + "01" * 33
    err = rpc_error(node.url, "eth_getProof", [reverter.address, [long_key], "latest"])
    assert err["code"] == -32602
    assert "hex string too long, want at most 32 bytes" in err["message"]
    err = rpc_error(node.url, "eth_getStorageAt", [reverter.address, long_key, "latest"])
    assert err["code"] == -32602
    assert "unable to decode storage key: hex string too long" in err["message"]
    err = rpc_error(node.url, "eth_getProof", [reverter.address, ["0xzz"], "latest"])
    assert err["code"] == -32602 and "hex string invalid" in err["message"]


# -- eth_getStorageValues --------------------------------------------------------------------
def test_get_storage_values_match_get_storage_at(node: NodeProcess, w3: Web3,
                                                 reverter: Contract) -> None:
    reverter.functions.set(31).transact({"from": w3.eth.accounts[0]})
    slots = [word(0), word(1)]
    values = rpc(node.url, "eth_getStorageValues", [{reverter.address: slots, STRANGER: [word(0)]},
                                                    "latest"])
    assert isinstance(values, dict)
    assert values[reverter.address] == [
        rpc(node.url, "eth_getStorageAt", [reverter.address, s, "latest"]) for s in slots]
    assert values[reverter.address][0] == word(31)
    assert values[to_checksum_address(STRANGER)] == [word(0)]

    assert rpc_error(node.url, "eth_getStorageValues", [{}, "latest"])["message"].endswith(
        "empty request")
    assert rpc_error(node.url, "eth_getStorageValues",
                     [{reverter.address: ["0x01"]}, "latest"])["code"] == -32602
    too_many = {reverter.address: [word(i) for i in range(1025)]}
    assert "too many slots (max 1024)" in rpc_error(
        node.url, "eth_getStorageValues", [too_many, "latest"])["message"]


# -- eth_createAccessList --------------------------------------------------------------------
def test_create_access_list_gas_is_what_the_transaction_then_uses(
        node: NodeProcess, w3: Web3, reverter: Contract) -> None:
    data = reverter.functions.set(77)._encode_transaction_data()
    sender = w3.eth.accounts[0]
    call = {"from": sender, "to": FORWARDER, "data": data, "gas": hex(200_000)}
    result = rpc(node.url, "eth_createAccessList", [call, "latest"])
    assert isinstance(result, dict)
    # the forwarder is the recipient (excluded, as geth); the Reverter's slot 0 is touched
    assert result["accessList"] == [{"address": reverter.address, "storageKeys": [word(0)]}]
    assert "error" not in result

    # the same transaction, signed with that access list (EIP-2930) and mined
    dev = derive_dev_accounts()[0]
    assert dev.address == sender
    signed = Account.sign_transaction({
        "type": 1, "chainId": w3.eth.chain_id, "nonce": w3.eth.get_transaction_count(sender),
        "to": Web3.to_checksum_address(FORWARDER), "data": data, "gas": 200_000, "value": 0,
        "gasPrice": w3.eth.gas_price, "accessList": result["accessList"]}, dev.private_key)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction))
    assert receipt["status"] == 1 and receipt["gasUsed"] == int(result["gasUsed"], 16)

    failing = rpc(node.url, "eth_createAccessList", [
        {**call, "data": reverter.functions.fail()._encode_transaction_data()}, "latest"])
    assert isinstance(failing, dict) and failing["error"] == "execution reverted"
    assert failing["accessList"] == [{"address": reverter.address, "storageKeys": []}]


# -- eth_blobBaseFee (EIP-4844) ----------------------------------------------------------------


def test_blob_base_fee_follows_the_head_excess_blob_gas(node: NodeProcess, w3: Web3) -> None:
    head = rpc(node.url, "eth_getBlockByNumber", ["latest", False])
    assert isinstance(head, dict)
    expected = fake_exponential(1, int(head["excessBlobGas"], 16), 3338477)
    assert rpc(node.url, "eth_blobBaseFee", []) == hex(expected)
    assert w3.eth.blob_base_fee == expected


# -- debug_trace* ---------------------------------------------------------------------------
def test_call_tracer_shows_the_nested_call_and_its_log(node: NodeProcess, w3: Web3,
                                                       reverter: Contract) -> None:
    data = reverter.functions.set(5)._encode_transaction_data()
    receipt = send_via_forwarder(w3, data)
    tx_hash = receipt["transactionHash"].to_0x_hex()
    frame = rpc(node.url, "debug_traceTransaction",
                [tx_hash, {"tracer": "callTracer", "tracerConfig": {"withLog": True}}])
    assert isinstance(frame, dict)
    assert frame["type"] == "CALL" and frame["from"] == w3.eth.accounts[0].lower()
    assert frame["to"] == FORWARDER and frame["input"] == data
    assert int(frame["gasUsed"], 16) == receipt["gasUsed"] and frame["gas"] == hex(200_000)
    (child,) = frame["calls"]
    assert child["type"] == "CALL" and child["from"] == FORWARDER
    assert child["to"] == reverter.address.lower() and child["input"] == data
    assert child["value"] == "0x0" and "error" not in child
    (log,) = child["logs"]
    event = receipt["logs"][0]
    assert log["topics"] == [t.to_0x_hex() for t in event["topics"]]
    assert log["data"] == event["data"].to_0x_hex()
    top_only = rpc(node.url, "debug_traceTransaction",
                   [tx_hash, {"tracer": "callTracer", "tracerConfig": {"onlyTopCall": True}}])
    assert isinstance(top_only, dict) and "calls" not in top_only


def test_call_tracer_on_a_reverting_call(node: NodeProcess, w3: Web3,
                                         reverter: Contract) -> None:
    call = {"from": w3.eth.accounts[0], "to": FORWARDER,
            "data": reverter.functions.fail()._encode_transaction_data()}
    frame = rpc(node.url, "debug_traceCall", [call, "latest", {"tracer": "callTracer"}])
    assert isinstance(frame, dict)
    for f in (frame, frame["calls"][0]):
        assert f["error"] == "execution reverted"
        assert f["revertReason"] == "layerlab: always fails"
    with pytest.raises(RuntimeError) as info:
        rpc(node.url, "eth_call", [call, "latest"])
    assert frame["output"] == info.value.args[0]["data"]


def test_trace_call_struct_logs_and_state_overrides(node: NodeProcess, w3: Web3,
                                                    reverter: Contract) -> None:
    call = {"to": reverter.address, "data": reverter.functions.get()._encode_transaction_data()}
    expected = rpc(node.url, "eth_call", [call, "latest"])
    result = rpc(node.url, "debug_traceCall", [call, "latest"])
    assert isinstance(result, dict) and isinstance(expected, str)
    assert result["failed"] is False and "0x" + result["returnValue"] == expected
    assert [log["op"] for log in result["structLogs"]].count("SLOAD") == 1
    assert result["structLogs"][-1]["op"] == "RETURN"
    overridden = rpc(node.url, "debug_traceCall", [call, "latest", {
        "stateOverrides": {reverter.address: {"stateDiff": {word(0): word(1234)}}}}])
    assert isinstance(overridden, dict) and overridden["returnValue"] == word(1234)[2:]


def test_prestate_tracer_reports_the_state_before_the_transaction(
        node: NodeProcess, w3: Web3, reverter: Contract) -> None:
    reverter.functions.set(40).transact({"from": w3.eth.accounts[0]})
    sender = w3.eth.accounts[0]
    receipt = send_via_forwarder(w3, reverter.functions.set(41)._encode_transaction_data())
    before = receipt["blockNumber"] - 1
    tx_hash = receipt["transactionHash"].to_0x_hex()
    pre = rpc(node.url, "debug_traceTransaction", [tx_hash, {"tracer": "prestateTracer"}])
    assert isinstance(pre, dict)
    assert pre[sender.lower()]["balance"] == hex(w3.eth.get_balance(sender, before))
    assert pre[sender.lower()]["nonce"] == w3.eth.get_transaction_count(sender, before)
    assert pre[FORWARDER]["code"] == w3.eth.get_code(Web3.to_checksum_address(FORWARDER)).to_0x_hex()
    assert pre[reverter.address.lower()]["storage"] == {word(0): word(40)}
    assert pre[reverter.address.lower()]["nonce"] == 1 and "storage" not in pre[FORWARDER]

    diff = rpc(node.url, "debug_traceTransaction",
               [tx_hash, {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}}])
    assert isinstance(diff, dict)
    assert diff["pre"][reverter.address.lower()]["storage"] == {word(0): word(40)}
    assert diff["post"][reverter.address.lower()] == {"storage": {word(0): word(41)}}
    assert diff["post"][sender.lower()]["balance"] == hex(w3.eth.get_balance(sender,
                                                                              receipt["blockNumber"]))
    assert diff["post"][sender.lower()]["nonce"] == w3.eth.get_transaction_count(
        sender, receipt["blockNumber"])
    assert FORWARDER not in diff["post"]  # unchanged: neither its code nor its balance moved


def test_trace_block_by_number_and_hash_trace_every_transaction(
        node: NodeProcess, w3: Web3, reverter: Contract) -> None:
    receipt = send_via_forwarder(w3, reverter.functions.set(3)._encode_transaction_data())
    number, block_hash = receipt["blockNumber"], receipt["blockHash"].to_0x_hex()
    tx_hash = receipt["transactionHash"].to_0x_hex()
    opts = {"tracer": "callTracer"}
    by_number = rpc(node.url, "debug_traceBlockByNumber", [hex(number), opts])
    by_hash = rpc(node.url, "debug_traceBlockByHash", [block_hash, opts])
    single = rpc(node.url, "debug_traceTransaction", [tx_hash, opts])
    assert by_number == by_hash == [{"txHash": tx_hash, "result": single}]
    logs = rpc(node.url, "debug_traceBlockByNumber", [hex(number)])
    assert isinstance(logs, list) and logs[0]["result"]["gas"] == receipt["gasUsed"]

    missing = number + 1000
    err = rpc_error(node.url, "debug_traceBlockByNumber", [hex(missing)])
    assert err["code"] == -32000 and err["message"] == f"block #{missing} not found"
    err = rpc_error(node.url, "debug_traceBlockByHash", ["0x" + "ab" * 32])
    assert err["code"] == -32000 and err["message"] == f"block 0x{'ab' * 32} not found"
    err = rpc_error(node.url, "debug_traceCall", [{"to": FORWARDER}, hex(missing)])
    assert err["message"] == f"block #{missing} not found"
    assert rpc_error(node.url, "debug_traceBlockByNumber",
                     [hex(number), {"tracer": "4byteTracer"}])["code"] == -32602


# -- debug_getRaw* ---------------------------------------------------------------------------
def ordered_trie_root(items: list[bytes]) -> bytes:
    t = HexaryTrie({})
    for i, item in enumerate(items):
        t[rlp.encode(i)] = item
    return bytes(t.root_hash)


def test_raw_encodings_decode_to_the_json_fields(node: NodeProcess, w3: Web3,
                                                 reverter: Contract) -> None:
    send_via_forwarder(w3, reverter.functions.set(8)._encode_transaction_data())
    number = w3.eth.block_number
    block = w3.eth.get_block(number, full_transactions=False)

    raw_header = bytes.fromhex(str(rpc(node.url, "debug_getRawHeader", [hex(number)]))[2:])
    assert keccak(raw_header) == bytes(block["hash"])
    header = rlp.decode(raw_header, sedes=CancunBlockHeader)
    assert header.block_number == number and bytes(header.state_root) == bytes(block["stateRoot"])

    raw_block = bytes.fromhex(str(rpc(node.url, "debug_getRawBlock", [hex(number)]))[2:])
    decoded = rlp.decode(raw_block, sedes=CancunVM.get_block_class())
    assert decoded.hash == bytes(block["hash"]) and len(raw_block) == block["size"]
    assert [bytes(tx.hash) for tx in decoded.transactions] == [bytes(h) for h in block["transactions"]]

    raw_txs = [bytes.fromhex(str(rpc(node.url, "debug_getRawTransaction", [h.to_0x_hex()]))[2:])
               for h in block["transactions"]]
    assert [keccak(r) for r in raw_txs] == [bytes(h) for h in block["transactions"]]
    assert ordered_trie_root(raw_txs) == bytes(block["transactionsRoot"])

    raw_receipts = rpc(node.url, "debug_getRawReceipts", [hex(number)])
    assert isinstance(raw_receipts, list)
    receipts = [bytes.fromhex(r[2:]) for r in raw_receipts]
    assert ordered_trie_root(receipts) == bytes(block["receiptsRoot"])
    builder = CancunVM.get_receipt_builder()
    json_receipts = rpc(node.url, "eth_getBlockReceipts", [hex(number)])
    assert isinstance(json_receipts, list)
    for raw, js in zip(receipts, json_receipts, strict=True):
        r = builder.decode(raw)
        assert r.gas_used == int(js["cumulativeGasUsed"], 16) and len(r.logs) == len(js["logs"])

    assert rpc(node.url, "debug_getRawTransaction", ["0x" + "00" * 32]) == "0x"
    assert rpc_error(node.url, "debug_getRawHeader", [hex(number + 1000)])["message"] == \
        f"block #{number + 1000} not found"


# -- eth_getLogs ---------------------------------------------------------------------------
def test_get_logs_refuses_block_hash_with_a_range(node: NodeProcess, w3: Web3) -> None:
    head = w3.eth.get_block("latest")
    for extra in ({"fromBlock": "0x0"}, {"toBlock": "latest"}):
        err = rpc_error(node.url, "eth_getLogs", [{"blockHash": head["hash"].to_0x_hex(), **extra}])
        assert err["code"] == -32602
        assert "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other" \
            in err["message"]


# -- chain id from the genesis --------------------------------------------------------------
@pytest.fixture(scope="module")
def other_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    genesis: Path = tmp_path_factory.mktemp("genesis") / "genesis.json"
    genesis.write_text(json.dumps({"chainId": 424242}))
    with NodeProcess("--config", str(genesis)) as proc:
        yield proc


def test_chain_id_and_net_version_follow_the_genesis(other_chain: NodeProcess) -> None:
    assert rpc(other_chain.url, "eth_chainId", []) == hex(424242)
    assert rpc(other_chain.url, "net_version", []) == "424242"
    w3 = Web3(Web3.HTTPProvider(other_chain.url))
    assert w3.eth.chain_id == 424242 and w3.net.version == "424242"
    # and transactions are signed for it (EIP-155)
    tx_hash = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": to_checksum_address(STRANGER),
                                     "value": 1})
    assert w3.eth.get_transaction(tx_hash)["chainId"] == 424242
