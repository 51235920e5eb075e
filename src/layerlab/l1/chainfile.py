"""Chain export and import as concatenated RLP blocks (the format of ``geth export``).

Import re-executes every block with py-evm and checks its state, receipt and transaction
roots, so a file can only add blocks that are valid on top of this node's genesis. Each
block runs under the VM its number and timestamp select in the config's fork schedule, so
one file may cross many forks (a geth genesis from Frontier to Osaka).

A block before the merge (difficulty above 0) also carries an Ethash seal: it is checked
with py-evm's Ethash (``eth.consensus.pow.check_pow``, pure Python: building the epoch's
cache takes a while) unless ``fake_pow`` is set, as geth's fake-PoW mode
(``--fakepow``), which skips the seal check and keeps everything else.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from eth.abc import BlockAPI
from eth_utils.exceptions import ValidationError

from layerlab.errors import InvalidBlock
from layerlab.l1.chain.blockrlp import encode_block
from layerlab.l1.chain.config import load_config
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.storage import open_db


def _open(data_dir: Path, config: Path | None) -> EvmChain:
    return EvmChain(load_config(config), open_db(data_dir))


def export_chain(data_dir: Path, out: Path, config: Path | None = None) -> int:
    chain = _open(data_dir, config)
    try:
        head = int(chain.head.block_number)
        with out.open("wb") as fh:
            for number in range(head + 1):
                header = chain.get_header_by_number(number)
                assert header is not None
                fh.write(encode_block(chain.get_block(header)))
        return head + 1
    finally:
        chain.db.close()


def iter_rlp_items(data: bytes) -> list[bytes]:
    """Split concatenated RLP items (each a block) without decoding their contents."""
    items = []
    pos = 0
    while pos < len(data):
        prefix = data[pos]
        if prefix < 0xC0:
            raise InvalidBlock(f"offset {pos}: expected an RLP list, got prefix {prefix:#x}")
        if prefix <= 0xF7:
            length, header = prefix - 0xC0, 1
        else:
            n = prefix - 0xF7
            length, header = int.from_bytes(data[pos + 1:pos + 1 + n], "big"), 1 + n
        end = pos + header + length
        if end > len(data):
            raise InvalidBlock(f"offset {pos}: truncated block ({end - len(data)} bytes missing)")
        items.append(data[pos:end])
        pos = end
    return items


def validate_pow_seal(block: BlockAPI) -> None:
    """Raise :class:`InvalidBlock` unless a pre-merge block's Ethash seal is valid
    (py-evm's ``check_pow``: mix hash and ``hash <= 2**256 / difficulty``)."""
    from eth.consensus.pow import check_pow

    header = block.header
    try:
        check_pow(header.block_number, header.mining_hash, header.mix_hash, header.nonce,
                  header.difficulty)
    except ValidationError as exc:
        raise InvalidBlock(f"block {header.block_number}: invalid Ethash seal ({exc}); "
                           "--fake-pow skips PoW seal checks") from exc


def import_chain(data_dir: Path, src: Path, config: Path | None = None,
                 fake_pow: bool = False) -> tuple[int, int]:
    """Import blocks; into an empty data dir, the file's genesis timestamp is adopted.

    The genesis state still comes from the config, so a file made on another chain is
    refused at block 0 (different state root, hence different hash).
    """
    items = iter_rlp_items(src.read_bytes())
    cfg = load_config(config)
    if items and not cfg.genesis_timestamp:
        first = EvmChain.decode_block_bytes(items[0])
        if first.number == 0:
            cfg = replace(cfg, genesis_timestamp=first.header.timestamp)
    chain = EvmChain(cfg, open_db(data_dir))
    imported = skipped = 0
    try:
        for encoded in items:
            block = chain.decode_block(encoded)
            existing = chain.get_header_by_number(block.number)
            if existing is not None and existing.hash == block.hash:
                skipped += 1
                continue
            if block.number == 0:
                raise InvalidBlock("file's genesis differs from this chain's genesis")
            if block.header.difficulty and not fake_pow:
                validate_pow_seal(block)
            chain.import_block(block)
            imported += 1
        return imported, skipped
    finally:
        chain.db.close()
