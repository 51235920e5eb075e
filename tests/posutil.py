"""In-process proof-of-stake nodes for tests: same genesis, blocks proposed and voted synchronously.

Every node built here starts from the same genesis (a fixed timestamp far in the past, four
dev validators whose BLS keys are :func:`~layerlab.l1.consensus.beacon.validator_secret`),
so blocks built on one node can be fed to another with ``import_block`` exactly as the p2p
layer does. :func:`propose` builds, signs and commits a block as
:meth:`layerlab.l1.validator.PosValidator._propose` does, and can instead return a block
broken in one named way (:data:`TAMPERS`) for the invalid-block tests. Times given to
``import_block`` are the slot start plus 0.1 s, so nothing depends on the wall clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth.abc import BlockAPI, ReceiptAPI
from eth_account import Account

from layerlab.crypto import bls
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.l1.chain.config import ChainConfig, parse_config
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.beacon import (
    PosEngine,
    encode_signed_body,
    to_exec_withdrawals,
    validator_secret,
)
from layerlab.l1.consensus.merge import pos_of
from layerlab.l1.consensus.pos import BeaconBody
from layerlab.l1.consensus.types import Attestation, AttestationData, Withdrawal
from layerlab.l1.launcher import make_node
from layerlab.l1.node import Node

GENESIS_TS = 1_700_000_000
VALIDATORS = 4
DEV = derive_dev_accounts()
COINBASE = b"\xc0" * 20
"""Fee recipient of every block here: no dev account, so fees never blur a balance check."""


def pos_config(preset: str = "minimal", **consensus: Any) -> ChainConfig:
    return parse_config({
        "timestamp": GENESIS_TS,
        "consensus": {"engine": "pos", "validators": VALIDATORS, "preset": preset, **consensus},
    })


CONFIG = pos_config()


def pos_node(config: ChainConfig | None = None, data_dir: Path | None = None) -> Node:
    return make_node(config or CONFIG, data_dir)


def merge_config(merge_block: int = 3) -> ChainConfig:
    return parse_config({
        "timestamp": GENESIS_TS,
        "consensus": {"engine": "merge", "validators": VALIDATORS, "mergeBlock": merge_block},
    })


def engine(node: Node) -> PosEngine:
    """The node's active PoS engine (a ``pos`` chain, or a ``merge`` chain after the fork)."""
    eng = pos_of(node.engine)
    assert eng is not None, "no proof-of-stake engine active on this node"
    return eng


def at(node: Node, slot: int) -> float:
    """The time a peer receives a block of ``slot``: just after the slot starts."""
    return engine(node).slot_start(slot) + 0.1


# -- keys --------------------------------------------------------------------------------------

_KEYS: dict[bytes, bytes] = {}


def register_key(sk: bytes) -> bytes:
    """Make a validator key (e.g. of a deposit) usable by :func:`propose`/:func:`attest_all`;
    return its public key."""
    pubkey = bls.public_key(sk)
    _KEYS[pubkey] = sk
    return pubkey


for _i in range(VALIDATORS):
    register_key(validator_secret(_i))


def secret_of(state: pos.BeaconState, index: int) -> bytes:
    return _KEYS[state.validators[index].pubkey]


# -- state queries -----------------------------------------------------------------------------

def head_state(node: Node) -> pos.BeaconState:
    eng = engine(node)
    return eng.state_of(bytes(node.head.hash))


def state_at(node: Node, slot: int) -> pos.BeaconState:
    """The head's state advanced through empty slots to ``slot`` (what a proposer sees)."""
    state = head_state(node)
    return pos.process_slots(state, slot) if slot > state.slot else state


def proposer_of(node: Node, slot: int) -> int:
    return pos.get_beacon_proposer_index(state_at(node, slot), slot)


def slot_of(node: Node, header: Any = None) -> int:
    return engine(node).slot_of_block(header if header is not None else node.head)


# -- proposals ---------------------------------------------------------------------------------

