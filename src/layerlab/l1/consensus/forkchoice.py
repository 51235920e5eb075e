"""Fork choice (LMD-GHOST + Casper FFG) and a slashing detector.

:class:`Store` is consensus-specs ``phase0/fork-choice.md`` without a clock: blocks arrive
with their already-computed post-states (the caller ran :func:`pos.process_block`), votes
arrive as attestations, and :meth:`Store.get_head` walks from the justified checkpoint,
choosing at every fork the child whose subtree holds the most stake among the validators'
latest messages (LMD-GHOST, Gasper arXiv:2003.03052 section 3). Finality is the FFG
guarantee (arXiv:1710.09437): a block that does not descend from the finalized checkpoint
is refused, whatever a peer sends and however long its branch.

Simplifications relative to the spec: no proposer boost, no "unrealized justification"
pull-up, and the viability filter only asks that a branch descend from the finalized
checkpoint (``filter_block_tree`` also compares each leaf's justified checkpoint, which
needs the store's notion of the current epoch).

:class:`SlashingDetector` is what a slasher service does: remember every validator's
signed proposals and votes and produce evidence for the two Casper FFG slashing
conditions plus double proposals.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from layerlab.crypto import bls
from layerlab.errors import ConsensusError, InvalidSignature
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.pos import BeaconState, PosPreset
from layerlab.l1.consensus.types import (
    Attestation,
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    Epoch,
    ProposerSlashing,
    Root,
    SignedBlockHeader,
    Slot,
    ValidatorIndex,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BlockNode:
    """What the store remembers of a block besides its post-state."""

    root: Root
    parent_root: Root
    slot: Slot


@dataclass(frozen=True, slots=True)
class LatestMessage:
    """phase0 ``LatestMessage``: a validator's newest LMD vote (by target epoch)."""

    epoch: Epoch
    root: Root


