"""web3.py against a real ``layerlab node`` process: the wallet-and-dapp surface of issue 3.

Each test reads as a spec: what the client sends, what the node must answer. The node is
one in-memory automining process per module (``node``/``w3`` fixtures in conftest.py);
tests that need manual mining start their own ``--no-mining`` process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncWeb3, Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.providers.persistent import WebSocketProvider
from web3.types import RPCEndpoint

from layerlab.contracts import ContractArtifact, deploy, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")
ERROR_STRING_SELECTOR = keccak(text="Error(string)")[:4]
ZERO_TOPIC = b"\x00" * 32
SUPPLY = 10**24
WAIT = 30  # seconds: upper bound on any receipt or notification wait


def raw_call(url: str, method: str, params: list[Any]) -> dict[str, Any]:
    """One JSON-RPC request over plain HTTP; returns the whole reply (result or error)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=WAIT) as resp:
        reply: dict[str, Any] = json.loads(resp.read())
    assert reply["jsonrpc"] == "2.0" and reply["id"] == 7
    return reply


def topic_of(address: str) -> bytes:
    return b"\x00" * 12 + bytes.fromhex(address[2:])


def revert_data(reason: str) -> str:
    return "0x" + (ERROR_STRING_SELECTOR + abi_encode(["string"], [reason])).hex()


@pytest.fixture(scope="module")
def accounts(w3: Web3) -> list[str]:
    return list(w3.eth.accounts)


@pytest.fixture(scope="module")
def artifacts() -> dict[str, ContractArtifact]:
    return {name: load_artifact(name) for name in ("LabToken", "LabNFT", "Reverter")}


@pytest.fixture(scope="module")
def token(w3: Web3, accounts: list[str], artifacts: dict[str, ContractArtifact]) -> Contract:
    return deploy(w3, artifacts["LabToken"], "Lab Token", "LAB", SUPPLY, sender=accounts[0])


@pytest.fixture(scope="module")
def nft(w3: Web3, accounts: list[str], artifacts: dict[str, ContractArtifact]) -> Contract:
    # signed locally (eth_sendRawTransaction), not by the node
    return deploy(w3, artifacts["LabNFT"], sender=accounts[1],
                  private_key="0x" + DEV[1].private_key.hex())


@pytest.fixture(scope="module")
def reverter(w3: Web3, accounts: list[str], artifacts: dict[str, ContractArtifact]) -> Contract:
    return deploy(w3, artifacts["Reverter"], sender=accounts[0])


