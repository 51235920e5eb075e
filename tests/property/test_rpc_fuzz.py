"""Fuzz every JSON-RPC method's parameters against one real node process.

Property: whatever the parameters, the node answers with a well-formed JSON-RPC 2.0
response (``result``, or ``error`` with an integer ``code`` and a string ``message``),
never with -32603 (an internal error means an unhandled exception: a bug), and it keeps
serving. Parameters are random JSON values biased towards what the parsers look for
(hex quantities, addresses, hashes, block tags, call and filter objects), so that they
get past the first check as well as fail it.

Methods whose cost grows with a parameter (mining N blocks, interval mining every N ms)
draw their numbers from a bounded range, so the run stays within its time budget.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l1.rpc.methods import rpc_functions
from tests.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()


def method_table() -> list[str]:
    """Every RPC method name the server dispatches (the namespaces' table)."""
    return sorted(set(rpc_functions()) | {"eth_subscribe", "eth_unsubscribe"})


METHODS = method_table()
BOUNDED = {"evm_mine", "anvil_mine", "hardhat_mine", "evm_setIntervalMining"}

# -- strategies ------------------------------------------------------------------------------
hex_quantity = st.integers(min_value=0, max_value=2**260).map(hex)
small_quantity = st.integers(min_value=0, max_value=3)
hex_data = st.binary(max_size=72).map(lambda b: "0x" + b.hex())
address = st.one_of(st.sampled_from([a.address for a in DEV]),
                    st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()))
hash32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
tag = st.sampled_from(["latest", "earliest", "pending", "safe", "finalized", "0x0", "0x1"])
odd = st.sampled_from(["0x", "0x0", "0xg1", "0x1_0", " 0x1", "0X1F", "-0x1", "1e3", "",
                       "0x" + "0" * 64, "0x" + "f" * 65, "latest ", "\u00e9", "\x00"])
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    hex_quantity, hex_data, address, hash32, tag, odd,
)
OBJECT_KEYS = ["from", "to", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas",
               "value", "data", "input", "nonce", "chainId", "type", "accessList",
               "fromBlock", "toBlock", "address", "topics", "blockHash", "blockNumber",
               "timestamp", "blocks", "tracer", "disableStack", "enableMemory",
               "types", "primaryType", "domain", "message", "junk"]


def json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(OBJECT_KEYS), st.text(max_size=6)),
                            children, max_size=5),
        ),
        max_leaves=10,
    )


call_object = st.fixed_dictionaries(
    {}, optional={"from": address, "to": address, "data": hex_data, "value": hex_quantity,
                  "gas": hex_quantity, "gasPrice": scalar, "nonce": scalar})
filter_object = st.fixed_dictionaries(
    {}, optional={"fromBlock": st.one_of(tag, hex_quantity), "toBlock": st.one_of(tag, scalar),
                  "address": st.one_of(address, st.lists(address, max_size=3), scalar),
                  "topics": st.lists(st.one_of(st.none(), hash32, st.lists(hash32, max_size=2),
                                               scalar), max_size=4),
                  "blockHash": st.one_of(hash32, scalar)})
any_value = json_values(st.one_of(scalar, call_object, filter_object))
interval_value = st.one_of(
    st.sampled_from([0, "0x0", -1, 1.5, "0x", [], {}, None, True]), st.integers(60_000, 2**65),
    st.text(max_size=5),
)
bounded_value = st.one_of(
    small_quantity, small_quantity.map(hex), st.none(), st.booleans(), st.text(max_size=5),
    st.sampled_from([-1, 1.5, "0x", [], {}]),
    st.fixed_dictionaries({}, optional={"blocks": small_quantity, "timestamp": scalar}),
)


# Filled by the fixture with hashes and ids that exist on the fuzzed node, so that lookups
# also take their success paths; drawn at generation time.
KNOWN: dict[str, list[str]] = {"tx": [], "block": [], "contract": [], "runtime": []}


