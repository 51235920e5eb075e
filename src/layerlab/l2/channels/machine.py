"""The off-chain core of a two-party payment channel, as seen by one of its parties.

Pure transitions, no I/O and no clock: the caller passes the current L1 block number and
moves the messages. Every transition takes a frozen :class:`Channel` and returns a
:class:`Transition` (the new channel, the messages to send, the events to act on), or raises
an :class:`InvalidChannelUpdate` naming the check that failed and the values involved; a
refused input leaves the channel as it was (the old value is simply kept).

Protocol (a two-message version of BOLT 2's ``update_*`` / ``commitment_signed`` /
``revoke_and_ack``, possible because the contract orders states by nonce instead of
revoking them with per-commitment secrets):

1. The proposer builds the next state from its latest fully signed one and one
   :data:`Update` (``Pay``, ``AddLock``, ``SettleLock``, ``FailLock``, ``Deposit``,
   ``Close``), signs it (EIP-712) and sends a :class:`Proposal` carrying the update, the
   state and its signature. It keeps the proposal as ``pending``: one proposal in flight per channel.
2. The counterparty checks the proposal against *its* latest state (channel id, nonce,
   conservation, the update's own rules, that the state is exactly what the update makes
   of the latest one, the proposer's signature), countersigns and answers with an
   :class:`Ack`. From then on the new state is its latest: both signatures exist.
3. The proposer checks the ack's signature and commits the state too.

Nonces are consecutive: a proposal's nonce is always the latest's plus one, so nobody ever
signs state ``n + 2`` before holding both signatures on ``n + 1``. The contract relies on
it: a challenge two or more nonces above a closed state proves the closer cheated and
takes its whole channel, one above merely replaces the closed state (the closer may never
have received it countersigned).

Only one proposal is in flight per party. When both propose at once, **``a`` wins**: ``a``
refuses ``b``'s proposal (:class:`ConcurrentProposal`), while ``b`` countersigns ``a``'s
and drops its own (a :class:`ProposalAbandoned` event; the caller retries). Any refused
proposal is answered with a signed :class:`Reject` bound to that exact proposal
(:func:`apply_refusal`), and the proposer abandons it. A refusal never changes the
refusing channel; replays and stale messages (nonce not above the latest) are refused.

An abandoned proposal keeps our signature, so until a higher nonce is fully signed the peer
could still countersign it and close on it. Two consequences, both tracked here:

* its update may still happen: don't act on its abandonment (say, fail an upstream HTLC)
  before :func:`is_revoked` says its nonce is revoked;
* a different state then committed at the *same* nonce is only tentative, because on L1
  the peer could pick either (an equal nonce cannot challenge): :class:`UpdateCommitted`
  carries ``final=False`` and the commit becomes final with the next one (a party that
  lost a tie makes that happen at once by retrying its own update).

The proposer accepts a late ack for a proposal it abandoned (the peer refused it, then
took it when it came again, e.g. an identical retry), so the two sides stay in step. The
transport is assumed to deliver the peer's messages in order (TCP). Someone able to inject
old messages into both directions can split a channel (each side commits a different one
of two abandoned proposals at one nonce); both commits are then tentative and no value is
at risk, but the channel must close on L1: no worse than dropping messages, which such an
attacker can do anyway. Authenticate the peer connection.

A cooperative close is the ``Close`` update: both sign the latest balances at the
contract's ``FINAL_NONCE``. Whoever has signed a final state accepts no other update, since
the peer may cash that state out at any time.

HTLCs follow BOLT 2: ``AddLock`` (``update_add_htlc``) is offered by the payer with a
hashlock ``sha256(preimage)`` and an expiry in L1 blocks, far enough ahead
(``cltv_expiry_delta``) and not too far; ``SettleLock`` (``update_fulfill_htlc``) is
proposed by the lock's receiver with the preimage up to the lock's expiry block (as the
contract accepts a claim); ``FailLock`` (``update_fail_htlc``) is proposed by the receiver
at any time, or by the payer once the lock has expired (the off-chain form of the
on-chain refund). ``Deposit`` records an L1
top-up, credited to the depositor, once both parties have seen it on L1
(:func:`apply_observed_deposits`).

Conservation, ``balance_a + balance_b + sum(locks) == deposit_a + deposit_b`` with nothing
negative, is checked on every state a transition produces or accepts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, TypeVar

from eth_hash.auto import keccak

from layerlab.crypto.secp256k1 import compute_address as crypto_compute_address
from layerlab.errors import ChannelError
from layerlab.l2.channels.signing import is_digest_signed_by, sign_digest
from layerlab.l2.channels.types import (
    FINAL_NONCE,
    ChannelId,
    ChannelState,
    Domain,
    Hashlock,
    Lock,
    Preimage,
    SignedState,
)
from layerlab.primitives.types import Address, BlockNumber, Hash32, Nonce, Wei

Role: TypeAlias = Literal["a", "b"]

MAX_UINT64 = 2**64 - 1
MAX_UINT256 = 2**256 - 1
MAX_REASON_LENGTH = 300
"""Characters of a refusal's reason carried in a :class:`Reject`."""
_REJECT_TAG = b"\x19layerlab-channels:reject"
_NONCE_ZERO = Nonce(0)
MAX_ABANDONED = 8
"""Abandoned proposals kept (until revoked) so that a late ack can still commit one."""
DEFAULT_SETTLE_TIMEOUT = BlockNumber(20)
DEFAULT_MIN_LOCK_DELTA = BlockNumber(8)
"""A new lock must expire more than this many blocks ahead (BOLT 2 ``cltv_expiry_delta``)."""
DEFAULT_MAX_LOCK_DELTA = BlockNumber(2016)
"""...and at most this many (lnd's default ``max_cltv_expiry``)."""


# --------------------------------------------------------------------------- errors


class InvalidChannelUpdate(ChannelError):
    """A channel command or message was refused; the channel is unchanged.

    ``check`` is a short machine-readable tag of the failed check (``nonce-stale``,
    ``signature``, ``preimage``...) so callers can branch without parsing the message.
    """

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


class MalformedMessage(InvalidChannelUpdate):
    """A message could not be decoded (bad JSON, missing field, wrong type or length)."""


class WrongChannel(InvalidChannelUpdate):
    """A message names another channel."""


class StaleMessage(InvalidChannelUpdate):
    """A replayed or outdated message: a proposal whose nonce is not above the latest, or
    an ack/reject for no proposal of ours in flight."""


class ConcurrentProposal(InvalidChannelUpdate):
    """``b`` proposed while ``a``'s proposal is in flight: ``a``'s wins, ``b`` retries."""


class ProposalInFlight(InvalidChannelUpdate):
    """A local command while our previous proposal still awaits the peer's answer."""


class InvalidStateSignature(InvalidChannelUpdate):
    """A signature on a channel state is malformed or not the peer's (forged); ``check``
    is ``signature``. (Not :class:`layerlab.errors.InvalidSignature`, the consensus
    layer's BLS failure.)"""


