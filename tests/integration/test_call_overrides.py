"""eth_call state overrides (geth's fourth-party simulation API) apply to the call only."""

from __future__ import annotations

import pytest
from web3 import Web3

from layerlab.contracts import deploy, load_artifact
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

SLOT0 = "0x" + "00" * 32


def word(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def test_state_diff_balance_and_code_overrides(node: NodeProcess, w3: Web3) -> None:
    sender = w3.eth.accounts[0]
    reverter = deploy(w3, load_artifact("Reverter"), sender=sender)
    get = reverter.functions.get()._encode_transaction_data()
    call = {"to": reverter.address, "data": get}

    assert rpc(node.url, "eth_call", [call, "latest", {reverter.address: {"stateDiff": {SLOT0: word(42)}}}]) \
        == word(42)
    assert rpc(node.url, "eth_call", [call, "latest"]) == word(0)  # nothing persisted

    stranger = "0x" + "12" * 20
    transfer = {"from": stranger, "to": sender, "value": hex(10**18)}
    with pytest.raises(RuntimeError):
        rpc(node.url, "eth_call", [transfer, "latest"])  # cannot afford the value
    assert rpc(node.url, "eth_call", [transfer, "latest", {stranger: {"balance": hex(10**19)}}]) == "0x"

    # code override: make an empty address answer with the Reverter's runtime code
    empty = "0x" + "34" * 20
    runtime = "0x" + load_artifact("Reverter").deployed_bytecode.hex()
    assert rpc(node.url, "eth_call", [{"to": empty, "data": get}, "latest",
                                     {empty: {"code": runtime, "state": {SLOT0: word(7)}}}]) == word(7)


def test_malformed_overrides_are_invalid_params(node: NodeProcess) -> None:
    bad_sets = [
        ["0x00"],
        {"0x12": {"balance": "0x1"}},
        {"0x" + "12" * 20: {"balanse": "0x1"}},
        {"0x" + "12" * 20: {"state": {}, "stateDiff": {}}},
        {"0x" + "12" * 20: {"balance": hex(2**256)}},
    ]
    for overrides in bad_sets:
        with pytest.raises(RuntimeError) as info:
            rpc(node.url, "eth_call", [{"to": "0x" + "12" * 20}, "latest", overrides])
        assert info.value.args[0]["code"] == -32602
