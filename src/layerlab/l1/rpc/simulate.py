"""``eth_simulateV1``: calls packed into simulated blocks on top of a block's state.

The execution-apis method (``eth_simulateV1``, as geth's ``internal/ethapi/simulate.go``
serves it): ``{blockStateCalls: [{blockOverrides, stateOverrides, calls}], validation,
traceTransfers, returnFullTransactions}`` and a block. Each entry becomes one block on
top of the previous one; its state overrides apply before its calls, and each call sees
the state every earlier call (of this block or an earlier one) left. The result is one
block object per simulated block, as ``eth_getBlockByNumber`` shapes it, with ``calls``:
``{status, returnData, gasUsed, maxUsedGas, logs, error?}``.

As in geth:

- block numbers default to the parent's plus one and timestamps to the parent's plus 12;
  a gap in the numbers is filled with empty blocks; numbers and timestamps must increase
  (-38020, -38021); at most 256 blocks (-38026);
- without ``validation`` the base fee is 0 (unless overridden), the nonce is not checked
  and fees default to 0; with it, nonces (-38010, -38011) and the fee cap against the base
  fee (-38012) are checked; either way the sender must afford gas and value (-38014), the
  gas must cover the intrinsic cost (-38013) and fit in the block (-38015);
- a call's gas defaults to what is left of the block's (capped by EIP-7825 from Osaka);
- ``traceTransfers`` adds an ERC-7528 log (address ``0xeeee...ee``, topic
  ``Transfer(address,address,uint256)``, from, to, data the value) for every value
  transfer of a call or a create, in execution order among the real logs, and drops those
  of reverted frames with them.

The simulated state lives in a write buffer over the node's database that is never
committed: the chain and its state are never changed. (Not done: ``movePrecompileToAddress``,
blob transactions, the EIP-4788 and EIP-2935 system calls at the start of each block, and
transfer logs of SELFDESTRUCT.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import rlp
from eth.abc import BlockHeaderAPI, ComputationAPI, MessageAPI, StateAPI
from eth.db.atomic import AtomicDB
from eth.db.batch import BatchDB
from eth.db.trie import make_trie_root_and_nodes
from eth.exceptions import Revert
from eth.rlp.logs import Log
from eth.vm.chain_context import ChainContext
from eth.vm.forks.berlin.transactions import TypedTransaction
from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas
from eth.vm.spoof import SpoofTransaction
from eth_hash.auto import keccak
from eth_utils.exceptions import ValidationError

from layerlab.errors import LayerlabError
from layerlab.l1.chain.evm import EvmChain, apply_account_override
from layerlab.l1.chain.osaka import TX_GAS_LIMIT_CAP, OsakaVM
from layerlab.l1.rpc import codec, trace
from layerlab.l1.rpc.codec import (
    InvalidParams,
    hex_data,
    hex_int,
    parse_address,
    parse_bool,
    parse_hash,
    parse_quantity,
    parse_tx_object,
)
from layerlab.l1.rpc.common import decode_revert_reason, parse_state_overrides

MAX_SIMULATE_BLOCKS = 256
TIMESTAMP_INCREMENT = 12
MAX_INITCODE_SIZE = 49_152  # EIP-3860
TRANSFER_TOPIC = keccak(b"Transfer(address,address,uint256)")
TRANSFER_ADDRESS = b"\xee" * 20  # ERC-7528's native-asset address
REVERTED = 3  # the code geth gives a reverted call's error
VM_ERROR = -32015

NONCE_TOO_LOW = -38010
NONCE_TOO_HIGH = -38011
FEE_CAP_TOO_LOW = -38012
INTRINSIC_GAS = -38013
INSUFFICIENT_FUNDS = -38014
BLOCK_GAS_LIMIT_REACHED = -38015
BLOCK_NUMBER_INVALID = -38020
BLOCK_TIMESTAMP_INVALID = -38021
MAX_INITCODE_SIZE_EXCEEDED = -38025
CLIENT_LIMIT_EXCEEDED = -38026
INTERNAL_ERROR = -32603

BLOCK_OVERRIDE_FIELDS = {"number", "time", "gasLimit", "feeRecipient", "prevRandao",
                         "baseFeePerGas", "blobBaseFee"}


class SimulateError(LayerlabError):
    """A simulation refused as a whole, with the execution-apis error code ``rpc_code``."""

    def __init__(self, rpc_code: int, message: str) -> None:
        super().__init__(message)
        self.rpc_code = rpc_code


@dataclass(frozen=True, slots=True)
class BlockOverrides:
    number: int | None = None
    time: int | None = None
    gas_limit: int | None = None
    fee_recipient: bytes | None = None
    prev_randao: bytes | None = None
    base_fee: int | None = None


@dataclass(frozen=True, slots=True)
class SimBlock:
    overrides: BlockOverrides
    state_overrides: tuple[Any, ...] = ()
    calls: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class SimOptions:
    blocks: tuple[SimBlock, ...]
    validation: bool = False
    trace_transfers: bool = False
    full_transactions: bool = False


def _parse_block_overrides(raw: Any, name: str) -> BlockOverrides:
    if raw is None:
        return BlockOverrides()
    if not isinstance(raw, dict):
        raise InvalidParams(f"{name}: expected an object")
    unknown = set(raw) - BLOCK_OVERRIDE_FIELDS
    if unknown:
        raise InvalidParams(f"{name}: unknown fields {sorted(unknown)}")

    def quantity(key: str) -> int | None:
        return parse_quantity(raw[key], f"{name}.{key}") if raw.get(key) is not None else None

    return BlockOverrides(
        number=quantity("number"), time=quantity("time"), gas_limit=quantity("gasLimit"),
        fee_recipient=(parse_address(raw["feeRecipient"], f"{name}.feeRecipient")
                       if raw.get("feeRecipient") is not None else None),
        prev_randao=(parse_hash(raw["prevRandao"], f"{name}.prevRandao")
                     if raw.get("prevRandao") is not None else None),
        base_fee=quantity("baseFeePerGas"),
    )


def parse_sim_options(raw: Any) -> SimOptions:
    """The first parameter of ``eth_simulateV1``, checked before anything runs."""
    if not isinstance(raw, dict):
        raise InvalidParams("simulation options: expected an object")
    unknown = set(raw) - {"blockStateCalls", "validation", "traceTransfers",
                          "returnFullTransactions"}
    if unknown:
        raise InvalidParams(f"simulation options: unknown fields {sorted(unknown)}")
    entries = raw.get("blockStateCalls")
    if entries is None or (isinstance(entries, list) and not entries):
        raise InvalidParams("empty input")
    if not isinstance(entries, list):
        raise InvalidParams("blockStateCalls: expected a list")
    if len(entries) > MAX_SIMULATE_BLOCKS:
        raise SimulateError(CLIENT_LIMIT_EXCEEDED, "too many blocks")
    blocks = []
    for i, entry in enumerate(entries):
        name = f"blockStateCalls[{i}]"
        if not isinstance(entry, dict):
            raise InvalidParams(f"{name}: expected an object")
        unknown = set(entry) - {"blockOverrides", "stateOverrides", "calls"}
        if unknown:
            raise InvalidParams(f"{name}: unknown fields {sorted(unknown)}")
        calls = entry.get("calls") or []
        if not isinstance(calls, list):
            raise InvalidParams(f"{name}.calls: expected a list")
        blocks.append(SimBlock(
            overrides=_parse_block_overrides(entry.get("blockOverrides"), f"{name}.blockOverrides"),
            state_overrides=parse_state_overrides(entry.get("stateOverrides")),
            calls=tuple(parse_tx_object(c, f"{name}.calls[{j}]") for j, c in enumerate(calls)),
        ))

    def flag(key: str) -> bool:
        return parse_bool(raw.get(key, False), key)

    return SimOptions(tuple(blocks), validation=flag("validation"),
                      trace_transfers=flag("traceTransfers"),
                      full_transactions=flag("returnFullTransactions"))


def sanitize_chain(base: BlockHeaderAPI, blocks: tuple[SimBlock, ...]) -> list[SimBlock]:
    """Numbers and timestamps filled in and checked, gaps filled with empty blocks (geth's
    ``sanitizeChain``)."""
    out: list[SimBlock] = []
    prev_number, prev_time = int(base.block_number), int(base.timestamp)
    for block in blocks:
        o = block.overrides
        number = prev_number + 1 if o.number is None else o.number
        if number <= prev_number:
            raise SimulateError(BLOCK_NUMBER_INVALID,
                                f"block numbers must be in order: {number} <= {prev_number}")
        if number - base.block_number > MAX_SIMULATE_BLOCKS:
            raise SimulateError(CLIENT_LIMIT_EXCEEDED, "too many blocks")
        for n in range(prev_number + 1, number):
            prev_time += TIMESTAMP_INCREMENT
            out.append(SimBlock(BlockOverrides(number=n, time=prev_time)))
        prev_number = number
        if o.time is None:
            time = prev_time + TIMESTAMP_INCREMENT
        else:
            time = o.time
            if time <= prev_time:
                raise SimulateError(BLOCK_TIMESTAMP_INVALID,
                                    f"block timestamps must be in order: {time} <= {prev_time}")
        prev_time = time
        out.append(SimBlock(BlockOverrides(number, time, o.gas_limit, o.fee_recipient,
                                           o.prev_randao, o.base_fee),
                            block.state_overrides, block.calls))
    return out


class TransferLogTracer(trace.Tracer):
    """The logs of one call in execution order, with ERC-7528 transfer logs for every
    value a frame moves; a failed frame's logs (transfers included) are dropped."""

    def __init__(self) -> None:
        self.frames: list[list[Log]] = []
        self.logs: list[Log] = []

    def on_enter(self, message: MessageAPI, state: StateAPI) -> None:
        frame: list[Log] = []
        moves_value = message.is_create or message.storage_address == message.code_address
        if message.value and moves_value:  # not DELEGATECALL / CALLCODE
            to = message.storage_address
            frame.append(Log(TRANSFER_ADDRESS,
                             [TRANSFER_TOPIC, b"\x00" * 12 + message.sender, b"\x00" * 12 + to],
                             message.value.to_bytes(32, "big")))
        self.frames.append(frame)

    def before_op(self, computation: Any, op: str) -> Any:
        if op.startswith("LOG") and op[3:].isdigit() and self.frames:
            stack = computation._stack.values
            n = int(op[3:])
            if len(stack) >= 2 + n:
                offset, size = trace._as_int(stack[-1]), trace._as_int(stack[-2])
                return (bytes(computation.msg.storage_address), offset, size,
                        [trace._as_int(t).to_bytes(32, "big") for t in reversed(stack[-2 - n:-2])])
        return None

    def after_op(self, token: Any, computation: Any) -> None:
        if token is None or computation.is_error:
            return
        address, offset, size, topics = token
        data = bytes(computation._memory._bytes[offset:offset + size]) if size else b""
        self.frames[-1].append(Log(address, topics, data))

    def on_exit(self, computation: ComputationAPI | None) -> None:
        frame = self.frames.pop()
        if computation is None or computation.is_error:
            return
        (self.frames[-1] if self.frames else self.logs).extend(frame)


