"""The ZK rollup's escape hatch on a real node.

Two proven batches move the root; then the operator stops. A user rebuilds the state
from the L1's events and calldata alone (nonces included) and gets the operator's. Freezing is refused until
``escapeBlocks`` blocks pass without a batch; once frozen, no batch or deposit is taken,
each account is paid its balance in the last verified root (checked on L1 with
circomlibjs's Poseidon contracts over a circomlib SMT path) once and only once, a balance
the proof does not show (more than proven, or an unproven later state) is refused, the
deposit still queued is refunded, and the contract ends holding nothing: every wei
deposited was paid out exactly once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from layerlab.crypto.babyjubjub import prv2pub
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.zk.circuit import build_circuit
from layerlab.l2.zk.network import contract, down, up
from layerlab.l2.zk.onchain import ZkRollupContract, ZkRollupTxError, deploy_zk_rollup
from layerlab.l2.zk.operator import copy_state
from layerlab.l2.zk.prover import ZkProver
from layerlab.l2.zk.recover import recover_state
from layerlab.l2.zk.state import (
    GWEI,
    BatchShape,
    ZkState,
    apply_transfer,
    build_batch,
    sign_transfer,
    sign_withdrawal,
)
from layerlab.orchestration import rpc_call, stop
from tests.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

SHAPE = BatchShape(n_transfers=2, n_deposits=1, n_withdrawals=1, depth=8)
DEV = derive_dev_accounts()
DEPLOYER, OPERATOR, ALICE_L1, BOB_L1, CAROL_L1 = DEV[0], DEV[1], DEV[2], DEV[3], DEV[4]
ALICE, BOB, CAROL = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
RECIPIENT = bytes.fromhex("00000000000000000000000000000000000a11ce")
ESCAPE_BLOCKS = 4


def refused(call: Any) -> str | None:
    with pytest.raises(ZkRollupTxError) as info:
        call()
    return info.value.error_name


def escape_with(rollup: ZkRollupContract, state: ZkState, index: int, balance: int) -> Any:
    a = state.accounts[index]
    siblings = list(state.tree.prove(index).siblings)
    return rollup.l1.transact(DEPLOYER.private_key, "ZkRollup.escape", rollup.fn.escape(
        index, a.ax, a.ay, balance, a.nonce, siblings), gas=1_000_000)


def test_the_escape_hatch_pays_each_proven_balance_once(node: NodeProcess, w3: Web3) -> None:
    build = build_circuit(SHAPE)
    prover = ZkProver(build)
    rollup = deploy_zk_rollup(w3, DEPLOYER.address, OPERATOR.address, build,
                              escape_blocks=ESCAPE_BLOCKS)
    rollup.deposit(ALICE_L1.private_key, *prv2pub(ALICE), 1000 * GWEI)
    rollup.deposit(BOB_L1.private_key, *prv2pub(BOB), 50 * GWEI)

    proven = ZkState(SHAPE.depth)
    for deposits, transfers, withdrawals in (
            (rollup.pending_deposits()[:1], [], []),
            (None, [sign_transfer(ALICE, 0, 1, 300, 0)],
             [sign_withdrawal(ALICE, 0, RECIPIENT, 100, 1)])):
        witness = build_batch(proven, SHAPE, deposits or rollup.pending_deposits()[:1],
                              transfers, withdrawals)
        rollup.submit(OPERATOR.private_key, witness, prover.prove(witness).proof)
    assert rollup.state_root() == proven.root
    assert (proven.accounts[0].balance, proven.accounts[1].balance) == (600, 350)
    rollup.deposit(CAROL_L1.private_key, *prv2pub(CAROL), 70 * GWEI)  # never batched
    later = copy_state(proven)  # a transfer the operator took but never proved
    apply_transfer(later, sign_transfer(BOB, 1, 0, 350, 0))

    # what a user rebuilds from L1 events and calldata alone equals the operator's state
    recovered = recover_state(rollup)
    assert recovered.root == proven.root and recovered.accounts == proven.accounts
    proven = recovered

    # the operator is alive (a batch just landed): no freeze, no escape
    assert refused(lambda: rollup.freeze(DEPLOYER.private_key)) == "TooEarly"
    assert refused(lambda: rollup.escape(DEPLOYER.private_key, proven, 0)) == "NotFrozen"
    for _ in range(ESCAPE_BLOCKS):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    rollup.freeze(DEPLOYER.private_key)
    assert refused(lambda: rollup.freeze(DEPLOYER.private_key)) == "IsFrozen"
    after = build_batch(copy_state(proven), SHAPE, rollup.pending_deposits()[:1], [], [])
    assert refused(lambda: rollup.submit(OPERATOR.private_key, after, bytes(256))) == "IsFrozen"
    assert refused(lambda: rollup.deposit(CAROL_L1.private_key, *prv2pub(CAROL), GWEI)) == "IsFrozen"

    # more than the proven balance, or the unproven later state: the path does not match
    assert refused(lambda: escape_with(rollup, proven, 1, 351)) == "BadMerkleProof"
    assert refused(lambda: rollup.escape(DEPLOYER.private_key, later, 0)) == "BadMerkleProof"
    gas = []
    for index, owner, amount in ((0, ALICE_L1, 600), (1, BOB_L1, 350)):
        before = w3.eth.get_balance(owner.address)
        gas.append(int(rollup.escape(DEPLOYER.private_key, proven, index)["gasUsed"]))
        assert w3.eth.get_balance(owner.address) - before == amount * GWEI
        assert refused(lambda i=index: rollup.escape(DEPLOYER.private_key, proven, i)) \
            == "AlreadyEscaped"
    # the queued deposit goes back to its depositor, once; consumed ones never
    before = w3.eth.get_balance(CAROL_L1.address)
    rollup.refund_deposit(DEPLOYER.private_key, 2)
    assert w3.eth.get_balance(CAROL_L1.address) - before == 70 * GWEI
    assert refused(lambda: rollup.refund_deposit(DEPLOYER.private_key, 2)) == "NotRefundable"
    assert refused(lambda: rollup.refund_deposit(DEPLOYER.private_key, 0)) == "NotRefundable"
    # 1000 + 50 + 70 deposited = 100 withdrawn + 600 + 350 escaped + 70 refunded
    assert w3.eth.get_balance(Web3.to_checksum_address(rollup.l1.address)) == 0
    assert w3.eth.get_balance(Web3.to_checksum_address(RECIPIENT)) == 100 * GWEI
    print(f"\nescape gas (depth {SHAPE.depth}, Poseidon on L1): {gas}")


def test_zk_escape_cli_leaves_without_the_operator(node: NodeProcess, w3: Web3,
                                                   tmp_path: Path) -> None:
    """`layerlab zk up` with a short escape window, a deposit proven into the root, the
    operator stopped: `layerlab zk escape` rebuilds the state from L1, freezes and is paid."""
    desc = up(tmp_path, node.url, batch_interval=0.3, escape_blocks=ESCAPE_BLOCKS)
    try:
        cli = [sys.executable, "-m", "layerlab.cli", "zk"]
        subprocess.run([*cli, "deposit", "--dir", str(tmp_path), "--account", "2", "--amount",
                        "500"], check=True, capture_output=True, timeout=120)
        deadline = time.monotonic() + 120
        while not rpc_call(desc["operator_url"], "zk_status")["batches"]:
            assert time.monotonic() < deadline, "the deposit was not batched"
            time.sleep(0.5)
        stop([int(desc["operator_pid"])])
        rollup = contract(desc)
        for _ in range(ESCAPE_BLOCKS):
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        out = subprocess.run([*cli, "escape", "--dir", str(tmp_path), "--account", "2"],
                             check=True, capture_output=True, text=True, timeout=300).stdout
        assert "escaped account 0: 500 gwei" in out
        assert rollup.l1.call("frozen") is True and rollup.l1.call("escaped", 0) is True
        assert w3.eth.get_balance(Web3.to_checksum_address(rollup.l1.address)) == 0
    finally:
        down(tmp_path)
