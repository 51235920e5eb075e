"""Plasma child-chain types: transactions, UTXO positions, EIP-712 signing, block trees.

The chain is Plasma MVP's (Buterin, "Minimal Viable Plasma", ethresear.ch, January 2018)
with the in-flight exits of More Viable Plasma (Kelvin Fichter et al., "More Viable
Plasma", ethresear.ch, 2018) as the OMG Network's ``plasma-contracts`` built them. This
module is the one spec that ``contracts/plasma/PlasmaChain.sol``, the operator and the
watchers all follow.

**A transaction** spends up to four outputs (``inputs``, each a UTXO position) and creates
one to four outputs ``(owner, token, amount)``; ``token`` is ``address(0)`` for ETH or an
ERC-20 address, every output and input of one transaction has the same token, and the
inputs' total must cover the outputs' total (the difference is the operator's fee).
``metadata`` is 32 free bytes; a deposit transaction has no inputs, one output and its
deposit block number as ``metadata`` (so two equal deposits still have different bytes).

Its bytes are ``abi.encode((uint256[] inputs, (address,address,uint256)[] outputs, bytes32
metadata))`` and its id is ``keccak256`` of them. An output's id is ``keccak256(abi.encode(
txHash, outputIndex))``: the same whether the output is exited by a standard exit (by its
position) or by an in-flight exit (by its transaction), so no output is paid twice.

**Signatures**: each input's owner signs the EIP-712 digest of the transaction under the
domain ``{name: "layerlab-plasma", version: "1", chainId, verifyingContract: the
PlasmaChain contract}``; the typed struct is ``Transaction(uint256[] inputs,Output[]
outputs,bytes32 metadata)Output(address owner,address token,uint256 amount)``. A
transaction carries one 65-byte signature per input, in input order.

**Positions** are OMG's: ``utxoPos = blknum * 1e9 + txindex * 1e4 + oindex``. Child blocks
the operator commits are numbered 1000, 2000, ...; the deposits made after child block
``1000 k`` are blocks ``1000 k + 1``, ``1000 k + 2``, ... (at most 999 of them), each
holding the one deposit transaction at index 0. Smaller positions are older outputs and
exit first.

**A block's root** is the keccak sparse Merkle tree of :mod:`layerlab.primitives.smt`
(``KECCAK_HASHER``) mapping ``txindex -> uint256(txHash)``; an inclusion proof is its
siblings, checked on chain by ``contracts/lib/SparseMerkle.sol``'s ``verifyInclusion``.
The key is the index, so a proof pins a transaction to its position, not only to its
block (a commutative hash tree, as OpenZeppelin's, would not).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_hash.auto import keccak

from layerlab.crypto.eip712 import Domain, StructType, recover_signer, sign_digest
from layerlab.crypto.secp256k1 import BadSignature
from layerlab.errors import LayerlabError, MalformedEncoding
from layerlab.primitives.smt import KECCAK_HASHER, SparseMerkleTree

__all__ = [
    "BLOCK_OFFSET",
    "CHILD_BLOCK_INTERVAL",
    "ETH",
    "MAX_INPUTS",
    "MAX_OUTPUTS",
    "MAX_TXS_PER_BLOCK",
    "TX_OFFSET",
    "Output",
    "PlasmaError",
    "SignedTransaction",
    "Transaction",
    "Utxo",
    "compute_block_root",
    "compute_output_id",
    "decode_position",
    "deposit_transaction",
    "encode_position",
    "plasma_domain",
    "prove_inclusion",
]

BLOCK_OFFSET: Final = 1_000_000_000
TX_OFFSET: Final = 10_000
CHILD_BLOCK_INTERVAL: Final = 1000
MAX_INPUTS: Final = 4
MAX_OUTPUTS: Final = 4
MAX_TXS_PER_BLOCK: Final = TX_OFFSET
ETH: Final = b"\0" * 20
UINT256_MAX: Final = 2**256 - 1
TX_ABI: Final = "(uint256[],(address,address,uint256)[],bytes32)"


class PlasmaError(LayerlabError):
    """A child-chain transaction, block or exit was refused; nothing changed.

    ``check`` is a machine-readable tag: ``malformed``, ``signature``, ``unknown-input``,
    ``spent-input``, ``duplicate-input``, ``mixed-tokens``, ``value``, ``block-full``,
    ``unknown-block``, ``withheld``, ``not-owner``, ``exit`` ...
    """

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


def encode_position(blknum: int, txindex: int, oindex: int) -> int:
    """``blknum * 1e9 + txindex * 1e4 + oindex`` (OMG's ``UtxoPosLib``)."""
    if not (blknum > 0 and 0 <= txindex < MAX_TXS_PER_BLOCK and 0 <= oindex < MAX_OUTPUTS):
        raise MalformedEncoding(f"UTXO position: bad (blknum {blknum}, txindex {txindex}, "
                                f"oindex {oindex})")
    return blknum * BLOCK_OFFSET + txindex * TX_OFFSET + oindex


def decode_position(position: int) -> tuple[int, int, int]:
    """``(blknum, txindex, oindex)`` of a UTXO position."""
    blknum, rest = divmod(position, BLOCK_OFFSET)
    txindex, oindex = divmod(rest, TX_OFFSET)
    if blknum <= 0 or txindex >= MAX_TXS_PER_BLOCK or oindex >= MAX_OUTPUTS:
        raise MalformedEncoding(f"UTXO position {position}: no such output")
    return blknum, txindex, oindex


def plasma_domain(chain_id: int, plasma_contract: bytes) -> Domain:
    """The EIP-712 domain of one PlasmaChain deployment."""
    return Domain(name="layerlab-plasma", version="1", chain_id=chain_id,
                  verifying_contract=plasma_contract)


OUTPUT_STRUCT: Final = StructType("Output", (
    ("address", "owner"), ("address", "token"), ("uint256", "amount")))
TRANSACTION_STRUCT: Final = StructType("Transaction", (
    ("uint256[]", "inputs"), ("Output[]", "outputs"), ("bytes32", "metadata"),
), referenced=(OUTPUT_STRUCT,))


@dataclass(frozen=True, slots=True)
class Output:
    owner: bytes
    token: bytes
    amount: int

    def __post_init__(self) -> None:
        if len(self.owner) != 20 or len(self.token) != 20:
            raise MalformedEncoding("Output: owner and token are 20-byte addresses")
        if not 0 < self.amount <= UINT256_MAX:
            raise MalformedEncoding(f"Output: amount {self.amount} is not in 1..2**256-1")

    def struct_hash(self) -> bytes:
        return OUTPUT_STRUCT.hash_struct([self.owner, self.token, self.amount])


@dataclass(frozen=True)
class Transaction:
    """A child-chain payment: inputs (UTXO positions) to outputs, one token."""

    inputs: tuple[int, ...]
    outputs: tuple[Output, ...]
    metadata: bytes = b"\0" * 32

    def __post_init__(self) -> None:
        if len(self.inputs) > MAX_INPUTS or not 1 <= len(self.outputs) <= MAX_OUTPUTS:
            raise MalformedEncoding(f"Transaction: {len(self.inputs)} inputs and "
                                    f"{len(self.outputs)} outputs (at most {MAX_INPUTS} inputs, "
                                    f"1 to {MAX_OUTPUTS} outputs)")
        if len(set(self.inputs)) != len(self.inputs):
            raise MalformedEncoding("Transaction: an input appears twice")
        for position in self.inputs:
            decode_position(position)
        if len({o.token for o in self.outputs}) != 1:
            raise MalformedEncoding("Transaction: outputs of more than one token")
        if len(self.metadata) != 32:
            raise MalformedEncoding("Transaction: metadata is 32 bytes")

    @property
    def token(self) -> bytes:
        return self.outputs[0].token

    @cached_property
    def encoded(self) -> bytes:
        """``abi.encode((uint256[], (address,address,uint256)[], bytes32))``."""
        return bytes(abi_encode([TX_ABI], [(list(self.inputs),
                                             [(o.owner, o.token, o.amount) for o in self.outputs],
                                             self.metadata)]))

    @cached_property
    def tx_hash(self) -> bytes:
        return bytes(keccak(self.encoded))

    def output_id(self, index: int) -> bytes:
        return compute_output_id(self.tx_hash, index)

    def struct_hash(self) -> bytes:
        inputs_hash = keccak(b"".join(p.to_bytes(32, "big") for p in self.inputs))
        outputs_hash = keccak(b"".join(o.struct_hash() for o in self.outputs))
        return TRANSACTION_STRUCT.hash_struct([inputs_hash, outputs_hash, self.metadata])

    def digest(self, domain: Domain) -> bytes:
        return domain.digest(self.struct_hash())

    def sign(self, domain: Domain, keys: Sequence[bytes]) -> SignedTransaction:
        """Signed by ``keys[i]`` for input ``i`` (the owners of the spent outputs)."""
        if len(keys) != len(self.inputs):
            raise PlasmaError("signature", f"{len(self.inputs)} inputs need {len(self.inputs)} "
                                           f"signatures, got {len(keys)} keys")
        digest = self.digest(domain)
        return SignedTransaction(self, tuple(sign_digest(digest, k) for k in keys))

    def typed_data(self, domain: Domain) -> dict[str, Any]:
        """The transaction as a wallet's ``eth_signTypedData_v4`` takes it (EIP-712 JSON)."""
        return {
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"},
                                 {"name": "version", "type": "string"},
                                 {"name": "chainId", "type": "uint256"},
                                 {"name": "verifyingContract", "type": "address"}],
                "Transaction": [{"name": "inputs", "type": "uint256[]"},
                                {"name": "outputs", "type": "Output[]"},
                                {"name": "metadata", "type": "bytes32"}],
                "Output": [{"name": "owner", "type": "address"},
                           {"name": "token", "type": "address"},
                           {"name": "amount", "type": "uint256"}],
            },
            "primaryType": "Transaction",
            "domain": domain.as_typed_data_domain(),
            "message": {
                "inputs": list(self.inputs),
                "outputs": [{"owner": "0x" + o.owner.hex(), "token": "0x" + o.token.hex(),
                             "amount": o.amount} for o in self.outputs],
                "metadata": "0x" + self.metadata.hex(),
            },
        }

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        """The transaction whose canonical encoding is ``data``; else MalformedEncoding."""
        try:
            (inputs, outputs, metadata), = abi_decode([TX_ABI], data)
            tx = cls(tuple(int(p) for p in inputs),
                     tuple(Output(bytes.fromhex(o[0][2:]), bytes.fromhex(o[1][2:]), int(o[2]))
                           for o in outputs), bytes(metadata))
        except (DecodingError, ValueError, TypeError, OverflowError) as exc:
            raise MalformedEncoding(f"Plasma transaction: {exc}") from exc
        if tx.encoded != bytes(data):
            raise MalformedEncoding("Plasma transaction: not the canonical ABI encoding")
        return tx


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    tx: Transaction
    signatures: tuple[bytes, ...]

    def signers(self, domain: Domain) -> tuple[bytes | None, ...]:
        """The address each signature recovers to (None where it does not recover)."""
        digest = self.tx.digest(domain)
        out: list[bytes | None] = []
        for sig in self.signatures:
            try:
                out.append(recover_signer(digest, sig))
            except (BadSignature, ValueError):
                out.append(None)
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return {"tx": "0x" + self.tx.encoded.hex(),
                "signatures": ["0x" + s.hex() for s in self.signatures]}

    @classmethod
    def from_json(cls, data: Any) -> SignedTransaction:
        try:
            tx = Transaction.decode(bytes.fromhex(str(data["tx"]).removeprefix("0x")))
            sigs = tuple(bytes.fromhex(str(s).removeprefix("0x")) for s in data["signatures"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedEncoding(f"Plasma signed transaction: {exc}") from exc
        if any(len(s) != 65 for s in sigs):
            raise MalformedEncoding("Plasma signed transaction: a signature is not 65 bytes")
        return cls(tx, sigs)


@dataclass(frozen=True, slots=True)
class Utxo:
    """An unspent output at a position, with the transaction that created it."""

    position: int
    output: Output
    tx: Transaction

    @property
    def output_id(self) -> bytes:
        return self.tx.output_id(decode_position(self.position)[2])


def compute_output_id(tx_hash: bytes, index: int) -> bytes:
    """``keccak256(abi.encode(txHash, outputIndex))``."""
    return bytes(keccak(tx_hash + index.to_bytes(32, "big")))


def deposit_transaction(blknum: int, owner: bytes, token: bytes, amount: int) -> Transaction:
    """The transaction a deposit into block ``blknum`` stands for (PlasmaChain.sol builds the
    same bytes)."""
    return Transaction((), (Output(owner, token, amount),), blknum.to_bytes(32, "big"))


def _tree(tx_hashes: Sequence[bytes]) -> SparseMerkleTree:
    if len(tx_hashes) > MAX_TXS_PER_BLOCK:
        raise PlasmaError("block-full", f"{len(tx_hashes)} transactions, at most "
                                        f"{MAX_TXS_PER_BLOCK} a block")
    tree = SparseMerkleTree(KECCAK_HASHER, depth=14)
    for index, h in enumerate(tx_hashes):
        tree.insert(index, int.from_bytes(h, "big"))
    return tree


def compute_block_root(tx_hashes: Sequence[bytes]) -> bytes:
    """The root of a block of transactions (by hash, in order); 32 zero bytes when empty."""
    return _tree(tx_hashes).root.to_bytes(32, "big")


def prove_inclusion(tx_hashes: Sequence[bytes], index: int) -> tuple[int, ...]:
    """The siblings proving transaction ``index`` in its block (``SparseMerkle.verifyInclusion``)."""
    return _tree(tx_hashes).prove(index).siblings