@dataclass
class _Sim:
    chain: EvmChain
    options: SimOptions
    db: AtomicDB
    state_root: bytes
    headers: list[BlockHeaderAPI] = field(default_factory=list)


def _header_fields(header: BlockHeaderAPI) -> set[str]:
    return set(type(header)._meta.field_names)  # type: ignore[attr-defined]


def _make_header(sim: _Sim, vm_class: type[Any], parent: BlockHeaderAPI,
                 o: BlockOverrides) -> BlockHeaderAPI:
    header = vm_class.create_header_from_parent(
        parent, timestamp=o.time, gas_limit=o.gas_limit or parent.gas_limit,
        coinbase=o.fee_recipient if o.fee_recipient is not None else parent.coinbase)
    fields = _header_fields(header)
    changes: dict[str, Any] = {"state_root": sim.state_root}
    if "base_fee_per_gas" in fields:
        if o.base_fee is not None:
            changes["base_fee_per_gas"] = o.base_fee
        elif sim.options.validation:
            changes["base_fee_per_gas"] = calculate_expected_base_fee_per_gas(parent)
        else:
            changes["base_fee_per_gas"] = 0
    if o.prev_randao is not None:
        changes["mix_hash"] = o.prev_randao
    if "parent_beacon_block_root" in fields:
        changes["parent_beacon_block_root"] = b"\x00" * 32
    return header.copy(**changes)  # type: ignore[no-any-return]


