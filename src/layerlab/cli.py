"""The ``layerlab`` command line: ``node``, ``chain export|import``, ``contracts``, ``net``,
``channels``, ``plasma``, ``rollup``, ``compare`` and ``demo``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from layerlab.errors import LayerlabError

if TYPE_CHECKING:
    from layerlab.l2.rollup.optimistic import RollupContract

app = typer.Typer(help="layerlab: Layer 1 and Layer 2 blockchains, run for real and compared.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
chain_app = typer.Typer(help="Export and import chain data (RLP blocks, as geth).")
contracts_app = typer.Typer(help="Compile the Solidity contracts under contracts/.")
app.add_typer(chain_app, name="chain")
app.add_typer(contracts_app, name="contracts")
net_app = typer.Typer(help="A multi-node L1 network of processes on 127.0.0.1 (pow, pos or merge).")
app.add_typer(net_app, name="net")
DEFAULT_NET_DIR = Path(".layerlab/net")
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
    config: Annotated[Path | None, typer.Option(
        help="Chain config JSON: ours, or a geth genesis file (with a config object).")] = None,
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
    p2p_port: Annotated[int | None, typer.Option(help="Join a network: TCP port for peers.")] = None,
    peers: Annotated[str, typer.Option(help="Static peers, comma-separated 127.0.0.1:port.")] = "",
    mine: Annotated[bool, typer.Option("--mine", help="Mine (PoW) on this node.")] = False,
    duty: Annotated[float, typer.Option(help="Fraction of time the miner hashes (0..1].")] = 1.0,
    coinbase: Annotated[str | None, typer.Option(help="Miner/fee recipient address.")] = None,
    validators: Annotated[str, typer.Option(help="PoS validator indices this node runs, e.g. 0,1.")] = "",
    byzantine: Annotated[str, typer.Option(
        help="Misbehave on purpose (tests): double-propose,double-vote.")] = "",
    custody_groups: Annotated[int, typer.Option(
        help="PeerDAS custody groups this node keeps and serves (128: a supernode).")] = 4,
    withhold_columns: Annotated[int, typer.Option(
        help="Misbehave on purpose (tests): never serve data columns 0..N-1.")] = 0,
    blob_retention: Annotated[int, typer.Option(
        help="Blocks a blob sidecar is kept (4096 epochs of 32 slots).")] = 4096 * 32,
    sync_writes: Annotated[bool, typer.Option(
        "--sync-writes", help="fsync every block and accepted transaction before answering "
        "(durable across a power cut; costs throughput, see make bench).")] = False,
) -> None:
    """Run an L1 node: py-evm execution, LevelDB storage, JSON-RPC on HTTP + WS.

    Without --p2p-port it is a single-node devnet (as Anvil); with it, a network node
    under the chain config's consensus (pow, pos or merge).
    """
    from layerlab.l1.launcher import serve_forever
    from layerlab.l1.node import MiningMode, Node

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg, directory = _node_options(config, data_dir, in_memory, chain_id, gas_limit, base_fee,
                                   accounts, mnemonic)
    if p2p_port is not None:
        _network_node(cfg, directory, host, port, p2p_port, peers, mine, duty, coinbase, validators,
                      byzantine, sync_writes, custody_groups=custody_groups,
                      withhold_columns=withhold_columns)
        return
    mode = MiningMode.MANUAL if no_mining else (
        MiningMode.INTERVAL if block_time else MiningMode.AUTO)
    n = Node(cfg, data_dir=directory, mining=mode, block_time=block_time,  # type: ignore[arg-type]
             blob_retention=blob_retention, sync_writes=sync_writes)

    def ready(server: object) -> None:
        if not quiet:
            _print_banner(n, directory)
        console.print(f"Listening on http://{host}:{getattr(server, 'port', port)} "
                      f"(ws://{host}:{getattr(server, 'port', port)})", highlight=False)
        sys.stdout.flush()

    serve_forever(n, host, port, on_ready=ready)
    console.print("node stopped; database closed")


def _network_node(cfg: object, directory: Path | None, host: str, port: int, p2p_port: int, peers: str,
                  mine: bool, duty: float, coinbase: str | None, validators: str, byzantine: str,
                  sync_writes: bool = False, *, custody_groups: int = 4,
                  withhold_columns: int = 0) -> None:
    from layerlab.l1.chain.config import ChainConfig
    from layerlab.l1.launcher import NetOptions, make_node, serve_network

    assert isinstance(cfg, ChainConfig)
    from layerlab.orchestration import ServiceError, parse_peer_address

    try:
        peer_list = [parse_peer_address(p.strip()) for p in peers.split(",") if p.strip()]
    except ServiceError as exc:
        raise typer.BadParameter(str(exc)) from exc
    opts = NetOptions(
        p2p_port=p2p_port, peers=peer_list, mine=mine, duty=duty,
        coinbase=bytes.fromhex(coinbase.removeprefix("0x")) if coinbase else b"\x00" * 20,
        validator_indices=[int(v) for v in validators.split(",") if v.strip()],
        byzantine=[b.strip() for b in byzantine.split(",") if b.strip()],
        custody_groups=custody_groups, withhold_columns=withhold_columns,
    )
    n = make_node(cfg, directory, sync_writes=sync_writes)

    def ready(server: object) -> None:
        console.print(f"layerlab {cfg.consensus.engine} node: head #{n.head.block_number}, "
                      f"rpc http://{host}:{getattr(server, 'port', port)}, p2p {host}:{p2p_port}",
                      highlight=False)
        sys.stdout.flush()

    serve_network(n, host, port, opts, on_ready=ready)
    console.print("node stopped; database closed")


@net_app.command("up")
def net_up(
    nodes: Annotated[int, typer.Option(help="Number of node processes.")] = 4,
    consensus: Annotated[str, typer.Option(help="pow, pos or merge.")] = "pow",
    preset: Annotated[str, typer.Option(help="minimal or mainnet-like.")] = "minimal",
    validators: Annotated[int | None, typer.Option(
        help="PoS genesis validators (default 4; with --shards, 8 per shard).")] = None,
    merge_block: Annotated[int | None, typer.Option(help="Block of the PoW->PoS fork (merge).")] = None,
    directory: Annotated[Path, typer.Option("--dir", help="Network directory.")] = DEFAULT_NET_DIR,
    shards: Annotated[int, typer.Option(
        help="Execution shards: S shard node processes and a beacon coordinator (0: no sharding).")] = 0,
    block_time: Annotated[float, typer.Option(help="Seconds between shard blocks (--shards).")] = 1.0,
    verify: Annotated[bool, typer.Option(
        help="The coordinator re-executes shard blocks (py-evm) and proves fraud (--shards).")] = True,
    byzantine: Annotated[str, typer.Option(
        help="Tests: forge-state-root:K@N makes shard K's committee sign a forged root.")] = "",
) -> None:
    """Start N node processes, each with its own data dir, RPC port and p2p port; or, with
    --shards S, S shard chains (chain ids 31337+K) crosslinked by a beacon coordinator."""
    if shards:
        from layerlab.l1.sharding import network as shardnet

        desc = shardnet.up(directory, shards, validators=validators, block_time=block_time, preset=preset,
                           verify=verify, byzantine=byzantine)
        for s in desc["shards"]:
            console.print(f"shard {s['index']}: rpc http://127.0.0.1:{s['rpc_port']}  "
                          f"chain id {s['chain_id']}  pid {s['pid']}", highlight=False)
        console.print(f"beacon coordinator: pid {desc['coordinator']}, {desc['validators']} validators"
                      + (f", cross-shard contract {desc['crossShardAddress']}"
                         if desc.get("crossShardAddress") else ""), highlight=False)
        return
    from layerlab.l1 import network as l1net

    specs = l1net.up(directory, nodes, consensus, preset=preset,
                     validators=4 if validators is None else validators, merge_block=merge_block)
    for s in specs:
        console.print(f"node {s.index}: rpc {s.url}  p2p 127.0.0.1:{s.p2p_port}  pid {s.pid}"
                      + (f"  validators {s.validators}" if s.validators else "")
                      + ("  miner" if s.mine else ""), highlight=False)


@net_app.command("coordinator", hidden=True)
def net_coordinator(
    directory: Annotated[Path, typer.Option("--dir", help="Network directory.")] = DEFAULT_NET_DIR,
) -> None:
    """The beacon coordinator of a sharded network (started by `net up --shards`)."""
    from layerlab.l1.sharding import coordinator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    coordinator.run(directory)


def _shard_status(directory: Path, as_json: bool) -> None:
    import json as _json

    from rich.table import Table

    from layerlab.l1.sharding import network as shardnet

    st = shardnet.status(directory)
    if as_json:
        print(_json.dumps(st, indent=1))
        return
    b = st["beacon"]
    justified, finalized = b.get("justified") or {}, b.get("finalized") or {}
    console.print(f"beacon: slot {b.get('slot')}  epoch {b.get('epoch')}  justified epoch "
                  f"{justified.get('epoch')}  finalized epoch {finalized.get('epoch')}"
                  f"  slashed {b.get('slashed') or []}", highlight=False)
    table = Table(title=f"layerlab shards ({directory})")
    for col in ("shard", "chain id", "rpc", "head", "last crosslink", "final crosslink"):
        table.add_column(col)
    for r in st["shards"]:
        head = f"#{r['head']['number']}" if "head" in r else "down"
        link = r.get("crosslink") or {}
        final = r.get("final") or {}
        table.add_row(str(r["shard"]), str(r["chainId"]), r["rpc"], head,
                      f"#{link['number']} (slot {link['slot']})" if link else "-",
                      f"#{final['number']} (slot {final['slot']})" if final else "-")
    console.print(table)


@net_app.command("status")
def net_status(
    directory: Annotated[Path, typer.Option("--dir", help="Network directory.")] = DEFAULT_NET_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Heads, finality (k confirmations or justified/finalized checkpoints), peers, fork rate."""
    import json as _json

    from rich.table import Table

    from layerlab.l1 import network as l1net
    from layerlab.l1.sharding import network as shardnet

    if shardnet.is_sharded(directory):
        _shard_status(directory, as_json)
        return
    rows = l1net.status(directory)
    if as_json:
        print(_json.dumps(rows, indent=1))
        return
    table = Table(title=f"layerlab network ({directory})")
    for col in ("node", "head", "hash", "justified", "finalized", "peers", "reorgs", "fork rate"):
        table.add_column(col)
    for r in rows:
        if "error" in r:
            table.add_row(str(r["index"]), "down", r["error"][:40], "", "", "", "", "")
            continue
        head = r["head"]
        fin = r.get("finalized") or {}
        just = r.get("justified") or {}
        blocks = max(head["number"], 1)
        table.add_row(str(r["index"]), f"#{head['number']}", head["hash"][:12],
                      f"epoch {just['epoch']}" if "epoch" in just else "-",
                      f"#{fin.get('number', 0)} ({fin.get('kind', '-')})", str(r.get("peers", 0)),
                      str(r.get("reorgs", 0)), f"{r.get('reorgs', 0) / blocks:.1%}")
    console.print(table)


