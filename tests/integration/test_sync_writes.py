"""``--sync-writes``: a node that fsyncs every accepted transaction and block before it
answers. A power cut cannot be staged in a test, so the test watches the system calls: run
under ``strace``, the node with the flag issues at least one fsync/fdatasync per accepted
transaction, and the node without it does not; both keep every acknowledged transaction
across a SIGKILL. The flag without a data directory is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from layerlab.crypto.keys import derive_dev_accounts
from tests.nodeproc import ROOT, NodeProcess, rpc

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
TRANSFERS = 20
STRACE = shutil.which("strace")


def _strace_works() -> bool:
    if STRACE is None:
        return False
    return subprocess.run([STRACE, "-o", "/dev/null", "true"], capture_output=True,
                          timeout=30).returncode == 0


def fsyncs_for_transfers(tmp: Path, *flags: str) -> tuple[int, int]:
    """(fsync calls while the transfers were accepted, transfers back after a SIGKILL)."""
    trace = tmp / "trace.txt"
    node = NodeProcess("--no-mining", *flags, data_dir=tmp / "data",
                       wrapper=[str(STRACE), "-f", "-qq", "-e", "trace=fsync,fdatasync",
                                "-o", str(trace)])
    node.start(timeout=120)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        before = trace.read_text().count("sync(")
        hashes = []
        for i in range(TRANSFERS):
            signed = w3.eth.account.sign_transaction(
                {"to": DEV[1].address, "value": 1, "nonce": i, "gas": 21_000, "chainId": 31337,
                 "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}, DEV[0].private_key)
            hashes.append(w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex())
        during = trace.read_text().count("sync(") - before
        node.kill()  # SIGKILL: every acknowledged transaction must come back
        node.wrapper = []
        node.start(timeout=120)
        back = [rpc(node.url, "eth_getTransactionByHash", [h]) for h in hashes]
        return during, sum(1 for tx in back if isinstance(tx, dict) and tx["hash"] in hashes)
    finally:
        node.kill()


def test_sync_writes_fsyncs_each_accepted_transaction(tmp_path: Path) -> None:
    if not _strace_works():
        pytest.skip("strace is not installed or ptrace is not permitted here")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    synced, kept_synced = fsyncs_for_transfers(tmp_path / "a", "--sync-writes")
    unsynced, kept_unsynced = fsyncs_for_transfers(tmp_path / "b")
    assert synced >= TRANSFERS, synced
    assert unsynced < TRANSFERS // 4, unsynced
    assert kept_synced == kept_unsynced == TRANSFERS


def test_sync_writes_needs_a_data_directory() -> None:
    out = subprocess.run([sys.executable, "-m", "layerlab.cli", "node", "--in-memory",
                          "--sync-writes", "--quiet"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "--sync-writes needs a data directory" in out.stdout + out.stderr