class Store:
    """The fork-choice store (phase0 ``Store``) for one PoS chain.

    Created from an anchor: the genesis block and state (or any trusted state), whose
    checkpoint ``(epoch(slot), root)`` starts as both justified and finalized.
    """

    def __init__(self, preset: PosPreset, genesis_root: Root, genesis_state: BeaconState) -> None:
        if genesis_state.latest_block_root != genesis_root:
            raise ConsensusError(
                f"anchor state is for block {genesis_state.latest_block_root.hex()}, not {genesis_root.hex()}"
            )
        self._preset = preset
        anchor = Checkpoint(pos.compute_epoch_at_slot(preset, genesis_state.slot), genesis_root)
        self._blocks: dict[Root, BlockNode] = {genesis_root: BlockNode(genesis_root, b"", genesis_state.slot)}
        self._children: dict[Root, list[Root]] = defaultdict(list)
        self._states: dict[Root, BeaconState] = {genesis_root: genesis_state}
        self._justified = anchor
        self._finalized = anchor
        self._latest_messages: dict[ValidatorIndex, LatestMessage] = {}
        self._equivocating: set[ValidatorIndex] = set()

    # -- accessors ---------------------------------------------------------------------------

    @property
    def justified(self) -> Checkpoint:
        return self._justified

    @property
    def finalized(self) -> Checkpoint:
        return self._finalized

    @property
    def equivocating_indices(self) -> frozenset[ValidatorIndex]:
        return frozenset(self._equivocating)

    def __contains__(self, root: object) -> bool:
        return root in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def block(self, root: Root) -> BlockNode:
        node = self._blocks.get(root)
        if node is None:
            raise ConsensusError(f"unknown block {root.hex()}")
        return node

    def state_of(self, root: Root) -> BeaconState:
        """The post-state of block ``root`` (phase0 ``store.block_states``)."""
        state = self._states.get(root)
        if state is None:
            raise ConsensusError(f"no state for block {root.hex()}")
        return state

    def latest_message(self, index: ValidatorIndex) -> LatestMessage | None:
        return self._latest_messages.get(index)

    def get_ancestor(self, root: Root, slot: Slot) -> Root:
        """phase0 ``get_ancestor``: the block at or before ``slot`` on ``root``'s chain.

        Walks parents while the block is newer than ``slot``; stops at the oldest block the
        store still holds (the anchor, or the finalized block after :meth:`prune`).
        """
        node = self.block(root)
        while node.slot > slot and node.parent_root in self._blocks:
            node = self._blocks[node.parent_root]
        return node.root

    def is_descendant(self, root: Root, ancestor: Root) -> bool:
        """True when ``ancestor`` is on ``root``'s chain (a block descends from itself)."""
        if root not in self._blocks or ancestor not in self._blocks:
            return False
        return self.get_ancestor(root, self._blocks[ancestor].slot) == ancestor

    def _descends_from_finalized(self, root: Root) -> bool:
        """phase0 ``on_block`` check: the chain's block at the finalized epoch's start slot
        is the finalized checkpoint root (so even a fork off the finalized block's own
        epoch-boundary gap is refused)."""
        finalized_slot = pos.compute_start_slot_at_epoch(self._preset, self._finalized.epoch)
        return self.get_ancestor(root, finalized_slot) == self._finalized.root

    # -- handlers ----------------------------------------------------------------------------

    def on_block(self, block_root: Root, parent_root: Root, slot: Slot, post_state: BeaconState) -> None:
        """phase0 ``on_block`` for a block the caller already validated with ``process_block``.

        Refuses a block with an unknown parent, one not after its parent, and one whose
        chain does not contain the finalized checkpoint: a finalized block is never
        reverted. Then adopts the post-state's justified and finalized checkpoints when they
        are newer than the store's.
        """
        if block_root in self._blocks:
            return
        parent = self._blocks.get(parent_root)
        if parent is None:
            raise ConsensusError(
                f"block {block_root.hex()} at slot {slot}: unknown parent {parent_root.hex()}"
            )
        if slot <= parent.slot:
            raise ConsensusError(f"block {block_root.hex()}: slot {slot} not after parent slot {parent.slot}")
        if post_state.latest_block_root != block_root or post_state.slot != slot:
            raise ConsensusError(
                f"block {block_root.hex()} at slot {slot}: post-state is for block "
                f"{post_state.latest_block_root.hex()} at slot {post_state.slot}"
            )
        finalized_slot = pos.compute_start_slot_at_epoch(self._preset, self._finalized.epoch)
        if slot <= finalized_slot or not self._descends_from_finalized(parent_root):
            raise ConsensusError(
                f"block {block_root.hex()} at slot {slot} conflicts with finalized checkpoint "
                f"(epoch {self._finalized.epoch}, root {self._finalized.root.hex()})"
            )
        self._blocks[block_root] = BlockNode(block_root, parent_root, slot)
        self._children[parent_root].append(block_root)
        self._states[block_root] = post_state
        if post_state.current_justified.epoch > self._justified.epoch:
            self._justified = post_state.current_justified
        if post_state.finalized.epoch > self._finalized.epoch:
            self._finalized = post_state.finalized
            log.debug("finalized epoch %d root %s", self._finalized.epoch, self._finalized.root.hex())

    def on_attestation(self, attestation: Attestation, *, verify_signature: bool = True) -> None:
        """phase0 ``on_attestation`` minus the clock checks: record LMD votes.

        The voted block and the target must be known, the vote not older than its block,
        and the target the voted chain's checkpoint for that epoch. Each non-equivocating
        validator keeps only its message with the highest target epoch.
        """
        data = attestation.data
        head = self._blocks.get(data.beacon_block_root)
        if head is None:
            raise ConsensusError(f"attestation votes for unknown block {data.beacon_block_root.hex()}")
        if data.target.root not in self._blocks:
            raise ConsensusError(f"attestation target {data.target.root.hex()} unknown")
        if head.slot > data.slot:
            raise ConsensusError(
                f"attestation at slot {data.slot} votes for a later block (slot {head.slot})"
            )
        target_slot = pos.compute_start_slot_at_epoch(self._preset, data.target.epoch)
        if self.get_ancestor(data.beacon_block_root, target_slot) != data.target.root:
            raise ConsensusError(
                f"attestation target {data.target.root.hex()} is not the epoch {data.target.epoch} "
                f"checkpoint of voted block {data.beacon_block_root.hex()}"
            )
        state = self._states[data.beacon_block_root]
        pos.validate_indexed_attestation(state, attestation, verify_signature)
        for index in attestation.validator_indices:
            if index in self._equivocating:
                continue
            current = self._latest_messages.get(index)
            if current is None or data.target.epoch > current.epoch:
                self._latest_messages[index] = LatestMessage(data.target.epoch, data.beacon_block_root)

    def on_attester_slashing(self, slashing: AttesterSlashing, *, verify_signatures: bool = True) -> None:
        """phase0 ``on_attester_slashing``: the validators in both attestations equivocated;
        their votes stop counting for the fork choice from now on."""
        a1, a2 = slashing.attestation_1, slashing.attestation_2
        if not pos.is_slashable_attestation_data(a1.data, a2.data):
            raise ConsensusError("attester slashing: attestations are neither a double nor a surround vote")
        state = self.state_of(
            self._justified.root if self._justified.root in self._states else self._anchor()
        )
        pos.validate_indexed_attestation(state, a1, verify_signatures)
        pos.validate_indexed_attestation(state, a2, verify_signatures)
        self._equivocating.update(set(a1.validator_indices) & set(a2.validator_indices))

    def _anchor(self) -> Root:
        return self._finalized.root if self._finalized.root in self._blocks else next(iter(self._blocks))

    # -- head --------------------------------------------------------------------------------

    def _vote_weights(self) -> dict[Root, int]:
        """Stake behind every block: each vote's balance added to the voted block and all
        of its ancestors (phase0 ``get_weight`` for all blocks in one pass)."""
        base = self._justified.root if self._justified.root in self._states else self._anchor()
        state = self._states[base]
        epoch = self._justified.epoch
        direct: dict[Root, int] = defaultdict(int)
        for index, message in self._latest_messages.items():
            if index in self._equivocating or index >= len(state.validators):
                continue
            validator = state.validators[index]
            if validator.slashed or not pos.is_active_validator(validator, epoch):
                continue
            if message.root in self._blocks:
                direct[message.root] += validator.effective_balance
        floor = self._blocks[base].slot
        weights: dict[Root, int] = defaultdict(int)
        for root, weight in direct.items():
            node: BlockNode | None = self._blocks[root]
            while node is not None and node.slot >= floor:
                weights[node.root] += weight
                node = self._blocks.get(node.parent_root)
        return weights

    def get_weight(self, root: Root) -> int:
        return self._vote_weights().get(root, 0)

    def get_head(self) -> Root:
        """phase0 ``get_head``: LMD-GHOST from the justified checkpoint.

        At each step take the viable child with the greatest weight, ties broken by the
        lexicographically higher root (as the spec's ``max(..., key=(weight, root))``).
        """
        head = self._justified.root
        if head not in self._blocks or not self._descends_from_finalized(head):
            head = self._anchor()
        weights = self._vote_weights()
        while True:
            children = [c for c in self._children.get(head, []) if c in self._blocks]
            if not children:
                return head
            head = max(children, key=lambda root: (weights.get(root, 0), root))

    def prune(self) -> int:
        """Forget every block that is not the finalized block or one of its descendants.

        Returns how many blocks were dropped. Blocks on pruned branches are then refused as
        having an unknown parent.
        """
        keep_root = self._finalized.root
        if keep_root not in self._blocks:
            return 0
        keep: set[Root] = set()
        frontier = [keep_root]
        while frontier:
            root = frontier.pop()
            keep.add(root)
            frontier.extend(self._children.get(root, []))
        dropped = [root for root in self._blocks if root not in keep]
        for root in dropped:
            del self._blocks[root]
            self._states.pop(root, None)
            self._children.pop(root, None)
        self._children[keep_root] = [c for c in self._children.get(keep_root, []) if c in keep]
        return len(dropped)


