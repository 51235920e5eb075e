"""The channel state machine: a pair of parties driven through every update, attack and
message ordering, never losing or creating value.

The first part is a hypothesis ``RuleBasedStateMachine``: parties ``a`` and ``b`` exchange
proposals over two FIFO queues (as over TCP), propose concurrently, see replays, forged
and tampered proposals, wrong preimages, early and late lock failures, L1 top-ups, and
blocks advancing. After every step:

* conservation holds on both sides' latest and pending states, and total value equals the
  deposits (which only an L1 top-up raises);
* nobody signs a state more than one nonce above its latest (the contract punishes a
  close two nonces back), nor anything but the final state once it signed that;
* a commit reported final is the only state its party ever signed at that nonce (the
  peer cannot close on another one instead);
* each commit is one nonce above the last; if the two sides ever commit different states
  at one nonce (old proposals injected into both directions can do that), both commits
  are tentative;
* once both queues are empty, neither side has a proposal in flight and both hold the
  same fully signed latest state (unless such a split, or a peer signing outside its
  machine, happened);
* a refused message leaves the receiver's channel unchanged; replayed messages older than
  the latest state are refused; a fresh genuine payment to a party free to accept it is
  accepted.

The second part reads as a specification: one example per rule of the protocol.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import replace

import pytest
from eth_hash.auto import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from layerlab import errors
from layerlab.errors import ChannelError
from layerlab.l2.channels import signing
from layerlab.l2.channels.machine import (
    Ack,
    AddLock,
    Channel,
    ChannelConfig,
    Close,
    ConservationError,
    Deposit,
    FailLock,
    InvalidChannelUpdate,
    InvalidStateSignature,
    InvalidUpdate,
    MalformedMessage,
    Message,
    Pay,
    Preimage,
    PreimageLearned,
    Proposal,
    ProposalAbandoned,
    ProposalInFlight,
    Reject,
    SettleLock,
    StaleMessage,
    Update,
    UpdateCommitted,
    WrongChannel,
    apply_command,
    apply_message,
    apply_observed_deposits,
    apply_preimage,
    apply_refusal,
    compute_address,
    compute_close_state,
    compute_hashlock,
    compute_next_state,
    create_channel,
    decode_channel,
    decode_message,
    encode_channel,
    get_claimable_locks,
    get_my_balance,
    get_peer_balance,
    get_refundable_locks,
    is_closed,
    is_final,
    is_revoked,
    sign_digest,
)
from layerlab.l2.channels.types import FINAL_NONCE, ChannelId, ChannelState, Domain, Lock
from layerlab.primitives.types import BlockNumber, Nonce, Wei

KEYS = {"a": b"\x11" * 32, "b": b"\x22" * 32}
MALLORY = b"\x33" * 32
ADDRESSES = {side: compute_address(key) for side, key in KEYS.items()}
DOMAIN = Domain(1337, b"\xcc" * 20)
CHANNEL_ID = ChannelId(bytes(keccak(b"layerlab test channel")))
SECRETS = [Preimage(bytes([i]) * 32) for i in range(1, 7)]
HASHLOCKS = [compute_hashlock(secret) for secret in SECRETS]
CONFIG = ChannelConfig(min_lock_delta=BlockNumber(5), max_lock_delta=BlockNumber(60), max_locks=4)
START_BLOCK = BlockNumber(100)


def other(side: str) -> str:
    return "b" if side == "a" else "a"


def new_pair(deposit_a: int = 1000, deposit_b: int = 1000) -> dict[str, Channel]:
    return {side: create_channel(role="a" if side == "a" else "b", private_key=KEYS[side],
                                 peer=ADDRESSES[other(side)], domain=DOMAIN, channel_id=CHANNEL_ID,
                                 deposit_a=Wei(deposit_a), deposit_b=Wei(deposit_b), config=CONFIG)
            for side in ("a", "b")}


def forge(state: ChannelState, update: Update, key: bytes) -> Proposal:
    """A proposal built by hand, bypassing the proposer's own checks."""
    return Proposal(state, update, signing.sign_state(DOMAIN, state, key))


