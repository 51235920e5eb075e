"""Staking (the deposit contract plus EIP-7002-style exits) on a real ``layerlab node``.

Deposits, top-ups and exits go through web3.py against the module's automining node; each
refusal is checked to be the contract's custom error with its exact arguments. The events
are read back with ``decode_staking_logs`` on py-evm-shaped receipts (web3's receipts
adapted: bytes address, int topics). Finally a second node is started with the runtime
code in its genesis alloc at ``STAKING_ADDRESS``, as the PoS chain will place it, and the
same flow runs there through the raw call-data helpers.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxParams, TxReceipt, Wei

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto import bls
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l1.consensus.staking import (
    DEPOSIT_TOPIC,
    EXIT_REQUESTED_TOPIC,
    MIN_DEPOSIT_GWEI,
    STAKING_ADDRESS,
    decode_staking_logs,
    deposit_calldata,
    deposit_message,
    exit_calldata,
    make_deposit_signature,
    staking_runtime_code,
)
from layerlab.l1.consensus.types import Deposit, ExitRequest
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
DEPLOYER, ALICE, BOB, MALLORY = DEV[0], DEV[1], DEV[2], DEV[3]
ETHER = 10**18
GWEI = 10**9
GAS: dict[str, int] = {}


# -- helpers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvmLog:
    """A log shaped like py-evm's ``Log``: bytes address, int topics, bytes data."""

    address: bytes
    topics: tuple[int, ...]
    data: bytes


@dataclass(frozen=True)
class EvmReceipt:
    logs: tuple[EvmLog, ...]


def adapt(receipt: TxReceipt) -> EvmReceipt:
    """A web3 receipt as the py-evm receipt the consensus layer reads."""
    return EvmReceipt(tuple(
        EvmLog(bytes.fromhex(log["address"][2:]),
               tuple(int.from_bytes(t, "big") for t in log["topics"]),
               bytes(log["data"]))
        for log in receipt["logs"]
    ))


@dataclass(frozen=True)
class Validator:
    sk: bytes
    pubkey: bytes


def validator(tag: str) -> Validator:
    sk = bls.secret_key(tag.encode())
    return Validator(sk, bls.public_key(sk))


def address_bytes(address: str) -> bytes:
    return bytes.fromhex(address[2:])


def error_data(signature: str, *args: Any) -> str:
    """The revert data of custom error ``signature`` with ``args``, 0x-hex."""
    match = re.fullmatch(r"\w+\((.*)\)", signature)
    assert match
    types = [t for t in match[1].split(",") if t]
    return "0x" + (keccak(text=signature)[:4] + encode(types, list(args))).hex()


@contextmanager
def refused(signature: str, *args: Any) -> Iterator[None]:
    """The transaction (refused at gas estimation) reverts with exactly this custom error."""
    with pytest.raises(ContractCustomError) as err:
        yield
    assert str(err.value.data) == error_data(signature, *args)


def tx(sender: str, value: int = 0, to: str | None = None, data: bytes | None = None) -> TxParams:
    params: TxParams = {"from": Web3.to_checksum_address(sender), "value": Wei(value)}
    if to is not None:
        params["to"] = Web3.to_checksum_address(to)
    if data is not None:
        params["data"] = data
    return params


def mined(w3: Web3, tx_hash: HexBytes) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    return receipt


