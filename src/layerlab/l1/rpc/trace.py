"""Re-executing transactions and calls under geth's tracers.

A transaction is re-executed on its block's parent state after the transactions that
precede it in the block (a call, on the state of the block it names), with a computation
class whose every opcode and every message frame is reported to a tracer. The tracers
produce geth's output shapes (geth docs, "Built-in tracers"):

- the default **struct logger**: ``{gas, failed, returnValue, structLogs}``, one entry per
  opcode with ``pc``, ``op``, remaining ``gas``, ``gasCost``, ``depth``, the ``stack`` and
  (unless disabled) ``memory`` and the touched ``storage``, the format Hardhat and Foundry
  tools read;
- ``callTracer``: the tree of call frames ``{type, from, to, value, gas, gasUsed, input,
  output, error, revertReason, calls}`` (``tracerConfig.onlyTopCall`` keeps the top one);
- ``prestateTracer``: every account the execution touched, as it was before:
  ``{address: {balance, nonce, code, storage}}`` (zero nonce, empty code and storage
  omitted); with ``tracerConfig.diffMode`` ``{pre, post}`` of what changed;
- an access-list tracer for ``eth_createAccessList``: the addresses and slots opcodes
  touch, less the sender, the recipient and the precompiles (geth's ``logger.AccessListTracer``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from eth._utils.address import generate_contract_address
from eth.abc import BlockHeaderAPI, ComputationAPI, MessageAPI, SignedTransactionAPI, StateAPI
from eth.exceptions import (
    InsufficientFunds,
    InvalidInstruction,
    InvalidJumpDestination,
    OutOfGas,
    Revert,
    StackDepthLimit,
    WriteProtection,
)
from eth.vm.forks.berlin.transactions import UnsignedAccessListTransaction
from eth.vm.spoof import SpoofTransaction
from eth_utils.exceptions import ValidationError

from layerlab.errors import InvalidTransaction, LayerlabError
from layerlab.l1.chain.evm import AccountOverride, CallRequest, EvmChain, apply_account_override
from layerlab.l1.rpc.codec import InvalidParams
from layerlab.l1.rpc.common import decode_revert_reason

MAX_STEPS = 200_000
TRACERS = ("callTracer", "prestateTracer")


class TraceUnavailable(LayerlabError):
    """The transaction cannot be re-executed from the chain's stored state (-32000)."""


def _word(value: int | bytes) -> str:
    n = value if isinstance(value, int) else int.from_bytes(value, "big")
    return "0x" + format(n, "x")


def _as_int(value: int | bytes) -> int:
    return value if isinstance(value, int) else int.from_bytes(value, "big")


def _address(value: int | bytes) -> bytes:
    return _as_int(value).to_bytes(32, "big")[-20:]


def _hex(data: bytes) -> str:
    return "0x" + bytes(data).hex()


# -- tracers ------------------------------------------------------------------------------
class Tracer:
    """Hooks called during execution; each subclass builds one output format."""

    def on_tx_start(self, state: StateAPI, sender: bytes, to: bytes, coinbase: bytes) -> None:
        """Before the transaction buys its gas (``to`` is the created address for a create)."""

    def before_op(self, computation: Any, op: str) -> Any:
        """Before an opcode runs; what it returns is handed to :meth:`after_op`."""
        return None

    def after_op(self, token: Any, computation: Any) -> None:
        """After the opcode ran (or raised)."""

    def on_enter(self, message: MessageAPI, state: StateAPI) -> None:
        """A message frame starts (the transaction's own, or a child's)."""

    def on_exit(self, computation: ComputationAPI | None) -> None:
        """The frame ended (``None``: it raised before producing a computation)."""

    def result(self, run: Run) -> Any:
        """The tracer's output once the transaction has run."""
        return None