class ChannelPair(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.block = START_BLOCK
        self.ch = new_pair()
        self.queue: dict[str, deque[Message]] = {"a": deque(), "b": deque()}
        self.delivered: list[tuple[str, Message]] = []
        self.genuine: set[str] = set()
        self.malicious: set[str] = set()
        self.peer_misbehaved = False
        self.signed: dict[tuple[str, int], set[ChannelState]] = {}
        self.final_state: dict[str, ChannelState] = {}
        self.commits: dict[tuple[str, int], tuple[ChannelState, bool]] = {}
        self.split = False
        self.last_nonce = {"a": 0, "b": 0}
        self.l1 = [1000, 1000]

    # ----------------------------------------------------------------- plumbing

    @initialize(deposit_a=st.integers(0, 10_000), deposit_b=st.integers(0, 10_000))
    def open_channel(self, deposit_a: int, deposit_b: int) -> None:
        self.ch = new_pair(deposit_a, deposit_b)
        self.l1 = [deposit_a, deposit_b]

    def record_signatures(self, signer: str, messages: tuple[Message, ...], channel: Channel) -> None:
        """Remember every state each party signed, by nonce."""
        for message in messages:
            if isinstance(message, Proposal):
                state = message.state
            elif isinstance(message, Ack):
                state = channel.latest.state
            else:
                continue
            if signer in self.final_state:
                assert state == self.final_state[signer], f"{signer} signed {state} after the final state"
            if state.nonce == FINAL_NONCE:
                self.final_state[signer] = state
            self.signed.setdefault((signer, state.nonce), set()).add(state)

    def record_events(self, side: str, before: Channel, channel: Channel, events: tuple[object, ...]) -> None:
        for event in events:
            if isinstance(event, UpdateCommitted):
                state = event.state.state
                assert state.nonce in (before.latest.state.nonce + 1, FINAL_NONCE)
                assert event.final == is_final(channel)
                self.commits[(side, state.nonce)] = (state, event.final)
                theirs = self.commits.get((other(side), state.nonce))
                if theirs is not None and theirs[0] != state:
                    assert not event.final and not theirs[1], f"split at nonce {state.nonce} not tentative"
                    self.split = True
                assert signing.is_signed_by(DOMAIN, state, event.state.sig_a, ADDRESSES["a"])
                assert signing.is_signed_by(DOMAIN, state, event.state.sig_b, ADDRESSES["b"])
            elif isinstance(event, PreimageLearned):
                assert compute_hashlock(event.preimage) == event.hashlock
                assert channel.preimages[event.hashlock] == event.preimage

    def propose(self, side: str, update: Update) -> None:
        before = self.ch[side]
        try:
            result = apply_command(before, update, self.block)
        except InvalidChannelUpdate as exc:
            assert exc.check and str(exc)
            assert self.ch[side] is before
            return
        (proposal,) = result.messages
        assert isinstance(proposal, Proposal)
        assert proposal.state.is_conserving()
        assert proposal.nonce in (before.latest.state.nonce + 1, FINAL_NONCE)
        self.genuine.add(proposal.to_json())
        self.record_signatures(side, result.messages, result.channel)
        self.ch[side] = result.channel
        self.queue[other(side)].append(proposal)

    def receive(self, side: str, message: Message) -> bool:
        """Deliver to ``side`` as its node would: apply, or refuse and answer. True if accepted."""
        message = decode_message(message.to_json())
        before = self.ch[side]
        self.delivered.append((side, message))
        try:
            result = apply_message(before, message, self.block)
        except ChannelError as exc:
            assert isinstance(exc, InvalidChannelUpdate) and exc.check
            pending = before.pending
            free = not (self.peer_misbehaved or self.split or before.final_signed) and (
                pending is None or (before.role == "b" and not isinstance(pending.update, Close)))
            if (isinstance(message, Proposal) and message.to_json() in self.genuine
                    and isinstance(message.update, Pay) and free
                    and message.nonce == before.latest.state.nonce + 1):
                raise AssertionError(f"a fresh genuine payment was refused: {exc}") from exc
            refusal = apply_refusal(before, message, exc)
            after = refusal.channel
            assert after == before
            for reply in refusal.messages:
                assert isinstance(reply, Reject)
            self.ch[side] = after
            self.queue[other(side)].extend(refusal.messages)
            return False
        if message.to_json() in self.malicious:
            # a forgery with the peer's real key, refused once and valid since (a lock
            # expired): the peer signed it, so accepting it is right, but the peer's own
            # machine never made it, so the two sides may now disagree; safety must hold
            self.peer_misbehaved = True
        self.record_signatures(side, result.messages, result.channel)
        self.record_events(side, before, result.channel, result.events)
        self.ch[side] = result.channel
        self.queue[other(side)].extend(result.messages)
        return True

    # ----------------------------------------------------------------- proposals

    @rule(side=st.sampled_from("ab"), percent=st.integers(0, 120))
    def pay(self, side: str, percent: int) -> None:
        balance = get_my_balance(self.ch[side])
        self.propose(side, Pay(Wei(balance * percent // 100)))

    @rule(side=st.sampled_from("ab"), percent=st.integers(0, 120), secret=st.integers(0, len(SECRETS) - 1),
          delta=st.integers(0, 70))
    def add_lock(self, side: str, percent: int, secret: int, delta: int) -> None:
        balance = get_my_balance(self.ch[side])
        self.propose(side, AddLock(Wei(balance * percent // 100), HASHLOCKS[secret],
                                   BlockNumber(self.block + delta)))

    @rule(side=st.sampled_from("ab"), pick=st.integers(0, 10), wrong=st.integers(0, 3))
    def settle_lock(self, side: str, pick: int, wrong: int) -> None:
        """The lock's receiver settles it; one time in four with a wrong preimage, and any
        side may try any lock (the payer's attempt is refused)."""
        if self.ch[side].pending is not None:
            side = other(side)
        channel = self.ch[side]
        locks = channel.latest.state.locks
        if not locks:
            return
        mine = [lock for lock in locks if lock.from_a != (channel.role == "a")]
        lock = (mine or list(locks))[pick % len(mine or locks)] if pick else locks[0]
        preimage = SECRETS[HASHLOCKS.index(lock.hashlock)]
        if wrong == 0:
            preimage = Preimage(hashlib.sha256(preimage).digest())
        self.propose(side, SettleLock(lock.hashlock, preimage))

    @rule(side=st.sampled_from("ab"))
    def settle_claimable(self, side: str) -> None:
        """The receiver of a lock settles it with the right preimage (the common case), once
        the messages in flight are through."""
        self.drain()
        channel = self.ch[side]
        mine = [lock for lock in channel.latest.state.locks if lock.from_a != (channel.role == "a")]
        if mine:
            self.propose(side, SettleLock(mine[0].hashlock, SECRETS[HASHLOCKS.index(mine[0].hashlock)]))

    @rule(side=st.sampled_from("ab"), pick=st.integers(0, 10))
    def fail_lock(self, side: str, pick: int) -> None:
        if self.ch[side].pending is not None:
            side = other(side)
        locks = self.ch[side].latest.state.locks
        if locks:
            self.propose(side, FailLock(locks[pick % len(locks)].hashlock))

    @rule(side=st.sampled_from("ab"), rarely=st.integers(0, 39))
    def close(self, side: str, rarely: int) -> None:
        """A cooperative close, rarely (it ends the channel's life)."""
        if rarely == 0:
            self.propose(side, Close())

    @rule(side=st.sampled_from("ab"))
    def deposit(self, side: str) -> None:
        channel = self.ch[side]
        state = channel.latest.state
        if (state.deposit_a, state.deposit_b) == (channel.l1_deposit_a, channel.l1_deposit_b):
            return
        self.propose(side, Deposit(channel.l1_deposit_a, channel.l1_deposit_b))

    @rule(depositor=st.integers(0, 1), amount=st.integers(1, 500))
    def l1_top_up(self, depositor: int, amount: int) -> None:
        self.l1[depositor] += amount

    @rule(side=st.sampled_from("ab"))
    def observe_l1(self, side: str) -> None:
        self.ch[side] = apply_observed_deposits(self.ch[side], Wei(self.l1[0]), Wei(self.l1[1]))

    # ----------------------------------------------------------------- network and time

    @precondition(lambda self: self.queue["a"] or self.queue["b"])
    @rule(side=st.sampled_from("ab"))
    def deliver(self, side: str) -> None:
        if not self.queue[side]:
            side = other(side)
        self.receive(side, self.queue[side].popleft())

    @rule()
    def drain(self) -> None:
        while self.queue["a"] or self.queue["b"]:
            for side in ("a", "b"):
                if self.queue[side]:
                    self.receive(side, self.queue[side].popleft())

    @rule(blocks=st.integers(1, 10))
    def advance(self, blocks: int) -> None:
        self.block = BlockNumber(self.block + blocks)

    @rule()
    def expire_next_lock(self) -> None:
        locks = self.ch["a"].latest.state.locks + self.ch["b"].latest.state.locks
        if locks:
            self.block = BlockNumber(max(self.block, min(lock.expiry for lock in locks) + 1))

    # ----------------------------------------------------------------- attacks

    @precondition(lambda self: self.delivered)
    @rule(pick=st.integers(0, 10**6))
    def replay(self, pick: int) -> None:
        """An old message again: refused when older than the receiver's latest state; one at
        the next nonce (a refused proposal now valid, say) may be accepted, invariants hold."""
        side, message = self.delivered[pick % len(self.delivered)]
        latest = self.ch[side].latest.state.nonce
        accepted = self.receive(side, message)
        if message.nonce <= latest:
            assert not accepted, f"replayed {type(message).__name__} nonce {message.nonce} accepted"

    @rule(side=st.sampled_from("ab"), attack=st.sampled_from(
        ["wrong-key", "steal", "inflate", "wrong-channel", "stale-nonce", "skip-nonce", "bad-preimage",
         "early-fail", "mismatched-update", "garbage-signature"]))
    def forged_proposal(self, side: str, attack: str) -> None:
        """The peer (or an outsider) sends a hand-made proposal: always refused."""
        victim = self.ch[side]
        if is_closed(victim):
            return
        peer = victim.peer_role
        nonce = Nonce(victim.latest.state.nonce + 1)
        state = replace(victim.latest.state, nonce=nonce)
        key = KEYS[other(side)]
        update: Update = Pay(Wei(1))
        peer_field = f"balance_{peer}"
        my_field = f"balance_{victim.role}"
        if attack == "wrong-key":
            state = replace(state, **{peer_field: getattr(state, peer_field) - 1,
                                      my_field: getattr(state, my_field) + 1})
            key = MALLORY
        elif attack == "steal":
            if getattr(state, my_field) < 1:
                return
            state = replace(state, **{peer_field: getattr(state, peer_field) + 1,
                                      my_field: getattr(state, my_field) - 1})
        elif attack == "inflate":
            state = replace(state, **{peer_field: getattr(state, peer_field) + 1})
        elif attack == "wrong-channel":
            state = replace(state, channel_id=ChannelId(b"\x01" * 32), **{
                peer_field: getattr(state, peer_field) - 1, my_field: getattr(state, my_field) + 1})
        elif attack == "stale-nonce":
            state = replace(victim.latest.state, nonce=victim.latest.state.nonce)
        elif attack == "skip-nonce":
            state = replace(state, nonce=nonce + 1, **{peer_field: getattr(state, peer_field) - 1,
                                                       my_field: getattr(state, my_field) + 1})
        elif attack in ("bad-preimage", "early-fail"):
            # bad-preimage: the peer claims a lock the victim pays, with a wrong preimage;
            # early-fail: the peer takes back a lock it pays the victim before it expired.
            payer_is_a = (victim.role == "a") if attack == "bad-preimage" else (peer == "a")
            locks = [lock for lock in state.locks if lock.from_a == payer_is_a
                     and self.block <= lock.expiry]
            if not locks:
                return
            lock = locks[0]
            update = (SettleLock(lock.hashlock, Preimage(b"\x00" * 32)) if attack == "bad-preimage"
                      else FailLock(lock.hashlock))
            state = replace(state, locks=tuple(x for x in state.locks if x != lock),
                            **{peer_field: getattr(state, peer_field) + lock.amount})
        elif attack == "mismatched-update":
            update = Pay(Wei(2))
            state = replace(state, **{peer_field: getattr(state, peer_field) - 1,
                                      my_field: getattr(state, my_field) + 1})
        if min(state.balance_a, state.balance_b) < 0:
            return
        proposal = forge(state, update, key)
        if key == KEYS[other(side)]:
            self.malicious.add(proposal.to_json())
        if attack == "garbage-signature":
            proposal = replace(forge(state, update, key), signature=b"\x01" * 64 + b"\x1b")
        assert not self.receive(side, proposal), f"forged proposal ({attack}) accepted"

    @precondition(lambda self: self.ch["a"].pending is not None or self.ch["b"].pending is not None)
    @rule(side=st.sampled_from("ab"))
    def forged_reject(self, side: str) -> None:
        """An outsider's reject, or a reject of another proposal, cannot cancel a pending one."""
        channel = self.ch[side]
        if channel.pending is None:
            side = other(side)
            channel = self.ch[side]
        assert channel.pending is not None
        outsider = replace(channel, private_key=MALLORY, address=compute_address(MALLORY))
        fake = apply_refusal(outsider, channel.pending, InvalidUpdate("x", "forged")).messages[0]
        assert not self.receive(side, fake)

    @precondition(lambda self: self.ch["a"].pending is not None or self.ch["b"].pending is not None)
    @rule(side=st.sampled_from("ab"))
    def forged_ack(self, side: str) -> None:
        channel = self.ch[side]
        if channel.pending is None:
            side = other(side)
            channel = self.ch[side]
        assert channel.pending is not None
        signature = signing.sign_state(DOMAIN, channel.pending.state, MALLORY)
        assert not self.receive(side, Ack(channel.channel_id, channel.pending.nonce, signature))

    # ----------------------------------------------------------------- invariants

    @invariant()
    def conservation(self) -> None:
        for side, channel in self.ch.items():
            state = channel.latest.state
            assert state.is_conserving(), side
            assert state.deposit_a <= self.l1[0] and state.deposit_b <= self.l1[1]
            assert state.balance_a + state.balance_b + state.locked == state.deposit_a + state.deposit_b
            if channel.pending is not None:
                assert channel.pending.state.is_conserving()

    @invariant()
    def signing_discipline(self) -> None:
        for side, channel in self.ch.items():
            latest = channel.latest.state.nonce
            ordinary = [nonce for (signer, nonce) in self.signed if signer == side and nonce != FINAL_NONCE]
            if not is_closed(channel):
                assert max(ordinary, default=0) <= latest + 1, f"{side} signed beyond latest + 1"
            if is_final(channel) and 0 < latest < FINAL_NONCE:
                assert self.signed[(side, latest)] == {channel.latest.state}, f"{side} final but exposed"

    @invariant()
    def nonces_only_grow(self) -> None:
        for side, channel in self.ch.items():
            nonce = channel.latest.state.nonce
            assert nonce >= self.last_nonce[side]
            if nonce == self.last_nonce[side] and (side, nonce) in self.commits:
                assert channel.latest.state == self.commits[(side, nonce)][0]
            self.last_nonce[side] = nonce

    @invariant()
    def agree_when_quiet(self) -> None:
        """Parties that both follow the protocol end up agreeing."""
        if self.queue["a"] or self.queue["b"] or self.peer_misbehaved or self.split:
            return
        a, b = self.ch["a"], self.ch["b"]
        assert a.pending is None and b.pending is None
        assert a.latest == b.latest


ChannelPair.TestCase.settings = settings(max_examples=400, stateful_step_count=80, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestChannelPair = ChannelPair.TestCase


# =============================================================================== examples


def exchange(sender: Channel, receiver: Channel, update: Update,
             block: BlockNumber = START_BLOCK) -> tuple[Channel, Channel]:
    """Propose, ack, commit: the two channels afterwards."""
    proposed = apply_command(sender, update, block)
    accepted = apply_message(receiver, proposed.messages[0], block)
    committed = apply_message(proposed.channel, accepted.messages[0], block)
    assert committed.channel.latest == accepted.channel.latest
    return committed.channel, accepted.channel


def test_pay_moves_value_and_both_sign() -> None:
    pair = new_pair()
    proposed = apply_command(pair["a"], Pay(Wei(30)), START_BLOCK)
    assert proposed.channel.pending is not None and proposed.channel.latest == pair["a"].latest
    accepted = apply_message(pair["b"], proposed.messages[0], START_BLOCK)
    (ack,) = accepted.messages
    assert isinstance(ack, Ack) and ack.nonce == 1
    (event,) = accepted.events
    assert isinstance(event, UpdateCommitted) and event.proposer == "a"
    committed = apply_message(proposed.channel, ack, START_BLOCK)
    a, b = committed.channel, accepted.channel
    assert a.latest == b.latest and a.pending is None
    assert (a.latest.state.balance_a, a.latest.state.balance_b) == (970, 1030)
    assert get_my_balance(b) == 1030 and get_peer_balance(b) == 970
    assert signing.is_signed_by(DOMAIN, a.latest.state, a.latest.sig_a, ADDRESSES["a"])
    assert signing.is_signed_by(DOMAIN, a.latest.state, a.latest.sig_b, ADDRESSES["b"])
    assert compute_close_state(b) == a.latest


def test_htlc_settled_with_preimage() -> None:
    a, b = new_pair().values()
    a, b = exchange(a, b, AddLock(Wei(100), HASHLOCKS[0], BlockNumber(START_BLOCK + 20)))
    assert a.latest.state.locks == (Lock(100, START_BLOCK + 20, HASHLOCKS[0], True),)
    assert a.latest.state.balance_a == 900
    b = apply_preimage(b, SECRETS[0])
    (claim,) = get_claimable_locks(b, START_BLOCK)
    proposed = apply_command(b, SettleLock(claim.lock.hashlock, claim.preimage), START_BLOCK)
    accepted = apply_message(a, proposed.messages[0], START_BLOCK)
    assert PreimageLearned(HASHLOCKS[0], SECRETS[0]) in accepted.events
    assert accepted.channel.preimages[HASHLOCKS[0]] == SECRETS[0]
    assert accepted.channel.latest.state.locks == ()
    assert accepted.channel.latest.state.balance_b == 1100


def test_wrong_preimage_refused_by_both_sides() -> None:
    a, b = new_pair().values()
    a, b = exchange(a, b, AddLock(Wei(100), HASHLOCKS[0], BlockNumber(START_BLOCK + 20)))
    with pytest.raises(InvalidUpdate, match="sha256 of preimage") as info:
        apply_command(b, SettleLock(HASHLOCKS[0], SECRETS[1]), START_BLOCK)
    assert info.value.check == "preimage"
    state = replace(b.latest.state, nonce=2, locks=(), balance_b=1100)
    with pytest.raises(InvalidUpdate) as info:
        apply_message(a, forge(state, SettleLock(HASHLOCKS[0], SECRETS[1]), KEYS["b"]), START_BLOCK)
    assert info.value.check == "preimage"


def test_only_receiver_settles_and_not_after_expiry() -> None:
    a, b = new_pair().values()
    a, b = exchange(a, b, AddLock(Wei(100), HASHLOCKS[0], BlockNumber(START_BLOCK + 20)))
    with pytest.raises(InvalidUpdate, match="cannot settle") as info:
        apply_command(a, SettleLock(HASHLOCKS[0], SECRETS[0]), START_BLOCK)
    assert info.value.check == "not-lock-receiver"
    with pytest.raises(InvalidUpdate, match="expired at block 120, current block 121"):
        apply_command(b, SettleLock(HASHLOCKS[0], SECRETS[0]), BlockNumber(START_BLOCK + 21))


def test_payer_fails_lock_only_after_expiry_receiver_any_time() -> None:
    a, b = new_pair().values()
    expiry = BlockNumber(START_BLOCK + 20)
    a, b = exchange(a, b, AddLock(Wei(100), HASHLOCKS[0], expiry))
    with pytest.raises(InvalidUpdate) as info:
        apply_command(a, FailLock(HASHLOCKS[0]), expiry)
    assert info.value.check == "lock-not-expired"
    assert get_refundable_locks(a, expiry) == ()
    assert get_refundable_locks(a, BlockNumber(expiry + 1)) == a.latest.state.locks
    a2, _ = exchange(a, b, FailLock(HASHLOCKS[0]), BlockNumber(expiry + 1))
    assert a2.latest.state.balance_a == 1000 and a2.latest.state.locks == ()
    _, a3 = exchange(b, a, FailLock(HASHLOCKS[0]), START_BLOCK)
    assert a3.latest.state.balance_a == 1000


@pytest.mark.parametrize(("expiry", "check"), [(START_BLOCK + 5, "expiry-too-soon"),
                                               (START_BLOCK + 61, "expiry-too-far")])
def test_lock_expiry_must_be_sane(expiry: int, check: str) -> None:
    a = new_pair()["a"]
    with pytest.raises(InvalidUpdate) as info:
        apply_command(a, AddLock(Wei(1), HASHLOCKS[0], BlockNumber(expiry)), START_BLOCK)
    assert info.value.check == check


@pytest.mark.parametrize(("update", "check"), [
    (Pay(Wei(0)), "amount"), (Pay(Wei(1001)), "balance"), (Pay(Wei(-5)), "amount"),
    (AddLock(Wei(1001), HASHLOCKS[0], BlockNumber(START_BLOCK + 10)), "balance"),
    (FailLock(HASHLOCKS[3]), "unknown-lock"), (Deposit(Wei(1000), Wei(1000)), "deposit-unchanged"),
    (Deposit(Wei(1500), Wei(1000)), "deposit-unseen"), (Deposit(Wei(900), Wei(1200)), "deposit-decrease"),
])
def test_invalid_commands_refused(update: Update, check: str) -> None:
    with pytest.raises(InvalidUpdate) as info:
        apply_command(new_pair()["a"], update, START_BLOCK)
    assert info.value.check == check


def test_duplicate_hashlock_and_lock_limit() -> None:
    a, b = new_pair().values()
    a, b = exchange(a, b, AddLock(Wei(1), HASHLOCKS[0], BlockNumber(START_BLOCK + 10)))
    with pytest.raises(InvalidUpdate) as info:
        apply_command(b, AddLock(Wei(1), HASHLOCKS[0], BlockNumber(START_BLOCK + 10)), START_BLOCK)
    assert info.value.check == "duplicate-hashlock"
    for i in range(1, 4):
        a, b = exchange(a, b, AddLock(Wei(1), HASHLOCKS[i], BlockNumber(START_BLOCK + 10)))
    with pytest.raises(InvalidUpdate) as info:
        apply_command(a, AddLock(Wei(1), HASHLOCKS[4], BlockNumber(START_BLOCK + 10)), START_BLOCK)
    assert info.value.check == "too-many-locks"


def refuse(receiver: Channel, message: Message, block: BlockNumber = START_BLOCK) -> tuple[Channel, Reject]:
    """Deliver a message that must be refused; the receiver's answer, as its node sends it."""
    with pytest.raises(InvalidChannelUpdate) as info:
        apply_message(receiver, message, block)
    refusal = apply_refusal(receiver, message, info.value)
    (reject,) = refusal.messages
    assert isinstance(reject, Reject)
    return refusal.channel, reject


def test_deposit_needs_l1_observation_by_both_and_an_identical_retry_then_passes() -> None:
    a, b = new_pair().values()
    a = apply_observed_deposits(a, Wei(1000), Wei(1500))
    proposed = apply_command(a, Deposit(Wei(1000), Wei(1500)), START_BLOCK)
    b, reject = refuse(b, proposed.messages[0])
    assert reject.reason.startswith("deposit-unseen: deposits (1000, 1500) exceed those seen on L1")
    abandoned = apply_message(proposed.channel, reject, START_BLOCK)
    a = abandoned.channel
    assert a.pending is None and a.exposed == (1,) and not is_revoked(a, Nonce(1))
    b = apply_observed_deposits(b, Wei(1000), Wei(1500))
    retry = apply_command(a, Deposit(Wei(1000), Wei(1500)), START_BLOCK)
    assert retry.messages == proposed.messages  # the same state, the same (deterministic) signature
    a, b = exchange(a, b, Deposit(Wei(1000), Wei(1500)))
    assert b.latest.state.balance_b == 1500 and b.latest.state.total == 2500 and b.latest.state.nonce == 1


def test_peer_cannot_move_value_the_wrong_way() -> None:
    b = new_pair()["b"]
    stolen = replace(b.latest.state, nonce=1, balance_a=1010, balance_b=990)
    with pytest.raises(InvalidUpdate, match="balance_a expected 990 got 1010") as info:
        apply_message(b, forge(stolen, Pay(Wei(10)), KEYS["a"]), START_BLOCK)
    assert info.value.check == "state-mismatch"
    created = replace(b.latest.state, nonce=1, balance_a=990)
    with pytest.raises(ConservationError):
        apply_message(b, forge(created, Pay(Wei(10)), KEYS["a"]), START_BLOCK)


def test_forged_signature_refused() -> None:
    a, b = new_pair().values()
    state = replace(b.latest.state, nonce=1, balance_a=990, balance_b=1010)
    with pytest.raises(InvalidStateSignature, match="not signed by peer") as refused:
        apply_message(b, forge(state, Pay(Wei(10)), MALLORY), START_BLOCK)
    # the machine-readable tag the wire's Reject carries; not the consensus layer's class
    assert refused.value.check == "signature"
    assert not isinstance(refused.value, errors.InvalidSignature)
    proposed = apply_command(a, Pay(Wei(10)), START_BLOCK)
    bad_ack = Ack(CHANNEL_ID, Nonce(1), signing.sign_state(DOMAIN, state, MALLORY))
    with pytest.raises(InvalidStateSignature):
        apply_message(proposed.channel, bad_ack, START_BLOCK)


def test_replayed_and_stale_messages_refused() -> None:
    a, b = new_pair().values()
    proposed = apply_command(a, Pay(Wei(10)), START_BLOCK)
    accepted = apply_message(b, proposed.messages[0], START_BLOCK)
    committed = apply_message(proposed.channel, accepted.messages[0], START_BLOCK)
    with pytest.raises(StaleMessage, match="proposal nonce 1 is not above latest nonce 1"):
        apply_message(accepted.channel, proposed.messages[0], START_BLOCK)
    with pytest.raises(StaleMessage, match="no proposal of ours with that nonce is pending"):
        apply_message(committed.channel, accepted.messages[0], START_BLOCK)
    with pytest.raises(WrongChannel):
        apply_message(b, replace(proposed.messages[0], state=replace(
            proposed.messages[0].state, channel_id=ChannelId(b"\x00" * 32))), START_BLOCK)


def test_one_proposal_in_flight() -> None:
    a = new_pair()["a"]
    proposed = apply_command(a, Pay(Wei(10)), START_BLOCK)
    with pytest.raises(ProposalInFlight):
        apply_command(proposed.channel, Pay(Wei(10)), START_BLOCK)


def test_nonce_must_be_the_next_one() -> None:
    b = new_pair()["b"]
    skipping = replace(b.latest.state, nonce=2, balance_a=990, balance_b=1010)
    with pytest.raises(InvalidUpdate, match="proposal nonce 2 is not latest nonce 0 \\+ 1") as info:
        apply_message(b, forge(skipping, Pay(Wei(10)), KEYS["a"]), START_BLOCK)
    assert info.value.check == "nonce-gap"


def test_concurrent_proposals_a_wins_b_retries() -> None:
    a, b = new_pair().values()
    from_a = apply_command(a, Pay(Wei(10)), START_BLOCK)
    from_b = apply_command(b, Pay(Wei(20)), START_BLOCK)
    a, b = from_a.channel, from_b.channel
    # a refuses b's proposal and answers with a reject...
    a, reject_for_b = refuse(a, from_b.messages[0])
    assert reject_for_b.reason.startswith("concurrent-proposal")
    # ...while b countersigns a's and drops its own
    accepted = apply_message(b, from_a.messages[0], START_BLOCK)
    abandoned, committed = accepted.events
    assert isinstance(abandoned, ProposalAbandoned) and abandoned.update == Pay(Wei(20))
    assert isinstance(committed, UpdateCommitted) and committed.update == Pay(Wei(10))
    assert committed.final is False  # b also signed its own state at nonce 1
    b = accepted.channel
    assert b.pending is None and not is_final(b)
    a = apply_message(a, accepted.messages[0], START_BLOCK).channel
    assert a.latest == b.latest and is_final(a)
    with pytest.raises(StaleMessage):  # the reject of b's dropped proposal arrives late
        apply_message(b, reject_for_b, START_BLOCK)
    proposed = apply_command(b, Pay(Wei(20)), START_BLOCK)
    done = apply_message(a, proposed.messages[0], START_BLOCK)
    (event,) = apply_message(proposed.channel, done.messages[0], START_BLOCK).events
    assert isinstance(event, UpdateCommitted) and event.final and event.nonce == 2
    assert done.channel.latest.state.balance_a == 1010 and is_revoked(done.channel, Nonce(1))


def test_abandoned_proposal_makes_the_next_commit_at_its_nonce_tentative() -> None:
    a, b = new_pair().values()
    a, b = exchange(a, b, AddLock(Wei(100), HASHLOCKS[0], BlockNumber(START_BLOCK + 20)))
    early = apply_command(a, FailLock(HASHLOCKS[0]), BlockNumber(START_BLOCK + 21))  # a's clock runs ahead
    b, reject = refuse(b, early.messages[0])
    assert reject.reason.startswith("lock-not-expired")
    a = apply_message(early.channel, reject, START_BLOCK).channel
    # b still holds a's signature of the refund at nonce 2: a commit at nonce 2 is tentative
    pay = apply_command(a, Pay(Wei(5)), START_BLOCK)
    accepted = apply_message(b, pay.messages[0], START_BLOCK)
    (event,) = apply_message(pay.channel, accepted.messages[0], START_BLOCK).events
    assert isinstance(event, UpdateCommitted) and not event.final
    a, b = apply_message(pay.channel, accepted.messages[0], START_BLOCK).channel, accepted.channel
    assert not is_final(a) and is_final(b)
    a, b = exchange(a, b, Pay(Wei(5)))
    assert is_final(a) and is_revoked(a, Nonce(2))


def test_old_proposals_injected_both_ways_split_the_channel_but_only_tentatively() -> None:
    """Both sides abandon a proposal at nonce 1; an attacker then replays each to the other
    side, which takes it: two different fully signed states at one nonce. Both commits are
    tentative, so nothing is acted on, and on L1 either one applies an update its own
    proposer had signed. (Such an attacker could as well drop every message.)"""
    a, b = new_pair().values()
    a = apply_observed_deposits(a, Wei(1100), Wei(1000))
    from_a = apply_command(a, Deposit(Wei(1100), Wei(1000)), START_BLOCK)
    from_b = apply_command(b, Pay(Wei(20)), START_BLOCK)
    a, reject_for_b = refuse(from_a.channel, from_b.messages[0])  # a wins the tie
    b, reject_for_a = refuse(from_b.channel, from_a.messages[0])  # b has not seen the deposit yet
    a = apply_message(a, reject_for_a, START_BLOCK).channel
    b = apply_message(b, reject_for_b, START_BLOCK).channel
    assert a.pending is None and b.pending is None and a.exposed == b.exposed == (1,)
    b = apply_observed_deposits(b, Wei(1100), Wei(1000))
    at_a = apply_message(a, from_b.messages[0], START_BLOCK)  # injected replays
    at_b = apply_message(b, from_a.messages[0], START_BLOCK)
    (commit_a,), (commit_b,) = at_a.events, at_b.events
    assert isinstance(commit_a, UpdateCommitted) and isinstance(commit_b, UpdateCommitted)
    assert commit_a.state.state != commit_b.state.state and commit_a.nonce == commit_b.nonce == 1
    assert not commit_a.final and not commit_b.final
    with pytest.raises(StaleMessage):  # and the acks cannot heal it: both are at nonce 1 now
        apply_message(at_a.channel, at_b.messages[0], START_BLOCK)


def test_a_late_ack_of_an_abandoned_proposal_commits_it() -> None:
    a, b = new_pair().values()
    a, b = exchange(a, b, AddLock(Wei(100), HASHLOCKS[0], BlockNumber(START_BLOCK + 20)))
    early = apply_command(a, FailLock(HASHLOCKS[0]), BlockNumber(START_BLOCK + 21))
    b, reject = refuse(b, early.messages[0])
    a = apply_message(early.channel, reject, START_BLOCK).channel
    later = BlockNumber(START_BLOCK + 21)
    replayed = apply_message(b, early.messages[0], later)  # valid now; b has nothing in flight
    pay = apply_command(a, Pay(Wei(7)), later)  # a meanwhile proposes something else at nonce 2
    late = apply_message(pay.channel, replayed.messages[0], later)
    abandoned, committed = late.events
    assert isinstance(abandoned, ProposalAbandoned) and abandoned.update == Pay(Wei(7))
    assert isinstance(committed, UpdateCommitted) and committed.update == FailLock(HASHLOCKS[0])
    assert late.channel.latest == replayed.channel.latest and late.channel.pending is None
    b, reject = refuse(replayed.channel, pay.messages[0], later)
    with pytest.raises(StaleMessage):
        apply_message(late.channel, reject, later)


def test_reject_is_bound_to_the_refused_proposal() -> None:
    a, b = new_pair().values()
    proposed = apply_command(a, Pay(Wei(10)), START_BLOCK)
    forged = replace(proposed.messages[0], signature=b"\x02" * 64 + b"\x1b")
    b, reject = refuse(b, forged)
    with pytest.raises(StaleMessage, match="does not match"):
        apply_message(proposed.channel, reject, START_BLOCK)
    outsider = replace(b, private_key=MALLORY, address=compute_address(MALLORY))
    forged_reject = apply_refusal(outsider, proposed.messages[0], InvalidUpdate("x", "no")).messages[0]
    with pytest.raises(InvalidStateSignature):
        apply_message(proposed.channel, forged_reject, START_BLOCK)
    accepted = apply_message(b, proposed.messages[0], START_BLOCK)
    assert accepted.channel.latest.state.nonce == 1


def test_a_copy_with_another_update_is_another_proposal() -> None:
    """The signature covers the state, not the update sent along: refusing a copy of a
    genuine proposal with a wrong update must neither cancel nor poison the genuine one."""
    a, b = new_pair().values()
    genuine = apply_command(a, Pay(Wei(1)), START_BLOCK)
    tampered = replace(genuine.messages[0], update=Pay(Wei(2)))
    b, reject = refuse(b, tampered)
    with pytest.raises(StaleMessage, match="does not match"):
        apply_message(genuine.channel, reject, START_BLOCK)
    accepted = apply_message(b, genuine.messages[0], START_BLOCK)
    assert accepted.channel.latest.state.balance_b == 1001


def test_cooperative_close() -> None:
    a, b = new_pair().values()
    a, b = exchange(a, b, AddLock(Wei(100), HASHLOCKS[0], BlockNumber(START_BLOCK + 20)))
    with pytest.raises(InvalidUpdate, match="locks pending") as info:
        apply_command(a, Close(), START_BLOCK)
    assert info.value.check == "locks-pending"
    b, a = exchange(b, a, SettleLock(HASHLOCKS[0], SECRETS[0]))
    proposed = apply_command(a, Close(), START_BLOCK)
    assert proposed.messages[0].nonce == FINAL_NONCE and proposed.channel.final_signed
    with pytest.raises(InvalidUpdate, match="cooperative-close state"):  # b pays a meanwhile: refused
        apply_message(proposed.channel, apply_command(b, Pay(Wei(1)), START_BLOCK).messages[0], START_BLOCK)
    accepted = apply_message(b, proposed.messages[0], START_BLOCK)
    a = apply_message(proposed.channel, accepted.messages[0], START_BLOCK).channel
    for channel in (a, accepted.channel):
        assert is_closed(channel) and compute_close_state(channel).state.nonce == FINAL_NONCE
        assert compute_close_state(channel).state.balance_b == 1100
        with pytest.raises(InvalidUpdate, match="closed cooperatively"):
            apply_command(channel, Pay(Wei(1)), START_BLOCK)


def test_both_propose_close_at_once() -> None:
    """Both final states are the same state: each side simply countersigns the other's."""
    a, b = new_pair().values()
    from_a, from_b = apply_command(a, Close(), START_BLOCK), apply_command(b, Close(), START_BLOCK)
    at_a = apply_message(from_a.channel, from_b.messages[0], START_BLOCK)
    at_b = apply_message(from_b.channel, from_a.messages[0], START_BLOCK)
    assert is_closed(at_a.channel) and at_a.channel.latest.state == at_b.channel.latest.state
    with pytest.raises(StaleMessage):
        apply_message(at_a.channel, at_b.messages[0], START_BLOCK)


def test_close_state_before_any_update_is_the_contracts_empty_state() -> None:
    from layerlab.l2.channels import onchain

    a = new_pair()["a"]
    assert compute_close_state(a) == onchain.compute_empty_state(CHANNEL_ID)


def test_messages_round_trip_through_json() -> None:
    a, b = new_pair().values()
    a, b = exchange(a, b, AddLock(Wei(100), HASHLOCKS[0], BlockNumber(START_BLOCK + 20)))
    for update in (Pay(Wei(2**256 - 1)), SettleLock(HASHLOCKS[0], SECRETS[0]), FailLock(HASHLOCKS[0]),
                   Deposit(Wei(1), Wei(2)), AddLock(Wei(3), HASHLOCKS[1], BlockNumber(7))):
        proposal = forge(a.latest.state, update, KEYS["a"])
        assert Proposal.from_json(proposal.to_json()) == proposal
    ack = Ack(CHANNEL_ID, Nonce(3), b"\x05" * 65)
    assert Ack.from_json(ack.to_json()) == ack
    reject = apply_refusal(b, forge(replace(b.latest.state, nonce=9), Pay(Wei(1)), KEYS["a"]),
                           InvalidUpdate("x", "because")).messages[0]
    assert isinstance(reject, Reject)
    assert decode_message(reject.to_json()) == reject
    with pytest.raises(MalformedMessage):
        Ack.from_json(reject.to_json())


@pytest.mark.parametrize("data", [
    "not json", "[]", '{"type": "ack"}', '{"type": "nope"}',
    '{"type":"ack","channel_id":"0x00","nonce":1,"signature":"0x00"}',
    '{"type":"ack","channel_id":"0x' + "00" * 32 + '","nonce":-1,"signature":"0x' + "00" * 65 + '"}',
    '{"type":"ack","channel_id":"0x' + "00" * 32 + '","nonce":true,"signature":"0x' + "00" * 65 + '"}',
    '{"type":"proposal","state":{},"update":{"kind":"pay","amount":1},"signature":"0x' + "00" * 65 + '"}',
])
def test_malformed_messages_refused(data: str) -> None:
    with pytest.raises(MalformedMessage):
        decode_message(data)


def test_channel_round_trips_for_disk() -> None:
    a, b = new_pair().values()
    a, b = exchange(a, b, AddLock(Wei(100), HASHLOCKS[0], BlockNumber(START_BLOCK + 20)))
    a = apply_preimage(a, SECRETS[2])
    a = apply_command(a, Pay(Wei(1)), START_BLOCK).channel
    restored = decode_channel(encode_channel(a), KEYS["a"])
    assert restored == a
    assert "11" * 32 not in encode_channel(a)
    with pytest.raises(ChannelError):
        decode_channel(encode_channel(a), KEYS["b"])


def test_cached_signer_matches_signing_module() -> None:
    digest = keccak(b"anything")
    assert sign_digest(digest, KEYS["a"]) == signing.sign_digest(digest, KEYS["a"])


def test_compute_next_state_is_pure() -> None:
    a = new_pair()["a"]
    before = a.latest
    state = compute_next_state(a, Pay(Wei(5)), "b", Nonce(1), START_BLOCK)
    assert state.balance_b == 995 and a.latest == before
