"""L2 transactions of the rollups: kinds, EIP-712 signing, and the step encoding on L1.

Every L2 transaction is signed by its sender with secp256k1 over EIP-712 typed data
(EIP-712, "Typed structured data hashing and signing"), under the domain
``{name: "layerlab-rollup", version: "1", chainId, verifyingContract}`` where
``verifyingContract`` is the rollup's L1 contract. So ordinary Ethereum keys and wallets
sign L2 transactions, the L1 contract checks one with ``ecrecover``, and a transaction
signed for another chain or another deployment recovers to a different address and is
refused (EIP-712 section "Rationale for domainSeparator").

The typed structs (``encodeType`` strings, what a wallet shows):

- ``Transfer(uint32 token,address to,uint256 amount,uint64 nonce)``
- ``MintNFT(uint64 tokenId,address to,uint64 nonce)``
- ``TransferNFT(uint64 collection,uint64 tokenId,address to,uint64 nonce)``
- ``Swap(uint32 tokenIn,uint32 tokenOut,uint256 amountIn,uint256 minOut,uint64 nonce)``
- ``AddLiquidity(uint32 token0,uint32 token1,uint256 amount0,uint256 amount1,
  uint256 minShares,uint64 nonce)``
- ``RemoveLiquidity(uint32 token0,uint32 token1,uint256 shares,uint256 min0,uint256 min1,
  uint64 nonce)``
- ``Withdraw(uint32 token,uint256 amount,address recipient,uint64 nonce)``

**Step encoding** (what a batch carries on L1 and what the one-step prover parses): a kind
byte, then the struct's fields in order, fixed width, big endian (``uint32`` 4 bytes,
``uint64`` 8, ``uint256`` 32, ``address`` 20), then the 65-byte signature ``r || s || v``
(v = 27 or 28). Kinds: ``0x01`` Transfer, ``0x02`` MintNFT, ``0x03`` TransferNFT, ``0x04``
Swap, ``0x05`` AddLiquidity, ``0x06`` RemoveLiquidity, ``0x07`` Withdraw. A deposit step is
the bridge's ``0xD0 || uint64 index || sender || to || token || uint32 tokenId || uint256
amount`` and a forced step is ``0xF0 || <a transaction step>`` (OptimisticRollup.sol).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final

from eth_hash.auto import keccak

from layerlab.crypto.eip712 import Domain, StructType, recover_signer, sign_digest
from layerlab.crypto.secp256k1 import BadSignature
from layerlab.errors import MalformedEncoding

__all__ = [
    "DEPOSIT_KIND",
    "FORCED_KIND",
    "TX_TYPES",
    "AddLiquidity",
    "Deposit",
    "L2Tx",
    "MintNFT",
    "RemoveLiquidity",
    "SignedTx",
    "Swap",
    "Transfer",
    "TransferNFT",
    "Withdraw",
    "decode_deposit_step",
    "decode_tx_step",
    "rollup_domain",
    "sign_tx",
]

DEPOSIT_KIND: Final = 0xD0
FORCED_KIND: Final = 0xF0
SIGNATURE_BYTES: Final = 65
_WIDTH: Final = {"uint32": 4, "uint64": 8, "uint256": 32, "address": 20}


def rollup_domain(chain_id: int, rollup_contract: bytes) -> Domain:
    """The EIP-712 domain of one rollup deployment."""
    return Domain(name="layerlab-rollup", version="1", chain_id=chain_id,
                  verifying_contract=rollup_contract)


@dataclass(frozen=True, slots=True)
class L2Tx:
    """Base of the signed L2 transaction kinds (fields in EIP-712 member order)."""

    KIND: ClassVar[int] = 0
    STRUCT: ClassVar[StructType]
    nonce: int

    def __post_init__(self) -> None:
        for kind, name in self.STRUCT.members:
            value = getattr(self, name)
            if kind == "address":
                if not isinstance(value, bytes) or len(value) != 20:
                    raise MalformedEncoding(f"{type(self).__name__}.{name}: an address is 20 "
                                            f"bytes, got {value!r}")
            elif not isinstance(value, int) or not 0 <= value < 1 << (8 * _WIDTH[kind]):
                raise MalformedEncoding(f"{type(self).__name__}.{name}: {value!r} is not a "
                                        f"{kind}")

    def struct_hash(self) -> bytes:
        """EIP-712 ``hashStruct``: every member is static, so one 32-byte word each."""
        words = [self.STRUCT.type_hash]
        for kind, name in self.STRUCT.members:
            value = getattr(self, name)
            words.append(value.rjust(32, b"\0") if kind == "address" else value.to_bytes(32, "big"))
        return bytes(keccak(b"".join(words)))

    def typed_data(self, domain: Domain) -> dict[str, Any]:
        """The transaction as a wallet's ``eth_signTypedData_v4`` takes it (EIP-712 JSON)."""
        message = {_camel(name): ("0x" + getattr(self, name).hex() if kind == "address"
                                  else getattr(self, name))
                   for kind, name in self.STRUCT.members}
        return {
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"},
                                 {"name": "version", "type": "string"},
                                 {"name": "chainId", "type": "uint256"},
                                 {"name": "verifyingContract", "type": "address"}],
                self.STRUCT.name: [{"name": _camel(n), "type": t}
                                   for t, n in self.STRUCT.members],
            },
            "primaryType": self.STRUCT.name,
            "domain": domain.as_typed_data_domain(),
            "message": message,
        }

    def encode(self) -> bytes:
        """The step body (without its signature): kind byte, then fixed-width fields."""
        out = [bytes([self.KIND])]
        for kind, name in self.STRUCT.members:
            value = getattr(self, name)
            out.append(value if kind == "address" else value.to_bytes(_WIDTH[kind], "big"))
        return b"".join(out)


