"""Cross-shard transfers: debit on the source shard, a receipt, a proven credit on the
destination shard.

Each execution shard is its own chain with its own state; a transfer between accounts on
two shards cannot be one transaction. It is the receipt protocol of eth2's phase-1 design
(a shard's state is known to the others through *crosslinks*, the shard block roots the
beacon chain finalizes) and of Near's cross-shard receipts:

1. **Send** (source shard). The user calls ``CrossShard.send(destShard, to)`` with the
   value. The contract locks it and stores the receipt's hash,
   ``keccak256(abi.encode(source, dest, nonce, to, value))``, in its own storage at
   ``receipts[nonce]`` (slot ``keccak256(abi.encode(nonce, 1))``), and emits
   ``CrossShardSent``. :func:`send_cross` returns the receipt as a :class:`CrossReceipt`.
2. **Crosslink** (beacon -> destination shard). When the beacon chain finalizes a
   crosslink of the source shard at block ``n``, the beacon's system account (the only
   sender allowed, like EIP-4788's ``SYSTEM_ADDRESS``) posts block ``n``'s state root on
   every other shard: ``crosslinkedRoot[source][n]`` (:func:`post_crosslink`). A receipt is
   claimable only against such a root, so only from a final block.
3. **Claim** (destination shard). Anyone submits the receipt with its EIP-1186 proof
   (``eth_getProof`` of the source shard at a crosslinked block ``n`` >= the receipt's
   block, :func:`build_claim`): the Merkle-Patricia proof of the CrossShard account (at the
   same address on every shard, :data:`CROSS_SHARD_ADDRESS`) in that state root, then of
   the receipt's slot in that account's storage root. The contract verifies both with
   Optimism's ``SecureMerkleTrie`` (vendored under ``contracts/lib/optimism``), compares the
   proven word with the hash of the claimed fields, marks ``claimed[source][nonce]`` and
   pays ``to`` from its reserve (:func:`claim`).

A receipt is paid at most once (``claimed`` is keyed by source and nonce, whichever block
proves it); a changed value, recipient or nonce hashes to a word the proof does not hold
(``BadProof``); a proof of another block's state fails against the crosslinked root
(``BadProof``); a block with no posted crosslink is refused (``NotCrosslinked``); a
receipt for another shard is refused (``WrongShard``). Value is conserved across shards:
each shard's contract starts with a reserve (sent with its deployment, funded by the
system account's genesis balance, :func:`system_genesis_alloc`); ``send`` moves value from
a user into the source shard's contract, ``claim`` from the destination's contract to the
recipient, so the sum of all balances over all shards changes only by gas fees.

Refusals raise :class:`CrossShardError` subclasses named after the contract's custom
errors (:class:`NotCrosslinked`, :class:`BadProof`, :class:`AlreadyClaimed`,
:class:`WrongShard`, :class:`NotSystem`), decoded by :class:`layerlab.l2.l1client.L1Contract`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final, cast

import rlp
from eth._utils.address import generate_contract_address
from eth_account import Account
from eth_hash.auto import keccak
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from trie import HexaryTrie
from trie.exceptions import BadTrieProof, ValidationError
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import Nonce, RPCEndpoint, TxParams, TxReceipt
from web3.types import Wei as Web3Wei

from layerlab.contracts import ContractArtifact, get_contract, load_artifact
from layerlab.errors import InvalidProof
from layerlab.l2.l1client import RECEIPT_TIMEOUT_SECONDS, L1Contract, ProtocolTxError

__all__ = [
    "CLAIM_GAS_BASE",
    "CLAIM_GAS_PER_BYTE",
    "CLAIM_GAS_PER_NODE",
    "CROSS_SHARD_ADDRESS",
    "RECEIPTS_SLOT",
    "SYSTEM_ADDRESS",
    "SYSTEM_GAS_WEI",
    "SYSTEM_KEY",
    "AlreadyClaimed",
    "BadProof",
    "ClaimProof",
    "CrossReceipt",
    "CrossShardContract",
    "CrossShardError",
    "NotCrosslinked",
    "NotSystem",
    "WrongShard",
    "build_claim",
    "claim",
    "compute_claim_gas_limit",
    "compute_receipt_hash",
    "compute_receipt_slot",
    "deploy",
    "post_crosslink",
    "send_cross",
    "system_genesis_alloc",
    "verify_claim_proof",
]

logger = logging.getLogger(__name__)

SYSTEM_KEY: Final[bytes] = bytes(keccak(b"layerlab: beacon system account of the shards"))
"""Devnet private key of the beacon system account: it deploys CrossShard on every shard
(its first transaction) and is the only sender of crosslinks."""
SYSTEM_ADDRESS: Final[ChecksumAddress] = cast(ChecksumAddress, Account.from_key(SYSTEM_KEY).address)
CROSS_SHARD_ADDRESS: Final[ChecksumAddress] = to_checksum_address(
    generate_contract_address(bytes.fromhex(SYSTEM_ADDRESS[2:]), 0)
)
"""CREATE address of the system account at nonce 0: the same on every shard."""
SYSTEM_GAS_WEI: Final = 100 * 10**18
"""Gas money of the system account besides the reserve (deployment and crosslinks)."""
CLAIM_GAS_BASE: Final = 200_000
CLAIM_GAS_PER_NODE: Final = 60_000
CLAIM_GAS_PER_BYTE: Final = 60
"""Gas limit of a claim: base + per proof node + per proof byte, over twice what a claim
uses (measured: 255k gas for 6 nodes and 659 bytes, limit 600k; 294k in a 5,000-account
state, 6 nodes and 2,183 bytes, limit 691k). Unused gas is not charged; a limit too low
would make the proof check run out of gas inside its ``try`` and the claim fail as
``BadProof``. A claim is not estimated: its proof check runs in a ``try`` (an external
self-call, which gets 63/64 of the gas left), so ``eth_estimateGas``'s binary search runs
it some 25 times (8 s on py-evm)."""
RECEIPTS_SLOT: Final = 1
"""Storage slot of ``CrossShard.receipts`` (the layout's second variable)."""

_NAME: Final = "CrossShard"


class CrossShardError(ProtocolTxError):
    """A CrossShard call or transaction was refused; ``error_name`` (and ``check``) is the
    contract's custom error, or None / ``"l1"`` when the shard's node itself failed."""


class NotCrosslinked(CrossShardError):
    """No finalized crosslink of the source shard at the proof's block is posted here."""


class BadProof(CrossShardError, InvalidProof):
    """The Merkle-Patricia proof does not prove this receipt in the crosslinked state."""


class AlreadyClaimed(CrossShardError):
    """The receipt (source shard, nonce) was already paid on this shard."""


class WrongShard(CrossShardError):
    """The receipt or crosslink names a shard this contract does not accept."""


class NotSystem(CrossShardError):
    """Only the beacon system account posts crosslinks."""


_TYPED: Final[dict[str, type[CrossShardError]]] = {
    cls.__name__: cls for cls in (NotCrosslinked, BadProof, AlreadyClaimed, WrongShard, NotSystem)
}


@dataclass(frozen=True, slots=True)
class CrossReceipt:
    """A transfer sent from ``source_shard``: what ``CrossShard.send`` stored (hashed) at
    ``receipts[nonce]``, and where (``block_number``, ``tx_hash``) on the source shard."""

    source_shard: int
    dest_shard: int
    nonce: int
    to: ChecksumAddress
    value: int
    block_number: int
    tx_hash: bytes

    @property
    def receipt_hash(self) -> bytes:
        return compute_receipt_hash(self.source_shard, self.dest_shard, self.nonce, self.to, self.value)


@dataclass(frozen=True, slots=True)
class ClaimProof:
    """A receipt and its EIP-1186 proofs in the source shard's state at ``block_number``
    (whose state root is ``state_root``): ``account_proof`` of the CrossShard account and
    ``storage_proof`` of ``receipts[nonce]``, each a list of RLP trie nodes, root first."""

    receipt: CrossReceipt
    block_number: int
    state_root: bytes
    account_proof: tuple[bytes, ...]
    storage_proof: tuple[bytes, ...]


def compute_receipt_hash(source_shard: int, dest_shard: int, nonce: int, to: str, value: int) -> bytes:
    """``keccak256(abi.encode(source, dest, nonce, to, value))``, as the contract stores it."""
    words = [source_shard, dest_shard, nonce, int(to, 16), value]
    return bytes(keccak(b"".join(w.to_bytes(32, "big") for w in words)))


def compute_receipt_slot(nonce: int) -> bytes:
    """Storage slot of ``receipts[nonce]``: ``keccak256(abi.encode(nonce, RECEIPTS_SLOT))``
    (Solidity's layout of a mapping)."""
    return bytes(keccak(nonce.to_bytes(32, "big") + RECEIPTS_SLOT.to_bytes(32, "big")))


def system_genesis_alloc(reserve_wei: int) -> dict[str, dict[str, str]]:
    """Genesis ``alloc`` entries (chain-config JSON form) a shard adds so that the system
    account can deploy CrossShard with ``reserve_wei`` and pay for its crosslinks."""
    return {SYSTEM_ADDRESS: {"balance": hex(reserve_wei + SYSTEM_GAS_WEI)}}


class CrossShardContract:
    """``CrossShard`` on one shard through :class:`L1Contract` (typed refusals)."""

    def __init__(self, w3: Web3, artifact: ContractArtifact | None = None) -> None:
        self.w3 = w3
        self.artifact = artifact or load_artifact(_NAME)
        self.l1 = L1Contract(w3, get_contract(w3, self.artifact, CROSS_SHARD_ADDRESS),
                             name=_NAME, error=CrossShardError)
        self.fn = self.l1.contract.functions

    def get_shard_id(self) -> int:
        return int(self.call("shardId"))

    def call(self, name: str, *args: Any) -> Any:
        try:
            return self.l1.call(name, *args)
        except CrossShardError as exc:
            raise _typed(exc) from exc

    def transact(self, key: bytes, what: str, name: str, *args: Any, value: int = 0,
                 gas: int | None = None) -> TxReceipt:
        """Send ``name(*args)`` from ``key``. With ``gas`` the estimate is skipped and the
        call is first run once as an ``eth_call`` from the sender, so that a refusal is
        still raised, typed, before any gas is spent."""
        fn = self.fn[name](*args)
        try:
            if gas is not None:
                sender = Account.from_key(key).address
                try:
                    fn.call({"from": sender, "value": Web3Wei(value)})
                except ContractLogicError as exc:
                    raise self.l1.refused(what, exc) from exc
                except Web3Exception as exc:
                    raise CrossShardError(f"{what}: eth_call from {sender} failed: {exc}") from exc
            return self.l1.transact(key, what, fn, value=value, gas=gas)
        except CrossShardError as exc:
            raise _typed(exc) from exc


def _typed(exc: CrossShardError) -> CrossShardError:
    cls = _TYPED.get(exc.error_name or "")
    return exc if cls is None else cls(str(exc), exc.error_name, exc.error_args)


def deploy(w3: Web3, shard_id: int, shard_count: int, reserve_wei: int) -> ChecksumAddress:
    """Deploy CrossShard on a shard from the system account, as its first transaction (so
    at :data:`CROSS_SHARD_ADDRESS`), with ``reserve_wei`` as the reserve claims are paid
    from. On a shard where it is already deployed for the same shard id and count (a
    restarted network) nothing is sent. Raises :class:`CrossShardError` if the system
    account has sent anything else before, or the deployed one is another shard's."""
    if not 0 <= shard_id < shard_count:
        raise WrongShard(f"shard {shard_id} is not one of the {shard_count} shards", "WrongShard")
    if w3.eth.get_code(CROSS_SHARD_ADDRESS):
        contract = CrossShardContract(w3)
        deployed = (contract.get_shard_id(), int(contract.call("shardCount")))
        if deployed != (shard_id, shard_count):
            raise WrongShard(f"CrossShard at {CROSS_SHARD_ADDRESS} is shard {deployed[0]} of "
                             f"{deployed[1]}, not {shard_id} of {shard_count}", "WrongShard")
        return CROSS_SHARD_ADDRESS
    nonce = w3.eth.get_transaction_count(SYSTEM_ADDRESS, "pending")
    if nonce != 0:
        raise CrossShardError(
            f"CrossShard must be the system account's first transaction (nonce 0) so that it is "
            f"at {CROSS_SHARD_ADDRESS} on every shard; {SYSTEM_ADDRESS} has nonce {nonce}"
        )
    artifact = load_artifact(_NAME)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    try:
        params: TxParams = {"from": SYSTEM_ADDRESS, "nonce": Nonce(0), "value": Web3Wei(reserve_wei)}
        tx = factory.constructor(shard_id, shard_count).build_transaction(params)
        signed = Account.from_key(SYSTEM_KEY).sign_transaction(cast(dict[str, Any], tx))
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_SECONDS)
    except Web3Exception as exc:
        raise CrossShardError(f"deploying CrossShard on shard {shard_id} failed: {exc}") from exc
    address = receipt.get("contractAddress")
    if receipt["status"] != 1 or address != CROSS_SHARD_ADDRESS:
        raise CrossShardError(
            f"deploying CrossShard on shard {shard_id}: tx {tx_hash.to_0x_hex()} has status "
            f"{receipt['status']} and address {address}, expected {CROSS_SHARD_ADDRESS}"
        )
    logger.info("CrossShard of shard %d/%d at %s, reserve %d wei", shard_id, shard_count,
                address, reserve_wei)
    return CROSS_SHARD_ADDRESS


