"""The Plasma ledger: transaction validity, blocks, and a watcher's re-execution."""

from __future__ import annotations

import pytest
from eth_account import Account

from layerlab.errors import MalformedEncoding
from layerlab.l2.plasma.machine import ChildBlock, ChildChain, InvalidBlockFound, spend
from layerlab.l2.plasma.types import (
    ETH,
    Output,
    PlasmaError,
    SignedTransaction,
    Transaction,
    encode_position,
    plasma_domain,
)
from layerlab.primitives.smt import verify_inclusion

DOMAIN = plasma_domain(1337, b"\x42" * 20)
KEYS = [bytes([i + 1]) * 32 for i in range(3)]
ALICE, BOB, CAROL = (bytes.fromhex(Account.from_key(k).address[2:]) for k in KEYS)
TOKEN = b"\x77" * 20


def funded() -> ChildChain:
    chain = ChildChain(DOMAIN)
    chain.add_deposit(1, ALICE, ETH, 100)
    chain.add_deposit(2, BOB, ETH, 50)
    chain.add_deposit(3, ALICE, TOKEN, 10)
    return chain


def pay(inputs: tuple[int, ...], outputs: list[tuple[bytes, int]], keys: list[bytes],
        token: bytes = ETH) -> SignedTransaction:
    tx = Transaction(inputs, tuple(Output(o, token, a) for o, a in outputs))
    return tx.sign(DOMAIN, keys)


D1, D2, D3 = (encode_position(b, 0, 0) for b in (1, 2, 3))


def test_a_payment_moves_value_and_its_outputs_spend_after_the_block():
    chain = funded()
    fee = chain.admit(pay((D1,), [(BOB, 60), (ALICE, 39)], [KEYS[0]]))
    assert fee == 1
    block = chain.seal()
    assert block.blknum == 1000 and chain.next_child_block == 2000
    assert chain.balance(BOB, ETH) == 110 and chain.balance(ALICE, ETH) == 39
    out = encode_position(1000, 0, 0)
    assert chain.utxos[out].output == Output(BOB, ETH, 60)
    chain.admit(pay((out, D2), [(CAROL, 110)], [KEYS[1], KEYS[1]]))
    chain.seal()
    assert chain.balance(CAROL, ETH) == 110 and chain.balance(BOB, ETH) == 0


@pytest.mark.parametrize(("make", "check"), [
    (lambda: pay((D1,), [(BOB, 101)], [KEYS[0]]), "value"),
    (lambda: pay((D1,), [(BOB, 1)], [KEYS[1]]), "signature"),
    (lambda: pay((encode_position(1000, 0, 0),), [(BOB, 1)], [KEYS[0]]), "unknown-input"),
    (lambda: pay((D1, D3), [(BOB, 1)], [KEYS[0], KEYS[0]]), "mixed-tokens"),
    (lambda: SignedTransaction(Transaction((D1,), (Output(BOB, ETH, 1),)), ()), "signature"),
    (lambda: SignedTransaction(Transaction((), (Output(BOB, ETH, 1),)), ()), "malformed"),
])
def test_refusals_name_their_check_and_change_nothing(make, check):
    chain = funded()
    before = (dict(chain.utxos), list(chain.pending))
    with pytest.raises(PlasmaError) as info:
        chain.admit(make())
    assert info.value.check == check
    assert (dict(chain.utxos), list(chain.pending)) == before


def test_a_double_spend_is_refused_before_and_after_the_block():
    chain = funded()
    chain.admit(pay((D1,), [(BOB, 100)], [KEYS[0]]))
    with pytest.raises(PlasmaError) as info:
        chain.admit(pay((D1,), [(CAROL, 100)], [KEYS[0]]))
    assert info.value.check == "spent-input"
    chain.seal()
    with pytest.raises(PlasmaError) as info:
        chain.admit(pay((D1,), [(CAROL, 100)], [KEYS[0]]))
    assert info.value.check == "unknown-input"


def test_a_signature_for_another_deployment_does_not_spend():
    chain = funded()
    other = plasma_domain(1337, b"\x43" * 20)
    stx = Transaction((D1,), (Output(BOB, ETH, 100),)).sign(other, [KEYS[0]])
    with pytest.raises(PlasmaError, match="recovers to"):
        chain.admit(stx)


def test_a_watcher_finds_the_first_invalid_transaction_of_a_block():
    operator, watcher = funded(), funded()
    good = pay((D1,), [(BOB, 100)], [KEYS[0]])
    operator.admit(good)
    block = operator.seal()
    watcher.apply_block(ChildBlock.from_json(block.to_json()))
    assert watcher.utxos == operator.utxos
    # the operator's next block spends Bob's deposit twice
    double = [pay((D2,), [(CAROL, 50)], [KEYS[1]]), pay((D2,), [(ALICE, 50)], [KEYS[1]])]
    bad = ChildBlock(2000, tuple(double))
    before = dict(watcher.utxos)
    with pytest.raises(InvalidBlockFound) as info:
        watcher.apply_block(bad)
    assert (info.value.blknum, info.value.txindex, info.value.check) == (2000, 1, "spent-input")
    assert watcher.utxos == before and watcher.next_child_block == 2000
    # money from nothing: an output with no input behind it
    with pytest.raises(InvalidBlockFound) as info:
        watcher.apply_block(ChildBlock(2000, (SignedTransaction(
            Transaction((), (Output(CAROL, ETH, 10**18),)), ()),)))
    assert info.value.check == "malformed"


def test_block_json_must_hash_to_its_claimed_root():
    chain = funded()
    chain.admit(pay((D1,), [(BOB, 100)], [KEYS[0]]))
    data = chain.seal().to_json()
    data["root"] = "0x" + "00" * 31 + "01"
    with pytest.raises(MalformedEncoding, match="hash to"):
        ChildBlock.from_json(data)


def test_inclusion_proofs_pin_a_transaction_to_its_index():
    chain = funded()
    txs = [pay((D1,), [(BOB, 100)], [KEYS[0]]), pay((D2,), [(CAROL, 50)], [KEYS[1]])]
    for stx in txs:
        chain.admit(stx)
    block = chain.seal()
    root = int.from_bytes(block.root, "big")
    for index, stx in enumerate(txs):
        value = int.from_bytes(stx.tx.tx_hash, "big")
        assert verify_inclusion(root, index, value, block.proof(index))
        assert not verify_inclusion(root, 1 - index, value, block.proof(index))


def test_spend_picks_inputs_and_returns_change():
    chain = funded()
    tx = spend(chain.utxos_of(ALICE), BOB, 30, ALICE)
    assert tx.inputs == (D1,) and tx.outputs == (Output(BOB, ETH, 30), Output(ALICE, ETH, 70))
    with pytest.raises(PlasmaError) as info:
        spend(chain.utxos_of(BOB), ALICE, 51, BOB)
    assert info.value.check == "value"
