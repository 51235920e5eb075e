"""Blocks built by layerlab's faster block path are byte-identical to plain py-evm's.

The same genesis and transactions (ETH transfers from several senders, a contract
deployment, an ERC20 transfer with a log, and a reverting call) are mined once by
:class:`EvmChain` (with layerlab's speed-ups installed) and once by an unmodified
py-evm ``MiningChain`` in a fresh interpreter; the block hashes, which commit to the
state, transaction and receipt roots, bloom and gas used, must be equal.
"""

from __future__ import annotations

import json
import subprocess
import sys

from eth_account import Account

from layerlab.contracts import load_artifact
from layerlab.l1.chain.config import ChainConfig
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.chain.forks import ForkSchedule
from layerlab.l1.storage import open_db

PLAIN_PYEVM = r"""
import json, sys
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.vm.forks.cancun import CancunVM
spec = json.loads(sys.stdin.read())
chain_class = MiningChain.configure(vm_configuration=((0, CancunVM),), chain_id=spec["chain_id"])
params = {"difficulty": 0, "gas_limit": spec["gas_limit"], "timestamp": spec["timestamp"],
          "base_fee_per_gas": spec["base_fee"], "coinbase": b"\0" * 20,
          "extra_data": b"layerlab", "nonce": b"\0" * 8}
state = {bytes.fromhex(a): {"balance": b, "nonce": 0, "code": b"", "storage": {}}
         for a, b in spec["alloc"].items()}
chain = chain_class.from_genesis(AtomicDB(), params, state)
builder = CancunVM.get_transaction_builder()
hashes = []
for block in spec["blocks"]:
    parent = chain.get_canonical_head()
    chain.header = chain.create_header_from_parent(
        parent, timestamp=block["timestamp"], gas_limit=spec["gas_limit"],
        coinbase=b"\0" * 20, parent_beacon_block_root=b"\0" * 32)
    txs = [builder.decode(bytes.fromhex(r)) for r in block["txs"]]
    result, receipts, _ = chain.mine_all(txs, coinbase=b"\0" * 20)
    hashes.append(result.imported_block.hash.hex())
assert "layerlab" not in "".join(sys.modules)
print(json.dumps(hashes))
"""


def _sign(key: bytes, nonce: int, **fields: object) -> bytes:
    tx = {"chainId": 31337, "nonce": nonce, "maxFeePerGas": 10**10,
          "maxPriorityFeePerGas": 10**9, "type": 2, **fields}
    return bytes(Account.sign_transaction(tx, key).raw_transaction)


def test_blocks_identical_to_plain_pyevm() -> None:
    # plain py-evm has no Osaka: both chains run Cancun
    config = ChainConfig(gas_limit=30_000_000, genesis_timestamp=1_700_000_000,
                         forks=ForkSchedule.from_genesis("cancun"))
    accounts = config.dev_accounts
    token = load_artifact("LabToken")
    reverter = load_artifact("Reverter")
    k0, k1, k2 = (a.private_key for a in accounts[:3])
    from eth._utils.address import generate_contract_address
    from eth.vm.forks.cancun import CancunVM  # noqa: F401
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector as sel

    token_addr = generate_contract_address(accounts[0].address_bytes, 0)
    reverter_addr = generate_contract_address(accounts[0].address_bytes, 1)
    ctor = encode(["string", "string", "uint256"], ["T", "T", 10**24])
    transfer = sel("transfer(address,uint256)") + encode(
        ["address", "uint256"], [accounts[1].address, 5])
    blocks = [
        {"timestamp": 1_700_000_012, "txs": [
            _sign(k0, 0, to=b"", value=0, gas=2_000_000, data=token.bytecode + ctor),
            _sign(k0, 1, to=b"", value=0, gas=1_000_000, data=reverter.bytecode),
            *[_sign(k1, n, to=accounts[3].address, value=n + 1, gas=21000) for n in range(20)],
            *[_sign(k2, n, to="0x" + "00" * 19 + "01", value=0, gas=30000) for n in range(3)],
        ]},
        {"timestamp": 1_700_000_024, "txs": [
            _sign(k0, 2, to=token_addr, value=0, gas=100_000, data=transfer),
            _sign(k0, 3, to=reverter_addr, value=0, gas=100_000, data=sel("fail()")),
            _sign(k1, 20, to=accounts[0].address, value=0, gas=21000),
        ]},
    ]
    chain = EvmChain(config, open_db(None))
    ours = []
    for block in blocks:
        txs = [chain.tx_builder.decode(r) for r in block["txs"]]
        mined = chain.mine(txs, timestamp=block["timestamp"])
        assert all(r.gas_used for r in mined.receipts)
        ours.append(bytes(mined.block.hash).hex())
    statuses = [r.state_root for r in mined.receipts]
    assert statuses == [b"\x01", b"", b"\x01"]  # the fail() call reverted, others succeeded

    spec = {
        "chain_id": 31337, "gas_limit": config.gas_limit, "timestamp": 1_700_000_000,
        "base_fee": config.base_fee_per_gas,
        "alloc": {a.address_bytes.hex(): int(config.dev_balance) for a in accounts},
        "blocks": [{"timestamp": b["timestamp"], "txs": [r.hex() for r in b["txs"]]}
                   for b in blocks],
    }
    out = subprocess.run([sys.executable, "-c", PLAIN_PYEVM], input=json.dumps(spec),
                         capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(out.stdout) == ours
