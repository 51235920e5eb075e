"""``eth_simulateV1`` against raw requests and web3.py, on one in-process node.

Expectations come from the execution-apis test vectors (``tests/eth_simulateV1/*.io``:
their error codes and wording, and the receipts root of blocks of plain transfers, which
depends only on the receipts), from web3.py's own module test of the method, and from the
EVM itself (NUMBER, TIMESTAMP, BALANCE and SLOAD read back by the simulated calls).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_hash.auto import keccak
from web3 import Web3

from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.launcher import BackgroundNode
from layerlab.l1.node import Node
from tests.nodeproc import rpc

C0, C1, C2, C3 = ("0xc" + str(i) + "00000000000000000000000000000000000000" for i in range(4))
COUNTER = "0x" + "c0de" * 10
EMITTER = "0x" + "e1" * 20
REVERTER = "0x" + "dead" * 10
# slot0 += 1; return slot0
COUNTER_CODE = "0x" + "600054" + "600101" + "80" + "600055" + "600052" + "60206000f3"
TOPIC = "0x" + "ab" * 32
# mstore(0, 42); log1(0, 32, TOPIC); stop
EMITTER_CODE = "0x602a600052" + "7f" + "ab" * 32 + "60206000a100"
REVERT_CODE = "0x60006000fd"
RETURN_NUMBER = "0x4360005260206000f3"      # return NUMBER
RETURN_TIMESTAMP = "0x4260005260206000f3"   # return TIMESTAMP
# receipts root of a block holding two successful 21,000-gas transactions without logs,
# as in execution-apis' ethSimulate-transfer-over-BlockStateCalls.io
TWO_TRANSFERS_RECEIPTS_ROOT = "0x75308898d571eafb5cd8cde8278bf5b3d13c5f6ec074926de3bb895b519264e1"
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def balance_reader(address: str) -> str:
    """Code returning BALANCE(address)."""
    return "0x73" + address[2:] + "3160005260206000f3"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with BackgroundNode(Node(ChainConfig())) as node_url:
        yield node_url


def simulate(url: str, opts: dict[str, Any], block: str = "latest") -> list[dict[str, Any]]:
    result = rpc(url, "eth_simulateV1", [opts, block])
    assert isinstance(result, list)
    return result


def error_of(url: str, opts: Any) -> dict[str, Any]:
    with pytest.raises(RuntimeError) as info:
        rpc(url, "eth_simulateV1", [opts, "latest"])
    err: dict[str, Any] = info.value.args[0]
    return err


def word(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def test_transfers_and_contract_calls_chain_across_blocks(url: str) -> None:
    head_before = rpc(url, "eth_blockNumber")
    blocks = simulate(url, {"blockStateCalls": [
        {"stateOverrides": {C0: {"balance": hex(5000)},
                            COUNTER: {"code": COUNTER_CODE}},
         "calls": [{"from": C0, "to": C1, "value": hex(2000)},
                   {"from": C0, "to": C3, "value": hex(2000)},
                   {"from": C0, "to": COUNTER},
                   {"from": C0, "to": COUNTER}]},
        {"stateOverrides": {C3: {"balance": hex(5000)}},
         "calls": [{"from": C1, "to": C2, "value": hex(1000)},
                   {"from": C3, "to": C2, "value": hex(1000)},
                   {"from": C1, "to": COUNTER}]},
        {"stateOverrides": {EMITTER: {"code": balance_reader(C2)}},
         "calls": [{"from": C1, "to": EMITTER}, {"from": C1, "to": C0}]},
    ]})
    assert len(blocks) == 3
    first, second, third = blocks
    head = int(str(head_before), 16)
    assert [int(b["number"], 16) for b in blocks] == [head + 1, head + 2, head + 3]
    assert second["parentHash"] == first["hash"] and third["parentHash"] == second["hash"]
    # the counter's storage carries from block to block
    assert [c["returnData"] for c in first["calls"][2:]] == [word(1), word(2)]
    assert second["calls"][2]["returnData"] == word(3)
    # C1 spends in block 2 what it got in block 1; C2 then holds both transfers
    assert third["calls"][0]["returnData"] == word(2000)
    assert all(c["status"] == "0x1" for b in blocks for c in b["calls"])
    assert [c["gasUsed"] for c in first["calls"][:2]] == [hex(21_000)] * 2
    assert first["gasUsed"] == hex(sum(int(c["gasUsed"], 16) for c in first["calls"]))
    assert len(first["transactions"]) == 4 and first["baseFeePerGas"] == "0x0"
    # two plain transfers: the same receipts root as the execution-apis vector's
    two = simulate(url, {"blockStateCalls": [{
        "stateOverrides": {C0: {"balance": hex(5000)}},
        "calls": [{"from": C0, "to": C1, "value": hex(2000)},
                  {"from": C0, "to": C3, "value": hex(2000)}]}]})
    assert two[0]["receiptsRoot"] == TWO_TRANSFERS_RECEIPTS_ROOT
    # nothing reached the chain
    assert rpc(url, "eth_blockNumber") == head_before
    assert rpc(url, "eth_getBalance", [C2, "latest"]) == "0x0"
    assert rpc(url, "eth_getCode", [COUNTER, "latest"]) == "0x"


def test_block_overrides_fill_gaps_and_reach_the_evm(url: str) -> None:
    head = rpc(url, "eth_getBlockByNumber", ["latest", False])
    assert isinstance(head, dict)
    number, time = int(head["number"], 16), int(head["timestamp"], 16)
    blocks = simulate(url, {"blockStateCalls": [
        {"blockOverrides": {"number": hex(number + 3), "time": hex(time + 100),
                            "feeRecipient": C3, "baseFeePerGas": "0x7"},
         "stateOverrides": {COUNTER: {"code": RETURN_NUMBER},
                            EMITTER: {"code": RETURN_TIMESTAMP}},
         "calls": [{"from": C1, "to": COUNTER}, {"from": C1, "to": EMITTER}]},
        {"calls": [{"from": C1, "to": EMITTER}]},
    ]})
    # two empty blocks fill the gap, 12 s apart (geth's default increment)
    assert [int(b["number"], 16) for b in blocks] == [number + i for i in (1, 2, 3, 4)]
    assert [int(b["timestamp"], 16) for b in blocks] == [time + 12, time + 24, time + 100,
                                                         time + 112]
    assert blocks[0]["calls"] == [] and blocks[1]["calls"] == []
    third = blocks[2]
    assert third["calls"][0]["returnData"] == word(number + 3)
    assert third["calls"][1]["returnData"] == word(time + 100)
    assert third["miner"] == Web3.to_checksum_address(C3) and third["baseFeePerGas"] == "0x7"
    assert blocks[3]["calls"][0]["returnData"] == word(time + 112)


def test_trace_transfers_adds_erc7528_logs_in_order_and_drops_reverted_ones(url: str) -> None:
    opts: dict[str, Any] = {"blockStateCalls": [{
        "stateOverrides": {C0: {"balance": hex(10_000)}, EMITTER: {"code": EMITTER_CODE},
                           REVERTER: {"code": REVERT_CODE}},
        "calls": [{"from": C0, "to": C1, "value": hex(1000)},
                  {"from": C0, "to": EMITTER, "value": hex(5)},
                  {"from": C0, "to": REVERTER, "value": hex(7)}]}]}
    plain = simulate(url, opts)[0]["calls"]
    assert plain[0]["logs"] == []
    assert [entry["topics"] for entry in plain[1]["logs"]] == [[TOPIC]]
    traced_block = simulate(url, {**opts, "traceTransfers": True})[0]
    traced = traced_block["calls"]
    transfer = traced[0]["logs"]
    assert len(transfer) == 1
    assert transfer[0]["address"].lower() == "0x" + "ee" * 20
    assert transfer[0]["topics"] == [TRANSFER_TOPIC, "0x" + "00" * 12 + C0[2:],
                                     "0x" + "00" * 12 + C1[2:]]
    assert transfer[0]["data"] == word(1000)
    # the value moves before the callee runs, so its log comes first
    assert [entry["topics"][0] for entry in traced[1]["logs"]] == [TRANSFER_TOPIC, TOPIC]
    assert [entry["logIndex"] for b in traced for entry in b["logs"]] == ["0x0", "0x1", "0x2"]
    assert traced[1]["logs"][1]["blockHash"] == traced_block["hash"]
    # a reverted call keeps no logs; its error is geth's revert (code 3)
    assert traced[2]["status"] == "0x0" and traced[2]["logs"] == []
    assert traced[2]["error"]["code"] == 3
    assert traced[2]["error"]["message"] == "execution reverted"
    # synthetic logs are not part of the receipts: the logs bloom holds only the real one
    bloom = int(traced_block["logsBloom"], 16)
    assert bloom == int(simulate(url, opts)[0]["logsBloom"], 16) != 0
    assert "0x" + keccak(b"Transfer(address,address,uint256)").hex() == TRANSFER_TOPIC


def test_validation_checks_nonces_and_fees(url: str) -> None:
    fund = {C0: {"balance": hex(10**18), "nonce": hex(10)}}
    without = simulate(url, {"blockStateCalls": [{
        "stateOverrides": fund, "calls": [{"from": C0, "to": C1, "nonce": "0x0"}]}]})
    assert without[0]["calls"][0]["status"] == "0x1"  # nonces are not checked by default
    too_low = error_of(url, {"validation": True, "blockStateCalls": [{
        "stateOverrides": fund, "calls": [{"from": C0, "to": C1, "nonce": "0x0"}]}]})
    assert too_low["code"] == -38010 and "nonce too low" in too_low["message"]
    too_high = error_of(url, {"validation": True, "blockStateCalls": [{
        "stateOverrides": fund, "calls": [{"from": C0, "to": C1, "nonce": "0xb"}]}]})
    assert too_high["code"] == -38011 and "nonce too high" in too_high["message"]
    fee = error_of(url, {"validation": True, "blockStateCalls": [{
        "stateOverrides": fund, "calls": [{"from": C0, "to": C1, "nonce": "0xa"}]}]})
    assert fee["code"] == -38012
    assert "max fee per gas less than block base fee" in fee["message"]


def test_errors_follow_the_execution_apis_codes(url: str) -> None:
    assert error_of(url, {"blockStateCalls": []})["code"] == -32602
    assert error_of(url, {"blockStateCalls": [{"callz": []}]})["code"] == -32602
    # ethSimulate-simple-no-funds.io
    no_funds = error_of(url, {"blockStateCalls": [{"calls": [
        {"from": C0, "to": C1, "value": "0x3e8"}]}]})
    assert no_funds["code"] == -38014
    assert ("insufficient funds for gas * price + value: address " + C0
            + " have 0 want 1000") in no_funds["message"]
    # ethSimulate-block-num-order-38020.io
    order = error_of(url, {"blockStateCalls": [
        {"blockOverrides": {"number": "0x78"}}, {"blockOverrides": {"number": "0x6e"}}]})
    assert order == {"code": -38020, "message": "block numbers must be in order: 110 <= 120"}
    head = rpc(url, "eth_getBlockByNumber", ["latest", False])
    assert isinstance(head, dict)
    time = int(head["timestamp"], 16)
    stamp = error_of(url, {"blockStateCalls": [
        {"blockOverrides": {"time": hex(time + 50)}}, {"blockOverrides": {"time": hex(time + 40)}}]})
    assert stamp == {"code": -38021, "message":
                     f"block timestamps must be in order: {time + 40} <= {time + 50}"}
    intrinsic = error_of(url, {"blockStateCalls": [{"calls": [
        {"from": C0, "to": C1, "gas": hex(20_999)}]}]})
    assert intrinsic["code"] == -38013
    full = error_of(url, {"blockStateCalls": [{"blockOverrides": {"gasLimit": hex(100_000)},
                                               "calls": [{"from": C0, "to": C1, "gas": hex(90_000)},
                                                         {"from": C0, "to": C1, "gas": hex(90_000)}]}]})
    # (21,000 used by the first leaves 79,000)
    assert full["code"] == -38015
    number = int(head["number"], 16)
    too_many = error_of(url, {"blockStateCalls": [{"blockOverrides": {"number": hex(number + 257)}}]})
    assert too_many == {"code": -38026, "message": "too many blocks"}


def test_web3_simulate_v1(url: str) -> None:
    """web3.py's own module test of the method (web3/_utils/module_testing/eth_module.py)."""
    w3 = Web3(Web3.HTTPProvider(url))
    result = w3.eth.simulate_v1({  # type: ignore[typeddict-unknown-key]
        "blockStateCalls": [{
            "blockOverrides": {"baseFeePerGas": 10},
            "stateOverrides": {"0xc100000000000000000000000000000000000000": {"balance": 500000000}},
            "calls": [{"from": "0xc100000000000000000000000000000000000000",
                       "to": "0xc100000000000000000000000000000000000000",
                       "maxFeePerGas": 10, "maxPriorityFeePerGas": 10}],
        }],
        "validation": True,
        "traceTransfers": True,
    }, "latest")
    assert len(result) == 1
    block = result[0]
    assert block["baseFeePerGas"] == 10
    calls = block["calls"]
    assert len(calls) == 1 and calls[0]["status"] == 1 and calls[0]["gasUsed"] == 21_000
    full = w3.eth.simulate_v1({"blockStateCalls": [{"calls": [{"from": C1, "to": C2}]}],
                               "returnFullTransactions": True}, "latest")
    tx = full[0]["transactions"][0]
    assert tx["from"] == Web3.to_checksum_address(C1) and tx["to"] == Web3.to_checksum_address(C2)
