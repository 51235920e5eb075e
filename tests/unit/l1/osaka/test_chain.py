"""Osaka in mined blocks: CLZ, gas cap, blob schedules, RLP size limit (EIP-7939, 7825, 7892, 7918, 7934)."""

from __future__ import annotations

import pytest
import rlp
from eth.vm.forks.cancun.constants import GAS_PER_BLOB
from eth.vm.forks.prague import PragueVM
from eth_utils.exceptions import ValidationError

from layerlab.l1.chain.osaka import (
    BPO1_BLOB_SCHEDULE,
    MAX_RLP_BLOCK_SIZE,
    TX_GAS_LIMIT_CAP,
    OsakaVM,
    compute_excess_blob_gas,
    encode_block,
    is_block_too_large,
    make_bpo_vm,
)
from tests.unit.test_rpc_blob_fee import fake_exponential

from .chainutil import CONTRACT, make_chain, signed_tx

# EIP-7939's test cases table: input, expected CLZ.
CLZ_CASES = [
    (0, 256),
    (0x8000000000000000000000000000000000000000000000000000000000000000, 0),
    (2**256 - 1, 0),
    (0x4000000000000000000000000000000000000000000000000000000000000000, 1),
    (0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF, 1),
    (1, 255),
]


def _clz_contract() -> bytes:
    code = b""
    for slot, (value, _) in enumerate(CLZ_CASES):
        code += b"\x7f" + value.to_bytes(32, "big") + b"\x1e" + bytes([0x60, slot, 0x55])
    return code + b"\x00"


def test_clz_in_a_mined_block_gives_the_eip_table() -> None:
    chain = make_chain(OsakaVM, _clz_contract())
    _, _, computations = chain.mine_all([signed_tx(0, CONTRACT)])
    assert computations[0].is_success
    state = chain.get_vm().state
    for slot, (_, expected) in enumerate(CLZ_CASES):
        assert state.get_storage(CONTRACT, slot) == expected


def test_clz_costs_5_gas_and_is_invalid_in_prague() -> None:
    code = b"\x7f" + (1).to_bytes(32, "big") + b"\x1e\x00"
    vm = make_chain(OsakaVM).get_vm()
    done = vm.execute_bytecode(None, 1, 100, CONTRACT, CONTRACT, 0, b"", code)
    assert done.is_success and done.get_gas_used() == 3 + 5
    prague = make_chain(PragueVM).get_vm().execute_bytecode(None, 1, 100, CONTRACT, CONTRACT, 0, b"", code)
    assert prague.is_error


def test_transaction_over_the_gas_cap_is_refused() -> None:
    chain = make_chain(OsakaVM)
    with pytest.raises(ValidationError, match="EIP-7825"):
        chain.mine_all([signed_tx(0, CONTRACT, gas=TX_GAS_LIMIT_CAP + 1)])
    _, receipts, _ = make_chain(OsakaVM).mine_all([signed_tx(0, CONTRACT, gas=TX_GAS_LIMIT_CAP)])
    assert receipts[0].gas_used == 21_000
    _, prague_receipts, _ = make_chain(PragueVM).mine_all([signed_tx(0, CONTRACT, gas=TX_GAS_LIMIT_CAP + 1)])
    assert prague_receipts[0].gas_used == 21_000


class _Parent:
    def __init__(self, excess_blob_gas: int, blob_gas_used: int, base_fee_per_gas: int) -> None:
        self.excess_blob_gas = excess_blob_gas
        self.blob_gas_used = blob_gas_used
        self.base_fee_per_gas = base_fee_per_gas


def test_eip7918_branch_when_blobs_are_cheaper_than_execution() -> None:
    schedule = BPO1_BLOB_SCHEDULE
    used = 12 * GAS_PER_BLOB
    # blob base fee 1 wei at zero excess; 2**13 * 10 gwei > 2**17 * 1: the new branch.
    cheap = _Parent(excess_blob_gas=0, blob_gas_used=used, base_fee_per_gas=10**10)
    assert compute_excess_blob_gas(cheap, schedule, True) == used * (15 - 10) // 15
    assert compute_excess_blob_gas(cheap, schedule, False) == used - 10 * GAS_PER_BLOB
    # base fee 0: execution is cheaper, the EIP-4844 rule holds.
    free = _Parent(excess_blob_gas=0, blob_gas_used=used, base_fee_per_gas=0)
    assert compute_excess_blob_gas(free, schedule, True) == used - 10 * GAS_PER_BLOB
    below = _Parent(excess_blob_gas=0, blob_gas_used=9 * GAS_PER_BLOB, base_fee_per_gas=10**10)
    assert compute_excess_blob_gas(below, schedule, True) == 0


def test_bpo_vm_follows_its_blob_parameters() -> None:
    bpo = make_bpo_vm(OsakaVM, "bpo1", 10, 15, 8_346_193)
    assert bpo.fork == "bpo1" and issubclass(bpo, OsakaVM)
    chain = make_chain(bpo)
    vm = chain.get_vm()
    assert vm.blob_schedule.max == 15 and vm.blob_schedule.target == 10
    state_class = vm.get_state_class()
    # fake_exponential(1, excess, fraction): EIP-4844's pseudo-code, kept once in the test suite
    excess = 8_346_193 * 3
    assert state_class.blob_schedule.base_fee_update_fraction == 8_346_193

    header = chain.get_vm().get_header().copy(excess_blob_gas=excess)
    assert chain.get_vm(header).state.blob_base_fee == fake_exponential(1, excess, 8_346_193) == 20
    osaka_chain = make_chain(OsakaVM)
    osaka_header = osaka_chain.get_vm().get_header().copy(excess_blob_gas=excess)
    assert OsakaVM.get_state_class().blob_schedule.base_fee_update_fraction == 5_007_716
    assert osaka_chain.get_vm(osaka_header).state.blob_base_fee == fake_exponential(1, excess, 5_007_716)


def test_block_rlp_with_typed_transactions_round_trips() -> None:
    """EIP-7934 measures the wire RLP: it decodes back to the same block and hash."""
    chain = make_chain(OsakaVM)
    result, _, _ = chain.mine_all([signed_tx(0, CONTRACT), signed_tx(1, CONTRACT, data=b"\x01" * 100)])
    block = result.imported_block
    encoded = encode_block(block)
    decoded = rlp.decode(encoded, sedes=type(block))
    assert decoded.hash == block.hash
    assert [tx.hash for tx in decoded.transactions] == [tx.hash for tx in block.transactions]
    assert rlp.encode(decoded) == encoded  # the block class's own serialization, on its own tx types
    assert not is_block_too_large(block)


def test_block_over_the_rlp_size_limit_is_refused() -> None:
    chain = make_chain(OsakaVM)
    data = b"\xff" * 1_000_000
    big = [signed_tx(i, CONTRACT, data=data, gas=TX_GAS_LIMIT_CAP) for i in range(9)]
    block = chain.get_vm().get_block().copy(transactions=big)
    assert len(encode_block(block)) > MAX_RLP_BLOCK_SIZE
    assert is_block_too_large(block)
    with pytest.raises(ValidationError, match="EIP-7934"):
        chain.get_vm().validate_block(block)
    assert not is_block_too_large(chain.get_vm().get_block().copy(transactions=big[:8]))
