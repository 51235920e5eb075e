"""A block's RLP as the wire and ``geth export`` carry it, whatever its transactions' classes."""

from __future__ import annotations

from typing import Any

import rlp
from eth.abc import BlockAPI
from eth.vm.forks.berlin.transactions import TypedTransaction


def encode_block(block: BlockAPI) -> bytes:
    """The block's RLP as on the wire: ``[header, transactions, uncles, withdrawals...]``.

    A typed transaction (EIP-2718) is the RLP string of its envelope ``type || payload``,
    a legacy one its RLP list, as py-evm's transaction builders serialize them. This is
    done per transaction because ``rlp.encode(block)`` serializes through the block class's
    builder, which refuses a typed transaction of an older fork's class (py-evm's
    ``as_signed_transaction`` returns e.g. a ``LondonTypedTransaction`` from Prague's builder).
    """
    items: list[Any] = []
    for name, sedes in type(block)._meta.fields:  # type: ignore[attr-defined]
        value = getattr(block, name)
        if name == "transactions":
            # (a dev-impersonated transaction encodes as the signed one it wraps)
            txs = [getattr(tx, "_tx", tx) for tx in value]
            items.append([
                tx.encode() if isinstance(tx, TypedTransaction) else type(tx).serialize(tx)
                for tx in txs
            ])
        else:
            items.append(sedes.serialize(value))
    return bytes(rlp.encode(items))
