"""Rollup batch encodings: bytes and L1 calldata gas per L2 transfer.

Workload: 50 accounts funded by deposits in an earlier batch (the state at batch start),
then one batch of N = 64, 256, 1024 EIP-712-signed transfers of ETH among them, sender
and recipient drawn at random. Two amount distributions: ``wei``, random in [0.001, 1)
ETH to the wei (50 to 60 significant bits: the worst case for packed amounts), and
``round``, 1 to 999 times 10**15..10**18 (0.001 to 999 ETH with at most three
significant digits, what people type). Two recipient mixes:

* ``known``: every recipient already has an L2 account;
* ``mostly_new``: 80% of transfers pay a fresh address (its first credit creates the
  account; a later transfer to it in the same batch uses its dictionary index).

Every batch is applied to the state machine first, and every step must succeed, so the
figures are for batches a sequencer would really post. For each, bytes per transfer and
L1 calldata gas per transfer (EIP-2028: 16 gas a non-zero byte, 4 a zero byte) of: the
inbox form the contract takes (``uint16 length || step``), the compact form
(:mod:`layerlab.l2.rollup.codec`), each compressed with zlib level 9 and, when the
``brotli`` package is importable, brotli quality 11 (the OP Stack's channel compressors).
A last column zeroes every ``r || s`` before encoding and compressing: the lower bound of
a format without per-transaction signatures (BLS aggregation), since 64 random bytes a
transaction do not compress.

Written to ``benchmarks/results/rollup_codec.json``; a table on the terminal.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from rich.console import Console
from rich.table import Table

from layerlab.l2.rollup.codec import (
    brotli_available,
    compress,
    decode_compact,
    decompress,
    encode_compact,
    encode_inbox,
)
from layerlab.l2.rollup.machine import RollupState, apply_deposit, apply_step
from layerlab.l2.rollup.txs import Deposit, Transfer, rollup_domain, sign_tx

RESULTS = Path("benchmarks/results/rollup_codec.json")
DOMAIN = rollup_domain(1337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
ACCOUNTS = 50
SIZES = (64, 256, 1024)
MIXES = {"known": 0.0, "mostly_new": 0.8}
AMOUNTS = ("wei", "round")


def calldata_gas(data: bytes) -> int:
    """EIP-2028 calldata cost: 16 gas per non-zero byte, 4 per zero byte."""
    zeros = data.count(0)
    return 16 * (len(data) - zeros) + 4 * zeros


def _funded(keys: list[bytes]) -> tuple[RollupState, list[bytes]]:
    state = RollupState()
    addresses = [bytes.fromhex(Account.from_key(k).address[2:]) for k in keys]
    for address in addresses:
        receipt = apply_deposit(state, Deposit(state.next_deposit, address, address,
                                               b"\0" * 20, 0, 10**24))
        if not receipt.ok:
            raise RuntimeError(f"funding deposit refused: {receipt.error}")
    return state, addresses


def _amount(rng: random.Random, amounts: str) -> int:
    if amounts == "round":
        value: int = rng.randrange(1, 1000) * 10 ** rng.randrange(15, 19)
        return value
    return rng.randrange(10**15, 10**18)


def build_batch(n: int, new_share: float, amounts: str = "wei",
                seed: int = 1) -> tuple[list[bytes], RollupState]:
    """``n`` signed transfers that all apply, and the state at the batch's start."""
    rng = random.Random(seed)
    keys = [rng.randbytes(32) for _ in range(ACCOUNTS)]
    start, addresses = _funded(keys)
    nonces = [0] * ACCOUNTS
    fresh: list[bytes] = []
    steps = []
    for _ in range(n):
        sender = rng.randrange(ACCOUNTS)
        if rng.random() < new_share:
            # a new address, or now and then one that was new earlier in the batch
            if fresh and rng.random() < 0.2:
                to = rng.choice(fresh)
            else:
                to = rng.randbytes(20)
                fresh.append(to)
        else:
            to = addresses[(sender + rng.randrange(1, ACCOUNTS)) % ACCOUNTS]
        tx = Transfer(nonce=nonces[sender], token=0, to=to,
                      amount=_amount(rng, amounts))
        nonces[sender] += 1
        steps.append(sign_tx(tx, keys[sender], DOMAIN).encode())
    check, _ = _funded(keys)
    for step in steps:
        receipt = apply_step(check, step, DOMAIN)
        if not receipt.ok:
            raise RuntimeError(f"benchmark transfer refused: {receipt.check} {receipt.error}")
    return steps, start


def _zero_signatures(steps: list[bytes]) -> list[bytes]:
    return [step[:-65] + b"\0" * 64 + step[-1:] for step in steps]


def _timed(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(n: int, mix: str, amounts: str) -> dict[str, Any]:
    steps, state = build_batch(n, MIXES[mix], amounts)
    inbox = encode_inbox(steps)
    compact = encode_compact(steps, state)
    if decode_compact(compact, state) != steps:
        raise RuntimeError("compact form did not round-trip")
    forms: dict[str, bytes] = {"inbox": inbox, "compact": compact}
    algorithms = ["zlib", *(["brotli"] if brotli_available() else [])]
    for algorithm in algorithms:
        for name in ("inbox", "compact"):
            packed = compress(forms[name], algorithm)
            if decompress(packed) != forms[name]:
                raise RuntimeError(f"{algorithm} did not round-trip")
            forms[f"{algorithm}({name})"] = packed
    unsigned = encode_compact(_zero_signatures(steps), state)
    best = algorithms[-1]
    forms[f"{best}(compact), r||s zeroed"] = compress(unsigned, best)
    per_form = {name: {"bytes": len(data), "bytes_per_transfer": round(len(data) / n, 2),
                       "calldata_gas": calldata_gas(data),
                       "gas_per_transfer": round(calldata_gas(data) / n, 1)}
                for name, data in forms.items()}
    timings = {
        "encode_compact_us_per_step": round(_timed(lambda: encode_compact(steps, state)) / n * 1e6, 2),
        "decode_compact_us_per_step": round(_timed(lambda: decode_compact(compact, state)) / n * 1e6,
                                            2),
        "zlib_compact_us_per_step": round(_timed(lambda: compress(compact)) / n * 1e6, 2),
    }
    return {"transfers": n, "mix": mix, "new_share": MIXES[mix], "amounts": amounts,
            "forms": per_form,
            "timings": timings}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = [measure(n, mix, amounts) for mix in MIXES for amounts in AMOUNTS for n in args.sizes]
    report = {"benchmark": "rollup_codec", "python": platform.python_version(),
              "brotli": brotli_available(), "accounts": ACCOUNTS,
              "gas_rule": "EIP-2028: 16 per non-zero calldata byte, 4 per zero byte",
              "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))

    console = Console()
    for mix, amounts in ((m, a) for m in MIXES for a in AMOUNTS):
        mine = [row for row in rows if row["mix"] == mix and row["amounts"] == amounts]
        table = Table(title=f"{mix} recipients ({MIXES[mix]:.0%} new), {amounts} amounts: "
                            "bytes and L1 calldata gas per transfer")
        table.add_column("form")
        for row in mine:
            table.add_column(f"N={row['transfers']}", justify="right")
        for name in mine[0]["forms"]:
            table.add_row(name, *(f"{row['forms'][name]['bytes_per_transfer']:.1f} B  "
                                  f"{row['forms'][name]['gas_per_transfer']:.0f} gas"
                                  for row in mine))
        console.print(table)
    print(f"written to {args.out}")
    return report


if __name__ == "__main__":
    main()