def _prev_hashes(sim: _Sim, base: BlockHeaderAPI, vm_class: type[Any]) -> list[bytes]:
    simulated = [bytes(h.hash) for h in reversed(sim.headers)]
    stored = sim.chain.get_header_by_number(base.block_number)  # base may carry dev edits
    start = base.hash if stored is None else stored.hash
    canonical = list(vm_class.get_prev_hashes(start, sim.chain.chain.chaindb) or ())
    return (simulated + [bytes(h) for h in canonical])[:256]


def _call_tx(vm_class: type[Any], header: BlockHeaderAPI, state: StateAPI, call: dict[str, Any],
             gas: int, chain_id: int, validation: bool) -> tuple[Any, Any, int]:
    """(signed-looking transaction with an empty signature, spoofed one to execute, fee cap)."""
    sender = call.get("from", b"\x00" * 20)
    nonce = int(state.get_nonce(sender))
    if validation and "nonce" in call:
        nonce = call["nonce"]
    to, value, data = call.get("to", b""), call.get("value", 0), call.get("data", b"")
    builder = vm_class.get_transaction_builder()
    if hasattr(header, "base_fee_per_gas"):
        if "gasPrice" in call:
            fee_cap = tip = call["gasPrice"]
        else:
            fee_cap = call.get("maxFeePerGas", 0)
            tip = call.get("maxPriorityFeePerGas", 0)
        fields = dict(chain_id=chain_id, nonce=nonce, max_priority_fee_per_gas=tip,
                      max_fee_per_gas=fee_cap, gas=gas, to=to, value=value, data=data,
                      access_list=())
        unsigned = builder.new_unsigned_dynamic_fee_transaction(**fields)
        signed = builder.new_dynamic_fee_transaction(**fields, y_parity=0, r=0, s=0)
    else:
        fee_cap = call.get("gasPrice", 0)
        fields = dict(nonce=nonce, gas_price=fee_cap, gas=gas, to=to, value=value, data=data)
        unsigned = vm_class.create_unsigned_transaction(**fields)
        signed = vm_class.create_transaction(**fields, v=27, r=0, s=0)
    return signed, SpoofTransaction(unsigned, from_=sender), fee_cap


