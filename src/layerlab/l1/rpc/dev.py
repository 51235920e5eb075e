"""Dev methods of Anvil and Hardhat: ``evm_*`` and ``anvil_*``, each ``anvil_*`` also
served as ``hardhat_*``: mining on demand, snapshots, the clock, automine and interval
mining, editing accounts, impersonation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from layerlab.l1.rpc.codec import (
    InvalidParams,
    hex_int,
    parse_address,
    parse_bool,
    parse_data,
    parse_quantity,
)
from layerlab.l1.rpc.common import UINT64_MAX, Namespace


class DevApi(Namespace):
    prefixes = ("evm", "anvil")

    @classmethod
    def rpc_functions(cls) -> dict[str, Callable[..., Any]]:
        functions = super().rpc_functions()
        for name, fn in list(functions.items()):
            if name.startswith("anvil_"):
                functions["hardhat_" + name[len("anvil_"):]] = fn
        return functions

    def evm_mine(self, timestamp: Any = None) -> str:
        ts = None
        if isinstance(timestamp, dict):
            ts = timestamp.get("timestamp")
            blocks = parse_quantity(timestamp.get("blocks", 1), "blocks")
        else:
            blocks = 1
            if timestamp is not None:
                ts = timestamp
        if ts is not None:
            # as Hardhat and Anvil: the clock carries on from the chosen timestamp
            self.node.dev.set_next_timestamp(parse_quantity(ts, "timestamp", UINT64_MAX))
        for _ in range(min(blocks, 10_000)):
            self.node.mine()
        return "0x0"

    def anvil_mine(self, count: Any = None, interval: Any = None) -> None:
        n = parse_quantity(count, "count") if count is not None else 1
        if n > 100_000:
            raise InvalidParams(f"count {n} exceeds 100000 blocks")
        step = parse_quantity(interval, "interval", UINT64_MAX) if interval is not None else 1
        if self.node.head.timestamp + n * step > UINT64_MAX:
            raise InvalidParams(f"{n} blocks {step} s apart overflow the 64-bit timestamp")
        for _ in range(n):
            if interval is not None and step:
                self.node.dev.set_next_timestamp(self.node.head.timestamp + step)
            self.node.mine()

    def evm_snapshot(self) -> str:
        return hex_int(self.node.dev.snapshot())

    def evm_revert(self, snapshot_id: Any) -> bool:
        return self.node.dev.revert(parse_quantity(snapshot_id, "snapshotId"))

    def evm_increaseTime(self, seconds: Any) -> str:
        value = parse_quantity(seconds, "seconds", UINT64_MAX)
        if int(time.time()) + self.node.dev.time_offset + value > UINT64_MAX:
            raise InvalidParams(f"seconds: {value} moves the clock past the 64-bit timestamp")
        return hex_int(self.node.dev.increase_time(value))

    def evm_setNextBlockTimestamp(self, timestamp: Any) -> None:
        self.node.dev.set_next_timestamp(parse_quantity(timestamp, "timestamp", UINT64_MAX))

    def evm_setAutomine(self, enabled: Any) -> None:
        self.node.dev.set_automine(parse_bool(enabled, "enabled"))

    def evm_setIntervalMining(self, ms: Any) -> None:
        self.node.dev.set_interval_mining(parse_quantity(ms, "interval", UINT64_MAX) / 1000)

    def anvil_setBalance(self, address: Any, balance: Any) -> bool:
        addr, value = parse_address(address), parse_quantity(balance, "balance")
        self.node.dev.edit_state(lambda s: s.set_balance(addr, value))
        return True

    def anvil_setCode(self, address: Any, code: Any) -> bool:
        addr, data = parse_address(address), parse_data(code, "code")
        self.node.dev.edit_state(lambda s: s.set_code(addr, data))
        return True

    def anvil_setNonce(self, address: Any, nonce: Any) -> bool:
        addr, value = parse_address(address), parse_quantity(nonce, "nonce", UINT64_MAX)
        self.node.dev.edit_state(lambda s: s.set_nonce(addr, value))
        return True

    def anvil_setStorageAt(self, address: Any, slot: Any, value: Any) -> bool:
        addr = parse_address(address)
        key = int.from_bytes(_word(parse_data(slot, "slot"), "slot"), "big")
        word = int.from_bytes(_word(parse_data(value, "value"), "value"), "big")
        self.node.dev.edit_state(lambda s: s.set_storage(addr, key, word))
        return True

    def anvil_impersonateAccount(self, address: Any) -> None:
        self.node.dev.impersonate(parse_address(address))

    def anvil_stopImpersonatingAccount(self, address: Any) -> None:
        self.node.dev.stop_impersonating(parse_address(address))

    def anvil_setAutomine(self, enabled: Any) -> None:
        self.evm_setAutomine(enabled)

    def anvil_nodeInfo(self) -> dict[str, Any]:
        return {
            "currentBlockNumber": hex_int(self.node.head.block_number),
            "currentBlockTimestamp": self.node.head.timestamp,
            "chainId": self.node.config.chain_id,
            "hardFork": "cancun",
            "miningMode": self.node.mining.value,
        }


def _word(data: bytes, name: str) -> bytes:
    if len(data) > 32:
        raise InvalidParams(f"{name}: a storage word is at most 32 bytes, got {len(data)}")
    return data
