"""The optimistic rollup posting a batch in blobs to a node process (EIP-4844): the
contract records the blobs' versioned hashes, a verifier fetches the blobs from the node's
beacon API, checks and decodes them, re-executes and gets the posted state root; what blob
mode refuses (queued messages, a transaction without blobs, disputes) is refused."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from eth_utils.crypto import keccak
from web3 import Web3

from layerlab.crypto.keys import derive_dev_accounts
from layerlab.errors import InvalidProof
from layerlab.l2 import blobpost
from layerlab.l2.rollup.machine import ETH, RollupState
from layerlab.l2.rollup.optimistic import (
    BLOB_BATCH_GAS,
    MINIMAL,
    Batch,
    RollupContract,
    RollupTxError,
    deploy_rollup,
    execute_batch,
    read_blob_batch,
)
from layerlab.l2.rollup.txs import Transfer, sign_tx
from tests.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

DEV = derive_dev_accounts()
DEPLOYER, SEQUENCER, ALICE, BOB, VERIFIER = DEV[0], DEV[1], DEV[2], DEV[3], DEV[4]
ETHER = 10**18
GAS_PER_BLOB = 2**17  # EIP-4844


@pytest.fixture()
def rollup(node: NodeProcess, w3: Web3) -> Iterator[RollupContract]:
    r = deploy_rollup(w3, DEPLOYER.address, SEQUENCER.address, MINIMAL, blob_batches=True)
    r.bond(SEQUENCER.private_key, MINIMAL.proposer_bond)
    yield r


def test_blob_batches_are_off_unless_the_deployer_chose_them_before_any_batch(
        node: NodeProcess, w3: Web3) -> None:
    """Blob batches cannot be disputed, so a default deployment refuses them: a sequencer
    cannot post an undisputable root on a rollup whose users were promised fraud proofs."""
    plain = deploy_rollup(w3, DEPLOYER.address, SEQUENCER.address, MINIMAL)
    plain.bond(SEQUENCER.private_key, MINIMAL.proposer_bond)
    assert plain.l1.call("blobBatchesEnabled") is False
    with pytest.raises(RollupTxError) as info:
        plain.submit_batch_blobs(SEQUENCER.private_key, transfers(plain, 1), 1)
    assert info.value.error_name == "BlobBatchesDisabled"
    # only the deployer may opt in, and only before the first batch
    with pytest.raises(RollupTxError) as info:
        plain.l1.transact(SEQUENCER.private_key, "enableBlobBatches",
                          plain.fn.enableBlobBatches())
    assert info.value.error_name == "NotDeployer"
    plain.submit_batch(SEQUENCER.private_key, transfers(plain, 1), 1)
    with pytest.raises(RollupTxError) as info:
        plain.l1.transact(DEPLOYER.private_key, "enableBlobBatches", plain.fn.enableBlobBatches())
    assert info.value.error_name == "BatchesAlreadyPosted"
    assert plain.l1.call("blobBatchesEnabled") is False


def transfers(rollup: RollupContract, n: int, first_nonce: int = 0) -> Batch:
    return Batch(tuple(
        sign_tx(Transfer(nonce=first_nonce + i, token=ETH, to=BOB.address_bytes, amount=10**15),
                ALICE.private_key, rollup.domain).encode() for i in range(n)))


def test_a_blob_batch_is_derived_from_the_beacon_api(node: NodeProcess, w3: Web3,
                                                     rollup: RollupContract) -> None:
    state = RollupState()
    deposit = rollup.queued_step(rollup.deposit_eth(ALICE.private_key, ALICE.address, ETHER))
    first = execute_batch(state, Batch((deposit,)), rollup.domain)
    rollup.submit_batch(SEQUENCER.private_key, first.batch, first.post_root)
    assert rollup.blob_batch(1) is None

    # deposits need calldata: the contract checks them against its queue byte for byte
    with pytest.raises(RollupTxError, match="queued message"):
        rollup.submit_batch_blobs(SEQUENCER.private_key, Batch((deposit,)), first.post_root)

    posted = execute_batch(copy.deepcopy(state), transfers(rollup, 200), rollup.domain)
    assert all(r.ok for r in posted.receipts)
    receipt = rollup.submit_batch_blobs(SEQUENCER.private_key, posted.batch, posted.post_root)
    index = rollup.batch_count() - 1
    assert index == 2 and rollup.state_root(index) == posted.post_root
    assert receipt["gasUsed"] < BLOB_BATCH_GAS
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    hashes = [bytes(h) for h in tx["blobVersionedHashes"]]
    assert len(hashes) == 1 and int(receipt["blobGasUsed"]) == GAS_PER_BLOB
    assert rollup.blob_batch(index) == keccak(b"".join(hashes))
    # the hash eth-account put in the transaction is the blob's, computed here again
    (blob,) = blobpost.encode_blobs(posted.batch.inbox)
    assert hashes[0] == blobpost.blob_versioned_hash(blobpost.blob_commitment(blob))

    # the verifier: only the L1 and its beacon API, and its own state before the batch
    derived = read_blob_batch(rollup, node.url, index)
    assert derived == posted.batch
    replay = execute_batch(copy.deepcopy(state), derived, rollup.domain)
    assert replay.post_root == rollup.state_root(index)

    # no dispute game in blob mode: the one-step proof cannot bind a step to the blob yet
    with pytest.raises(RollupTxError, match="BlobBatchNotDisputable"):
        rollup.challenge(VERIFIER.private_key, index, MINIMAL.challenger_bond)
    # a calldata batch in the same window is still disputable
    assert list(rollup.l1.call("blobBatch", 1)) == [False, b"\0" * 32]
    assert rollup.challenge(VERIFIER.private_key, 1, MINIMAL.challenger_bond) == 0


def test_blob_mode_refusals(node: NodeProcess, w3: Web3, rollup: RollupContract) -> None:
    root = RollupState().root.to_bytes(32, "big")
    # a submitBatchBlobs without blobs
    with pytest.raises(RollupTxError, match="NoBlobs"):
        rollup.l1.transact(SEQUENCER.private_key, "submitBatchBlobs",
                           rollup.fn.submitBatchBlobs(b"\1" * 32, 1, root))
    # only the sequencer posts
    batch = transfers(rollup, 3)
    with pytest.raises(RollupTxError, match="NotSequencer"):
        rollup.submit_batch_blobs(VERIFIER.private_key, batch, 1)
    # a proposer whose claimed steps root is not its blob's: the verifier finds out
    blobs = blobpost.encode_blobs(batch.inbox)
    fn = rollup.fn.submitBatchBlobs(transfers(rollup, 3, first_nonce=1).steps_root, 3, root)
    blobpost.send_blob_transaction(rollup.l1, SEQUENCER.private_key, "submitBatchBlobs", fn,
                                   blobs, BLOB_BATCH_GAS)
    index = rollup.batch_count() - 1
    with pytest.raises(InvalidProof, match="the proposer claimed 3"):
        read_blob_batch(rollup, node.url, index)
    # a calldata batch (here: genesis) has no blobs to derive
    with pytest.raises(InvalidProof, match="not a blob batch"):
        read_blob_batch(rollup, node.url, 0)