@net_app.command("down")
def net_down(
    directory: Annotated[Path, typer.Option("--dir", help="Network directory.")] = DEFAULT_NET_DIR,
) -> None:
    """Stop every node of the network (data directories are kept)."""
    from layerlab.l1 import network as l1net
    from layerlab.l1.sharding import network as shardnet

    if shardnet.is_sharded(directory):
        console.print(f"stopped {shardnet.down(directory)} process(es)")
        return
    console.print(f"stopped {l1net.down(directory)} node(s)")


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
    config: Annotated[Path | None, typer.Option(help="Chain config JSON (ours or geth's).")] = None,
    fake_pow: Annotated[bool, typer.Option(
        "--fake-pow", help="Skip Ethash seal checks of pre-merge blocks (geth's fake-PoW mode).")] = False,
) -> None:
    """Validate, execute and store blocks from an RLP file, as ``geth import``.

    Every block is re-executed under its fork's VM (the config's fork schedule); pre-merge
    blocks' Ethash seals are checked unless --fake-pow.
    """
    from layerlab.l1.chainfile import import_chain

    imported, skipped = import_chain(data_dir, file, config, fake_pow=fake_pow)
    console.print(f"imported {imported} blocks ({skipped} already present)")


@contracts_app.command("compile")
def contracts_compile(force: Annotated[bool, typer.Option("--force")] = False) -> None:
    """Compile contracts/ with solc + OpenZeppelin into build/contracts (cached)."""
    from layerlab.contracts import compile_all

    artifacts = compile_all(force=force)
    console.print(f"{len(artifacts)} contracts: {', '.join(sorted(artifacts))}")