def send_cross(w3: Web3, key: bytes, to_shard: int, to: str, value: int) -> CrossReceipt:
    """Send ``value`` from ``key``'s account on this (source) shard to ``to`` on
    ``to_shard``: the value is locked and the receipt stored; returns it."""
    contract = CrossShardContract(w3)
    recipient = to_checksum_address(to)
    receipt = contract.transact(key, f"CrossShard.send to shard {to_shard}", "send",
                                to_shard, recipient, value=value)
    sent = [e for e in contract.l1.receipt_events(receipt) if e.name == "CrossShardSent"]
    if len(sent) != 1:
        raise CrossShardError(f"CrossShard.send: tx {receipt['transactionHash'].to_0x_hex()} "
                              f"emitted {len(sent)} CrossShardSent events, expected 1")
    return CrossReceipt(
        source_shard=contract.get_shard_id(), dest_shard=int(sent[0].args["destShard"]),
        nonce=int(sent[0].args["nonce"]), to=recipient, value=int(sent[0].args["value"]),
        block_number=int(receipt["blockNumber"]), tx_hash=bytes(receipt["transactionHash"]),
    )


def post_crosslink(w3: Web3, source_shard: int, block_number: int, state_root: bytes) -> None:
    """Record on this (destination) shard that the beacon finalized ``source_shard``'s
    block ``block_number`` with ``state_root``; sent by the system account."""
    CrossShardContract(w3).transact(
        SYSTEM_KEY, f"CrossShard.postCrosslink of shard {source_shard} block {block_number}",
        "postCrosslink", source_shard, block_number, state_root,
    )