class SlashingDetector:
    """An in-memory slasher: per-validator history of proposals and votes.

    Double proposals (two block roots signed for one slot) yield a
    :class:`ProposerSlashing`; pairs of votes satisfying phase0
    ``is_slashable_attestation_data`` (double or surround vote, Casper FFG's two
    commandments, arXiv:1710.09437) yield :class:`AttesterSlashing` evidence ordered so that
    ``is_slashable_attestation_data(attestation_1.data, attestation_2.data)`` holds. Signatures
    are not checked here: callers feed it messages they already verified.
    """

    def __init__(self) -> None:
        self._proposals: dict[tuple[ValidatorIndex, Slot], SignedBlockHeader] = {}
        self._votes: dict[ValidatorIndex, dict[AttestationData, Attestation]] = defaultdict(dict)
        self._reported: set[tuple[Attestation, Attestation]] = set()

    def prune(self, before_slot: Slot, before_epoch: int) -> None:
        """Forget proposals before ``before_slot`` and votes whose target epoch is before
        ``before_epoch`` (a bounded window, as real slashers keep a weak-subjectivity
        window: surround votes reaching further back are no longer caught)."""
        self._proposals = {k: v for k, v in self._proposals.items() if k[1] >= before_slot}
        for index in list(self._votes):
            history = {d: a for d, a in self._votes[index].items() if d.target.epoch >= before_epoch}
            if history:
                self._votes[index] = history
            else:
                del self._votes[index]
        self._reported = {p for p in self._reported if p[1].data.target.epoch >= before_epoch}

    def observe_proposal(self, header: SignedBlockHeader) -> ProposerSlashing | None:
        key = (header.proposer_index, header.slot)
        seen = self._proposals.get(key)
        if seen is None:
            self._proposals[key] = header
            return None
        if seen.block_root == header.block_root:
            return None
        return ProposerSlashing(seen, header)

    def observe_attestation(self, attestation: Attestation) -> list[AttesterSlashing]:
        data = attestation.data
        found: list[AttesterSlashing] = []
        for index in attestation.validator_indices:
            history = self._votes[index]
            for previous_data, previous in history.items():
                if previous_data == data:
                    continue
                if pos.is_slashable_attestation_data(previous_data, data):
                    pair = (previous, attestation)
                elif pos.is_slashable_attestation_data(data, previous_data):
                    pair = (attestation, previous)
                else:
                    continue
                if pair not in self._reported:
                    self._reported.add(pair)
                    found.append(AttesterSlashing(pair[0], pair[1]))
            history.setdefault(data, attestation)
        return found


def verify_proposer_slashing_signatures(state: BeaconState, slashing: ProposerSlashing) -> None:
    """Check both headers' BLS signatures against the proposer's key in ``state``."""
    for header in (slashing.header_1, slashing.header_2):
        if not 0 <= header.proposer_index < len(state.validators):
            raise ConsensusError(f"proposer index {header.proposer_index} unknown")
        pubkey = state.validators[header.proposer_index].pubkey
        message = pos.proposal_signing_root(header.slot, header.proposer_index, header.block_root)
        if not bls.verify(pubkey, message, header.signature):
            raise InvalidSignature(
                f"bad header signature of validator {header.proposer_index} at slot {header.slot}"
            )
