"""JSON-RPC value codecs: Ethereum's hex encodings in, py-evm objects out as JSON.

Quantities are ``0x``-prefixed hex without leading zeros; data is even-length ``0x`` hex;
blocks are named by number, by tag (``latest``, ``earliest``, ``pending``, ``safe``,
``finalized``) or by hash (EIP-1898 ``{"blockHash": ...}``). Every parser raises
:class:`InvalidParams` naming the parameter and the value it rejected.
"""

from __future__ import annotations

import re
from typing import Any

from eth._utils.address import generate_contract_address
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI
from eth_utils.address import to_checksum_address

from layerlab.errors import LayerlabError
from layerlab.l1 import blobs
from layerlab.l1.txpool import get_fee_caps


class InvalidParams(LayerlabError):
    """A JSON-RPC parameter has the wrong type or value (error code -32602)."""


BLOCK_TAGS = ("latest", "earliest", "pending", "safe", "finalized")


def hex_int(value: int) -> str:
    return hex(int(value))


def hex_data(value: bytes) -> str:
    return "0x" + bytes(value).hex()


UINT256_MAX = 2**256 - 1
_HEX_QUANTITY = re.compile(r"0[xX][0-9a-fA-F]+")
_HEX_DATA = re.compile(r"0[xX](?:[0-9a-fA-F]{2})*")


def parse_quantity(value: Any, name: str = "quantity", limit: int = UINT256_MAX) -> int:
    """A ``0x`` hex quantity (or a non-negative JSON integer) no larger than ``limit``.

    Only hex digits are accepted: Python's ``int(s, 16)`` alone would also take
    whitespace, underscores and a sign.
    """
    if isinstance(value, bool):
        raise InvalidParams(f"{name}: expected hex quantity, got {value!r}")
    if isinstance(value, int) and value >= 0:
        number = value
    elif isinstance(value, str) and _HEX_QUANTITY.fullmatch(value):
        number = int(value, 16)
    else:
        shown = value[:20] + "..." if isinstance(value, str) and len(value) > 20 else value
        raise InvalidParams(f"{name}: expected 0x-prefixed hex quantity, got {shown!r}")
    if number > limit:
        raise InvalidParams(f"{name}: {number:#x} exceeds the maximum {limit:#x}")
    return number


def parse_data(value: Any, name: str = "data") -> bytes:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        shown = value[:20] + "..." if isinstance(value, str) and len(value) > 20 else value
        raise InvalidParams(f"{name}: expected 0x-prefixed hex data, got {shown!r}")
    if len(value) % 2:
        raise InvalidParams(f"{name}: hex data has an odd number of digits")
    if not _HEX_DATA.fullmatch(value):
        raise InvalidParams(f"{name}: invalid hex data {value[:20]!r}")
    return bytes.fromhex(value[2:])


def parse_address(value: Any, name: str = "address") -> bytes:
    raw = parse_data(value, name)
    if len(raw) != 20:
        raise InvalidParams(f"{name}: address must be 20 bytes, got {len(raw)}")
    return raw


def parse_hash(value: Any, name: str = "hash") -> bytes:
    raw = parse_data(value, name)
    if len(raw) != 32:
        raise InvalidParams(f"{name}: hash must be 32 bytes, got {len(raw)}")
    return raw


def parse_bool(value: Any, name: str = "flag") -> bool:
    if not isinstance(value, bool):
        raise InvalidParams(f"{name}: expected a boolean, got {value!r}")
    return value


def parse_block_id(value: Any, name: str = "block") -> str | int | bytes:
    """A tag string, a block number, or a block hash (EIP-1898)."""
    if value is None:
        return "latest"
    if isinstance(value, str) and value in BLOCK_TAGS:
        return value
    if isinstance(value, dict):
        if "blockHash" in value:
            return parse_hash(value["blockHash"], f"{name}.blockHash")
        if "blockNumber" in value:
            return parse_quantity(value["blockNumber"], f"{name}.blockNumber")
        raise InvalidParams(f"{name}: object must have blockHash or blockNumber")
    if isinstance(value, str) and len(value) == 66:
        return parse_hash(value, name)
    return parse_quantity(value, name)


TX_FIELDS = {"from", "to", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "value",
             "data", "input", "nonce", "chainId", "type", "accessList", "blobVersionedHashes",
             "maxFeePerBlobGas"}


