"""A node killed with a deep pool restarts with every transaction it acknowledged (issue 17).

Pre-state: a node on ``--data-dir`` with manual mining. Input: three senders with 160
nonces each, acknowledged one JSON-RPC batch at a time; then, from a second thread, fee
bumps of some of them, a fourth sender with a queued gap and more nonces, while the node
is SIGKILLed at a random moment. Expected post-state after the restart: every
acknowledged transaction that no acknowledged replacement superseded is in the pool
(each replaced one is gone), pending and queued counts match, and mining empties the
pending pool in nonce order with the replacements' values.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from layerlab.crypto.keys import derive_dev_accounts
from tests.nodeproc import NodeProcess, call

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
GWEI = 10**9
DEEP = 160
BATCH = 40


def _sign(sender: int, nonce: int, *, tip: int = 1, value: int = 1) -> bytes:
    tx = {"chainId": 31337, "nonce": nonce, "to": DEV[9].address, "value": value, "gas": 21000,
          "maxFeePerGas": 100 * GWEI * tip, "maxPriorityFeePerGas": GWEI * tip}
    return bytes(Account.sign_transaction(tx, DEV[sender].private_key).raw_transaction)


def _send_batch(url: str, raws: list[bytes]) -> list[dict[str, Any]]:
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction",
                        "params": ["0x" + raw.hex()]} for i, raw in enumerate(raws)])
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        replies: list[dict[str, Any]] = json.loads(resp.read())
    return sorted(replies, key=lambda r: r["id"])


class Ledger:
    """What the node acknowledged: (sender, nonce) -> (tx hash, value) of the latest ack."""

    def __init__(self) -> None:
        self.acked: dict[tuple[int, int], tuple[str, int]] = {}
        self.superseded: set[str] = set()
        self.unanswered: list[tuple[int, int, int, int]] = []
        """Items of a batch cut off by the kill: stored or not, never acknowledged."""
        self.lock = threading.Lock()

    def send(self, url: str, items: list[tuple[int, int, int, int]]) -> None:
        raws = [_sign(s, n, tip=tip, value=v) for s, n, tip, v in items]
        try:
            replies = _send_batch(url, raws)
        except OSError:
            self.unanswered.extend(items)
            raise
        with self.lock:
            for (sender, nonce, _, value), reply in zip(items, replies, strict=True):
                assert "error" not in reply, reply
                old = self.acked.get((sender, nonce))
                if old is not None:
                    self.superseded.add(old[0])
                self.acked[(sender, nonce)] = (reply["result"], value)


def _interleaved(senders: list[int], nonces: range) -> list[tuple[int, int, int, int]]:
    return [(s, n, 1, 1) for n in nonces for s in senders]


@pytest.mark.parametrize("seed", [17, 1])
def test_deep_pool_survives_sigkill_at_a_random_moment(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data_dir = tmp_path / "node"
    ledger = Ledger()
    node = NodeProcess("--no-mining", data_dir=data_dir).start()
    try:
        first = _interleaved([1, 2, 3], range(DEEP))
        for i in range(0, len(first), BATCH):
            ledger.send(node.url, first[i:i + BATCH])
        assert call(node.url, "txpool_status") == {"pending": hex(3 * DEEP), "queued": "0x0"}

        # the second burst, cut short by the kill: bumps, a queued gap, deeper nonces
        second: list[list[tuple[int, int, int, int]]] = []
        second.append([(1, n, 2, 1000 + n) for n in sorted(rng.sample(range(DEEP), 30))])
        second.append([(4, n, 1, 1) for n in (*range(10), *range(15, 21))])
        second.extend([[(2, n, 1, 1) for n in range(DEEP + k, DEEP + k + 10)] for k in (0, 10, 20)])
        second.append([(3, n, 3, 7) for n in (0, 1, 2, DEEP - 1)])

        def burst() -> None:
            for items in second:
                try:
                    ledger.send(node.url, items)
                except OSError:
                    return  # the node died under us: this batch was never acknowledged

        sender = threading.Thread(target=burst)
        sender.start()
        time.sleep(rng.uniform(0.0, 0.4))
        node.kill()
        sender.join(30)
    finally:
        node.kill()

    with NodeProcess("--no-mining", data_dir=data_dir) as again:
        url = again.url
        live = dict(ledger.acked)
        # A replacement sent in the batch the kill cut off may have been admitted and stored
        # before the node died, unacknowledged: then it, not the acknowledged original, is
        # the transaction of that nonce (as it would be without the kill). Nothing else may
        # stand in for an acknowledged transaction.
        cut_off = {(s, n): ("0x" + keccak(_sign(s, n, tip=tip, value=v)).hex(), v)
                   for s, n, tip, v in ledger.unanswered}
        for (sender, nonce), (tx_hash, value) in list(live.items()):
            tx = call(url, "eth_getTransactionByHash", tx_hash)
            if tx is None and (sender, nonce) in cut_off:
                ledger.superseded.add(tx_hash)
                tx_hash, value = live[(sender, nonce)] = cut_off[(sender, nonce)]
                tx = call(url, "eth_getTransactionByHash", tx_hash)
            assert tx is not None, f"acknowledged tx of sender {sender} nonce {nonce} lost"
            assert int(tx["value"], 16) == value
        for tx_hash in ledger.superseded:
            assert call(url, "eth_getTransactionByHash", tx_hash) is None
        queued = sum(1 for (s, n) in live if s == 4 and n >= 15)
        if any(s == 4 and n < 10 for (s, n) in live):
            assert sum(1 for (s, n) in live if s == 4 and n < 10) == 10  # one batch: all or none
        status = call(url, "txpool_status")
        maybe = {(s, n) for s, n, _, _ in ledger.unanswered} - set(live)
        assert int(status["queued"], 16) - queued in range(len(maybe) + 1)
        assert int(status["pending"], 16) - (len(live) - queued) in range(len(maybe) + 1)

        for _ in range(5):
            if call(url, "txpool_status")["pending"] == "0x0":
                break
            call(url, "evm_mine")
        assert call(url, "txpool_status")["pending"] == "0x0"
        for sender in (1, 2, 3):
            acked_next = max(n for (s, n) in live if s == sender) + 1
            stored_next = max([n for (s, n) in maybe if s == sender], default=-1) + 1
            mined = int(call(url, "eth_getTransactionCount", DEV[sender].address, "latest"), 16)
            assert acked_next <= mined <= max(acked_next, stored_next)
        for (sender, nonce), (tx_hash, _value) in live.items():
            if sender == 4 and nonce >= 15:
                continue
            receipt = call(url, "eth_getTransactionReceipt", tx_hash)
            assert receipt is not None and receipt["status"] == "0x1", (sender, nonce)
