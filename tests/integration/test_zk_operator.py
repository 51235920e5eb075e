"""The ZK rollup's operator as a process on a real node (`layerlab zk up`'s pieces).

Deposits queue on L1 and are credited; transfers and a withdrawal are admitted and proven;
the withdrawal is paid on L1 by the very transaction that verifies its batch; a bad
signature, too little balance and a wrong nonce are refused at admission with their check;
transactions are admitted while a batch proves; and the operator SIGKILLed mid-burst
restarts with every acknowledged transaction, each of which lands in a later verified batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from layerlab.crypto.babyjubjub import prv2pub
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.zk.network import DEFAULT_SHAPE, contract, down, spawn_operator, up
from layerlab.l2.zk.operator import encode_tx
from layerlab.l2.zk.state import GWEI, sign_transfer, sign_withdrawal
from layerlab.orchestration import RpcError, is_alive, rpc_call, write_json_atomically
from tests.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
ALICE, BOB = DEV[2], DEV[3]
RECIPIENT = bytes.fromhex("00000000000000000000000000000000000a11ce")


def wait_for(predicate, what: str, timeout: float = 180):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def account(url: str, prv: bytes) -> Any:
    ax, ay = prv2pub(prv)
    return rpc_call(url, "zk_getAccount", [{"ax": str(ax), "ay": str(ay)}])


def send(url: str, tx: Any, timeout: float = 10) -> int:
    return int(rpc_call(url, "zk_sendTransaction", [encode_tx(tx)], timeout=timeout)["seq"])


def verified(url: str, seqs: list[int]) -> bool:
    return all(rpc_call(url, "zk_getReceipt", [s])["status"] == "verified" for s in seqs)


def test_the_operator_proves_pays_and_survives_a_kill(node: NodeProcess, w3: Web3,
                                                      tmp_path: Path) -> None:
    desc = up(tmp_path, node.url, batch_interval=0.3)
    url = desc["operator_url"]
    a, b = ALICE.private_key, BOB.private_key
    try:
        rollup = contract(desc)
        rollup.deposit(ALICE.private_key, *prv2pub(a), 1000 * GWEI)
        rollup.deposit(BOB.private_key, *prv2pub(b), 50 * GWEI)
        wait_for(lambda: account(url, b), "the deposits to be credited", 60)
        assert account(url, a)["index"] == 0 and account(url, a)["balance"] == 1000
        assert account(url, b)["index"] == 1 and account(url, b)["balance"] == 50

        # refused at admission, each with its check, and nothing changes
        for check, tx in (("signature", sign_transfer(b, 0, 1, 10, 0)),
                          ("balance", sign_transfer(a, 0, 1, 1001, 0)),
                          ("nonce", sign_transfer(a, 0, 1, 10, 3))):
            with pytest.raises(RpcError) as info:
                send(url, tx)
            assert info.value.code == -32000 and info.value.data == {"check": check}
        with pytest.raises(RpcError) as info:
            rpc_call(url, "zk_sendTransaction", [{"type": "transfer"}])
        assert info.value.code == -32602
        assert account(url, a)["nonce"] == 0

        first = [send(url, sign_transfer(a, 0, 1, 300, 0)), send(url, sign_transfer(b, 1, 0, 10, 0))]
        w_seq = send(url, sign_withdrawal(a, 0, RECIPIENT, 100, 1))
        recipient = Web3.to_checksum_address(RECIPIENT)
        before = w3.eth.get_balance(recipient)
        wait_for(lambda: verified(url, [*first, w_seq]), "the first transactions' batch")
        receipt = rpc_call(url, "zk_getReceipt", [w_seq])
        tx_receipt = w3.eth.get_transaction_receipt(receipt["l1Tx"])
        paid = [e for e in rollup.l1.receipt_events(tx_receipt) if e.name == "WithdrawalPaid"]
        assert [(e.args["recipient"], e.args["amountWei"]) for e in paid] == [(recipient, 100 * GWEI)]
        assert w3.eth.get_balance(recipient) - before == 100 * GWEI
        status = rpc_call(url, "zk_status")
        assert int(status["provenRoot"]) == rollup.state_root()
        assert all(x["proveSeconds"] > 0 and x["verifySeconds"] > 0 for x in status["batches"])
        assert account(url, a)["provenBalance"] == 1000 - 300 + 10 - 100

        # a burst of pre-signed transfers, SIGKILL in the middle of it
        nonce = account(url, a)["nonce"]
        burst = [sign_transfer(a, 0, 1, 1, nonce + i) for i in range(40)]
        acked: list[int] = []
        while_proving: list[int] = []

        def sender() -> None:
            for tx in burst:
                try:
                    seq = send(url, tx, timeout=5)
                    proving = rpc_call(url, "zk_status", timeout=5)["proving"]
                except (OSError, RpcError):
                    return
                acked.append(seq)
                if proving is not None:
                    while_proving.append(seq)
                time.sleep(0.4)

        thread = threading.Thread(target=sender)
        thread.start()
        wait_for(lambda: len(while_proving) >= 1 and len(acked) >= 4,
                 "transactions admitted while a batch proves", 120)
        pid = int(desc["operator_pid"])
        os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: not is_alive(pid), "the operator to die", 10)
        thread.join(30)
        assert 4 <= len(acked) < len(burst), "the kill did not fall inside the burst"

        port = int(url.rsplit(":", 1)[1])
        pid, _ = spawn_operator(tmp_path, node.url, desc["contract"], desc["deploy_block"],
                                DEFAULT_SHAPE, port=port, batch_interval=0.3)
        desc["pids"].append(pid)
        write_json_atomically(tmp_path / "zk.json", desc)  # so `down` stops it too
        after = account(url, a)["nonce"]
        # every acknowledged transfer is back (one more may have been journaled unanswered)
        assert nonce + len(acked) <= after <= nonce + len(acked) + 1
        with pytest.raises(RpcError) as info:
            send(url, sign_transfer(a, 0, 1, 1, nonce))
        assert info.value.data == {"check": "nonce"}
        wait_for(lambda: verified(url, acked), "the acknowledged transfers' batches", 300)
        status = wait_for(lambda: (s := rpc_call(url, "zk_status"))["pending"] == 0 and s,
                          "the last batch")
        assert int(status["provenRoot"]) == int(status["root"]) == rollup.state_root()
        assert account(url, b)["provenBalance"] == 50 + 300 - 10 + (after - nonce)
        # the CLI reads the same operator
        cli = subprocess.run([sys.executable, "-m", "layerlab.cli", "rollup", "zk", "status", "--dir",
                              str(tmp_path), "--account", "3"], capture_output=True, text=True,
                             timeout=60, check=True)
        assert f"{len(status['batches'])} batches verified" in cli.stdout
        assert f"balance {50 + 300 - 10 + (after - nonce)} gwei" in cli.stdout
        rows = [(x["count"], x["proveSeconds"], x["verifySeconds"], x["gasUsed"])
                for x in status["batches"]]
        print(f"\nbatches (txs, prove s, submitBatch s, gas): {rows}")
    finally:
        down(tmp_path)


def test_a_batch_that_lands_while_the_operator_is_dead_is_adopted(node: NodeProcess, w3: Web3,
                                                                   tmp_path: Path) -> None:
    """SIGKILLed while it proves batch 1; the same batch (rebuilt here from the same
    deposit and transfer, as the operator's own submitBatch would have sent it) lands on
    L1 before the restart: the restarted operator takes it as verified from its journal,
    does not send it again, and carries on with batch 2."""
    from layerlab.l2.zk.circuit import build_circuit
    from layerlab.l2.zk.network import OPERATOR_ACCOUNT
    from layerlab.l2.zk.prover import ZkProver
    from layerlab.l2.zk.state import QueuedDeposit, ZkState, build_batch

    desc = up(tmp_path, node.url, batch_interval=0.3)
    url = desc["operator_url"]
    a = ALICE.private_key
    try:
        rollup = contract(desc)
        rollup.deposit(ALICE.private_key, *prv2pub(a), 1000 * GWEI)
        wait_for(lambda: rpc_call(url, "zk_status")["batches"], "the deposit's batch")
        transfer = sign_transfer(a, 0, 0, 5, 0)
        seq = send(url, transfer)
        wait_for(lambda: rpc_call(url, "zk_status")["proving"] == 1, "batch 1 to be proving", 60)
        pid = int(desc["operator_pid"])
        os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: not is_alive(pid), "the operator to die", 10)

        state = ZkState(DEFAULT_SHAPE.depth)
        build_batch(state, DEFAULT_SHAPE, [QueuedDeposit(*prv2pub(a), 1000)], [], [])
        witness = build_batch(state, DEFAULT_SHAPE, [], [transfer], [])
        proof = ZkProver(build_circuit(DEFAULT_SHAPE)).prove(witness)
        operator_key = DEV[OPERATOR_ACCOUNT].private_key
        rollup.submit(operator_key, witness, proof.proof)
        assert int(rollup.l1.call("batchCount")) == 2

        pid, _ = spawn_operator(tmp_path, node.url, desc["contract"], desc["deploy_block"],
                                DEFAULT_SHAPE, port=int(url.rsplit(":", 1)[1]),
                                batch_interval=0.3)
        desc["pids"].append(pid)
        write_json_atomically(tmp_path / "zk.json", desc)  # so `down` stops it too
        status = rpc_call(url, "zk_status")
        assert len(status["batches"]) == 2 and status["pending"] == 0
        assert int(status["provenRoot"]) == witness.new_root == rollup.state_root()
        assert rpc_call(url, "zk_getReceipt", [seq])["status"] == "verified"
        nxt = send(url, sign_transfer(a, 0, 0, 5, 1))
        wait_for(lambda: verified(url, [nxt]), "batch 2")
        assert int(rollup.l1.call("batchCount")) == 3
    finally:
        down(tmp_path)
