"""``debug_traceTransaction`` with geth's struct logger output.

The transaction is re-executed on its block's parent state after the transactions that
precede it in the block, with a computation class whose every opcode is wrapped to record
``pc``, ``op``, remaining ``gas``, ``gasCost``, call ``depth``, the stack and (unless
disabled) memory and touched storage before the opcode runs — the format of geth's
default tracer, which Hardhat and Foundry tools read.
"""

from __future__ import annotations

from typing import Any

from eth.abc import ComputationAPI
from eth_utils.exceptions import ValidationError

from layerlab.errors import LayerlabError
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.rpc.codec import InvalidParams

MAX_STEPS = 200_000


class TraceUnavailable(LayerlabError):
    """The transaction cannot be re-executed from the chain's stored state (-32000)."""


def _word(value: int | bytes) -> str:
    n = value if isinstance(value, int) else int.from_bytes(value, "big")
    return "0x" + format(n, "x")


def _make_tracing_class(base: type[ComputationAPI], logs: list[dict[str, Any]],
                        opts: dict[str, Any]) -> type[ComputationAPI]:
    with_memory = bool(opts.get("enableMemory", False))
    with_stack = not opts.get("disableStack", False)
    with_storage = not opts.get("disableStorage", False)
    storage: dict[int, dict[str, str]] = {}

    def wrap(fn: Any, mnemonic: str) -> Any:
        def traced(computation: Any) -> None:
            if len(logs) >= MAX_STEPS:
                raise InvalidParams(f"trace exceeds {MAX_STEPS} steps")
            gas_before = computation.get_gas_remaining()
            stack_values = computation._stack.values
            entry: dict[str, Any] = {
                "pc": max(0, computation.code.program_counter - 1),
                "op": mnemonic,
                "gas": gas_before,
                "gasCost": 0,
                "depth": computation.msg.depth + 1,
            }
            if with_stack:
                entry["stack"] = [_word(v) for v in stack_values]
            if with_memory:
                mem = bytes(computation._memory._bytes)
                entry["memory"] = [mem[i:i + 32].hex() for i in range(0, len(mem), 32)]
            if with_storage and mnemonic in ("SSTORE", "SLOAD") and stack_values:
                slots = storage.setdefault(id(computation.msg.storage_address), {})
                key = format(_as_int(stack_values[-1]), "064x")
                if mnemonic == "SSTORE" and len(stack_values) > 1:
                    slots[key] = format(_as_int(stack_values[-2]), "064x")
                else:
                    value = computation.state.get_storage(
                        computation.msg.storage_address, _as_int(stack_values[-1])
                    )
                    slots[key] = format(int(value), "064x")
                entry["storage"] = dict(slots)
            logs.append(entry)
            try:
                fn(computation=computation)
            finally:
                entry["gasCost"] = gas_before - computation.get_gas_remaining()

        return traced

    opcodes = {
        op: wrap(fn, getattr(fn, "mnemonic", getattr(getattr(fn, "__wrapped__", None), "mnemonic",
                                                      hex(op))))
        for op, fn in base.opcodes.items()
    }
    return type("TracingComputation", (base,), {"opcodes": opcodes})


def _as_int(value: int | bytes) -> int:
    return value if isinstance(value, int) else int.from_bytes(value, "big")


def trace_transaction(chain: EvmChain, block_number: int, index: int,
                      opts: dict[str, Any]) -> dict[str, Any]:
    """Re-execute transaction ``index`` of canonical block ``block_number`` under a tracer."""
    if opts.get("tracer"):
        raise InvalidParams(f"tracer {opts['tracer']!r} is not supported; omit it for struct logs")
    header = chain.get_header_by_number(block_number)
    if header is None or block_number == 0:
        raise InvalidParams(f"block {block_number} not found")
    block = chain.get_block(header)
    vm = chain.chain.get_vm(header.copy(state_root=chain.get_pre_state_root(header), gas_used=0))
    state = vm.state
    logs: list[dict[str, Any]] = []
    base = state.computation_class
    try:
        for tx in block.transactions[:index]:
            state.apply_transaction(tx)
        state.computation_class = _make_tracing_class(base, logs, opts)
        tx = block.transactions[index]
        computation = state.apply_transaction(tx)
    except ValidationError as exc:
        raise TraceUnavailable(
            f"cannot replay block {block_number} from its pre-state: {exc}"
        ) from exc
    finally:
        state.computation_class = base
    receipts = chain.get_receipts(header)
    before = receipts[index - 1].gas_used if index else 0
    return {
        "gas": receipts[index].gas_used - before,
        "failed": bool(computation.is_error),
        "returnValue": bytes(computation.output).hex(),
        "structLogs": logs,
    }
