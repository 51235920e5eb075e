"""The JSON-RPC codecs: strict parsers for Ethereum's hex encodings, and the formatters.

Parsers follow the execution-apis encoding rules: a quantity is ``0x`` followed by hex
digits (at most 256 bits), data is ``0x`` followed by an even number of hex digits, a
block is a tag, a number or a hash (EIP-1898 objects too). Anything else is
:class:`InvalidParams` (-32602), never a Python exception. Formatters are checked on a
real block mined in memory: a legacy transfer, an ERC20 deployment with its log, a
Set event, and a reverting call.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import keccak, to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from layerlab.l1.rpc import codec
from layerlab.l1.rpc.codec import (
    InvalidParams,
    hex_data,
    hex_int,
    parse_address,
    parse_block_id,
    parse_bool,
    parse_data,
    parse_hash,
    parse_quantity,
    parse_tx_object,
)
from layerlab.l1.rpc.common import decode_revert_reason

# -- quantities ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("0x0", 0), ("0x1", 1), ("0xff", 255), ("0XFF", 255), ("0xDeadBeef", 0xDEADBEEF),
    ("0x00ff", 255),  # leading zeros tolerated, as Hardhat and Anvil do
    ("0x" + "f" * 64, 2**256 - 1),
])
def test_parse_quantity_accepts_hex(text: str, value: int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", [
    "", "0x", "0X", "1", "ff", "0xg", "0x1g", "0x-1", "-0x1", "0x 1", " 0x1", "0x1 ", "0x1_0",
    "0x1\n", "0x+1", "0xf\u0660", "0b101", "latest", "0x" + "f" * 65, "1e3",
])
def test_parse_quantity_refuses_what_int_would_take(text: str) -> None:
    with pytest.raises(InvalidParams):
        parse_quantity(text)


@pytest.mark.parametrize("value", [None, True, False, -1, 1.0, 1.5, [], {}, b"\x01", 2**256])
def test_parse_quantity_refuses_non_quantities(value: Any) -> None:
    with pytest.raises(InvalidParams):
        parse_quantity(value)


def test_parse_quantity_takes_json_integers_and_honours_the_limit() -> None:
    assert parse_quantity(0) == 0 and parse_quantity(2**256 - 1) == 2**256 - 1
    assert parse_quantity("0xffffffffffffffff", limit=2**64 - 1) == 2**64 - 1
    with pytest.raises(InvalidParams, match="nonce: 0x10000000000000000 exceeds"):
        parse_quantity(hex(2**64), "nonce", limit=2**64 - 1)
    with pytest.raises(InvalidParams, match="exceeds"):
        parse_quantity(2**64, limit=2**64 - 1)


def test_error_messages_name_the_parameter_and_truncate_the_value() -> None:
    with pytest.raises(InvalidParams) as exc:
        parse_quantity("z" * 10_000, "blockCount")
    assert str(exc.value).startswith("blockCount:") and len(str(exc.value)) < 120
    with pytest.raises(InvalidParams) as exc:
        parse_data("y" * 10_000, "input")
    assert str(exc.value).startswith("input:") and len(str(exc.value)) < 120


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_quantity_round_trip(n: int) -> None:
    assert parse_quantity(hex_int(n)) == n
    assert hex_int(n) == hex(n)  # no leading zeros on the way out


# -- data, addresses, hashes ----------------------------------------------------------------


@given(st.binary(max_size=200))
def test_data_round_trip(data: bytes) -> None:
    assert parse_data(hex_data(data)) == data
    assert parse_data(hex_data(data).upper().replace("0X", "0x")) == data


@pytest.mark.parametrize("text", ["", "12", "0x1", "0x123", "0xzz", "0x12 34", "0x 1234",
                                  "0x1234 ", "0x12_34", "0x\u0661\u0662", "x0"])
def test_parse_data_refuses_malformed_hex(text: str) -> None:
    with pytest.raises(InvalidParams):
        parse_data(text)


@pytest.mark.parametrize("value", [None, 12, 1.5, True, [], {}, b"\x12"])
def test_parse_data_refuses_non_strings(value: Any) -> None:
    with pytest.raises(InvalidParams):
        parse_data(value)


def test_addresses_and_hashes_have_fixed_lengths() -> None:
    assert parse_address("0x" + "ab" * 20) == b"\xab" * 20
    assert parse_address(to_checksum_address("0x" + "ab" * 20)) == b"\xab" * 20
    assert parse_hash("0x" + "cd" * 32) == b"\xcd" * 32
    for bad in ("0x" + "ab" * 19, "0x" + "ab" * 21, "0x", "0x" + "ab" * 32):
        with pytest.raises(InvalidParams, match="address must be 20 bytes"):
            parse_address(bad)
    for bad in ("0x" + "cd" * 31, "0x" + "cd" * 33, "0x" + "cd" * 20):
        with pytest.raises(InvalidParams, match="hash must be 32 bytes"):
            parse_hash(bad)


def test_parse_bool_takes_only_booleans() -> None:
    assert parse_bool(True) is True and parse_bool(False) is False
    for bad in (0, 1, "true", None, "0x1"):
        with pytest.raises(InvalidParams):
            parse_bool(bad)


# -- block identifiers ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (None, "latest"), ("latest", "latest"), ("earliest", "earliest"), ("pending", "pending"),
    ("safe", "safe"), ("finalized", "finalized"), ("0x0", 0), ("0x1a", 26), (7, 7),
    ("0x" + "ab" * 32, b"\xab" * 32),
    ({"blockHash": "0x" + "ab" * 32}, b"\xab" * 32),
    ({"blockHash": "0x" + "ab" * 32, "requireCanonical": True}, b"\xab" * 32),
    ({"blockNumber": "0x5"}, 5),
])
def test_parse_block_id(value: Any, expected: Any) -> None:
    assert parse_block_id(value) == expected


@pytest.mark.parametrize("value", [
    "Latest", "newest", "", "0x", "0xzz", -1, True, 1.5, [], {}, {"number": "0x1"},
    {"blockHash": "0x12"}, {"blockNumber": "five"}, "0x" + "zz" * 32, "0x1_0",
])
def test_parse_block_id_refuses(value: Any) -> None:
    with pytest.raises(InvalidParams):
        parse_block_id(value)


# -- transaction objects -----------------------------------------------------------------------


def test_parse_tx_object_decodes_each_field() -> None:
    obj = parse_tx_object({
        "from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "gas": "0x5208", "value": "0x1",
        "maxFeePerGas": "0x3b9aca00", "maxPriorityFeePerGas": "0x1", "nonce": "0x0",
        "input": "0xabcd", "chainId": "0x7a69", "type": "0x2", "accessList": [],
    })
    assert obj == {"from": b"\x11" * 20, "to": b"\x22" * 20, "gas": 21_000, "value": 1,
                   "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 1, "nonce": 0,
                   "data": b"\xab\xcd", "chainId": 31337, "type": 2}
    assert parse_tx_object({"to": None, "data": "0x00"}) == {"data": b"\x00"}  # creation
    assert parse_tx_object({}) == {}


@pytest.mark.parametrize("value", [
    None, [], "0x", 5,
    {"to": "0x12"}, {"from": 5}, {"gas": "lots"}, {"value": -1}, {"data": "0x1"},
    {"unknownField": 1}, {"gasPrice": True},
])
def test_parse_tx_object_refuses(value: Any) -> None:
    with pytest.raises(InvalidParams):
        parse_tx_object(value)


def test_data_and_input_must_agree() -> None:
    """geth: "both 'data' and 'input' are set and not equal" is an error, not a silent pick."""
    assert parse_tx_object({"data": "0x12", "input": "0x12"}) == {"data": b"\x12"}
    with pytest.raises(InvalidParams, match="data"):
        parse_tx_object({"data": "0x12", "input": "0x34"})


# -- revert reasons ------------------------------------------------------------------------------


def test_decode_revert_reason() -> None:
    error = selector("Error(string)") + abi_encode(["string"], ["no way"])
    assert decode_revert_reason(error) == "execution reverted: no way"
    panic = selector("Panic(uint256)") + abi_encode(["uint256"], [0x11])
    assert decode_revert_reason(panic) == "execution reverted: panic code 0x11"
    custom = selector("Nope(uint256)") + abi_encode(["uint256"], [1])
    assert decode_revert_reason(custom) == "execution reverted"
    assert decode_revert_reason(b"") == "execution reverted"
    assert decode_revert_reason(selector("Error(string)") + b"\x00" * 5) == "execution reverted"


# -- formatters, on a real block -----------------------------------------------------------------


@pytest.fixture(scope="module")
def mined() -> Any:
    from layerlab.contracts import load_artifact
    from layerlab.l1.chain.config import ChainConfig
    from layerlab.l1.chain.evm import EvmChain
    from layerlab.l1.storage import open_db

    config = ChainConfig(genesis_timestamp=1_700_000_000)
    a0, a1 = config.dev_accounts[:2]
    token, reverter = load_artifact("LabToken"), load_artifact("Reverter")

    def sign(key: bytes, **tx: Any) -> bytes:
        fields = {"chainId": 31337, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 2 * 10**9,
                  "value": 0, **tx}
        if "gasPrice" in fields:
            del fields["maxFeePerGas"], fields["maxPriorityFeePerGas"]
        return bytes(Account.sign_transaction(fields, key).raw_transaction)

    ctor = abi_encode(["string", "string", "uint256"], ["T", "T", 1000])
    from eth._utils.address import generate_contract_address

    reverter_address = generate_contract_address(a1.address_bytes, 1)
    raws = [
        sign(a0.private_key, nonce=0, to=a1.address, value=7, gas=21_000, gasPrice=3 * 10**9),
        sign(a1.private_key, nonce=0, to=b"", gas=2_000_000, data=token.bytecode + ctor),
        sign(a1.private_key, nonce=1, to=b"", gas=1_000_000, data=reverter.bytecode),
        sign(a0.private_key, nonce=1, to=reverter_address, gas=100_000,
             data=selector("set(uint256)") + abi_encode(["uint256"], [9])),
        sign(a0.private_key, nonce=2, to=reverter_address, gas=100_000, data=selector("fail()")),
    ]
    chain = EvmChain(config, open_db(None))
    txs = [chain.tx_builder.decode(r) for r in raws]
    block = chain.mine(txs, timestamp=1_700_000_012)
    senders = [a0.address_bytes, a1.address_bytes, a1.address_bytes, a0.address_bytes,
               a0.address_bytes]
    return block, senders, raws


def test_format_receipts_gas_logs_and_status(mined: Any) -> None:
    result, senders, raws = mined
    block, receipts = result.block, result.receipts
    out = codec.format_receipts(block, receipts, senders)
    assert [r["status"] for r in out] == ["0x1", "0x1", "0x1", "0x1", "0x0"]
    assert [r["transactionIndex"] for r in out] == [hex(i) for i in range(5)]
    assert [r["transactionHash"] for r in out] == ["0x" + keccak(r).hex() for r in raws]
    gas = [int(r["gasUsed"], 16) for r in out]
    assert gas[0] == 21_000
    assert [int(r["cumulativeGasUsed"], 16) for r in out] == [sum(gas[:i + 1]) for i in range(5)]
    assert int(out[-1]["cumulativeGasUsed"], 16) == block.header.gas_used
    # the deployments name their contracts; the others do not
    assert out[1]["contractAddress"] is not None and out[2]["contractAddress"] is not None
    assert out[0]["contractAddress"] is None and out[3]["contractAddress"] is None
    assert out[1]["to"] is None and out[3]["to"] == out[2]["contractAddress"]
    # log indexes run across the block: the mint (tx 1) is 0, Set (tx 3) is 1
    assert [len(r["logs"]) for r in out] == [0, 1, 0, 1, 0]
    assert out[1]["logs"][0]["logIndex"] == "0x0" and out[3]["logs"][0]["logIndex"] == "0x1"
    assert out[3]["logs"][0]["transactionIndex"] == "0x3"
    assert out[3]["logs"][0]["address"] == out[2]["contractAddress"]
    # effective gas price: legacy pays its gas price, 1559 pays base fee + tip
    base = block.header.base_fee_per_gas
    assert int(out[0]["effectiveGasPrice"], 16) == 3 * 10**9
    assert int(out[1]["effectiveGasPrice"], 16) == base + 2 * 10**9
    assert [r["type"] for r in out] == ["0x0", "0x2", "0x2", "0x2", "0x2"]
    assert [r["from"] for r in out] == [to_checksum_address(s) for s in senders]


def test_format_receipts_only_one_matches_the_full_list(mined: Any) -> None:
    """eth_getTransactionReceipt formats one receipt and knows only its own sender."""
    result, senders, _ = mined
    full = codec.format_receipts(result.block, result.receipts, senders)
    for i in range(len(senders)):
        just_one = [b""] * len(senders)
        just_one[i] = senders[i]
        assert codec.format_receipts(result.block, result.receipts, just_one, only=i) == [full[i]]


def test_format_transaction_and_header(mined: Any) -> None:
    result, senders, _ = mined
    header = result.block.header
    legacy, deploy = result.block.transactions[0], result.block.transactions[1]
    out = codec.format_transaction(legacy, senders[0], header, 0)
    assert out["type"] == "0x0" and out["gasPrice"] == hex(3 * 10**9)
    assert out["chainId"] == "0x7a69" and int(out["v"], 16) in (31337 * 2 + 35, 31337 * 2 + 36)
    assert out["value"] == "0x7" and out["input"] == "0x"
    assert out["blockHash"] == hex_data(header.hash) and out["transactionIndex"] == "0x0"
    assert "maxFeePerGas" not in out
    typed = codec.format_transaction(deploy, senders[1], header, 1)
    assert typed["to"] is None and typed["type"] == "0x2"
    assert typed["yParity"] in ("0x0", "0x1") and typed["accessList"] == []
    assert typed["maxFeePerGas"] == hex(10**10)
    assert typed["gasPrice"] == hex(header.base_fee_per_gas + 2 * 10**9)
    pending = codec.format_transaction(deploy, senders[1])
    assert pending["blockHash"] is None and pending["blockNumber"] is None
    assert pending["gasPrice"] == hex(10**10)  # no block yet: the cap
    head = codec.format_header(header, size=1234)
    assert head["number"] == "0x1" and head["size"] == "0x4d2"
    assert head["timestamp"] == hex(1_700_000_012)
    assert head["gasUsed"] == hex(header.gas_used)
    assert head["baseFeePerGas"] == hex(header.base_fee_per_gas)
    assert len(head["logsBloom"]) == 2 + 512
