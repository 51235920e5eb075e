"""The fork schedule as data: which py-evm VM executes a block, given its number and time.

:data:`FORKS` lists every fork the node implements, oldest first, with the key geth's
chain config uses to schedule it; adding a fork is one line there. A schedule
(:class:`ForkSchedule`) holds the activation of each scheduled fork: pre-merge forks by
block number, Shanghai and later by timestamp (EIP-4895 onwards, as geth's
``shanghaiTime``...). py-evm's ``vm_configuration`` knows only block numbers, so the chain
(``evm.LayerlabMiningChain``) asks :meth:`ForkSchedule.fork_at` with a header's number and
timestamp instead; a schedule with no timestamp fork after genesis is also expressible as a
plain ``vm_configuration`` (:meth:`ForkSchedule.vm_configuration`).

The merge (Paris) is not a block-number fork in geth: it starts at the first block after
total difficulty reaches ``terminalTotalDifficulty``. Here it starts at genesis when that
difficulty is 0 (or already reached by the genesis difficulty), otherwise at
``mergeNetsplitBlock``; a TTD above the genesis difficulty without ``mergeNetsplitBlock``
is refused (a devnet's consensus engine decides its difficulty, not the schedule).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from eth.abc import VirtualMachineAPI
from eth.vm.forks import (
    ArrowGlacierVM,
    BerlinVM,
    ByzantiumVM,
    CancunVM,
    ConstantinopleVM,
    FrontierVM,
    GrayGlacierVM,
    HomesteadVM,
    IstanbulVM,
    LondonVM,
    MuirGlacierVM,
    ParisVM,
    PetersburgVM,
    PragueVM,
    ShanghaiVM,
    SpuriousDragonVM,
    TangerineWhistleVM,
)

from layerlab.errors import ConfigError
from layerlab.l1.chain.osaka import (
    BPO1_BLOB_SCHEDULE,
    BPO2_BLOB_SCHEDULE,
    BlobSchedule,
    OsakaVM,
    make_bpo_vm,
)


def _default_bpo_vms() -> dict[str, type[VirtualMachineAPI]]:
    vms: dict[str, type[VirtualMachineAPI]] = {}
    base: type[VirtualMachineAPI] = OsakaVM
    for n in range(1, 6):
        schedule = BPO1_BLOB_SCHEDULE if n == 1 else BPO2_BLOB_SCHEDULE
        base = vms[f"bpo{n}"] = make_bpo_vm(base, f"bpo{n}", *schedule.as_tuple())
    return vms


_DEFAULT_BPO_VMS = _default_bpo_vms()


@dataclass(frozen=True, slots=True)
class Fork:
    """One fork the node implements: its name, its py-evm VM and its geth config key."""

    name: str
    vm_class: type[VirtualMachineAPI]
    key: str
    """geth's chain-config key (``homesteadBlock``, ``cancunTime``...); "" for Frontier."""
    by_time: bool = False
    """Activated by block timestamp (Shanghai and later) rather than block number."""
    optional: bool = False
    """May be left out of a schedule whose later forks are scheduled (difficulty-bomb
    delays, which change nothing py-evm executes; the merge, placed by the config)."""


FORKS: tuple[Fork, ...] = (
    Fork("frontier", FrontierVM, ""),
    # (py-evm's Homestead applies the DAO drain only in ``configure_header``, which block
    # building never calls; DAO fork support is refused by the config instead)
    Fork("homestead", HomesteadVM.configure(support_dao_fork=False), "homesteadBlock"),
    Fork("tangerineWhistle", TangerineWhistleVM, "eip150Block"),
    Fork("spuriousDragon", SpuriousDragonVM, "eip158Block"),
    Fork("byzantium", ByzantiumVM, "byzantiumBlock"),
    Fork("constantinople", ConstantinopleVM, "constantinopleBlock"),
    Fork("petersburg", PetersburgVM, "petersburgBlock"),
    Fork("istanbul", IstanbulVM, "istanbulBlock"),
    Fork("muirGlacier", MuirGlacierVM, "muirGlacierBlock", optional=True),
    Fork("berlin", BerlinVM, "berlinBlock"),
    Fork("london", LondonVM, "londonBlock"),
    Fork("arrowGlacier", ArrowGlacierVM, "arrowGlacierBlock", optional=True),
    Fork("grayGlacier", GrayGlacierVM, "grayGlacierBlock", optional=True),
    Fork("paris", ParisVM, "mergeNetsplitBlock"),
    Fork("shanghai", ShanghaiVM, "shanghaiTime", by_time=True),
    Fork("cancun", CancunVM, "cancunTime", by_time=True),
    Fork("prague", PragueVM, "pragueTime", by_time=True),
    Fork("osaka", OsakaVM, "osakaTime", by_time=True),
    # The blob-parameter-only forks (EIP-7892) take their parameters from the genesis's
    # ``blobSchedule``; these VMs, with mainnet's BPO1 and BPO2 figures (BPO3-5 keep BPO2's
    # until a schedule sets them), serve a schedule that gives none (``from_genesis``).
    *(Fork(name, vm, f"{name}Time", by_time=True) for name, vm in _DEFAULT_BPO_VMS.items()),
)
FORKS_BY_NAME = {fork.name: fork for fork in FORKS}
BPO_FORKS = ("bpo1", "bpo2", "bpo3", "bpo4", "bpo5")