channels_app = typer.Typer(help="A local payment-channel network (Lightning-style) on the L1.")
app.add_typer(channels_app, name="channels")
NET_DIR_OPT = typer.Option(help="Network directory (network.json, logs, node data).")


@channels_app.command("up")
def channels_up(
    nodes: Annotated[int, typer.Option(help="Channel nodes to start.")] = 3,
    net_dir: Annotated[Path, NET_DIR_OPT] = Path(".layerlab/channels"),
    l1_url: Annotated[str | None, typer.Option(help="Use this L1 instead of starting one.")] = None,
    tower: Annotated[bool, typer.Option(help="Start a watchtower.")] = True,
    settle_timeout: Annotated[int, typer.Option(help="Settle timeout in L1 blocks.")] = 20,
) -> None:
    """Start an L1 (unless --l1-url), the channel contract, N nodes and a watchtower."""
    from layerlab.l2.channels.network import up

    desc = up(nodes, net_dir, l1_url, tower, settle_timeout)
    console.print(f"L1 {desc['l1_url']}, PaymentChannels at {desc['contract']}")
    for address, entry in sorted(desc["nodes"].items(), key=lambda kv: kv[1]["index"]):
        console.print(f"  node {entry['index']}: {address} peers :{entry['port']} "
                      f"control :{entry['control_port']}", highlight=False)
    if "tower" in desc:
        console.print(f"  watchtower :{desc['tower']['port']}")


@channels_app.command("down")
def channels_down(net_dir: Annotated[Path, NET_DIR_OPT] = Path(".layerlab/channels")) -> None:
    """Stop every process of the network."""
    from layerlab.l2.channels.network import down

    console.print(f"stopped {down(net_dir)} processes")


def _net(net_dir: Path) -> dict[str, object]:
    from layerlab.l2.channels.network import load

    return load(net_dir)


@channels_app.command("open")
def channels_open(
    from_node: Annotated[int, typer.Option("--from", help="Opening node (index).")],
    to_node: Annotated[int, typer.Option("--to", help="Peer node (index).")],
    amount: Annotated[int, typer.Option(help="Deposit in wei.")],
    net_dir: Annotated[Path, NET_DIR_OPT] = Path(".layerlab/channels"),
) -> None:
    """Open and fund a channel from one node to another."""
    from layerlab.l2.channels.network import control, node_entry

    desc = _net(net_dir)
    peer, _ = node_entry(desc, to_node)  # type: ignore[arg-type]
    channel_id = control(desc, from_node, "open", {"peer": peer, "amount": amount})  # type: ignore[arg-type]
    console.print(f"channel {channel_id}")


@channels_app.command("deposit")
def channels_deposit(
    node_index: Annotated[int, typer.Option("--node", help="Depositing node (index).")],
    channel: Annotated[str, typer.Option(help="Channel id (0x...).")],
    amount: Annotated[int, typer.Option(help="Top-up in wei.")],
    net_dir: Annotated[Path, NET_DIR_OPT] = Path(".layerlab/channels"),
) -> None:
    """Top up a channel on L1; the new deposit is then signed into the channel state."""
    from layerlab.l2.channels.network import control

    console.print(control(_net(net_dir), node_index, "deposit",  # type: ignore[arg-type]
                          {"channel_id": channel, "amount": amount}))


@channels_app.command("invoice")
def channels_invoice(
    node_index: Annotated[int, typer.Option("--node", help="Payee node (index).")],
    amount: Annotated[int, typer.Option(help="Amount in wei.")],
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    net_dir: Annotated[Path, NET_DIR_OPT] = Path(".layerlab/channels"),
) -> None:
    """Create an invoice (payment hash, amount, payee signature)."""
    from layerlab.l2.channels.network import control

    typer.echo(control(_net(net_dir), node_index, "invoice",  # type: ignore[arg-type]
                       {"amount": amount, "description": description}))


@channels_app.command("pay")
def channels_pay(
    node_index: Annotated[int, typer.Option("--node", help="Paying node (index).")],
    invoice: Annotated[str, typer.Option(help="The invoice string.")],
    net_dir: Annotated[Path, NET_DIR_OPT] = Path(".layerlab/channels"),
) -> None:
    """Pay an invoice over the cheapest route (multi-hop HTLCs)."""
    from layerlab.l2.channels.network import control

    console.print(control(_net(net_dir), node_index, "pay", {"invoice": invoice}))  # type: ignore[arg-type]


