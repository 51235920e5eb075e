"""The Plasma spec in types.py: EIP-712 digests as wallets compute them, the canonical tx
encoding, UTXO positions, block roots and inclusion proofs, deposit transactions."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak

from layerlab.crypto.eip712 import recover_signer
from layerlab.errors import MalformedEncoding
from layerlab.l2.plasma.types import (
    ETH,
    Output,
    PlasmaError,
    SignedTransaction,
    Transaction,
    compute_block_root,
    compute_output_id,
    decode_position,
    deposit_transaction,
    encode_position,
    plasma_domain,
    prove_inclusion,
)
from layerlab.primitives.smt import KECCAK_HASHER, SparseMerkleTree, verify_smt_proof

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ALICE = bytes.fromhex(Account.from_key(KEY).address[2:])
BOB = bytes.fromhex("22" * 20)
TOKEN = bytes.fromhex("33" * 20)
DOMAIN = plasma_domain(1337, bytes.fromhex("44" * 20))


def _tx(*inputs: int, token: bytes = ETH, metadata: bytes = b"\0" * 32) -> Transaction:
    return Transaction(tuple(inputs), (Output(BOB, token, 600), Output(ALICE, token, 399)), metadata)


@pytest.mark.parametrize("tx", [
    _tx(encode_position(1, 0, 0)),
    _tx(encode_position(1000, 3, 1), encode_position(2, 0, 0), token=TOKEN, metadata=b"\x07" * 32),
    deposit_transaction(5, ALICE, ETH, 10**18),
    Transaction((encode_position(7, 0, 0), encode_position(8, 0, 0)),
                tuple(Output(BOB, ETH, i + 1) for i in range(4))),
])
def test_digest_equals_eth_account(tx: Transaction) -> None:
    signable = encode_typed_data(full_message=tx.typed_data(DOMAIN))
    reference = Account.sign_message(signable, KEY)
    assert tx.digest(DOMAIN) == bytes(reference.message_hash)
    signed = tx.sign(DOMAIN, [KEY] * len(tx.inputs))
    assert all(s == ALICE for s in signed.signers(DOMAIN))
    if tx.inputs:  # eth-account's signature over the same digest recovers to the same key
        assert recover_signer(tx.digest(DOMAIN), bytes(reference.signature)) == ALICE


def test_another_domain_is_another_digest() -> None:
    tx = _tx(encode_position(1, 0, 0))
    other = plasma_domain(1337, bytes.fromhex("55" * 20))
    assert tx.digest(DOMAIN) != tx.digest(other)
    assert tx.digest(DOMAIN) != tx.digest(plasma_domain(1, bytes.fromhex("44" * 20)))
    signed = tx.sign(other, [KEY])
    assert signed.signers(DOMAIN) != (ALICE,)


def test_decode_encode_round_trip() -> None:
    for tx in (_tx(encode_position(1, 0, 0)), deposit_transaction(3, BOB, TOKEN, 5),
               _tx(encode_position(2000, 9999, 3), encode_position(1, 0, 0), token=TOKEN)):
        assert Transaction.decode(tx.encoded) == tx
        assert Transaction.decode(tx.encoded).tx_hash == tx.tx_hash == keccak(tx.encoded)
        signed = tx.sign(DOMAIN, [KEY] * len(tx.inputs))
        assert SignedTransaction.from_json(signed.to_json()) == signed


def test_non_canonical_and_garbage_encodings_refused() -> None:
    tx = _tx(encode_position(1, 0, 0))
    with pytest.raises(MalformedEncoding):
        Transaction.decode(tx.encoded + b"\0" * 32)  # trailing word: same tx, other bytes
    with pytest.raises(MalformedEncoding):
        Transaction.decode(b"\x01" * 100)
    with pytest.raises(MalformedEncoding):
        Transaction.decode(b"")
    # a head pointing past a padding word decodes to the same values but is not canonical
    body = tx.encoded[32:]
    shifted = (64).to_bytes(32, "big") + b"\0" * 32 + body
    with pytest.raises(MalformedEncoding):
        Transaction.decode(shifted)
    # decodes, but breaks the rules: five outputs, mixed tokens, a zero amount
    many = abi_encode(["(uint256[],(address,address,uint256)[],bytes32)"],
                      [([], [(BOB, ETH, 1)] * 5, b"\0" * 32)])
    mixed = abi_encode(["(uint256[],(address,address,uint256)[],bytes32)"],
                       [([], [(BOB, ETH, 1), (BOB, TOKEN, 1)], b"\0" * 32)])
    zero = abi_encode(["(uint256[],(address,address,uint256)[],bytes32)"],
                      [([], [(BOB, ETH, 0)], b"\0" * 32)])
    twice = abi_encode(["(uint256[],(address,address,uint256)[],bytes32)"],
                       [([10**9, 10**9], [(BOB, ETH, 1)], b"\0" * 32)])
    for data in (many, mixed, zero, twice):
        with pytest.raises(MalformedEncoding):
            Transaction.decode(bytes(data))


def test_positions() -> None:
    assert encode_position(1000, 2, 1) == 1000 * 10**9 + 2 * 10**4 + 1
    for args in ((1, 0, 0), (1000, 9999, 3), (123_456_000, 17, 2)):
        assert decode_position(encode_position(*args)) == args
    assert encode_position(1, 0, 0) < encode_position(1, 1, 0) < encode_position(2, 0, 0)
    for bad in ((0, 0, 0), (1, 10_000, 0), (1, 0, 4), (1, -1, 0), (-1, 0, 0)):
        with pytest.raises(MalformedEncoding):
            encode_position(*bad)
    for position in (0, 5, 10**9 + 4, 10**9 + 10**4 * 10_000, -10**9):
        with pytest.raises(MalformedEncoding):
            decode_position(position)
    with pytest.raises(MalformedEncoding):
        Transaction((10**9 + 7,), (Output(BOB, ETH, 1),))


def test_block_root_and_proofs_against_smt() -> None:
    txs = [_tx(encode_position(i + 1, 0, 0)) for i in range(13)]
    hashes = [t.tx_hash for t in txs]
    tree = SparseMerkleTree(KECCAK_HASHER, depth=14)
    for i, h in enumerate(hashes):
        tree.insert(i, int.from_bytes(h, "big"))
    root = int.from_bytes(compute_block_root(hashes), "big")
    assert root == tree.root
    for index in (0, 1, 7, 12):
        siblings = prove_inclusion(hashes, index)
        value = int.from_bytes(hashes[index], "big")
        full = tree.prove(index)
        assert full.siblings == siblings and full.found and full.value == value
        assert verify_smt_proof(full)
        # SparseMerkle.verifyInclusion's fold: the leaf with the siblings is the root
        assert _fold(index, value, siblings) == root
        # the key is the index: the same siblings do not put the tx at another index
        assert _fold((index + 1) % len(hashes), value, siblings) != root
        assert _fold(index, value ^ 1, siblings) != root
    assert compute_block_root([]) == b"\0" * 32
    one = compute_block_root([hashes[0]])
    assert int.from_bytes(one, "big") == KECCAK_HASHER.hash_leaf(0, int.from_bytes(hashes[0], "big"))
    assert prove_inclusion([hashes[0]], 0) == ()
    with pytest.raises(PlasmaError):
        compute_block_root([hashes[0]] * 10_001)


def _fold(index: int, value: int, siblings: tuple[int, ...]) -> int:
    node = KECCAK_HASHER.hash_leaf(index, value)
    for depth in reversed(range(len(siblings))):
        s = siblings[depth]
        node = KECCAK_HASHER.hash_node(s, node) if (index >> depth) & 1 else KECCAK_HASHER.hash_node(node, s)
    return node


def test_deposit_transaction_bytes() -> None:
    tx = deposit_transaction(1001, ALICE, TOKEN, 5 * 10**18)
    expected = abi_encode(["(uint256[],(address,address,uint256)[],bytes32)"],
                          [([], [(ALICE, TOKEN, 5 * 10**18)], (1001).to_bytes(32, "big"))])
    assert tx.encoded == bytes(expected)
    assert tx.inputs == () and tx.metadata == (1001).to_bytes(32, "big")
    assert deposit_transaction(1002, ALICE, TOKEN, 5 * 10**18).tx_hash != tx.tx_hash
    assert tx.output_id(0) == compute_output_id(tx.tx_hash, 0) == keccak(
        tx.tx_hash + (0).to_bytes(32, "big"))
