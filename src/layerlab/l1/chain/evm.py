"""The py-evm adapter: the only module that talks to py-evm's chain and VM objects.

Execution uses the py-evm VM of each block's fork, from the chain config's fork schedule
(:mod:`layerlab.l1.chain.forks`; a new devnet runs
:data:`~layerlab.l1.chain.forks.DEFAULT_FORK` from genesis). py-evm picks VMs by block
number only; :class:`LayerlabMiningChain` picks them by number and timestamp, so Shanghai
and later forks activate at their time as in geth. Blocks are built with the batch path
``MiningChain.mine_all`` -> ``VM.apply_all_transactions``, which applies a whole list of
transactions against one state and computes the tries once; applying them one by one with
``MiningChain.apply_transaction`` rebuilds the block for every transaction and is
quadratic in the block size.

This module executes and stores; it never decides which transactions go in a block
(the builder does) nor which chain is canonical (the node and its consensus engine do).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import rlp
from eth._utils.db import apply_state_dict
from eth.abc import (
    BlockAPI,
    BlockHeaderAPI,
    BlockImportResult,
    BlockPersistResult,
    ComputationAPI,
    ReceiptAPI,
    SignedTransactionAPI,
    StateAPI,
)
from eth.chains.base import MiningChain
from eth.consensus.noproof import NoProofConsensus
from eth.constants import BLANK_ROOT_HASH
from eth.db.chain import BlockDataKey
from eth.db.schema import SchemaV1
from eth.exceptions import HeaderNotFound, TransactionNotFound
from eth.rlp.sedes import chain_gaps
from eth.vm.chain_context import ChainContext
from eth.vm.forks.cancun import CancunVM
from eth.vm.forks.cancun.constants import GAS_PER_BLOB
from eth.vm.forks.cancun.state import get_total_blob_gas
from eth.vm.forks.london.blocks import LondonBlockHeader
from eth.vm.forks.paris import ParisVM
from eth.vm.spoof import SpoofTransaction
from eth_utils.exceptions import ValidationError

from layerlab.errors import InvalidBlock, InvalidTransaction, StorageError
from layerlab.l1.chain import speedups
from layerlab.l1.chain.blockrlp import encode_block
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.chain.forks import Fork, ForkSchedule
from layerlab.l1.chain.osaka import (
    TX_GAS_LIMIT_CAP,
    BlobSchedule,
    OsakaVM,
    compute_blob_base_fee,
    compute_excess_blob_gas,
    get_blob_schedule,
)
from layerlab.l1.storage import NODE_PREFIX, ChainDB

log = logging.getLogger(__name__)

GENESIS_KEY = NODE_PREFIX + b"genesis-hash"
PRESTATE_PREFIX = NODE_PREFIX + b"prestate:"
"""Pre-state root of a block built on dev edits (its parent's root does not hold it)."""
MAX_TIMESTAMP = 2**64 - 1
RECENT_BLOCKS = 64
"""Blocks kept decoded in memory for RPC reads (the head and its recent ancestors)."""
EMPTY_BEACON_ROOT = b"\x00" * 32


@dataclass(frozen=True, slots=True)
class MinedBlock:
    """A block just sealed and stored, with what executing it produced."""

    block: BlockAPI
    receipts: tuple[ReceiptAPI, ...]
    computations: tuple[ComputationAPI, ...]


@dataclass(frozen=True, slots=True)
class CallRequest:
    """An ``eth_call`` / ``eth_estimateGas`` message: a transaction with no signature."""

    sender: bytes
    to: bytes  # b"" for contract creation
    data: bytes = b""
    value: int = 0
    gas: int | None = None
    gas_price: int = 0


speedups.install()


class _HeaderView:
    """The block header under construction, as seen by each transaction of the block.

    py-evm copies the whole header (an RLP object, deep-copied field by field) twice per
    transaction only to carry the running ``gas_used`` and ``blob_gas_used``; this view
    carries them in place and delegates every other field to the base header.
    """

    __slots__ = ("_base", "blob_gas_used", "gas_used")

    def __init__(self, base: BlockHeaderAPI) -> None:
        self._base = base
        self.gas_used = base.gas_used
        self.blob_gas_used = getattr(base, "blob_gas_used", 0)

    def __getattr__(self, name: str) -> Any:
        if name == "_base":
            raise AttributeError(name)
        return getattr(self._base, name)


class ReceiptCachingVM:
    """Mixed into every fork's py-evm VM: the block loop without its per-transaction header
    copies, keeping the receipts of the block executed last."""

    last_receipts: tuple[int, tuple[ReceiptAPI, ...]] = (-1, ())
    """Receipts of the block executed last (number, receipts): ``import_block`` hands them
    on instead of reading them back from the receipt trie (the node is single-threaded)."""

    def apply_all_transactions(
        self: Any, transactions: Sequence[SignedTransactionAPI], base_header: BlockHeaderAPI
    ) -> tuple[BlockHeaderAPI, tuple[ReceiptAPI, ...], tuple[ComputationAPI, ...]]:
        if base_header.block_number != self.get_header().block_number:
            raise ValidationError(
                f"This VM instance must only work on block #{self.get_header().block_number}, "
                f"but the target header has block #{base_header.block_number}"
            )
        view = _HeaderView(base_header)
        has_blobs = hasattr(base_header, "blob_gas_used")
        bloom = int(base_header.bloom)
        receipts: list[ReceiptAPI] = []
        computations: list[ComputationAPI] = []
        for transaction in transactions:
            # (py-evm snapshots the state before each transaction only to undo it on
            # EVMMissingData, which a node holding its whole state never raises)
            receipt, computation = self.apply_transaction(view, transaction)  # type: ignore[arg-type]
            bloom |= int(receipt.bloom)
            view.gas_used = receipt.gas_used
            if has_blobs:
                view.blob_gas_used += get_total_blob_gas(transaction)
            receipts.append(receipt)
            computations.append(computation)
        if has_blobs:
            header = base_header.copy(
                gas_used=view.gas_used, bloom=bloom, blob_gas_used=view.blob_gas_used
            )
        else:
            header = base_header.copy(gas_used=view.gas_used, bloom=bloom)
        ReceiptCachingVM.last_receipts = (header.block_number, tuple(receipts))
        return header, tuple(receipts), tuple(computations)


_LAYERLAB_VMS: dict[type, type] = {}


def layerlab_vm(vm_class: type[Any]) -> type[Any]:
    """``vm_class`` with :class:`ReceiptCachingVM` mixed in (one class per VM class).

    Seals of pre-merge VMs are not checked by py-evm (no Ethash): the consensus engine
    seals and checks blocks, execution only executes them.
    """
    made = _LAYERLAB_VMS.get(vm_class)
    if made is None:
        attrs: dict[str, Any] = {"__module__": __name__}
        if not issubclass(vm_class, ParisVM):
            attrs["consensus_class"] = NoProofConsensus
        made = type(f"Layerlab{vm_class.__name__}", (ReceiptCachingVM, vm_class), attrs)
        _LAYERLAB_VMS[vm_class] = made
    return made


LayerlabCancunVM = layerlab_vm(CancunVM)


class LayerlabMiningChain(MiningChain):
    """py-evm's MiningChain minus work repeated on the block-building hot path.

    ``mine_all`` in py-evm validates the block it has just built and validated, and
    ``persist_block`` then re-reads every new canonical block from its tries. Here a
    block built locally is validated once (by the VM) and handed back as built.

    VMs are chosen from ``fork_schedule`` by a header's number and timestamp. When no fork
    starts by timestamp after genesis, py-evm's own ``vm_configuration`` (by number) says
    the same and is used as is; otherwise a block number is resolved through the timestamp
    of the canonical header at that number (or the head's, for a number not yet mined).
    """

    fork_schedule: ForkSchedule = ForkSchedule.from_genesis()
    genesis_timestamp: int = 0
    by_number: bool = True

    @classmethod
    def get_fork(cls, number: int, timestamp: int) -> Fork:
        return cls.fork_schedule.fork_at(number, timestamp)

    @classmethod
    def vm_at(cls, number: int, timestamp: int) -> type[Any]:
        """The VM class executing a block with this number and timestamp."""
        return layerlab_vm(cls.get_fork(number, timestamp).vm_class)

    @classmethod
    def last_vm(cls) -> type[Any]:
        """The VM of the schedule's newest fork (its builders decode every older type)."""
        return layerlab_vm(cls.fork_schedule.last.vm_class)

    @classmethod
    def get_vm_class(cls, header: BlockHeaderAPI) -> type[Any]:
        return cls.vm_at(header.block_number, header.timestamp)

    def get_vm_class_for_block_number(self, block_number: int) -> type[Any]:  # type: ignore[override]
        if self.by_number:
            return super().get_vm_class_for_block_number(block_number)  # type: ignore[arg-type,no-any-return]
        try:
            timestamp = self.chaindb.get_canonical_block_header_by_number(block_number).timestamp  # type: ignore[arg-type]
        except HeaderNotFound:
            timestamp = self.chaindb.get_canonical_head().timestamp
        return self.vm_at(block_number, timestamp)

    def get_vm(self, at_header: BlockHeaderAPI | None = None) -> Any:
        header = self.ensure_header(self.header if at_header is None else at_header)
        return self.get_vm_class(header)(
            header=header,
            chaindb=self.chaindb,
            chain_context=ChainContext(self.chain_id),
            consensus_context=self.consensus_context,
        )

    def create_header_from_parent(self, parent_header: BlockHeaderAPI, **header_params: Any
                                  ) -> BlockHeaderAPI:
        """The child header under the fork active at the child's number and timestamp;
        parameters its fork's header has no field for (e.g. a beacon root before Cancun)
        are dropped."""
        number = parent_header.block_number + 1
        if self.by_number:
            vm_class = self.get_vm_class_for_block_number(number)
        else:
            if header_params.get("timestamp") is None:  # py-evm's default, or the import's
                importing = self._importing
                header_params["timestamp"] = importing[1] if importing and \
                    importing[0] == parent_header.hash else max(parent_header.timestamp + 1,
                                                                int(time.time()))
            vm_class = self.vm_at(number, header_params["timestamp"])
        fields = _header_fields(vm_class)
        params = {k: v for k, v in header_params.items() if k in fields}
        return vm_class.create_header_from_parent(parent_header, **params)  # type: ignore[no-any-return]

    _importing: tuple[bytes, int] | None = None
    """(parent hash, timestamp) of the block being imported."""

    def import_block(self, block: BlockAPI, perform_validation: bool = True) -> Any:
        """py-evm's ``import_block``, whose empty header for the import (made by
        ``create_header_from_parent`` without a timestamp) takes the block's own timestamp,
        so the VM importing it is the block's fork, not the fork of "now"."""
        self._importing = (bytes(block.header.parent_hash), int(block.header.timestamp))
        try:
            return super().import_block(block, perform_validation)
        finally:
            self._importing = None

    def persist_block(
        self, block: BlockAPI, perform_validation: bool = True
    ) -> BlockPersistResult:
        if perform_validation:
            self.validate_block(block)
        new_hashes, old_hashes = self.chaindb.persist_block(block)
        return BlockPersistResult(
            imported_block=block,
            new_canonical_blocks=tuple(
                block if h == block.hash else self.get_block_by_hash(h) for h in new_hashes
            ),
            old_canonical_blocks=tuple(self.get_block_by_hash(h) for h in old_hashes),
        )

    def mine_all(
        self,
        transactions: Sequence[SignedTransactionAPI],
        *args: Any,
        parent_header: BlockHeaderAPI | None = None,
        withdrawals: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> tuple[BlockImportResult, tuple[ReceiptAPI, ...], tuple[ComputationAPI, ...]]:
        base_header: BlockHeaderAPI = (
            self.get_vm().get_header() if parent_header is None
            else self.create_header_from_parent(parent_header)
        )
        block, receipts, computations = self.build_all(
            transactions, base_header, withdrawals, *args, **kwargs
        )
        persisted = self.persist_block(block, perform_validation=False)
        self.header = self.create_header_from_parent(block.header)
        return BlockImportResult(*persisted, None), receipts, computations  # type: ignore[arg-type]

    def build_all(
        self,
        transactions: Sequence[SignedTransactionAPI],
        base_header: BlockHeaderAPI,
        withdrawals: Sequence[Any] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[BlockAPI, tuple[ReceiptAPI, ...], tuple[ComputationAPI, ...]]:
        """Execute ``transactions`` (and EIP-4895 ``withdrawals``) on ``base_header``'s parent
        state and return the finished block without storing it (a sealer may still change
        its ``extra_data``, which no opcode reads)."""
        custom_header = self._custom_header(base_header, **kwargs)
        vm = self.get_vm(custom_header)
        new_header, receipts, computations = vm.apply_all_transactions(transactions, base_header)
        if withdrawals:
            vm.apply_all_withdrawals(withdrawals)
        filled = vm.set_block_transactions_and_withdrawals(
            vm.get_block(), new_header, transactions, receipts, withdrawals=withdrawals
        )
        result = vm.mine_block(filled, *args, **kwargs)  # packs, finalizes and validates
        return result.block, receipts, computations


@dataclass(frozen=True, slots=True)
class AccountOverride:
    """One account of an ``eth_call`` state-override set.

    ``state`` replaces the whole storage; ``state_diff`` changes only the given slots.
    """

    address: bytes
    balance: int | None = None
    nonce: int | None = None
    code: bytes | None = None
    state: tuple[tuple[int, int], ...] | None = None
    state_diff: tuple[tuple[int, int], ...] = ()


def apply_account_override(state: StateAPI, override: AccountOverride) -> None:
    address = override.address
    if override.balance is not None:
        state.set_balance(address, override.balance)
    if override.nonce is not None:
        state.set_nonce(address, override.nonce)
    if override.code is not None:
        state.set_code(address, override.code)
    if override.state is not None:
        state.delete_storage(address)
        for slot, value in override.state:
            state.set_storage(address, slot, value)
    for slot, value in override.state_diff:
        state.set_storage(address, slot, value)


_FIELDS: dict[type, frozenset[str]] = {}


def _header_class(vm_class: type[Any]) -> Any:
    return dict(vm_class.get_block_class()._meta.fields)["header"]


def _header_fields(vm_class: type[Any]) -> frozenset[str]:
    fields = _FIELDS.get(vm_class)
    if fields is None:
        fields = _FIELDS[vm_class] = frozenset(_header_class(vm_class)._meta.field_names)
    return fields


def make_chain_class(chain_id: int, schedule: ForkSchedule | None = None,
                     genesis_timestamp: int = 0) -> type[LayerlabMiningChain]:
    """A py-evm MiningChain class on ``chain_id`` running ``schedule``'s forks (default:
    :data:`~layerlab.l1.chain.forks.DEFAULT_FORK` from genesis)."""
    schedule = schedule or ForkSchedule.from_genesis()
    vm_configuration = tuple(
        (start, layerlab_vm(fork.vm_class))
        for start, fork in schedule.vm_configuration(genesis_timestamp)
    )
    chain_class: type[LayerlabMiningChain] = LayerlabMiningChain.configure(
        __name__="LayerlabChain",
        vm_configuration=vm_configuration,
        chain_id=chain_id,
        fork_schedule=schedule,
        genesis_timestamp=genesis_timestamp,
        by_number=schedule.is_by_number(genesis_timestamp),
    )
    return chain_class


class EvmChain:
    """A py-evm chain on a layerlab database: genesis, block building, reads, calls.

    Opening a database that already holds a chain resumes it (its genesis must match the
    config, or :class:`StorageError` is raised); an empty database gets a new genesis.
    """

    def __init__(self, config: ChainConfig, db: ChainDB) -> None:
        self.config = config
        self.db = db
        stored = db.get(GENESIS_KEY)
        if stored is None:
            config = config.with_timestamp()
            self.config = config
            self._chain_class = make_chain_class(config.chain_id, config.forks,
                                                 config.genesis_timestamp)
            header = build_genesis(db, config, self._chain_class)
            self.chain = self._chain_class.from_genesis_header(db, header)  # type: ignore[assignment]
            db[GENESIS_KEY] = self.chain.get_canonical_block_header_by_number(0).hash
        else:
            genesis_timestamp = _stored_genesis_timestamp(db, config)
            self._chain_class = make_chain_class(config.chain_id, config.forks, genesis_timestamp)
            self.chain = self._chain_class(db)  # type: ignore[assignment]
            genesis = self.chain.get_canonical_block_header_by_number(0)
            if genesis.hash != stored:
                raise StorageError("data dir holds a different chain (genesis hash mismatch)")
        self._recent: OrderedDict[bytes, BlockAPI] = OrderedDict()
        self._sizes: dict[bytes, int] = {}
        self._receipts: OrderedDict[bytes, tuple[ReceiptAPI, ...]] = OrderedDict()
        last = self._chain_class.last_vm()
        self.tx_builder = last.get_transaction_builder()
        """Decodes every transaction type of the schedule's newest fork (the block's own
        VM then refuses a type its fork does not have yet)."""
        self.receipt_builder = last.get_receipt_builder()
        self._genesis_has_base_fee = hasattr(self.genesis_header, "base_fee_per_gas")

    @property
    def genesis_header(self) -> BlockHeaderAPI:
        return self.chain.get_canonical_block_header_by_number(0)

    def get_vm_class(self, header: BlockHeaderAPI) -> type[Any]:
        """The VM class (fork) executing ``header``'s block."""
        return self.vm_class_at(header.block_number, header.timestamp)

    def vm_class_at(self, number: int, timestamp: int) -> type[Any]:
        """The VM class (fork) executing a block with this number and timestamp."""
        return self._chain_class.vm_at(number, timestamp)

    def max_call_gas(self, header: BlockHeaderAPI) -> int:
        """The gas a call on ``header``'s block may have by default: the block's gas limit,
        from Osaka no more than EIP-7825's transaction cap."""
        if issubclass(self.get_vm_class(header), OsakaVM):
            return min(int(header.gas_limit), TX_GAS_LIMIT_CAP)
        return int(header.gas_limit)

    # -- blob figures, per fork (EIP-4844, EIP-7691, EIP-7892, EIP-7918) -----------------
    def get_blob_schedule(self, number: int, timestamp: int) -> BlobSchedule | None:
        """The blob schedule of a block with this number and timestamp (None before Cancun)."""
        return get_blob_schedule(self.vm_class_at(number, timestamp))

    def get_blob_base_fee(self, header: BlockHeaderAPI) -> int:
        """The blob base fee of ``header``'s own block, under its fork's update fraction."""
        schedule = self.get_blob_schedule(header.block_number, header.timestamp)
        if schedule is None:
            return 0
        return compute_blob_base_fee(int(getattr(header, "excess_blob_gas", 0)), schedule)

    def get_next_blob_base_fee(self, parent: BlockHeaderAPI, timestamp: int) -> int:
        """The blob base fee of a child of ``parent`` with this timestamp: its excess blob
        gas as the child's fork computes it (EIP-7918 from Osaka), priced by its fraction."""
        vm_class = self.vm_class_at(parent.block_number + 1, timestamp)
        schedule = get_blob_schedule(vm_class)
        if schedule is None:
            return 0
        bounded = bool(getattr(vm_class, "blob_base_fee_bounded_by_execution_cost", False))
        return compute_blob_base_fee(compute_excess_blob_gas(parent, schedule, bounded), schedule)

    def get_max_blob_gas(self, number: int, timestamp: int) -> int:
        """The most blob gas a block with this number and timestamp may use."""
        schedule = self.get_blob_schedule(number, timestamp)
        return 0 if schedule is None else GAS_PER_BLOB * schedule.max

    def _gas_limit(self, parent: BlockHeaderAPI, timestamp: int) -> int:
        """The gas limit of a child of ``parent``: the config's, except on a chain that
        started before London, where the first London block doubles the parent's (EIP-1559
        elasticity) and later blocks move toward twice the config's by the 1/1024 rule."""
        if self._genesis_has_base_fee:
            return self.config.gas_limit
        london = "base_fee_per_gas" in _header_fields(
            self._chain_class.vm_at(parent.block_number + 1, timestamp))
        if london and not hasattr(parent, "base_fee_per_gas"):
            return int(parent.gas_limit) * 2
        target = self.config.gas_limit * (2 if london else 1)
        step = int(parent.gas_limit) // 1024 - 1
        return int(max(parent.gas_limit - step, min(parent.gas_limit + step, target)))

    # -- reads ---------------------------------------------------------------------------
    @property
    def head(self) -> BlockHeaderAPI:
        return self.chain.get_canonical_head()

    @property
    def genesis_hash(self) -> bytes:
        return bytes(self.chain.get_canonical_block_header_by_number(0).hash)

    def get_header_by_number(self, number: int) -> BlockHeaderAPI | None:
        try:
            return self.chain.get_canonical_block_header_by_number(number)
        except HeaderNotFound:
            return None

    def get_header_by_hash(self, block_hash: bytes) -> BlockHeaderAPI | None:
        try:
            header = self.chain.get_block_header_by_hash(block_hash)
        except HeaderNotFound:
            return None
        return header

    def get_block(self, header: BlockHeaderAPI) -> BlockAPI:
        """The block of ``header``; recent blocks come from memory, not from their tries."""
        block = self._recent.get(header.hash)
        if block is None:
            block = self.chain.get_block_by_header(header)
            self._remember(block)
        return block

    def get_block_size(self, header: BlockHeaderAPI) -> int:
        """Length of the block's RLP encoding (the ``size`` field of ``eth_getBlock*``)."""
        size = self._sizes.get(header.hash)
        if size is None:
            size = self._sizes[header.hash] = len(encode_block(self.get_block(header)))
        return size

    def _remember(self, block: BlockAPI) -> None:
        self._recent[block.hash] = block
        while len(self._recent) > RECENT_BLOCKS:
            evicted, _ = self._recent.popitem(last=False)
            self._sizes.pop(evicted, None)

    def get_receipts(self, header: BlockHeaderAPI) -> tuple[ReceiptAPI, ...]:
        """The block's receipts; those of recent blocks are kept decoded.

        Reading them from the receipt trie costs about 0.25 ms a receipt (0.5 s for a
        2,000-transfer block), and ``eth_getTransactionReceipt`` needs all of a block's
        receipts (gas used and log indexes depend on the earlier ones), so without the
        cache reading each receipt of a big block was a trie walk over the whole block.
        Keyed by block hash, which fixes the receipts (the header commits to their root).
        """
        receipts = self._receipts.get(header.hash)
        if receipts is None:
            builder = self.get_vm_class(header).get_receipt_builder()
            receipts = tuple(self.chain.chaindb.get_receipts(header, builder))
            self._receipts[header.hash] = receipts
            while len(self._receipts) > RECENT_BLOCKS:  # oldest read first out, as blocks
                self._receipts.popitem(last=False)
        return receipts

    def get_transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """``(block_number, index)`` of a canonical transaction, or None."""
        try:
            number, index = self.chain.chaindb.get_transaction_index(tx_hash)
        except TransactionNotFound:
            return None
        return int(number), int(index)

    def get_pre_state_root(self, header: BlockHeaderAPI) -> bytes:
        """The state root ``header``'s block was executed on: its parent's, or the dev-edited
        root recorded when it was built on ``anvil_set*`` edits."""
        recorded = self.db.get(PRESTATE_PREFIX + header.hash)
        if recorded is not None:
            return bytes(recorded)
        parent = self.get_header_by_hash(header.parent_hash)
        if parent is None:
            raise InvalidBlock(f"parent of block {header.block_number} is unknown")
        return bytes(parent.state_root)

    def get_state(self, header: BlockHeaderAPI | None = None) -> StateAPI:
        """The post-state of ``header`` (default: the head), read-only by convention."""
        return self.chain.get_vm(header or self.head).state

    # -- writes --------------------------------------------------------------------------
    def mine(
        self,
        transactions: Sequence[SignedTransactionAPI],
        *,
        timestamp: int,
        coinbase: bytes = b"\x00" * 20,
        state_root: bytes | None = None,
    ) -> MinedBlock:
        """Execute ``transactions`` in order on top of the head and store the sealed block.

        Raises :class:`InvalidTransaction` if any transaction is invalid at its position
        (the builder pre-checks, so this means a state-dependent failure), leaving the
        chain unchanged.
        """
        parent = self.head
        if timestamp <= parent.timestamp:
            raise InvalidBlock(
                f"timestamp {timestamp} must exceed parent timestamp {parent.timestamp}"
            )
        if timestamp > MAX_TIMESTAMP:
            raise InvalidBlock(f"timestamp {timestamp} exceeds the header's uint64 range")
        header = self.chain.create_header_from_parent(
            parent,
            timestamp=timestamp,
            gas_limit=self._gas_limit(parent, timestamp),
            coinbase=coinbase,
            parent_beacon_block_root=EMPTY_BEACON_ROOT,
        )
        if state_root is not None:  # dev edits (anvil_setBalance...) since the head
            header = header.copy(state_root=state_root)
        self.chain.header = header
        try:
            result, receipts, computations = self.chain.mine_all(
                list(transactions), coinbase=coinbase
            )
        except ValidationError as exc:
            self.chain.header = self.chain.create_header_from_parent(parent)
            raise InvalidTransaction("invalid-in-block", str(exc)) from exc
        block = result.imported_block
        if state_root is not None:
            self.db[PRESTATE_PREFIX + block.hash] = state_root
        if all(type(tx).__module__.startswith("eth.") for tx in transactions):
            # blocks holding wrapped (e.g. impersonated) transactions are re-read from disk
            self._remember(block)
        return MinedBlock(block, tuple(receipts), tuple(computations))

    def filter_applicable(
        self, transactions: Sequence[SignedTransactionAPI], *, timestamp: int,
        state_root: bytes | None = None,
    ) -> list[SignedTransactionAPI]:
        """The subsequence of ``transactions`` that applies in order on top of the head.

        The slow path, used only when a batch fails in :meth:`mine`: each transaction is
        tried against a scratch state and kept only if it is valid at its position.
        """
        parent = self.head
        header = self.chain.create_header_from_parent(
            parent, timestamp=timestamp, gas_limit=self._gas_limit(parent, timestamp),
            parent_beacon_block_root=EMPTY_BEACON_ROOT,
        )
        if state_root is not None:
            header = header.copy(state_root=state_root)
        vm = self.chain.get_vm(header)
        state = vm.state
        good = []
        for tx in transactions:
            snapshot = state.snapshot()
            try:
                vm.validate_transaction_against_header(header, tx)
                state.apply_transaction(tx)
            except ValidationError as exc:
                log.info("dropping tx 0x%s: %s", bytes(tx.hash).hex(), exc)
                state.revert(snapshot)
                continue
            state.commit(snapshot)
            good.append(tx)
        return good

    def rewind(self, number: int) -> list[BlockAPI]:
        """Make canonical block ``number`` the head again; return the blocks dropped.

        Used by ``evm_revert``. Dropped blocks stay in the database as non-canonical
        (their hashes still resolve), as an orphaned fork would.
        """
        head = self.head
        target = self.get_header_by_number(number)
        if target is None or number > head.block_number:
            raise InvalidBlock(f"cannot rewind to block {number}: head is {head.block_number}")
        _, removed = self.set_head(target.hash)
        return removed

    @staticmethod
    def _contiguous_gaps(head_number: int) -> dict[bytes, bytes]:
        """py-evm's chain-gap records for a canonical chain that runs without a hole from
        genesis to ``head_number``: no gaps, and the tip's child at ``head_number + 1``.

        They must follow every head the fork choice sets, up as well as down. Left behind
        (for example at a lower tip after a reorg to a shorter, heavier branch, then a move
        up again), py-evm takes a later side block at a height it believes open for a gap
        fill, writes it into the canonical number index and drops the head's descendants
        there, while the head pointer stays put (found by the fork-choice property test).
        """
        gaps = rlp.encode(((), head_number + 1), sedes=chain_gaps)
        return {SchemaV1.make_header_chain_gaps_lookup_key(): gaps,
                SchemaV1.make_chain_gaps_lookup_key(): gaps}

    def import_block(self, block: BlockAPI) -> MinedBlock:
        """Validate and execute a block made elsewhere (chain import, peers).

        The block may extend any known block, not only the head; py-evm re-executes it on
        its parent's state and refuses it (storing nothing) unless the state, receipt and
        transaction roots, gas used and bloom all match the header.
        """
        ReceiptCachingVM.last_receipts = (-1, ())
        try:
            result = self.chain.import_block(block)
        except HeaderNotFound as exc:
            raise InvalidBlock(f"block {block.number} has an unknown parent") from exc
        except ValidationError as exc:
            raise InvalidBlock(f"block {block.number} rejected: {exc}") from exc
        imported = result.imported_block
        number, receipts = ReceiptCachingVM.last_receipts
        if number != imported.number or len(receipts) != len(imported.transactions):
            receipts = self.get_receipts(imported.header)
        self._remember(imported)
        return MinedBlock(imported, receipts, ())

    def build(
        self,
        transactions: Sequence[SignedTransactionAPI],
        *,
        parent: BlockHeaderAPI,
        timestamp: int,
        coinbase: bytes,
        mix_hash: bytes = b"\x00" * 32,
        withdrawals: Sequence[Any] = (),
        parent_beacon_block_root: bytes = EMPTY_BEACON_ROOT,
    ) -> tuple[BlockAPI, tuple[ReceiptAPI, ...]]:
        """Execute a block on ``parent`` without storing it, for a consensus engine to seal.

        ``mix_hash`` is the header's ``prevRandao`` (EIP-4399), which the PREVRANDAO opcode
        reads, so it is fixed before execution; ``extra_data`` is left for the seal.
        Raises :class:`InvalidTransaction` if a transaction does not apply.
        """
        if timestamp <= parent.timestamp:
            raise InvalidBlock(f"timestamp {timestamp} must exceed parent timestamp {parent.timestamp}")
        header = self.chain.create_header_from_parent(
            parent, timestamp=timestamp, gas_limit=self._gas_limit(parent, timestamp), coinbase=coinbase,
            mix_hash=mix_hash, parent_beacon_block_root=parent_beacon_block_root,
        )
        chain: Any = self.chain
        try:
            block, receipts, _ = chain.build_all(list(transactions), header, list(withdrawals) or None)
        except ValidationError as exc:
            raise InvalidTransaction("invalid-in-block", str(exc)) from exc
        return block, receipts

    def persist_sealed(self, block: BlockAPI) -> None:
        """Store a block built by :meth:`build` and sealed; it does not choose the head."""
        self.chain.persist_block(block, perform_validation=False)
        self._remember(block)

    def has_block(self, block_hash: bytes) -> bool:
        return self.get_header_by_hash(block_hash) is not None

    def branch_diff(self, old: bytes, new: bytes) -> tuple[list[BlockAPI], list[BlockAPI]]:
        """Blocks leaving and joining the chain when the head moves from ``old`` to ``new``:
        ``(removed, added)``, oldest first, found by walking parent hashes back to the
        common ancestor (so it does not depend on which blocks are marked canonical)."""
        a, b = self.get_header_by_hash(old), self.get_header_by_hash(new)
        if a is None or b is None:
            raise InvalidBlock("branch_diff over an unknown block")
        removed: list[BlockAPI] = []
        added: list[BlockAPI] = []
        while a.hash != b.hash:
            if a.block_number >= b.block_number:
                removed.append(self.get_block(a))
                a = self.get_header_by_hash(a.parent_hash)  # type: ignore[assignment]
            else:
                added.append(self.get_block(b))
                b = self.get_header_by_hash(b.parent_hash)  # type: ignore[assignment]
            if a is None or b is None:
                raise InvalidBlock("branch_diff reached a block with no stored parent")
        removed.reverse()
        added.reverse()
        return removed, added

    def set_head(self, block_hash: bytes, previous: bytes | None = None
                 ) -> tuple[list[BlockAPI], list[BlockAPI]]:
        """Make ``block_hash`` the canonical head (the fork choice's decision, as
        ``engine_forkchoiceUpdated`` tells an Ethereum execution client).

        ``previous`` is the head the caller last chose (default: the stored head). py-evm
        also moves the canonical head by itself when it stores a longer branch, and then
        leaves the transaction lookups of the blocks it drops behind (its
        ``_decanonicalize_old_headers`` is never called in py-evm 0.12), so both what the
        caller had and what py-evm made of it are undone here.

        Returns ``(added, removed)`` relative to ``previous``, oldest first, so the node
        can move transactions between the chain and the pool. The canonical number index
        and transaction lookups are rewritten in one batch.
        """
        stored = self.head
        previous = previous or bytes(stored.hash)
        target = self.get_header_by_hash(block_hash)
        if target is None:
            raise InvalidBlock(f"cannot set head to unknown block 0x{block_hash.hex()}")
        removed, added = self.branch_diff(previous, block_hash)
        if stored.hash == block_hash and not removed and not added:
            # the head stays; py-evm may still have moved its gap records for a side block
            gaps = self._contiguous_gaps(target.block_number)
            if any(self.db.get(key) != value for key, value in gaps.items()):
                self.db.write_many(gaps, [])
            return [], []
        removed_b, added_b = (removed, added) if stored.hash == previous else \
            self.branch_diff(bytes(stored.hash), block_hash)
        rewrite = added_b if len(added_b) > len(added) else added
        drop = {bytes(b.hash): b for b in (*removed, *removed_b)}
        puts: dict[bytes, bytes] = {SchemaV1.make_canonical_head_hash_lookup_key(): target.hash}
        deletes: set[bytes] = set()
        for block in drop.values():
            if block.number > target.block_number:
                deletes.add(SchemaV1.make_block_number_to_hash_lookup_key(block.number))
            deletes.update(SchemaV1.make_transaction_hash_to_block_lookup_key(tx.hash)
                           for tx in block.transactions)
        puts.update(self._contiguous_gaps(target.block_number))
        for block in rewrite:
            puts[SchemaV1.make_block_number_to_hash_lookup_key(block.number)] = \
                rlp.encode(block.hash, sedes=rlp.sedes.binary)
            for index, tx in enumerate(block.transactions):
                tx_key = SchemaV1.make_transaction_hash_to_block_lookup_key(tx.hash)
                puts[tx_key] = rlp.encode(BlockDataKey(block.number, index))
                deletes.discard(tx_key)
        self.db.write_many(puts, sorted(deletes))
        self.chain.header = self.chain.create_header_from_parent(target)
        return added, removed

    def decode_block(self, encoded: bytes) -> BlockAPI:
        """Decode a block as its fork encodes it (found from its header's number and time)."""
        if len(self._chain_class.fork_schedule.forks) == 1 or \
                self._chain_class.fork_schedule == ForkSchedule.from_genesis(
                    self._chain_class.fork_schedule.last.name):
            return self.decode_block_bytes(encoded, self._chain_class.last_vm())
        try:
            fields = rlp.decode(encoded)[0]
            number, timestamp = int.from_bytes(fields[8], "big"), int.from_bytes(fields[11], "big")
        except (rlp.DecodingError, IndexError, TypeError) as exc:
            raise InvalidBlock(f"cannot decode block RLP: {exc}") from exc
        return self.decode_block_bytes(encoded, self._chain_class.vm_at(number, timestamp))

    @staticmethod
    def decode_block_bytes(encoded: bytes, vm_class: type[Any] = CancunVM) -> BlockAPI:
        try:
            return rlp.decode(encoded, sedes=vm_class.get_block_class())  # type: ignore[no-any-return]
        except (rlp.DecodingError, rlp.DeserializationError, ValueError) as exc:
            raise InvalidBlock(f"cannot decode block RLP: {exc}") from exc

    # -- calls ---------------------------------------------------------------------------
    def _spoof(self, state: StateAPI, request: CallRequest, gas: int,
               vm_class: type[Any] = CancunVM) -> SpoofTransaction:
        unsigned = vm_class.create_unsigned_transaction(
            nonce=state.get_nonce(request.sender),
            gas_price=request.gas_price,
            gas=gas,
            to=request.to,
            value=request.value,
            data=request.data,
        )
        return SpoofTransaction(unsigned, from_=request.sender)

    @contextmanager
    def costless_state(self, header: BlockHeaderAPI | None = None) -> Iterator[StateAPI]:
        """A throwaway state on top of ``header`` with base fee 0 (as geth's eth_call)."""
        with self.chain.get_vm(header or self.head).in_costless_state() as state:
            yield state

    def call(self, request: CallRequest, header: BlockHeaderAPI | None = None,
             overrides: Sequence[AccountOverride] = ()) -> ComputationAPI:
        """Execute a message against the post-state of ``header``; state is discarded.

        ``overrides`` replace accounts' balance, nonce, code or storage for this call only
        (geth's ``eth_call`` state-override set).
        """
        at = header or self.head
        gas = request.gas if request.gas is not None else self.max_call_gas(at)
        with self.costless_state(at) as state:
            for override in overrides:
                apply_account_override(state, override)
            tx = self._spoof(state, request, gas, self.get_vm_class(at))
            try:
                return state.apply_transaction(tx)
            except ValidationError as exc:
                raise InvalidTransaction("invalid-call", str(exc)) from exc

    def estimate_gas(self, request: CallRequest, header: BlockHeaderAPI | None = None) -> int:
        """Smallest gas limit with which the message succeeds (binary search, as geth).

        Returns -1 when it fails even with the full gas allowance (the caller then
        reports the failure itself, e.g. the revert reason).
        """
        at = header or self.head
        hi = request.gas if request.gas is not None else self.max_call_gas(at)

        def fails(gas: int) -> bool:
            try:
                return bool(self.call(_with_gas(request, gas), at).is_error)
            except InvalidTransaction:
                return True

        probe = self.call(_with_gas(request, hi), at)
        if probe.is_error:
            return -1
        lo = max(20_999, int(probe.get_gas_used()) - 1)
        if not fails(lo + 1):
            return lo + 1
        # failure at lo, success at hi: search the boundary
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if fails(mid):
                lo = mid
            else:
                hi = mid
        return hi


def _with_gas(request: CallRequest, gas: int) -> CallRequest:
    from dataclasses import replace

    return replace(request, gas=gas)


def build_genesis(db: ChainDB, config: ChainConfig, chain_class: type[LayerlabMiningChain]
                  ) -> BlockHeaderAPI:
    """Write the genesis state of ``config`` into ``db`` and return the genesis header.

    The header is built field by field as geth's ``Genesis.toBlockWithRoot`` does: the
    header of the fork active at genesis, a base fee from London, an empty withdrawals root
    from Shanghai, blob fields and a zero beacon root from Cancun, the empty requests hash
    (EIP-7685) from Prague. (py-evm's ``create_genesis_header`` would refuse a difficulty
    on a post-merge genesis, which geth files such as Holesky's have.)
    """
    vm_class = chain_class.vm_at(0, config.genesis_timestamp)
    pre_genesis = LondonBlockHeader(difficulty=0, block_number=-1, gas_limit=0)
    state = vm_class.build_state(db, pre_genesis, ChainContext(config.chain_id))
    apply_state_dict(state, {
        address: {"balance": acct.balance, "nonce": acct.nonce, "code": acct.code,
                  "storage": dict(acct.storage)}
        for address, acct in config.genesis_alloc().items()
    })
    state.persist()
    h = config.header
    params: dict[str, Any] = {
        "difficulty": h.difficulty, "block_number": 0, "gas_limit": config.gas_limit,
        "timestamp": config.genesis_timestamp, "coinbase": h.coinbase,
        "parent_hash": h.parent_hash, "state_root": state.state_root,
        "extra_data": h.extra_data, "mix_hash": h.mix_hash, "nonce": h.nonce,
        "base_fee_per_gas": config.base_fee_per_gas, "excess_blob_gas": h.excess_blob_gas,
        "blob_gas_used": h.blob_gas_used,
        # geth's genesis beacon root is zero (EIP-4788); the devnet's own genesis keeps
        # py-evm's default (the empty trie root), so that existing data dirs still open
        "parent_beacon_block_root": EMPTY_BEACON_ROOT if config.fixed_genesis else BLANK_ROOT_HASH,
    }
    fields = _header_fields(vm_class)
    return _header_class(vm_class)(**{k: v for k, v in params.items() if k in fields})  # type: ignore[no-any-return]


def _stored_genesis_timestamp(db: ChainDB, config: ChainConfig) -> int:
    """The timestamp of the genesis stored in ``db`` (the config's may be "now")."""
    from eth.db.header import HeaderDB

    try:
        return int(HeaderDB(db).get_canonical_block_header_by_number(0).timestamp)  # type: ignore[arg-type]
    except HeaderNotFound:
        return config.genesis_timestamp
