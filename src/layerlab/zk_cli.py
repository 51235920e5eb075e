"""``layerlab zk up|deposit|send|withdraw|status|down``: the ZK rollup from the shell.

A dev account ``i`` acts on both layers: its secp256k1 key pays on L1, and the same 32
bytes are its Baby Jubjub (EdDSA-Poseidon) private key on L2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

zk_app = typer.Typer(help="The ZK rollup: an operator (sequencer + Groth16 prover) on the L1.")
console = Console(width=None if sys.stdout.isatty() else 160)
ZK_DIR_OPT = typer.Option("--dir", help="ZK rollup directory (zk.json, logs, data).")
ZK_DIR = Path(".layerlab/zk")


def _shape(text: str) -> Any:
    from layerlab.l2.zk.state import BatchShape

    try:
        n, m, w, d = (int(x) for x in text.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"--shape {text!r}: expected N,M,W,DEPTH") from exc
    return BatchShape(n, m, w, d)


def _who(account: int) -> tuple[Any, tuple[int, int]]:
    from layerlab.crypto.babyjubjub import prv2pub
    from layerlab.crypto.keys import derive_dev_accounts

    dev = derive_dev_accounts(count=account + 1)[account]
    return dev, prv2pub(dev.private_key)


def _account(url: str, pub: tuple[int, int]) -> dict[str, Any]:
    from layerlab.errors import LayerlabError
    from layerlab.orchestration import rpc_call

    found = rpc_call(url, "zk_getAccount", [{"ax": str(pub[0]), "ay": str(pub[1])}])
    if found is None:
        raise LayerlabError("this key has no L2 account yet: deposit first (`layerlab zk deposit`)")
    return dict(found)


@zk_app.command("up")
def zk_up(
    directory: Annotated[Path, ZK_DIR_OPT] = ZK_DIR,
    l1_url: Annotated[str | None, typer.Option(help="Use this L1 instead of starting one.")] = None,
    shape: Annotated[str, typer.Option(help="Circuit N,M,W,DEPTH: transfers, deposits and "
                                            "withdrawals a batch, tree depth.")] = "2,1,1,8",
    batch_interval: Annotated[float, typer.Option(help="Seconds between batches.")] = 1.0,
    escape_blocks: Annotated[int, typer.Option(help="L1 blocks without a batch before anyone "
                                                    "may freeze the rollup.")] = 1000,
) -> None:
    """Start an L1 (unless --l1-url), build the circuit (cached), deploy, start the operator."""
    from layerlab.l2.zk.network import up

    desc = up(directory, l1_url, _shape(shape), batch_interval, escape_blocks)
    console.print(f"L1 {desc['l1_url']}, ZkRollup at {desc['contract']} ({desc['constraints']} "
                  f"constraints, {desc['key_label']} key), operator {desc['operator_url']}",
                  highlight=False)


@zk_app.command("down")
def zk_down(directory: Annotated[Path, ZK_DIR_OPT] = ZK_DIR) -> None:
    """Stop the operator (and the L1 `up` started)."""
    from layerlab.l2.zk.network import down

    console.print(f"stopped {down(directory)} processes")


@zk_app.command("deposit")
def zk_deposit(
    account: Annotated[int, typer.Option(help="Dev account index (L1 payer and L2 key).")],
    amount: Annotated[int, typer.Option(help="Gwei to deposit.")],
    directory: Annotated[Path, ZK_DIR_OPT] = ZK_DIR,
) -> None:
    """Queue a deposit on L1; the next batch must consume it."""
    from layerlab.l2.zk.network import contract, load

    dev, pub = _who(account)
    rollup = contract(load(directory))
    receipt = rollup.deposit(dev.private_key, pub[0], pub[1], rollup.wei(amount))
    console.print(f"deposit of {amount} gwei queued in L1 block {receipt['blockNumber']}")


@zk_app.command("send")
def zk_send(
    account: Annotated[int, typer.Option(help="Dev account index of the sender.")],
    to: Annotated[int, typer.Option(help="Recipient's L2 account index.")],
    amount: Annotated[int, typer.Option(help="Gwei to transfer on L2.")],
    directory: Annotated[Path, ZK_DIR_OPT] = ZK_DIR,
) -> None:
    """Sign an L2 transfer (EdDSA-Poseidon) and send it to the operator."""
    from layerlab.l2.zk.network import load
    from layerlab.l2.zk.operator import encode_tx
    from layerlab.l2.zk.state import sign_transfer
    from layerlab.orchestration import rpc_call

    url = load(directory)["operator_url"]
    dev, pub = _who(account)
    me = _account(url, pub)
    tx = sign_transfer(dev.private_key, me["index"], to, amount, me["nonce"])
    reply = rpc_call(url, "zk_sendTransaction", [encode_tx(tx)])
    console.print(f"accepted as transaction {reply['seq']}; L2 root {reply['root']}")


@zk_app.command("withdraw")
def zk_withdraw(
    account: Annotated[int, typer.Option(help="Dev account index of the owner.")],
    amount: Annotated[int, typer.Option(help="Gwei to withdraw.")],
    recipient: Annotated[str | None, typer.Option(help="L1 address paid (default: the "
                                                       "account's own).")] = None,
    directory: Annotated[Path, ZK_DIR_OPT] = ZK_DIR,
) -> None:
    """Sign a withdrawal; L1 pays it when its batch's proof is verified."""
    from layerlab.l2.zk.network import load
    from layerlab.l2.zk.operator import encode_tx
    from layerlab.l2.zk.state import sign_withdrawal
    from layerlab.orchestration import rpc_call

    url = load(directory)["operator_url"]
    dev, pub = _who(account)
    me = _account(url, pub)
    to = bytes.fromhex((recipient or dev.address).removeprefix("0x"))
    tx = sign_withdrawal(dev.private_key, me["index"], to, amount, me["nonce"])
    reply = rpc_call(url, "zk_sendTransaction", [encode_tx(tx)])
    console.print(f"accepted as transaction {reply['seq']}; paid to 0x{to.hex()} once its "
                  f"batch verifies")


