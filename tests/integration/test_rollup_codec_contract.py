"""The inbox form is the contract's: OptimisticRollup splits what encode_inbox writes into
the same steps (same count, same Merkle root), and refuses exactly what decode_inbox does.
Real L2 steps go through the compact form and compression on the way."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.errors import MalformedEncoding
from layerlab.l2.rollup.codec import (
    compress,
    decode_compact,
    decode_inbox,
    decompress,
    encode_compact,
    encode_inbox,
)
from layerlab.l2.rollup.machine import RollupState, apply_step
from layerlab.l2.rollup.txs import Deposit, Transfer, Withdraw, rollup_domain, sign_tx

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
ETHER = 10**18


@pytest.fixture(scope="module")
def rollup(w3: Web3) -> Contract:
    prover = deploy(w3, load_artifact("HashChainProver"), sender=DEV[0].address)
    contract: Contract = deploy(w3, load_artifact("OptimisticRollup"), DEV[1].address,
                                prover.address, b"\x11" * 32, (600, 60, 5, ETHER, ETHER // 2),
                                sender=DEV[0].address)
    return contract


def merkle_root(steps: list[bytes]) -> bytes:
    width = 1
    while width < len(steps):
        width *= 2
    level = [keccak(s) for s in steps] + [b"\0" * 32] * (width - len(steps))
    while len(level) > 1:
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_real_l2_steps_through_every_layer_are_what_the_contract_splits(rollup: Contract) -> None:
    domain = rollup_domain(1337, bytes.fromhex(rollup.address[2:]))
    keys = [bytes([i + 1]) * 32 for i in range(3)]
    users = [bytes.fromhex(Account.from_key(k).address[2:]) for k in keys]
    state = RollupState()
    start = RollupState()
    steps = [Deposit(i, u, u, b"\0" * 20, 0, 5 * ETHER).encode() for i, u in enumerate(users)]
    steps += [sign_tx(Transfer(nonce=0, token=0, to=users[1], amount=ETHER), keys[0], domain).encode(),
              sign_tx(Transfer(nonce=0, token=0, to=b"\x77" * 20, amount=12345), keys[1],
                      domain).encode(),
              b"\xf0" + sign_tx(Withdraw(nonce=0, token=0, amount=ETHER, recipient=users[2]),
                                keys[2], domain).encode(),
              b"\xf0garbage from the forced queue"]
    for step in steps:
        apply_step(state, step, domain)
    assert state.balance(0, b"\x77" * 20) == 12345
    carried = decode_compact(decompress(compress(encode_compact(steps, start))), start)
    assert carried == steps
    root, count = rollup.functions.computeStepsRoot(encode_inbox(carried)).call()
    assert (bytes(root), count) == (merkle_root(steps), len(steps))


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\x00\x00\x01", b"\x00\x05abc", b"\x00\x01a\x00", b"\x00\x01a\x00\x01",
    b"\x10\x01" + b"\x01" * 4097, b"\x10\x00" + b"\x01" * 4096, b"\x00\x01\x01" * 4096,
    b"\x00\x01\x01" * 4097, b"\x00\x03abc\x00\x01z",
], ids=["empty", "1 byte", "zero length", "past the end", "truncated prefix",
        "prefix without a byte", "4097-byte step", "4096-byte step", "4096 steps", "4097 steps",
        "two steps"])
def test_the_contract_and_decode_inbox_agree_on_what_is_malformed(rollup: Contract,
                                                                  data: bytes) -> None:
    try:
        steps = decode_inbox(data)
    except MalformedEncoding:
        with pytest.raises(ContractCustomError):
            rollup.functions.computeStepsRoot(data).call()
        return
    root, count = rollup.functions.computeStepsRoot(data).call()
    assert (bytes(root), count) == (merkle_root(steps), len(steps))
    assert encode_inbox(steps) == data