# -- deployment and receipts -----------------------------------------------------------------
def test_deploy_receipt_names_the_contract_and_its_cost(
    w3: Web3, accounts: list[str], artifacts: dict[str, ContractArtifact]
) -> None:
    factory = w3.eth.contract(abi=artifacts["LabToken"].abi, bytecode=artifacts["LabToken"].bytecode)
    nonce = w3.eth.get_transaction_count(accounts[0])
    tx_hash = factory.constructor("T", "T", 5).transact({"from": accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    block = w3.eth.get_block(receipt["blockNumber"])
    tx = w3.eth.get_transaction(tx_hash)

    expected_address = to_checksum_address(keccak(rlp_address_nonce(accounts[0], nonce))[12:])
    assert receipt["status"] == 1
    assert receipt["contractAddress"] == expected_address
    assert receipt["to"] is None and tx["to"] is None
    assert receipt["from"] == accounts[0]
    assert receipt["transactionHash"] == tx_hash
    assert receipt["blockHash"] == block["hash"]
    assert 100_000 < receipt["gasUsed"] <= tx["gas"]
    assert receipt["cumulativeGasUsed"] >= receipt["gasUsed"]
    assert receipt["effectiveGasPrice"] == min(
        tx["maxFeePerGas"], block["baseFeePerGas"] + tx["maxPriorityFeePerGas"]
    )
    assert w3.eth.get_code(expected_address) == HexBytes(artifacts["LabToken"].deployed_bytecode)
    # the deployment emitted the mint: Transfer(0 -> deployer, 5)
    (log,) = receipt["logs"]
    assert log["topics"][0] == HexBytes(TRANSFER_TOPIC)
    assert log["topics"][1] == HexBytes(ZERO_TOPIC)
    assert log["topics"][2] == HexBytes(topic_of(accounts[0]))
    assert int.from_bytes(log["data"], "big") == 5
    assert log["address"] == expected_address


def rlp_address_nonce(address: str, nonce: int) -> bytes:
    import rlp

    return bytes(rlp.encode([bytes.fromhex(address[2:]), nonce]))


def test_erc20_transfer_moves_balances_and_logs_with_indexes(
    w3: Web3, accounts: list[str], token: Contract
) -> None:
    a, b, c = accounts[0], accounts[2], accounts[3]
    before_a = token.functions.balanceOf(a).call()
    before_b = token.functions.balanceOf(b).call()
    tx_hash = token.functions.transfer(b, 1234).transact({"from": a})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)

    assert receipt["status"] == 1
    assert receipt["contractAddress"] is None
    assert receipt["to"] == token.address
    assert 21_000 < receipt["gasUsed"] < 100_000
    assert token.functions.balanceOf(a).call() == before_a - 1234
    assert token.functions.balanceOf(b).call() == before_b + 1234
    (log,) = receipt["logs"]
    assert log["logIndex"] == 0 and log["transactionIndex"] == 0
    assert log["transactionHash"] == tx_hash and log["blockNumber"] == receipt["blockNumber"]
    (event,) = token.events.Transfer().process_receipt(receipt)
    assert (event.args["from"], event.args["to"], event.args["value"]) == (a, b, 1234)

    # a transfer more than the balance reverts in the call (web3 surfaces the custom error)
    with pytest.raises(ContractLogicError):
        token.functions.transfer(c, 10**30).call({"from": b})


def test_erc721_mint_returns_sequential_ids_and_transfer_events(
    w3: Web3, accounts: list[str], nft: Contract
) -> None:
    owner = accounts[4]
    first = nft.functions.mint(owner).call({"from": accounts[0]})
    minted = []
    for _ in range(2):
        tx_hash = nft.functions.mint(owner).transact({"from": accounts[0]})
        minted.append(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT))
    assert first == nft.functions.totalMinted().call() - 1
    assert [nft.functions.ownerOf(first + i).call() for i in range(2)] == [owner, owner]
    assert nft.functions.balanceOf(owner).call() == 2
    ids = [int.from_bytes(r["logs"][0]["topics"][3], "big") for r in minted]
    assert ids == [first, first + 1]
    for r in minted:
        (log,) = r["logs"]
        assert log["address"] == nft.address
        assert log["topics"][1] == HexBytes(ZERO_TOPIC)
        assert log["topics"][2] == HexBytes(topic_of(owner))


def test_first_nft_id_is_one(w3: Web3, accounts: list[str], artifacts: dict[str, ContractArtifact]
                             ) -> None:
    fresh = deploy(w3, artifacts["LabNFT"], sender=accounts[0])
    assert fresh.functions.mint(accounts[5]).call() == 1
    tx_hash = fresh.functions.mint(accounts[5]).transact({"from": accounts[0]})
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    assert fresh.functions.ownerOf(1).call() == accounts[5]


