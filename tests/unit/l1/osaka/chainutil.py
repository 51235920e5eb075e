"""A py-evm MiningChain over an in-memory AtomicDB, for driving a VM class as py-evm does."""

from __future__ import annotations

from typing import Any

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.vm.forks.prague.transactions import PragueTransactionBuilder
from eth_keys import keys

CHAIN_ID = 1337
SENDER_KEY = keys.PrivateKey(b"\x01" * 32)
SENDER = SENDER_KEY.public_key.to_canonical_address()
CONTRACT = b"\xc0" * 20
GENESIS_BASE_FEE = 10**9


def make_chain(vm_class: type[Any], contract_code: bytes = b"", gas_limit: int = 100_000_000) -> Any:
    chain_class = MiningChain.configure(
        __name__="OsakaTestChain", vm_configuration=((0, vm_class),), chain_id=CHAIN_ID
    )
    genesis_params = {
        "difficulty": 0,
        "gas_limit": gas_limit,
        "timestamp": 1,
        "base_fee_per_gas": GENESIS_BASE_FEE,
        "coinbase": b"\x00" * 20,
        "nonce": b"\x00" * 8,
    }
    state = {
        SENDER: {"balance": 10**24, "nonce": 0, "code": b"", "storage": {}},
        CONTRACT: {"balance": 0, "nonce": 0, "code": contract_code, "storage": {}},
    }
    return chain_class.from_genesis(AtomicDB(), genesis_params, state)


def signed_tx(nonce: int, to: bytes, data: bytes = b"", gas: int = 1_000_000) -> Any:
    unsigned = PragueTransactionBuilder.new_unsigned_dynamic_fee_transaction(
        chain_id=CHAIN_ID,
        nonce=nonce,
        max_priority_fee_per_gas=1,
        max_fee_per_gas=10**11,
        gas=gas,
        to=to,
        value=0,
        data=data,
        access_list=(),
    )
    return unsigned.as_signed_transaction(SENDER_KEY)


def run_precompile(vm_class: type[Any], address: bytes, data: bytes, gas: int) -> Any:
    """Call a precompile directly through the VM's computation class (no transaction)."""
    vm = make_chain(vm_class).get_vm()
    return vm.execute_bytecode(
        origin=SENDER, gas_price=1, gas=gas, to=address, sender=SENDER, value=0,
        data=data, code=b"", code_address=address,
    )
