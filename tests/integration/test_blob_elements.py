"""One blob field element proven on chain with the point-evaluation precompile (0x0a) of
the node's Cancun VM (``BlobElements.sol``): the contract's evaluation point for element i
is the one at which c-kzg's polynomial takes the blob's i-th element, the precompile
accepts the true value and refuses any other, and the 31 payload bytes come back."""

from __future__ import annotations

import os

import ckzg
import pytest
from eth_account.typed_transactions.base import TRUSTED_SETUP
from web3 import Web3
from web3.exceptions import ContractCustomError

from layerlab.contracts import deploy, load_artifact
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l2 import blobpost

pytestmark = pytest.mark.slow

DEPLOYER = derive_dev_accounts()[0]


def selector(exc: ContractCustomError) -> bytes:
    data = exc.data
    return bytes.fromhex((data if isinstance(data, str) else data["data"])[2:10])


def test_an_element_is_read_against_the_versioned_hash(w3: Web3) -> None:
    harness = deploy(w3, load_artifact("BlobElementsHarness"), sender=DEPLOYER.address)
    data = os.urandom(5000)
    (blob,) = blobpost.encode_blobs(data)
    setup = ckzg.load_trusted_setup(TRUSTED_SETUP, 0)
    commitment = bytes(ckzg.blob_to_kzg_commitment(blob, setup))
    vhash = blobpost.blob_versioned_hash(commitment)
    for index in (0, 1, 4095):
        z = harness.functions.evaluationPoint(index).call()
        proof, y = ckzg.compute_kzg_proof(blob, z.to_bytes(32, "big"), setup)
        assert bytes(y) == blob[32 * index:32 * index + 32]  # c-kzg agrees on the point
        got = harness.functions.readElement(vhash, index, bytes(y), commitment,
                                            bytes(proof)).call()
        assert bytes(got) == blob[32 * index + 1:32 * index + 32]
        if 1 <= index <= 5000 // 31:
            assert bytes(got) == data[31 * (index - 1):31 * index].ljust(31, b"\0")
    index = 7
    z = harness.functions.evaluationPoint(index).call()
    proof, y = ckzg.compute_kzg_proof(blob, z.to_bytes(32, "big"), setup)
    gas = harness.functions.readElement(vhash, index, bytes(y), commitment,
                                        bytes(proof)).estimate_gas()
    assert 50_000 < gas < 80_000  # the precompile's 50,000 plus a modexp and calldata
    wrong = (int.from_bytes(bytes(y), "big") + 1).to_bytes(32, "big")
    for args in ((vhash, index, wrong, commitment, bytes(proof)),
                 (b"\x01" + bytes(31), index, bytes(y), commitment, bytes(proof)),
                 (vhash, index + 1, bytes(y), commitment, bytes(proof))):
        with pytest.raises(ContractCustomError) as info:
            harness.functions.readElement(*args).call()
        assert selector(info.value) == Web3.keccak(text="PointEvaluationFailed(uint256)")[:4]
    with pytest.raises(ContractCustomError) as info:
        harness.functions.evaluationPoint(4096).call()
    assert selector(info.value) == Web3.keccak(text="ElementIndexOutOfRange(uint256)")[:4]
