"""The ``layerlab`` command line: ``node``, ``chain export|import``, ``contracts``, ``demo``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from layerlab.errors import LayerlabError

app = typer.Typer(help="layerlab: Layer 1 and Layer 2 blockchains, run for real and compared.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
chain_app = typer.Typer(help="Export and import chain data (RLP blocks, as geth).")
contracts_app = typer.Typer(help="Compile the Solidity contracts under contracts/.")
app.add_typer(chain_app, name="chain")
app.add_typer(contracts_app, name="contracts")
console = Console(width=None if sys.stdout.isatty() else 160)

DEFAULT_DATA_DIR = Path(".layerlab/devnet")


def _node_options(
    config: Path | None, data_dir: Path | None, in_memory: bool, chain_id: int | None,
    gas_limit: int | None, base_fee: int | None, accounts: int | None, mnemonic: str | None,
) -> tuple[object, Path | None]:
    from layerlab.l1.chain.config import load_config

    cfg = load_config(config, chain_id=chain_id, gas_limit=gas_limit, base_fee_per_gas=base_fee,
                      dev_account_count=accounts, mnemonic=mnemonic)
    return cfg, None if in_memory else (data_dir or DEFAULT_DATA_DIR)


@app.command()
def node(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="JSON-RPC port (HTTP and WebSocket).")] = 8545,
    config: Annotated[Path | None, typer.Option(help="Chain config JSON (genesis).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="LevelDB data directory.")] = None,
    in_memory: Annotated[bool, typer.Option("--in-memory", help="Keep the chain in memory only.")] = False,
    block_time: Annotated[float | None, typer.Option(help="Mine every N seconds (interval mining).")] = None,
    no_mining: Annotated[bool, typer.Option("--no-mining", help="Mine only on evm_mine.")] = False,
    chain_id: Annotated[int | None, typer.Option(help="Chain id (default 31337).")] = None,
    gas_limit: Annotated[int | None, typer.Option(help="Block gas limit (default 30M).")] = None,
    base_fee: Annotated[int | None, typer.Option(help="Genesis base fee in wei (default 1 gwei).")] = None,
    accounts: Annotated[int | None, typer.Option(help="Number of dev accounts (default 10).")] = None,
    mnemonic: Annotated[str | None, typer.Option(help="Mnemonic of the dev accounts.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Do not list accounts.")] = False,
) -> None:
    """Run an L1 devnet node: py-evm execution, LevelDB storage, JSON-RPC on HTTP + WS."""
    from layerlab.l1.node import MiningMode, Node
    from layerlab.l1.runner import serve_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg, directory = _node_options(config, data_dir, in_memory, chain_id, gas_limit, base_fee,
                                   accounts, mnemonic)
    mode = MiningMode.MANUAL if no_mining else (
        MiningMode.INTERVAL if block_time else MiningMode.AUTO)
    n = Node(cfg, data_dir=directory, mining=mode, block_time=block_time)  # type: ignore[arg-type]

    def ready(server: object) -> None:
        if not quiet:
            _print_banner(n, directory)
        console.print(f"Listening on http://{host}:{getattr(server, 'port', port)} "
                      f"(ws://{host}:{getattr(server, 'port', port)})", highlight=False)
        sys.stdout.flush()

    serve_forever(n, host, port, on_ready=ready)
    console.print("node stopped; database closed")


def _print_banner(n: object, directory: Path | None) -> None:
    from layerlab.l1.node import Node

    assert isinstance(n, Node)
    cfg = n.config
    console.print("\n[bold]layerlab devnet[/bold] (py-evm, Cancun)\n")
    console.print("Available Accounts\n==================")
    for i, acct in enumerate(cfg.dev_accounts):
        console.print(f"({i}) {acct.address} ({cfg.dev_balance / 10**18:.0f} ETH)", highlight=False)
    console.print("\nPrivate Keys\n==================")
    for i, acct in enumerate(cfg.dev_accounts):
        console.print(f"({i}) 0x{acct.private_key.hex()}", highlight=False)
    console.print(f"\nMnemonic: {cfg.mnemonic}\nDerivation path: m/44'/60'/0'/0/\n")
    console.print(f"Chain ID: {cfg.chain_id}   Gas limit: {cfg.gas_limit}   "
                  f"Head: #{n.head.block_number}   Mining: {n.mining.value}"
                  + (f" every {n.block_time}s" if n.block_time else ""), highlight=False)
    console.print(f"Data: {directory or 'in memory'}\n", highlight=False)


@chain_app.command("export")
def chain_export(
    file: Path,
    data_dir: Annotated[Path, typer.Option(help="Node data directory.")] = DEFAULT_DATA_DIR,
    config: Annotated[Path | None, typer.Option(help="Chain config JSON.")] = None,
) -> None:
    """Write every canonical block (genesis first) as concatenated RLP, as ``geth export``."""
    from layerlab.l1.chainfile import export_chain

    count = export_chain(data_dir, file, config)
    console.print(f"exported {count} blocks to {file}")


@chain_app.command("import")
def chain_import(
    file: Path,
    data_dir: Annotated[Path, typer.Option(help="Node data directory.")] = DEFAULT_DATA_DIR,
    config: Annotated[Path | None, typer.Option(help="Chain config JSON.")] = None,
) -> None:
    """Validate, execute and store blocks from an RLP file, as ``geth import``."""
    from layerlab.l1.chainfile import import_chain

    imported, skipped = import_chain(data_dir, file, config)
    console.print(f"imported {imported} blocks ({skipped} already present)")


@contracts_app.command("compile")
def contracts_compile(force: Annotated[bool, typer.Option("--force")] = False) -> None:
    """Compile contracts/ with solc + OpenZeppelin into build/contracts (cached)."""
    from layerlab.contracts import compile_all

    artifacts = compile_all(force=force)
    console.print(f"{len(artifacts)} contracts: {', '.join(sorted(artifacts))}")


@app.command()
def demo(
    transfers: Annotated[int, typer.Option(help="Transfers in the burst.")] = 1000,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the table as JSON.")] = None,
) -> None:
    """Start an embedded devnet, deploy a token, run a burst of transfers, print the table."""
    from layerlab.demo import run_demo

    run_demo(transfers=transfers, json_out=json_out, console=console)


def main() -> None:
    try:
        app()
    except LayerlabError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