DEFAULT_FORK = "cancun"
"""The fork a new devnet runs from genesis (every earlier fork also active at genesis)."""

UNSUPPORTED_FORK_KEYS = ("amsterdamTime", "bogotaTime", "verkleTime", "eip7928Time")
"""geth fork keys of forks this node does not implement: scheduling one is refused."""


@dataclass(frozen=True, slots=True)
class Activation:
    """When one fork starts: at ``block`` (by number) or at ``time`` (by timestamp)."""

    fork: str
    at: int
    blob_schedule: BlobSchedule | None = None
    """A BPO fork's parameters (the genesis's ``blobSchedule`` entry); None: the default VM's."""


_BPO_VMS: dict[tuple[type[VirtualMachineAPI], str, BlobSchedule], type[VirtualMachineAPI]] = {}


def get_bpo_vm(base: type[VirtualMachineAPI], name: str, schedule: BlobSchedule) -> type[VirtualMachineAPI]:
    """:func:`~layerlab.l1.chain.osaka.make_bpo_vm`, one class per (base, name, schedule)."""
    key = (base, name, schedule)
    vm = _BPO_VMS.get(key)
    if vm is None:
        vm = _BPO_VMS[key] = make_bpo_vm(base, name, *schedule.as_tuple())
    return vm


@dataclass(frozen=True, slots=True)
class ForkSchedule:
    """The scheduled forks in :data:`FORKS` order, each with its activation.

    Frontier is always active at block 0; a fork missing from the schedule never
    activates, and neither does any later one (geth's fork-order rule).
    """

    activations: tuple[Activation, ...] = ()
    _resolved: tuple[Fork, ...] = field(default=(), compare=False, repr=False)
    """The scheduled forks with their VMs (a BPO fork's built on the fork before it)."""

    @classmethod
    def from_genesis(cls, fork: str = DEFAULT_FORK) -> ForkSchedule:
        """Every fork up to and including ``fork`` active at genesis."""
        if fork not in FORKS_BY_NAME:
            raise ConfigError(f"fork {fork!r} is not one of {[f.name for f in FORKS]}")
        names = [f.name for f in FORKS]
        return cls(tuple(Activation(n, 0) for n in names[1:names.index(fork) + 1]))

    def __post_init__(self) -> None:
        order = [f.name for f in FORKS]
        last_block = last_time = 0
        previous = 0
        for act in self.activations:
            if act.fork not in FORKS_BY_NAME:
                raise ConfigError(f"fork {act.fork!r} is not implemented")
            index = order.index(act.fork)
            if index <= previous:
                raise ConfigError(f"fork {act.fork} is out of order in the schedule")
            missing = [f.name for f in FORKS[previous + 1:index] if not f.optional]
            if missing:
                raise ConfigError(
                    f"fork {act.fork} is scheduled but {missing[0]} is not "
                    "(forks activate in order)"
                )
            previous = index
            if FORKS_BY_NAME[act.fork].by_time:
                if act.at < last_time:
                    raise ConfigError(f"{act.fork} time {act.at} is before an earlier fork's {last_time}")
                last_time = act.at
            else:
                if act.at < last_block:
                    raise ConfigError(f"{act.fork} block {act.at} is before an earlier fork's {last_block}")
                last_block = act.at
            if act.blob_schedule is not None and act.fork not in BPO_FORKS:
                raise ConfigError(f"fork {act.fork} takes no blob schedule (only BPO forks do)")
        object.__setattr__(self, "_resolved", self._resolve())

    def _resolve(self) -> tuple[Fork, ...]:
        resolved = [FORKS[0]]
        for act in self.activations:
            fork = FORKS_BY_NAME[act.fork]
            if act.blob_schedule is not None:
                fork = replace(fork, vm_class=get_bpo_vm(resolved[-1].vm_class, fork.name, act.blob_schedule))
            resolved.append(fork)
        return tuple(resolved)

    @property
    def forks(self) -> tuple[Fork, ...]:
        """Frontier and the scheduled forks, oldest first, each with the VM it runs."""
        return self._resolved

    @property
    def last(self) -> Fork:
        """The newest fork of the schedule (its transaction types decode every older one)."""
        return self.forks[-1]

    def fork_at(self, number: int, timestamp: int) -> Fork:
        """The fork that executes a block with this number and timestamp."""
        current = self._resolved[0]
        for act, fork in zip(self.activations, self._resolved[1:], strict=True):
            if (timestamp if fork.by_time else number) < act.at:
                break
            current = fork
        return current

    def is_by_number(self, genesis_timestamp: int) -> bool:
        """True when no fork starts by timestamp after genesis (one VM per number range)."""
        return all(not FORKS_BY_NAME[a.fork].by_time or a.at <= genesis_timestamp
                   for a in self.activations)

    def vm_configuration(self, genesis_timestamp: int) -> tuple[tuple[int, Fork], ...]:
        """py-evm's ``vm_configuration`` (start block, fork), timestamp forks already active
        at genesis counted from block 0 and later ones left out (see :meth:`fork_at`)."""
        config: list[tuple[int, Fork]] = [(0, self._resolved[0])]
        for act, fork in zip(self.activations, self._resolved[1:], strict=True):
            if fork.by_time:
                if act.at > genesis_timestamp:
                    break
                start = 0
            else:
                start = act.at
            if config[-1][0] == start:
                config[-1] = (start, fork)
            else:
                config.append((start, fork))
        return tuple(config)