@channels_app.command("close")
def channels_close(
    node_index: Annotated[int, typer.Option("--node", help="Closing node (index).")],
    channel: Annotated[str, typer.Option(help="Channel id (0x...).")],
    unilateral: Annotated[bool, typer.Option("--unilateral", help="Close without the peer.")] = False,
    net_dir: Annotated[Path, NET_DIR_OPT] = Path(".layerlab/channels"),
) -> None:
    """Close a channel cooperatively (one L1 transaction) or unilaterally."""
    from layerlab.l2.channels.network import control

    console.print(control(_net(net_dir), node_index, "close",  # type: ignore[arg-type]
                          {"channel_id": channel, "cooperative": not unilateral}))


@channels_app.command("status")
def channels_status(net_dir: Annotated[Path, NET_DIR_OPT] = Path(".layerlab/channels")) -> None:
    """Channels, balances and payments of every node."""
    from rich.table import Table

    from layerlab.l2.channels.network import control

    desc = _net(net_dir)
    table = Table(title="payment channels")
    for col in ("node", "channel", "peer", "nonce", "mine", "theirs", "locks", "closed"):
        table.add_column(col)
    for entry in sorted(desc["nodes"].values(), key=lambda e: e["index"]):  # type: ignore[attr-defined]
        status = control(desc, entry["index"], "status")  # type: ignore[arg-type]
        for ch in status["channels"]:
            table.add_row(str(entry["index"]), ch["channel_id"][:12], ch["peer"][:12],
                          str(ch["nonce"]), str(ch["my_balance"]), str(ch["peer_balance"]),
                          str(ch["locks"]), str(ch["closed"]))
    console.print(table)


@channels_app.command("node", hidden=True)
def channels_node(
    index: Annotated[int, typer.Option(help="Dev account index of this node.")],
    net_dir: Annotated[Path, NET_DIR_OPT] = Path(".layerlab/channels"),
    settle_timeout: Annotated[int, typer.Option()] = 20,
) -> None:
    """Run one channel node (started by `channels up`)."""
    import asyncio

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.channels.node import NodeConfig, run_node

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    desc = _net(net_dir)
    key = derive_dev_accounts(count=index + 1)[index].private_key
    # a restarted node takes the ports the network directory lists for it, so peers find it
    nodes: dict[str, dict[str, int]] = desc["nodes"]  # type: ignore[assignment]
    listed: dict[str, int] = next((e for e in nodes.values() if e["index"] == index), {})
    config = NodeConfig(private_key=key, data_dir=net_dir / f"node{index}",
                        l1_url=str(desc["l1_url"]), contract_address=str(desc["contract"]),
                        directory=net_dir / "network.json", settle_timeout=settle_timeout,
                        port=int(listed.get("port", 0)),
                        control_port=int(listed.get("control_port", 0)))
    asyncio.run(run_node(config, net_dir / f"node{index}.ready"))


@channels_app.command("tower", hidden=True)
def channels_tower(
    index: Annotated[int, typer.Option(help="Dev account index paying the tower's gas.")],
    net_dir: Annotated[Path, NET_DIR_OPT] = Path(".layerlab/channels"),
) -> None:
    """Run the watchtower (started by `channels up`)."""
    import asyncio

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.channels.watchtower import run_tower

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    desc = _net(net_dir)
    key = derive_dev_accounts(count=index + 1)[index].private_key
    asyncio.run(run_tower(str(desc["l1_url"]), str(desc["contract"]), key,
                          net_dir / "tower", net_dir / "tower.ready"))


plasma_app = typer.Typer(help="A Plasma child chain (Plasma MVP + in-flight exits) on the L1.")
app.add_typer(plasma_app, name="plasma")
PLASMA_DIR_OPT = typer.Option("--dir", help="Plasma directory (plasma.json, logs, data).")
PLASMA_DIR = Path(".layerlab/plasma")
ACCOUNT_OPT = typer.Option(help="Dev account index of the user (2 and up; 1 is the operator).")


@plasma_app.command("up")
def plasma_up(
    directory: Annotated[Path, PLASMA_DIR_OPT] = PLASMA_DIR,
    l1_url: Annotated[str | None, typer.Option(help="Use this L1 instead of starting one.")] = None,
    preset: Annotated[str, typer.Option(help="minimal or mainnet-like (exit period, bonds).")] = "minimal",
    block_interval: Annotated[float, typer.Option(help="Seconds between child blocks.")] = 1.0,
) -> None:
    """Start an L1 (unless --l1-url), deploy PlasmaChain, start the operator process."""
    from layerlab.l2.plasma.network import up

    desc = up(directory, l1_url, preset, block_interval=block_interval)
    console.print(f"L1 {desc['l1_url']}, PlasmaChain at {desc['contract']}, operator "
                  f"{desc['operator_url']} ({preset})", highlight=False)


@plasma_app.command("down")
def plasma_down(directory: Annotated[Path, PLASMA_DIR_OPT] = PLASMA_DIR) -> None:
    """Stop the operator (and the L1 `up` started)."""
    from layerlab.l2.plasma.network import down

    console.print(f"stopped {down(directory)} processes")


@plasma_app.command("deposit")
def plasma_deposit(
    account: Annotated[int, ACCOUNT_OPT],
    amount: Annotated[int, typer.Option(help="Wei to deposit.")],
    directory: Annotated[Path, PLASMA_DIR_OPT] = PLASMA_DIR,
) -> None:
    """Deposit ETH on L1; it becomes a child-chain output of the user."""
    from layerlab.l2.plasma.network import user_watcher

    watcher = user_watcher(directory, account)
    try:
        key = next(iter(watcher.keys.values()))
        _, blknum = watcher.contract.deposit(key, amount)
        console.print(f"deposit block {blknum}: {amount} wei")
    finally:
        watcher.close()