# -- get_logs ----------------------------------------------------------------------------
def test_get_logs_filters_by_address_topics_and_block_range(
    w3: Web3, accounts: list[str], token: Contract, nft: Contract
) -> None:
    a, x, y = accounts[0], accounts[6], accounts[7]
    blocks = []
    for to, amount in ((x, 11), (y, 22), (x, 33)):
        tx_hash = token.functions.transfer(to, amount).transact({"from": a})
        blocks.append(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)["blockNumber"])
    nft_receipt = w3.eth.wait_for_transaction_receipt(
        nft.functions.mint(x).transact({"from": a}), timeout=WAIT)
    lo, hi = blocks[0], nft_receipt["blockNumber"]

    def amounts(logs: list[Any]) -> list[int]:
        return [int.from_bytes(entry["data"], "big") for entry in logs]

    by_token = w3.eth.get_logs({"address": token.address, "fromBlock": lo, "toBlock": hi})
    assert amounts(by_token) == [11, 22, 33]
    assert [entry["blockNumber"] for entry in by_token] == blocks

    # Transfer topic over both contracts: three ERC20 logs and the ERC721 mint
    both = w3.eth.get_logs({"fromBlock": lo, "toBlock": hi, "topics": [TRANSFER_TOPIC]})
    assert [entry["address"] for entry in both] == [token.address] * 3 + [nft.address]

    # recipient x as topic 2, with a null wildcard for topic 1
    to_x = w3.eth.get_logs({"address": token.address, "fromBlock": lo, "toBlock": hi,
                            "topics": [TRANSFER_TOPIC, None, topic_of(x)]})
    assert amounts(to_x) == [11, 33]
    # an OR list in topic 2
    to_xy = w3.eth.get_logs({"address": [token.address], "fromBlock": lo, "toBlock": hi,
                             "topics": [None, None, [topic_of(x), topic_of(y)]]})
    assert amounts(to_xy) == [11, 22, 33]
    # ranges: only the middle block; a range past them; a single block by hash
    assert amounts(w3.eth.get_logs({"address": token.address, "fromBlock": blocks[1],
                                    "toBlock": blocks[1]})) == [22]
    assert w3.eth.get_logs({"address": token.address, "fromBlock": hi + 1,
                            "toBlock": "latest"}) == []
    block_hash = w3.eth.get_block(blocks[2])["hash"]
    by_hash = w3.eth.get_logs({"blockHash": block_hash})
    assert amounts(by_hash) == [33] and by_hash[0]["blockHash"] == block_hash
    # a topic nobody emitted
    assert w3.eth.get_logs({"fromBlock": lo, "toBlock": hi, "topics": [b"\x01" * 32]}) == []


# -- WebSocket subscriptions -----------------------------------------------------------------
def test_websocket_subscriptions_deliver_heads_and_matching_logs(
    node: NodeProcess, w3: Web3, accounts: list[str], token: Contract
) -> None:
    recipient = accounts[8]

    async def scenario() -> tuple[list[Any], list[Any], list[HexBytes], list[HexBytes]]:
        async with AsyncWeb3(WebSocketProvider(node.ws_url)) as aw3:
            heads_id = await aw3.eth.subscribe("newHeads")
            logs_id = await aw3.eth.subscribe("logs", {
                "address": token.address,
                "topics": [HexBytes(TRANSFER_TOPIC).to_0x_hex(), None,
                           "0x" + topic_of(recipient).hex()],
            })
            pending_id = await aw3.eth.subscribe("newPendingTransactions")
            sent = []
            for amount in (5, 6):
                sent.append(await aw3.eth.send_transaction({
                    "from": accounts[0], "to": token.address,
                    "data": token.encode_abi("transfer", [recipient, amount])}))
            # noise the logs subscription must not deliver: a transfer to someone else
            sent.append(await aw3.eth.send_transaction({
                "from": accounts[0], "to": token.address,
                "data": token.encode_abi("transfer", [accounts[9], 7])}))
            heads, logs, pending = [], [], []
            async with asyncio.timeout(WAIT):
                async for message in aw3.socket.process_subscriptions():
                    sub, result = message["subscription"], message["result"]
                    if sub == heads_id:
                        heads.append(result)
                    elif sub == logs_id:
                        logs.append(result)
                    elif sub == pending_id:
                        pending.append(HexBytes(result))
                    if len(heads) >= 3 and len(pending) >= 3 and len(logs) >= 2:
                        break
            assert await aw3.eth.unsubscribe(heads_id) is True
            again = await aw3.provider.make_request(RPCEndpoint("eth_unsubscribe"), [heads_id])
            assert again["result"] is False
            return heads, logs, pending, sent

    heads, logs, pending, sent = asyncio.run(scenario())
    receipts = [w3.eth.get_transaction_receipt(h) for h in sent]
    assert [int(h["number"]) for h in heads[:3]] == [r["blockNumber"] for r in receipts]
    assert [HexBytes(h["hash"]) for h in heads[:3]] == [r["blockHash"] for r in receipts]
    assert pending[:3] == sent
    assert len(logs) == 2
    assert [int.from_bytes(HexBytes(entry["data"]), "big") for entry in logs] == [5, 6]
    assert [HexBytes(entry["transactionHash"]) for entry in logs] == sent[:2]