def build_claim(source_w3: Web3, receipt: CrossReceipt, block_number: int) -> ClaimProof:
    """The EIP-1186 proof of ``receipt`` in the source shard's state at ``block_number``
    (which must be at or after the receipt's block, and crosslinked where it is claimed).

    The proof is checked here against the block's state root before it is returned, so a
    node serving a wrong proof is caught before any gas is spent."""
    if block_number < receipt.block_number:
        raise CrossShardError(f"block {block_number} precedes receipt {receipt.nonce}'s "
                              f"block {receipt.block_number}: its state cannot hold it")
    slot = compute_receipt_slot(receipt.nonce)
    try:
        header = source_w3.eth.get_block(block_number)
        proof: Any = source_w3.manager.request_blocking(
            RPCEndpoint("eth_getProof"), [CROSS_SHARD_ADDRESS, ["0x" + slot.hex()], hex(block_number)])
    except Web3Exception as exc:
        raise CrossShardError(f"eth_getProof on shard {receipt.source_shard} at block "
                              f"{block_number} failed: {exc}") from exc
    claim_proof = ClaimProof(
        receipt=receipt, block_number=block_number, state_root=bytes(header["stateRoot"]),
        account_proof=tuple(_hex_bytes(node) for node in proof["accountProof"]),
        storage_proof=tuple(_hex_bytes(node) for node in proof["storageProof"][0]["proof"]),
    )
    stored = verify_claim_proof(claim_proof)
    if stored != receipt.receipt_hash:
        raise BadProof(f"shard {receipt.source_shard} at block {block_number} holds "
                       f"0x{stored.hex()} at receipt {receipt.nonce}'s slot, not its hash "
                       f"0x{receipt.receipt_hash.hex()}", "BadProof")
    return claim_proof


