"""geth's genesis format: ``config`` (chain id and fork schedule) plus the genesis block.

Accepted as geth's ``core.Genesis`` reads it::

    {"config": {"chainId": 1, "homesteadBlock": 0, ..., "londonBlock": 0,
                "terminalTotalDifficulty": 0, "shanghaiTime": 0, "cancunTime": 0,
                "pragueTime": 0, "depositContractAddress": "0x...", "blobSchedule": {...}},
     "nonce": "0x42", "timestamp": "0x0", "extraData": "0x...", "gasLimit": "0x1388",
     "difficulty": "0x400000000", "mixHash": "0x...", "coinbase": "0x...",
     "baseFeePerGas": null, "excessBlobGas": null, "blobGasUsed": null,
     "number": "0x0", "gasUsed": "0x0", "parentHash": "0x...",
     "alloc": {"0xabc...": {"balance": "0x1", "nonce": "0x0", "code": "0x...",
                            "storage": {"0x00...": "0x01..."}}}}

Numbers are hex (``0x``) or decimal, as geth's ``math.HexOrDecimal``; alloc addresses and
storage keys may lack the ``0x`` prefix. Missing header fields take geth's defaults
(``core/genesis.go`` ``toBlockWithRoot``): gas limit 4,712,388, difficulty 0 without an
``ethash`` section (131,072 with one and no ``mixHash``), base fee 1 gwei once London is
active at genesis, blob fields 0 once Cancun is.

Every fork from ``homesteadBlock`` to ``osakaTime`` and ``bpo1Time``..``bpo5Time`` is
scheduled (:mod:`layerlab.l1.chain.forks`); a BPO fork runs its ``blobSchedule`` entry.

Refused with :class:`~layerlab.errors.UnsupportedFork` (a :class:`ConfigError`; ``key``
names it): forks the node does not implement
(:data:`~layerlab.l1.chain.forks.UNSUPPORTED_FORK_KEYS`: Amsterdam...), the DAO fork's
irregular state change (``daoForkSupport`` with a ``daoForkBlock``), clique, a merge by
total difficulty that the genesis has not reached without ``mergeNetsplitBlock``. Refused
with :class:`~layerlab.errors.UnknownConfigKey`: keys geth's format does not have. Refused
with :class:`ConfigError`: a ``blobSchedule`` entry for Cancun, Prague or Osaka that
differs from what their VMs execute, a scheduled BPO fork without one, and a genesis
``number`` or ``gasUsed`` other than 0.
"""

from __future__ import annotations

from typing import Any

from layerlab.errors import ConfigError, UnknownConfigKey, UnsupportedFork
from layerlab.l1.chain.forks import BPO_FORKS, FORKS, UNSUPPORTED_FORK_KEYS, Activation, ForkSchedule
from layerlab.l1.chain.osaka import (
    CANCUN_BLOB_SCHEDULE,
    OSAKA_BLOB_SCHEDULE,
    PRAGUE_BLOB_SCHEDULE,
    BlobSchedule,
)
from layerlab.primitives.types import GWEI, ChainId, Wei

GETH_GENESIS_GAS_LIMIT = 4_712_388
"""``params.GenesisGasLimit``: the gas limit of a genesis file that gives none."""
GETH_GENESIS_DIFFICULTY = 131_072
"""``params.GenesisDifficulty``."""
INITIAL_BASE_FEE = 1 * GWEI
"""``params.InitialBaseFee`` (EIP-1559)."""

BLOB_SCHEDULE = {
    "cancun": CANCUN_BLOB_SCHEDULE,
    "prague": PRAGUE_BLOB_SCHEDULE,
    "osaka": OSAKA_BLOB_SCHEDULE,
}
"""The blob parameters the Cancun (EIP-4844), Prague (EIP-7691) and Osaka VMs execute; a BPO
fork's come from the genesis's ``blobSchedule`` (EIP-7892)."""

