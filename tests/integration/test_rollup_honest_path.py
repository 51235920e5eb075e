"""The optimistic rollup's honest path, through its processes and the CLI.

``layerlab rollup optimistic up`` starts the sequencer and a verifier on a node process;
users deposit ETH (CLI) and an ERC-20 (the bridge), transfer (CLI), add liquidity, mint an
NFT and swap (signed EIP-712 transactions by JSON-RPC), and withdraw to L1 (CLI): one
withdrawal waits with ``--wait`` for its batch and the MINIMAL challenge window (advanced on
the L1's clock) and claims itself; another is refused by ``claim`` before the window ends
and paid after it. Value is conserved on both layers: L2 balances, the pool's reserves
(from Uniswap v2's formula, computed here) and the L1 payouts add up to the deposits, and
the bridge holds exactly what was not paid out (plus the sequencer's bond).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import Web3

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2.rollup.optimistic import MINIMAL, RollupContract
from layerlab.l2.rollup.txs import AddLiquidity, L2Tx, MintNFT, Swap, sign_tx
from layerlab.orchestration import rpc_call
from tests.nodeproc import NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
DEPLOYER, SEQUENCER, ALICE, BOB, CAROL = DEV[0], DEV[1], DEV[2], DEV[3], DEV[5]
ETHER = 10**18
TOKENS = 10_000 * 10**18


def wait_for(predicate, what: str, timeout: float = 90):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)
    return value


def test_deposit_trade_and_withdraw_with_value_conserved(node: NodeProcess, w3: Web3,
                                                         tmp_path: Path) -> None:
    def command(*args: str) -> list[str]:
        return [sys.executable, "-m", "layerlab.cli", "rollup", "optimistic", *args,
                "--dir", str(tmp_path)]

    def cli(*args: str, ok: bool = True) -> str:
        proc = subprocess.run(command(*args), capture_output=True, text=True, timeout=180)
        assert (proc.returncode == 0) == ok, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stdout

    assert "OptimisticRollup at 0x" in cli("up", "--l1-url", node.url, "--batch-interval", "0.5")
    try:
        desc = json.loads((tmp_path / "rollup.json").read_text())
        seq = desc["sequencer_url"]
        rollup = RollupContract.at(w3, desc["contract"])
        bridge_before = w3.eth.get_balance(rollup.l1.address)

        def balances(who) -> dict[str, int]:  # type: ignore[no-untyped-def]
            got = rpc_call(seq, "rollup_getAccount", [who.address])["balances"]
            return {k: int(v) for k, v in got.items()}

        def send(tx: L2Tx, who) -> dict:  # type: ignore[no-untyped-def]
            reply = rpc_call(seq, "rollup_sendTransaction",
                             ["0x" + sign_tx(tx, who.private_key, rollup.domain).encode().hex()])
            return rpc_call(seq, "rollup_getReceipt", [reply["txHash"]])

        def nonce(who) -> int:  # type: ignore[no-untyped-def]
            return int(rpc_call(seq, "rollup_getAccount", [who.address])["nonce"])

        # deposits: ETH by the CLI, an ERC-20 through the bridge
        cli("deposit", "--account", "2", "--amount", str(5 * ETHER))
        cli("deposit", "--account", "3", "--amount", str(2 * ETHER))
        token = deploy(w3, load_artifact("LabToken"), "Lab Token", "LAB", TOKENS,
                       sender=DEPLOYER.address,
                       private_key="0x" + DEPLOYER.private_key.hex())
        for fn, who in ((token.functions.transfer(ALICE.address, TOKENS), DEPLOYER),
                        (token.functions.approve(rollup.l1.address, TOKENS), ALICE)):
            w3.eth.wait_for_transaction_receipt(fn.transact({"from": who.address}))
        rollup.deposit_erc20(ALICE.private_key, token.address, 1000 * ETHER, ALICE.address)
        wait_for(lambda: balances(ALICE).get("1") == 1000 * ETHER
                 and balances(BOB).get("0") == 2 * ETHER, "the deposits")
        deposited_eth = 7 * ETHER

        # L2 activity: a transfer (CLI), liquidity, an NFT mint, a swap
        assert "accepted as step" in cli("send", "--account", "2", "--to", BOB.address,
                                         "--amount", str(ETHER))
        pool_eth, pool_tok = 2 * ETHER, 500 * ETHER
        added = send(AddLiquidity(nonce=nonce(ALICE), token0=0, token1=1, amount0=pool_eth,
                                  amount1=pool_tok, min_shares=1), ALICE)
        minted = send(MintNFT(nonce=nonce(ALICE), token_id=7, to=BOB.address_bytes), ALICE)
        swap_in = ETHER // 10
        expected_out = swap_in * 997 * pool_tok // (pool_eth * 1000 + swap_in * 997)  # Uniswap v2
        swapped = send(Swap(nonce=nonce(BOB), token_in=0, token_out=1, amount_in=swap_in,
                            min_out=expected_out), BOB)
        assert [r["kind"] for r in (added, minted, swapped)] == ["AddLiquidity", "MintNFT", "Swap"]
        assert all(r["ok"] for r in (added, minted, swapped))
        assert int(swapped["amountOut"]) == expected_out
        pool_eth, pool_tok = pool_eth + swap_in, pool_tok - expected_out

        # withdrawal 0 waits for its batch and the window, then claims itself
        waiting = subprocess.Popen(command("withdraw", "--account", "3", "--amount",
                                           str(ETHER // 2), "--to", CAROL.address, "--wait",
                                           "--timeout", "120"),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        proof = wait_for(lambda: _proof(seq, 0), "withdrawal 0 in a batch")
        assert rpc_call(seq, "rollup_getBatch", [proof["batchIndex"]])["status"] == "posted"
        carol_before = w3.eth.get_balance(CAROL.address)
        head = w3.eth.get_block("latest")["timestamp"]
        rpc(node.url, "evm_mine", [head + MINIMAL.challenge_window + 1])
        out, _ = waiting.communicate(timeout=150)
        assert waiting.returncode == 0, out
        assert "withdrawal 0 paid on L1" in out
        assert w3.eth.get_balance(CAROL.address) == carol_before + ETHER // 2

        # withdrawal 1: claimed too early is refused, after the window it is paid
        assert "withdrawal 1 accepted" in cli("withdraw", "--account", "2", "--amount",
                                              str(ETHER), "--to", CAROL.address)
        wait_for(lambda: _proof(seq, 1), "withdrawal 1 in a batch")
        assert "final at L1 time" in cli("claim", "--withdrawal", "1", ok=False)
        head = w3.eth.get_block("latest")["timestamp"]
        rpc(node.url, "evm_mine", [head + MINIMAL.challenge_window + 1])
        assert "withdrawal 1 paid on L1" in cli("claim", "--withdrawal", "1")
        assert "AlreadyWithdrawn" in cli("claim", "--withdrawal", "1", ok=False)
        paid = ETHER // 2 + ETHER
        assert w3.eth.get_balance(CAROL.address) == carol_before + paid

        # conservation on L2 (balances + pool) and L1 (the bridge's balance)
        l2_eth = balances(ALICE).get("0", 0) + balances(BOB).get("0", 0)
        assert l2_eth + pool_eth + paid == deposited_eth
        l2_tok = balances(ALICE).get("1", 0) + balances(BOB).get("1", 0)
        assert balances(BOB).get("1") == expected_out
        assert l2_tok + pool_tok == 1000 * ETHER
        assert w3.eth.get_balance(rollup.l1.address) == bridge_before + deposited_eth - paid
        assert token.functions.balanceOf(rollup.l1.address).call() == 1000 * ETHER

        status = wait_for(lambda: (s := cli("status")) and "0 pending" in s and s, "the batches")
        assert "challenge clock" in status and "final" in status and "disputes: none" in status
        assert "disputes none" in status  # the verifier agreed with every batch
    finally:
        assert "stopped" in cli("down")


def _proof(url: str, withdrawal_id: int) -> dict | None:  # type: ignore[type-arg]
    from layerlab.orchestration import RpcError

    try:
        return rpc_call(url, "rollup_getWithdrawalProof", [withdrawal_id])
    except RpcError:
        return None