class InvalidUpdate(InvalidChannelUpdate):
    """An update breaks its kind's rules (amount, balance, expiry, preimage, lock owner...),
    or the proposed state is not what the update makes of the latest state."""


class ConservationError(InvalidChannelUpdate):
    """A state creates or destroys value, or holds a negative amount."""


# --------------------------------------------------------------------------- updates


@dataclass(frozen=True, slots=True)
class Pay:
    """A direct transfer of ``amount`` from the proposer to the peer."""

    amount: Wei


@dataclass(frozen=True, slots=True)
class AddLock:
    """Offer an HTLC from the proposer to the peer (BOLT 2 ``update_add_htlc``)."""

    amount: Wei
    hashlock: Hashlock
    expiry: BlockNumber


@dataclass(frozen=True, slots=True)
class SettleLock:
    """The lock's receiver claims it with the preimage (BOLT 2 ``update_fulfill_htlc``)."""

    hashlock: Hashlock
    preimage: Preimage


@dataclass(frozen=True, slots=True)
class FailLock:
    """Return a lock to its payer (BOLT 2 ``update_fail_htlc``): by the receiver at any
    time, by the payer once the lock has expired."""

    hashlock: Hashlock


@dataclass(frozen=True, slots=True)
class Deposit:
    """New deposit totals after an L1 top-up; each increase is credited to its depositor."""

    deposit_a: Wei
    deposit_b: Wei


@dataclass(frozen=True, slots=True)
class Close:
    """Cooperative close (BOLT 2 ``closing_signed``): sign the latest balances at
    :data:`FINAL_NONCE`; only possible with no lock pending."""


Update: TypeAlias = Pay | AddLock | SettleLock | FailLock | Deposit | Close
"""A local command: the change the proposer wants in the next state."""


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Proposal:
    """The proposer's signed next state and the update that produced it."""

    state: ChannelState
    update: Update
    signature: bytes

    @property
    def channel_id(self) -> ChannelId:
        return self.state.channel_id

    @property
    def nonce(self) -> Nonce:
        return Nonce(self.state.nonce)

    def to_json(self) -> str:
        return _dumps({"type": "proposal", "state": _state_to_obj(self.state),
                       "update": _update_to_obj(self.update), "signature": _hex(self.signature)})

    @classmethod
    def from_json(cls, data: str | bytes) -> Proposal:
        return _expect(decode_message(data), cls)


@dataclass(frozen=True, slots=True)
class Ack:
    """The counterparty's signature of the proposed state with this nonce."""

    channel_id: ChannelId
    nonce: Nonce
    signature: bytes

    def to_json(self) -> str:
        return _dumps({"type": "ack", "channel_id": _hex(self.channel_id), "nonce": self.nonce,
                       "signature": _hex(self.signature)})

    @classmethod
    def from_json(cls, data: str | bytes) -> Ack:
        return _expect(decode_message(data), cls)


@dataclass(frozen=True, slots=True)
class Reject:
    """A refusal of one proposal, signed by the refuser (see :func:`compute_reject_digest`).

    ``proposal_hash`` (:func:`compute_proposal_hash`) binds it to the refused proposal, so a
    forged or replayed proposal's refusal cannot cancel a genuine one in flight.
    """

    channel_id: ChannelId
    nonce: Nonce
    proposal_hash: Hash32
    reason: str
    signature: bytes

    def to_json(self) -> str:
        return _dumps({"type": "reject", "channel_id": _hex(self.channel_id), "nonce": self.nonce,
                       "proposal_hash": _hex(self.proposal_hash), "reason": self.reason,
                       "signature": _hex(self.signature)})

    @classmethod
    def from_json(cls, data: str | bytes) -> Reject:
        return _expect(decode_message(data), cls)


Message: TypeAlias = Proposal | Ack | Reject
_M = TypeVar("_M", Proposal, Ack, Reject)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class UpdateCommitted:
    """A state is fully signed and is now the channel's latest.

    ``final`` is False when we had also signed another state at this nonce (a proposal we
    abandoned; conservatively, also when the abandoned proposal is the one committed): the
    peer could still close on that one instead, so don't act on this update (release goods,
    forward its lock) until the next commit, which makes it final."""

    channel_id: ChannelId
    nonce: Nonce
    update: Update
    proposer: Role
    state: SignedState
    final: bool


@dataclass(frozen=True, slots=True)
class ProposalAbandoned:
    """Our proposal was refused (or lost a tie); the caller may retry.

    The peer still holds our signature of the abandoned state until a higher nonce is
    committed, so its update may yet happen: a forwarding node must not fail an upstream
    HTLC because an ``AddLock`` was abandoned before :func:`is_revoked` says so.
    """

    channel_id: ChannelId
    nonce: Nonce
    update: Update
    reason: str


@dataclass(frozen=True, slots=True)
class PreimageLearned:
    """A lock was settled with this preimage (a forwarding node now settles upstream)."""

    hashlock: Hashlock
    preimage: Preimage


Event: TypeAlias = UpdateCommitted | ProposalAbandoned | PreimageLearned


