"""EIP-7702 set-code transactions (type 4) through ``eth_sendRawTransaction`` and the pool.

Authorizations are signed with eth-account (``Account.sign_authorization``), transactions
with ``Account.sign_transaction``; the expectations are EIP-7702's own rules: a valid
tuple writes ``0xef0100 || address`` as the authority's code and bumps its nonce, calls to
the authority run the delegate's code on the authority's storage, a tuple with another
chain id or a stale nonce is skipped (the transaction itself stays valid), address zero
clears the delegation, an empty list makes the transaction invalid, and the intrinsic
cost is 25,000 per tuple with 12,500 refunded for an authority that already exists (under
EIP-3529's cap of a fifth of the gas used).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_keys import keys
from web3 import Web3

from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.chain.forks import ForkSchedule
from layerlab.l1.launcher import BackgroundNode
from layerlab.l1.node import Node
from tests.nodeproc import rpc

DELEGATE = Web3.to_checksum_address("0x" + "d1" * 20)
# sstore(0, 7); mstore(0, 42); return(0, 32)
DELEGATE_CODE = "0x6007600055602a60005260206000f3"
PER_EMPTY_ACCOUNT_COST = 25_000  # EIP-7702
PER_AUTH_BASE_COST = 12_500
DELEGATION_PREFIX = "0xef0100"


@pytest.fixture(scope="module")
def devnet() -> Iterator[tuple[str, Web3, list[LocalAccount]]]:
    config = ChainConfig(forks=ForkSchedule.from_genesis("prague"))
    with BackgroundNode(Node(config)) as url:
        rpc(url, "anvil_setCode", [DELEGATE, DELEGATE_CODE])
        rpc(url, "evm_mine", [])
        yield url, Web3(Web3.HTTPProvider(url)), [Account.from_key(a.private_key)
                                                  for a in config.dev_accounts]


def set_code_tx(w3: Web3, sender: LocalAccount, to: str, auths: list[Any],
                gas: int = 200_000) -> dict[str, Any]:
    return {"type": 4, "chainId": w3.eth.chain_id, "nonce": w3.eth.get_transaction_count(sender.address),
            "to": to, "value": 0, "gas": gas, "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9, "data": b"", "accessList": [],
            "authorizationList": auths}


def send(w3: Web3, sender: LocalAccount, tx: dict[str, Any]) -> Any:
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash)


def authorize(w3: Web3, authority: LocalAccount, address: str, nonce_offset: int = 0,
              chain_id: int | None = None) -> Any:
    nonce = w3.eth.get_transaction_count(authority.address) + nonce_offset
    return authority.sign_authorization({"chainId": w3.eth.chain_id if chain_id is None else chain_id,
                                         "address": address, "nonce": nonce})


def test_delegation_is_set_and_used(devnet: tuple[str, Web3, list[LocalAccount]]) -> None:
    url, w3, accounts = devnet
    sponsor, alice, bob = accounts[0], accounts[1], accounts[2]
    alice_nonce = w3.eth.get_transaction_count(alice.address)
    auth = authorize(w3, alice, DELEGATE)
    receipt = send(w3, sponsor, set_code_tx(w3, sponsor, bob.address, [auth]))
    assert receipt.status == 1 and receipt.type == 4
    code = w3.eth.get_code(alice.address)
    assert code.hex() == DELEGATION_PREFIX[2:] + DELEGATE[2:].lower()
    assert w3.eth.get_transaction_count(alice.address) == alice_nonce + 1
    # a plain transfer to an existing account plus one tuple, less the refund for an
    # authority that exists, capped at a fifth of the gas used (EIP-3529)
    intrinsic = 21_000 + PER_EMPTY_ACCOUNT_COST
    assert receipt.gasUsed == intrinsic - min(PER_EMPTY_ACCOUNT_COST - PER_AUTH_BASE_COST,
                                              intrinsic // 5)
    # calls to alice run the delegate's code, on alice's storage
    assert int.from_bytes(w3.eth.call({"to": alice.address}), "big") == 42
    call_receipt = send(w3, bob, {"type": 2, "chainId": w3.eth.chain_id,
                                  "nonce": w3.eth.get_transaction_count(bob.address),
                                  "to": alice.address, "value": 0, "gas": 100_000,
                                  "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})
    assert call_receipt.status == 1
    assert int.from_bytes(w3.eth.get_storage_at(alice.address, 0), "big") == 7
    assert int.from_bytes(w3.eth.get_storage_at(DELEGATE, 0), "big") == 0
    served = rpc(url, "eth_getTransactionByHash", [receipt.transactionHash.to_0x_hex()])
    assert isinstance(served, dict) and served["type"] == "0x4"
    assert served["authorizationList"][0]["address"] == DELEGATE
    assert served["authorizationList"][0]["nonce"] == hex(alice_nonce)


def test_sender_authorizing_itself_signs_the_next_nonce(
        devnet: tuple[str, Web3, list[LocalAccount]]) -> None:
    _, w3, accounts = devnet
    carol = accounts[3]
    # the transaction bumps the sender's nonce before the tuples are processed
    auth = authorize(w3, carol, DELEGATE, nonce_offset=1)
    receipt = send(w3, carol, set_code_tx(w3, carol, carol.address, [auth]))
    assert receipt.status == 1
    assert w3.eth.get_code(carol.address).hex() == DELEGATION_PREFIX[2:] + DELEGATE[2:].lower()
    # the delegation applies before execution: the call in the same transaction ran it
    assert int.from_bytes(w3.eth.get_storage_at(carol.address, 0), "big") == 7


def test_invalid_tuples_are_skipped_and_address_zero_clears(
        devnet: tuple[str, Web3, list[LocalAccount]]) -> None:
    _, w3, accounts = devnet
    sponsor, dave, erin = accounts[0], accounts[4], accounts[5]
    dave_nonce = w3.eth.get_transaction_count(dave.address)
    bad = [authorize(w3, dave, DELEGATE, chain_id=w3.eth.chain_id + 1),  # another chain
           authorize(w3, dave, DELEGATE, nonce_offset=1)]                 # a nonce ahead
    receipt = send(w3, sponsor, set_code_tx(w3, sponsor, erin.address, bad))
    assert receipt.status == 1  # the transaction is valid; its tuples are not
    assert w3.eth.get_code(dave.address) == b""
    assert w3.eth.get_transaction_count(dave.address) == dave_nonce
    # chain id 0 is valid on every chain
    send(w3, sponsor, set_code_tx(w3, sponsor, erin.address,
                                  [authorize(w3, dave, DELEGATE, chain_id=0)]))
    assert w3.eth.get_code(dave.address).hex() == DELEGATION_PREFIX[2:] + DELEGATE[2:].lower()
    # delegating to address zero clears the code
    send(w3, sponsor, set_code_tx(w3, sponsor, erin.address,
                                  [authorize(w3, dave, "0x" + "0" * 40)]))
    assert w3.eth.get_code(dave.address) == b""
    assert w3.eth.get_transaction_count(dave.address) == dave_nonce + 2


def test_pool_refuses_an_empty_authorization_list(
        devnet: tuple[str, Web3, list[LocalAccount]]) -> None:
    url, w3, accounts = devnet
    sponsor = accounts[0]
    # eth-account will not sign one, so the envelope is built by hand: 0x04 || rlp(fields)
    fields = [w3.eth.chain_id, w3.eth.get_transaction_count(sponsor.address), 10**9, 10**10,
              100_000, bytes.fromhex(accounts[1].address[2:]), 0, b"", [], []]
    digest = keccak(b"\x04" + rlp.encode(fields))
    sig = keys.PrivateKey(sponsor.key).sign_msg_hash(digest)
    raw = b"\x04" + rlp.encode([*fields, sig.v, sig.r, sig.s])
    with pytest.raises(RuntimeError) as info:
        rpc(url, "eth_sendRawTransaction", ["0x" + raw.hex()])
    assert "authorization" in info.value.args[0]["message"].lower()


def test_cancun_devnet_refuses_type_4() -> None:
    config = ChainConfig(forks=ForkSchedule.from_genesis("cancun"))
    with BackgroundNode(Node(config)) as url:
        w3 = Web3(Web3.HTTPProvider(url))
        sender = Account.from_key(config.dev_accounts[0].private_key)
        auth = authorize(w3, Account.from_key(config.dev_accounts[1].private_key), DELEGATE)
        tx = set_code_tx(w3, sender, sender.address, [auth])
        raw = sender.sign_transaction(tx).raw_transaction
        with pytest.raises(RuntimeError) as info:
            rpc(url, "eth_sendRawTransaction", [raw.to_0x_hex()])
        assert info.value.args[0]["message"] == "transaction type not supported: type 0x4"