# -- reverts -------------------------------------------------------------------------------
def test_eth_call_revert_reason_is_code_3_with_data(node: NodeProcess, reverter: Contract,
                                                    accounts: list[str]) -> None:
    call = {"from": accounts[0], "to": reverter.address,
            "data": reverter.encode_abi("fail", [])}
    reply = raw_call(node.url, "eth_call", [call, "latest"])
    assert reply["error"] == {
        "code": 3,
        "message": "execution reverted: layerlab: always fails",
        "data": revert_data("layerlab: always fails"),
    }
    with pytest.raises(ContractLogicError) as exc:
        reverter.functions.fail().call()
    assert "layerlab: always fails" in str(exc.value.message)
    assert HexBytes(exc.value.data) == HexBytes(revert_data("layerlab: always fails"))

    # require() with a message, and a custom error whose data is its selector + args
    reply = raw_call(node.url, "eth_call", [
        {"to": reverter.address, "data": reverter.encode_abi("requirePositive", [0])}])
    assert reply["error"]["code"] == 3
    assert reply["error"]["message"] == "execution reverted: x must be positive"
    reply = raw_call(node.url, "eth_call", [
        {"to": reverter.address, "data": reverter.encode_abi("failWithCode", [42])}])
    assert reply["error"]["code"] == 3
    assert reply["error"]["data"] == "0x" + (keccak(text="Nope(uint256)")[:4]
                                             + abi_encode(["uint256"], [42])).hex()
    # the passing branch still returns its value
    assert reverter.functions.requirePositive(9).call() == 9


def test_estimate_gas_reports_the_revert_reason(node: NodeProcess, w3: Web3,
                                                reverter: Contract, accounts: list[str]) -> None:
    call = {"from": accounts[0], "to": reverter.address,
            "data": reverter.encode_abi("fail", [])}
    reply = raw_call(node.url, "eth_estimateGas", [call])
    assert reply["error"]["code"] == 3
    assert reply["error"]["message"] == "execution reverted: layerlab: always fails"
    assert reply["error"]["data"] == revert_data("layerlab: always fails")
    with pytest.raises(ContractLogicError, match="layerlab: always fails"):
        reverter.functions.fail().estimate_gas({"from": accounts[0]})
    # a good call estimates enough gas to succeed with exactly that limit
    estimate = reverter.functions.set(77).estimate_gas({"from": accounts[0]})
    tx_hash = reverter.functions.set(77).transact({"from": accounts[0], "gas": estimate})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    assert receipt["status"] == 1 and receipt["gasUsed"] <= estimate
    assert reverter.functions.get().call() == 77


def test_failed_transaction_with_explicit_gas_is_mined_with_status_0(
    node: NodeProcess, w3: Web3, reverter: Contract, accounts: list[str]
) -> None:
    balance = w3.eth.get_balance(accounts[3])
    tx_hash = w3.eth.send_transaction({
        "from": accounts[3], "to": reverter.address, "gas": 100_000,
        "data": reverter.encode_abi("fail", [])})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    assert receipt["status"] == 0
    assert receipt["logs"] == []
    assert 21_000 < receipt["gasUsed"] < 100_000
    # the sender still paid for the gas it used, and its nonce advanced
    spent = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(accounts[3]) == balance - spent
    trace = rpc(node.url, "debug_traceTransaction", [tx_hash.to_0x_hex()])
    assert isinstance(trace, dict)
    assert trace["failed"] is True
    assert trace["structLogs"][-1]["op"] == "REVERT"
    assert trace["gas"] == receipt["gasUsed"]


