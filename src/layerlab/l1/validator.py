"""Block production under proof of stake: the validator client of the node's validators.

It proposes and attests on the node's event loop, slot by slot, and hands what it signs
to callbacks (the launcher gossips it; producers do not import the p2p layer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from eth.abc import BlockAPI

from layerlab.crypto import bls
from layerlab.errors import LayerlabError
from layerlab.l1.consensus import pos
from layerlab.l1.consensus.beacon import (
    PosEngine,
    encode_attestation,
    encode_signed_body,
    encode_slashing,
    to_exec_withdrawals,
    validator_secret,
)
from layerlab.l1.consensus.types import Attestation
from layerlab.l1.node import Node
from layerlab.l1.producer import ProducerLoop

log = logging.getLogger(__name__)


class PosValidator(ProducerLoop):
    """The validator client of the PoS validators this node holds keys for.

    Each slot (phase0 validator guide): at the slot's start, if one of our validators is
    the proposer on our head's state, build, sign and publish a block; a third into the
    slot, each of our validators in the slot's committee signs an attestation to our head
    (LMD-GHOST vote plus FFG source and target) and gossips it. ``byzantine`` makes chosen
    validators misbehave on purpose, for the slashing tests: ``double-propose`` publishes
    two different blocks for one slot, ``double-vote`` two different votes.
    """

    PROTECTION_PREFIX = b"layerlab:slashing-protection:"
    """Per validator, the last slot it proposed for and the last target epoch it voted
    for, written before anything it signs leaves the node (EIP-3076's slashing-protection
    database), so a validator restarted mid-slot never signs a second block or vote.
    """

    def __init__(
        self,
        node: Node,
        engine: Callable[[], PosEngine | None],
        indices: Sequence[int],
        *,
        coinbase: bytes,
        publish_block: Callable[[BlockAPI, bytes], None],
        publish_attestation: Callable[[bytes], None],
        publish_slashing: Callable[[bytes], None],
        byzantine: Sequence[str] = (),
    ) -> None:
        self.node = node
        self.engine = engine
        self.keys = {i: validator_secret(i) for i in indices}
        self.coinbase = coinbase
        self.publish_block = publish_block
        self.publish_attestation = publish_attestation
        self.publish_slashing = publish_slashing
        self.byzantine = set(byzantine)
        self.proposed = 0
        self.attested = 0
        self.missed: list[int] = []
        self._last_slot = -1
        super().__init__()

    def _protection(self, index: int) -> tuple[int, int]:
        data = self.node.db.get(self.PROTECTION_PREFIX + index.to_bytes(4, "big"))
        if not data:
            return -1, -1
        return int.from_bytes(data[:8], "big", signed=True), int.from_bytes(data[8:16], "big", signed=True)

    def _may_sign(self, index: int, *, slot: int | None = None, target_epoch: int | None = None) -> bool:
        """Refuse a proposal unless for a later slot, a vote unless for a later target epoch
        (EIP-3076), and record the new high marks first. Byzantine test modes skip the
        refusal on purpose."""
        last_slot, last_target = self._protection(index)
        if not self.byzantine:
            if slot is not None and slot <= last_slot:
                return False
            if target_epoch is not None and target_epoch <= last_target:
                return False
        high_slot = max(last_slot, -1 if slot is None else slot)
        high_target = max(last_target, -1 if target_epoch is None else target_epoch)
        value = high_slot.to_bytes(8, "big", signed=True) + high_target.to_bytes(8, "big", signed=True)
        self.node.db.write_many({self.PROTECTION_PREFIX + index.to_bytes(4, "big"): value}, [])
        return True

    def status(self) -> dict[str, object]:
        return {
            "role": "validator",
            "validators": sorted(self.keys),
            "proposed": self.proposed,
            "attested": self.attested,
            "byzantine": sorted(self.byzantine),
        }

    async def _run(self) -> None:
        while not self._stop:
            engine = self.engine()
            if engine is None or not self.keys:
                await asyncio.sleep(0.1)
                continue
            now = time.time()
            slot = engine.slot_at(now)
            start = engine.slot_start(slot)
            if slot > self._last_slot and slot > engine.anchor_slot:
                self._last_slot = slot
                try:
                    self._propose(engine, slot)
                except LayerlabError as exc:
                    log.warning("proposal at slot %d failed: %s", slot, exc)
                except Exception:  # a bug must not silently end block production
                    log.exception("proposal at slot %d failed", slot)
                attest_at = start + engine.preset.slot_seconds / 3
                await asyncio.sleep(max(attest_at - time.time(), 0))
                engine = self.engine()
                if engine is not None:
                    try:
                        self._attest(engine, slot)
                    except LayerlabError as exc:
                        log.warning("attestation at slot %d failed: %s", slot, exc)
                    except Exception:
                        log.exception("attestation at slot %d failed", slot)
            next_start = engine.slot_start(engine.slot_at(time.time()) + 1) if engine else time.time() + 0.1
            await asyncio.sleep(min(max(next_start - time.time(), 0.005), 1.0))

    def _propose(self, engine: PosEngine, slot: int) -> None:
        self.node.refresh_head()
        parent = self.node.head
        if not engine.knows(bytes(parent.hash)) or engine.slot_of_block(parent) >= slot:
            return
        state = pos.process_slots(engine.state_of(bytes(parent.hash)), slot)
        proposer = pos.get_beacon_proposer_index(state, slot)
        if proposer not in self.keys:
            return
        if not self._may_sign(proposer, slot=slot):
            log.warning("slashing protection: validator %d already proposed at slot %d", proposer, slot)
            return
        variants = 2 if "double-propose" in self.byzantine else 1
        for variant in range(variants):
            sk = self.keys[proposer]
            body, mix = engine.build_body(parent, slot, proposer, sk)
            coinbase = self.coinbase if variant == 0 else b"\xba\xd0" + self.coinbase[2:]
            block, receipts = self.node.build_template(
                timestamp=engine.slot_start(slot),
                coinbase=coinbase,
                mix_hash=mix,
                withdrawals=to_exec_withdrawals(body.withdrawals),
                parent=parent,
            )
            block = block.copy(header=block.header.copy(extra_data=body.root()))
            signature = bls.sign(sk, pos.proposal_signing_root(slot, proposer, bytes(block.hash)))
            signed = encode_signed_body(body, signature)
            self.node.commit_local(block, signed, receipts)
            self.publish_block(block, signed)
            self.proposed += 1
            log.info(
                "proposed block #%d at slot %d (validator %d, %d attestations, %d txs)",
                block.number,
                slot,
                proposer,
                len(body.attestations),
                len(block.transactions),
            )

    def _attest(self, engine: PosEngine, slot: int) -> None:
        self.node.refresh_head()
        head = bytes(self.node.head.hash)
        if not engine.knows(head):
            return
        state = engine.state_of(head)
        if slot > state.slot:
            state = pos.process_slots(state, slot)
        ours = [index for index in pos.get_committee(state, slot) if index in self.keys]
        if not ours:
            return
        honest = pos.make_attestation_data(state, slot, head)  # the same vote for all of ours
        for index in ours:
            votes = [honest]
            if not self._may_sign(index, target_epoch=votes[0].target.epoch):
                log.warning(
                    "slashing protection: validator %d already voted for epoch %d",
                    index,
                    votes[0].target.epoch,
                )
                continue
            if "double-vote" in self.byzantine:
                parent = bytes(self.node.head.parent_hash)
                if engine.knows(parent) and engine.state_of(parent).slot < slot:
                    alt = pos.make_attestation_data(engine.state_of(parent), slot, parent)
                    if alt != votes[0]:
                        votes.append(alt)
            for data in votes:
                att = Attestation(
                    data, (index,), bls.sign(self.keys[index], pos.attestation_signing_root(data))
                )
                for evidence in engine.on_attestation(att):
                    self.publish_slashing(encode_slashing(evidence))
                self.publish_attestation(encode_attestation(att))
                self.attested += 1