@plasma_app.command("send")
def plasma_send(
    account: Annotated[int, ACCOUNT_OPT],
    to: Annotated[str, typer.Option(help="Recipient address (0x...).")],
    amount: Annotated[int, typer.Option(help="Wei to pay.")],
    directory: Annotated[Path, PLASMA_DIR_OPT] = PLASMA_DIR,
) -> None:
    """Pay on the child chain from the user's outputs (the watcher syncs first)."""
    from layerlab.l2.plasma.network import user_watcher

    watcher = user_watcher(directory, account)
    try:
        watcher.poll()
        stx = watcher.pay(watcher.addresses[0], bytes.fromhex(to.removeprefix("0x")), amount)
        console.print(f"sent 0x{stx.tx.tx_hash.hex()} (in flight until its block is seen)")
    finally:
        watcher.close()


@plasma_app.command("exit")
def plasma_exit(
    account: Annotated[int, ACCOUNT_OPT],
    utxo: Annotated[int | None, typer.Option(help="UTXO position; default: every output.")] = None,
    directory: Annotated[Path, PLASMA_DIR_OPT] = PLASMA_DIR,
) -> None:
    """Start standard exits of the user's outputs (paid after the exit period by `process`)."""
    from layerlab.l2.plasma.network import user_watcher

    watcher = user_watcher(directory, account)
    try:
        watcher.poll()
        owner = watcher.addresses[0]
        positions = [utxo] if utxo is not None else [u.position for u in watcher.chain.utxos_of(owner)]
        for position in positions:
            console.print(f"exit {watcher.exit_output(position)} of {position}")
    finally:
        watcher.close()


@plasma_app.command("process")
def plasma_process(
    account: Annotated[int, ACCOUNT_OPT],
    count: Annotated[int, typer.Option(help="At most this many exits.")] = 50,
    directory: Annotated[Path, PLASMA_DIR_OPT] = PLASMA_DIR,
) -> None:
    """Pay the exits whose period has passed, in priority order (anyone may call it)."""
    from layerlab.l2.plasma.network import user_watcher

    watcher = user_watcher(directory, account)
    try:
        key = next(iter(watcher.keys.values()))
        receipt = watcher.contract.process_exits(key, b"\0" * 20, count)
        done = [e for e in watcher.contract.l1.receipt_events(receipt)
                if e.name in ("ExitFinalized", "InFlightExitFinalized")]
        console.print(f"processed {len(done)} exits")
    finally:
        watcher.close()


@plasma_app.command("watch")
def plasma_watch(
    account: Annotated[int, ACCOUNT_OPT],
    rounds: Annotated[int, typer.Option(help="Polls before returning (bounded).")] = 1,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    directory: Annotated[Path, PLASMA_DIR_OPT] = PLASMA_DIR,
) -> None:
    """Check every new child block for the user; exit or challenge on its own (`challenge`
    is what it does when it sees an exit of a spent output)."""
    import time

    from layerlab.l2.plasma.network import user_watcher

    watcher = user_watcher(directory, account)
    try:
        for i in range(rounds):
            for alarm in watcher.poll():
                console.print(f"{alarm.kind} at block {alarm.blknum}: {alarm.detail}", highlight=False)
            if i + 1 < rounds:
                time.sleep(interval)
    finally:
        watcher.close()


plasma_app.command("challenge")(plasma_watch)


@plasma_app.command("status")
def plasma_status(
    directory: Annotated[Path, PLASMA_DIR_OPT] = PLASMA_DIR,
    account: Annotated[int | None, typer.Option(help="Also show this user's outputs.")] = None,
) -> None:
    """The operator's head and, for a user, its outputs and balance."""
    from layerlab.l2.plasma.network import load, user_watcher
    from layerlab.orchestration import rpc_call

    desc = load(directory)
    status = rpc_call(desc["operator_url"], "plasma_status")
    console.print(f"PlasmaChain {desc['contract']}: next block {status['nextChildBlock']}, "
                  f"{status['pending']} pending, {status['utxos']} outputs, submitted through "
                  f"{status['submitted']}", highlight=False)
    if account is not None:
        watcher = user_watcher(directory, account)
        try:
            watcher.poll()
            owner = watcher.addresses[0]
            for u in watcher.chain.utxos_of(owner):
                console.print(f"  {u.position}: {u.output.amount} wei")
            console.print(f"  balance {watcher.balance(owner)} wei"
                          + (f"; ALARM at block {watcher.halted_at}" if watcher.halted_at else ""))
        finally:
            watcher.close()


@plasma_app.command("operator", hidden=True)
def plasma_operator(
    directory: Annotated[Path, PLASMA_DIR_OPT],
    l1_url: Annotated[str, typer.Option()],
    contract: Annotated[str, typer.Option()],
    port: Annotated[int, typer.Option()] = 0,
    block_interval: Annotated[float, typer.Option()] = 1.0,
    adversarial: Annotated[bool, typer.Option(help="Serve the debug methods of attack tests.")] = False,
    start_block: Annotated[int, typer.Option(help="L1 block to read events from at first.")] = 0,
) -> None:
    """Run the operator (started by `plasma up`)."""
    import asyncio

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.plasma.network import OPERATOR_ACCOUNT
    from layerlab.l2.plasma.operator import OperatorConfig, run_operator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = derive_dev_accounts(count=OPERATOR_ACCOUNT + 1)[OPERATOR_ACCOUNT].private_key
    config = OperatorConfig(private_key=key, data_dir=directory, l1_url=l1_url,
                            contract_address=contract, port=port, block_interval=block_interval,
                            adversarial=adversarial, start_block=start_block)
    asyncio.run(run_operator(config, directory / "operator.ready"))