# -- blocks, transactions, fees -----------------------------------------------------------------
def test_blocks_by_number_and_hash_agree_full_and_hashes(
    w3: Web3, token: Contract, accounts: list[str]
) -> None:
    tx_hash = token.functions.transfer(accounts[5], 1).transact({"from": accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    number = receipt["blockNumber"]
    by_number = w3.eth.get_block(number)
    by_hash = w3.eth.get_block(by_number["hash"])
    full = w3.eth.get_block(number, full_transactions=True)
    full_by_hash = w3.eth.get_block(by_number["hash"], full_transactions=True)

    assert by_number == by_hash
    assert full == full_by_hash
    assert by_number["transactions"] == [tx_hash]
    (tx,) = full["transactions"]
    assert tx["hash"] == tx_hash and tx["blockHash"] == by_number["hash"]
    assert tx["from"] == accounts[0] and tx["to"] == token.address
    assert tx == w3.eth.get_transaction(tx_hash)
    assert tx == w3.eth.get_transaction_by_block(number, 0)
    assert by_number["parentHash"] == w3.eth.get_block(number - 1)["hash"]
    assert by_number["gasUsed"] == receipt["gasUsed"]
    assert by_number["timestamp"] > w3.eth.get_block(number - 1)["timestamp"]
    assert w3.eth.get_block_transaction_count(number) == 1
    assert w3.eth.get_block("latest")["number"] == w3.eth.block_number
    assert w3.eth.get_block(0)["number"] == 0 and w3.eth.get_block("earliest")["number"] == 0
    # the block's receipts are exactly this transaction's receipt
    (block_receipt,) = w3.eth.get_block_receipts(number)
    assert block_receipt == receipt
    # unknown number and hash: null (web3 raises BlockNotFound)
    assert rpc_raw_result(w3, "eth_getBlockByNumber", [hex(number + 1000), False]) is None
    assert rpc_raw_result(w3, "eth_getBlockByHash", ["0x" + "ab" * 32, False]) is None
    assert rpc_raw_result(w3, "eth_getTransactionReceipt", ["0x" + "ab" * 32]) is None


def rpc_raw_result(w3: Web3, method: str, params: list[Any]) -> Any:
    url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
    reply = raw_call(url, method, params)
    assert "error" not in reply, reply
    return reply["result"]


def test_fee_history_matches_the_blocks(w3: Web3, token: Contract, accounts: list[str]) -> None:
    for tip in (1, 3):
        tx_hash = token.functions.transfer(accounts[6], 1).transact({
            "from": accounts[0], "maxPriorityFeePerGas": tip * 10**9,
            "maxFeePerGas": 100 * 10**9})
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    head = w3.eth.block_number
    history = w3.eth.fee_history(4, "latest", [10, 90])
    assert history["oldestBlock"] == head - 3
    assert len(history["baseFeePerGas"]) == 5 and len(history["gasUsedRatio"]) == 4
    assert len(history["reward"]) == 4
    for i, number in enumerate(range(head - 3, head + 1)):
        block = w3.eth.get_block(number)
        assert history["baseFeePerGas"][i] == block["baseFeePerGas"]
        assert history["gasUsedRatio"][i] == pytest.approx(block["gasUsed"] / block["gasLimit"])
    # the last entry is the next block's base fee, which the next block indeed has
    assert history["reward"][-2:] == [[10**9, 10**9], [3 * 10**9, 3 * 10**9]]
    next_base = history["baseFeePerGas"][-1]
    tx_hash = w3.eth.send_transaction({"from": accounts[0], "to": accounts[1], "value": 1})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    assert w3.eth.get_block(receipt["blockNumber"])["baseFeePerGas"] == next_base
    assert w3.eth.gas_price >= next_base
    assert w3.eth.max_priority_fee > 0
    # blockCount past genesis is clipped to the chain
    assert w3.eth.fee_history(1000, 2)["oldestBlock"] == 0


# -- signatures ---------------------------------------------------------------------------
def test_signatures_recover_to_the_dev_account(node: NodeProcess, accounts: list[str]) -> None:
    signer = accounts[0]
    message = b"layerlab says hi"
    sig = rpc(node.url, "eth_sign", [signer, "0x" + message.hex()])
    assert isinstance(sig, str) and len(sig) == 132
    assert Account.recover_message(encode_defunct(primitive=message), signature=sig) == signer

    sig = rpc(node.url, "personal_sign", ["0x" + message.hex(), signer])
    assert Account.recover_message(encode_defunct(primitive=message), signature=sig) == signer
    # a different account gives a different signer
    other = rpc(node.url, "personal_sign", ["0x" + message.hex(), accounts[1]])
    assert Account.recover_message(encode_defunct(primitive=message), signature=other) \
        == accounts[1]

    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
            "Mail": [{"name": "from", "type": "address"}, {"name": "contents", "type": "string"},
                     {"name": "amount", "type": "uint256"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "layerlab", "version": "1", "chainId": 31337,
                   "verifyingContract": "0x" + "cc" * 20},
        "message": {"from": signer, "contents": "hello", "amount": 5},
    }
    signable = encode_typed_data(full_message=typed)
    for payload in (typed, json.dumps(typed)):  # as an object and as JSON text (MetaMask)
        sig = rpc(node.url, "eth_signTypedData_v4", [signer, payload])
        assert Account.recover_message(signable, signature=sig) == signer
    # signing for an account the node has no key for is refused
    reply = raw_call(node.url, "eth_sign", ["0x" + "12" * 20, "0x00"])
    assert reply["error"]["code"] == -32000


# -- filters -------------------------------------------------------------------------------
def test_filters_report_changes_once(
    node: NodeProcess, w3: Web3, token: Contract, accounts: list[str]
) -> None:
    log_filter = rpc(node.url, "eth_newFilter", [{"address": token.address,
                                                  "topics": ["0x" + TRANSFER_TOPIC.hex()]}])
    block_filter = rpc(node.url, "eth_newBlockFilter")
    pending_filter = rpc(node.url, "eth_newPendingTransactionFilter")
    assert len({log_filter, block_filter, pending_filter}) == 3
    # nothing happened yet
    for fid in (log_filter, block_filter, pending_filter):
        assert rpc(node.url, "eth_getFilterChanges", [fid]) == []

    sent = [token.functions.transfer(accounts[7], n).transact({"from": accounts[0]})
            for n in (100, 200)]
    sent.append(w3.eth.send_transaction({"from": accounts[0], "to": accounts[1], "value": 9}))
    receipts = [w3.eth.wait_for_transaction_receipt(h, timeout=WAIT) for h in sent]

    logs = rpc(node.url, "eth_getFilterChanges", [log_filter])
    assert isinstance(logs, list)
    assert [int(entry["data"], 16) for entry in logs] == [100, 200]
    assert [entry["transactionHash"] for entry in logs] == [h.to_0x_hex() for h in sent[:2]]
    blocks = rpc(node.url, "eth_getFilterChanges", [block_filter])
    assert blocks == [r["blockHash"].to_0x_hex() for r in receipts]
    pending = rpc(node.url, "eth_getFilterChanges", [pending_filter])
    assert pending == [h.to_0x_hex() for h in sent]
    # changes are consumed by the poll
    for fid in (log_filter, block_filter, pending_filter):
        assert rpc(node.url, "eth_getFilterChanges", [fid]) == []
    # getFilterLogs replays everything that matches the filter's range (latest..latest)
    assert rpc(node.url, "eth_getFilterLogs", [log_filter]) == []

    assert rpc(node.url, "eth_uninstallFilter", [block_filter]) is True
    assert rpc(node.url, "eth_uninstallFilter", [block_filter]) is False
    reply = raw_call(node.url, "eth_getFilterChanges", [block_filter])
    assert reply["error"]["code"] == -32000 and "filter not found" in reply["error"]["message"]


def test_web3_filter_objects(w3: Web3, token: Contract, accounts: list[str]) -> None:
    event_filter = token.events.Transfer.create_filter(from_block="latest",
                                                       argument_filters={"to": accounts[9]})
    block_filter = w3.eth.filter("latest")
    tx_hash = token.functions.transfer(accounts[9], 31).transact({"from": accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    (entry,) = event_filter.get_new_entries()
    assert entry.args["value"] == 31 and entry.transactionHash == tx_hash
    assert block_filter.get_new_entries() == [receipt["blockHash"]]


# -- debug trace ---------------------------------------------------------------------------
def test_debug_trace_struct_logs_account_for_the_receipt_gas(
    node: NodeProcess, w3: Web3, reverter: Contract, accounts: list[str]
) -> None:
    tx_hash = reverter.functions.set(5).transact({"from": accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    tx = w3.eth.get_transaction(tx_hash)
    trace = rpc(node.url, "debug_traceTransaction", [tx_hash.to_0x_hex()])
    assert isinstance(trace, dict)
    assert trace["gas"] == receipt["gasUsed"]
    assert trace["failed"] is False
    steps = trace["structLogs"]
    assert steps[0]["pc"] == 0 and steps[0]["depth"] == 1
    assert steps[-1]["op"] in ("STOP", "RETURN")
    ops = [s["op"] for s in steps]
    assert "SSTORE" in ops and "LOG2" in ops
    # gas at the first opcode is the limit minus the intrinsic cost; each step's gas drops by
    # the previous step's cost
    data = bytes(tx["input"])
    intrinsic = 21_000 + sum(4 if b == 0 else 16 for b in data)
    assert steps[0]["gas"] == tx["gas"] - intrinsic
    for prev, cur in itertools.pairwise(steps):
        assert cur["gas"] == prev["gas"] - prev["gasCost"]
    # the gas the opcodes spent, plus intrinsic gas, minus the SSTORE refund, is the receipt's
    executed = steps[0]["gas"] - (steps[-1]["gas"] - steps[-1]["gasCost"])
    assert intrinsic + executed >= receipt["gasUsed"]
    # stack snapshots are hex words; SSTORE shows the stored slot and value
    sstore = next(s for s in steps if s["op"] == "SSTORE")
    assert sstore["storage"] == {"0" * 64: "0" * 63 + "5"}
    # options: disableStack drops stacks; a tracer not served is refused
    light = rpc(node.url, "debug_traceTransaction", [tx_hash.to_0x_hex(), {"disableStack": True}])
    assert isinstance(light, dict) and "stack" not in light["structLogs"][0]
    reply = raw_call(node.url, "debug_traceTransaction",
                     [tx_hash.to_0x_hex(), {"tracer": "4byteTracer"}])
    assert reply["error"]["code"] == -32602


# -- pending nonce (manual mining) --------------------------------------------------------------
@pytest.fixture()
def manual_node() -> Iterator[NodeProcess]:
    with NodeProcess("--no-mining") as proc:
        yield proc


def test_pending_transaction_count_in_manual_mode(manual_node: NodeProcess) -> None:
    w3 = Web3(Web3.HTTPProvider(manual_node.url, request_kwargs={"timeout": WAIT}))
    sender, key = DEV[2].address, DEV[2].private_key
    assert w3.eth.get_transaction_count(sender, "pending") == 0
    hashes = []
    for nonce in range(3):
        signed = Account.sign_transaction({
            "chainId": 31337, "nonce": nonce, "to": DEV[3].address, "value": 1, "gas": 21_000,
            "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}, key)
        hashes.append(w3.eth.send_raw_transaction(signed.raw_transaction))
    # a web3-signed one picks the pending nonce itself
    hashes.append(w3.eth.send_transaction({"from": sender, "to": DEV[3].address, "value": 1}))
    assert w3.eth.block_number == 0
    assert w3.eth.get_transaction_count(sender, "latest") == 0
    assert w3.eth.get_transaction_count(sender, "pending") == 4
    pending_tx = w3.eth.get_transaction(hashes[0])
    assert pending_tx["blockNumber"] is None and pending_tx["from"] == sender
    assert w3.eth.get_transaction(hashes[3])["nonce"] == 3
    assert rpc(manual_node.url, "txpool_status") == {"pending": "0x4", "queued": "0x0"}
    reply = raw_call(manual_node.url, "eth_getTransactionReceipt", [hashes[0].to_0x_hex()])
    assert reply["result"] is None

    rpc(manual_node.url, "evm_mine")
    assert w3.eth.block_number == 1
    receipts = [w3.eth.get_transaction_receipt(h) for h in hashes]
    assert [r["status"] for r in receipts] == [1, 1, 1, 1]
    assert [r["transactionIndex"] for r in receipts] == [0, 1, 2, 3]
    assert w3.eth.get_transaction_count(sender, "latest") == 4
    assert w3.eth.get_transaction_count(sender, "pending") == 4
    assert rpc(manual_node.url, "txpool_status") == {"pending": "0x0", "queued": "0x0"}
