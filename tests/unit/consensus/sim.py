"""A deterministic single-chain PoS simulation over ``layerlab.l1.consensus.pos``.

Honest online validators propose when selected and attest once per epoch in their committee
slot; offline validators do neither. Attestations are aggregated per slot and included by
the next online proposers while the phase0 inclusion window is open. Blocks are identified
by a synthetic root ``keccak(rlp([slot, parent_root, body_root]))``, as the node would use
the execution block hash. With ``sign=True`` every signature is real BLS and every block is
verified; otherwise signatures are placeholders and ``verify_signatures=False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import rlp
from eth_hash.auto import keccak

from layerlab.crypto import bls
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.pos import BeaconBody, BeaconState, PosPreset
from layerlab.l1.consensus.types import (
    Attestation,
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    Deposit,
    ExitRequest,
    ProposerSlashing,
    Root,
    SignedBlockHeader,
)

DUMMY_SIGNATURE = b"\xc0" + b"\x00" * 95
GWEI_PER_ETH = 10**9


@dataclass(frozen=True)
class Key:
    """A validator's BLS key pair and withdrawal address."""

    secret: bytes
    pubkey: bytes
    address: bytes


def make_key(label: str) -> Key:
    sk = bls.secret_key(label.encode())
    return Key(sk, bls.public_key(sk), keccak(label.encode())[:20])


def dummy_reveal(proposer: int, epoch: int) -> bytes:
    """A stand-in RANDAO reveal, unique per (proposer, epoch) like a real one (a constant
    reveal would cancel itself out of the XOR mix every second block)."""
    digest = hashlib.sha256(b"sim-reveal" + proposer.to_bytes(8, "big") + epoch.to_bytes(8, "big")).digest()
    return digest * 3


def compute_block_root(slot: int, parent_root: Root, body: BeaconBody, payload: bytes = b"") -> Root:
    """Stand-in for the execution block hash: commits to the slot, parent, consensus body and
    an opaque ``payload`` (different payloads give different blocks with the same body)."""
    return bytes(keccak(rlp.encode([slot, parent_root, body.root(), payload])))


def sign_attestation(keys: dict[int, Key], data: AttestationData, indices: Iterable[int]) -> Attestation:
    ordered = tuple(sorted(indices))
    message = pos.attestation_signing_root(data)
    signature = bls.aggregate([bls.sign(keys[i].secret, message) for i in ordered])
    return Attestation(data, ordered, signature)


def sign_header(key: Key, slot: int, proposer: int, block_root: Root) -> SignedBlockHeader:
    signature = bls.sign(key.secret, pos.proposal_signing_root(slot, proposer, block_root))
    return SignedBlockHeader(slot, proposer, block_root, signature)


def make_deposit(key: Key, amount_gwei: int, index: int, *, forge: bool = False) -> Deposit:
    message = pos.deposit_message(key.pubkey, key.address, amount_gwei)
    signer = bls.secret_key(b"forger") if forge else key.secret
    return Deposit(key.pubkey, key.address, amount_gwei, bls.sign(signer, message), index)


@dataclass
class Block:
    root: Root
    parent_root: Root
    slot: int
    body: BeaconBody
    signature: bytes
    post_state: BeaconState

    def header(self) -> SignedBlockHeader:
        return SignedBlockHeader(self.slot, self.body.proposer_index, self.root, self.signature)


def produce_block(
    state: BeaconState,
    slot: int,
    keys: dict[int, Key],
    *,
    sign: bool,
    attestations: tuple[Attestation, ...] = (),
    proposer_slashings: tuple[ProposerSlashing, ...] = (),
    attester_slashings: tuple[AttesterSlashing, ...] = (),
    deposits: tuple[Deposit, ...] = (),
    exits: tuple[ExitRequest, ...] = (),
    payload: bytes = b"",
) -> Block:
    """The block the scheduled proposer makes at ``slot`` on ``state``'s head, processed.

    With ``sign`` the proposal and RANDAO reveal are real BLS signatures and the block is
    checked with ``verify_signatures=True``.
    """
    pre = pos.process_slots(state, slot)
    proposer = pos.get_beacon_proposer_index(pre, slot)
    epoch = pos.compute_epoch_at_slot(state.preset, slot)
    reveal = (
        bls.sign(keys[proposer].secret, pos.randao_signing_root(epoch))
        if sign
        else dummy_reveal(proposer, epoch)
    )
    body = BeaconBody(
        proposer_index=proposer,
        randao_reveal=reveal,
        attestations=attestations,
        proposer_slashings=proposer_slashings,
        attester_slashings=attester_slashings,
        deposits=deposits,
        exits=exits,
        withdrawals=pos.expected_withdrawals(pre),
    )
    parent = state.latest_block_root
    root = compute_block_root(slot, parent, body, payload)
    signature = (
        bls.sign(keys[proposer].secret, pos.proposal_signing_root(slot, proposer, root))
        if sign
        else DUMMY_SIGNATURE
    )
    post = pos.process_block(state, slot, parent, root, body, signature, verify_signatures=sign)
    return Block(root, parent, slot, body, signature, post)


