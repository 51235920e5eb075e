"""Dev methods as Hardhat and Anvil define them, against a real node process.

``evm_snapshot``/``evm_revert`` restore blocks, balances, nonces and the pool; time
controls move the next block's timestamp; ``anvil_set*`` (and their ``hardhat_`` aliases)
edit the head state without a block and the edit survives the next block;
``anvil_impersonateAccount`` lets ``eth_sendTransaction`` come from any address; and
``--block-time`` mines on an interval whether or not there is work.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.contract import Contract

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from tests.nodeproc import NodeProcess, call, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
WAIT = 30
ETHER = 10**18


def head(url: str) -> dict[str, Any]:
    block = call(url, "eth_getBlockByNumber", "latest", False)
    assert isinstance(block, dict)
    return block


def number(url: str) -> int:
    return int(call(url, "eth_blockNumber"), 16)


def balance(url: str, address: str, block: str = "latest") -> int:
    return int(call(url, "eth_getBalance", address, block), 16)


def nonce(url: str, address: str, block: str = "latest") -> int:
    return int(call(url, "eth_getTransactionCount", address, block), 16)


def send(url: str, **tx: Any) -> str:
    tx_hash = call(url, "eth_sendTransaction", tx)
    assert isinstance(tx_hash, str)
    return tx_hash


def receipt(url: str, tx_hash: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = call(url, "eth_getTransactionReceipt", tx_hash)
        if found is not None:
            assert isinstance(found, dict)
            return found
        time.sleep(0.05)
    raise AssertionError(f"no receipt for {tx_hash} within {WAIT} s")


@pytest.fixture(scope="module")
def reverter(w3: Web3) -> Contract:
    return deploy(w3, load_artifact("Reverter"), sender=DEV[0].address)


# -- snapshots ---------------------------------------------------------------------------
def test_snapshot_revert_round_trips_blocks_balances_nonces(node: NodeProcess, w3: Web3) -> None:
    url = node.url
    a, b = DEV[1].address, DEV[2].address
    before = {"head": head(url), "a": balance(url, a), "b": balance(url, b), "nonce": nonce(url, a)}
    snap = call(url, "evm_snapshot")
    assert isinstance(snap, str) and snap.startswith("0x")

    sent = [send(url, **{"from": a, "to": b, "value": hex(ETHER)}) for _ in range(3)]
    token = deploy(w3, load_artifact("LabToken"), "S", "S", 100, sender=a)
    assert number(url) == int(before["head"]["number"], 16) + 4
    assert balance(url, b) == before["b"] + 3 * ETHER
    assert nonce(url, a) == before["nonce"] + 4
    assert call(url, "eth_getCode", token.address) != "0x"

    assert call(url, "evm_revert", snap) is True
    assert head(url) == before["head"]
    assert balance(url, a) == before["a"] and balance(url, b) == before["b"]
    assert nonce(url, a) == before["nonce"]
    assert nonce(url, a, "pending") == before["nonce"]
    assert call(url, "eth_getCode", token.address) == "0x"
    for tx_hash in sent:
        assert call(url, "eth_getTransactionReceipt", tx_hash) is None
        assert call(url, "eth_getTransactionByHash", tx_hash) is None
    # a snapshot is consumed by its revert
    assert call(url, "evm_revert", snap) is False

    # the chain goes on from the snapshot: the next block reuses the number, with a new hash
    tx_hash = send(url, **{"from": a, "to": b, "value": "0x5"})
    r = receipt(url, tx_hash)
    assert int(r["blockNumber"], 16) == int(before["head"]["number"], 16) + 1
    assert head(url)["parentHash"] == before["head"]["hash"]
    assert balance(url, b) == before["b"] + 5
    assert nonce(url, a) == before["nonce"] + 1


def test_nested_snapshots_and_reverting_the_outer_drops_the_inner(node: NodeProcess) -> None:
    url = node.url
    a, b = DEV[3].address, DEV[4].address
    start = number(url)
    outer = call(url, "evm_snapshot")
    send(url, **{"from": a, "to": b, "value": "0x1"})
    inner = call(url, "evm_snapshot")
    assert int(inner, 16) > int(outer, 16)
    send(url, **{"from": a, "to": b, "value": "0x1"})
    assert number(url) == start + 2
    assert call(url, "evm_revert", inner) is True
    assert number(url) == start + 1
    assert call(url, "evm_revert", outer) is True
    assert number(url) == start
    assert call(url, "evm_revert", inner) is False
    assert call(url, "evm_revert", "0x999999") is False


def test_snapshot_revert_restores_dev_state_edits(node: NodeProcess) -> None:
    url = node.url
    target = "0x" + "5a" * 20
    assert balance(url, target) == 0
    snap = call(url, "evm_snapshot")
    assert call(url, "anvil_setBalance", target, hex(7 * ETHER)) is True
    assert balance(url, target) == 7 * ETHER
    assert call(url, "evm_revert", snap) is True
    assert balance(url, target) == 0


# -- mining and time ---------------------------------------------------------------------
def test_evm_mine_adds_an_empty_block(node: NodeProcess) -> None:
    url = node.url
    before = head(url)
    assert call(url, "evm_mine") == "0x0"
    after = head(url)
    assert int(after["number"], 16) == int(before["number"], 16) + 1
    assert after["parentHash"] == before["hash"]
    assert after["transactions"] == [] and after["gasUsed"] == "0x0"
    assert int(after["timestamp"], 16) > int(before["timestamp"], 16)
    # anvil_mine: several blocks at once, with a chosen spacing
    call(url, "anvil_mine", "0x3", "0x64")
    blocks = [call(url, "eth_getBlockByNumber", hex(int(after["number"], 16) + i), False)
              for i in range(4)]
    stamps = [int(b["timestamp"], 16) for b in blocks]
    assert [t - stamps[0] for t in stamps] == [0, 100, 200, 300]


def test_evm_mine_with_a_timestamp(node: NodeProcess) -> None:
    url = node.url
    target = int(head(url)["timestamp"], 16) + 1000
    call(url, "evm_mine", hex(target))
    assert int(head(url)["timestamp"], 16) == target
    # a timestamp not after the head's is refused and mines nothing
    n = number(url)
    reply = raw_error(url, "evm_mine", [hex(target)])
    assert reply["code"] == -32000
    assert number(url) == n


def raw_error(url: str, method: str, params: list[Any]) -> dict[str, Any]:
    try:
        rpc(url, method, params)
    except RuntimeError as exc:
        err = exc.args[0]
        assert isinstance(err, dict)
        return err
    raise AssertionError(f"{method}{params} did not fail")


def test_increase_time_moves_the_next_block_forward(node: NodeProcess) -> None:
    url = node.url
    call(url, "evm_mine")
    t0 = int(head(url)["timestamp"], 16)
    total = call(url, "evm_increaseTime", 3600)
    assert int(total, 16) >= 3600
    call(url, "evm_mine")
    t1 = int(head(url)["timestamp"], 16)
    # t0 may itself be parent + 1, one second ahead of the node's clock
    assert 3600 - 1 <= t1 - t0 < 3600 + 30
    # the offset stays: later blocks do not fall back to wall-clock time
    call(url, "evm_increaseTime", "0xe10")  # hex is accepted too
    call(url, "evm_mine")
    assert int(head(url)["timestamp"], 16) - t1 >= 3600 - 1


def test_set_next_block_timestamp_is_exact_and_applies_once(node: NodeProcess) -> None:
    url = node.url
    target = int(head(url)["timestamp"], 16) + 86_400
    assert call(url, "evm_setNextBlockTimestamp", target) is None
    tx_hash = send(url, **{"from": DEV[5].address, "to": DEV[6].address, "value": "0x1"})
    block = call(url, "eth_getBlockByNumber", receipt(url, tx_hash)["blockNumber"], False)
    assert int(block["timestamp"], 16) == target
    # applied once: the next block follows the clock (which carries on from the target
    # and is moved on by 600 s), not the chosen timestamp again
    call(url, "evm_increaseTime", 600)
    call(url, "evm_mine")
    following = int(head(url)["timestamp"], 16)
    assert target + 600 <= following < target + 630
    # a timestamp in the past is refused
    err = raw_error(url, "evm_setNextBlockTimestamp", [hex(target)])
    assert err["code"] == -32000 and "timestamp" in err["message"]
    # a hex quantity works as well as a JSON number
    call(url, "evm_setNextBlockTimestamp", hex(following + 500))
    call(url, "evm_mine")
    assert int(head(url)["timestamp"], 16) == following + 500


def test_block_timestamp_is_visible_to_contracts(node: NodeProcess) -> None:
    """The next block's timestamp is what ``block.timestamp`` reads in eth_call at latest."""
    url = node.url
    target = int(head(url)["timestamp"], 16) + 12_345
    call(url, "evm_setNextBlockTimestamp", hex(target))
    call(url, "evm_mine")
    # TIMESTAMP; PUSH1 0; MSTORE; PUSH1 32; PUSH1 0; RETURN
    clock = "0x" + "42" * 20
    call(url, "anvil_setCode", clock, "0x4260005260206000f3")
    result = call(url, "eth_call", {"to": clock}, "latest")
    assert int(result, 16) >= target