def parse_tx_object(value: Any, name: str = "transaction") -> dict[str, Any]:
    """A call/transaction object (``eth_call``, ``eth_sendTransaction``, ``eth_estimateGas``)."""
    if not isinstance(value, dict):
        raise InvalidParams(f"{name}: expected an object, got {type(value).__name__}")
    out: dict[str, Any] = {}
    for key, raw in value.items():
        if key not in TX_FIELDS:
            raise InvalidParams(f"{name}: unknown field {key!r}")
        if raw is None:
            continue
        if key in ("from", "to"):
            out[key] = parse_address(raw, f"{name}.{key}")
        elif key in ("data", "input"):
            data = parse_data(raw, f"{name}.{key}")
            if out.setdefault("data", data) != data:
                raise InvalidParams(
                    f'{name}: both "data" and "input" are set and not equal; use "input"'
                )
        elif key in ("accessList", "blobVersionedHashes"):
            continue
        else:
            out[key] = parse_quantity(raw, f"{name}.{key}")
    return out


# -- formatters ---------------------------------------------------------------------------
def format_header(header: BlockHeaderAPI, size: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": hex_int(header.block_number),
        "hash": hex_data(header.hash),
        "parentHash": hex_data(header.parent_hash),
        "nonce": hex_data(header.nonce),
        "sha3Uncles": hex_data(header.uncles_hash),
        "logsBloom": hex_data(int(header.bloom).to_bytes(256, "big")),
        "transactionsRoot": hex_data(header.transaction_root),
        "stateRoot": hex_data(header.state_root),
        "receiptsRoot": hex_data(header.receipt_root),
        "miner": to_checksum_address(header.coinbase),
        "difficulty": hex_int(header.difficulty),
        "totalDifficulty": hex_int(header.difficulty),
        "extraData": hex_data(header.extra_data),
        "size": hex_int(size),
        "gasLimit": hex_int(header.gas_limit),
        "gasUsed": hex_int(header.gas_used),
        "timestamp": hex_int(header.timestamp),
        "mixHash": hex_data(header.mix_hash),
        "uncles": [],
    }
    # as geth: each fork's header fields appear from that fork on (London, Shanghai,
    # Cancun, Prague), read from the header's own class
    fields = getattr(type(header), "_meta", None)
    names = set(fields.field_names) if fields is not None else set(_FORK_HEADER_FIELDS)
    for name, key, encode in _FORK_HEADER_FIELDS:
        if name in names:
            out[key] = encode(getattr(header, name))
    if "withdrawals_root" in names:
        out["withdrawals"] = []
    return out


_FORK_HEADER_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("base_fee_per_gas", "baseFeePerGas", hex_int),
    ("withdrawals_root", "withdrawalsRoot", hex_data),
    ("blob_gas_used", "blobGasUsed", hex_int),
    ("excess_blob_gas", "excessBlobGas", hex_int),
    ("parent_beacon_block_root", "parentBeaconBlockRoot", hex_data),
    ("requests_hash", "requestsHash", hex_data),
)


SET_CODE_TX_TYPE = 4


def format_transaction(
    tx: SignedTransactionAPI,
    sender: bytes,
    header: BlockHeaderAPI | None = None,
    index: int | None = None,
) -> dict[str, Any]:
    type_id = getattr(tx, "type_id", None) or 0
    max_fee, tip = get_fee_caps(tx)
    out: dict[str, Any] = {
        "hash": hex_data(tx.hash),
        "type": hex_int(type_id),
        "nonce": hex_int(tx.nonce),
        "from": to_checksum_address(sender),
        "to": to_checksum_address(tx.to) if tx.to else None,
        "value": hex_int(tx.value),
        "gas": hex_int(tx.gas),
        "input": hex_data(tx.data),
        "blockHash": hex_data(header.hash) if header else None,
        "blockNumber": hex_int(header.block_number) if header else None,
        "transactionIndex": hex_int(index) if index is not None else None,
        "v": hex_int(tx.y_parity if type_id else tx.v),
        "r": hex_int(tx.r),
        "s": hex_int(tx.s),
    }
    if tx.chain_id is not None:
        out["chainId"] = hex_int(tx.chain_id)
    if type_id:
        out["yParity"] = hex_int(tx.y_parity)
        out["accessList"] = [
            {"address": to_checksum_address(a), "storageKeys": [hex_data(k.to_bytes(32, "big"))
                                                                for k in keys]}
            for a, keys in getattr(tx, "access_list", ())
        ]
    if type_id >= 2:
        out["maxFeePerGas"] = hex_int(max_fee)
        out["maxPriorityFeePerGas"] = hex_int(tip)
        base = header.base_fee_per_gas if header else None
        out["gasPrice"] = hex_int(min(max_fee, base + tip) if base is not None else max_fee)
    else:
        out["gasPrice"] = hex_int(max_fee)
    if type_id == blobs.BLOB_TX_TYPE:
        out["maxFeePerBlobGas"] = hex_int(tx.max_fee_per_blob_gas)
        out["blobVersionedHashes"] = [hex_data(h) for h in tx.blob_versioned_hashes]
    if type_id == SET_CODE_TX_TYPE:  # EIP-7702, as geth lists the tuples
        out["authorizationList"] = [
            {"chainId": hex_int(a.chain_id), "address": to_checksum_address(a.address),
             "nonce": hex_int(a.nonce), "yParity": hex_int(a.y_parity), "r": hex_int(a.r),
             "s": hex_int(a.s)}
            for a in tx.authorization_list
        ]
    return out