# --------------------------------------------------------------------------- channel


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Channel parameters both parties agree on when opening.

    ``min_lock_delta``/``max_lock_delta`` bound a new lock's expiry relative to the current
    block (BOLT 2 refuses an ``update_add_htlc`` whose ``cltv_expiry`` is too soon or too
    far); the minimum must leave the receiver time to close on L1 and claim the lock with
    its preimage (the contract accepts claims during the dispute window, up to the expiry
    block). ``max_locks`` bounds pending locks (BOLT 2 ``max_accepted_htlcs``; here also
    the L1 gas of settling them). ``settle_timeout`` is the contract's dispute window, kept
    for the caller (watchtower deadlines); the transitions do not use it.
    """

    settle_timeout: BlockNumber = DEFAULT_SETTLE_TIMEOUT
    min_lock_delta: BlockNumber = DEFAULT_MIN_LOCK_DELTA
    max_lock_delta: BlockNumber = DEFAULT_MAX_LOCK_DELTA
    max_locks: int = 32


def _empty_preimages() -> Mapping[Hashlock, Preimage]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Channel:
    """One party's view of a channel.

    ``latest`` is the highest fully signed state; nonce 0 is the opening state (deposits
    as balances), never signed: closing before any update uses the contract's empty state
    (:func:`compute_close_state`). ``pending`` is our own proposal awaiting the peer's ack.
    ``exposed`` lists the nonces (the latest, the next) at which we signed a proposal we
    then abandoned: a commit at such a nonce is tentative. ``abandoned`` keeps the last few
    abandoned proposals not yet revoked, so a late ack for one of them can still commit it.
    ``final_signed`` is set
    once we sign a cooperative-close state. ``l1_deposit_a``/``l1_deposit_b`` are the
    deposits we have seen on L1, an upper bound for a ``Deposit`` update. ``preimages``
    are the preimages we know (our invoices', and every settled lock's).
    """

    role: Role
    address: Address
    peer: Address
    domain: Domain
    latest: SignedState
    l1_deposit_a: Wei
    l1_deposit_b: Wei
    private_key: bytes = field(repr=False)
    config: ChannelConfig = ChannelConfig()
    pending: Proposal | None = None
    exposed: tuple[Nonce, ...] = ()
    abandoned: tuple[Proposal, ...] = ()
    final_signed: bool = False
    preimages: Mapping[Hashlock, Preimage] = field(default_factory=_empty_preimages)

    @property
    def channel_id(self) -> ChannelId:
        return self.latest.state.channel_id

    @property
    def peer_role(self) -> Role:
        return "b" if self.role == "a" else "a"


@dataclass(frozen=True, slots=True)
class Transition:
    """The result of a transition: the new channel, messages to send, events to act on."""

    channel: Channel
    messages: tuple[Message, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class LockClaim:
    """A lock we received whose preimage we know: claimable (off-chain or on L1)."""

    lock: Lock
    preimage: Preimage


def compute_address(private_key: bytes) -> Address:
    """The Ethereum address of a secp256k1 private key."""
    return Address(crypto_compute_address(private_key))


def compute_hashlock(preimage: bytes) -> Hashlock:
    """``sha256(preimage)``, the payment hash of BOLT 2/11."""
    return Hashlock(hashlib.sha256(preimage).digest())


def create_channel(*, role: Role, private_key: bytes, peer: Address, domain: Domain,
                   channel_id: ChannelId, deposit_a: Wei, deposit_b: Wei,
                   config: ChannelConfig | None = None) -> Channel:
    """A freshly opened channel: nonce 0, each party's balance is its deposit."""
    state = ChannelState(channel_id=channel_id, nonce=0, deposit_a=deposit_a, deposit_b=deposit_b,
                         balance_a=deposit_a, balance_b=deposit_b)
    channel = Channel(role=role, address=compute_address(private_key), peer=peer, domain=domain,
                      latest=SignedState(state, b"", b""), l1_deposit_a=deposit_a,
                      l1_deposit_b=deposit_b, private_key=private_key,
                      config=config if config is not None else ChannelConfig())
    validate_channel(channel)
    return channel


def validate_channel(channel: Channel) -> None:
    """Check a channel built or restored by a caller: roles, key, ids, the latest state's
    conservation and (above nonce 0) both signatures, the pending proposal's shape."""
    if channel.role not in ("a", "b"):
        raise InvalidUpdate("role", f"role must be 'a' or 'b', got {channel.role!r}")
    if len(channel.channel_id) != 32:
        raise InvalidUpdate("channel-id", f"channel id must be 32 bytes, got {len(channel.channel_id)}")
    if len(channel.peer) != 20:
        raise InvalidUpdate("peer", f"peer address must be 20 bytes, got {len(channel.peer)}")
    if compute_address(channel.private_key) != channel.address:
        raise InvalidUpdate("key", f"private key is not that of address 0x{channel.address.hex()}")
    if channel.peer == channel.address:
        raise InvalidUpdate("peer", "peer and own address are the same")
    config = channel.config
    if not 0 < config.min_lock_delta < config.max_lock_delta or config.max_locks < 1:
        raise InvalidUpdate("config", f"inconsistent channel config {config}")
    latest = channel.latest
    validate_conservation(latest.state)
    if latest.state.nonce > 0:
        digest = channel.domain.digest(latest.state)
        for role, sig in (("a", latest.sig_a), ("b", latest.sig_b)):
            signer = channel.address if role == channel.role else channel.peer
            if not is_digest_signed_by(digest, sig, signer):
                raise InvalidStateSignature("signature", f"latest state nonce {latest.state.nonce} lacks a "
                                            f"valid signature of party {role} 0x{signer.hex()}")
    if latest.state.deposit_a > channel.l1_deposit_a or latest.state.deposit_b > channel.l1_deposit_b:
        raise InvalidUpdate("deposit-unseen", "latest state accounts for deposits "
                            f"({latest.state.deposit_a}, {latest.state.deposit_b}) above those seen on L1 "
                            f"({channel.l1_deposit_a}, {channel.l1_deposit_b})")
    pending = channel.pending
    if pending is not None:
        expected = FINAL_NONCE if isinstance(pending.update, Close) else latest.state.nonce + 1
        if pending.channel_id != channel.channel_id or pending.nonce != expected:
            raise InvalidUpdate("pending", f"pending proposal nonce {pending.nonce} does not follow "
                                f"latest nonce {latest.state.nonce} of this channel")
        validate_conservation(pending.state)
    if any(not latest.state.nonce <= n <= latest.state.nonce + 1 for n in channel.exposed):
        raise InvalidUpdate("exposed", f"exposed nonces {channel.exposed} are outside latest nonce "
                            f"{latest.state.nonce} and the next")


# --------------------------------------------------------------------------- accessors


def get_balance(state: ChannelState, role: Role) -> Wei:
    return Wei(state.balance_a if role == "a" else state.balance_b)


def get_my_balance(channel: Channel) -> Wei:
    """Our spendable balance in the latest state (locked amounts excluded)."""
    return get_balance(channel.latest.state, channel.role)


def get_peer_balance(channel: Channel) -> Wei:
    return get_balance(channel.latest.state, channel.peer_role)


def get_next_nonce(channel: Channel) -> Nonce:
    """The nonce of the next ordinary proposal, ours or the peer's: the latest's plus one."""
    return Nonce(channel.latest.state.nonce + 1)


def get_lock(state: ChannelState, hashlock: Hashlock) -> Lock | None:
    for lock in state.locks:
        if lock.hashlock == hashlock:
            return lock
    return None


def get_lock_payer(lock: Lock) -> Role:
    return "a" if lock.from_a else "b"


def get_lock_receiver(lock: Lock) -> Role:
    return "b" if lock.from_a else "a"


def get_offered_locks(channel: Channel) -> tuple[Lock, ...]:
    """Locks we pay (outgoing HTLCs) in the latest state."""
    return tuple(lock for lock in channel.latest.state.locks if get_lock_payer(lock) == channel.role)


def get_received_locks(channel: Channel) -> tuple[Lock, ...]:
    """Locks paying us (incoming HTLCs) in the latest state."""
    return tuple(lock for lock in channel.latest.state.locks if get_lock_receiver(lock) == channel.role)


def get_preimage(channel: Channel, hashlock: Hashlock) -> Preimage | None:
    return channel.preimages.get(hashlock)


def is_lock_expired(lock: Lock, current_block: BlockNumber) -> bool:
    """A lock expires once the chain is past its expiry block: from then on only a refund
    is possible; up to and including block ``expiry`` it can be settled."""
    return current_block > lock.expiry