def includable(state: BeaconState, att: Attestation) -> bool:
    """Whether ``process_attestation`` would accept ``att`` in a block on ``state`` (advanced)."""
    data = att.data
    if not data.slot + 1 <= state.slot <= data.slot + state.preset.slots_per_epoch:
        return False
    current = pos.get_current_epoch(state)
    if data.target.epoch not in (pos.get_previous_epoch(state), current):
        return False
    justified = state.current_justified if data.target.epoch == current else state.previous_justified
    return data.source == justified


@dataclass
class Simulation:
    """One canonical chain driven slot by slot.

    ``offline`` validators neither propose nor attest. ``queued_*`` operations are put in
    the next block produced. ``checkpoints[e]`` is ``(current_justified, finalized)`` as seen
    by the state at the first slot of epoch ``e``.
    """

    preset: PosPreset = pos.MINIMAL
    n_validators: int = 8
    balances_eth: tuple[int, ...] | None = None
    genesis_slot: int = 0
    sign: bool = False
    offline: set[int] = field(default_factory=set)
    keys: dict[int, Key] = field(init=False)
    state: BeaconState = field(init=False)
    blocks: list[Block] = field(init=False)
    pending: list[Attestation] = field(init=False)
    queued_deposits: list[Deposit] = field(default_factory=list)
    queued_exits: list[ExitRequest] = field(default_factory=list)
    queued_proposer_slashings: list[ProposerSlashing] = field(default_factory=list)
    queued_attester_slashings: list[AttesterSlashing] = field(default_factory=list)
    checkpoints: dict[int, tuple[Checkpoint, Checkpoint]] = field(init=False)
    slot: int = field(init=False)

    def __post_init__(self) -> None:
        balances = self.balances_eth or (32,) * self.n_validators
        self.keys = {i: make_key(f"validator-{i}") for i in range(len(balances))}
        self.genesis_root = bytes(keccak(b"layerlab sim genesis"))
        self.state = pos.genesis_state(
            self.preset,
            [(self.keys[i].pubkey, self.keys[i].address, b * GWEI_PER_ETH) for i, b in enumerate(balances)],
            self.genesis_root,
            self.genesis_slot,
        )
        self.blocks = []
        self.pending = []
        self.checkpoints = {}
        self.slot = self.genesis_slot

    @property
    def head(self) -> Root:
        return self.state.latest_block_root

    def add_key(self, index: int, key: Key) -> None:
        self.keys[index] = key

    def state_at(self, slot: int) -> BeaconState:
        return pos.process_slots(self.state, slot)

    def build_block(self, slot: int) -> Block:
        """The block the scheduled proposer would make at ``slot`` on the current head."""
        pre = self.state_at(slot)
        return produce_block(
            self.state,
            slot,
            self.keys,
            sign=self.sign,
            attestations=tuple(a for a in self.pending if includable(pre, a)),
            proposer_slashings=tuple(self.queued_proposer_slashings),
            attester_slashings=tuple(self.queued_attester_slashings),
            deposits=tuple(self.queued_deposits),
            exits=tuple(self.queued_exits),
        )

    def apply(self, block: Block) -> None:
        """Make ``block`` the new head and drop what it included from the queues."""
        self.blocks.append(block)
        self.state = block.post_state
        included = set(block.body.attestations)
        self.pending = [a for a in self.pending if a not in included]
        self.queued_deposits.clear()
        self.queued_exits.clear()
        self.queued_proposer_slashings.clear()
        self.queued_attester_slashings.clear()

    def step(self) -> Block | None:
        """Advance one slot: propose if the proposer is online, then attest."""
        slot = self.slot + 1
        if slot % self.preset.slots_per_epoch == 0:
            at = self.state_at(slot)
            self.checkpoints[slot // self.preset.slots_per_epoch] = (at.current_justified, at.finalized)
        at = self.state_at(slot)
        proposer = pos.get_beacon_proposer_index(at, slot)
        block: Block | None = None
        if proposer not in self.offline and not at.validators[proposer].slashed:
            block = self.build_block(slot)
            self.apply(block)
        self.slot = slot
        self.attest(slot)
        self.pending = [a for a in self.pending if a.data.slot + self.preset.slots_per_epoch > slot]
        return block

    def attest(self, slot: int) -> None:
        at = self.state_at(slot)
        committee = [i for i in pos.get_committee(at, slot) if i not in self.offline]
        if not committee:
            return
        data = pos.make_attestation_data(self.state, slot, self.head)
        if self.sign:
            self.pending.append(sign_attestation(self.keys, data, committee))
        else:
            self.pending.append(Attestation(data, tuple(committee), DUMMY_SIGNATURE))

    def run_until(self, slot: int) -> None:
        while self.slot < slot:
            self.step()

    def run_epochs(self, epochs: int) -> None:
        self.run_until(self.slot + epochs * self.preset.slots_per_epoch)