# -- state edits ---------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["anvil", "hardhat"])
def test_set_balance_survives_the_next_block(node: NodeProcess, prefix: str) -> None:
    url = node.url
    target = Account.create().address
    assert call(url, f"{prefix}_setBalance", target, hex(3 * ETHER)) is True
    assert balance(url, target) == 3 * ETHER
    n = number(url)
    # and the edited account can spend it, in a block built on the edited state
    key_holder = Account.create()
    call(url, f"{prefix}_setBalance", key_holder.address, hex(ETHER))
    signed = key_holder.sign_transaction({
        "chainId": 31337, "nonce": 0, "to": target, "value": 10, "gas": 21_000,
        "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9})
    tx_hash = call(url, "eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
    assert receipt(url, tx_hash)["status"] == "0x1"
    assert number(url) == n + 1
    assert balance(url, target) == 3 * ETHER + 10
    call(url, "evm_mine")
    assert balance(url, target) == 3 * ETHER + 10
    # a dev account can be drained too
    call(url, f"{prefix}_setBalance", DEV[9].address, "0x0")
    assert balance(url, DEV[9].address) == 0


@pytest.mark.parametrize("prefix", ["anvil", "hardhat"])
def test_set_code_installs_a_runnable_contract(node: NodeProcess, w3: Web3, prefix: str) -> None:
    url = node.url
    artifact = load_artifact("Reverter")
    address = Web3.to_checksum_address("0x" + ("c0de" if prefix == "anvil" else "beef") * 10)
    assert call(url, f"{prefix}_setCode", address, "0x" + artifact.deployed_bytecode.hex())
    assert call(url, "eth_getCode", address) == "0x" + artifact.deployed_bytecode.hex()
    contract = w3.eth.contract(address=address, abi=artifact.abi)
    assert contract.functions.get().call() == 0
    tx_hash = contract.functions.set(99).transact({"from": DEV[0].address})
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)["status"] == 1
    assert contract.functions.get().call() == 99
    # empty code removes it again
    call(url, f"{prefix}_setCode", address, "0x")
    assert call(url, "eth_getCode", address) == "0x"


@pytest.mark.parametrize("prefix", ["anvil", "hardhat"])
def test_set_nonce(node: NodeProcess, prefix: str) -> None:
    url = node.url
    account = Account.create()
    call(url, f"{prefix}_setBalance", account.address, hex(ETHER))
    assert call(url, f"{prefix}_setNonce", account.address, "0x2a") is True
    assert nonce(url, account.address) == 42
    # the pool now wants nonce 42
    tx = {"chainId": 31337, "to": DEV[0].address, "value": 1, "gas": 21_000,
          "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}
    low = account.sign_transaction({**tx, "nonce": 0}).raw_transaction
    err = raw_error(url, "eth_sendRawTransaction", ["0x" + bytes(low).hex()])
    assert "nonce too low" in err["message"]
    ok = account.sign_transaction({**tx, "nonce": 42}).raw_transaction
    tx_hash = call(url, "eth_sendRawTransaction", "0x" + bytes(ok).hex())
    assert receipt(url, tx_hash)["status"] == "0x1"
    assert nonce(url, account.address) == 43


@pytest.mark.parametrize("prefix", ["anvil", "hardhat"])
def test_set_storage_at_changes_what_the_contract_reads(
    node: NodeProcess, reverter: Contract, prefix: str
) -> None:
    url = node.url
    slot0 = "0x" + "00" * 32
    value = "0x" + (42 if prefix == "anvil" else 43).to_bytes(32, "big").hex()
    assert call(url, f"{prefix}_setStorageAt", reverter.address, slot0, value) is True
    assert call(url, "eth_getStorageAt", reverter.address, "0x0", "latest") == value
    assert reverter.functions.get().call() == int(value, 16)
    # untouched slots stay zero
    assert int(call(url, "eth_getStorageAt", reverter.address, "0x1", "latest"), 16) == 0


def test_dev_edits_land_in_the_next_block_not_in_history(node: NodeProcess) -> None:
    """An edit applies to the head's state; once a block is mined on it, the block before
    still reads the old value and the new block (and latest) the edited one."""
    url = node.url
    target = Account.create().address
    call(url, "evm_mine")
    before = number(url)
    call(url, "anvil_setBalance", target, hex(ETHER))
    assert balance(url, target) == ETHER
    call(url, "evm_mine")
    assert balance(url, target, hex(before)) == 0
    assert balance(url, target, hex(before + 1)) == ETHER
    assert balance(url, target) == ETHER


def test_trace_of_a_block_built_on_a_dev_edit_replays_it(node: NodeProcess) -> None:
    """A replay must start from the edited state, not from the parent block's: the
    account, funded only by anvil_setBalance, calls code (itself installed by
    anvil_setCode) that returns the caller's balance. By the EVM's rules the caller has
    paid the value and gas limit times gas price before the code runs."""
    url = node.url
    account, probe = Account.create(), Web3.to_checksum_address("0x" + "b1" * 20)
    # CALLER; BALANCE; PUSH1 0; MSTORE; PUSH1 32; PUSH1 0; RETURN
    call(url, "anvil_setCode", probe, "0x333160005260206000f3")
    call(url, "anvil_setBalance", account.address, hex(ETHER))
    gas, value = 60_000, 5
    signed = account.sign_transaction({
        "chainId": 31337, "nonce": 0, "to": probe, "value": value, "gas": gas,
        "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9})
    tx_hash = call(url, "eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
    r = receipt(url, tx_hash)
    assert r["status"] == "0x1"
    trace = rpc(url, "debug_traceTransaction", [tx_hash])
    assert isinstance(trace, dict)
    assert trace["failed"] is False and trace["gas"] == int(r["gasUsed"], 16)
    seen = int(trace["returnValue"], 16)
    assert seen == ETHER - value - gas * int(r["effectiveGasPrice"], 16)


@pytest.fixture()
def fresh_node() -> Iterator[NodeProcess]:
    with NodeProcess() as proc:
        yield proc


def test_no_block_timestamp_beyond_uint64(fresh_node: NodeProcess) -> None:
    url = fresh_node.url
    call(url, "evm_setNextBlockTimestamp", hex(2**64 - 1))
    call(url, "evm_mine")
    assert int(head(url)["timestamp"], 16) == 2**64 - 1
    # no later timestamp exists: the next block is refused and nothing is mined
    n = number(url)
    reply = raw_error(url, "evm_mine", [])
    assert reply["code"] == -32000, reply
    assert number(url) == n
    assert int(head(url)["timestamp"], 16) == 2**64 - 1


# -- impersonation -----------------------------------------------------------------------
# A node of their own, so that the impersonation state and the blocks holding
# impersonated transactions stay apart from the other tests' chain.
@pytest.fixture(scope="module")
def imp_node() -> Iterator[NodeProcess]:
    with NodeProcess() as proc:
        yield proc


@pytest.fixture(scope="module")
def imp_w3(imp_node: NodeProcess) -> Web3:
    return Web3(Web3.HTTPProvider(imp_node.url, request_kwargs={"timeout": WAIT}))


def settle(url: str) -> None:
    """Bury the impersonated transaction under an ordinary block for the next test."""
    call(url, "evm_mine")


@pytest.mark.parametrize("prefix", ["anvil", "hardhat"])
def test_impersonated_account_sends_transactions(imp_node: NodeProcess, prefix: str) -> None:
    url = imp_node.url
    whale = Account.create().address  # nobody holds this key
    recipient = Account.create().address
    call(url, "anvil_setBalance", whale, hex(10 * ETHER))
    with pytest.raises(RuntimeError, match="unknown account"):
        send(url, **{"from": whale, "to": recipient, "value": "0x1"})

    assert call(url, f"{prefix}_impersonateAccount", whale) is None
    try:
        tx_hash = send(url, **{"from": whale, "to": recipient, "value": hex(ETHER)})
        r = receipt(url, tx_hash)
    finally:
        settle(url)
    assert r["status"] == "0x1"
    assert Web3.to_checksum_address(r["from"]) == whale
    tx = call(url, "eth_getTransactionByHash", tx_hash)
    assert Web3.to_checksum_address(tx["from"]) == whale
    assert balance(url, recipient) == ETHER
    spent = int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16)
    assert balance(url, whale) == 9 * ETHER - spent
    assert nonce(url, whale) == 1

    assert call(url, f"{prefix}_stopImpersonatingAccount", whale) is None
    with pytest.raises(RuntimeError, match="unknown account"):
        send(url, **{"from": whale, "to": recipient, "value": "0x1"})


def test_impersonated_holder_moves_tokens_as_msg_sender(imp_node: NodeProcess, imp_w3: Web3
                                                        ) -> None:
    url, w3 = imp_node.url, imp_w3
    token = deploy(w3, load_artifact("LabToken"), "I", "I", 1000, sender=DEV[0].address)
    holder = Account.create().address
    tx_hash = token.functions.transfer(holder, 600).transact({"from": DEV[0].address})
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    call(url, "anvil_setBalance", holder, hex(ETHER))
    call(url, "anvil_impersonateAccount", holder)
    try:
        tx_hash = token.functions.transfer(DEV[7].address, 250).transact({"from": holder})
        r = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT)
    finally:
        call(url, "anvil_stopImpersonatingAccount", holder)
        settle(url)
    assert r["status"] == 1 and r["from"] == holder
    (event,) = token.events.Transfer().process_receipt(r)
    assert event.args["from"] == holder
    assert token.functions.balanceOf(holder).call() == 350
    assert token.functions.balanceOf(DEV[7].address).call() == 250


def test_impersonating_a_dev_account_still_works(imp_node: NodeProcess) -> None:
    url = imp_node.url
    call(url, "anvil_impersonateAccount", DEV[8].address)
    try:
        tx_hash = send(url, **{"from": DEV[8].address, "to": DEV[0].address, "value": "0x1"})
        r = receipt(url, tx_hash)
    finally:
        call(url, "anvil_stopImpersonatingAccount", DEV[8].address)
        settle(url)
    assert r["status"] == "0x1"
    assert Web3.to_checksum_address(r["from"]) == DEV[8].address


def test_block_holding_an_impersonated_transaction_is_served(imp_node: NodeProcess) -> None:
    url = imp_node.url
    whale = Account.create().address
    call(url, "anvil_setBalance", whale, hex(ETHER))
    call(url, "anvil_impersonateAccount", whale)
    try:
        tx_hash = send(url, **{"from": whale, "to": DEV[0].address, "value": "0x1"})
        r = receipt(url, tx_hash)
        block = call(url, "eth_getBlockByNumber", r["blockNumber"], True)
        by_hash = call(url, "eth_getBlockByHash", r["blockHash"], False)
    finally:
        call(url, "anvil_stopImpersonatingAccount", whale)
        settle(url)
    assert Web3.to_checksum_address(block["transactions"][0]["from"]) == whale
    assert by_hash["transactions"] == [tx_hash]
    assert int(block["size"], 16) > 500


# -- interval and manual mining ---------------------------------------------------------------
@pytest.fixture()
def interval_node() -> Iterator[NodeProcess]:
    with NodeProcess("--block-time", "0.5") as proc:
        yield proc


def test_interval_mining_produces_blocks_on_the_clock(interval_node: NodeProcess) -> None:
    url = interval_node.url
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": WAIT}))
    start = w3.eth.block_number
    t0 = time.monotonic()
    tx_hash = w3.eth.send_transaction({"from": DEV[0].address, "to": DEV[1].address, "value": 1})
    r = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT, poll_latency=0.05)
    assert r["status"] == 1
    time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
    elapsed = time.monotonic() - t0
    produced = w3.eth.block_number - start
    # 0.5 s blocks: about four in two seconds, empty ones included (a loaded machine may
    # skip ticks, never add them)
    assert 2 <= produced <= elapsed / 0.5 + 1
    blocks = [w3.eth.get_block(n) for n in range(start + 1, start + produced + 1)]
    assert sum(len(b["transactions"]) for b in blocks) == 1
    assert all(b2["timestamp"] >= b1["timestamp"] for b1, b2 in itertools.pairwise(blocks))
    assert call(url, "eth_mining") is True
    info = call(url, "anvil_nodeInfo")
    assert info["miningMode"] == "interval"


def test_switching_mining_modes_at_runtime(interval_node: NodeProcess) -> None:
    url = interval_node.url
    call(url, "evm_setIntervalMining", 0)  # manual from now on, even for a tick in flight
    n = number(url)
    tx_hash = send(url, **{"from": DEV[2].address, "to": DEV[3].address, "value": "0x1"})
    time.sleep(1.2)
    assert number(url) == n
    assert call(url, "eth_getTransactionReceipt", tx_hash) is None
    assert call(url, "eth_mining") is False
    call(url, "evm_setAutomine", True)  # switching to automine mines what waits
    assert receipt(url, tx_hash)["status"] == "0x1"
    assert number(url) == n + 1
    tx_hash = send(url, **{"from": DEV[2].address, "to": DEV[3].address, "value": "0x1"})
    assert call(url, "eth_getTransactionReceipt", tx_hash) is not None

