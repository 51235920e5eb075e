"""Chain configuration and genesis: chain id, gas limit, initial base fee, funded accounts.

A config file is JSON::

    {"chainId": 31337, "gasLimit": 30000000, "baseFeePerGas": 1000000000,
     "timestamp": 1700000000, "mnemonic": "test test ... junk", "accounts": 10,
     "balance": "10000000000000000000000",
     "alloc": {"0xabc...": {"balance": "0x1", "code": "0x...", "nonce": 0,
                            "storage": {"0x00": "0x01"}}}}

Every key is optional; the defaults match Anvil's (chain id 31337, ten accounts from the
"test test ... junk" mnemonic with 10,000 ETH each, 30M gas, 1 gwei initial base fee per
EIP-1559). ``"fork": "prague"`` runs that fork (and every earlier one) from genesis instead
of :data:`~layerlab.l1.chain.forks.DEFAULT_FORK`.

A geth genesis file (one with a ``config`` object, as ``geth init`` reads) is accepted as
well: see :mod:`layerlab.l1.chain.genesis`. Its genesis block hashes to geth's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerlab.crypto.keys import DEFAULT_MNEMONIC, DevAccount, derive_dev_accounts
from layerlab.errors import ConfigError
from layerlab.l1.chain.forks import ForkSchedule
from layerlab.primitives.types import ETHER, GWEI, ChainId, Wei

DEFAULT_CHAIN_ID = ChainId(31337)
DEFAULT_GAS_LIMIT = 30_000_000
DEFAULT_BASE_FEE = Wei(1 * GWEI)
DEFAULT_BALANCE = Wei(10_000 * ETHER)


@dataclass(frozen=True, slots=True)
class GenesisAccount:
    """Pre-funded state of one account at genesis."""

    balance: Wei = 0  # type: ignore[assignment]
    nonce: int = 0
    code: bytes = b""
    storage: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class GenesisHeader:
    """The genesis header fields that are not derived from the state or the schedule.

    The defaults are the devnet's own genesis (``extraData`` "layerlab"); a geth genesis
    file sets them all (geth's defaults where the file leaves them out).
    """

    difficulty: int = 0
    extra_data: bytes = b"layerlab"
    nonce: bytes = b"\x00" * 8
    mix_hash: bytes = b"\x00" * 32
    coinbase: bytes = b"\x00" * 20
    parent_hash: bytes = b"\x00" * 32
    excess_blob_gas: int = 0
    blob_gas_used: int = 0


CONSENSUS_ENGINES = ("dev", "pow", "pos", "merge")


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    """Which consensus secures the chain; every node of a network must agree on it.

    ``dev`` is the single-node devnet (automine, no seal). ``merge`` runs proof of work
    until ``merge_block`` (a block number) or until total difficulty reaches
    ``terminal_total_difficulty`` (EIP-3675), then proof of stake.
    """

    engine: str = "dev"
    preset: str = "minimal"
    validators: int = 4
    """Genesis validators of PoS (dev BLS keys, 32 ETH each, withdrawal to dev accounts)."""
    merge_block: int | None = None
    terminal_total_difficulty: int | None = None


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """Everything that fixes a chain's genesis and its execution rules."""

    chain_id: ChainId = DEFAULT_CHAIN_ID
    gas_limit: int = DEFAULT_GAS_LIMIT
    base_fee_per_gas: Wei = DEFAULT_BASE_FEE
    genesis_timestamp: int = 0
    mnemonic: str = DEFAULT_MNEMONIC
    dev_account_count: int = 10
    dev_balance: Wei = DEFAULT_BALANCE
    alloc: dict[bytes, GenesisAccount] = field(default_factory=dict)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    forks: ForkSchedule = field(default_factory=ForkSchedule.from_genesis)
    header: GenesisHeader = field(default_factory=GenesisHeader)
    fixed_genesis: bool = False
    """The genesis is fully given (a geth file): a timestamp of 0 means 0, not "now"."""
    deposit_contract: bytes | None = None
    """EIP-6110 deposit contract of the chain (geth's ``depositContractAddress``)."""

    @property
    def dev_accounts(self) -> tuple[DevAccount, ...]:
        return derive_dev_accounts(self.mnemonic, self.dev_account_count)

    def genesis_alloc(self) -> dict[bytes, GenesisAccount]:
        """Dev accounts plus explicit ``alloc`` (explicit entries win)."""
        alloc = {
            acct.address_bytes: GenesisAccount(balance=self.dev_balance)
            for acct in self.dev_accounts
        }
        alloc.update(self.alloc)
        return alloc

    def with_timestamp(self) -> ChainConfig:
        """Fix an unset genesis timestamp to now, so the genesis is reproducible from disk."""
        if self.genesis_timestamp or self.fixed_genesis:
            return self
        return _replace(self, genesis_timestamp=int(time.time()))


def _replace(config: ChainConfig, **changes: Any) -> ChainConfig:
    from dataclasses import replace

    return replace(config, **changes)


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.startswith("0x") else int(value)
        except ValueError as exc:
            raise ConfigError(f"{key}: {value!r} is not an integer") from exc
    raise ConfigError(f"{key}: expected an integer, got {type(value).__name__}")


def _bytes(value: Any, key: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ConfigError(f"{key}: expected 0x-prefixed hex, got {value!r}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise ConfigError(f"{key}: {value!r} is not valid hex") from exc


def parse_config(data: dict[str, Any], **overrides: Any) -> ChainConfig:
    """Build a :class:`ChainConfig` from the JSON form above; ``overrides`` win."""
    if not isinstance(data, dict):
        raise ConfigError("chain config must be a JSON object")
    if "config" in data:
        from layerlab.l1.chain.genesis import parse_geth_genesis

        geth: ChainConfig = parse_geth_genesis(data, **overrides)
        validate_config(geth)
        return geth
    known = {"chainId", "gasLimit", "baseFeePerGas", "timestamp", "mnemonic", "accounts",
             "balance", "alloc", "consensus", "fork"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown chain config keys: {sorted(unknown)}")
    alloc: dict[bytes, GenesisAccount] = {}
    for addr, entry in (data.get("alloc") or {}).items():
        key = f"alloc[{addr}]"
        address = _bytes(addr, key)
        if len(address) != 20:
            raise ConfigError(f"{key}: address must be 20 bytes, got {len(address)}")
        storage = tuple(
            (_int(k, f"{key}.storage"), _int(v, f"{key}.storage"))
            for k, v in (entry.get("storage") or {}).items()
        )
        alloc[address] = GenesisAccount(
            balance=Wei(_int(entry.get("balance", 0), f"{key}.balance")),
            nonce=_int(entry.get("nonce", 0), f"{key}.nonce"),
            code=_bytes(entry["code"], f"{key}.code") if entry.get("code") else b"",
            storage=storage,
        )
    fields: dict[str, Any] = {
        "chain_id": ChainId(_int(data.get("chainId", DEFAULT_CHAIN_ID), "chainId")),
        "gas_limit": _int(data.get("gasLimit", DEFAULT_GAS_LIMIT), "gasLimit"),
        "base_fee_per_gas": Wei(_int(data.get("baseFeePerGas", DEFAULT_BASE_FEE), "baseFeePerGas")),
        "genesis_timestamp": _int(data.get("timestamp", 0), "timestamp"),
        "mnemonic": str(data.get("mnemonic", DEFAULT_MNEMONIC)),
        "dev_account_count": _int(data.get("accounts", 10), "accounts"),
        "dev_balance": Wei(_int(data.get("balance", DEFAULT_BALANCE), "balance")),
        "alloc": alloc,
        "consensus": _parse_consensus(data.get("consensus") or {}),
    }
    if "fork" in data:
        fields["forks"] = ForkSchedule.from_genesis(str(data["fork"]))
    fields.update({k: v for k, v in overrides.items() if v is not None})
    config = ChainConfig(**fields)
    validate_config(config)
    return config


def _parse_consensus(data: Any) -> ConsensusConfig:
    if not isinstance(data, dict):
        raise ConfigError("consensus: expected an object")
    known = {"engine", "preset", "validators", "mergeBlock", "terminalTotalDifficulty"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown consensus keys: {sorted(unknown)}")
    merge = data.get("mergeBlock")
    ttd = data.get("terminalTotalDifficulty")
    return ConsensusConfig(
        engine=str(data.get("engine", "dev")),
        preset=str(data.get("preset", "minimal")),
        validators=_int(data.get("validators", 4), "consensus.validators"),
        merge_block=None if merge is None else _int(merge, "consensus.mergeBlock"),
        terminal_total_difficulty=None if ttd is None else _int(ttd, "consensus.terminalTotalDifficulty"),
    )


def consensus_to_json(c: ConsensusConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"engine": c.engine, "preset": c.preset, "validators": c.validators}
    if c.merge_block is not None:
        out["mergeBlock"] = c.merge_block
    if c.terminal_total_difficulty is not None:
        out["terminalTotalDifficulty"] = c.terminal_total_difficulty
    return out


def validate_config(config: ChainConfig) -> None:
    """Raise :class:`ConfigError` naming the first field out of range."""
    if not 0 < config.chain_id < 2**63:
        raise ConfigError(f"chainId {config.chain_id} out of range (1..2^63-1)")
    if config.gas_limit < 5000:
        raise ConfigError(f"gasLimit {config.gas_limit} is below the minimum 5000")
    if config.base_fee_per_gas < 0:
        raise ConfigError(f"baseFeePerGas {config.base_fee_per_gas} is negative")
    c = config.consensus
    if c.engine not in CONSENSUS_ENGINES:
        raise ConfigError(f"consensus.engine {c.engine!r} is not one of {CONSENSUS_ENGINES}")
    if c.preset not in ("minimal", "mainnet-like"):
        raise ConfigError(f"consensus.preset {c.preset!r} is not minimal or mainnet-like")
    if c.engine == "merge" and (c.merge_block is None) == (c.terminal_total_difficulty is None):
        raise ConfigError("consensus: a merge needs exactly one of mergeBlock and terminalTotalDifficulty")
    if not 1 <= c.validators <= 1024:
        raise ConfigError(f"consensus.validators {c.validators} out of range (1..1024)")
    if not 0 <= config.dev_account_count <= 1000:
        raise ConfigError(f"accounts {config.dev_account_count} out of range (0..1000)")


def load_config(path: Path | None, **overrides: Any) -> ChainConfig:
    """Read a config file (or the defaults when ``path`` is None) and apply overrides."""
    if path is None:
        return parse_config({}, **overrides)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read chain config {path}: {exc}") from exc
    return parse_config(data, **overrides)