def _struct(cls: type[L2Tx], members: str) -> StructType:
    pairs = tuple((m.split()[0], m.split()[1]) for m in members.split(","))
    names = [f.name for f in fields(cls)]
    if sorted(n for _, n in pairs) != sorted(names):
        raise TypeError(f"{cls.__name__}: struct members {pairs} do not match fields {names}")
    return StructType(cls.__name__, pairs)


@dataclass(frozen=True, slots=True)
class Transfer(L2Tx):
    KIND: ClassVar[int] = 0x01
    token: int
    to: bytes
    amount: int


@dataclass(frozen=True, slots=True)
class MintNFT(L2Tx):
    """Mint ``token_id`` in the sender's own collection (collection = its account index)."""

    KIND: ClassVar[int] = 0x02
    token_id: int
    to: bytes


@dataclass(frozen=True, slots=True)
class TransferNFT(L2Tx):
    KIND: ClassVar[int] = 0x03
    collection: int
    token_id: int
    to: bytes


@dataclass(frozen=True, slots=True)
class Swap(L2Tx):
    KIND: ClassVar[int] = 0x04
    token_in: int
    token_out: int
    amount_in: int
    min_out: int


@dataclass(frozen=True, slots=True)
class AddLiquidity(L2Tx):
    KIND: ClassVar[int] = 0x05
    token0: int
    token1: int
    amount0: int
    amount1: int
    min_shares: int


@dataclass(frozen=True, slots=True)
class RemoveLiquidity(L2Tx):
    KIND: ClassVar[int] = 0x06
    token0: int
    token1: int
    shares: int
    min0: int
    min1: int


@dataclass(frozen=True, slots=True)
class Withdraw(L2Tx):
    KIND: ClassVar[int] = 0x07
    token: int
    amount: int
    recipient: bytes


