"""Proof of stake and the PoW->PoS fork on networks of real node processes (127.0.0.1).

Minimal preset: 1 s slots, 4-slot epochs, 4 genesis validators (one per node unless a
test says otherwise), so a checkpoint finalizes about 3 epochs (12 s) after it is proposed.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.netcluster import Cluster, wait_for
from tests.powutil import DEV, transfer

pytestmark = pytest.mark.slow


def finalized_epoch(net: Cluster, index: int) -> int:
    status = net.status(index)
    return int(status.get("finalizedCheckpoint", {}).get("epoch", -1))


def _send(net: Cluster, entry: int, sender: int, nonce: int, to: bytes = b"\x99" * 20) -> str:
    raw = transfer(sender, to, 1000 + nonce, nonce)
    result: str = net.call(entry, "eth_sendRawTransaction", "0x" + raw.hex())
    return result


def _state(net: Cluster, index: int, senders: list[int], others: list[bytes]) -> tuple[Any, ...]:
    nonces = tuple(int(net.call(index, "eth_getTransactionCount", DEV[s].address, "latest"), 16)
                   for s in senders)
    balances = tuple(int(net.call(index, "eth_getBalance", "0x" + a.hex(), "latest"), 16) for a in others)
    return nonces, balances


def test_four_validators_finalize_and_agree(tmp_path: Path) -> None:
    with Cluster(tmp_path, 4, "pos") as net:
        sent = [_send(net, k % 4, k % 2, k // 2) for k in range(10)]
        wait_for(lambda: all(finalized_epoch(net, i) >= 3 for i in range(4)), 90, "finality on every node")
        wait_for(lambda: all(net.call(i, "eth_getTransactionReceipt", h) for i in range(4) for h in sent),
                 30, "transfers mined everywhere")
        # web3 / ethers "finalized" and "safe" tags follow the checkpoints
        fin = int(net.call(0, "eth_getBlockByNumber", "finalized", False)["number"], 16)
        safe = int(net.call(0, "eth_getBlockByNumber", "safe", False)["number"], 16)
        latest = int(net.call(0, "eth_getBlockByNumber", "latest", False)["number"], 16)
        assert 1 <= fin <= safe <= latest and fin < latest
        number = net.status(0)["finalized"]["number"]
        hashes = {net.call(i, "eth_getBlockByNumber", hex(number), False)["hash"] for i in range(4)}
        assert len(hashes) == 1  # one finalized block everywhere
        assert len({_state(net, i, [0, 1], [b"\x99" * 20]) for i in range(4)}) == 1
        validators = net.call(0, "layerlab_validators")
        assert len(validators) == 4 and not any(v["slashed"] for v in validators)
        # attesters were rewarded: balances above the 32 ETH stake
        assert sum(v["balanceGwei"] for v in validators) > 4 * 32 * 10**9


def test_a_third_offline_keeps_finality_more_stops_it_until_they_return(tmp_path: Path) -> None:
    with Cluster(tmp_path, 4, "pos") as net:
        wait_for(lambda: finalized_epoch(net, 0) >= 2, 90, "initial finality")
        net.kill(3)  # 1 of 4 validators (25% < 1/3) offline
        start = finalized_epoch(net, 0)
        wait_for(lambda: finalized_epoch(net, 0) >= start + 2, 60, "finality with 3/4 online")
        net.kill(2)  # now half the stake is offline
        time.sleep(4)  # let the last votes with 3/4 land
        stalled = finalized_epoch(net, 0)
        head_before = net.head(0)[0]
        time.sleep(20)  # five epochs
        assert net.head(0)[0] >= head_before + 3  # blocks are still produced (~half the slots)...
        assert finalized_epoch(net, 0) <= stalled + 1  # ...but finality stops
        net.start(2)
        net.start(3)
        wait_for(lambda: finalized_epoch(net, 0) >= stalled + 2, 90, "finality after they return")
        net.wait_converged(60, indices=[0, 1, 2, 3])


def test_equivocating_validators_are_slashed_on_every_honest_node(tmp_path: Path) -> None:
    with Cluster(tmp_path, 4, "pos", start=False) as net:
        net.specs[3].byzantine = "double-propose"
        net.specs[2].byzantine = "double-vote"
        for i in range(4):
            net.start(i)

        def slashed(index: int) -> set[int]:
            return {v["index"] for v in net.call(index, "layerlab_validators") if v["slashed"]}

        wait_for(lambda: all(slashed(i) >= {2, 3} for i in (0, 1)), 120, "both offenders slashed")
        for i in (0, 1):
            validators = {v["index"]: v for v in net.call(i, "layerlab_validators")}
            assert validators[3]["balanceGwei"] < 32 * 10**9  # stake cut
            assert validators[3]["exitEpoch"] < 2**64 - 1  # ejected
            assert validators[0]["balanceGwei"] > validators[3]["balanceGwei"]
        kinds = {s for i in (0, 1) for s in [net.status(i)["slashingsSeen"]]}
        assert min(kinds) >= 2


def test_pow_to_pos_fork_with_traffic_loses_nothing(tmp_path: Path) -> None:
    with Cluster(tmp_path, 4, "merge", merge_block=8) as net:
        sent: list[str] = []
        errors: list[BaseException] = []

        def traffic() -> None:  # bounded: 45 transfers over ~30 s, across the fork
            rng = random.Random(7)
            try:
                for k in range(45):
                    sent.append(_send(net, rng.randrange(4), k % 3, k // 3))
                    time.sleep(0.66)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=traffic)
        thread.start()
        wait_for(lambda: net.status(0)["phase"] == "pos", 120, "the fork")
        thread.join(60)
        assert not errors, errors
        wait_for(lambda: all(finalized_epoch(net, i) >= 0 and net.status(i).get("phase") == "pos"
                             for i in range(4)), 60, "PoS everywhere")
        wait_for(lambda: all(net.call(3, "eth_getTransactionReceipt", h) for h in sent), 90,
                 "every transfer mined")
        terminal = net.status(0)["terminalNumber"]
        assert terminal == 8
        post = [net.call(0, "eth_getTransactionReceipt", h)["blockNumber"] for h in sent]
        assert min(int(b, 16) for b in post) <= terminal < max(int(b, 16) for b in post)  # both eras
        wait_for(lambda: net.converged(), 60, "one head")
        assert len({_state(net, i, [0, 1, 2], [b"\x99" * 20]) for i in range(4)}) == 1
        assert _state(net, 0, [0, 1, 2], [])[0] == (15, 15, 15)
        wait_for(lambda: finalized_epoch(net, 0) > terminal // 4, 90, "PoS finality after the fork")


def test_killed_validator_node_restarts_and_rejoins(tmp_path: Path) -> None:
    with Cluster(tmp_path, 4, "pos") as net:
        wait_for(lambda: net.head(1)[0] >= 4, 60, "some blocks")
        tx = _send(net, 1, 4, 0)
        net.kill(1)  # SIGKILL
        before = net.head(0)[0]
        wait_for(lambda: net.head(0)[0] >= before + 4, 60, "the others to go on")
        net.start(1)
        net.wait_converged(60)
        wait_for(lambda: net.call(0, "eth_getTransactionReceipt", tx), 60, "the accepted tx mined")
        start = finalized_epoch(net, 1)
        wait_for(lambda: finalized_epoch(net, 1) >= start + 1, 60, "finality on the restarted node")


def test_every_node_killed_at_once_restarts_from_disk(tmp_path: Path) -> None:
    """SIGKILL all four (mid-slot, mid-block for some); on restart each resumes from its
    LevelDB: no finalized block, accepted transaction or validator record is lost."""
    with Cluster(tmp_path, 4, "pos") as net:
        wait_for(lambda: finalized_epoch(net, 0) >= 2, 90, "finality")
        tx = _send(net, 2, 6, 0)
        time.sleep(0.3)
        heads = [net.head(i)[0] for i in range(4)]
        finalized = [finalized_epoch(net, i) for i in range(4)]
        for i in range(4):
            net.kill(i)
        for i in range(4):
            net.start(i)
        for i in range(4):
            assert net.head(i)[0] >= heads[i] - 1  # at most the block being written is lost
            assert finalized_epoch(net, i) >= finalized[i]
        wait_for(lambda: net.call(0, "eth_getTransactionReceipt", tx), 60, "the accepted tx mined")
        wait_for(lambda: finalized_epoch(net, 0) >= max(finalized) + 2, 90, "finality resumes")
        net.wait_converged(60)


@pytest.mark.timeout(420)
def test_inactivity_leak_restores_finality_without_the_missing_half(tmp_path: Path) -> None:
    """Half the stake leaves for good: finality stops, the inactivity leak (Altair) drains
    the absent validators until the present ones hold 2/3 again, and finality returns."""
    with Cluster(tmp_path, 4, "pos") as net:
        wait_for(lambda: finalized_epoch(net, 0) >= 1, 90, "initial finality")
        net.kill(2)
        net.kill(3)
        time.sleep(6)
        stalled = finalized_epoch(net, 0)
        wait_for(lambda: finalized_epoch(net, 0) >= stalled + 2, 300, "finality through the leak",
                 interval=2.0)
        validators = {v["index"]: v for v in net.call(0, "layerlab_validators")}
        assert validators[2]["balanceGwei"] < 30 * 10**9 and validators[3]["balanceGwei"] < 30 * 10**9
        assert validators[0]["balanceGwei"] > validators[2]["balanceGwei"]


def test_partition_halves_neither_finalizes_then_heal_converges_and_finalizes(tmp_path: Path) -> None:
    """Split 2|2: each half builds its own chain but holds only half the stake, so neither
    finalizes a conflicting checkpoint (FFG safety); once healed, LMD-GHOST picks one
    head on every node and finality resumes."""
    with Cluster(tmp_path, 4, "pos") as net:
        wait_for(lambda: all(net.status(i)["peers"] == 3 for i in range(4)), 30, "full mesh")
        wait_for(lambda: finalized_epoch(net, 0) >= 1, 90, "initial finality")
        net.partition([0, 1], [2, 3])
        wait_for(lambda: all(net.status(i)["peers"] == 1 for i in range(4)), 30, "partition")
        time.sleep(3)
        split = [finalized_epoch(net, i) for i in range(4)]
        wait_for(lambda: net.head(0)[1] != net.head(2)[1] and net.head(0)[0] > 0, 30, "two chains")
        time.sleep(16)  # four epochs apart
        assert net.head(0)[1] != net.head(2)[1]
        assert all(finalized_epoch(net, i) <= split[i] + 1 for i in range(4))
        net.heal([0, 1], [2, 3])
        net.wait_converged(90)
        wait_for(lambda: all(finalized_epoch(net, i) >= max(split) + 2 for i in range(4)), 120,
                 "finality after the heal")
        number = min(net.status(i)["finalized"]["number"] for i in range(4))
        assert len({net.call(i, "eth_getBlockByNumber", hex(number), False)["hash"] for i in range(4)}) == 1


def test_ethers_js_works_unchanged_against_a_pos_network_node(tmp_path: Path) -> None:
    """The devnet's ethers.js v6 check (deploys, transfers, events by query and by
    WebSocket subscription, revert reasons), pointed at one node of a 4-node PoS network:
    its transactions are gossiped to whichever validator proposes."""
    import shutil
    import subprocess

    from layerlab.contracts import get_project_root, load_artifact

    node_bin = shutil.which("node")
    root = get_project_root()
    if node_bin is None or not (root / "node_modules" / "ethers").is_dir():
        pytest.skip("Node.js and the ethers package are needed (make deps)")
    for name in ("LabToken", "LabNFT", "Reverter"):
        load_artifact(name)
    with Cluster(tmp_path, 4, "pos") as net:
        proc = subprocess.run([node_bin, str(root / "tests" / "js" / "ethers_check.mjs"), net.specs[1].url,
                               str(root / "build" / "contracts")], cwd=root, capture_output=True, text=True,
                              timeout=240, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        import json

        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["ok"] is True
        token = result["token"]
        code = {net.call(i, "eth_getCode", token, "latest") for i in range(4)}
        assert len(code) == 1 and code != {"0x"}  # the deployment reached every node