def _check_call(sim: _Sim, header: BlockHeaderAPI, state: StateAPI, call: dict[str, Any],
                tx: Any, fee_cap: int) -> None:
    """geth's pre-checks, in its order and with its wording and codes."""
    sender = call.get("from", b"\x00" * 20)
    who = "0x" + sender.hex()
    if sim.options.validation:
        have = int(state.get_nonce(sender))
        if tx.nonce < have:
            raise SimulateError(NONCE_TOO_LOW,
                                f"nonce too low: address {who}, tx: {tx.nonce} state: {have}")
        if tx.nonce > have:
            raise SimulateError(NONCE_TOO_HIGH,
                                f"nonce too high: address {who}, tx: {tx.nonce} state: {have}")
        base_fee = int(getattr(header, "base_fee_per_gas", 0) or 0)
        if fee_cap < base_fee:
            raise SimulateError(FEE_CAP_TOO_LOW,
                                f"max fee per gas less than block base fee: address {who}, "
                                f"maxFeePerGas: {fee_cap}, baseFee: {base_fee}")
    balance = int(state.get_balance(sender))
    want = tx.gas * fee_cap + tx.value
    if balance < want:
        raise SimulateError(INSUFFICIENT_FUNDS,
                            f"insufficient funds for gas * price + value: address {who} "
                            f"have {balance} want {want}")
    intrinsic = int(tx.intrinsic_gas)
    if tx.gas < intrinsic:
        raise SimulateError(INTRINSIC_GAS,
                            f"intrinsic gas too low: have {tx.gas}, want {intrinsic}")
    if not tx.to and len(tx.data) > MAX_INITCODE_SIZE and hasattr(header, "withdrawals_root"):
        raise SimulateError(MAX_INITCODE_SIZE_EXCEEDED,
                            f"max initcode size exceeded: code size {len(tx.data)} "
                            f"limit {MAX_INITCODE_SIZE}")


def free_context(vm_class: type[Any], header: BlockHeaderAPI, context: Any) -> Any:
    """``context`` with a zero base fee (so BASEFEE reads 0 for such a call)."""
    return vm_class.create_execution_context(header.copy(base_fee_per_gas=0),
                                             context.prev_hashes, ChainContext(context.chain_id))


def _call_result(computation: ComputationAPI, logs: list[dict[str, Any]], gas_used: int,
                 max_used: int) -> dict[str, Any]:
    out: dict[str, Any] = {"returnData": hex_data(bytes(computation.output)), "logs": logs,
                           "gasUsed": hex_int(gas_used), "maxUsedGas": hex_int(max_used),
                           "status": "0x0" if computation.is_error else "0x1"}
    if computation.is_error:
        if isinstance(computation.error, Revert):
            out["error"] = {"code": REVERTED,
                            "message": decode_revert_reason(bytes(computation.output)),
                            "data": hex_data(bytes(computation.output))}
        else:
            out["error"] = {"code": VM_ERROR, "message": trace.error_text(computation)}
    return out


