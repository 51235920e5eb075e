"""The comparison's workloads on an L1, driven through JSON-RPC like any client.

Each workload is a burst of pre-signed EIP-1559 transactions sent in JSON-RPC batches by
:func:`layerlab.bench.rpc_load.run_rpc_load` (throughput), then a few of the same kind sent
one at a time and each waited for (confirmation latency). Every figure comes from what
the chain recorded: gas and fee from the receipts (``gasUsed * effectiveGasPrice``), bytes
from the signed transactions' envelopes (what a block carries).

* ``transfer``: ETH value transfers (21,000 gas each);
* ``micropayment``: the same with a value of 1 gwei: on an L1 a micropayment costs what a
  payment costs, which is the point the channels' row makes;
* ``nft``: an OpenZeppelin ERC-721 (``contracts/test/LabNFT.sol``): every other transaction
  mints a token, the others transfer a token the sender holds (minted to it in setup);
* ``swap``: swaps on a Uniswap v2 style constant-product pool of two OpenZeppelin ERC-20s
  (``contracts/bench/ConstantProductPool.sol``), alternating direction so the price stays
  near where it started.

Setup transactions (deployments, approvals, liquidity) are not counted.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound

from layerlab.bench.rpc_load import RpcLoadResult, run_rpc_load
from layerlab.contracts import deploy, load_artifact

__all__ = ["L1_WORKLOADS", "L1WorkloadRun", "run_l1_workload"]

L1_WORKLOADS = ("transfer", "micropayment", "nft", "swap")
RECEIPT_TIMEOUT = 60.0
COST_SAMPLE = 200
"""Receipts read for the cost figures (all of them when the burst is smaller)."""


@dataclass(frozen=True, slots=True)
class L1WorkloadRun:
    """What one workload recorded on the chain."""

    workload: str
    load: RpcLoadResult
    latency_ms: tuple[float, ...]
    """Send until the receipt exists, one transaction at a time."""
    gas_per_tx: float
    """Mean ``gasUsed`` over the receipts."""
    fee_wei_per_tx: float
    """Mean ``gasUsed * effectiveGasPrice``."""
    bytes_per_tx: float
    """Mean length of the signed transaction envelopes."""
    receipts_read: int
    failed: int
    """Receipts read with status 0 (reverted): included, but the work was not done."""


Builder = Callable[[int, str], dict[str, Any]]
"""Transaction ``i`` of a workload, sent by the given address (no nonce or fee fields)."""


def _presign(w3: Web3, keys: Sequence[bytes], count: int, build: Builder) -> list[bytes]:
    """Sign ``count`` EIP-1559 transactions round-robin over ``keys`` with local nonces."""
    nonces = {k: int(w3.eth.get_transaction_count(Account.from_key(k).address, "pending"))
              for k in keys}
    fee = int(w3.eth.gas_price) * 3
    chain_id = int(w3.eth.chain_id)
    raws = []
    for i in range(count):
        key = keys[i % len(keys)]
        tx = build(i, Account.from_key(key).address) | {"nonce": nonces[key], "chainId": chain_id,
                         "maxFeePerGas": fee, "maxPriorityFeePerGas": 10**9}
        nonces[key] += 1
        raws.append(bytes(Account.sign_transaction(tx, key).raw_transaction))
    return raws


def _costs(w3: Web3, raws: Sequence[bytes]) -> tuple[float, float, int, int]:
    """Mean gas used, mean fee (wei), receipts read and reverted, over the first
    ``COST_SAMPLE`` transactions that were included."""
    gas = fee = read = failed = 0
    for raw in raws[:COST_SAMPLE]:
        try:
            receipt = w3.eth.get_transaction_receipt(Web3.keccak(raw))
        except TransactionNotFound:
            continue
        gas += int(receipt["gasUsed"])
        fee += int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
        read += 1
        failed += receipt["status"] != 1
    return (gas / read, fee / read, read, failed) if read else (0.0, 0.0, 0, 0)


def _latencies(w3: Web3, key: bytes, build: Builder, samples: int,
               block_time: float) -> list[float]:
    """Send ``samples`` transactions one at a time, each at a random point of the slot."""
    rng = random.Random(7)
    out = []
    for i in range(samples):
        time.sleep(rng.uniform(0, block_time))
        def one(_j: int, sender: str, i: int = i) -> dict[str, Any]:
            return build(2 * i, sender)  # even: the NFT workload mints

        raw = _presign(w3, [key], 1, one)[0]
        start = time.perf_counter()
        tx_hash = w3.eth.send_raw_transaction(raw)
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=0.01)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _wait(w3: Web3, tx_hash: Any) -> None:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
    if receipt["status"] != 1:
        raise RuntimeError(f"setup transaction {tx_hash.hex()} reverted")


def _deploy(w3: Web3, name: str, key: bytes, *args: Any) -> Contract:
    owner = Account.from_key(key).address
    return deploy(w3, load_artifact(name), *args, sender=owner, private_key="0x" + key.hex())


def _setup_nft(w3: Web3, url: str, keys: Sequence[bytes], count: int) -> Builder:
    nft = _deploy(w3, "LabNFT", keys[0])
    minter = Account.from_key(keys[0])
    holders = [Account.from_key(k).address for k in keys]
    # setup: keys[0] mints count // 2 + 1 tokens per holder, round robin, from one key, so
    # nonce order is inclusion order and token j + 1 belongs to holders[j % len(holders)]
    per_holder = count // (2 * max(1, len(holders) - 1)) + 2  # the burst skips the last key
    premint = per_holder * len(holders)
    raws = _presign(w3, [minter.key], premint, lambda j, _s: {
        "to": nft.address, "value": 0, "gas": 200_000,
        "data": nft.functions.mint(holders[j % len(holders)])._encode_transaction_data()})
    setup = run_rpc_load(url, raws, batch_size=200, inclusion_timeout=120)
    if not setup.is_complete:
        raise RuntimeError(f"NFT setup: {setup.included_count}/{premint} mints included")
    owned = {h: iter(range(i + 1, premint + 1, len(holders))) for i, h in enumerate(holders)}
    sink = Web3.to_checksum_address(b"\xcd" * 20)

    def build(i: int, sender: str) -> dict[str, Any]:
        if i % 2 == 0:
            data = nft.functions.mint(sender)._encode_transaction_data()
            return {"to": nft.address, "value": 0, "gas": 200_000, "data": data}
        token = next(owned[sender])
        data = nft.functions.transferFrom(sender, sink, token)._encode_transaction_data()
        return {"to": nft.address, "value": 0, "gas": 120_000, "data": data}

    return build


def _setup_swap(w3: Web3, _url: str, keys: Sequence[bytes], _count: int) -> Builder:
    owner = Account.from_key(keys[0]).address
    a = _deploy(w3, "LabToken", keys[0], "Token A", "TKA", 10**30)
    b = _deploy(w3, "LabToken", keys[0], "Token B", "TKB", 10**30)
    pool = _deploy(w3, "ConstantProductPool", keys[0], a.address, b.address)
    big = 10**27
    sent = []  # sent without waiting: each sender's nonces order its own transactions
    for key in keys:
        addr = Account.from_key(key).address
        for token in (a, b):
            if addr != owner:
                sent.append(token.functions.transfer(addr, big).transact({"from": owner}))
            sent.append(token.functions.approve(pool.address, 2**256 - 1).transact({"from": addr}))
    sent.append(pool.functions.addLiquidity(big, big).transact({"from": owner}))
    for tx_hash in sent:
        _wait(w3, tx_hash)
    tokens = (a.address, b.address)

    def build(i: int, _sender: str) -> dict[str, Any]:
        data = pool.functions.swap(tokens[i % 2], 10**18, 1)._encode_transaction_data()
        return {"to": pool.address, "value": 0, "gas": 150_000, "data": data}

    return build


Setup = Callable[[Web3, str, Sequence[bytes], int], Builder]


def _setup_payments(value: int) -> Setup:
    recipients = [Web3.to_checksum_address(bytes([0xAB, i % 256]) + b"\x00" * 18)
                  for i in range(100)]

    def setup(_w3: Web3, _url: str, _keys: Sequence[bytes], _count: int) -> Builder:
        return lambda i, _sender: {"to": recipients[i % len(recipients)], "value": value, "gas": 21_000}

    return setup


SETUPS: dict[str, Setup] = {
    "transfer": _setup_payments(10**12),
    "micropayment": _setup_payments(10**9),
    "nft": _setup_nft,
    "swap": _setup_swap,
}


def run_l1_workload(url: str, keys: Sequence[bytes], workload: str, count: int, *,
                    latency_samples: int = 5, block_time: float = 1.0,
                    inclusion_timeout: float = 120.0) -> L1WorkloadRun:
    """Set up ``workload`` on the chain at ``url``, run a burst of ``count`` and measure it.

    ``keys`` are funded accounts (the last one is kept for the latency samples so its
    nonces do not race the burst's).
    """
    if workload not in SETUPS:
        raise ValueError(f"unknown L1 workload {workload!r}; known: {', '.join(SETUPS)}")
    if len(keys) < 2:
        raise ValueError("an L1 workload needs at least two funded keys")
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
    burst_keys, latency_key = list(keys[:-1]), keys[-1]
    build = SETUPS[workload](w3, url, keys, count + latency_samples)
    raws = _presign(w3, burst_keys, count, build)
    load = run_rpc_load(url, raws, batch_size=200, inclusion_timeout=inclusion_timeout)
    gas, fee, read, failed = _costs(w3, raws)
    latency = _latencies(w3, latency_key, build, latency_samples, block_time)
    return L1WorkloadRun(workload=workload, load=load, latency_ms=tuple(latency),
                         gas_per_tx=gas, fee_wei_per_tx=fee,
                         bytes_per_tx=sum(len(r) for r in raws) / max(len(raws), 1),
                         receipts_read=read, failed=failed)
