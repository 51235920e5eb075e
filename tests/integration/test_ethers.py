"""ethers.js v6 against a real node process (issue 3: "an ethers.js script does the same").

``tests/js/ethers_check.mjs`` deploys the OpenZeppelin ERC-20 and ERC-721 and the Reverter,
transfers, reads events by ``queryFilter`` and by a WebSocket subscription, and checks
revert reasons, all with ethers' own providers and wallet. It prints one JSON line. This
test runs it against a fresh in-memory node, then checks from web3.py that the state it
left behind is what the script reported.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from web3 import Web3
from web3.utils.address import get_create_address

from layerlab.contracts import ContractArtifact, get_project_root, load_artifact
from tests.nodeproc import NodeProcess

ROOT = get_project_root()
SCRIPT = ROOT / "tests" / "js" / "ethers_check.mjs"
SCRIPT_TIMEOUT_SECONDS = 180

DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
RECIPIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
ZERO = "0x0000000000000000000000000000000000000000"
TOKEN_SUPPLY = 1_000_000 * 10**18
TOKEN_TO_RECIPIENT = 1000 * 10**18 + 234 * 10**18 + 5 - 5  # three transfers, one transferFrom back
REVERT_REASON = "layerlab: always fails"

# Transactions the script sends: deployer: 3 deployments, 3 transfers, transferFrom,
# 3 mints, 1 NFT transfer, set, and the mined failing call; recipient: one approve.
DEPLOYER_TXS = 3 + 3 + 1 + 3 + 1 + 1 + 1
RECIPIENT_TXS = 1

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    if not (ROOT / "node_modules" / "ethers" / "package.json").is_file():
        pytest.skip("npm package ethers is not installed (run `make deps`)")
    return node


@pytest.fixture(scope="module")
def artifacts() -> dict[str, ContractArtifact]:
    """Compile (or load the cached) artifacts the script reads from build/contracts."""
    return {name: load_artifact(name) for name in ("LabToken", "LabNFT", "Reverter")}


@pytest.fixture(scope="module")
def ethers_result(
    node_binary: str, artifacts: dict[str, ContractArtifact], node: NodeProcess
) -> dict[str, Any]:
    """Run the ethers.js check once against the module's node; its parsed JSON line."""
    artifacts_dir = ROOT / "build" / "contracts"
    assert all((artifacts_dir / f"{name}.json").is_file() for name in artifacts)
    try:
        proc = subprocess.run(
            [node_binary, str(SCRIPT), node.url, str(artifacts_dir)],
            cwd=ROOT, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"ethers check still running after {SCRIPT_TIMEOUT_SECONDS} s\n"
                    f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}\nnode log:\n{node.log()}")
    assert proc.returncode == 0, (
        f"ethers check exited with {proc.returncode}\nstderr:\n{proc.stderr[-4000:]}\n"
        f"stdout:\n{proc.stdout[-2000:]}\nnode log:\n{node.log()}"
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got {proc.stdout!r}"
    result: dict[str, Any] = json.loads(lines[0])
    return result


def _contract(w3: Web3, artifact: ContractArtifact, address: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact.abi)


def test_script_reports_success(ethers_result: dict[str, Any]) -> None:
    assert ethers_result["ok"] is True
    assert ethers_result["chainId"] == 31337
    assert ethers_result["deployer"] == DEPLOYER
    assert ethers_result["recipient"] == RECIPIENT


def test_script_deployed_at_create_addresses(ethers_result: dict[str, Any]) -> None:
    """A fresh node: the three deployments are the deployer's nonces 0, 1, 2."""
    for nonce, key in enumerate(("token", "nft", "reverter")):
        assert ethers_result[key] == get_create_address(DEPLOYER, nonce), key


def test_script_saw_events_by_query_and_subscription(ethers_result: dict[str, Any]) -> None:
    events = ethers_result["events"]
    assert events["queryFilter"] == {
        "tokenTransfer": 5,  # the mint at deployment, 3 transfers, 1 transferFrom
        "tokenTransferToRecipient": 3,
        "tokenApproval": 1,
        "nftTransfer": 4,  # 3 mints, 1 transfer
        "set": 1,
    }
    ws = events["websocket"]
    assert (ws["tokenTransfer"], ws["nftTransfer"], ws["set"]) == (4, 4, 1)
    assert ws["blocks"] >= 1


def test_script_saw_revert_reasons(ethers_result: dict[str, Any]) -> None:
    revert = ethers_result["revert"]
    assert revert["call"] == revert["estimateGas"] == revert["send"] == REVERT_REASON
    assert revert["require"] == "x must be positive"
    assert revert["customError"] == "Nope(7)"
    assert revert["erc20"] == "ERC20InsufficientBalance"
    assert revert["minedStatus"] == 0


def test_state_is_visible_from_web3py(
    ethers_result: dict[str, Any], artifacts: dict[str, ContractArtifact], w3: Web3
) -> None:
    """What ethers did through the node is the node's state for any other client."""
    assert w3.eth.chain_id == 31337
    token = _contract(w3, artifacts["LabToken"], ethers_result["token"])
    nft = _contract(w3, artifacts["LabNFT"], ethers_result["nft"])
    reverter = _contract(w3, artifacts["Reverter"], ethers_result["reverter"])
    for contract, name in ((token, "LabToken"), (nft, "LabNFT"), (reverter, "Reverter")):
        assert bytes(w3.eth.get_code(contract.address)) == artifacts[name].deployed_bytecode, name

    assert token.functions.name().call() == "LabToken"
    assert token.functions.totalSupply().call() == TOKEN_SUPPLY
    recipient_tokens = token.functions.balanceOf(RECIPIENT).call()
    deployer_tokens = token.functions.balanceOf(DEPLOYER).call()
    assert recipient_tokens == TOKEN_TO_RECIPIENT
    assert deployer_tokens == TOKEN_SUPPLY - TOKEN_TO_RECIPIENT
    assert ethers_result["tokenBalances"] == {
        "deployer": str(deployer_tokens), "recipient": str(recipient_tokens)}
    assert token.functions.allowance(RECIPIENT, DEPLOYER).call() == 0

    owners = {str(i): nft.functions.ownerOf(i).call() for i in (1, 2, 3)}
    assert owners == {"1": RECIPIENT, "2": DEPLOYER, "3": RECIPIENT}
    assert owners == ethers_result["nftOwners"]
    assert nft.functions.balanceOf(RECIPIENT).call() == 2
    assert nft.functions.totalMinted().call() == 3

    assert reverter.functions.get().call() == 42

    assert w3.eth.get_transaction_count(DEPLOYER) == DEPLOYER_TXS
    assert w3.eth.get_transaction_count(RECIPIENT) == RECIPIENT_TXS


def test_logs_and_receipts_are_visible_from_web3py(
    ethers_result: dict[str, Any], artifacts: dict[str, ContractArtifact], w3: Web3
) -> None:
    token = _contract(w3, artifacts["LabToken"], ethers_result["token"])
    nft = _contract(w3, artifacts["LabNFT"], ethers_result["nft"])
    transfers = token.events.Transfer().get_logs(from_block=0)
    assert [(e.args["from"], e.args["to"], e.args["value"]) for e in transfers] == [
        (ZERO, DEPLOYER, TOKEN_SUPPLY),
        (DEPLOYER, RECIPIENT, 1000 * 10**18),
        (DEPLOYER, RECIPIENT, 234 * 10**18),
        (DEPLOYER, RECIPIENT, 5),
        (RECIPIENT, DEPLOYER, 5),
    ]
    nft_transfers = nft.events.Transfer().get_logs(from_block=0)
    assert [(e.args["from"], e.args["to"], e.args["tokenId"]) for e in nft_transfers] == [
        (ZERO, DEPLOYER, 1), (ZERO, DEPLOYER, 2), (ZERO, RECIPIENT, 3), (DEPLOYER, RECIPIENT, 1),
    ]

    failed = w3.eth.get_transaction_receipt(ethers_result["revert"]["minedTx"])
    assert failed["status"] == 0
    assert failed["to"] == ethers_result["reverter"]
    assert failed["logs"] == []
    assert w3.eth.block_number == ethers_result["blocks"]["end"]