TAMPERS = (
    "wrong-proposer",       # a validator who is not the slot's proposer builds and signs it
    "bad-signature",        # the right proposer index, signed with another validator's key
    "bad-randao",           # RANDAO reveal for the wrong epoch (mix_hash consistent with it)
    "extra-data",           # header does not commit to the body
    "wrong-prevrandao",     # mix_hash is not the mix after the reveal
    "bad-state-root",       # header state root changed, re-signed by the right proposer
    "gas-over-limit",       # header gas used above the gas limit, re-signed
    "withdrawals-mismatch",  # an execution withdrawal the body does not have
    "off-slot-timestamp",   # a timestamp between two slot starts (needs slot_seconds > 1)
    "empty-body",           # no consensus body, as a PoW block would come
)


@dataclass
class Proposal:
    block: BlockAPI
    body: bytes
    receipts: tuple[ReceiptAPI, ...]
    slot: int
    proposer: int

    @property
    def hash(self) -> bytes:
        return bytes(self.block.hash)


def _sign(block: BlockAPI, slot: int, proposer: int, sk: bytes) -> bytes:
    return bls.sign(sk, pos.proposal_signing_root(slot, proposer, bytes(block.hash)))


def propose(
    node: Node,
    slot: int,
    *,
    tamper: str | None = None,
    commit: bool | None = None,
    coinbase: bytes = COINBASE,
    proposer: int | None = None,
) -> Proposal:
    """Build and sign the block of ``slot`` on ``node``'s head, as ``PosValidator._propose``.

    Honest proposals are committed to ``node`` (``commit_local``) unless ``commit=False``;
    a ``tamper`` (one of :data:`TAMPERS`) returns a block broken that way, not committed.
    ``proposer`` forces the signing validator (for double proposals it is the real one).
    """
    if tamper is not None and tamper not in TAMPERS:
        raise ValueError(f"unknown tamper {tamper!r}")
    eng = engine(node)
    parent = node.head
    pre = pos.process_slots(eng.state_of(bytes(parent.hash)), slot)
    expected = pos.get_beacon_proposer_index(pre, slot)
    index = expected if proposer is None else proposer
    if tamper == "wrong-proposer":
        index = (expected + 1) % VALIDATORS
    sk = secret_of(pre, index)
    body, mix = eng.build_body(parent, slot, index, sk)
    timestamp = eng.slot_start(slot)
    exec_withdrawals = to_exec_withdrawals(body.withdrawals)
    if tamper == "bad-randao":
        reveal = bls.sign(sk, pos.randao_signing_root(slot // eng.preset.slots_per_epoch + 1))
        body = replace(body, randao_reveal=reveal)
        mix = bytes(a ^ b for a, b in zip(pre.randao_mix, hashlib.sha256(reveal).digest(), strict=True))
    elif tamper == "wrong-prevrandao":
        mix = bytes(b ^ 0xFF for b in mix)
    elif tamper == "withdrawals-mismatch":
        extra = Withdrawal(pre.next_withdrawal_index, 0, DEV[9].address_bytes, 1)
        exec_withdrawals = to_exec_withdrawals([*body.withdrawals, extra])
    elif tamper == "off-slot-timestamp":
        assert eng.preset.slot_seconds > 1, "every second is a slot start with one-second slots"
        timestamp += 1
    block, receipts = node.build_template(
        timestamp=timestamp, coinbase=coinbase, mix_hash=mix, withdrawals=exec_withdrawals)
    header = block.header.copy(extra_data=body.root())
    if tamper == "extra-data":
        header = header.copy(extra_data=b"\x00" * 32)
    elif tamper == "bad-state-root":
        header = header.copy(state_root=b"\x42" * 32)
    elif tamper == "gas-over-limit":
        header = header.copy(gas_used=header.gas_limit + 1)
    block = block.copy(header=header)
    signer = sk
    if tamper == "bad-signature":
        signer = secret_of(pre, (index + 1) % VALIDATORS)
    signed = encode_signed_body(body, _sign(block, slot, index, signer))
    if tamper == "empty-body":
        signed = b""
    proposal = Proposal(block, signed, tuple(receipts), slot, index)
    if commit if commit is not None else tamper is None:
        node.commit_local(block, signed, receipts)
    return proposal


def send(dst: Node, proposal: Proposal | tuple[BlockAPI, bytes], now: float | None = None) -> bool:
    """Deliver one block (with its signed body) to ``dst``, received just after its slot starts."""
    block, body = (proposal.block, proposal.body) if isinstance(proposal, Proposal) else proposal
    when = float(block.header.timestamp) + 0.1 if now is None else now
    return dst.import_block(block, body, now=when)


def share(src: Node, dst: Node) -> int:
    """Give ``dst`` every canonical block of ``src`` it lacks, with its body; count them."""
    assert src.engine is not None
    n = 0
    for number in range(1, src.head.block_number + 1):
        header = src.chain.get_header_by_number(number)
        assert header is not None
        if not dst.has_block(header.hash):
            block = src.chain.get_block(header)
            dst.import_block(block, src.engine.body(bytes(header.hash)),
                             now=float(header.timestamp) + 0.1)
            n += 1
    return n


# -- votes -------------------------------------------------------------------------------------

def vote(node: Node, slot: int, index: int, head: bytes | None = None) -> Attestation:
    """Validator ``index``'s signed single vote at ``slot`` for ``head`` (default: the node's head),
    built as ``PosValidator._attest`` does; not delivered anywhere."""
    eng = engine(node)
    root = bytes(node.head.hash) if head is None else head
    data: AttestationData = pos.make_attestation_data(eng.state_of(root), slot, root)
    sk = secret_of(eng.state_of(root), index)
    return Attestation(data, (index,), bls.sign(sk, pos.attestation_signing_root(data)))


def committee(node: Node, slot: int, head: bytes | None = None) -> tuple[int, ...]:
    eng = engine(node)
    root = bytes(node.head.hash) if head is None else head
    state = eng.state_of(root)
    if slot > state.slot:
        state = pos.process_slots(state, slot)
    return pos.get_committee(state, slot)


def attest_all(node: Node, slot: int, *, head: bytes | None = None) -> list[Attestation]:
    """Every committee member of ``slot`` votes for ``head`` (default: the head) on ``node``."""
    eng = engine(node)
    atts = [vote(node, slot, i, head) for i in committee(node, slot, head)]
    for att in atts:
        eng.on_attestation(att)
    return atts


def deliver(node: Node, atts: list[Attestation]) -> None:
    """Gossip: hand votes made elsewhere to ``node``'s engine."""
    for att in atts:
        engine(node).on_attestation(att)


def run_slots(node: Node, first: int, last: int, *, peers: tuple[Node, ...] = (),
              skip: frozenset[int] = frozenset()) -> list[Proposal]:
    """Slots ``first..last``: a block each (except ``skip``), then the committee votes;
    blocks and votes also go to ``peers``."""
    out = []
    for slot in range(first, last + 1):
        if slot not in skip:
            p = propose(node, slot)
            out.append(p)
            for peer in peers:
                send(peer, p)
        atts = attest_all(node, slot)
        for peer in peers:
            deliver(peer, atts)
    return out


# -- transactions ------------------------------------------------------------------------------

def sign_tx(sender: int, *, to: bytes, value: int = 0, data: bytes = b"", nonce: int, gas: int = 21_000,
            chain_id: int | None = None) -> bytes:
    tx = {"chainId": CONFIG.chain_id if chain_id is None else chain_id, "nonce": nonce,
          "to": "0x" + to.hex(), "value": value, "data": data, "gas": gas,
          "maxFeePerGas": 100 * 10**9, "maxPriorityFeePerGas": 10**9, "type": 2}
    return bytes(Account.sign_transaction(tx, DEV[sender].private_key).raw_transaction)


def body_of(node: Node, block_hash: bytes) -> BeaconBody:
    from layerlab.l1.consensus.beacon import decode_signed_body

    assert node.engine is not None
    return decode_signed_body(node.engine.body(block_hash))[0]
