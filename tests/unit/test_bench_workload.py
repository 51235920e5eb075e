"""Benchmark harness: workloads sign what they claim, py-evm mines them, the RPC driver counts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import rlp
from aiohttp import web
from eth_account import Account
from eth_utils.address import to_checksum_address

from layerlab.bench.hardhat import (
    HardhatNode,
    HardhatNodeConfig,
    compute_hardhat_config,
)
from layerlab.bench.raw_pyevm import create_bench_chain, measure_raw_pyevm
from layerlab.bench.rpc_load import (
    RpcLoadError,
    RpcLoadResult,
    drive_rpc_load,
    run_rpc_load,
    validate_loopback_url,
)
from layerlab.bench.workload import (
    TEST_MNEMONIC,
    TRANSFER_GAS,
    TransferWorkloadSpec,
    compute_senders,
    compute_transaction_hash,
    compute_transfer_workload,
)
from layerlab.orchestration import free_port
from layerlab.primitives.types import GWEI, ChainId, Nonce, Wei

HARDHAT_ACCOUNT_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
HARDHAT_ACCOUNT_9 = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"


def test_senders_are_the_mnemonic_accounts() -> None:
    Account.enable_unaudited_hdwallet_features()
    senders = compute_senders(12)
    assert senders[0].checksum_address == HARDHAT_ACCOUNT_0
    assert senders[9].checksum_address == HARDHAT_ACCOUNT_9
    for sender in senders:
        expected = Account.from_mnemonic(
            TEST_MNEMONIC, account_path=f"m/44'/60'/0'/0/{sender.index}"
        )
        assert sender.checksum_address == expected.address
        assert sender.private_key == bytes(expected.key)


def test_transfers_decode_recover_and_use_consecutive_nonces() -> None:
    spec = TransferWorkloadSpec(
        tx_count=25,
        chain_id=ChainId(1337),
        sender_count=3,
        recipient_count=4,
        max_fee_per_gas=Wei(7 * GWEI),
        max_priority_fee_per_gas=Wei(2),
        value=Wei(10**15),
        start_nonce=Nonce(5),
    )
    workload = compute_transfer_workload(spec)
    assert len(workload.raw_transactions) == len(workload.tx_hashes) == 25

    for i, raw in enumerate(workload.raw_transactions):
        assert raw[0] == 2, "EIP-1559 envelope type"
        fields = rlp.decode(raw[1:])
        assert len(fields) == 12
        chain_id, nonce, tip, max_fee, gas, value = (
            int.from_bytes(fields[k], "big") for k in (0, 1, 2, 3, 4, 6)
        )
        assert (chain_id, tip, max_fee, gas, value) == (1337, 2, 7 * GWEI, TRANSFER_GAS, 10**15)
        assert nonce == 5 + i // 3
        assert fields[5] == workload.recipients[i % 4]
        assert fields[7] == b"" and fields[8] == []
        assert Account.recover_transaction(raw) == workload.senders[i % 3].checksum_address
        assert workload.tx_hashes[i] == compute_transaction_hash(raw)


def test_signing_is_deterministic_and_matches_eth_account() -> None:
    spec = TransferWorkloadSpec(tx_count=6, sender_count=2, recipient_count=3)
    workload = compute_transfer_workload(spec)
    assert workload == compute_transfer_workload(spec)
    for i, raw in enumerate(workload.raw_transactions):
        signed = Account.sign_transaction(
            {
                "type": 2,
                "chainId": spec.chain_id,
                "nonce": i // 2,
                "to": to_checksum_address(workload.recipients[i % 3]),
                "value": spec.value,
                "gas": TRANSFER_GAS,
                "maxFeePerGas": spec.max_fee_per_gas,
                "maxPriorityFeePerGas": spec.max_priority_fee_per_gas,
                "data": b"",
                "accessList": [],
            },
            workload.senders[i % 2].private_key,
        )
        assert bytes(signed.raw_transaction) == raw


def test_raw_pyevm_mines_every_transfer() -> None:
    workload = compute_transfer_workload(TransferWorkloadSpec(tx_count=60, sender_count=4))
    result = measure_raw_pyevm(workload, txs_per_block=25)
    assert result.included_count == result.tx_count == 60
    assert result.block_count == 3
    assert result.gas_used == 60 * TRANSFER_GAS
    assert result.tps > 0 and result.pipeline_tps > 0


def test_bench_chain_funds_the_senders() -> None:
    workload = compute_transfer_workload(TransferWorkloadSpec(tx_count=1, sender_count=2))
    state = create_bench_chain(workload, sender_balance=Wei(123)).get_vm().state
    assert [state.get_balance(s.address) for s in workload.senders] == [123, 123]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8545", "http://localhost:1/rpc", "http://[::1]:8545", "http://127.8.0.1"],
)
def test_loopback_urls_are_accepted(url: str) -> None:
    validate_loopback_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8545",
        "http://192.168.1.2",
        "https://example.com",
        "ws://127.0.0.1:8545",
        "x",
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(RpcLoadError):
        validate_loopback_url(url)
    with pytest.raises(RpcLoadError):
        run_rpc_load(url, [])


class _FakeNode:
    """A JSON-RPC node in miniature: a pool, a block every ``interval`` s, some rejections."""

    def __init__(self, reject_every: int, interval: float, max_batch: int = 1000) -> None:
        self.reject_every = reject_every
        self.max_batch = max_batch
        self.interval = interval
        self.received = 0
        self.pool: list[str] = []
        self.blocks: list[list[str]] = [[]]

    def handle_call(self, call: dict[str, Any]) -> dict[str, Any]:
        method, params = call["method"], call["params"]
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": call["id"]}
        if method == "eth_sendRawTransaction":
            self.received += 1
            if self.received % self.reject_every == 0:
                answer["error"] = {"code": -32000, "message": "nonce too low"}
            else:
                tx_hash = "0x" + compute_transaction_hash(bytes.fromhex(params[0][2:])).hex()
                self.pool.append(tx_hash)
                answer["result"] = tx_hash
        elif method == "eth_blockNumber":
            answer["result"] = hex(len(self.blocks) - 1)
        elif method == "eth_getBlockByNumber":
            answer["result"] = {"transactions": self.blocks[int(params[0], 16)]}
        else:
            answer["error"] = {"code": -32601, "message": f"no method {method}"}
        return answer

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if isinstance(body, list) and len(body) > self.max_batch:
            error = {"code": -32600, "message": "batch too large"}
            return web.json_response({"jsonrpc": "2.0", "id": None, "error": error})
        if isinstance(body, list):
            return web.json_response([self.handle_call(call) for call in body])
        return web.json_response(self.handle_call(body))

    async def mine(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.blocks.append(self.pool)
            self.pool = []


def _drive_against(fake: _FakeNode, raw: tuple[bytes, ...], **options: Any) -> RpcLoadResult:
    """Serve ``fake`` on a free loopback port and run the load driver against it."""

    async def scenario() -> RpcLoadResult:
        app = web.Application()
        app.router.add_post("/", fake.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        miner = asyncio.create_task(fake.mine())
        try:
            return await drive_rpc_load(f"http://127.0.0.1:{port}", raw, **options)
        finally:
            miner.cancel()
            await runner.cleanup()

    return asyncio.run(scenario())


def test_rpc_load_counts_accepted_rejected_and_included() -> None:
    workload = compute_transfer_workload(TransferWorkloadSpec(tx_count=230, sender_count=5))
    fake = _FakeNode(reject_every=50, interval=0.05)
    result = _drive_against(fake, workload.raw_transactions, batch_size=40, inclusion_timeout=10)
    assert result.tx_count == 230
    assert result.rejected_count == 4
    assert result.accepted_count == result.included_count == 226
    assert result.error_samples == ("-32000: nonce too low",)
    assert not result.timed_out and not result.is_complete
    assert result.blocks_used >= 1 and result.first_block is not None
    assert result.tps == pytest.approx(226 / result.seconds)


def test_rpc_load_gives_up_after_the_inclusion_timeout() -> None:
    workload = compute_transfer_workload(TransferWorkloadSpec(tx_count=20, sender_count=2))
    never_mines = _FakeNode(reject_every=10**9, interval=3600)
    result = _drive_against(never_mines, workload.raw_transactions, inclusion_timeout=0.3)
    assert result.timed_out and result.included_count == 0 and result.accepted_count == 20
    assert result.tps == 0 and result.blocks_used == 0 and result.first_block is None


def test_rpc_load_books_a_refused_batch_as_rejected() -> None:
    workload = compute_transfer_workload(TransferWorkloadSpec(tx_count=30, sender_count=3))
    fake = _FakeNode(reject_every=10**9, interval=0.05, max_batch=10)
    result = _drive_against(fake, workload.raw_transactions, batch_size=20, inclusion_timeout=5)
    assert result.rejected_count == 20 and result.included_count == 10
    assert result.error_samples == ("whole batch rejected: -32600: batch too large",)


def test_hardhat_config_sets_interval_mining_and_gas_limit() -> None:
    config = compute_hardhat_config(HardhatNodeConfig(block_interval_seconds=0.5))
    body = json.loads(config.split("module.exports = ", 1)[1].rstrip(";\n"))
    network = body["networks"]["hardhat"]
    assert network["mining"]["auto"] is False and network["mining"]["interval"] == 500
    assert network["blockGasLimit"] == 1_000_000_000
    assert network["chainId"] == 31337 and network["allowUnlimitedContractSize"] is True


@pytest.mark.slow
def test_hardhat_node_includes_500_transfers() -> None:
    workload = compute_transfer_workload(TransferWorkloadSpec(tx_count=500, sender_count=10))
    with HardhatNode(HardhatNodeConfig()) as node:
        result = run_rpc_load(node.url, workload.raw_transactions, inclusion_timeout=30)
        assert node.is_running
    assert not node.is_running
    assert result.is_complete, result
    assert result.included_count == 500 and result.blocks_used >= 1


def test_rpc_load_reports_an_unreachable_node() -> None:
    workload = compute_transfer_workload(TransferWorkloadSpec(tx_count=1, sender_count=1))
    with pytest.raises(RpcLoadError, match="failed"):
        run_rpc_load(f"http://127.0.0.1:{free_port()}", workload.raw_transactions)