# EIP-712 member names are camelCase as a wallet shows them; the dataclass fields are the
# same names in snake case, so the struct is declared with the fields' own names here and
# the camelCase spelling lives in ``encodeType`` below.
_MEMBERS: Final[dict[type[L2Tx], str]] = {
    Transfer: "uint32 token,address to,uint256 amount,uint64 nonce",
    MintNFT: "uint64 token_id,address to,uint64 nonce",
    TransferNFT: "uint64 collection,uint64 token_id,address to,uint64 nonce",
    Swap: "uint32 token_in,uint32 token_out,uint256 amount_in,uint256 min_out,uint64 nonce",
    AddLiquidity: "uint32 token0,uint32 token1,uint256 amount0,uint256 amount1,"
                  "uint256 min_shares,uint64 nonce",
    RemoveLiquidity: "uint32 token0,uint32 token1,uint256 shares,uint256 min0,uint256 min1,"
                     "uint64 nonce",
    Withdraw: "uint32 token,uint256 amount,address recipient,uint64 nonce",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


@dataclass(frozen=True, slots=True)
class _NamedStruct(StructType):
    """A struct whose EIP-712 member names are the camelCase of the Python fields."""

    @property
    def encoded_type(self) -> str:
        return f"{self.name}({','.join(f'{t} {_camel(n)}' for t, n in self.members)})"


for _cls, _spec in _MEMBERS.items():
    _plain = _struct(_cls, _spec)
    _cls.STRUCT = _NamedStruct(_plain.name, _plain.members)

TX_TYPES: Final[dict[int, type[L2Tx]]] = {cls.KIND: cls for cls in _MEMBERS}


@dataclass(frozen=True, slots=True)
class SignedTx:
    tx: L2Tx
    signature: bytes
    """65 bytes ``r || s || v``."""

    def digest(self, domain: Domain) -> bytes:
        return domain.digest(self.tx.struct_hash())

    def recover_sender(self, domain: Domain) -> bytes | None:
        """The signer's address, or None when the signature does not recover."""
        try:
            return recover_signer(self.digest(domain), self.signature)
        except (BadSignature, ValueError):
            return None

    def encode(self) -> bytes:
        return self.tx.encode() + self.signature


def sign_tx(tx: L2Tx, private_key: bytes, domain: Domain) -> SignedTx:
    return SignedTx(tx, sign_digest(domain.digest(tx.struct_hash()), private_key))


def decode_tx_step(data: bytes) -> SignedTx:
    """A transaction step; anything else raises :class:`MalformedEncoding`."""
    if not data or data[0] not in TX_TYPES:
        raise MalformedEncoding(f"L2 step: unknown kind {data[:1].hex() or '(empty)'}")
    cls = TX_TYPES[data[0]]
    widths = [_WIDTH[kind] for kind, _ in cls.STRUCT.members]
    if len(data) != 1 + sum(widths) + SIGNATURE_BYTES:
        raise MalformedEncoding(f"L2 step {cls.__name__}: {len(data)} bytes, expected "
                                f"{1 + sum(widths) + SIGNATURE_BYTES}")
    values: dict[str, Any] = {}
    at = 1
    for (kind, name), width in zip(cls.STRUCT.members, widths, strict=True):
        chunk = data[at:at + width]
        values[name] = bytes(chunk) if kind == "address" else int.from_bytes(chunk, "big")
        at += width
    return SignedTx(cls(**values), bytes(data[at:]))


@dataclass(frozen=True, slots=True)
class Deposit:
    """An L1 -> L2 message from the bridge's deposit queue (unsigned: L1 authenticated it)."""

    index: int
    l1_sender: bytes
    to: bytes
    l1_token: bytes
    """address(0) for ETH."""
    token: int
    amount: int

    def encode(self) -> bytes:
        return (bytes([DEPOSIT_KIND]) + self.index.to_bytes(8, "big") + self.l1_sender + self.to
                + self.l1_token + self.token.to_bytes(4, "big") + self.amount.to_bytes(32, "big"))


DEPOSIT_STEP_BYTES: Final = 1 + 8 + 20 + 20 + 20 + 4 + 32


def decode_deposit_step(data: bytes) -> Deposit:
    if len(data) != DEPOSIT_STEP_BYTES or data[0] != DEPOSIT_KIND:
        raise MalformedEncoding(f"deposit step: {len(data)} bytes starting "
                                f"{data[:1].hex() or '(empty)'}, expected {DEPOSIT_STEP_BYTES} "
                                f"starting d0")
    return Deposit(index=int.from_bytes(data[1:9], "big"), l1_sender=bytes(data[9:29]),
                   to=bytes(data[29:49]), l1_token=bytes(data[49:69]),
                   token=int.from_bytes(data[69:73], "big"),
                   amount=int.from_bytes(data[73:105], "big"))