def do_deposit(w3: Web3, staking: Contract, sender: str, val: Validator, value: int,
               signature: bytes | None = None) -> TxReceipt:
    if signature is None:
        signature = make_deposit_signature(val.sk, address_bytes(sender), value // GWEI)
    return mined(w3, staking.functions.deposit(val.pubkey, signature).transact(tx(sender, value)))


def do_exit(w3: Web3, staking: Contract, sender: str, val: Validator) -> TxReceipt:
    return mined(w3, staking.functions.requestExit(val.pubkey).transact(tx(sender)))


def fresh_staking(w3: Web3) -> Contract:
    return deploy(w3, load_artifact("Staking"), sender=DEPLOYER.address)


@pytest.fixture(scope="module")
def staking(w3: Web3) -> Contract:
    return fresh_staking(w3)


@pytest.fixture(scope="module", autouse=True)
def print_gas() -> Iterator[None]:
    yield
    if GAS:
        print("\nStaking gas used:")
        for name, gas in GAS.items():
            print(f"  {name:<40} {gas:>9,}")


# -- deposits -------------------------------------------------------------------------------


def test_deposit_emits_event_that_decodes_exactly(w3: Web3) -> None:
    staking = fresh_staking(w3)
    val = validator("first")
    assert staking.functions.MIN_DEPOSIT().call() == ETHER
    assert staking.functions.depositCount().call() == 0
    assert staking.functions.ownerOf(val.pubkey).call() == "0x" + "00" * 20
    signature = make_deposit_signature(val.sk, address_bytes(ALICE.address), 32 * 10**9)

    receipt = do_deposit(w3, staking, ALICE.address, val, 32 * ETHER, signature)
    GAS["deposit (very first: counter 0 -> 1)"] = receipt["gasUsed"]

    assert len(receipt["logs"]) == 1
    event = staking.events.Deposit().process_receipt(receipt)[0]["args"]
    assert (bytes(event["pubkey"]), event["withdrawalAddress"], event["amountGwei"],
            bytes(event["signature"]), event["index"]) \
        == (val.pubkey, ALICE.address, 32 * 10**9, signature, 0)
    deposits, exits = decode_staking_logs([adapt(receipt)], address_bytes(staking.address))
    expected = Deposit(pubkey=val.pubkey, withdrawal_address=address_bytes(ALICE.address),
                       amount_gwei=32 * 10**9, signature=signature, index=0)
    assert deposits == [expected]
    assert exits == []
    # the proof of possession the consensus layer will check
    assert bls.verify(val.pubkey, deposit_message(val.pubkey, expected.withdrawal_address,
                                                  expected.amount_gwei), expected.signature)
    assert staking.functions.depositCount().call() == 1
    assert staking.functions.ownerOf(val.pubkey).call() == ALICE.address
    assert staking.functions.exitRequested(val.pubkey).call() is False
    assert w3.eth.get_balance(staking.address) == 32 * ETHER  # locked for good


def test_indices_increase_and_owner_may_top_up(w3: Web3, staking: Contract) -> None:
    val_a, val_b = validator("index-a"), validator("index-b")
    start = staking.functions.depositCount().call()
    receipts = [do_deposit(w3, staking, ALICE.address, val_a, 32 * ETHER)]
    receipts.append(do_deposit(w3, staking, BOB.address, val_b, 16 * ETHER))
    GAS["deposit (new key, counter > 0)"] = receipts[-1]["gasUsed"]
    receipts.append(do_deposit(w3, staking, ALICE.address, val_a, ETHER + 7 * GWEI))
    GAS["deposit (top-up by owner)"] = receipts[-1]["gasUsed"]

    deposits, exits = decode_staking_logs([adapt(r) for r in receipts], address_bytes(staking.address))
    assert exits == []
    assert [d.index for d in deposits] == [start, start + 1, start + 2]
    assert [(d.pubkey, d.withdrawal_address, d.amount_gwei) for d in deposits] == [
        (val_a.pubkey, address_bytes(ALICE.address), 32 * 10**9),
        (val_b.pubkey, address_bytes(BOB.address), 16 * 10**9),
        (val_a.pubkey, address_bytes(ALICE.address), 10**9 + 7),
    ]
    assert staking.functions.depositCount().call() == start + 3
    assert staking.functions.ownerOf(val_a.pubkey).call() == ALICE.address
    assert staking.functions.ownerOf(val_b.pubkey).call() == BOB.address


def test_the_contract_does_not_check_the_bls_proof(w3: Web3, staking: Contract) -> None:
    """A bad proof is the consensus layer's business: the deposit is accepted and emitted."""
    val = validator("bad-proof")
    receipt = do_deposit(w3, staking, ALICE.address, val, ETHER, b"\x07" * 96)
    (dep,), _ = decode_staking_logs([adapt(receipt)], address_bytes(staking.address))
    assert dep.signature == b"\x07" * 96
    assert not bls.verify(dep.pubkey, deposit_message(dep.pubkey, dep.withdrawal_address,
                                                      dep.amount_gwei), dep.signature)


def test_malformed_deposits_are_refused(w3: Web3, staking: Contract) -> None:
    val = validator("malformed")
    sig = make_deposit_signature(val.sk, address_bytes(ALICE.address), 32 * 10**9)
    for length in (0, 47, 49, 96):
        with refused("InvalidPubkeyLength(uint256)", length):
            staking.functions.deposit(b"\x01" * length, sig).transact(tx(ALICE.address, 32 * ETHER))
    for length in (0, 48, 95, 97):
        with refused("InvalidSignatureLength(uint256)", length):
            staking.functions.deposit(val.pubkey, b"\x02" * length).transact(tx(ALICE.address, 32 * ETHER))
    for value in (0, 1, ETHER - GWEI):
        with refused("DepositTooSmall(uint256)", value):
            staking.functions.deposit(val.pubkey, sig).transact(tx(ALICE.address, value))
    for value in (32 * ETHER + 1, ETHER + GWEI - 1):
        with refused("DepositNotWholeGwei(uint256)", value):
            staking.functions.deposit(val.pubkey, sig).transact(tx(ALICE.address, value))
    assert staking.functions.ownerOf(val.pubkey).call() == "0x" + "00" * 20


def test_deposit_above_uint64_gwei_is_refused(node: NodeProcess, staking: Contract) -> None:
    """Unreachable with dev balances: simulated with a balance override (eth_call)."""
    rich = "0x" + "66" * 20
    value = 2**64 * GWEI
    call = {"from": rich, "to": staking.address, "value": hex(value),
            "data": "0x" + deposit_calldata(validator("rich").pubkey, b"\x00" * 96).hex()}
    with pytest.raises(RuntimeError) as err:
        rpc(node.url, "eth_call", [call, "latest", {rich: {"balance": hex(2 * value)}}])
    assert err.value.args[0]["data"] == error_data("DepositTooLarge(uint256)", value)
    call["value"] = hex(value - GWEI)  # the largest amount that fits
    assert rpc(node.url, "eth_call", [call, "latest", {rich: {"balance": hex(2 * value)}}]) == "0x"


def test_plain_ether_transfers_are_refused(w3: Web3, staking: Contract) -> None:
    with pytest.raises(ContractLogicError, match="execution reverted") as err:
        w3.eth.send_transaction(tx(ALICE.address, ETHER, staking.address))
    assert err.value.data == "0x"  # no receive(): an empty revert


def test_top_up_by_another_sender_is_refused(w3: Web3, staking: Contract) -> None:
    val = validator("hijack")
    do_deposit(w3, staking, ALICE.address, val, 32 * ETHER)
    count = staking.functions.depositCount().call()
    sig = make_deposit_signature(val.sk, address_bytes(MALLORY.address), 10**9)
    with refused("NotOwner(address,address)", ALICE.address, MALLORY.address):
        staking.functions.deposit(val.pubkey, sig).transact(tx(MALLORY.address, ETHER))
    assert staking.functions.ownerOf(val.pubkey).call() == ALICE.address
    assert staking.functions.depositCount().call() == count


# -- exits ----------------------------------------------------------------------------------


def test_owner_requests_exit_once(w3: Web3, staking: Contract) -> None:
    val = validator("exit")
    do_deposit(w3, staking, BOB.address, val, 32 * ETHER)

    with refused("NotOwner(address,address)", BOB.address, MALLORY.address):
        staking.functions.requestExit(val.pubkey).transact(tx(MALLORY.address))
    assert staking.functions.exitRequested(val.pubkey).call() is False

    receipt = do_exit(w3, staking, BOB.address, val)
    GAS["requestExit"] = receipt["gasUsed"]
    event = staking.events.ExitRequested().process_receipt(receipt)[0]["args"]
    assert (bytes(event["pubkey"]), event["sourceAddress"]) == (val.pubkey, BOB.address)
    assert decode_staking_logs([adapt(receipt)], address_bytes(staking.address)) \
        == ([], [ExitRequest(pubkey=val.pubkey, source_address=address_bytes(BOB.address))])
    assert staking.functions.exitRequested(val.pubkey).call() is True

    with refused("ExitAlreadyRequested()"):
        staking.functions.requestExit(val.pubkey).transact(tx(BOB.address))


def test_exit_of_unknown_key_is_refused(staking: Contract) -> None:
    for pubkey in (validator("never-deposited").pubkey, b"", b"\x01" * 47):
        with refused("UnknownValidator()"):
            staking.functions.requestExit(pubkey).transact(tx(ALICE.address))


# -- decoding -------------------------------------------------------------------------------


def test_decode_ignores_other_contracts_and_events(
    w3: Web3, staking: Contract, caplog: pytest.LogCaptureFixture
) -> None:
    other = fresh_staking(w3)  # same events, another address
    reverter = deploy(w3, load_artifact("Reverter"), sender=DEPLOYER.address)
    val = validator("decode")
    mine = do_deposit(w3, staking, ALICE.address, val, 2 * ETHER)
    theirs = do_deposit(w3, other, ALICE.address, val, 3 * ETHER)
    their_exit = do_exit(w3, other, ALICE.address, val)
    unrelated = mined(w3, reverter.functions.set(5).transact(tx(ALICE.address)))
    assert len(unrelated["logs"]) == 1

    here = address_bytes(staking.address)
    receipts = [adapt(r) for r in (theirs, unrelated, mine, their_exit)]
    deposits, exits = decode_staking_logs(receipts, here)
    assert [(d.amount_gwei, d.withdrawal_address) for d in deposits] \
        == [(2 * 10**9, address_bytes(ALICE.address))]
    assert exits == []
    deposits, exits = decode_staking_logs(receipts, address_bytes(other.address))
    assert [d.amount_gwei for d in deposits] == [3 * 10**9]
    assert exits == [ExitRequest(val.pubkey, address_bytes(ALICE.address))]
    assert decode_staking_logs(receipts) == ([], [])  # nothing at the predeploy address here

    # logs at the staking address that are not its events, or malformed ones, are skipped
    good = adapt(mine).logs[0]
    alice_topic = int.from_bytes(address_bytes(ALICE.address), "big")
    forged = EvmReceipt((
        EvmLog(here, (), b""),
        EvmLog(here, (int.from_bytes(keccak(text="Set(address,uint256)"), "big"), alice_topic),
               encode(["uint256"], [5])),
        EvmLog(here, (DEPOSIT_TOPIC, alice_topic), b"\x00" * 31),  # truncated
        EvmLog(here, (DEPOSIT_TOPIC,), good.data),  # withdrawal address not indexed
        EvmLog(here, (DEPOSIT_TOPIC, 2**160), good.data),  # topic is not an address
        EvmLog(here, (DEPOSIT_TOPIC, alice_topic),
               encode(["bytes", "uint64", "bytes", "uint64"], [b"\x01" * 47, 1, b"\x02" * 96, 0])),
        EvmLog(here, (EXIT_REQUESTED_TOPIC, alice_topic), encode(["bytes"], [b"\x01" * 49])),
        good,
    ))
    with caplog.at_level(logging.WARNING, logger="layerlab.l1.consensus.staking"):
        deposits, exits = decode_staking_logs([forged], here)
    assert deposits == decode_staking_logs([adapt(mine)], here)[0]
    assert exits == []
    assert sum("malformed staking log" in r.message for r in caplog.records) == 5


# -- call data helpers and the genesis predeploy ----------------------------------------------


def test_calldata_helpers_match_the_abi(staking: Contract) -> None:
    val = validator("calldata")
    sig = make_deposit_signature(val.sk, address_bytes(ALICE.address), 32 * 10**9)
    assert deposit_calldata(val.pubkey, sig).hex() \
        == staking.functions.deposit(val.pubkey, sig)._encode_transaction_data()[2:]
    assert exit_calldata(val.pubkey).hex() \
        == staking.functions.requestExit(val.pubkey)._encode_transaction_data()[2:]
    with pytest.raises(ValueError, match="48 bytes"):
        deposit_calldata(val.pubkey[:-1], sig)
    with pytest.raises(ValueError, match="96 bytes"):
        deposit_calldata(val.pubkey, sig + b"\x00")
    with pytest.raises(ValueError, match="48 bytes"):
        exit_calldata(b"")
    assert staking.functions.MIN_DEPOSIT().call() == MIN_DEPOSIT_GWEI * GWEI


@pytest.fixture(scope="module")
def genesis_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    config: Path = tmp_path_factory.mktemp("staking-genesis") / "genesis.json"
    config.write_text(json.dumps(
        {"alloc": {"0x" + STAKING_ADDRESS.hex(): {"code": "0x" + staking_runtime_code().hex()}}}))
    with NodeProcess("--config", str(config)) as proc:
        yield proc


def test_predeployed_runtime_code_behaves_the_same(genesis_node: NodeProcess) -> None:
    w3 = Web3(Web3.HTTPProvider(genesis_node.url, request_kwargs={"timeout": 60}))
    address = Web3.to_checksum_address(STAKING_ADDRESS)
    assert bytes(w3.eth.get_code(address)) == load_artifact("Staking").deployed_bytecode
    staking = w3.eth.contract(address=address, abi=load_artifact("Staking").abi)
    assert staking.functions.depositCount().call() == 0

    val = validator("genesis")
    alice = address_bytes(ALICE.address)
    sig = make_deposit_signature(val.sk, alice, 32 * 10**9)
    receipts = [mined(w3, w3.eth.send_transaction(
        tx(ALICE.address, 32 * ETHER, address, deposit_calldata(val.pubkey, sig))))]
    top_up_sig = make_deposit_signature(val.sk, alice, 10**9)
    receipts.append(mined(w3, w3.eth.send_transaction(
        tx(ALICE.address, ETHER, address, deposit_calldata(val.pubkey, top_up_sig)))))
    with refused("NotOwner(address,address)", ALICE.address, MALLORY.address):
        staking.functions.requestExit(val.pubkey).transact(tx(MALLORY.address))
    receipts.append(mined(w3, w3.eth.send_transaction(
        tx(ALICE.address, 0, address, exit_calldata(val.pubkey)))))
    with refused("ExitAlreadyRequested()"):
        staking.functions.requestExit(val.pubkey).transact(tx(ALICE.address))

    deposits, exits = decode_staking_logs([adapt(r) for r in receipts])  # the default address
    assert deposits == [Deposit(val.pubkey, alice, 32 * 10**9, sig, 0),
                        Deposit(val.pubkey, alice, 10**9, top_up_sig, 1)]
    assert exits == [ExitRequest(val.pubkey, alice)]
    assert staking.functions.depositCount().call() == 2
    assert w3.eth.get_balance(address) == 33 * ETHER