rollup_app = typer.Typer(help="The optimistic rollup: sequencer and verifier processes on the L1.")
app.add_typer(rollup_app, name="rollup")
ROLLUP_DIR_OPT = typer.Option("--dir", help="Rollup directory (rollup.json, logs, data).")
ROLLUP_DIR = Path(".layerlab/rollup")


@rollup_app.command("up")
def rollup_up(
    directory: Annotated[Path, ROLLUP_DIR_OPT] = ROLLUP_DIR,
    l1_url: Annotated[str | None, typer.Option(help="Use this L1 instead of starting one.")] = None,
    preset: Annotated[str, typer.Option(help="minimal or mainnet-like (challenge window).")] = "minimal",
    batch_interval: Annotated[float, typer.Option(help="Seconds between batches.")] = 1.0,
    verifier: Annotated[bool, typer.Option(help="Start a verifier (challenger).")] = True,
) -> None:
    """Start an L1 (unless --l1-url), deploy the rollup, start the sequencer and a verifier."""
    from layerlab.l2.rollup.network import up

    desc = up(directory, l1_url, preset, batch_interval, verifier=verifier)
    console.print(f"L1 {desc['l1_url']}, OptimisticRollup at {desc['contract']}, sequencer "
                  f"{desc['sequencer_url']}" + (f", verifier {desc['verifier_url']}"
                                                if verifier else ""), highlight=False)


@rollup_app.command("down")
def rollup_down(directory: Annotated[Path, ROLLUP_DIR_OPT] = ROLLUP_DIR) -> None:
    """Stop the sequencer, the verifier (and the L1 `up` started)."""
    from layerlab.l2.rollup.network import down

    console.print(f"stopped {down(directory)} processes")


@rollup_app.command("deposit")
def rollup_deposit(
    account: Annotated[int, typer.Option(help="Dev account index of the depositor.")],
    amount: Annotated[int, typer.Option(help="Wei to deposit.")],
    directory: Annotated[Path, ROLLUP_DIR_OPT] = ROLLUP_DIR,
) -> None:
    """Deposit ETH through the bridge; the sequencer must credit it in order."""
    from web3 import Web3

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.rollup.network import load
    from layerlab.l2.rollup.optimistic import RollupContract

    desc = load(directory)
    who = derive_dev_accounts(count=account + 1)[account]
    rollup = RollupContract.at(Web3(Web3.HTTPProvider(desc["l1_url"])), desc["contract"])
    step = rollup.queued_step(rollup.deposit_eth(who.private_key, who.address, amount))
    console.print(f"deposit queued: message {int.from_bytes(step[1:9], 'big')}")


@rollup_app.command("send")
def rollup_send(
    account: Annotated[int, typer.Option(help="Dev account index of the sender.")],
    to: Annotated[str, typer.Option(help="Recipient address (0x...).")],
    amount: Annotated[int, typer.Option(help="Wei to transfer on L2.")],
    directory: Annotated[Path, ROLLUP_DIR_OPT] = ROLLUP_DIR,
) -> None:
    """Sign an L2 transfer (EIP-712) and send it to the sequencer."""
    from web3 import Web3

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.rollup.network import load
    from layerlab.l2.rollup.optimistic import RollupContract
    from layerlab.l2.rollup.txs import Transfer, sign_tx
    from layerlab.orchestration import rpc_call

    desc = load(directory)
    who = derive_dev_accounts(count=account + 1)[account]
    rollup = RollupContract.at(Web3(Web3.HTTPProvider(desc["l1_url"])), desc["contract"])
    nonce = int(rpc_call(desc["sequencer_url"], "rollup_getAccount", [who.address])["nonce"])
    tx = Transfer(nonce=nonce, token=0, to=bytes.fromhex(to.removeprefix("0x")), amount=amount)
    reply = rpc_call(desc["sequencer_url"], "rollup_sendTransaction",
                     ["0x" + sign_tx(tx, who.private_key, rollup.domain).encode().hex()])
    console.print(f"accepted as step {reply['seq']}; L2 root {reply['root']}")