class StructLogger(Tracer):
    def __init__(self, opts: dict[str, Any]) -> None:
        self.logs: list[dict[str, Any]] = []
        self.with_memory = bool(opts.get("enableMemory", False))
        self.with_stack = not opts.get("disableStack", False)
        self.with_storage = not opts.get("disableStorage", False)
        self.storage: dict[bytes, dict[str, str]] = {}

    def before_op(self, computation: Any, op: str) -> Any:
        if len(self.logs) >= MAX_STEPS:
            raise InvalidParams(f"trace exceeds {MAX_STEPS} steps")
        stack_values = computation._stack.values
        entry: dict[str, Any] = {
            "pc": max(0, computation.code.program_counter - 1),
            "op": op,
            "gas": computation.get_gas_remaining(),
            "gasCost": 0,
            "depth": computation.msg.depth + 1,
        }
        if self.with_stack:
            entry["stack"] = [_word(v) for v in stack_values]
        if self.with_memory:
            mem = bytes(computation._memory._bytes)
            entry["memory"] = [mem[i:i + 32].hex() for i in range(0, len(mem), 32)]
        if self.with_storage and op in ("SSTORE", "SLOAD") and stack_values:
            slots = self.storage.setdefault(bytes(computation.msg.storage_address), {})
            key = format(_as_int(stack_values[-1]), "064x")
            if op == "SSTORE" and len(stack_values) > 1:
                slots[key] = format(_as_int(stack_values[-2]), "064x")
            else:
                value = computation.state.get_storage(
                    computation.msg.storage_address, _as_int(stack_values[-1])
                )
                slots[key] = format(int(value), "064x")
            entry["storage"] = dict(slots)
        self.logs.append(entry)
        return entry

    def after_op(self, token: Any, computation: Any) -> None:
        token["gasCost"] = token["gas"] - computation.get_gas_remaining()

    def result(self, run: Run) -> dict[str, Any]:
        return {
            "gas": run.gas_used,
            "failed": bool(run.computation.is_error),
            "returnValue": bytes(run.computation.output).hex(),
            "structLogs": self.logs,
        }


CALL_OPS = ("CALL", "CALLCODE", "DELEGATECALL", "STATICCALL", "CREATE", "CREATE2")


def error_text(computation: ComputationAPI) -> str:
    """geth's wording of a frame's failure."""
    error = computation.error
    if isinstance(error, Revert):
        return "execution reverted"
    if isinstance(error, OutOfGas):
        return "out of gas"
    if isinstance(error, InvalidJumpDestination):
        return "invalid jump destination"
    if isinstance(error, InvalidInstruction):
        return "invalid opcode"
    if isinstance(error, WriteProtection):
        return "write protection"
    if isinstance(error, StackDepthLimit):
        return "max call depth exceeded"
    if isinstance(error, InsufficientFunds):
        return "insufficient balance for transfer"
    return str(error) or type(error).__name__


class CallTracer(Tracer):
    def __init__(self, config: dict[str, Any]) -> None:
        self.only_top = bool(config.get("onlyTopCall", False))
        self.with_log = bool(config.get("withLog", False))
        self.stack: list[dict[str, Any]] = []
        self.root: dict[str, Any] | None = None
        self.pending_op = "CALL"
        self.parent_value: list[int] = []

    def before_op(self, computation: Any, op: str) -> Any:
        if op in CALL_OPS:
            self.pending_op = op
        if self.with_log and op.startswith("LOG") and self.stack:
            stack = computation._stack.values
            n = int(op[3:])
            if len(stack) >= 2 + n:
                offset, size = _as_int(stack[-1]), _as_int(stack[-2])
                mem = bytes(computation._memory._bytes)
                data = mem[offset:offset + size] if offset + size <= len(mem) else b""
                self.stack[-1].setdefault("logs", []).append({
                    "address": _hex(computation.msg.storage_address),
                    "topics": ["0x" + format(_as_int(t), "064x")
                               for t in reversed(stack[-2 - n:-2])],
                    "data": _hex(data),
                })
        return None

    def on_enter(self, message: MessageAPI, state: StateAPI) -> None:
        top = "CREATE" if message.is_create else "CALL"
        kind = self.pending_op if self.stack else top
        frame: dict[str, Any] = {
            "type": kind,
            "from": _hex(message.sender),
            "to": _hex(message.code_address if kind in ("DELEGATECALL", "CALLCODE")
                       else message.storage_address),
            "gas": hex(message.gas),
            "gasUsed": "0x0",
            "input": _hex(message.data if not message.is_create else message.code),
        }
        if kind != "STATICCALL":
            frame["value"] = hex(message.value)
        if kind == "DELEGATECALL":
            frame["from"] = _hex(message.storage_address)
        if self.stack:
            if not self.only_top:
                self.stack[-1].setdefault("calls", []).append(frame)
        else:
            self.root = frame
        self.stack.append(frame)

    def on_exit(self, computation: ComputationAPI | None) -> None:
        frame = self.stack.pop()
        if computation is None:
            frame["error"] = "execution failed"
            return
        frame["gasUsed"] = hex(computation.get_gas_used())
        output = bytes(computation.output)
        if output:  # geth omits an empty output
            frame["output"] = _hex(output)
        if computation.is_error:
            frame["error"] = error_text(computation)
            reason = decode_revert_reason(output) if isinstance(computation.error, Revert) else ""
            if reason.startswith("execution reverted: "):
                frame["revertReason"] = reason[len("execution reverted: "):]
            frame.pop("logs", None)

    def result(self, run: Run) -> dict[str, Any]:
        assert self.root is not None
        self.root["gas"] = hex(run.gas_limit)
        self.root["gasUsed"] = hex(run.gas_used)
        return self.root