def _process_block(sim: _Sim, base: BlockHeaderAPI, parent: BlockHeaderAPI,
                   block: SimBlock) -> dict[str, Any]:
    o = block.overrides
    assert o.number is not None and o.time is not None  # set by sanitize_chain
    vm_class = sim.chain.vm_class_at(o.number, o.time)
    header = _make_header(sim, vm_class, parent, o)
    state = vm_class.build_state(sim.db, header, ChainContext(sim.chain.config.chain_id),
                                 _prev_hashes(sim, base, vm_class))
    for override in block.state_overrides:
        apply_account_override(state, override)
    gas_cap = TX_GAS_LIMIT_CAP if issubclass(vm_class, OsakaVM) else None
    txs, senders, receipts, results, raw_logs = [], [], [], [], []
    gas_used = 0
    for call in block.calls:
        remaining = header.gas_limit - gas_used
        gas = call.get("gas")
        if gas is None:
            gas = remaining if gas_cap is None else min(remaining, gas_cap)
        if gas > remaining:
            raise SimulateError(BLOCK_GAS_LIMIT_REACHED,
                                f"block gas limit reached: {gas_used} + {gas} > {header.gas_limit}")
        signed, spoof, fee_cap = _call_tx(vm_class, header, state, call, gas,
                                          sim.chain.config.chain_id, sim.options.validation)
        _check_call(sim, header, state, call, spoof, fee_cap)
        tracer = TransferLogTracer() if sim.options.trace_transfers else None
        base_computation = state.computation_class
        block_context = state.execution_context
        if tracer is not None:
            state.computation_class = trace._make_tracing_class(base_computation, tracer)
        if not sim.options.validation and fee_cap < int(getattr(header, "base_fee_per_gas", 0)):
            # geth's NoBaseFee: a fee cap under the (overridden) base fee runs at price 0
            state.execution_context = free_context(vm_class, header, block_context)
        try:
            computation = state.apply_transaction(spoof)
        except ValidationError as exc:
            raise SimulateError(INTERNAL_ERROR, f"err: {exc} (supplied gas {gas})") from exc
        finally:
            state.computation_class = base_computation
            state.execution_context = block_context
        receipt = vm_class.make_receipt(header.copy(gas_used=gas_used), signed, computation, state)
        call_gas = int(receipt.gas_used) - gas_used
        gas_used = int(receipt.gas_used)
        logs = tracer.logs if tracer is not None else list(receipt.logs)
        txs.append(signed)
        senders.append(call.get("from", b"\x00" * 20))
        receipts.append(receipt)
        raw_logs.append(logs)
        results.append((computation, call_gas, int(spoof.gas) - int(computation.get_gas_remaining())))
    state.persist()
    sim.state_root = bytes(state.state_root)
    bloom = 0
    for receipt in receipts:
        bloom |= int(receipt.bloom)
    final = header.copy(
        state_root=sim.state_root, gas_used=gas_used, bloom=bloom,
        transaction_root=make_trie_root_and_nodes(tuple(txs))[0],
        receipt_root=make_trie_root_and_nodes(tuple(receipts))[0],
    )
    sim.headers.append(final)
    body = [type(final).serialize(final),
            [tx.encode() if isinstance(tx, TypedTransaction) else type(tx).serialize(tx)
             for tx in txs], []]
    if "withdrawals_root" in _header_fields(final):
        body.append([])
    out = codec.format_header(final, size=len(rlp.encode(body)))
    if sim.options.full_transactions:
        out["transactions"] = [codec.format_transaction(tx, sender, final, i)
                               for i, (tx, sender) in enumerate(zip(txs, senders, strict=True))]
    else:
        out["transactions"] = [hex_data(tx.hash) for tx in txs]
    calls = []
    log_index = 0
    for i, ((computation, call_gas, max_used), logs) in enumerate(zip(results, raw_logs, strict=True)):
        formatted = []
        for log in logs:
            formatted.append(codec.format_log(log, final, txs[i].hash, i, log_index))
            log_index += 1
        calls.append(_call_result(computation, formatted, call_gas, max_used))
    out["calls"] = calls
    return out


def simulate(chain: EvmChain, base: BlockHeaderAPI, options: SimOptions) -> list[dict[str, Any]]:
    """Run ``options``' blocks on ``base``'s post-state; the chain's database is only read."""
    blocks = sanitize_chain(base, options.blocks)
    overlay = AtomicDB(BatchDB(chain.chain.chaindb.db))  # writes stay in memory
    sim = _Sim(chain, options, overlay, bytes(base.state_root))
    out = []
    parent = base
    for block in blocks:
        out.append(_process_block(sim, base, parent, block))
        parent = sim.headers[-1]
    return out