_HEADER_KEYS = {"config", "nonce", "timestamp", "extraData", "gasLimit", "difficulty",
                "mixHash", "coinbase", "alloc", "number", "gasUsed", "parentHash",
                "baseFeePerGas", "excessBlobGas", "blobGasUsed"}
_BLOCK_KEYS = {f.key: f.name for f in FORKS if f.key and not f.by_time}
_TIME_KEYS = {f.key: f.name for f in FORKS if f.by_time}
_OTHER_CONFIG_KEYS = {"chainId", "eip150Hash", "eip155Block", "daoForkBlock", "daoForkSupport",
                      "terminalTotalDifficulty", "terminalTotalDifficultyPassed",
                      "depositContractAddress", "blobSchedule", "ethash", "enableVerkleAtGenesis"}


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{key}: {value} is negative")
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value[:2] in ("0x", "0X") else int(value)
        except ValueError as exc:
            raise ConfigError(f"{key}: {value!r} is not an integer") from exc
    raise ConfigError(f"{key}: expected an integer, got {type(value).__name__}")


def _hex(value: Any, key: str, size: int | None = None, *, exact: bool = False) -> bytes:
    """Hex bytes, ``0x`` optional; shorter values left-padded to ``size`` unless ``exact``."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected hex, got {value!r}")
    text = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        raw = bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)
    except ValueError as exc:
        raise ConfigError(f"{key}: {value!r} is not valid hex") from exc
    if size is None:
        return raw
    if len(raw) > size or (exact and len(raw) != size):
        raise ConfigError(f"{key}: expected {size} bytes, got {len(raw)}")
    return raw.rjust(size, b"\x00")


def _parse_alloc(data: Any) -> dict[bytes, Any]:
    from layerlab.l1.chain.config import GenesisAccount

    if not isinstance(data, dict):
        raise ConfigError("alloc: expected an object")
    alloc: dict[bytes, GenesisAccount] = {}
    for addr, entry in data.items():
        key = f"alloc[{addr}]"
        address = _hex(addr, key, 20, exact=True)
        if not isinstance(entry, dict):
            raise ConfigError(f"{key}: expected an object")
        unknown = set(entry) - {"balance", "nonce", "code", "storage", "secretKey"}
        if unknown:
            raise ConfigError(f"{key}: unknown keys {sorted(unknown)}")
        storage = tuple(
            (int.from_bytes(_hex(k, f"{key}.storage", 32), "big"),
             int.from_bytes(_hex(v, f"{key}.storage[{k}]", 32), "big"))
            for k, v in (entry.get("storage") or {}).items()
        )
        alloc[address] = GenesisAccount(
            balance=Wei(_int(entry.get("balance", 0), f"{key}.balance")),
            nonce=_int(entry.get("nonce", 0), f"{key}.nonce"),
            code=_hex(entry["code"], f"{key}.code") if entry.get("code") else b"",
            storage=tuple((k, v) for k, v in storage if v),
        )
    return alloc


def _parse_schedule(config: dict[str, Any], genesis_difficulty: int, genesis_timestamp: int,
                    genesis_only: bool) -> ForkSchedule:
    """The fork schedule of a geth ``config`` object (see :mod:`layerlab.l1.chain.forks`).

    With ``genesis_only`` the schedule stops at the fork active at genesis, and the
    refusals that concern only later blocks (the DAO fork's state change, a merge by total
    difficulty) are skipped: enough to build and hash the genesis block (``geth init``).
    """
    for key in UNSUPPORTED_FORK_KEYS:
        if config.get(key) is not None:
            raise UnsupportedFork(key, f"config.{key}: this node does not implement that fork")
    unknown = sorted(set(config) - set(_BLOCK_KEYS) - set(_TIME_KEYS) - _OTHER_CONFIG_KEYS
                     - {"petersburgBlock"})
    if unknown:
        raise UnknownConfigKey(unknown, f"unknown geth chain config keys: {unknown}")
    if "clique" in config:
        raise UnsupportedFork("clique", "config.clique: clique proof of authority is not implemented")
    dao = config.get("daoForkBlock")
    if config.get("daoForkSupport") and dao is not None and \
            not (genesis_only and _int(dao, "config.daoForkBlock") > 0):
        raise UnsupportedFork(
            "daoForkBlock",
            f"config.daoForkBlock {dao}: the DAO fork's state change is not "
            "implemented (remove daoForkBlock or set daoForkSupport false)",
        )
    eip155, eip158 = config.get("eip155Block"), config.get("eip158Block")
    if eip155 is not None and eip158 is not None and \
            _int(eip155, "config.eip155Block") != _int(eip158, "config.eip158Block"):
        raise ConfigError(
            f"config.eip155Block {eip155} differs from eip158Block {eip158}: py-evm's "
            "Spurious Dragon VM brings both at once"
        )
    blocks = {k: _int(v, f"config.{k}") for k, v in config.items()
              if k in _BLOCK_KEYS and v is not None}
    if "petersburgBlock" not in blocks and "constantinopleBlock" in blocks:
        blocks["petersburgBlock"] = blocks["constantinopleBlock"]  # geth's IsPetersburg
    ttd = config.get("terminalTotalDifficulty")
    blocks.pop("mergeNetsplitBlock", None)
    if ttd is not None:
        ttd = _int(ttd, "config.terminalTotalDifficulty")
        if ttd <= genesis_difficulty:
            blocks["mergeNetsplitBlock"] = 0
        elif config.get("mergeNetsplitBlock") is not None:
            blocks["mergeNetsplitBlock"] = _int(config["mergeNetsplitBlock"], "config.mergeNetsplitBlock")
        elif not genesis_only:
            raise UnsupportedFork(
                "terminalTotalDifficulty",
                f"config.terminalTotalDifficulty {ttd}: a merge by total difficulty needs "
                "mergeNetsplitBlock, the block at which Paris starts on this node",
            )
    blob_schedule = _parse_blob_schedule(config.get("blobSchedule"))
    activations: list[Activation] = []
    for fork in FORKS[1:]:
        value: int | None
        if fork.by_time:
            raw = config.get(fork.key)
            value = None if raw is None else _int(raw, f"config.{fork.key}")
        else:
            value = blocks.get(fork.key)
        if value is None:
            if fork.optional or (fork.name == "paris" and not genesis_only):
                continue
            break
        if genesis_only and value > (genesis_timestamp if fork.by_time else 0):
            break
        activations.append(Activation(fork.name, value, blob_schedule.get(fork.name)
                                      if fork.name in BPO_FORKS else None))
    scheduled = {a.fork for a in activations}
    for fork in FORKS[1:]:
        if not genesis_only and fork.name not in scheduled and config.get(fork.key) is not None:
            raise ConfigError(f"config.{fork.key} is set but an earlier fork is not scheduled")
    if any(a.fork == "shanghai" for a in activations) and "paris" not in scheduled:
        raise ConfigError("config.shanghaiTime needs the merge (terminalTotalDifficulty)")
    for fork_name in scheduled:
        expected = BLOB_SCHEDULE.get(fork_name)
        got = blob_schedule.get(fork_name)
        if expected is not None and got is not None and got != expected:
            raise ConfigError(
                f"config.blobSchedule.{fork_name} {got} differs from the parameters "
                f"{fork_name.capitalize()} executes {expected}"
            )
        if fork_name in BPO_FORKS and got is None:
            raise ConfigError(f"config.blobSchedule.{fork_name} is missing: a BPO fork's blob "
                              "parameters come from the blob schedule (EIP-7892)")
    return ForkSchedule(tuple(activations))


def _parse_blob_schedule(schedule: Any) -> dict[str, BlobSchedule]:
    if schedule is None:
        return {}
    if not isinstance(schedule, dict):
        raise ConfigError("config.blobSchedule: expected an object")
    out: dict[str, BlobSchedule] = {}
    for fork, params in schedule.items():
        key = f"config.blobSchedule.{fork}"
        if not isinstance(params, dict) or set(params) != {"target", "max", "baseFeeUpdateFraction"}:
            raise ConfigError(f"{key}: expected target, max and baseFeeUpdateFraction, got {params!r}")
        out[fork] = BlobSchedule(*(_int(params[k], f"{key}.{k}")
                                   for k in ("target", "max", "baseFeeUpdateFraction")))
        if out[fork].max < out[fork].target or out[fork].base_fee_update_fraction <= 0:
            raise ConfigError(f"{key}: target {out[fork].target} above max {out[fork].max} "
                              f"or fraction {out[fork].base_fee_update_fraction} not positive")
    return out


def parse_geth_genesis(data: dict[str, Any], *, genesis_only: bool = False, **overrides: Any) -> Any:
    """A :class:`~layerlab.l1.chain.config.ChainConfig` from a geth genesis file.

    ``genesis_only``: the config of the genesis block alone (see :func:`_parse_schedule`),
    e.g. to compute mainnet's genesis hash, whose later DAO fork and merge by total
    difficulty this node cannot execute.
    """
    from layerlab.l1.chain.config import ChainConfig, GenesisHeader

    unknown = sorted(set(data) - _HEADER_KEYS)
    if unknown:
        raise UnknownConfigKey(unknown, f"unknown geth genesis keys: {unknown}")
    config = data["config"]
    if not isinstance(config, dict):
        raise ConfigError("config: expected an object")
    if "chainId" not in config:
        raise ConfigError("config.chainId is missing")
    for key in ("number", "gasUsed"):
        if _int(data.get(key) or 0, key):
            raise ConfigError(f"{key} {data[key]}: only a genesis of number 0 and no gas used "
                              "is supported")
    mix_hash = _hex(data.get("mixHash") or "0x", "mixHash", 32)
    if data.get("difficulty") is not None:
        difficulty = _int(data["difficulty"], "difficulty")
    elif "ethash" not in config:
        difficulty = 0
    else:
        difficulty = GETH_GENESIS_DIFFICULTY if not any(mix_hash) else 0
    timestamp = _int(data.get("timestamp") or 0, "timestamp")
    schedule = _parse_schedule(config, difficulty, timestamp, genesis_only)
    genesis_fork = schedule.fork_at(0, timestamp)
    london = [f.name for f in FORKS].index("london")
    base_fee = data.get("baseFeePerGas")
    fields: dict[str, Any] = {
        "chain_id": ChainId(_int(config["chainId"], "config.chainId")),
        "gas_limit": _int(data.get("gasLimit") or 0, "gasLimit") or GETH_GENESIS_GAS_LIMIT,
        "base_fee_per_gas": Wei(INITIAL_BASE_FEE if base_fee is None else _int(base_fee, "baseFeePerGas")),
        "genesis_timestamp": timestamp,
        "dev_account_count": 0,
        "alloc": _parse_alloc(data.get("alloc") or {}),
        "forks": schedule,
        "fixed_genesis": True,
        "deposit_contract": None if config.get("depositContractAddress") is None else
        _hex(config["depositContractAddress"], "config.depositContractAddress", 20, exact=True),
        "header": GenesisHeader(
            difficulty=difficulty,
            extra_data=_hex(data.get("extraData") or "0x", "extraData"),
            nonce=_int(data.get("nonce") or 0, "nonce").to_bytes(8, "big"),
            mix_hash=mix_hash,
            coinbase=_hex(data.get("coinbase") or "0x", "coinbase", 20),
            parent_hash=_hex(data.get("parentHash") or "0x", "parentHash", 32),
            excess_blob_gas=_int(data.get("excessBlobGas") or 0, "excessBlobGas"),
            blob_gas_used=_int(data.get("blobGasUsed") or 0, "blobGasUsed"),
        ),
    }
    if [f.name for f in FORKS].index(genesis_fork.name) < london and base_fee is not None:
        raise ConfigError("baseFeePerGas is set but London is not active at genesis")
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return ChainConfig(**fields)