ADDRESS_OPS = ("BALANCE", "EXTCODESIZE", "EXTCODECOPY", "EXTCODEHASH", "SELFDESTRUCT")


class PrestateTracer(Tracer):
    """Accounts touched, read at first touch (before the transaction changes them)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.diff_mode = bool(config.get("diffMode", False))
        self.accounts: dict[bytes, dict[str, Any]] = {}
        self.slots: dict[bytes, set[int]] = {}
        self.state: StateAPI | None = None

    def _account(self, state: StateAPI, address: bytes) -> None:
        if address in self.accounts:
            return
        self.accounts[address] = {
            "balance": int(state.get_balance(address)),
            "nonce": int(state.get_nonce(address)),
            "code": bytes(state.get_code(address)),
            "storage": {},
        }
        self.slots[address] = set()

    def _slot(self, state: StateAPI, address: bytes, slot: int) -> None:
        self._account(state, address)
        storage = self.accounts[address]["storage"]
        if slot not in storage:
            storage[slot] = int(state.get_storage(address, slot))

    def on_tx_start(self, state: StateAPI, sender: bytes, to: bytes, coinbase: bytes) -> None:
        self.state = state
        for address in (sender, to, coinbase):
            self._account(state, address)

    def before_op(self, computation: Any, op: str) -> Any:
        stack = computation._stack.values
        state = computation.state
        if op in ("SLOAD", "SSTORE") and stack:
            self._slot(state, bytes(computation.msg.storage_address), _as_int(stack[-1]))
        elif op in ADDRESS_OPS and stack:
            self._account(state, _address(stack[-1]))
        elif op in ("CALL", "CALLCODE", "DELEGATECALL", "STATICCALL") and len(stack) >= 2:
            self._account(state, _address(stack[-2]))
        return None

    def on_enter(self, message: MessageAPI, state: StateAPI) -> None:
        self._account(state, bytes(message.storage_address))

    @staticmethod
    def _format(acct: dict[str, Any], storage: dict[int, int]) -> dict[str, Any]:
        out: dict[str, Any] = {"balance": hex(acct["balance"])}
        if acct["nonce"]:
            out["nonce"] = acct["nonce"]
        if acct["code"]:
            out["code"] = _hex(acct["code"])
        if storage:
            out["storage"] = {"0x" + format(k, "064x"): "0x" + format(v, "064x")
                              for k, v in sorted(storage.items())}
        return out

    def result(self, run: Run) -> dict[str, Any]:
        if not self.diff_mode:
            return {_hex(a): self._format(acct, acct["storage"])
                    for a, acct in self.accounts.items()}
        state = run.state
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        for address, acct in self.accounts.items():
            now: dict[str, Any] = {"balance": int(state.get_balance(address)),
                   "nonce": int(state.get_nonce(address)),
                   "code": bytes(state.get_code(address))}
            before_storage = acct["storage"]
            after_storage = {k: int(state.get_storage(address, k)) for k in before_storage}
            changed = {k for k in before_storage if before_storage[k] != after_storage[k]}
            modified = changed or any(now[f] != acct[f] for f in ("balance", "nonce", "code"))
            if not modified:
                continue
            pre[_hex(address)] = self._format(acct, {k: before_storage[k] for k in changed})
            entry: dict[str, Any] = {}
            for f in ("balance", "nonce", "code"):
                if now[f] != acct[f]:
                    entry[f] = (hex(now[f]) if f == "balance" else
                                _hex(now[f]) if f == "code" else now[f])
            if changed:
                entry["storage"] = {"0x" + format(k, "064x"): "0x" + format(after_storage[k], "064x")
                                    for k in sorted(changed)}
            if now["balance"] == 0 and now["nonce"] == 0 and not now["code"]:
                continue  # deleted: geth lists it in pre only
            post[_hex(address)] = entry
        return {"pre": pre, "post": post}


class AccessListTracer(Tracer):
    def __init__(self, exclude: set[bytes], initial: dict[bytes, set[int]]) -> None:
        self.exclude = exclude
        self.list: dict[bytes, set[int]] = {a: set(s) for a, s in initial.items()}

    def _add(self, address: bytes, slot: int | None = None) -> None:
        if address in self.exclude:
            return
        slots = self.list.setdefault(address, set())
        if slot is not None:
            slots.add(slot)

    def before_op(self, computation: Any, op: str) -> Any:
        stack = computation._stack.values
        if op in ("SLOAD", "SSTORE") and stack:
            self._add(bytes(computation.msg.storage_address), _as_int(stack[-1]))
        elif op in ADDRESS_OPS and stack:
            self._add(_address(stack[-1]))
        elif op in ("CALL", "CALLCODE", "DELEGATECALL", "STATICCALL") and len(stack) >= 2:
            self._add(_address(stack[-2]))
        return None


# -- execution ----------------------------------------------------------------------------
@dataclass
class Run:
    """One traced execution: its top computation, its gas, and the state after it."""

    computation: ComputationAPI
    gas_limit: int
    gas_used: int
    state: StateAPI
    extra: dict[str, Any] = field(default_factory=dict)


def _make_tracing_class(base: type[ComputationAPI], tracer: Tracer) -> type[ComputationAPI]:
    """``base`` with every opcode and every message frame reported to ``tracer``."""

    def wrap(fn: Any, mnemonic: str) -> Any:
        def traced(computation: Any) -> None:
            token = tracer.before_op(computation, mnemonic)
            try:
                fn(computation=computation)
            finally:
                tracer.after_op(token, computation)

        return traced

    opcodes = {
        op: wrap(fn, getattr(fn, "mnemonic", getattr(getattr(fn, "__wrapped__", None), "mnemonic",
                                                      hex(op))))
        for op, fn in base.opcodes.items()
    }

    class TracingComputation(base):  # type: ignore[valid-type, misc]
        @classmethod
        def apply_message(cls, state: StateAPI, message: MessageAPI, *args: Any,
                          **kwargs: Any) -> ComputationAPI:
            if message.is_create:  # inside apply_create_message, whose frame this is
                return super().apply_message(state, message, *args, **kwargs)  # type: ignore[no-any-return]
            tracer.on_enter(message, state)
            computation = None
            try:
                computation = super().apply_message(state, message, *args, **kwargs)
                return computation  # type: ignore[no-any-return]
            finally:
                tracer.on_exit(computation)

        @classmethod
        def apply_create_message(cls, state: StateAPI, message: MessageAPI, *args: Any,
                                 **kwargs: Any) -> ComputationAPI:
            tracer.on_enter(message, state)
            computation = None
            try:
                computation = super().apply_create_message(state, message, *args, **kwargs)
                return computation  # type: ignore[no-any-return]
            finally:
                tracer.on_exit(computation)

    TracingComputation.opcodes = opcodes
    return TracingComputation


def make_tracer(opts: dict[str, Any]) -> Tracer:
    name = opts.get("tracer")
    config = opts.get("tracerConfig") or {}
    if not isinstance(config, dict):
        raise InvalidParams("tracerConfig: expected an object")
    if name in (None, ""):
        return StructLogger(opts)
    if name == "callTracer":
        return CallTracer(config)
    if name == "prestateTracer":
        return PrestateTracer(config)
    raise InvalidParams(f"tracer {name!r} is not supported; use {', '.join(TRACERS)} or omit "
                        "it for struct logs")


def tx_gas_used(tx: Any, computation: ComputationAPI) -> int:
    """The transaction's gas used after refunds (EIP-3529), as its receipt counts it."""
    used = int(tx.gas) - int(computation.get_gas_remaining())
    refund = min(int(computation.get_gas_refund()), used // 5)
    return used - refund + int(getattr(computation, "data_floor_gas", 0))


def _apply(state: StateAPI, tx: Any, tracer: Tracer, sender: bytes, coinbase: bytes) -> Run:
    base = state.computation_class
    to = bytes(tx.to) if tx.to else generate_contract_address(sender, state.get_nonce(sender))
    tracer.on_tx_start(state, sender, to, coinbase)
    state.computation_class = _make_tracing_class(base, tracer)
    try:
        computation = state.apply_transaction(tx)
    finally:
        state.computation_class = base
    return Run(computation, int(tx.gas), tx_gas_used(tx, computation), state)


@contextmanager
def block_replay(chain: EvmChain, header: BlockHeaderAPI) -> Iterator[StateAPI]:
    """The state ``header``'s block was executed on, to apply its transactions again."""
    if header.block_number == 0:
        raise InvalidParams("genesis is not traceable")
    vm = chain.chain.get_vm(header.copy(state_root=chain.get_pre_state_root(header), gas_used=0))
    try:
        yield vm.state
    except ValidationError as exc:
        raise TraceUnavailable(
            f"cannot replay block {header.block_number} from its pre-state: {exc}"
        ) from exc


def trace_block(chain: EvmChain, header: BlockHeaderAPI, opts: dict[str, Any],
                senders: list[bytes], upto: int | None = None) -> list[dict[str, Any]]:
    """Trace every transaction of a block (or only the one at ``upto``), in order."""
    block = chain.get_block(header)
    out: list[dict[str, Any]] = []
    with block_replay(chain, header) as state:
        for i, tx in enumerate(block.transactions):
            if upto is not None and i < upto:
                state.apply_transaction(tx)
                continue
            tracer = make_tracer(opts)
            run = _apply(state, tx, tracer, senders[i], bytes(header.coinbase))
            out.append({"txHash": _hex(tx.hash), "result": tracer.result(run)})
            if upto is not None:
                break
    return out


def trace_transaction(chain: EvmChain, block_number: int, index: int,
                      opts: dict[str, Any], sender: bytes = b"") -> dict[str, Any]:
    """Re-execute transaction ``index`` of canonical block ``block_number`` under a tracer."""
    header = chain.get_header_by_number(block_number)
    if header is None or block_number == 0:
        raise InvalidParams(f"block {block_number} not found")
    tx: SignedTransactionAPI = chain.get_block(header).transactions[index]
    senders = [b""] * (index + 1)
    senders[index] = sender or bytes(tx.sender)
    result: dict[str, Any] = trace_block(chain, header, opts, senders, upto=index)[0]["result"]
    return result


def spoof_call(state: StateAPI, request: CallRequest, gas: int,
               access_list: dict[bytes, set[int]] | None = None,
               chain_id: int = 1) -> SpoofTransaction:
    """An unsigned message from ``request.sender`` (with an EIP-2930 access list if given)."""
    unsigned = UnsignedAccessListTransaction(
        chain_id=chain_id, nonce=state.get_nonce(request.sender),
        gas_price=request.gas_price, gas=gas, to=request.to, value=request.value,
        data=request.data,
        access_list=tuple((a, tuple(sorted(s))) for a, s in sorted((access_list or {}).items())))
    return SpoofTransaction(unsigned, from_=request.sender)


def run_call(chain: EvmChain, request: CallRequest, header: BlockHeaderAPI, tracer: Tracer,
             overrides: tuple[AccountOverride, ...] = (),
             access_list: dict[bytes, set[int]] | None = None) -> dict[str, Any]:
    """Execute a call on ``header``'s post-state (discarded) under ``tracer``; its result
    and, under ``extra``, the run's top computation and gas used."""
    gas = request.gas if request.gas is not None else chain.max_call_gas(header)
    with chain.costless_state(header) as state:
        for override in overrides:
            apply_account_override(state, override)
        tx = spoof_call(state, request, gas, access_list, chain.config.chain_id)
        try:
            run = _apply(state, tx, tracer, request.sender, bytes(header.coinbase))
        except ValidationError as exc:
            raise InvalidTransaction("invalid-call", str(exc)) from exc
        result = tracer.result(run)
        return {"result": result, "computation": run.computation, "gasUsed": run.gas_used}


def precompile_addresses(state: StateAPI) -> set[bytes]:
    return {bytes(a) for a in state.computation_class.get_precompiles()}
