"""The transaction pool: admission checks, per-sender nonce ordering, fee-bump replacement.

A transaction is admitted only if it could be included on top of the current head:
decodable, signed for this chain (EIP-155 / EIP-2718 chain id), with a valid signature,
enough gas for its intrinsic cost (EIP-2028 calldata, EIP-3860 initcode), a fee cap at or
above the head's next base fee (EIP-1559), a nonce neither used nor too far ahead, and a
balance that covers ``value + gas * maxFeePerGas``. Each refusal raises
:class:`InvalidTransaction` with geth's wording, which wallets and libraries recognise.

Per sender the pool keeps a nonce-ordered map. Transactions whose nonces follow the
account's state nonce without a gap are *pending* (ready for a block); the rest are
*queued* until the gap fills. A transaction with the same sender and nonce as one in the
pool replaces it only if it raises both the fee cap and the tip by at least
``price_bump_percent`` (10%, as geth), so a spammer cannot churn the pool for free.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import rlp
from eth.abc import SignedTransactionAPI
from eth.exceptions import UnrecognizedTransactionType
from eth_hash.auto import keccak
from eth_utils.exceptions import ValidationError

from layerlab.crypto.secp256k1 import BadSignature, compute_typed_signing_payload, recover_address
from layerlab.errors import InvalidTransaction
from layerlab.l1 import blobs

MAX_TX_SIZE = 128 * 1024
"""Largest encoded transaction accepted (geth's txMaxSize, 4 slots of 32 KiB)."""


class TransactionDecoder(Protocol):
    def decode(self, encoded: bytes) -> SignedTransactionAPI: ...


class AccountReader(Protocol):
    """Read access to the head state: what admission needs to know about a sender."""

    def get_nonce(self, address: bytes) -> int: ...

    def get_balance(self, address: bytes) -> int: ...


@dataclass(frozen=True, slots=True)
class PooledTransaction:
    """A decoded, sender-recovered, admitted transaction with its fee parameters."""

    tx: SignedTransactionAPI
    raw: bytes
    hash: bytes
    sender: bytes
    nonce: int
    gas: int
    max_fee: int
    max_priority_fee: int
    sidecar: blobs.BlobSidecar | None = None
    """The blobs of a type-3 transaction received in network form (EIP-4844)."""
    network_raw: bytes = b""

    @property
    def wire(self) -> bytes:
        """The encoding received: with the blob sidecar, if any (what the pool stores)."""
        return self.network_raw or self.raw

    @property
    def blob_gas(self) -> int:
        return blobs.get_blob_gas(self.tx) if self.sidecar is not None else 0

    @property
    def max_fee_per_blob_gas(self) -> int:
        return int(self.tx.max_fee_per_blob_gas) if self.sidecar is not None else 0

    @property
    def max_cost(self) -> int:
        cost = int(self.tx.value) + self.gas * self.max_fee
        if self.sidecar is None:
            return cost
        return cost + self.blob_gas * self.max_fee_per_blob_gas

    def effective_tip(self, base_fee: int) -> int:
        """The miner's tip per gas at ``base_fee`` (EIP-1559)."""
        return min(self.max_priority_fee, self.max_fee - base_fee)


def recover_sender(tx: SignedTransactionAPI, raw: bytes) -> bytes:
    """Recover and cache (in py-evm's ``sender`` slot) the signer of ``tx``."""
    try:
        if raw[0] < 0x7F:  # EIP-2718 typed envelope
            payload = compute_typed_signing_payload(raw)
            parity = int(tx.y_parity)
        else:
            payload = tx.get_message_for_signing()
            parity = int(tx.y_parity) if hasattr(tx, "y_parity") else (tx.v - 27) % 2
        sender = recover_address(keccak(payload), parity, int(tx.r), int(tx.s))
    except (BadSignature, ValidationError, ValueError) as exc:
        raise InvalidTransaction("bad-signature", f"invalid sender: {exc}") from exc
    tx.__dict__["sender"] = sender  # py-evm caches ``sender``; reuse the recovery
    return sender


def get_fee_caps(tx: SignedTransactionAPI) -> tuple[int, int]:
    """``(maxFeePerGas, maxPriorityFeePerGas)``; both equal ``gasPrice`` before EIP-1559
    (types 0 and 1); types 2 (EIP-1559), 3 (EIP-4844) and 4 (EIP-7702) carry both."""
    if (getattr(tx, "type_id", None) or 0) >= 2:
        return int(tx.max_fee_per_gas), int(tx.max_priority_fee_per_gas)
    return int(tx.gas_price), int(tx.gas_price)


def _hex(address: bytes) -> str:
    return "0x" + address.hex()


class TxPool:
    """Admitted transactions by sender and nonce."""

    def __init__(
        self,
        chain_id: int,
        decoder: TransactionDecoder,
        *,
        nonce_gap_limit: int = 64,
        capacity: int = 100_000,
        price_bump_percent: int = 10,
    ) -> None:
        self.chain_id = chain_id
        self._decoder = decoder
        self.nonce_gap_limit = nonce_gap_limit
        self.capacity = capacity
        self.price_bump_percent = price_bump_percent
        self._by_sender: dict[bytes, dict[int, PooledTransaction]] = {}
        self._by_hash: dict[bytes, PooledTransaction] = {}
        self._cost: dict[bytes, int] = {}
        """Per sender, the summed max cost of its pooled transactions."""

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> PooledTransaction | None:
        return self._by_hash.get(tx_hash)

    def all(self) -> Iterator[PooledTransaction]:
        return iter(list(self._by_hash.values()))

    def sender_nonces(self, sender: bytes) -> list[int]:
        return sorted(self._by_sender.get(sender, {}))

    # -- admission -----------------------------------------------------------------------
    def decode(self, raw: bytes) -> PooledTransaction:
        """Decode and check everything that does not depend on chain state."""
        network_raw, sidecar = b"", None
        if blobs.is_network_form(raw):  # EIP-4844: the sidecar is checked, kept, not mined
            split = blobs.decode_network_form(raw)
            network_raw, raw, sidecar = raw, split.tx_raw, split.sidecar
        if len(raw) > MAX_TX_SIZE:
            raise InvalidTransaction(
                "oversized", f"oversized data: transaction size {len(raw)}, limit {MAX_TX_SIZE}"
            )
        if not raw:
            raise InvalidTransaction("malformed", "rlp: empty transaction")
        try:
            tx = self._decoder.decode(raw)
        except UnrecognizedTransactionType as exc:
            raise InvalidTransaction(
                "unsupported-type", f"transaction type not supported: type {raw[0]:#x}"
            ) from exc
        except (rlp.DecodingError, rlp.DeserializationError, ValidationError, ValueError,
                TypeError, IndexError, KeyError) as exc:
            raise InvalidTransaction("malformed", f"rlp: cannot decode transaction: {exc}") from exc
        type_id = getattr(tx, "type_id", None)
        if type_id == 3 and sidecar is None:
            raise InvalidTransaction(
                "unsupported-type", "blob transactions must be sent in network form with sidecars"
            )
        tx_chain_id = tx.chain_id
        if tx_chain_id is not None and tx_chain_id != self.chain_id:
            raise InvalidTransaction(
                "wrong-chain-id",
                f"invalid chain id for signer: have {tx_chain_id} want {self.chain_id}",
            )
        sender = recover_sender(tx, raw)
        intrinsic = int(tx.intrinsic_gas)
        if tx.gas < intrinsic:
            raise InvalidTransaction(
                "intrinsic-gas",
                f"intrinsic gas too low: gas {tx.gas}, minimum needed {intrinsic}",
            )
        max_fee, tip = get_fee_caps(tx)
        if tip > max_fee:
            raise InvalidTransaction(
                "tip-above-cap",
                f"max priority fee per gas higher than max fee per gas: address {_hex(sender)}, "
                f"maxPriorityFeePerGas: {tip}, maxFeePerGas: {max_fee}",
            )
        try:
            tx.validate()
        except ValidationError as exc:
            raise InvalidTransaction("invalid", f"invalid transaction: {exc}") from exc
        if sidecar is not None:
            if type_id != 3:
                raise InvalidTransaction("unexpected-sidecar", "unexpected blob sidecar")
            blobs.validate_sidecar(tx.blob_versioned_hashes, sidecar)
        # strict RLP decoding accepts only the canonical encoding, so the transaction hash
        # is the hash of the bytes received (py-evm's ``tx.hash`` would re-encode them)
        return PooledTransaction(
            tx=tx, raw=raw, hash=bytes(keccak(raw)), sender=sender, nonce=int(tx.nonce),
            gas=int(tx.gas), max_fee=max_fee, max_priority_fee=tip, sidecar=sidecar,
            network_raw=network_raw,
        )

    def add(
        self,
        ptx: PooledTransaction,
        state: AccountReader,
        *,
        base_fee: int,
        block_gas_limit: int,
        restoring: bool = False,
        blob_base_fee: int = 0,
    ) -> PooledTransaction | None:
        """Admit ``ptx`` against the head state; return the transaction it replaced, if any.

        ``restoring`` re-admits a transaction this pool had already acknowledged (a restart
        from disk, an ``evm_revert``): the checks that only guard *new* admissions (fee cap
        below the current base fee, the nonce-gap limit) are skipped, because such a
        transaction was valid when it was acknowledged and waits like any pooled one; the
        checks that the chain can have made fail since (nonce already used, balance too
        low) still apply.
        """
        if ptx.hash in self._by_hash:
            raise InvalidTransaction("already-known", "already known")
        sender = _hex(ptx.sender)
        if ptx.gas > block_gas_limit:
            raise InvalidTransaction(
                "gas-limit", f"exceeds block gas limit: gas {ptx.gas}, limit {block_gas_limit}"
            )
        if ptx.max_fee < base_fee and not restoring:
            raise InvalidTransaction(
                "fee-cap-too-low",
                f"max fee per gas less than block base fee: address {sender}, "
                f"maxFeePerGas: {ptx.max_fee}, baseFee: {base_fee}",
            )
        if ptx.blob_gas and ptx.max_fee_per_blob_gas < blob_base_fee and not restoring:
            raise InvalidTransaction(
                "blob-fee-cap-too-low",
                f"max fee per blob gas less than block blob gas fee: address {sender} "
                f"blobGasFeeCap: {ptx.max_fee_per_blob_gas}, blobBaseFee: {blob_base_fee}",
            )
        state_nonce = state.get_nonce(ptx.sender)
        if ptx.nonce < state_nonce:
            raise InvalidTransaction(
                "nonce-too-low",
                f"nonce too low: address {sender}, tx: {ptx.nonce} state: {state_nonce}",
            )
        queued = self._by_sender.get(ptx.sender, {})
        expected = state_nonce
        while expected in queued:
            expected += 1
        if ptx.nonce > expected + self.nonce_gap_limit and not restoring:
            raise InvalidTransaction(
                "nonce-gap",
                f"nonce too high: address {sender}, tx: {ptx.nonce}, next expected {expected} "
                f"(state {state_nonce}), gap limit {self.nonce_gap_limit}",
            )
        balance = state.get_balance(ptx.sender)
        # the sender must afford this transaction and every pooled one before it; the cached
        # total holds only while no pooled nonce is stale (below the state nonce: mined
        # elsewhere or skipped by anvil_setNonce, and not yet pruned)
        if queued and ptx.nonce > max(queued) and min(queued) >= state_nonce:
            committed = self._cost.get(ptx.sender, 0)
        else:
            committed = sum(
                p.max_cost for n, p in queued.items() if state_nonce <= n < ptx.nonce
            )
        if balance < committed + ptx.max_cost:
            raise InvalidTransaction(
                "insufficient-funds",
                f"insufficient funds for gas * price + value: address {sender} have {balance} "
                f"want {committed + ptx.max_cost}",
            )
        old = queued.get(ptx.nonce)
        if old is not None:
            bump = 100 + self.price_bump_percent
            if ptx.max_fee * 100 < old.max_fee * bump or (
                ptx.max_priority_fee * 100 < old.max_priority_fee * bump
            ):
                raise InvalidTransaction(
                    "replacement-underpriced",
                    f"replacement transaction underpriced: needs fee cap >= "
                    f"{-(-old.max_fee * bump // 100)} and tip >= "
                    f"{-(-old.max_priority_fee * bump // 100)}, got {ptx.max_fee} and "
                    f"{ptx.max_priority_fee}",
                )
            del self._by_hash[old.hash]
            self._cost[ptx.sender] -= old.max_cost
        elif len(self._by_hash) >= self.capacity:
            raise InvalidTransaction("pool-full", f"txpool is full ({self.capacity} transactions)")
        self._by_sender.setdefault(ptx.sender, {})[ptx.nonce] = ptx
        self._by_hash[ptx.hash] = ptx
        self._cost[ptx.sender] = self._cost.get(ptx.sender, 0) + ptx.max_cost
        return old

    # -- selection and removal -----------------------------------------------------------
    def pending(self, state: AccountReader) -> dict[bytes, list[PooledTransaction]]:
        """Per sender, the gap-free run of transactions starting at the state nonce."""
        ready: dict[bytes, list[PooledTransaction]] = {}
        for sender, by_nonce in self._by_sender.items():
            nonce = state.get_nonce(sender)
            run = []
            while nonce in by_nonce:
                run.append(by_nonce[nonce])
                nonce += 1
            if run:
                ready[sender] = run
        return ready

    def select(
        self, state: AccountReader, *, base_fee: int, gas_limit: int, max_count: int | None = None,
        blob_base_fee: int = 0, blob_gas_limit: int = blobs.CANCUN.max_blob_gas,
    ) -> list[PooledTransaction]:
        """Pick a block's transactions: highest tip first, nonce order within a sender.

        Transactions whose fee cap is below ``base_fee`` (or blob fee cap below
        ``blob_base_fee``) wait (they stay in the pool); the sum of gas limits stays within
        ``gas_limit`` and the blob gas within ``blob_gas_limit`` (EIP-4844).
        """
        heads: list[tuple[int, int, bytes]] = []
        runs = self.pending(state)
        cursor: dict[bytes, int] = {}
        for seq, (sender, run) in enumerate(runs.items()):
            cursor[sender] = 0
            if run[0].max_fee >= base_fee:
                heapq.heappush(heads, (-run[0].effective_tip(base_fee), seq, sender))
        order = {sender: seq for seq, sender in enumerate(runs)}
        chosen: list[PooledTransaction] = []
        gas_left = gas_limit
        blob_gas_left = blob_gas_limit
        while heads and (max_count is None or len(chosen) < max_count):
            _, _, sender = heapq.heappop(heads)
            run = runs[sender]
            ptx = run[cursor[sender]]
            if ptx.gas > gas_left:
                continue  # this sender's next tx does not fit; its later ones cannot go first
            if ptx.blob_gas and (ptx.blob_gas > blob_gas_left
                                 or ptx.max_fee_per_blob_gas < blob_base_fee):
                continue
            chosen.append(ptx)
            gas_left -= ptx.gas
            blob_gas_left -= ptx.blob_gas
            cursor[sender] += 1
            if cursor[sender] < len(run):
                nxt = run[cursor[sender]]
                if nxt.max_fee >= base_fee:
                    heapq.heappush(heads, (-nxt.effective_tip(base_fee), order[sender], sender))
        return chosen

    def remove(self, tx_hashes: Iterable[bytes]) -> list[PooledTransaction]:
        removed = []
        for tx_hash in tx_hashes:
            ptx = self._by_hash.pop(tx_hash, None)
            if ptx is None:
                continue
            by_nonce = self._by_sender[ptx.sender]
            if by_nonce.get(ptx.nonce) is ptx:
                del by_nonce[ptx.nonce]
                self._cost[ptx.sender] -= ptx.max_cost
            if not by_nonce:
                del self._by_sender[ptx.sender]
                del self._cost[ptx.sender]
            removed.append(ptx)
        return removed

    def prune(self, state: AccountReader, senders: Iterable[bytes]) -> list[PooledTransaction]:
        """Drop transactions of ``senders`` whose nonce the state has already used."""
        stale: list[bytes] = []
        for sender in set(senders):
            nonce = state.get_nonce(sender)
            stale.extend(p.hash for n, p in self._by_sender.get(sender, {}).items() if n < nonce)
        return self.remove(stale)

    def clear(self) -> None:
        self._cost.clear()
        self._by_sender.clear()
        self._by_hash.clear()