def get_refundable_locks(channel: Channel, current_block: BlockNumber) -> tuple[Lock, ...]:
    """Our offered locks that have expired: propose ``FailLock`` (or refund on L1)."""
    return tuple(lock for lock in get_offered_locks(channel) if is_lock_expired(lock, current_block))


def get_claimable_locks(channel: Channel, current_block: BlockNumber) -> tuple[LockClaim, ...]:
    """Locks paying us, not expired, whose preimage we know: propose ``SettleLock``."""
    claims = []
    for lock in get_received_locks(channel):
        preimage = channel.preimages.get(lock.hashlock)
        if preimage is not None and not is_lock_expired(lock, current_block):
            claims.append(LockClaim(lock, preimage))
    return tuple(claims)


def is_revoked(channel: Channel, nonce: Nonce) -> bool:
    """True when any state with this nonce is superseded by our latest fully signed one:
    on L1 it loses to :func:`compute_close_state` (closing on it two nonces back is
    punished). An abandoned proposal's update cannot happen any more once this holds."""
    return nonce < channel.latest.state.nonce or is_closed(channel)


def is_final(channel: Channel) -> bool:
    """False while the latest commit is tentative: we also signed another state at its
    nonce (an abandoned proposal) that the peer could close on instead."""
    nonce = channel.latest.state.nonce
    return nonce == 0 or nonce not in channel.exposed


def is_closed(channel: Channel) -> bool:
    """The cooperative-close (final) state is signed by both: no more updates."""
    return channel.latest.state.nonce == FINAL_NONCE


# --------------------------------------------------------------------------- checks


def validate_conservation(state: ChannelState) -> None:
    """Raise unless ``balance_a + balance_b + locked == deposit_a + deposit_b``, nothing is
    negative and every lock is positive."""
    if not state.is_conserving():
        raise ConservationError(
            "conservation",
            f"state nonce {state.nonce} breaks conservation: balance_a {state.balance_a} + balance_b "
            f"{state.balance_b} + locked {state.locked} != deposit_a {state.deposit_a} + deposit_b "
            f"{state.deposit_b} (or an amount is not positive)")


def validate_channel_id(channel: Channel, channel_id: bytes) -> None:
    if channel_id != channel.channel_id:
        raise WrongChannel("channel-id", f"message for channel 0x{channel_id.hex()}, "
                           f"this is channel 0x{channel.channel_id.hex()}")


def validate_proposal_nonce(channel: Channel, nonce: int, update: Update) -> None:
    """A proposal's nonce must be the latest's plus one (so replays and stale proposals are
    refused, and no one signs ``n + 2`` before ``n + 1``), or ``FINAL_NONCE`` for ``Close``."""
    latest = channel.latest.state.nonce
    if isinstance(update, Close):
        if nonce != FINAL_NONCE:
            raise InvalidUpdate("nonce", f"close proposal nonce {nonce} is not FINAL_NONCE {FINAL_NONCE}")
        return
    if nonce <= latest:
        raise StaleMessage("nonce-stale", f"proposal nonce {nonce} is not above latest nonce {latest}")
    if nonce != latest + 1 or nonce >= FINAL_NONCE:
        raise InvalidUpdate("nonce-gap", f"proposal nonce {nonce} is not latest nonce {latest} + 1")


