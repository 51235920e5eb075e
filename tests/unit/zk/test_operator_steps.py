"""The operator's admission path against the batch witness builder, with no proving.

``apply_deposit``/``apply_transfer``/``apply_withdrawal`` (what the operator checks a
transaction with before it answers) must reach the same Poseidon root as
:func:`build_batch` (the circuit's witness, tested against the circuit itself) on the
same steps, and refuse the same bad steps with the same check name. The JSON form of a
transaction round-trips and still verifies.
"""

from __future__ import annotations

import pytest

from layerlab.crypto.babyjubjub import prv2pub
from layerlab.l2.zk.operator import copy_state, decode_tx, encode_tx
from layerlab.l2.zk.state import (
    BatchShape,
    QueuedDeposit,
    Transfer,
    Withdrawal,
    ZkState,
    ZkTxError,
    apply_deposit,
    apply_transfer,
    apply_withdrawal,
    build_batch,
    sign_transfer,
    sign_withdrawal,
)

SHAPE = BatchShape(n_transfers=2, n_deposits=1, n_withdrawals=1, depth=8)
ALICE, BOB = b"\x01" * 32, b"\x02" * 32
RECIPIENT = b"\x11" * 20


def test_admission_reaches_the_witness_builders_root() -> None:
    deposits = [QueuedDeposit(*prv2pub(ALICE), 1000), QueuedDeposit(*prv2pub(BOB), 50)]
    transfers = [sign_transfer(ALICE, 0, 1, 300, 0), sign_transfer(BOB, 1, 0, 10, 0)]
    withdrawal = sign_withdrawal(ALICE, 0, RECIPIENT, 100, 1)

    batched = ZkState(SHAPE.depth)
    build_batch(batched, SHAPE, deposits[:1], [], [])
    build_batch(batched, SHAPE, deposits[1:], transfers, [withdrawal])

    admitted = ZkState(SHAPE.depth)
    assert [apply_deposit(admitted, d) for d in deposits] == [0, 1]
    for tx in transfers:
        apply_transfer(admitted, tx)
    apply_withdrawal(admitted, withdrawal)
    assert admitted.root == batched.root != 0
    assert admitted.accounts == batched.accounts
    assert admitted.accounts[0].balance == 1000 - 300 + 10 - 100
    assert copy_state(admitted).root == admitted.root


@pytest.mark.parametrize(("check", "tx"), [
    ("signature", sign_transfer(BOB, 0, 1, 10, 0)),
    ("nonce", sign_transfer(ALICE, 0, 1, 10, 1)),
    ("balance", sign_transfer(ALICE, 0, 1, 1001, 0)),
    ("unknown-account", sign_transfer(ALICE, 0, 7, 10, 0)),
    ("balance", sign_withdrawal(ALICE, 0, RECIPIENT, 1001, 0)),
    ("signature", sign_withdrawal(BOB, 0, RECIPIENT, 1, 0)),
])
def test_admission_refuses_what_the_batch_builder_refuses(check: str, tx: object) -> None:
    state = ZkState(SHAPE.depth)
    apply_deposit(state, QueuedDeposit(*prv2pub(ALICE), 1000))
    apply_deposit(state, QueuedDeposit(*prv2pub(BOB), 50))
    root = state.root
    apply = apply_withdrawal if type(tx).__name__ == "Withdrawal" else apply_transfer
    with pytest.raises(ZkTxError) as admitted:
        apply(state, tx)  # type: ignore[operator]
    assert admitted.value.check == check
    assert state.root == root
    args: tuple[list[object], list[object]] = ([], [tx]) if apply is apply_withdrawal else ([tx], [])
    with pytest.raises(ZkTxError) as batched:
        build_batch(state, SHAPE, [], *args)  # type: ignore[arg-type]
    assert batched.value.check == check


def test_the_json_form_round_trips_and_still_verifies() -> None:
    state = ZkState(SHAPE.depth)
    apply_deposit(state, QueuedDeposit(*prv2pub(ALICE), 1000))
    transfer = decode_tx(encode_tx(sign_transfer(ALICE, 0, 0, 5, 0)))
    withdrawal = decode_tx(encode_tx(sign_withdrawal(ALICE, 0, RECIPIENT, 7, 1)))
    assert transfer == sign_transfer(ALICE, 0, 0, 5, 0)
    assert isinstance(transfer, Transfer) and isinstance(withdrawal, Withdrawal)
    apply_transfer(state, transfer)
    apply_withdrawal(state, withdrawal)
    assert state.accounts[0].balance == 1000 - 7 and state.accounts[0].nonce == 2
    with pytest.raises(ValueError, match="recipient"):
        decode_tx({**encode_tx(sign_withdrawal(ALICE, 0, RECIPIENT, 7, 2)), "recipient": "0x12"})
    with pytest.raises(ValueError, match="type"):
        decode_tx({**encode_tx(sign_transfer(ALICE, 0, 0, 5, 0)), "type": "mint"})
