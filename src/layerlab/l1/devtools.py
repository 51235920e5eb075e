"""Anvil's and Hardhat's dev tools on top of a :class:`~layerlab.l1.node.Node`.

None of this exists on a real network; a devnet offers it so that tests and wallets can
drive the chain: impersonating any account (``anvil_impersonateAccount``), signing
``eth_sendTransaction`` with the dev keys and filling in its default nonce, gas and fees,
snapshots of the chain and pool (``evm_snapshot`` / ``evm_revert``), moving the clock
(``evm_increaseTime``, ``evm_setNextBlockTimestamp``), editing accounts without a block
(``anvil_setBalance``...) and switching the mining mode (``evm_setAutomine``,
``evm_setIntervalMining``).

:class:`DevTools` changes the node only through the node's own methods
(:meth:`~layerlab.l1.node.Node.set_mining`, ``set_clock``, ``set_state_override``,
``rewind``, ``admit``, ``readmit``); the RPC's dev namespace (``l1/rpc/dev.py``) calls it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth.abc import SignedTransactionAPI, StateAPI

from layerlab.errors import InvalidBlock, InvalidTransaction, LayerlabError
from layerlab.l1.storage import NODE_PREFIX
from layerlab.l1.txpool import PooledTransaction

if TYPE_CHECKING:
    from layerlab.l1.node import Node

log = logging.getLogger(__name__)

SPOOF_PREFIX = NODE_PREFIX + b"impersonated:"
"""Database records of the true sender of each mined impersonated transaction, by hash."""

DEFAULT_TIP = 10**9
"""Priority fee of an ``eth_sendTransaction`` that names none (1 gwei, as Anvil's)."""


class ImpersonatedTransaction:
    """A signed transaction whose sender is overridden (dev impersonation only).

    Every attribute is the wrapped transaction's, except ``sender``/``get_sender`` and the
    signature check, so py-evm executes it as if the impersonated account had signed.
    """

    __slots__ = ("_tx", "sender")

    def __init__(self, tx: SignedTransactionAPI, sender: bytes) -> None:
        self._tx = tx
        self.sender = sender

    def get_sender(self) -> bytes:
        return self.sender

    def check_signature_validity(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        if name in ("_tx", "sender"):
            raise AttributeError(name)
        return getattr(self._tx, name)


def is_impersonated(ptx: PooledTransaction) -> bool:
    return isinstance(ptx.tx, ImpersonatedTransaction)


def spoofed(ptx: PooledTransaction, sender: bytes) -> PooledTransaction:
    """``ptx`` executed as if ``sender`` had signed it."""
    return PooledTransaction(
        tx=ImpersonatedTransaction(ptx.tx, sender),  # type: ignore[arg-type]
        raw=ptx.raw, hash=ptx.hash, sender=sender, nonce=ptx.nonce, gas=ptx.gas,
        max_fee=ptx.max_fee, max_priority_fee=ptx.max_priority_fee, sidecar=ptx.sidecar,
        network_raw=ptx.network_raw,
    )


def compute_impersonation_key(sender: bytes) -> bytes:
    """The throwaway key that signs ``sender``'s impersonated transactions."""
    from eth_hash.auto import keccak

    return bytes(keccak(b"layerlab-impersonation:" + sender))


@dataclass
class Snapshot:
    """What ``evm_revert`` restores: head block, pool contents and clock."""

    block_number: int
    pool_raw: list[bytes]
    time_offset: int
    state_override: str | None


class DevTools:
    """The dev controls of one node (``node.dev``)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.impersonated: set[bytes] = set()
        self.dev_keys = {a.address_bytes: a.private_key for a in node.config.dev_accounts}
        self.snapshots: dict[int, Snapshot] = {}
        self._next_snapshot_id = 1

    # -- impersonation -------------------------------------------------------------------
    def impersonate(self, address: bytes) -> None:
        self.impersonated.add(address)

    def stop_impersonating(self, address: bytes) -> None:
        self.impersonated.discard(address)

    def restore_impersonated(self, ptx: PooledTransaction, sender: bytes) -> PooledTransaction:
        """A stored impersonated pool record after a restart: its sender stays impersonated."""
        self.impersonated.add(sender)
        return spoofed(ptx, sender)

    def spoofed_sender(self, tx_hash: bytes) -> bytes | None:
        """The impersonated sender of a mined transaction, or None for a signed one."""
        sender: bytes | None = self.node.db.get(SPOOF_PREFIX + tx_hash)
        return sender

    def submit_unsigned(self, fields: dict[str, Any]) -> bytes:
        """``eth_sendTransaction``: sign with a dev key, or spoof an impersonated sender.

        Missing fields get Anvil's defaults: the sender's next nonce counting its pooled
        transactions, an estimate of the gas (the block gas limit if the estimate fails),
        and an EIP-1559 fee of a 1 gwei tip over twice the next base fee; a ``gasPrice``
        without ``maxFeePerGas`` makes a legacy transaction.
        """
        node = self.node
        sender: bytes = fields["from"]
        nonce = fields.get("nonce")
        if nonce is None:
            in_pool = node.pool.sender_nonces(sender)
            nonce = max(node.reader().get_nonce(sender), (in_pool[-1] + 1) if in_pool else 0)
        base_fee = node.next_base_fee()
        tip = fields.get("maxPriorityFeePerGas", DEFAULT_TIP if "gasPrice" not in fields else None)
        tx_fields: dict[str, Any] = {
            "chainId": node.config.chain_id,
            "nonce": nonce,
            "to": fields.get("to") or b"",
            "value": fields.get("value", 0),
            "data": fields.get("data", b""),
            "gas": fields.get("gas"),
        }
        if tx_fields["gas"] is None:
            from layerlab.l1.chain.evm import CallRequest

            est = node.chain.estimate_gas(
                CallRequest(sender=sender, to=tx_fields["to"], data=tx_fields["data"],
                            value=tx_fields["value"]),
                node.latest_header(),
            )
            tx_fields["gas"] = est if est > 0 else node.chain.max_call_gas(node.latest_header())
        if "gasPrice" in fields and "maxFeePerGas" not in fields:
            tx_fields["gasPrice"] = fields["gasPrice"]
        else:
            tx_fields["maxPriorityFeePerGas"] = tip
            tx_fields["maxFeePerGas"] = fields.get("maxFeePerGas", 2 * base_fee + int(tip or 0))
            tx_fields["type"] = 2
        if sender in self.dev_keys and sender not in self.impersonated:
            return node.submit_raw(_sign(tx_fields, self.dev_keys[sender]))
        if sender not in self.impersonated:
            raise InvalidTransaction(
                "unknown-account", f"unknown account 0x{sender.hex()}: not a dev account and "
                "not impersonated (anvil_impersonateAccount)"
            )
        return node.admit(self._spoof(sender, tx_fields))

    def _spoof(self, sender: bytes, fields: dict[str, Any]) -> PooledTransaction:
        """An impersonated transaction (``anvil_impersonateAccount``).

        It is signed by a throwaway key derived from the sender, so that it encodes,
        hashes and stores like any transaction; execution sees the impersonated sender
        (as Hardhat's and Anvil's impersonation). The node records the true sender by
        hash for receipts and lookups.
        """
        raw = _sign(fields, compute_impersonation_key(sender))
        return spoofed(self.node.pool.decode(raw), sender)

    # -- mining mode ---------------------------------------------------------------------
    def set_automine(self, enabled: bool) -> None:
        """``evm_setAutomine``: turning it on mines what waits in the pool at once."""
        from layerlab.l1.node import MiningMode

        self.node.set_mining(MiningMode.AUTO if enabled else MiningMode.MANUAL)
        if enabled and len(self.node.pool):
            self.node.mine()

    def set_interval_mining(self, seconds: float) -> None:
        """``evm_setIntervalMining``: a block every ``seconds``; 0 means manual mining."""
        from layerlab.l1.node import MiningMode

        if seconds == 0:
            self.node.set_mining(MiningMode.MANUAL)
        else:
            self.node.set_mining(MiningMode.INTERVAL, block_time=seconds)

    # -- snapshots -----------------------------------------------------------------------
    def snapshot(self) -> int:
        sid = self._next_snapshot_id
        self._next_snapshot_id += 1
        node = self.node
        self.snapshots[sid] = Snapshot(
            block_number=node.head.block_number,
            pool_raw=[p.wire for p in node.pool.all() if not is_impersonated(p)],
            time_offset=node.meta.time_offset,
            state_override=node.meta.state_override,
        )
        return sid

    def revert(self, snapshot_id: int) -> bool:
        """Restore a snapshot; it and every later snapshot are consumed (as Hardhat)."""
        snap = self.snapshots.get(snapshot_id)
        if snap is None:
            return False
        for sid in [s for s in self.snapshots if s >= snapshot_id]:
            del self.snapshots[sid]
        node = self.node
        node.rewind(snap.block_number)
        node.set_clock(time_offset=snap.time_offset, next_timestamp=None)
        node.set_state_override(
            bytes.fromhex(snap.state_override) if snap.state_override else None
        )
        restored = []
        for raw in snap.pool_raw:
            try:
                restored.append(node.pool.decode(raw))
            except LayerlabError as exc:  # cannot happen: the pool decoded it before
                log.warning("snapshot pool tx not decodable: %s", exc)
        node.readmit(restored)
        return True

    # -- the clock -----------------------------------------------------------------------
    @property
    def time_offset(self) -> int:
        return self.node.meta.time_offset

    def increase_time(self, seconds: int) -> int:
        """``evm_increaseTime``: later blocks are ``seconds`` further ahead; returns the
        total offset."""
        meta = self.node.meta
        self.node.set_clock(time_offset=meta.time_offset + seconds,
                            next_timestamp=meta.next_timestamp)
        return self.node.meta.time_offset

    def set_next_timestamp(self, timestamp: int) -> None:
        """``evm_setNextBlockTimestamp``: the next block's timestamp, and the clock carries
        on from it."""
        head = self.node.head
        if timestamp <= head.timestamp:
            raise InvalidBlock(
                f"timestamp {timestamp} is not after the head's timestamp {head.timestamp}"
            )
        self.node.set_clock(time_offset=timestamp - int(time.time()), next_timestamp=timestamp)

    # -- state edits ---------------------------------------------------------------------
    def edit_state(self, edit: Callable[[StateAPI], None]) -> None:
        """Apply a dev edit to the head state (``anvil_setBalance``...) without a block;
        the next block is built on the edited state."""
        state = self.node.head_state()
        edit(state)
        state.persist()
        self.node.set_state_override(bytes(state.state_root))


def _sign(fields: dict[str, Any], key: bytes) -> bytes:
    from eth_account import Account

    signed = Account.sign_transaction({**fields, "to": _to_hex(fields["to"])}, key)
    return bytes(signed.raw_transaction)


def _to_hex(value: bytes) -> str | None:
    from eth_utils.address import to_checksum_address

    return to_checksum_address(value) if value else None
