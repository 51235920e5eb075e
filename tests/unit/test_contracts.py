"""The contracts toolchain: compile to cached artifacts, report errors, deploy and call.

Compile tests run the real solcjs from node_modules. The deploy tests run against py-evm in
process through web3's EthereumTesterProvider and are skipped when eth-tester is missing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractLogicError

from layerlab import contracts
from layerlab.contracts import (
    ArtifactNotFoundError,
    ContractArtifact,
    ContractCompileError,
    ContractDeployError,
    compile_all,
    deploy,
    get_contract,
    get_project_root,
    load_artifact,
)

try:  # the in-process provider raises eth-tester's own error where a node returns code 3
    from eth_tester.exceptions import TransactionFailed

    REVERTED: tuple[type[Exception], ...] = (ContractLogicError, TransactionFailed)
except ImportError:
    REVERTED = (ContractLogicError,)

PROJECT_ROOT = get_project_root()
TEST_CONTRACTS = PROJECT_ROOT / "contracts" / "test"


def _abi_names(artifact: ContractArtifact, kind: str) -> set[str]:
    return {entry["name"] for entry in artifact.abi if entry["type"] == kind}


@pytest.fixture(scope="module")
def artifacts() -> dict[str, ContractArtifact]:
    return compile_all()


@pytest.fixture(scope="module")
def built_lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch project holding a copy of contracts/ (test contracts import rollup/ and
    lib/), compiled once."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(TEST_CONTRACTS.parent, root / "contracts")
    compile_all(root)
    return root


@pytest.fixture
def lab_root(built_lab: Path, tmp_path: Path) -> Path:
    """A fresh copy of ``built_lab``; its cache key matches, as the key ignores the root."""
    shutil.copytree(built_lab, tmp_path, dirs_exist_ok=True)
    return tmp_path


# -- compile --------------------------------------------------------------------------------


def test_compile_all_builds_every_test_contract(artifacts: dict[str, ContractArtifact]) -> None:
    assert {"LabToken", "LabNFT", "Reverter"} <= set(artifacts)
    for artifact in artifacts.values():
        if artifact.source_name.startswith("test/"):
            assert artifact.bytecode, artifact.name
            assert artifact.deployed_bytecode, artifact.name


def test_abis_expose_the_expected_entries(artifacts: dict[str, ContractArtifact]) -> None:
    token, nft, reverter = artifacts["LabToken"], artifacts["LabNFT"], artifacts["Reverter"]
    assert token.source_name == "test/LabToken.sol"
    assert {"transfer", "balanceOf", "totalSupply", "approve"} <= _abi_names(token, "function")
    assert "Transfer" in _abi_names(token, "event")
    (constructor,) = [e for e in token.abi if e["type"] == "constructor"]
    assert [i["type"] for i in constructor["inputs"]] == ["string", "string", "uint256"]

    (mint,) = [e for e in nft.abi if e.get("name") == "mint"]
    assert [i["type"] for i in mint["inputs"]] == ["address"]
    assert [o["type"] for o in mint["outputs"]] == ["uint256"]
    assert {"ownerOf", "safeTransferFrom"} <= _abi_names(nft, "function")

    assert {"fail", "failWithCode", "requirePositive", "set", "get"} <= _abi_names(
        reverter, "function"
    )
    assert "Set" in _abi_names(reverter, "event")
    assert "Nope" in _abi_names(reverter, "error")


def test_artifact_files_hold_abi_bytecode_and_hashes(
    artifacts: dict[str, ContractArtifact],
) -> None:
    out_dir = PROJECT_ROOT / "build" / "contracts"
    data = json.loads((out_dir / "LabToken.json").read_text())
    assert data["contractName"] == "LabToken"
    assert data["sourceName"] == "test/LabToken.sol"
    assert bytes.fromhex(data["bytecode"][2:]) == artifacts["LabToken"].bytecode
    assert bytes.fromhex(data["deployedBytecode"][2:]) == artifacts["LabToken"].deployed_bytecode
    assert len(data["sourceHash"]) == 64
    assert data["cacheKey"] == (out_dir / ".cache-key").read_text().strip()


def test_cached_build_does_not_run_solc(lab_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = compile_all(lab_root)
    out_dir = lab_root / "build" / "contracts"
    mtimes = {p.name: p.stat().st_mtime_ns for p in out_dir.glob("*.json")}

    def no_solc(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("solc ran although the cache key matched")

    monkeypatch.setattr(contracts, "_run_solc", no_solc)
    assert compile_all(lab_root) == first
    assert load_artifact("LabToken", lab_root) == first["LabToken"]
    assert {p.name: p.stat().st_mtime_ns for p in out_dir.glob("*.json")} == mtimes


def test_source_change_or_force_recompiles(lab_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compile_all(lab_root)
    runs: list[int] = []
    real_run_solc = contracts._run_solc

    def counting_run_solc(*args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        return real_run_solc(*args, **kwargs)

    monkeypatch.setattr(contracts, "_run_solc", counting_run_solc)
    reverter = lab_root / "contracts" / "test" / "Reverter.sol"
    reverter.write_text(reverter.read_text() + "\n// touched\n")
    compile_all(lab_root)
    assert len(runs) == 1
    compile_all(lab_root)
    assert len(runs) == 1
    compile_all(lab_root, force=True)
    assert len(runs) == 2


def test_removed_contract_loses_its_artifact(lab_root: Path) -> None:
    compile_all(lab_root)
    (lab_root / "contracts" / "test" / "Reverter.sol").unlink()
    assert "Reverter" not in compile_all(lab_root)
    assert not (lab_root / "build" / "contracts" / "Reverter.json").exists()
    with pytest.raises(ArtifactNotFoundError, match="Reverter"):
        load_artifact("Reverter", lab_root)


def test_load_artifact_rebuilds_a_deleted_artifact(lab_root: Path) -> None:
    built = compile_all(lab_root)
    (lab_root / "build" / "contracts" / "LabNFT.json").unlink()
    assert load_artifact("LabNFT", lab_root) == built["LabNFT"]


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "Broken.sol").write_text(
        "// SPDX-License-Identifier: MIT\n"
        "pragma solidity ^0.8.20;\n"
        "contract Broken {\n"
        "    uint256 x = 1\n"
        "}\n"
    )
    with pytest.raises(ContractCompileError) as info:
        compile_all(tmp_path)
    assert "contracts/Broken.sol:5:1" in str(info.value)
    assert "ParserError" in str(info.value)


def test_type_error_and_missing_import_are_reported(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "Bad.sol").write_text(
        "// SPDX-License-Identifier: MIT\n"
        "pragma solidity ^0.8.20;\n"
        "import {Gone} from './Gone.sol';\n"
        "contract Bad { function f() external pure returns (uint8) { return 'x'; } }\n"
    )
    with pytest.raises(ContractCompileError, match=r"contracts/Bad\.sol:3:1: .*Gone\.sol"):
        compile_all(tmp_path)


def test_missing_node_asks_for_npm_ci(lab_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contracts.shutil, "which", lambda _name: None)
    with pytest.raises(ContractCompileError, match="npm ci"):
        compile_all(lab_root)


def test_missing_solc_package_asks_for_npm_ci(
    lab_root: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path_factory.mktemp("checkout-without-node-modules")
    (checkout / "scripts").mkdir()
    shutil.copy(PROJECT_ROOT / "scripts" / "solc_compile.js", checkout / "scripts")
    monkeypatch.setenv("LAYERLAB_ROOT", str(checkout))
    with pytest.raises(ContractCompileError, match="npm ci"):
        compile_all(lab_root)


# -- deploy and call against py-evm (eth-tester) ------------------------------------------


@pytest.fixture
def w3() -> Iterator[Web3]:
    pytest.importorskip("eth_tester", reason="eth-tester[py-evm] is not installed")
    from web3 import EthereumTesterProvider

    yield Web3(EthereumTesterProvider())


def test_deploy_token_via_node_signing(w3: Web3, artifacts: dict[str, ContractArtifact]) -> None:
    owner, alice = w3.eth.accounts[:2]
    token = deploy(w3, artifacts["LabToken"], "Lab", "LAB", 10**24, sender=owner)
    assert token.functions.name().call() == "Lab"
    assert token.functions.balanceOf(owner).call() == 10**24

    tx_hash = token.functions.transfer(alice, 5).transact({"from": owner})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    (event,) = token.events.Transfer().process_receipt(receipt)
    assert (event["args"]["from"], event["args"]["to"], event["args"]["value"]) == (
        owner,
        alice,
        5,
    )
    same = get_contract(w3, artifacts["LabToken"], token.address)
    assert same.functions.balanceOf(alice).call() == 5


def test_deploy_nft_signed_locally(w3: Web3, artifacts: dict[str, ContractArtifact]) -> None:
    funder = w3.eth.accounts[0]
    account = Account.create()
    funding = w3.eth.send_transaction({"from": funder, "to": account.address, "value": 10**18})
    w3.eth.wait_for_transaction_receipt(funding)

    nft = deploy(
        w3, artifacts["LabNFT"], sender=account.address, private_key=account.key.to_0x_hex()
    )
    assert w3.eth.get_code(nft.address) == artifacts["LabNFT"].deployed_bytecode
    assert nft.functions.mint(funder).call() == 1
    for expected_id in (1, 2):
        tx_hash = nft.functions.mint(funder).transact({"from": funder})
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
        (event,) = nft.events.Transfer().process_receipt(receipt)
        assert event["args"]["tokenId"] == expected_id
    assert nft.functions.ownerOf(2).call() == funder
    assert nft.functions.totalMinted().call() == 2


def test_reverter_reverts_and_emits(w3: Web3, artifacts: dict[str, ContractArtifact]) -> None:
    sender = w3.eth.accounts[0]
    reverter = deploy(w3, artifacts["Reverter"], sender=sender)
    with pytest.raises(REVERTED, match="layerlab: always fails"):
        reverter.functions.fail().call()
    with pytest.raises(REVERTED, match="x must be positive"):
        reverter.functions.requirePositive(0).call()
    assert reverter.functions.requirePositive(7).call() == 7
    with pytest.raises(REVERTED) as info:
        reverter.functions.failWithCode(42).call()
    nope_42 = Web3.keccak(text="Nope(uint256)")[:4] + (42).to_bytes(32, "big")
    # web3 puts revert data in .data as hex; eth-tester only in its message, as a bytes repr
    assert nope_42.hex() in str(getattr(info.value, "data", "")) or repr(nope_42)[2:-1] in str(
        info.value
    )

    receipt = w3.eth.wait_for_transaction_receipt(
        reverter.functions.set(99).transact({"from": sender})
    )
    (event,) = reverter.events.Set().process_receipt(receipt)
    assert event["args"] == {"who": sender, "value": 99}
    assert reverter.functions.get().call() == 99


def test_deploy_rejects_a_key_of_another_account(
    w3: Web3, artifacts: dict[str, ContractArtifact]
) -> None:
    with pytest.raises(ContractDeployError, match="private key is for"):
        deploy(
            w3,
            artifacts["Reverter"],
            sender=w3.eth.accounts[0],
            private_key=Account.create().key.to_0x_hex(),
        )


def test_deploy_wraps_a_reverting_constructor(
    w3: Web3, artifacts: dict[str, ContractArtifact]
) -> None:
    # Gas estimation hits the REVERT: a JSON-RPC node answers code 3, which deploy wraps;
    # eth-tester raises its own TransactionFailed, which is let through.
    broken = ContractArtifact(
        name="AlwaysReverts",
        abi=(),
        bytecode=bytes.fromhex("60006000fd"),  # PUSH1 0 PUSH1 0 REVERT
        deployed_bytecode=b"",
        source_name="none",
    )
    with pytest.raises((ContractDeployError, *REVERTED)):
        deploy(w3, broken, sender=w3.eth.accounts[0])