def known(kind: str, fallback: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(fallback, st.integers(min_value=0, max_value=63).map(
        lambda i: KNOWN[kind][i % len(KNOWN[kind])] if KNOWN[kind] else "0x" + "00" * 32))


some_address = st.one_of(address, known("contract", address))
block_id = st.one_of(tag, st.integers(min_value=0, max_value=40).map(hex), hex_quantity,
                     known("block", hash32), known("block", hash32).map(lambda h: {"blockHash": h}),
                     st.integers(min_value=0, max_value=40).map(lambda n: {"blockNumber": hex(n)}))
quantity = st.one_of(hex_quantity, st.integers(min_value=0, max_value=2**64 + 1),
                     st.integers(min_value=0, max_value=5_000).map(hex))
word = st.binary(max_size=33).map(lambda b: "0x" + b.hex())
tx_object = st.fixed_dictionaries(
    {}, optional={"from": st.one_of(st.sampled_from([a.address for a in DEV]), address),
                  "to": some_address, "value": st.integers(0, 10**18).map(hex),
                  "data": st.one_of(hex_data, st.sampled_from(
                      ["0xa9059cbb" + "00" * 64, "0xa9cc4718", "0x6d4ce63c", "0x"])),
                  "gas": st.one_of(st.integers(0, 40_000_000).map(hex), hex_quantity),
                  "gasPrice": st.integers(0, 10**11).map(hex),
                  "maxFeePerGas": st.integers(0, 10**11).map(hex),
                  "maxPriorityFeePerGas": st.integers(0, 10**10).map(hex),
                  "nonce": st.integers(0, 70).map(hex), "type": st.sampled_from(["0x0", "0x2"]),
                  "accessList": st.just([])})


@st.composite
def raw_transaction(draw: st.DrawFn) -> str:
    """A really signed transaction with random fields, sometimes corrupted afterwards."""
    from eth_account import Account
    from eth_utils import to_checksum_address

    key = DEV[draw(st.integers(0, 9))].private_key
    tx: dict[str, Any] = {
        "chainId": draw(st.sampled_from([31337, 31337, 31337, 1])),
        "nonce": draw(st.one_of(st.integers(0, 6), st.integers(0, 80))),
        "to": draw(st.one_of(st.none(), address.map(to_checksum_address))),
        "value": draw(st.one_of(st.integers(0, 10**18), st.integers(0, 10**22))),
        "gas": draw(st.one_of(st.integers(21_000, 200_000), st.integers(0, 31_000_000))),
        "data": draw(st.binary(max_size=40)),
    }
    if tx["to"] is None:
        del tx["to"]
        tx["gas"] = max(tx["gas"], 60_000)
    if draw(st.booleans()):
        tx["gasPrice"] = draw(st.integers(0, 10**11))
    else:
        tx["maxFeePerGas"] = draw(st.integers(0, 10**11))
        tx["maxPriorityFeePerGas"] = draw(st.integers(0, tx["maxFeePerGas"] + 1))
    raw = bytearray(Account.sign_transaction(tx, key).raw_transaction)
    corruption = draw(st.sampled_from(["none", "none", "flip", "truncate", "extend"]))
    if corruption == "flip":
        i = draw(st.integers(0, len(raw) - 1))
        raw[i] ^= draw(st.integers(1, 255))
    elif corruption == "truncate":
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    elif corruption == "extend":
        raw += draw(st.binary(min_size=1, max_size=8))
    return "0x" + raw.hex()


typed_data = st.fixed_dictionaries({
    "types": st.one_of(st.just({
        "EIP712Domain": [{"name": "name", "type": "string"}],
        "Mail": [{"name": "contents", "type": "string"}, {"name": "n", "type": "uint8"}]}),
        json_values(scalar)),
    "primaryType": st.sampled_from(["Mail", "EIP712Domain", "Nope"]),
    "domain": st.one_of(st.just({"name": "x"}), json_values(scalar)),
    "message": st.one_of(st.fixed_dictionaries({"contents": st.text(max_size=8),
                                                "n": st.integers(-5, 300)}),
                         json_values(scalar)),
})

# Installed code without JUMP/JUMPI cannot loop, so a call into it ends within its length
# (random bytecode with a tight loop would burn the 30M gas allowance in py-evm for seconds).
loop_free_code = st.binary(max_size=72).map(
    lambda b: "0x" + b.replace(b"\x56", b"\x00").replace(b"\x57", b"\x00").hex())

PARAMS: dict[str, st.SearchStrategy[Any]] = {
    "address": some_address, "balance": quantity, "block": block_id, "newest": block_id,
    "block_hash": known("block", hash32), "tx_hash": known("tx", hash32),
    "code": st.one_of(loop_free_code, known("runtime", loop_free_code)), "count": quantity,
    "data": hex_data, "message": hex_data, "enabled": st.booleans(), "evidence": hex_data,
    "addr": st.one_of(st.just("127.0.0.1:9"), st.text(max_size=20)),
    "fid": st.integers(0, 12).map(hex), "flt": filter_object, "full": st.booleans(),
    "index": st.integers(0, 4).map(hex), "interval": quantity,
    "ms": st.one_of(st.just(0), st.integers(60_000, 2**65)), "nonce": quantity,
    "options": st.fixed_dictionaries({}, optional={
        "tracer": st.sampled_from(["", "callTracer"]), "disableStack": st.booleans(),
        "enableMemory": st.booleans(), "disableStorage": st.booleans()}),
    "overrides": any_value,
    "percentiles": st.one_of(st.lists(st.floats(0, 100), max_size=4).map(sorted),
                             st.lists(scalar, max_size=3)),
    "raw": raw_transaction(), "seconds": quantity, "slot": st.one_of(word, quantity),
    "value": word, "snapshot_id": st.integers(0, 8).map(hex),
    "keys": st.lists(st.one_of(word, quantity, any_value), max_size=3),
    "requests": st.one_of(st.dictionaries(some_address, st.lists(word, max_size=3), max_size=2),
                          any_value),
    "timestamp": quantity, "tx": tx_object, "typed": st.one_of(typed_data,
                                                              typed_data.map(json.dumps)),
}
BOUNDED_PARAMS: dict[str, st.SearchStrategy[Any]] = {
    "count": st.one_of(small_quantity, small_quantity.map(hex)),
    "timestamp": st.one_of(quantity, st.fixed_dictionaries(
        {}, optional={"blocks": small_quantity, "timestamp": quantity})),
}


def junk_for(method: str) -> st.SearchStrategy[Any]:
    """Arbitrary values for ``method``, within its cost bound if it has one."""
    if method == "evm_setIntervalMining":  # 0 (off) or at least a minute: never a busy loop
        return interval_value
    return bounded_value if method in BOUNDED else any_value


def method_function(method: str) -> Any:
    return rpc_functions()[method]


def typed_params(method: str) -> st.SearchStrategy[list[Any]]:
    """Mostly well-typed parameters for ``method``, then perhaps one thing made wrong."""
    if method in ("eth_subscribe", "eth_unsubscribe"):
        kinds = st.sampled_from(["newHeads", "logs", "newPendingTransactions", "syncing", "x"])
        return st.lists(st.one_of(kinds, filter_object, any_value), max_size=3)
    params = list(inspect.signature(method_function(method)).parameters.values())[1:]
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    table = {**PARAMS, **BOUNDED_PARAMS} if method in BOUNDED else PARAMS
    if method == "eth_sendTransaction":
        table = {**table, "tx": tx_object.flatmap(lambda tx: st.sampled_from(DEV).map(
            lambda a: {**tx, "from": tx.get("from", a.address)}))}
    strategies = [table[p.name] for p in params]

    @st.composite
    def build(draw: st.DrawFn) -> list[Any]:
        n = draw(st.integers(required, len(params)))
        values = [draw(strategies[i]) for i in range(n)]
        mutation = draw(st.sampled_from(["none", "none", "none", "replace", "append", "drop"]))
        if mutation == "replace" and values:
            values[draw(st.integers(0, len(values) - 1))] = draw(
                junk_for(method))
        elif mutation == "append":
            values.append(draw(junk_for(method)))
        elif mutation == "drop" and values:
            values.pop()
        return values

    return build()


def params_for(method: str) -> st.SearchStrategy[Any]:
    values = junk_for(method)
    # now and then not an array at all, which is itself a -32602
    typed = typed_params(method)
    return st.one_of(typed, typed, typed, typed, typed, st.lists(values, max_size=4), values)


RANDOM_METHODS = list(METHODS)

requests = st.sampled_from(RANDOM_METHODS).flatmap(
    lambda m: st.tuples(st.just(m), params_for(m)))


# -- checks ------------------------------------------------------------------------------
def post(url: str, payload: Any) -> Any:
    body = json.dumps(payload).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def check_reply(reply: Any, req_id: Any, context: Any) -> None:
    assert isinstance(reply, dict), (context, reply)
    assert reply.get("jsonrpc") == "2.0", (context, reply)
    assert reply.get("id") == req_id, (context, reply)
    assert ("result" in reply) != ("error" in reply), (context, reply)
    if "error" in reply:
        err = reply["error"]
        assert isinstance(err, dict), (context, reply)
        assert isinstance(err.get("code"), int) and not isinstance(err["code"], bool), \
            (context, reply)
        assert isinstance(err.get("message"), str) and err["message"], (context, reply)
        assert err["code"] != -32603, (context, reply)
        assert err["code"] in (-32700, -32600, -32601, -32602, -32000, 3), (context, reply)


@pytest.fixture(scope="module")
def fuzz_node() -> Iterator[NodeProcess]:
    """One node with a little history: a token, a Reverter, transfers, a failed call."""
    from web3 import Web3

    from layerlab.contracts import deploy, load_artifact

    with NodeProcess() as proc:
        w3 = Web3(Web3.HTTPProvider(proc.url, request_kwargs={"timeout": 60}))
        token = deploy(w3, load_artifact("LabToken"), "F", "F", 10**24, sender=DEV[0].address)
        reverter = deploy(w3, load_artifact("Reverter"), sender=DEV[0].address)
        hashes = [token.functions.transfer(DEV[1].address, 5).transact({"from": DEV[0].address}),
                  reverter.functions.set(3).transact({"from": DEV[0].address}),
                  reverter.functions.fail().transact({"from": DEV[0].address, "gas": 50_000})]
        receipts = [w3.eth.wait_for_transaction_receipt(h, timeout=60) for h in hashes]
        KNOWN["tx"][:] = [h.to_0x_hex() for h in hashes]
        KNOWN["block"][:] = [r["blockHash"].to_0x_hex() for r in receipts]
        KNOWN["contract"][:] = [token.address, reverter.address]
        KNOWN["runtime"][:] = ["0x" + load_artifact("Reverter").deployed_bytecode.hex()]
        yield proc


def assert_up(node: NodeProcess) -> None:
    assert node.proc is not None and node.proc.poll() is None, node.log()
    reply = post(node.url, {"jsonrpc": "2.0", "id": "up", "method": "eth_chainId"})
    assert reply == {"jsonrpc": "2.0", "id": "up", "result": "0x7a69"}


def test_method_table_is_complete() -> None:
    """The fuzzed table covers the issue's methods (a renamed method must not escape it)."""
    for name in ("eth_call", "eth_estimateGas", "eth_getLogs", "eth_feeHistory",
                 "eth_sendRawTransaction", "eth_signTypedData_v4", "debug_traceTransaction",
                 "evm_snapshot", "evm_revert", "anvil_setStorageAt", "hardhat_setStorageAt",
                 "anvil_impersonateAccount", "hardhat_impersonateAccount", "evm_increaseTime"):
        assert name in METHODS


FIXED_PARAMS: list[Any] = [
    [], [None], [None, None], [0], [-1], [1.5], [True], ["0x"], ["0xzz"], ["latest"],
    [{}], [[]], [""], [2**256], [hex(2**256)], [hex(2**64)], ["0x" + "00" * 20],
    ["0x" + "00" * 32, True], [DEV[0].address, "latest"], [DEV[0].address, "0x0", "0x0"],
    [{"from": DEV[0].address}], [{"fromBlock": "0x5", "toBlock": "0x1"}], {"a": 1}, "x",
    [DEV[0].address, {"types": [], "domain": 1}], ["0x" + "11" * 20, "0x" + "ff" * 33],
]


def test_every_method_with_fixed_odd_parameters(fuzz_node: NodeProcess) -> None:
    """A deterministic sweep: each method of the table, each odd parameter list."""
    for method in METHODS:
        if method in BOUNDED:
            continue
        batch = [{"jsonrpc": "2.0", "id": i, "method": method, "params": p}
                 for i, p in enumerate(FIXED_PARAMS)]
        replies = post(fuzz_node.url, batch)
        assert isinstance(replies, list) and len(replies) == len(batch), (method, replies)
        for i, reply in enumerate(sorted(replies, key=lambda r: r["id"])):
            check_reply(reply, i, (method, FIXED_PARAMS[i]))
    assert_up(fuzz_node)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=requests)
def test_random_parameters_get_well_formed_replies(fuzz_node: NodeProcess,
                                                   request: tuple[str, Any]) -> None:
    method, params = request
    reply = post(fuzz_node.url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    check_reply(reply, 1, request)
    assert_up(fuzz_node)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(requests, min_size=1, max_size=8))
def test_random_batches_over_websocket(fuzz_node: NodeProcess,
                                       batch: list[tuple[str, Any]]) -> None:
    """The same property over WebSocket, in batches, with subscriptions in the mix."""
    payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
               for i, (m, p) in enumerate(batch)]

    async def exchange() -> Any:
        async with aiohttp.ClientSession() as session, session.ws_connect(fuzz_node.ws_url) as ws:
            await ws.send_str(json.dumps(payload))
            async with asyncio.timeout(60):
                while True:  # skip subscription notifications; the batch reply is a list
                    msg = await ws.receive()
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    data = json.loads(msg.data)
                    if isinstance(data, list):
                        return data

    replies = asyncio.run(exchange())
    assert len(replies) == len(payload)
    for reply in replies:
        check_reply(reply, reply.get("id"), batch)
    assert sorted(r["id"] for r in replies) == list(range(len(payload)))
    assert_up(fuzz_node)