def effective_gas_price(tx: SignedTransactionAPI, base_fee: int) -> int:
    max_fee, tip = get_fee_caps(tx)
    if (getattr(tx, "type_id", None) or 0) >= 2:
        return min(max_fee, base_fee + tip)
    return max_fee


def format_log(
    log: Any, header: BlockHeaderAPI, tx_hash: bytes, tx_index: int, log_index: int,
    removed: bool = False,
) -> dict[str, Any]:
    address, topics, data = log.address, log.topics, log.data
    return {
        "address": to_checksum_address(address),
        "topics": [hex_data(int(t).to_bytes(32, "big") if isinstance(t, int) else t)
                   for t in topics],
        "data": hex_data(data),
        "blockNumber": hex_int(header.block_number),
        "blockHash": hex_data(header.hash),
        "blockTimestamp": hex_int(header.timestamp),
        "transactionHash": hex_data(tx_hash),
        "transactionIndex": hex_int(tx_index),
        "logIndex": hex_int(log_index),
        "removed": removed,
    }


def format_receipts(
    block: BlockAPI, receipts: tuple[ReceiptAPI, ...], senders: list[bytes],
    only: int | None = None, blob_gas_price: int | None = None,
) -> list[dict[str, Any]]:
    """All receipts of a block (gas used and log indexes depend on the earlier ones).

    ``blob_gas_price`` is the block's blob base fee under its fork's schedule (default:
    EIP-4844's Cancun figures on the header's excess blob gas).

    With ``only``, just that transaction's receipt is formatted (a one-item list) and only
    ``senders[only]`` is read; the earlier receipts still contribute gas and log indexes.
    """
    header = block.header
    out = []
    prev_cumulative = 0
    log_index = 0
    for i, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
        if only is not None and i != only:
            log_index += len(receipt.logs)
            prev_cumulative = receipt.gas_used
            continue
        sender = senders[i]
        logs = []
        for log in receipt.logs:
            logs.append(format_log(log, header, tx.hash, i, log_index))
            log_index += 1
        contract = (
            to_checksum_address(generate_contract_address(sender, tx.nonce)) if not tx.to else None
        )
        out.append({
            "transactionHash": hex_data(tx.hash),
            "transactionIndex": hex_int(i),
            "blockHash": hex_data(header.hash),
            "blockNumber": hex_int(header.block_number),
            "from": to_checksum_address(sender),
            "to": to_checksum_address(tx.to) if tx.to else None,
            "cumulativeGasUsed": hex_int(receipt.gas_used),
            "gasUsed": hex_int(receipt.gas_used - prev_cumulative),
            "effectiveGasPrice": hex_int(effective_gas_price(tx, getattr(header, "base_fee_per_gas", 0))),
            "contractAddress": contract,
            "logs": logs,
            "logsBloom": hex_data(int(receipt.bloom).to_bytes(256, "big")),
            "type": hex_int(getattr(tx, "type_id", None) or 0),
        })
        if len(receipt.state_root) == 32:  # before Byzantium (EIP-658): the post-state root
            out[-1]["root"] = hex_data(receipt.state_root)
        else:
            out[-1]["status"] = "0x1" if receipt.state_root == b"\x01" else "0x0"
        if getattr(tx, "type_id", None) == blobs.BLOB_TX_TYPE:  # EIP-4844 receipt fields
            out[-1]["blobGasUsed"] = hex_int(blobs.get_blob_gas(tx))
            out[-1]["blobGasPrice"] = hex_int(
                blobs.compute_blob_base_fee(header.excess_blob_gas) if blob_gas_price is None
                else blob_gas_price)
        prev_cumulative = receipt.gas_used
    return out
