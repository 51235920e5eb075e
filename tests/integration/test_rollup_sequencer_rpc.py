"""The sequencer's lookups: receipts, batches and withdrawal proofs, over JSON-RPC.

A step's receipt moves from ``soft`` to ``posted`` when its batch is on L1 and to
``final`` once the challenge window has passed on the L1's clock; ``rollup_getBatch``
agrees with the contract's own ``getBatch`` and with the L1 transaction that posted it; the
withdrawal proof is accepted by ``finalizeWithdrawal`` on L1, which pays it; unknown
hashes, indices and withdrawals are clear errors; and every answer is the same after the
sequencer is SIGKILLed and restarted from its journal.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_hash.auto import keccak
from web3 import Web3

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.rollup.network import down, spawn_sequencer, up
from layerlab.l2.rollup.optimistic import MINIMAL, RollupContract
from layerlab.l2.rollup.txs import Transfer, Withdraw, sign_tx
from layerlab.orchestration import RpcError, rpc_call, stop, write_json_atomically
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
ALICE, BOB, CAROL = DEV[2], DEV[3], DEV[5]
ETHER = 10**18


def wait_for(predicate, what: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def refused(url: str, method: str, *params: object) -> RpcError:
    with pytest.raises(RpcError) as info:
        rpc_call(url, method, list(params))
    return info.value


def test_receipts_batches_and_withdrawal_proofs(node: NodeProcess, w3: Web3,
                                                tmp_path: Path) -> None:
    desc = up(tmp_path, node.url, batch_interval=3600, verifier=False)  # seals on request
    seq = desc["sequencer_url"]
    try:
        rollup = RollupContract.at(w3, desc["contract"])
        deposit_receipt = rollup.deposit_eth(ALICE.private_key, ALICE.address, 3 * ETHER)
        deposit_hash = "0x" + keccak(rollup.queued_step(deposit_receipt)).hex()
        wait_for(lambda: rpc_call(seq, "rollup_getBalance", [ALICE.address]) == str(3 * ETHER),
                 "the deposit")
        d = rollup.domain
        transfer = sign_tx(Transfer(nonce=0, token=0, to=BOB.address_bytes, amount=ETHER),
                           ALICE.private_key, d).encode()
        withdraw = sign_tx(Withdraw(nonce=1, token=0, amount=ETHER // 2,
                                    recipient=CAROL.address_bytes), ALICE.private_key, d).encode()
        sent = [rpc_call(seq, "rollup_sendTransaction", ["0x" + s.hex()])
                for s in (transfer, withdraw)]
        assert [s["txHash"] for s in sent] == ["0x" + keccak(s).hex() for s in (transfer, withdraw)]

        soft = rpc_call(seq, "rollup_getReceipt", [sent[1]["txHash"]])
        assert soft["status"] == "soft" and soft["batchIndex"] is None
        assert soft["ok"] and soft["kind"] == "Withdraw" and soft["withdrawalId"] == 0
        assert soft["postRoot"] == "0x" + int(sent[1]["root"], 16).to_bytes(32, "big").hex()
        assert refused(seq, "rollup_getWithdrawalProof", 0).data == {"check": "not-batched"}

        sealed = rpc_call(seq, "rollup_sealBatch")
        index = sealed["index"]
        assert sealed["steps"] == 3  # the deposit, the transfer, the withdrawal
        receipts = [rpc_call(seq, "rollup_getReceipt", [h])
                    for h in (deposit_hash, sent[0]["txHash"], sent[1]["txHash"])]
        assert [r["status"] for r in receipts] == ["posted"] * 3
        assert [(r["batchIndex"], r["stepIndex"]) for r in receipts] == [(index, i)
                                                                         for i in range(3)]
        on_l1 = rollup.l1.contract.functions.getBatch(index).call()
        assert receipts[-1]["postRoot"] == "0x" + bytes(on_l1[0]).hex()

        batch = rpc_call(seq, "rollup_getBatch", [index])
        assert batch["status"] == "posted" and batch["txCount"] == 3 == on_l1[2]
        assert batch["stateRoot"] == "0x" + bytes(on_l1[0]).hex()
        assert batch["stepsRoot"] == "0x" + bytes(on_l1[1]).hex()
        assert batch["challengeDeadline"] == on_l1[5] + MINIMAL.challenge_window
        posted = w3.eth.get_transaction(batch["l1TxHash"])
        assert posted["to"] == rollup.l1.address and w3.eth.get_transaction_receipt(
            batch["l1TxHash"])["status"] == 1
        proof = rpc_call(seq, "rollup_getWithdrawalProof", [sent[1]["txHash"]])
        assert proof == rpc_call(seq, "rollup_getWithdrawalProof", [0])
        assert (proof["recipient"], proof["amount"]) == (CAROL.address, str(ETHER // 2))
        assert proof["stateRoot"] == batch["stateRoot"] and proof["batchIndex"] == index

        # unknown things are errors that say what was missing
        assert refused(seq, "rollup_getReceipt", "0x" + "00" * 32).data == {"check": "unknown-tx"}
        assert refused(seq, "rollup_getReceipt", "0x1234").code == -32602
        assert refused(seq, "rollup_getBatch", index + 1).data == {"check": "unknown-batch"}
        assert refused(seq, "rollup_getBatch", -1).code == -32602
        assert refused(seq, "rollup_getWithdrawalProof", 1).data == {
            "check": "unknown-withdrawal"}
        assert refused(seq, "rollup_getWithdrawalProof", sent[0]["txHash"]).data == {
            "check": "unknown-withdrawal"}

        # SIGKILL and restart: the same answers, from the journal
        stop([desc["pids"][-1]], timeout=0)
        pid, _ = spawn_sequencer(tmp_path, node.url, desc["contract"], desc["deploy_block"],
                                 port=int(seq.rsplit(":", 1)[1]), batch_interval=3600)
        desc["pids"].append(pid)
        write_json_atomically(tmp_path / "rollup.json", desc)  # so down() stops it too
        assert [rpc_call(seq, "rollup_getReceipt", [r["txHash"]]) for r in receipts] == receipts
        assert rpc_call(seq, "rollup_getBatch", [index]) == batch
        assert rpc_call(seq, "rollup_getWithdrawalProof", [0]) == proof

        # after the window (on the L1's clock) it is final, and the bridge pays the proof
        head = w3.eth.get_block("latest")["timestamp"]
        rpc(node.url, "evm_mine", [head + MINIMAL.challenge_window + 1])
        assert rpc_call(seq, "rollup_getReceipt", [sent[1]["txHash"]])["status"] == "final"
        assert rpc_call(seq, "rollup_getBatch", [index])["status"] == "final"
        before = w3.eth.get_balance(CAROL.address)
        rollup.pay_withdrawal(BOB.private_key, proof["batchIndex"], proof["withdrawalId"],
                              bytes.fromhex(proof["recipient"][2:]),
                              bytes.fromhex(proof["token"][2:]), int(proof["amount"]),
                              bytes.fromhex(proof["proof"][2:]))
        assert w3.eth.get_balance(CAROL.address) == before + ETHER // 2
    finally:
        down(tmp_path)
