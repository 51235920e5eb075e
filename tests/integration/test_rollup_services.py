"""The optimistic rollup as services: the sequencer and a verifier as their own processes.

Transfers go to the sequencer by JSON-RPC and reach L1 in batches that the verifier,
deriving the state from L1 calldata alone, agrees with; the sequencer SIGKILLed mid-burst
restarts from its journal with every acknowledged transaction; a sequencer that lies about
a root is disputed by the verifier on its own and loses the bisection game, its bond and
its batch; the CLI runs the same from a user's side.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from web3 import Web3

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.rollup.network import down, spawn_sequencer, up
from layerlab.l2.rollup.optimistic import MINIMAL, RollupContract
from layerlab.l2.rollup.txs import Transfer, sign_tx
from layerlab.orchestration import RpcError, rpc_call, stop, write_json_atomically
from tests.nodeproc import NodeProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
SEQUENCER, ALICE, BOB = DEV[1], DEV[2], DEV[3]
ETHER = 10**18


def wait_for(predicate, what: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    return wait_until(predicate, timeout, what, interval=0.2)


def transfer(rollup: RollupContract, nonce: int, amount: int = 1000) -> str:
    tx = Transfer(nonce=nonce, token=0, to=BOB.address_bytes, amount=amount)
    return "0x" + sign_tx(tx, ALICE.private_key, rollup.domain).encode().hex()


def account(url: str, who) -> dict:  # type: ignore[no-untyped-def]
    return rpc_call(url, "rollup_getAccount", [who.address])


def test_sequencer_batches_survive_a_kill_and_the_verifier_agrees(node: NodeProcess, w3: Web3,
                                                                  tmp_path: Path) -> None:
    desc = up(tmp_path, node.url, batch_interval=0.5)
    seq = desc["sequencer_url"]
    try:
        rollup = RollupContract.at(w3, desc["contract"])
        rollup.deposit_eth(ALICE.private_key, ALICE.address, ETHER)
        wait_for(lambda: account(seq, ALICE)["balances"]["0"] == str(ETHER), "the deposit")
        # a malformed step and a replayed nonce are refused with their check
        with pytest.raises(RpcError) as info:
            rpc_call(seq, "rollup_sendTransaction", ["0x01ff"])
        assert info.value.code == -32602
        acked: list[int] = []
        sent = 3000  # far more than it can take before the kill lands (~0.2 s after 10)
        deadline = time.monotonic() + 60

        def burst() -> None:
            for nonce in range(sent):
                if time.monotonic() > deadline:
                    return
                try:
                    rpc_call(seq, "rollup_sendTransaction", [transfer(rollup, nonce)], timeout=5)
                except (OSError, RpcError):
                    return
                acked.append(nonce)

        sender = threading.Thread(target=burst)
        sender.start()
        wait_for(lambda: len(acked) >= 10, "the burst to start")
        stop([desc["pids"][-2]], timeout=0)  # SIGKILL the sequencer mid-burst
        sender.join(30)
        assert 10 <= len(acked) < sent, "the kill did not fall inside the burst"
        port = int(seq.rsplit(":", 1)[1])
        pid, _ = spawn_sequencer(tmp_path, node.url, desc["contract"], desc["deploy_block"],
                                 port=port, batch_interval=0.5)
        desc["pids"].append(pid)
        write_json_atomically(tmp_path / "rollup.json", desc)  # so down() stops it too
        nonce = account(seq, ALICE)["nonce"]
        # every acknowledged transfer is there (one more may have been journaled unanswered)
        assert len(acked) <= nonce <= len(acked) + 1
        with pytest.raises(RpcError) as info:
            rpc_call(seq, "rollup_sendTransaction", [transfer(rollup, 0)])
        assert info.value.data == {"check": "nonce"}
        for n in range(nonce, nonce + 5):
            rpc_call(seq, "rollup_sendTransaction", [transfer(rollup, n)])
        status = wait_for(lambda: (s := rpc_call(seq, "rollup_status"))["pending"] == 0 and s,
                          "the batches")
        assert rollup.state_root(rollup.batch_count() - 1) == int(status["root"], 16)
        verifier = wait_for(lambda: (v := rpc_call(desc["verifier_url"], "verifier_status"))
                            ["root"] == status["root"] and v, "the verifier")
        assert verifier["disputes"] == {}
        assert account(seq, BOB)["balances"]["0"] == str(1000 * (nonce + 5))
    finally:
        down(tmp_path)


def test_a_lying_sequencer_is_disputed_by_the_verifier_and_loses(node: NodeProcess, w3: Web3,
                                                                 tmp_path: Path) -> None:
    desc = up(tmp_path, node.url, batch_interval=0.5, fraud_from_batch=2)
    seq = desc["sequencer_url"]
    try:
        rollup = RollupContract.at(w3, desc["contract"])
        first_batch = rollup.batch_count()
        rollup.deposit_eth(ALICE.private_key, ALICE.address, ETHER)
        wait_for(lambda: rollup.batch_count() == first_batch + 1, "the honest deposit batch")
        honest_batches = rollup.batch_count()
        for nonce in range(4):
            rpc_call(seq, "rollup_sendTransaction", [transfer(rollup, nonce)])
        outcome = wait_for(
            lambda: [v for v in rpc_call(desc["verifier_url"], "verifier_status")
                     ["disputes"].values() if v != "open"], "the dispute's end", timeout=120)
        assert "wrong" in outcome[0]
        assert rollup.l1.call("bonds", SEQUENCER.address) == 0  # the liar's bond is gone
        assert rollup.batch_count() == honest_batches  # and so is its batch
        resolved = [e for e in rollup.events(desc["deploy_block"]) if e.name == "DisputeResolved"]
        assert resolved[-1].args["loser"] == SEQUENCER.address
        assert MINIMAL.proposer_bond > 0
    finally:
        down(tmp_path)


def test_the_rollup_cli(node: NodeProcess, tmp_path: Path) -> None:
    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "layerlab.cli", "rollup", *args,
                               "--dir", str(tmp_path)], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stdout

    assert "OptimisticRollup at 0x" in cli("up", "--l1-url", node.url, "--batch-interval", "0.5")
    try:
        assert "deposit queued" in cli("deposit", "--account", "2", "--amount", str(ETHER))
        wait_for(lambda: f"balances {{'0': '{ETHER}'}}" in cli("status", "--account", ALICE.address),
                 "the deposit")
        assert "accepted as step" in cli("send", "--account", "2", "--to", BOB.address,
                                         "--amount", "5000")
        wait_for(lambda: "balances {'0': '5000'}" in cli("status", "--account", BOB.address),
                 "the transfer")
        wait_for(lambda: "0 pending" in cli("status"), "the batch")
    finally:
        assert "stopped" in cli("down")
