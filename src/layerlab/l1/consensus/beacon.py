"""The proof-of-stake engine: the pure PoS core (``pos.py``, ``forkchoice.py``) behind the
node's :class:`~layerlab.l1.consensus.engine.ConsensusEngine` interface.

**One block, two layers.** A layerlab PoS block is one execution block whose header
commits to its consensus body, as a post-Merge Ethereum block is an execution payload
inside a beacon block: ``extra_data`` holds ``keccak(body)``, ``mix_hash`` (EIP-4399
``prevRandao``) the RANDAO mix after the proposer's reveal, ``timestamp`` the slot's start
(``genesis_time + slot * slot_seconds``) and the body's withdrawals are the block's
EIP-4895 withdrawals. The block root is therefore the execution block hash; the
proposer's BLS signature over it travels next to the block (``body`` on the wire).

**Deposits and exits** are the staking contract's events (``staking.py``) in the parent
block's receipts, which the next proposer must carry in its body, exactly and in order
(the role EIP-6110 gives execution-layer deposit requests).

**Votes.** Single attestations arrive by gossip, are checked (committee membership,
signature) and fed to LMD-GHOST at once; the proposer aggregates those with equal data
(BLS ``Aggregate``) into its block. Every signed proposal and vote also goes through a
:class:`SlashingDetector`; evidence it finds is gossiped and included by the next
proposer, so an equivocating validator is slashed on every honest node.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI

from layerlab.crypto import bls
from layerlab.errors import ConsensusError, InvalidBlock, LayerlabError
from layerlab.l1.chain.evm import EvmChain
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.engine import ConsensusEngine, Finality
from layerlab.l1.consensus.forkchoice import SlashingDetector, Store
from layerlab.l1.consensus.pos import BeaconBody, BeaconState, PosPreset
from layerlab.l1.consensus.staking import decode_staking_logs
from layerlab.l1.consensus.types import (
    Attestation,
    AttestationData,
    AttesterSlashing,
    Deposit,
    ExitRequest,
    ProposerSlashing,
    SignedBlockHeader,
)
from layerlab.l1.storage import ChainDB

log = logging.getLogger(__name__)

GENESIS_STAKE_GWEI = 32 * 10**9
RECENT_REQUESTS = 64
"""Blocks whose staking requests are kept in memory for their children."""
SLASHER_EPOCHS = 256
"""Epochs of proposals and votes the slashing detector remembers behind finality."""
CLOCK_TOLERANCE = 0.5
"""Seconds a block may arrive before its slot starts (clock skew between processes)."""


def validator_secret(index: int) -> bytes:
    """The dev BLS key of genesis validator ``index`` (tests and devnets only)."""
    return bls.secret_key(b"layerlab-validator" + index.to_bytes(4, "big"))


def encode_signed_body(body: BeaconBody, signature: bytes) -> bytes:
    return bytes(rlp.encode([body.encode(), signature]))


def decode_signed_body(data: bytes) -> tuple[BeaconBody, bytes]:
    try:
        items = rlp.decode(data)
    except (rlp.DecodingError, ValueError) as exc:
        raise InvalidBlock(f"consensus body is not RLP: {exc}") from exc
    if not isinstance(items, list) or len(items) != 2 or not all(isinstance(x, bytes) for x in items):
        raise InvalidBlock("consensus body must be [body, signature]")
    try:
        return BeaconBody.decode(items[0]), items[1]
    except ConsensusError as exc:
        raise InvalidBlock(f"bad consensus body: {exc}") from exc


def encode_attestation(att: Attestation) -> bytes:
    return BeaconBody(0, b"\x00" * 96, attestations=(att,)).encode()


def decode_attestation(data: bytes) -> Attestation:
    body = BeaconBody.decode(data)
    if len(body.attestations) != 1:
        raise ConsensusError("an attestation message carries exactly one attestation")
    return body.attestations[0]


def encode_slashing(evidence: ProposerSlashing | AttesterSlashing) -> bytes:
    if isinstance(evidence, ProposerSlashing):
        return BeaconBody(0, b"\x00" * 96, proposer_slashings=(evidence,)).encode()
    return BeaconBody(0, b"\x00" * 96, attester_slashings=(evidence,)).encode()


def decode_slashing(data: bytes) -> ProposerSlashing | AttesterSlashing:
    body = BeaconBody.decode(data)
    items: list[ProposerSlashing | AttesterSlashing] = [*body.proposer_slashings, *body.attester_slashings]
    if len(items) != 1:
        raise ConsensusError("a slashing message carries exactly one piece of evidence")
    return items[0]


def to_exec_withdrawals(ws: Sequence[Any]) -> list[Any]:
    from eth.vm.forks.shanghai.withdrawals import Withdrawal as EvmWithdrawal

    return [EvmWithdrawal(w.index, w.validator_index, w.address, w.amount_gwei) for w in ws]


def genesis_validators(count: int, withdrawal_addresses: Sequence[bytes]) -> list[tuple[bytes, bytes, int]]:
    return [
        (
            bls.public_key(validator_secret(i)),
            withdrawal_addresses[i % len(withdrawal_addresses)],
            GENESIS_STAKE_GWEI,
        )
        for i in range(count)
    ]


@dataclass(frozen=True, slots=True)
class _Checked:
    """What ``check`` verified, handed to ``accept`` so the body is not decoded twice."""

    post: BeaconState
    body: BeaconBody
    signature: bytes


class PosEngine(ConsensusEngine):
    """PoS consensus anchored at one block (the genesis, or the terminal PoW block)."""

    kind = "pos"

    def __init__(
        self,
        db: ChainDB,
        chain: EvmChain,
        preset: PosPreset,
        anchor: BlockHeaderAPI,
        anchor_state: BeaconState,
        genesis_time: int,
    ) -> None:
        super().__init__(db)
        self.chain = chain
        self.preset = preset
        self.anchor = anchor
        self.genesis_time = genesis_time
        self.store = Store(preset, bytes(anchor.hash), anchor_state)
        self.detector = SlashingDetector()
        self.pool: dict[AttestationData, dict[int, bytes]] = {}
        self.pending_slashings: dict[bytes, ProposerSlashing | AttesterSlashing] = {}
        self.slashings_seen: list[dict[str, Any]] = []
        self._pruned_epoch = 0
        self._requests: OrderedDict[bytes, tuple[list[Deposit], list[ExitRequest]]] = OrderedDict()
        self._tag = b"pos-" + bytes(anchor.hash[:8])
        self._restore()

    # -- time ----------------------------------------------------------------------------
    def slot_at(self, timestamp: float) -> int:
        return int((timestamp - self.genesis_time) // self.preset.slot_seconds)

    def slot_start(self, slot: int) -> int:
        return self.genesis_time + slot * self.preset.slot_seconds

    @property
    def anchor_slot(self) -> int:
        return self.slot_at(self.anchor.timestamp)

    def slot_of_block(self, header: BlockHeaderAPI) -> int:
        return self.slot_at(header.timestamp)

    # -- persistence ---------------------------------------------------------------------
    def _restore(self) -> None:
        records = []
        for _key, value in self.db.iterate_prefix(b"layerlab:cons:" + self._tag + b":"):
            parent, slot, root, state = rlp.decode(value)
            records.append((int.from_bytes(slot, "big"), root, parent, state))
        for slot, root, parent, state in sorted(records):
            try:
                self.store.on_block(root, parent, slot, BeaconState.decode(state))
            except ConsensusError as exc:
                log.info("not restoring block 0x%s: %s", root.hex(), exc)
                continue
            stored = self.body(root)
            if stored:  # the votes blocks carried count again for LMD-GHOST
                for att in decode_signed_body(stored)[0].attestations:
                    self._vote(att, verify=False)
        if records:
            log.info("restored %d PoS blocks; head 0x%s", len(records), self.store.get_head().hex()[:12])

    def state_of(self, root: bytes) -> BeaconState:
        return self.store.state_of(root)

    def knows(self, root: bytes) -> bool:
        return root in self.store

    def has_record(self, block_hash: bytes) -> bool:
        return block_hash in self.store or self._get(self._tag, block_hash) is not None

    # -- ConsensusEngine -----------------------------------------------------------------
    def check(self, block: BlockAPI, parent: BlockHeaderAPI, body: bytes, now: float) -> Any:
        header = block.header
        number = header.block_number
        if not body:
            raise InvalidBlock(
                f"block {number}: a proof-of-stake block needs a signed consensus body "
                "(a proof-of-work block after the switch is refused)"
            )
        beacon, signature = decode_signed_body(body)
        if parent.hash not in self.store:
            raise InvalidBlock(f"block {number}: parent 0x{parent.hash.hex()[:16]} is not on this PoS chain")
        offset = header.timestamp - self.genesis_time
        if offset % self.preset.slot_seconds:
            raise InvalidBlock(f"block {number}: timestamp {header.timestamp} is not a slot start")
        slot = self.slot_at(header.timestamp)
        if self.slot_start(slot) > now + CLOCK_TOLERANCE:
            raise InvalidBlock(f"block {number}: slot {slot} has not started yet")
        finalized = self.store.finalized
        fin_slot = finalized.epoch * self.preset.slots_per_epoch
        if self.store.get_ancestor(bytes(parent.hash), fin_slot) != finalized.root:
            raise InvalidBlock(
                f"block {number} conflicts with the finalized checkpoint "
                f"(epoch {finalized.epoch}, 0x{finalized.root.hex()[:16]})"
            )
        if header.extra_data != beacon.root():
            raise InvalidBlock(f"block {number}: header does not commit to its consensus body")
        if tuple(to_exec_withdrawals(beacon.withdrawals)) != tuple(block.withdrawals or ()):
            raise InvalidBlock(f"block {number}: execution withdrawals differ from the consensus body's")
        deposits, exits = self.requests_after(parent)
        if tuple(deposits) != beacon.deposits or tuple(exits) != beacon.exits:
            raise InvalidBlock(f"block {number}: deposits/exits differ from the parent's staking events")
        try:
            post = pos.process_block(
                self.store.state_of(bytes(parent.hash)),
                slot,
                bytes(parent.hash),
                bytes(header.hash),
                beacon,
                signature,
            )
        except ConsensusError as exc:
            raise InvalidBlock(f"block {number}: {exc}") from exc
        if header.mix_hash != post.randao_mix:
            raise InvalidBlock(f"block {number}: prevRandao is not the RANDAO mix after the reveal")
        return _Checked(post, beacon, signature)

    def requests_after(self, parent: BlockHeaderAPI) -> tuple[list[Deposit], list[ExitRequest]]:
        """Staking deposits and exit requests of ``parent``, due in its child's body.

        Kept from ``accept`` for recent blocks (every import and proposal asks for its
        parent's); older ones are read back from the receipt trie.
        """
        if parent.hash == self.anchor.hash:
            return [], []
        requests = self._requests.get(bytes(parent.hash))
        if requests is None:
            requests = decode_staking_logs(self.chain.get_receipts(parent))
        return requests

    def accept(
        self, header: BlockHeaderAPI, record: Any, body: bytes, receipts: Sequence[ReceiptAPI]
    ) -> None:
        checked: _Checked = record
        post, beacon, signature = checked.post, checked.body, checked.signature
        root, parent = bytes(header.hash), bytes(header.parent_hash)
        self.db.write_many(
            {
                **self._put(self._tag, root, rlp.encode([parent, post.slot, root, post.encode()])),
                **self._put(b"body", root, body),
            },
            [],
        )
        try:
            self.store.on_block(root, parent, post.slot, post)
        except ConsensusError as exc:
            raise InvalidBlock(str(exc)) from exc
        self._requests[root] = decode_staking_logs(receipts)
        while len(self._requests) > RECENT_REQUESTS:
            self._requests.popitem(last=False)
        self._observe_proposal(SignedBlockHeader(post.slot, beacon.proposer_index, root, signature))
        for att in beacon.attestations:
            self._vote(att, verify=False)
        included: list[ProposerSlashing | AttesterSlashing] = [
            *beacon.proposer_slashings,
            *beacon.attester_slashings,
        ]
        for evidence in included:
            self._record_slashing(evidence, included_in=root)
            if isinstance(evidence, AttesterSlashing):
                with contextlib.suppress(ConsensusError):
                    self.store.on_attester_slashing(evidence, verify_signatures=False)
        finalized_epoch = self.store.finalized.epoch
        if finalized_epoch > self._pruned_epoch:  # keep SLASHER_EPOCHS of history
            self._pruned_epoch = finalized_epoch
            floor = max(finalized_epoch - SLASHER_EPOCHS, 0)
            self.detector.prune(floor * self.preset.slots_per_epoch, floor)
        self.store.prune()

    def head(self) -> bytes:
        return self.store.get_head()

    def finality(self, head: BlockHeaderAPI) -> Finality:
        fin, just = self.store.finalized, self.store.justified
        fin_header = self.chain.get_header_by_hash(fin.root)
        just_header = self.chain.get_header_by_hash(just.root)
        number = fin_header.block_number if fin_header else 0
        return Finality(
            "checkpoint",
            number,
            fin.root,
            {
                "epoch": fin.epoch,
                "justifiedEpoch": just.epoch,
                "justifiedRoot": "0x" + just.root.hex(),
            },
            safe_number=just_header.block_number if just_header else number,
        )

    def body(self, block_hash: bytes) -> bytes:
        return self._get(b"body", block_hash) or b""

    def status(self) -> dict[str, Any]:
        head = self.head()
        state = self.store.state_of(head)
        return {
            "consensus": "pos",
            "slot": state.slot,
            "epoch": state.slot // self.preset.slots_per_epoch,
            "justified": {
                "epoch": self.store.justified.epoch,
                "root": "0x" + self.store.justified.root.hex(),
            },
            "finalizedCheckpoint": {
                "epoch": self.store.finalized.epoch,
                "root": "0x" + self.store.finalized.root.hex(),
            },
            "validators": len(state.validators),
            "activeStakeGwei": pos.get_total_active_balance(state),
            "slashed": [i for i, v in enumerate(state.validators) if v.slashed],
            "slashingsSeen": len(self.slashings_seen),
        }

    def validators(self) -> list[dict[str, Any]]:
        state = self.store.state_of(self.head())
        return [
            {
                "index": i,
                "pubkey": "0x" + v.pubkey.hex(),
                "balanceGwei": v.balance,
                "effectiveBalanceGwei": v.effective_balance,
                "slashed": v.slashed,
                "activationEpoch": v.activation_epoch,
                "exitEpoch": v.exit_epoch,
                "withdrawn": v.withdrawn,
            }
            for i, v in enumerate(state.validators)
        ]

    # -- votes and evidence --------------------------------------------------------------
    def on_attestation(self, att: Attestation) -> list[ProposerSlashing | AttesterSlashing]:
        """A gossiped (single or aggregate) attestation; returns new slashing evidence."""
        data = att.data
        if data.beacon_block_root not in self.store:
            raise ConsensusError(f"attestation for unknown block 0x{data.beacon_block_root.hex()[:16]}")
        state = self.store.state_of(data.beacon_block_root)
        if data.slot > state.slot:
            state = pos.process_slots(state, data.slot)
        committee = set(pos.get_committee(state, data.slot))
        if not set(att.validator_indices) <= committee:
            raise ConsensusError(
                f"attesters {list(att.validator_indices)} not in the committee of slot {data.slot}"
            )
        pos.validate_indexed_attestation(state, att, True)
        return self._vote(att, verify=False)

    def _vote(self, att: Attestation, verify: bool) -> list[ProposerSlashing | AttesterSlashing]:
        try:
            self.store.on_attestation(att, verify_signature=verify)
        except ConsensusError as exc:
            log.debug("vote not counted: %s", exc)
        if len(att.validator_indices) == 1:
            self.pool.setdefault(att.data, {})[att.validator_indices[0]] = att.signature
        found: list[ProposerSlashing | AttesterSlashing] = []
        for evidence in self.detector.observe_attestation(att):
            if self._record_slashing(evidence):
                found.append(evidence)
        return found

    def _observe_proposal(self, header: SignedBlockHeader) -> ProposerSlashing | None:
        evidence = self.detector.observe_proposal(header)
        if evidence is not None and self._record_slashing(evidence):
            return evidence
        return None

    def on_slashing(self, evidence: ProposerSlashing | AttesterSlashing) -> bool:
        """Evidence from a peer or a user: verify it against the head state and queue it."""
        state = self.store.state_of(self.head())
        if isinstance(evidence, ProposerSlashing):
            pos.validate_proposer_slashing(state, evidence, True)
        else:
            if not pos.is_slashable_attestation_data(
                evidence.attestation_1.data, evidence.attestation_2.data
            ):
                raise ConsensusError("attestations are neither a double vote nor a surround vote")
            pos.validate_indexed_attestation(state, evidence.attestation_1, True)
            pos.validate_indexed_attestation(state, evidence.attestation_2, True)
            self.store.on_attester_slashing(evidence, verify_signatures=False)
        return self._record_slashing(evidence)

    def _record_slashing(
        self, evidence: ProposerSlashing | AttesterSlashing, included_in: bytes | None = None
    ) -> bool:
        key = hashlib.sha256(encode_slashing(evidence)).digest()
        if included_in is not None:
            self.pending_slashings.pop(key, None)
            return False
        if key in self.pending_slashings:
            return False
        self.pending_slashings[key] = evidence
        kind = "proposer" if isinstance(evidence, ProposerSlashing) else "attester"
        offenders = (
            [evidence.header_1.proposer_index]
            if isinstance(evidence, ProposerSlashing)
            else sorted(
                set(evidence.attestation_1.validator_indices) & set(evidence.attestation_2.validator_indices)
            )
        )
        self.slashings_seen.append({"kind": kind, "validators": offenders})
        log.warning("slashing evidence: %s equivocation by validator(s) %s", kind, offenders)
        return True

    # -- block building ------------------------------------------------------------------
    def includable_attestations(self, state: BeaconState, slot: int, limit: int = 128) -> list[Attestation]:
        """Aggregates of pooled votes that ``process_block`` accepts at ``slot`` on ``state``."""
        spe = self.preset.slots_per_epoch
        epoch = slot // spe
        out: list[Attestation] = []
        for data, sigs in list(self.pool.items()):
            if data.slot + spe < slot:
                del self.pool[data]
                continue
            target_epoch = data.target.epoch
            if not data.slot + 1 <= slot or target_epoch not in (epoch, max(epoch - 1, 0)):
                continue
            source = state.current_justified if target_epoch == epoch else state.previous_justified
            if data.source != source or target_epoch != data.slot // spe:
                continue
            committee = set(pos.get_committee(state, data.slot))
            indices = tuple(sorted(i for i in sigs if i in committee))
            if not indices:
                continue
            out.append(Attestation(data, indices, bls.aggregate([sigs[i] for i in indices])))
            if len(out) >= limit:
                break
        return out

    def includable_slashings(
        self, state: BeaconState
    ) -> tuple[list[ProposerSlashing], list[AttesterSlashing]]:
        props: list[ProposerSlashing] = []
        atts: list[AttesterSlashing] = []
        epoch = state.slot // self.preset.slots_per_epoch
        for evidence in self.pending_slashings.values():
            if isinstance(evidence, ProposerSlashing):
                v = state.validators[evidence.header_1.proposer_index]
                if pos.is_slashable_validator(v, epoch):
                    props.append(evidence)
            else:
                common = set(evidence.attestation_1.validator_indices) & set(
                    evidence.attestation_2.validator_indices
                )
                if any(
                    pos.is_slashable_validator(state.validators[i], epoch)
                    for i in common
                    if i < len(state.validators)
                ):
                    atts.append(evidence)
        return props[:16], atts[:2]

    def build_body(
        self, parent: BlockHeaderAPI, slot: int, proposer: int, sk: bytes
    ) -> tuple[BeaconBody, bytes]:
        """The consensus body of a proposal at ``slot`` on ``parent`` and its RANDAO mix."""
        pre = pos.process_slots(self.store.state_of(bytes(parent.hash)), slot)
        reveal = bls.sign(sk, pos.randao_signing_root(slot // self.preset.slots_per_epoch))
        mix = bytes(a ^ b for a, b in zip(pre.randao_mix, hashlib.sha256(reveal).digest(), strict=True))
        deposits, exits = self.requests_after(parent)
        props, atts_sl = self.includable_slashings(pre)
        body = BeaconBody(
            proposer,
            reveal,
            tuple(self.includable_attestations(pre, slot)),
            tuple(props),
            tuple(atts_sl),
            tuple(deposits),
            tuple(exits),
            pos.expected_withdrawals(pre),
        )
        try:  # a last guard: never propose a body our own rules refuse
            pos.process_block(
                self.store.state_of(bytes(parent.hash)),
                slot,
                bytes(parent.hash),
                b"\x00" * 32,
                body,
                b"",
                verify_signatures=False,
            )
        except LayerlabError as exc:
            log.warning("dropping votes and evidence from proposal at slot %d: %s", slot, exc)
            body = BeaconBody(
                proposer, reveal, (), (), (), tuple(deposits), tuple(exits), pos.expected_withdrawals(pre)
            )
        return body, mix