def validate_amount(what: str, amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_UINT256:
        raise InvalidUpdate("amount", f"{what} amount must be a positive uint256, got {amount!r}")


def _validate_hashlock(hashlock: bytes) -> None:
    if not isinstance(hashlock, bytes) or len(hashlock) != 32:
        raise InvalidUpdate("hashlock", f"hashlock must be 32 bytes, got {hashlock!r}")


def _validate_balance(state: ChannelState, payer: Role, amount: int, what: str) -> None:
    balance = get_balance(state, payer)
    if amount > balance:
        raise InvalidUpdate("balance", f"{what} amount {amount} exceeds party {payer}'s balance {balance}")


def _find_lock(state: ChannelState, hashlock: Hashlock) -> Lock:
    _validate_hashlock(hashlock)
    lock = get_lock(state, hashlock)
    if lock is None:
        raise InvalidUpdate("unknown-lock", f"no pending lock with hashlock 0x{hashlock.hex()} "
                            f"in state nonce {state.nonce}")
    return lock


def _credit(state: ChannelState, role: Role, amount: int, **changes: Any) -> ChannelState:
    if role == "a":
        return replace(state, balance_a=state.balance_a + amount, **changes)
    return replace(state, balance_b=state.balance_b + amount, **changes)


def _without(locks: tuple[Lock, ...], hashlock: Hashlock) -> tuple[Lock, ...]:
    return tuple(lock for lock in locks if lock.hashlock != hashlock)


def validate_pay(state: ChannelState, update: Pay, proposer: Role) -> None:
    validate_amount("pay", update.amount)
    _validate_balance(state, proposer, update.amount, "pay")


def validate_add_lock(channel: Channel, state: ChannelState, update: AddLock, proposer: Role,
                      current_block: BlockNumber) -> None:
    validate_amount("lock", update.amount)
    _validate_hashlock(update.hashlock)
    _validate_balance(state, proposer, update.amount, "lock")
    config = channel.config
    expiry = update.expiry
    if isinstance(expiry, bool) or not isinstance(expiry, int) or not 0 <= expiry <= MAX_UINT64:
        raise InvalidUpdate("expiry", f"lock expiry must be a uint64 block number, got {expiry!r}")
    if expiry <= current_block + config.min_lock_delta:
        raise InvalidUpdate("expiry-too-soon", f"lock expiry {expiry} must be above current block "
                            f"{current_block} + min lock delta {config.min_lock_delta}")
    if expiry > current_block + config.max_lock_delta:
        raise InvalidUpdate("expiry-too-far", f"lock expiry {expiry} exceeds current block "
                            f"{current_block} + max lock delta {config.max_lock_delta}")
    if get_lock(state, update.hashlock) is not None:
        raise InvalidUpdate("duplicate-hashlock", f"a lock with hashlock 0x{update.hashlock.hex()} "
                            "is already pending")
    if len(state.locks) >= config.max_locks:
        raise InvalidUpdate("too-many-locks", f"{len(state.locks)} locks pending, at most "
                            f"{config.max_locks} allowed")


def validate_settle_lock(state: ChannelState, update: SettleLock, proposer: Role,
                         current_block: BlockNumber) -> Lock:
    lock = _find_lock(state, update.hashlock)
    receiver = get_lock_receiver(lock)
    if proposer != receiver:
        raise InvalidUpdate("not-lock-receiver", f"lock 0x{lock.hashlock.hex()} pays party {receiver}; "
                            f"party {proposer} cannot settle it")
    preimage = update.preimage
    if not isinstance(preimage, bytes) or len(preimage) != 32:
        raise InvalidUpdate("preimage", f"preimage must be 32 bytes, got {preimage!r}")
    if compute_hashlock(preimage) != lock.hashlock:
        raise InvalidUpdate("preimage", f"sha256 of preimage 0x{preimage.hex()} is "
                            f"0x{compute_hashlock(preimage).hex()}, not hashlock 0x{lock.hashlock.hex()}")
    if is_lock_expired(lock, current_block):
        raise InvalidUpdate("lock-expired", f"lock 0x{lock.hashlock.hex()} expired at block "
                            f"{lock.expiry}, current block {current_block}")
    return lock


def validate_fail_lock(state: ChannelState, update: FailLock, proposer: Role,
                       current_block: BlockNumber) -> Lock:
    lock = _find_lock(state, update.hashlock)
    if proposer == get_lock_payer(lock) and not is_lock_expired(lock, current_block):
        raise InvalidUpdate("lock-not-expired", f"payer {proposer} may fail lock "
                            f"0x{lock.hashlock.hex()} only after its expiry {lock.expiry}, "
                            f"current block {current_block}")
    return lock


def validate_deposit(channel: Channel, state: ChannelState, update: Deposit) -> None:
    new = (update.deposit_a, update.deposit_b)
    for value in new:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT256:
            raise InvalidUpdate("amount", f"deposit must be a uint256, got {value!r}")
    if update.deposit_a < state.deposit_a or update.deposit_b < state.deposit_b:
        raise InvalidUpdate("deposit-decrease", f"deposits ({update.deposit_a}, {update.deposit_b}) "
                            f"below current ({state.deposit_a}, {state.deposit_b})")
    if new == (state.deposit_a, state.deposit_b):
        raise InvalidUpdate("deposit-unchanged", f"deposits ({state.deposit_a}, {state.deposit_b}) "
                            "unchanged")
    if update.deposit_a > channel.l1_deposit_a or update.deposit_b > channel.l1_deposit_b:
        raise InvalidUpdate("deposit-unseen", f"deposits ({update.deposit_a}, {update.deposit_b}) "
                            f"exceed those seen on L1 ({channel.l1_deposit_a}, {channel.l1_deposit_b})")


def compute_next_state(channel: Channel, update: Update, proposer: Role, nonce: Nonce,
                       current_block: BlockNumber) -> ChannelState:
    """The state ``update`` by ``proposer`` makes of ``channel``'s latest state, at
    ``nonce``; raises :class:`InvalidUpdate` when the update breaks its kind's rules.

    Each kind moves value in one direction only: ``Pay`` and ``AddLock`` from the proposer,
    ``SettleLock`` from a lock to its receiver, ``FailLock`` from a lock to its payer,
    ``Deposit`` from L1 to the depositor; ``Close`` moves nothing (nonce ``FINAL_NONCE``)."""
    state = channel.latest.state
    if isinstance(update, Pay):
        validate_pay(state, update, proposer)
        return _credit(_credit(state, proposer, -update.amount), "b" if proposer == "a" else "a",
                       update.amount, nonce=nonce)
    if isinstance(update, AddLock):
        validate_add_lock(channel, state, update, proposer, current_block)
        lock = Lock(amount=update.amount, expiry=update.expiry, hashlock=update.hashlock,
                    from_a=proposer == "a")
        return _credit(state, proposer, -update.amount, nonce=nonce, locks=(*state.locks, lock))
    if isinstance(update, SettleLock):
        lock = validate_settle_lock(state, update, proposer, current_block)
        return _credit(state, get_lock_receiver(lock), lock.amount, nonce=nonce,
                       locks=_without(state.locks, lock.hashlock))
    if isinstance(update, FailLock):
        lock = validate_fail_lock(state, update, proposer, current_block)
        return _credit(state, get_lock_payer(lock), lock.amount, nonce=nonce,
                       locks=_without(state.locks, lock.hashlock))
    if isinstance(update, Deposit):
        validate_deposit(channel, state, update)
        return replace(state, nonce=nonce, deposit_a=update.deposit_a, deposit_b=update.deposit_b,
                       balance_a=state.balance_a + update.deposit_a - state.deposit_a,
                       balance_b=state.balance_b + update.deposit_b - state.deposit_b)
    if isinstance(update, Close):
        if state.locks:
            raise InvalidUpdate("locks-pending", f"cannot close cooperatively with {len(state.locks)} "
                                f"locks pending ({state.locked} locked); settle or fail them first")
        return replace(state, nonce=FINAL_NONCE)
    raise InvalidUpdate("update-kind", f"unknown update {update!r}")


def validate_proposed_state(expected: ChannelState, proposed: ChannelState) -> None:
    """The proposed state must be exactly the one the update makes of our latest state:
    this is what limits the balance movement to the update's kind."""
    if proposed == expected:
        return
    diffs = [f"{f.name} expected {getattr(expected, f.name)!r} got {getattr(proposed, f.name)!r}"
             for f in fields(ChannelState) if getattr(expected, f.name) != getattr(proposed, f.name)]
    raise InvalidUpdate("state-mismatch", f"proposed state nonce {proposed.nonce} is not what its "
                        f"update makes of the latest state: {'; '.join(diffs)}")


def _signed(channel: Channel, state: ChannelState, mine: bytes, theirs: bytes) -> SignedState:
    if channel.role == "a":
        return SignedState(state, mine, theirs)
    return SignedState(state, theirs, mine)


def _committed(channel: Channel, latest: SignedState, update: Update, proposer: Role,
               events: tuple[Event, ...] = ()) -> Transition:
    """``channel`` (already holding the right ``pending`` and ``exposed``) with ``latest``
    committed; exposures below it are revoked by it."""
    validate_conservation(latest.state)
    nonce = Nonce(latest.state.nonce)
    events += (UpdateCommitted(channel.channel_id, nonce, update, proposer, latest,
                               final=nonce not in channel.exposed),)
    preimages = channel.preimages
    if isinstance(update, SettleLock):
        preimages = MappingProxyType({**preimages, update.hashlock: update.preimage})
        events += (PreimageLearned(update.hashlock, update.preimage),)
    abandoned = tuple(p for p in channel.abandoned if p.nonce == nonce)
    exposed = tuple(n for n in channel.exposed if n >= nonce)
    return Transition(replace(channel, latest=latest, abandoned=abandoned, exposed=exposed,
                              preimages=preimages,
                              final_signed=channel.final_signed or isinstance(update, Close)), (), events)


# --------------------------------------------------------------------------- transitions


def _abandon(channel: Channel, proposal: Proposal) -> Channel:
    """``channel`` with ``proposal`` (ours, possibly still countersigned by the peer) given up."""
    abandoned = (*channel.abandoned, proposal)[-MAX_ABANDONED:]
    if isinstance(proposal.update, Close):  # final_signed already bars every other update
        return replace(channel, pending=None, abandoned=abandoned)
    return replace(channel, pending=None, exposed=tuple(sorted({*channel.exposed, proposal.nonce})),
                   abandoned=abandoned)


def _validate_open(channel: Channel, update: Update) -> None:
    if is_closed(channel):
        raise InvalidUpdate("closed", "the channel is closed cooperatively (final state signed by both)")
    if channel.final_signed and not isinstance(update, Close):
        raise InvalidUpdate("closing", "we signed the cooperative-close state: no other update is "
                            "safe any more; close on L1")


def apply_command(channel: Channel, command: Update, current_block: BlockNumber) -> Transition:
    """Propose ``command`` as the next state: sign it, keep it pending, send a
    :class:`Proposal`. Refused (unchanged channel) if a proposal is already in flight or the
    update breaks its rules from our side too."""
    _validate_open(channel, command)
    if channel.pending is not None:
        raise ProposalInFlight("in-flight", f"proposal nonce {channel.pending.nonce} still awaits "
                               "the peer's answer; one proposal at a time")
    nonce = get_next_nonce(channel)
    if nonce >= FINAL_NONCE:
        raise InvalidUpdate("nonce-overflow", f"next nonce {nonce} reaches FINAL_NONCE")
    state = compute_next_state(channel, command, channel.role, nonce, current_block)
    validate_conservation(state)
    signature = sign_digest(channel.domain.digest(state), channel.private_key)
    proposal = Proposal(state, command, signature)
    proposed = replace(channel, pending=proposal,
                       final_signed=channel.final_signed or isinstance(command, Close))
    return Transition(proposed, (proposal,), ())


def apply_proposal(channel: Channel, proposal: Proposal, current_block: BlockNumber) -> Transition:
    """Check the peer's proposal against our latest state; countersign and ack it.

    Checks, cheapest first: channel id, still open, the tie rule (``a``'s proposal in
    flight wins), nonce the latest's plus one, conservation, the update's rules with the
    peer as proposer, the state equals what the update makes of our latest, the peer's
    signature. ``b`` drops a proposal of its own in flight."""
    validate_channel_id(channel, proposal.channel_id)
    update = proposal.update
    _validate_open(channel, update)
    pending = channel.pending
    same_close = pending is not None and isinstance(update, Close) and isinstance(pending.update, Close)
    if pending is not None and not same_close and (
            channel.role == "a" or isinstance(pending.update, Close)):
        raise ConcurrentProposal("concurrent-proposal", f"peer proposed nonce {proposal.nonce} while our "
                                 f"proposal nonce {pending.nonce} is in flight; a's proposal goes first, "
                                 "b retries after it")
    validate_proposal_nonce(channel, proposal.nonce, update)
    superseding = pending is not None and not same_close
    validate_conservation(proposal.state)
    expected = compute_next_state(channel, update, channel.peer_role, proposal.nonce, current_block)
    validate_proposed_state(expected, proposal.state)
    digest = channel.domain.digest(proposal.state)
    if not is_digest_signed_by(digest, proposal.signature, channel.peer):
        raise InvalidStateSignature("signature", f"proposal nonce {proposal.nonce} is not signed by peer "
                               f"0x{channel.peer.hex()}")
    signature = sign_digest(digest, channel.private_key)
    events: tuple[Event, ...] = ()
    if superseding and pending is not None:
        channel = _abandon(channel, pending)
        events = (ProposalAbandoned(channel.channel_id, pending.nonce, pending.update,
                                    f"superseded by a's concurrent proposal nonce {proposal.nonce}"),)
    latest = _signed(channel, proposal.state, signature, proposal.signature)
    done = _committed(replace(channel, pending=None), latest, update, channel.peer_role, events)
    return replace(done, messages=(Ack(channel.channel_id, proposal.nonce, signature),))


def apply_ack(channel: Channel, ack: Ack) -> Transition:
    """The peer countersigned our pending proposal: it becomes the latest state.

    An ack may also name a proposal we abandoned at the next nonce (the peer refused it,
    then accepted it when it came again): we signed it, so we commit it too rather than
    split from the peer, and a proposal of ours still pending is abandoned instead."""
    validate_channel_id(channel, ack.channel_id)
    if is_closed(channel):
        raise StaleMessage("closed", f"ack for nonce {ack.nonce} but the channel is closed cooperatively")
    pending = channel.pending
    candidates = [pending] if pending is not None and pending.nonce == ack.nonce else []
    if (ack.nonce == get_next_nonce(channel) and not channel.final_signed) or ack.nonce == FINAL_NONCE:
        candidates += [p for p in reversed(channel.abandoned) if p.nonce == ack.nonce]
    if not candidates:
        raise StaleMessage("no-pending", f"ack for nonce {ack.nonce} but no proposal of ours with that "
                           f"nonce is pending (latest nonce {channel.latest.state.nonce})")
    proposal = next((p for p in candidates if is_digest_signed_by(
        channel.domain.digest(p.state), ack.signature, channel.peer)), None)
    if proposal is None:
        raise InvalidStateSignature("signature", f"ack for nonce {ack.nonce} is not signed by peer "
                               f"0x{channel.peer.hex()}")
    events: tuple[Event, ...] = ()
    if proposal is not pending and pending is not None:
        channel = _abandon(channel, pending)
        events = (ProposalAbandoned(channel.channel_id, pending.nonce, pending.update,
                                    f"the peer countersigned our earlier proposal nonce {ack.nonce}"),)
    latest = _signed(channel, proposal.state, proposal.signature, ack.signature)
    return _committed(replace(channel, pending=None), latest, proposal.update, channel.role, events)


def apply_reject(channel: Channel, reject: Reject) -> Transition:
    """The peer refused our pending proposal: abandon it (our signature of it stays out,
    so its nonce is *exposed*: see :class:`ProposalAbandoned`)."""
    validate_channel_id(channel, reject.channel_id)
    pending = channel.pending
    if pending is None or reject.nonce != pending.nonce \
            or reject.proposal_hash != compute_proposal_hash(pending):
        raise StaleMessage("reject-mismatch", f"reject of nonce {reject.nonce} does not match the "
                           f"pending proposal ({'none' if pending is None else pending.nonce})")
    digest = compute_reject_digest(channel.domain, reject.channel_id, reject.nonce,
                                   reject.proposal_hash, reject.reason)
    if not is_digest_signed_by(digest, reject.signature, channel.peer):
        raise InvalidStateSignature("signature", f"reject of nonce {reject.nonce} is not signed by peer "
                               f"0x{channel.peer.hex()}")
    event = ProposalAbandoned(channel.channel_id, pending.nonce, pending.update, reject.reason)
    return Transition(_abandon(channel, pending), (), (event,))


def apply_message(channel: Channel, message: Message, current_block: BlockNumber) -> Transition:
    """Dispatch a received message to :func:`apply_proposal`, :func:`apply_ack` or
    :func:`apply_reject`."""
    if isinstance(message, Proposal):
        return apply_proposal(channel, message, current_block)
    if isinstance(message, Ack):
        return apply_ack(channel, message)
    if isinstance(message, Reject):
        return apply_reject(channel, message)
    raise MalformedMessage("message-kind", f"unknown message {message!r}")


def apply_refusal(channel: Channel, message: Message, error: ChannelError) -> Transition:
    """After :func:`apply_message` refused ``message`` with ``error``: the unchanged channel
    and, for a proposal on this channel, a signed :class:`Reject` to send back so its
    proposer can abandon it and retry; nothing for a refused ack or reject (no ping-pong)."""
    if not isinstance(message, Proposal) or message.channel_id != channel.channel_id:
        return Transition(channel)
    check = error.check if isinstance(error, InvalidChannelUpdate) else "refused"
    return Transition(channel, (compute_reject(channel, message, f"{check}: {error}"),), ())


def apply_preimage(channel: Channel, preimage: Preimage) -> Channel:
    """Remember a preimage (ours, from an invoice) so locks paying it can be settled."""
    if len(preimage) != 32:
        raise InvalidUpdate("preimage", f"preimage must be 32 bytes, got {len(preimage)}")
    return replace(channel, preimages=MappingProxyType({**channel.preimages,
                                                        compute_hashlock(preimage): preimage}))


def apply_observed_deposits(channel: Channel, deposit_a: Wei, deposit_b: Wei) -> Channel:
    """Record the channel's deposits as seen on L1 (they only grow); a ``Deposit`` update
    may then bring the signed state up to them."""
    if deposit_a < channel.l1_deposit_a or deposit_b < channel.l1_deposit_b:
        raise InvalidUpdate("deposit-decrease", f"L1 deposits ({deposit_a}, {deposit_b}) below those "
                            f"already seen ({channel.l1_deposit_a}, {channel.l1_deposit_b})")
    return replace(channel, l1_deposit_a=deposit_a, l1_deposit_b=deposit_b)


def compute_proposal_hash(proposal: Proposal) -> Hash32:
    """Identifies one proposal: ``keccak256(signature || update JSON)``. The signature
    commits to the state but not to the update sent with it, so a copy of a genuine
    proposal with a wrong update is a different proposal (refusing it must not touch the
    genuine one)."""
    return Hash32(bytes(keccak(proposal.signature + _dumps(_update_to_obj(proposal.update)).encode())))


def compute_reject_digest(domain: Domain, channel_id: ChannelId, nonce: Nonce, proposal_hash: Hash32,
                          reason: str) -> bytes:
    """What a :class:`Reject` signs. The ``0x19`` prefix keeps it apart from EIP-712
    (``0x19 0x01``) digests, so it can never pass for a signed channel state."""
    return bytes(keccak(_REJECT_TAG + domain.separator() + channel_id + nonce.to_bytes(8, "big")
                        + proposal_hash + keccak(reason.encode())))


def compute_reject(channel: Channel, proposal: Proposal, reason: str) -> Reject:
    reason = reason[:MAX_REASON_LENGTH]
    proposal_hash = compute_proposal_hash(proposal)
    nonce = Nonce(min(proposal.nonce, MAX_UINT64))
    digest = compute_reject_digest(channel.domain, channel.channel_id, nonce, proposal_hash, reason)
    return Reject(channel.channel_id, nonce, proposal_hash, reason,
                  sign_digest(digest, channel.private_key))


def compute_close_state(channel: Channel) -> SignedState:
    """The state to put on L1: our latest fully signed one, for a unilateral ``close`` or to
    ``challenge`` a close on an older state; the final state (:func:`is_closed`) goes to
    ``cooperativeClose``. Before any signed state, the contract's empty state (nonce 0, all
    zero, no signatures), with which every deposit returns to its depositor."""
    if channel.latest.state.nonce == 0:
        return SignedState(ChannelState(channel.channel_id, 0, 0, 0, 0, 0), b"", b"")
    return channel.latest


# --------------------------------------------------------------------------- JSON codec


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _field(obj: Mapping[str, Any], key: str) -> Any:
    if key not in obj:
        raise MalformedMessage("malformed", f"missing field {key!r}")
    return obj[key]


def _bytes(obj: Mapping[str, Any], key: str, length: int | None) -> bytes:
    value = _field(obj, key)
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedMessage("malformed", f"field {key!r} must be a 0x-hex string, got {value!r}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError as exc:
        raise MalformedMessage("malformed", f"field {key!r} is not hex: {value!r}") from exc
    if length is not None and len(raw) != length:
        raise MalformedMessage("malformed", f"field {key!r} must be {length} bytes, got {len(raw)}")
    return raw


def _uint(obj: Mapping[str, Any], key: str, bits: int) -> int:
    value = _field(obj, key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise MalformedMessage("malformed", f"field {key!r} must be a uint{bits}, got {value!r}")
    return value


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedMessage("malformed", f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _lock_to_obj(lock: Lock) -> dict[str, Any]:
    return {"amount": lock.amount, "expiry": lock.expiry, "hashlock": _hex(lock.hashlock),
            "from_a": lock.from_a}


def _lock_from_obj(value: Any) -> Lock:
    obj = _object(value, "lock")
    from_a = _field(obj, "from_a")
    if not isinstance(from_a, bool):
        raise MalformedMessage("malformed", f"lock field 'from_a' must be a boolean, got {from_a!r}")
    return Lock(amount=_uint(obj, "amount", 256), expiry=_uint(obj, "expiry", 64),
                hashlock=Hashlock(_bytes(obj, "hashlock", 32)), from_a=from_a)


def _state_to_obj(state: ChannelState) -> dict[str, Any]:
    return {"channel_id": _hex(state.channel_id), "nonce": state.nonce, "deposit_a": state.deposit_a,
            "deposit_b": state.deposit_b, "balance_a": state.balance_a, "balance_b": state.balance_b,
            "locks": [_lock_to_obj(lock) for lock in state.locks]}


def _state_from_obj(value: Any) -> ChannelState:
    obj = _object(value, "state")
    locks = _field(obj, "locks")
    if not isinstance(locks, list):
        raise MalformedMessage("malformed", "state field 'locks' must be a list")
    return ChannelState(channel_id=ChannelId(_bytes(obj, "channel_id", 32)), nonce=_uint(obj, "nonce", 64),
                        deposit_a=_uint(obj, "deposit_a", 256), deposit_b=_uint(obj, "deposit_b", 256),
                        balance_a=_uint(obj, "balance_a", 256), balance_b=_uint(obj, "balance_b", 256),
                        locks=tuple(_lock_from_obj(lock) for lock in locks))


def _update_to_obj(update: Update) -> dict[str, Any]:
    if isinstance(update, Pay):
        return {"kind": "pay", "amount": update.amount}
    if isinstance(update, AddLock):
        return {"kind": "add_lock", "amount": update.amount, "hashlock": _hex(update.hashlock),
                "expiry": update.expiry}
    if isinstance(update, SettleLock):
        return {"kind": "settle_lock", "hashlock": _hex(update.hashlock), "preimage": _hex(update.preimage)}
    if isinstance(update, FailLock):
        return {"kind": "fail_lock", "hashlock": _hex(update.hashlock)}
    if isinstance(update, Close):
        return {"kind": "close"}
    return {"kind": "deposit", "deposit_a": update.deposit_a, "deposit_b": update.deposit_b}


def _update_from_obj(value: Any) -> Update:
    obj = _object(value, "update")
    kind = _field(obj, "kind")
    if kind == "pay":
        return Pay(Wei(_uint(obj, "amount", 256)))
    if kind == "add_lock":
        return AddLock(Wei(_uint(obj, "amount", 256)), Hashlock(_bytes(obj, "hashlock", 32)),
                       BlockNumber(_uint(obj, "expiry", 64)))
    if kind == "settle_lock":
        return SettleLock(Hashlock(_bytes(obj, "hashlock", 32)), Preimage(_bytes(obj, "preimage", 32)))
    if kind == "fail_lock":
        return FailLock(Hashlock(_bytes(obj, "hashlock", 32)))
    if kind == "deposit":
        return Deposit(Wei(_uint(obj, "deposit_a", 256)), Wei(_uint(obj, "deposit_b", 256)))
    if kind == "close":
        return Close()
    raise MalformedMessage("malformed", f"unknown update kind {kind!r}")


def decode_message(data: str | bytes) -> Message:
    """Parse a message from its ``to_json()`` form; raises :class:`MalformedMessage`."""
    try:
        obj = _object(json.loads(data), "message")
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage("malformed", f"message is not JSON: {exc}") from exc
    kind = _field(obj, "type")
    if kind == "proposal":
        return Proposal(_state_from_obj(_field(obj, "state")), _update_from_obj(_field(obj, "update")),
                        _bytes(obj, "signature", 65))
    if kind == "ack":
        return Ack(ChannelId(_bytes(obj, "channel_id", 32)), Nonce(_uint(obj, "nonce", 64)),
                   _bytes(obj, "signature", 65))
    if kind == "reject":
        reason = _field(obj, "reason")
        if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
            raise MalformedMessage("malformed", "reject field 'reason' must be a string of at most "
                                   f"{MAX_REASON_LENGTH} characters")
        return Reject(ChannelId(_bytes(obj, "channel_id", 32)), Nonce(_uint(obj, "nonce", 64)),
                      Hash32(_bytes(obj, "proposal_hash", 32)), reason, _bytes(obj, "signature", 65))
    raise MalformedMessage("malformed", f"unknown message type {kind!r}")


def _expect(message: Message, cls: type[_M]) -> _M:
    if not isinstance(message, cls):
        raise MalformedMessage("malformed", f"expected a {cls.__name__}, got a {type(message).__name__}")
    return message


def encode_signed_state(signed: SignedState) -> dict[str, Any]:
    """A signed state as JSON (hex for bytes): what a node keeps and hands to a watchtower."""
    return {"state": _state_to_obj(signed.state), "sig_a": _hex(signed.sig_a),
            "sig_b": _hex(signed.sig_b)}


def decode_signed_state(value: Any) -> SignedState:
    """Inverse of :func:`encode_signed_state`; raises :class:`MalformedMessage`. Signatures
    may be empty (the unsigned opening state, nonce 0)."""
    obj = _object(value, "signed state")
    return SignedState(_state_from_obj(_field(obj, "state")), _bytes(obj, "sig_a", None),
                       _bytes(obj, "sig_b", None))


def encode_channel(channel: Channel) -> str:
    """The channel as JSON for a node's disk (everything but the private key)."""
    latest = channel.latest
    return _dumps({
        "role": channel.role, "address": _hex(channel.address), "peer": _hex(channel.peer),
        "chain_id": channel.domain.chain_id, "verifying_contract": _hex(channel.domain.verifying_contract),
        "latest": encode_signed_state(latest),
        "l1_deposit_a": channel.l1_deposit_a, "l1_deposit_b": channel.l1_deposit_b,
        "config": {f.name: getattr(channel.config, f.name) for f in fields(ChannelConfig)},
        "pending": None if channel.pending is None else json.loads(channel.pending.to_json()),
        "exposed": list(channel.exposed), "final_signed": channel.final_signed,
        "abandoned": [json.loads(p.to_json()) for p in channel.abandoned],
        "preimages": sorted(_hex(p) for p in channel.preimages.values()),
    })


def decode_channel(data: str | bytes, private_key: bytes) -> Channel:
    """Restore a channel saved by :func:`encode_channel` and check it (:func:`validate_channel`)."""
    try:
        obj = _object(json.loads(data), "channel")
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage("malformed", f"channel is not JSON: {exc}") from exc
    role = _field(obj, "role")
    if role not in ("a", "b"):
        raise MalformedMessage("malformed", f"role must be 'a' or 'b', got {role!r}")
    latest = decode_signed_state(_field(obj, "latest"))
    config_obj = _object(_field(obj, "config"), "config")
    config = ChannelConfig(
        settle_timeout=BlockNumber(_uint(config_obj, "settle_timeout", 64)),
        min_lock_delta=BlockNumber(_uint(config_obj, "min_lock_delta", 64)),
        max_lock_delta=BlockNumber(_uint(config_obj, "max_lock_delta", 64)),
        max_locks=_uint(config_obj, "max_locks", 64))
    pending_obj = _field(obj, "pending")
    pending = None if pending_obj is None else _expect(decode_message(json.dumps(pending_obj)), Proposal)
    preimages_list = _field(obj, "preimages")
    if not isinstance(preimages_list, list):
        raise MalformedMessage("malformed", "field 'preimages' must be a list")
    preimages = [Preimage(_bytes({"p": p}, "p", 32)) for p in preimages_list]
    abandoned_list = _field(obj, "abandoned")
    if not isinstance(abandoned_list, list):
        raise MalformedMessage("malformed", "field 'abandoned' must be a list")
    abandoned = tuple(_expect(decode_message(json.dumps(p)), Proposal) for p in abandoned_list)
    exposed_list = _field(obj, "exposed")
    if not isinstance(exposed_list, list):
        raise MalformedMessage("malformed", "field 'exposed' must be a list")
    exposed = tuple(Nonce(_uint({"n": n}, "n", 64)) for n in exposed_list)
    final_signed = _field(obj, "final_signed")
    if not isinstance(final_signed, bool):
        raise MalformedMessage("malformed", "field 'final_signed' must be a boolean")
    channel = Channel(
        role=role, address=Address(_bytes(obj, "address", 20)), peer=Address(_bytes(obj, "peer", 20)),
        domain=Domain(_uint(obj, "chain_id", 256), _bytes(obj, "verifying_contract", 20)),
        latest=latest, l1_deposit_a=Wei(_uint(obj, "l1_deposit_a", 256)),
        l1_deposit_b=Wei(_uint(obj, "l1_deposit_b", 256)), private_key=private_key, config=config,
        pending=pending, exposed=exposed, abandoned=abandoned,
        final_signed=final_signed,
        preimages=MappingProxyType({compute_hashlock(p): p for p in preimages}))
    validate_channel(channel)
    return channel