@rollup_app.command("withdraw")
def rollup_withdraw(
    account: Annotated[int, typer.Option(help="Dev account index of the L2 sender.")],
    amount: Annotated[int, typer.Option(help="Amount to withdraw (wei, or token units).")],
    to: Annotated[str | None, typer.Option(help="L1 recipient (default: the sender).")] = None,
    token: Annotated[int, typer.Option(help="L2 token id (0 is ETH).")] = 0,
    wait: Annotated[bool, typer.Option(help="Wait for the batch and the window, then claim.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 900.0,
    directory: Annotated[Path, ROLLUP_DIR_OPT] = ROLLUP_DIR,
) -> None:
    """Withdraw to L1: sign an L2 withdrawal; paid on L1 once its batch is final (claim)."""
    import time

    from web3 import Web3

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.rollup.machine import RollupError
    from layerlab.l2.rollup.network import load
    from layerlab.l2.rollup.optimistic import RollupContract
    from layerlab.l2.rollup.txs import Withdraw, sign_tx
    from layerlab.orchestration import rpc_call

    desc = load(directory)
    who = derive_dev_accounts(count=account + 1)[account]
    rollup = RollupContract.at(Web3(Web3.HTTPProvider(desc["l1_url"])), desc["contract"])
    seq = desc["sequencer_url"]
    nonce = int(rpc_call(seq, "rollup_getAccount", [who.address])["nonce"])
    recipient = bytes.fromhex((to or who.address).removeprefix("0x"))
    tx = Withdraw(nonce=nonce, token=token, amount=amount, recipient=recipient)
    reply = rpc_call(seq, "rollup_sendTransaction",
                     ["0x" + sign_tx(tx, who.private_key, rollup.domain).encode().hex()])
    receipt = rpc_call(seq, "rollup_getReceipt", [reply["txHash"]])
    wid = receipt["withdrawalId"]
    console.print(f"withdrawal {wid} accepted: tx {reply['txHash']}", highlight=False)
    if not wait:
        console.print(f"claim it on L1 once final: layerlab rollup claim --withdrawal {wid}",
                      highlight=False)
        return
    deadline = time.monotonic() + timeout
    announced = False
    while receipt["status"] != "final":
        if time.monotonic() > deadline:
            raise RollupError("timeout", f"withdrawal {wid} is still {receipt['status']} "
                                         f"after {timeout:g} s")
        if receipt["status"] == "posted" and not announced:
            batch = rpc_call(seq, "rollup_getBatch", [receipt["batchIndex"]])
            console.print(f"in batch {batch['index']} (L1 tx {batch['l1TxHash']}); final at "
                          f"L1 time {batch['challengeDeadline']}", highlight=False)
            announced = True
        time.sleep(0.5)
        receipt = rpc_call(seq, "rollup_getReceipt", [reply["txHash"]])
    _claim(desc, rollup, wid, who.private_key)


@rollup_app.command("claim")
def rollup_claim(
    withdrawal: Annotated[int, typer.Option(help="The L2 withdrawal id.")],
    account: Annotated[int, typer.Option(help="Dev account index that sends the L1 tx.")] = 0,
    directory: Annotated[Path, ROLLUP_DIR_OPT] = ROLLUP_DIR,
) -> None:
    """Pay a final withdrawal on L1 (finalizeWithdrawal with the sequencer's proof)."""
    from web3 import Web3

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.rollup.network import load
    from layerlab.l2.rollup.optimistic import RollupContract

    desc = load(directory)
    key = derive_dev_accounts(count=account + 1)[account].private_key
    rollup = RollupContract.at(Web3(Web3.HTTPProvider(desc["l1_url"])), desc["contract"])
    _claim(desc, rollup, withdrawal, key)


def _claim(desc: dict[str, object], rollup: RollupContract, wid: int, key: bytes) -> None:
    from layerlab.l2.rollup.machine import RollupError
    from layerlab.orchestration import rpc_call

    proof = rpc_call(str(desc["sequencer_url"]), "rollup_getWithdrawalProof", [wid])
    index = int(proof["batchIndex"])
    if not rollup.is_final(index):
        raise RollupError("not-final", f"withdrawal {wid} is in batch {index}, final at L1 "
                                          f"time {rollup.final_at(index)} (if undisputed)")
    receipt = rollup.pay_withdrawal(key, index, wid, bytes.fromhex(proof["recipient"][2:]),
                                    bytes.fromhex(proof["token"][2:]), int(proof["amount"]),
                                    bytes.fromhex(proof["proof"][2:]))
    console.print(f"withdrawal {wid} paid on L1: {proof['amount']} to {proof['recipient']} in "
                  f"tx 0x{bytes(receipt['transactionHash']).hex()}", highlight=False)


@rollup_app.command("status")
def rollup_status(
    directory: Annotated[Path, ROLLUP_DIR_OPT] = ROLLUP_DIR,
    account: Annotated[str | None, typer.Option(help="Also show this address's L2 account.")] = None,
    batches: Annotated[int, typer.Option(help="How many recent batches to list.")] = 10,
) -> None:
    """Sequencer head, batches with their challenge clocks, disputes, one account."""
    from rich.table import Table
    from web3 import Web3

    from layerlab.l2.rollup.network import load
    from layerlab.l2.rollup.optimistic import RollupContract, Turn
    from layerlab.orchestration import rpc_call

    desc = load(directory)
    s = rpc_call(desc["sequencer_url"], "rollup_status")
    console.print(f"sequencer: {s['steps']} steps, {s['pending']} pending, {s['batches']} "
                  f"batches, root {s['root']}", highlight=False)
    w3 = Web3(Web3.HTTPProvider(desc["l1_url"]))
    rollup = RollupContract.at(w3, desc["contract"])
    now = int(w3.eth.get_block("latest")["timestamp"])
    count = rollup.batch_count()
    table = Table("batch", "txs", "state root", "status", "challenge clock", "disputes",
                  "L1 tx", title="batches")
    for index in range(max(1, count - batches), count):
        b = rpc_call(desc["sequencer_url"], "rollup_getBatch", [index])
        left = int(b["challengeDeadline"]) - now
        clock = f"{left} s left" if left > 0 else "window over"
        table.add_row(str(index), str(b["txCount"]), b["stateRoot"][:18] + "...", b["status"],
                      clock, str(b["openDisputes"]), str(b["l1TxHash"] or "-")[:18])
    console.print(table)
    turns = {Turn.NONE: "over", Turn.DEFENDER: "defender to bisect",
             Turn.CHALLENGER: "challenger to choose", Turn.ONE_STEP: "one-step proof"}
    disputes = Table("dispute", "batch", "steps [lo, hi)", "turn", "move deadline",
                     "challenger", title="disputes")
    for dispute_id in range(rollup.dispute_count()):
        d = rollup.dispute(dispute_id)
        left = int(d["deadline"]) - now
        disputes.add_row(str(dispute_id), str(d["batchIndex"]), f"[{d['lo']}, {d['hi']})",
                         turns[Turn(int(d["turn"]))],
                         "-" if int(d["turn"]) == 0 else f"{left} s left" if left > 0
                         else "passed", d["challenger"])
    console.print(disputes if disputes.row_count else "disputes: none")
    if "verifier_url" in desc:
        v = rpc_call(desc["verifier_url"], "verifier_status")
        console.print(f"verifier: {v['batches']} batches checked, root {v['root']}, disputes "
                      f"{v['disputes'] or 'none'}", highlight=False)
    if account:
        a = rpc_call(desc["sequencer_url"], "rollup_getAccount", [account])
        console.print(f"{account}: nonce {a['nonce']}, balances {a['balances']}", highlight=False)


@rollup_app.command("sequencer", hidden=True)
def rollup_sequencer(
    directory: Annotated[Path, ROLLUP_DIR_OPT],
    l1_url: Annotated[str, typer.Option()],
    contract: Annotated[str, typer.Option()],
    start_block: Annotated[int, typer.Option()] = 0,
    port: Annotated[int, typer.Option()] = 0,
    batch_interval: Annotated[float, typer.Option()] = 1.0,
    fraud_from_batch: Annotated[int | None, typer.Option(help="Lie from this batch on (tests).")] = None,
) -> None:
    """Run the sequencer (started by `rollup up`)."""
    import asyncio

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.rollup.network import SEQUENCER_ACCOUNT
    from layerlab.l2.rollup.sequencer import SequencerConfig, run_sequencer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = derive_dev_accounts(count=SEQUENCER_ACCOUNT + 1)[SEQUENCER_ACCOUNT].private_key
    config = SequencerConfig(private_key=key, data_dir=directory, l1_url=l1_url,
                             contract_address=contract, port=port, start_block=start_block,
                             batch_interval=batch_interval, fraud_from_batch=fraud_from_batch)
    asyncio.run(run_sequencer(config, directory / "sequencer.ready"))


@rollup_app.command("verifier", hidden=True)
def rollup_verifier(
    directory: Annotated[Path, ROLLUP_DIR_OPT],
    l1_url: Annotated[str, typer.Option()],
    contract: Annotated[str, typer.Option()],
    start_block: Annotated[int, typer.Option()] = 0,
    port: Annotated[int, typer.Option()] = 0,
) -> None:
    """Run a verifier (started by `rollup up`)."""
    import asyncio

    from layerlab.crypto.keys import derive_dev_accounts
    from layerlab.l2.rollup.network import VERIFIER_ACCOUNT
    from layerlab.l2.rollup.verifier import VerifierConfig, run_verifier

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = derive_dev_accounts(count=VERIFIER_ACCOUNT + 1)[VERIFIER_ACCOUNT].private_key
    asyncio.run(run_verifier(VerifierConfig(private_key=key, l1_url=l1_url,
                                            contract_address=contract, port=port,
                                            start_block=start_block),
                             directory / "verifier.ready"))


optimistic_app = typer.Typer(help="The optimistic rollup (the same commands as `rollup`).")
for _info in rollup_app.registered_commands:
    optimistic_app.registered_commands.append(_info)
rollup_app.add_typer(optimistic_app, name="optimistic")


@app.command()
def compare(
    tx: Annotated[int, typer.Option(help="Transactions per workload burst.")] = 1000,
    nodes: Annotated[int, typer.Option(help="Nodes of each L1 network.")] = 4,
    batch_size: Annotated[int, typer.Option(help="Rollup batch size (when rollups exist).")] = 200,
    preset: Annotated[str, typer.Option(help="Consensus preset of the networks.")] = "minimal",
    systems: Annotated[str | None, typer.Option(help="Comma-separated subset of systems.")] = None,
    workloads: Annotated[str | None, typer.Option(help="Comma-separated subset of workloads.")] = None,
    quick: Annotated[bool, typer.Option(help="Networks run transfers only; fewer scaling sizes.")] = False,
    eth_price: Annotated[float, typer.Option(help="Fiat price of one ETH for the fee column.")] = 3000.0,
    currency: Annotated[str, typer.Option(help="Name of that fiat currency.")] = "USD",
    json_out: Annotated[Path | None, typer.Option("--json", help="Where the JSON goes.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Where the HTML report goes.")] = None,
) -> None:
    """Run the same workloads on every system and report throughput, latency, cost, trust."""
    from layerlab.demo import run_comparison

    run_comparison(tx=tx, nodes=nodes, batch_size=batch_size, preset=preset,
                   systems=systems, workloads=workloads, quick=quick, eth_price=eth_price,
                   currency=currency, json_out=json_out, html_out=html_out, console=console)


@app.command()
def explorer(
    l1: Annotated[str, typer.Option(help="JSON-RPC URL of the L1.")] = "http://127.0.0.1:8545",
    channels: Annotated[str | None, typer.Option(help="PaymentChannels contract address.")] = None,
    rollup: Annotated[str | None, typer.Option(help="OptimisticRollup contract address.")] = None,
    plasma: Annotated[str | None, typer.Option(help="PlasmaChain contract address.")] = None,
    zk: Annotated[str | None, typer.Option(help="ZkRollup contract address.")] = None,
    port: Annotated[int, typer.Option(help="Port of the page (127.0.0.1).")] = 8080,
) -> None:
    """Serve a live page of L1 blocks, finality, validators, channels, rollup batches
    (challenge clocks, ZK proofs) and Plasma exits."""
    from layerlab.web.explorer import Watched, run_explorer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    watched = [Watched("PaymentChannels", channels)] if channels else []
    watched += [Watched("OptimisticRollup", rollup)] if rollup else []
    watched += [Watched("PlasmaChain", plasma)] if plasma else []
    watched += [Watched("ZkRollup", zk)] if zk else []
    console.print(f"explorer: http://127.0.0.1:{port}/ (L1 {l1})")
    run_explorer(l1, watched, port)


@app.command()
def demo(
    tx: Annotated[int, typer.Option(help="Transactions per workload burst.")] = 300,
) -> None:
    """``layerlab compare --quick`` on embedded defaults: what ``make demo`` runs."""
    from layerlab.demo import run_comparison

    run_comparison(tx=tx, quick=True, console=console)


from layerlab.zk_cli import zk_app  # noqa: E402

app.add_typer(zk_app, name="zk")
rollup_app.add_typer(zk_app, name="zk")  # `layerlab rollup zk ...`, as the issue names it

def main() -> None:
    try:
        app()
    except LayerlabError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