@zk_app.command("escape")
def zk_escape(
    account: Annotated[int, typer.Option(help="Dev account index (L2 key, pays the L1 gas).")],
    directory: Annotated[Path, ZK_DIR_OPT] = ZK_DIR,
) -> None:
    """Without the operator: rebuild the state from L1 calldata, freeze the rollup if no
    batch landed for its escape window, and claim this key's last proven balance."""
    from layerlab.errors import LayerlabError
    from layerlab.l2.zk.network import contract, load
    from layerlab.l2.zk.recover import recover_state

    desc = load(directory)
    rollup = contract(desc)
    state = recover_state(rollup, int(desc.get("deploy_block", 0)))
    dev, pub = _who(account)
    index = state.find_index(pub)
    if index is None:
        raise LayerlabError("this key has no account in the last verified root")
    if not rollup.l1.call("frozen"):
        rollup.freeze(dev.private_key)
    receipt = rollup.escape(dev.private_key, state, index)
    console.print(f"escaped account {index}: {state.accounts[index].balance} gwei paid to its "
                  f"first depositor ({receipt['gasUsed']} gas)", highlight=False)


@zk_app.command("status")
def zk_status(
    directory: Annotated[Path, ZK_DIR_OPT] = ZK_DIR,
    account: Annotated[int | None, typer.Option(help="Also show this dev account's L2 "
                                                     "account.")] = None,
) -> None:
    """The operator's head, and its batches with proving and verification times."""
    from layerlab.l2.zk.network import load
    from layerlab.orchestration import rpc_call

    url = load(directory)["operator_url"]
    s = rpc_call(url, "zk_status")
    console.print(f"operator: {s['transactions']} transactions, {s['pending']} pending, "
                  f"{len(s['batches'])} batches verified, {s['depositsConsumed']} deposits "
                  f"consumed; proving: {'no' if s['proving'] is None else s['proving']}",
                  highlight=False)
    table = Table("batch", "txs", "deposits", "witness s", "prove s", "verify s", "gas")
    for b in s["batches"]:
        table.add_row(str(b["index"]), str(b["count"]), str(len(b["deposits"])),
                      f"{b['witnessSeconds']:.2f}", f"{b['proveSeconds']:.2f}",
                      f"{b['verifySeconds']:.2f}", str(b["gasUsed"]))
    console.print(table)
    if account is not None:
        a = _account(url, _who(account)[1])
        console.print(f"L2 account {a['index']}: balance {a['balance']} gwei (proven "
                      f"{a['provenBalance']}), nonce {a['nonce']}", highlight=False)


@zk_app.command("operator", hidden=True)
def zk_operator(
    directory: Annotated[Path, ZK_DIR_OPT],
    l1_url: Annotated[str, typer.Option()],
    contract: Annotated[str, typer.Option()],
    shape: Annotated[str, typer.Option()] = "2,1,1,8",
    start_block: Annotated[int, typer.Option()] = 0,
    port: Annotated[int, typer.Option()] = 0,
    batch_interval: Annotated[float, typer.Option()] = 1.0,
) -> None:
    """Run the operator (started by `zk up`)."""
    import asyncio

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.zk.network import OPERATOR_ACCOUNT
    from layerlab.l2.zk.operator import OperatorConfig, run_operator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = derive_dev_accounts(count=OPERATOR_ACCOUNT + 1)[OPERATOR_ACCOUNT].private_key
    config = OperatorConfig(private_key=key, data_dir=directory, l1_url=l1_url,
                            contract_address=contract, shape=_shape(shape), port=port,
                            start_block=start_block, batch_interval=batch_interval)
    asyncio.run(run_operator(config, directory / "operator.ready"))