def _hex_bytes(value: Any) -> bytes:
    return bytes(value) if not isinstance(value, str) else bytes.fromhex(value.removeprefix("0x"))


def verify_claim_proof(proof: ClaimProof) -> bytes:
    """The 32-byte word the proofs prove at the receipt's slot in ``proof.state_root``
    (the contract's check, in Python with py-trie). Raises :class:`BadProof`."""
    try:
        account_rlp = HexaryTrie.get_from_proof(
            proof.state_root, keccak(bytes.fromhex(CROSS_SHARD_ADDRESS[2:])),
            [rlp.decode(node) for node in proof.account_proof])
        if not account_rlp:
            raise BadProof(f"no CrossShard account in state 0x{proof.state_root.hex()}", "BadProof")
        storage_root = rlp.decode(account_rlp)[2]
        word_rlp = HexaryTrie.get_from_proof(
            storage_root, keccak(compute_receipt_slot(proof.receipt.nonce)),
            [rlp.decode(node) for node in proof.storage_proof])
    except (BadTrieProof, ValidationError, rlp.DecodingError) as exc:
        raise BadProof(f"proof of receipt {proof.receipt.nonce} against state "
                       f"0x{proof.state_root.hex()}: {exc}", "BadProof") from exc
    word = rlp.decode(word_rlp) if word_rlp else b""
    return bytes(word).rjust(32, b"\x00")


def claim(dest_w3: Web3, key: bytes, proof: ClaimProof) -> TxReceipt:
    """Claim the proven receipt on its destination shard, sent (and paid for) by ``key``;
    the value goes to the receipt's ``to``."""
    r = proof.receipt
    return CrossShardContract(dest_w3).transact(
        key, f"CrossShard.claim of shard {r.source_shard} receipt {r.nonce}", "claim",
        r.source_shard, r.dest_shard, r.nonce, r.to, r.value, proof.block_number,
        list(proof.account_proof), list(proof.storage_proof), gas=compute_claim_gas_limit(proof),
    )


def compute_claim_gas_limit(proof: ClaimProof) -> int:
    """The gas limit :func:`claim` sends with (see :data:`CLAIM_GAS_BASE`)."""
    nodes = (*proof.account_proof, *proof.storage_proof)
    return CLAIM_GAS_BASE + CLAIM_GAS_PER_NODE * len(nodes) + CLAIM_GAS_PER_BYTE * sum(map(len, nodes))
