"""L2 transactions: EIP-712 hashing as wallets do it, the step encoding, and its refusals."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.crypto.eip712 import StructType
from layerlab.errors import MalformedEncoding
from layerlab.l2.rollup.txs import (
    DEPOSIT_STEP_BYTES,
    TX_TYPES,
    AddLiquidity,
    Deposit,
    L2Tx,
    MintNFT,
    RemoveLiquidity,
    Swap,
    Transfer,
    TransferNFT,
    Withdraw,
    decode_deposit_step,
    decode_tx_step,
    rollup_domain,
    sign_tx,
)

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ALICE = bytes.fromhex(Account.from_key(KEY).address[2:])
BOB = bytes(range(1, 21))
DOMAIN = rollup_domain(1337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))

EXAMPLES: list[L2Tx] = [
    Transfer(nonce=0, token=0, to=BOB, amount=10**18),
    MintNFT(nonce=1, token_id=7, to=BOB),
    TransferNFT(nonce=2, collection=3, token_id=7, to=BOB),
    Swap(nonce=3, token_in=0, token_out=1, amount_in=5, min_out=4),
    AddLiquidity(nonce=4, token0=0, token1=1, amount0=100, amount1=200, min_shares=1),
    RemoveLiquidity(nonce=5, token0=0, token1=1, shares=50, min0=1, min1=2),
    Withdraw(nonce=6, token=1, amount=9, recipient=BOB),
]


@pytest.mark.parametrize("tx", EXAMPLES, ids=lambda tx: type(tx).__name__)
def test_a_wallet_signs_the_same_digest(tx: L2Tx) -> None:
    """eth-account (what MetaMask-style ``eth_signTypedData_v4`` does) agrees on the digest
    and the signature, so an ordinary Ethereum key signs L2 transactions."""
    signable = encode_typed_data(full_message=tx.typed_data(DOMAIN))
    signed_by_wallet = Account.sign_message(signable, KEY)
    ours = sign_tx(tx, KEY, DOMAIN)
    assert signed_by_wallet.message_hash == ours.digest(DOMAIN)
    assert signed_by_wallet.signature == ours.signature
    assert ours.recover_sender(DOMAIN) == ALICE


@pytest.mark.parametrize("tx", EXAMPLES, ids=lambda tx: type(tx).__name__)
def test_fast_struct_hash_equals_the_general_one(tx: L2Tx) -> None:
    camel = StructType(tx.STRUCT.name, tuple(
        (t, "".join(p if i == 0 else p.title() for i, p in enumerate(n.split("_"))))
        for t, n in tx.STRUCT.members))
    values = [getattr(tx, n) for _, n in tx.STRUCT.members]
    assert tx.struct_hash() == camel.hash_struct(values)
    assert tx.STRUCT.encoded_type == camel.encoded_type


def test_encode_type_strings_are_what_the_docstring_promises() -> None:
    assert Transfer.STRUCT.encoded_type == \
        "Transfer(uint32 token,address to,uint256 amount,uint64 nonce)"
    assert Swap.STRUCT.encoded_type == \
        "Swap(uint32 tokenIn,uint32 tokenOut,uint256 amountIn,uint256 minOut,uint64 nonce)"
    assert sorted(TX_TYPES) == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("tx", EXAMPLES, ids=lambda tx: type(tx).__name__)
def test_step_round_trip(tx: L2Tx) -> None:
    signed = sign_tx(tx, KEY, DOMAIN)
    step = signed.encode()
    assert step[0] == tx.KIND
    assert decode_tx_step(step) == signed


def test_transfer_step_is_130_bytes() -> None:
    # kind 1 + token 4 + to 20 + amount 32 + nonce 8 + signature 65
    assert len(sign_tx(EXAMPLES[0], KEY, DOMAIN).encode()) == 130


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x09" + b"\0" * 129,
                                 sign_tx(EXAMPLES[0], KEY, DOMAIN).encode()[:-1],
                                 sign_tx(EXAMPLES[0], KEY, DOMAIN).encode() + b"\0"])
def test_malformed_steps_are_refused_with_a_typed_error(bad: bytes) -> None:
    with pytest.raises(MalformedEncoding):
        decode_tx_step(bad)


@pytest.mark.parametrize("build", [
    lambda: Transfer(nonce=0, token=0, to=BOB, amount=2**256),
    lambda: Transfer(nonce=0, token=-1, to=BOB, amount=1),
    lambda: Transfer(nonce=2**64, token=0, to=BOB, amount=1),
    lambda: Transfer(nonce=0, token=0, to=BOB[:19], amount=1),
    lambda: Withdraw(nonce=0, token=0, amount=1, recipient="0x" + BOB.hex()),
])
def test_out_of_range_fields_cannot_be_built(build) -> None:
    with pytest.raises(MalformedEncoding):
        build()


def test_another_chain_or_deployment_recovers_a_stranger() -> None:
    signed = sign_tx(EXAMPLES[0], KEY, DOMAIN)
    assert signed.recover_sender(rollup_domain(1338, DOMAIN.verifying_contract)) != ALICE
    assert signed.recover_sender(rollup_domain(1337, b"\x11" * 20)) != ALICE


def test_a_garbage_signature_recovers_nothing() -> None:
    signed = sign_tx(EXAMPLES[0], KEY, DOMAIN)
    broken = type(signed)(signed.tx, b"\0" * 64 + b"\x1b")
    assert broken.recover_sender(DOMAIN) is None


def test_deposit_step_matches_the_contract_layout() -> None:
    d = Deposit(index=3, l1_sender=ALICE, to=BOB, l1_token=b"\0" * 20, token=0, amount=77)
    step = d.encode()
    assert len(step) == DEPOSIT_STEP_BYTES == 105
    # abi.encodePacked(uint8 0xD0, uint64 index, address, address, address, uint32, uint256)
    assert step.hex() == ("d0" + (3).to_bytes(8, "big").hex() + ALICE.hex() + BOB.hex()
                          + "00" * 20 + "00000000" + (77).to_bytes(32, "big").hex())
    assert decode_deposit_step(step) == d
    with pytest.raises(MalformedEncoding):
        decode_deposit_step(step[:-1])
    with pytest.raises(MalformedEncoding):
        decode_deposit_step(b"\xd1" + step[1:])


@settings(max_examples=50, deadline=None)
@given(token=st.integers(0, 2**32 - 1), amount=st.integers(0, 2**256 - 1),
       nonce=st.integers(0, 2**64 - 1), to=st.binary(min_size=20, max_size=20))
def test_any_transfer_round_trips(token: int, amount: int, nonce: int, to: bytes) -> None:
    signed = sign_tx(Transfer(nonce=nonce, token=token, to=to, amount=amount), KEY, DOMAIN)
    assert decode_tx_step(signed.encode()) == signed
