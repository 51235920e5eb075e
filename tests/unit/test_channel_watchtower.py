"""The watchtower's decision, without an L1: a close seen on a revoked state is answered
with the latest state both parties signed; a close on the latest state is left alone.

The tower is the real :class:`Watchtower` with a real store, fed the follower's real change
values. What it asks of the L1 (``getChannel``, the domain, sending ``challenge``) comes
from :class:`ChannelL1`, a stand-in implementing just those calls: a fast test cannot
have a deployed channel contract with a close on it, and the contract's own handling of
a challenge is tested against the real L1 in ``tests/integration/test_channel_contract.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_hash.auto import keccak
from web3 import Web3

from layerlab.errors import ChannelError
from layerlab.l2.channels.onchain import ChannelContract, ChannelStatus, OnchainChannel
from layerlab.l2.channels.signing import sign_state
from layerlab.l2.channels.types import ChannelId, ChannelState, Domain, SignedState
from layerlab.l2.channels.watchtower import Contest, Watchtower
from layerlab.l2.follower import EventReceived, L1Change, NewBlock
from layerlab.l2.l1client import ContractEvent
from layerlab.l2.store import RecordStore
from layerlab.primitives.types import BlockNumber, Hash32

KEY_A, KEY_B, KEY_TOWER = b"\x11" * 32, b"\x22" * 32, b"\x55" * 32
CONTRACT = "0x" + "cc" * 20
DOMAIN = Domain(1337, bytes.fromhex(CONTRACT[2:]))
CHANNEL = ChannelId(bytes(keccak(b"watched channel")))
DEPOSIT = 1000
SETTLE_BLOCK = 130


def signed(nonce: int, paid_to_b: int) -> SignedState:
    state = ChannelState(channel_id=CHANNEL, nonce=nonce, deposit_a=DEPOSIT, deposit_b=0,
                         balance_a=DEPOSIT - paid_to_b, balance_b=paid_to_b)
    return SignedState(state, sign_state(DOMAIN, state, KEY_A), sign_state(DOMAIN, state, KEY_B))


class ChannelL1:
    """The calls of :class:`ChannelContract` the tower makes, answered from memory."""

    def __init__(self) -> None:
        # the real client's L1 handle, bound to nothing: the follower is never polled here
        unbound = Web3(Web3.HTTPProvider("http://127.0.0.1:9"))
        self.l1 = ChannelContract.at(unbound, CONTRACT).l1
        self.challenged: list[SignedState] = []

    def domain(self) -> Domain:
        return DOMAIN

    def get_channel(self, channel_id: ChannelId) -> OnchainChannel:
        a = Account.from_key(KEY_A).address
        b = Account.from_key(KEY_B).address
        return OnchainChannel(channel_id, a, b, None, ChannelStatus.OPEN, 20, BlockNumber(0),
                              None, 0, 0, DEPOSIT, 0, 0, 0, 0)

    def challenge(self, key: bytes, signed: SignedState) -> dict[str, Any]:
        self.challenged.append(signed)
        return {"transactionHash": bytes(keccak(signed.sig_a)), "gasUsed": 60_000}


def closed_on(nonce: int) -> list[L1Change]:
    event = ContractEvent("ChannelClosed", {"channelId": bytes(CHANNEL), "nonce": nonce,
                                            "settleBlock": SETTLE_BLOCK,
                                            "closer": Account.from_key(KEY_B).address},
                          BlockNumber(110), b"\x01" * 32, 0)
    return [EventReceived(event), NewBlock(BlockNumber(110), Hash32(b"\x02" * 32))]


@pytest.fixture
def tower(tmp_path: Path) -> Any:
    l1 = ChannelL1()
    store = RecordStore(tmp_path / "tower")
    tower = Watchtower(l1, KEY_TOWER, store)  # type: ignore[arg-type]
    # B is paid 100, then 300, then 250 back... the client registers each state it signs
    assert [tower.register(s) for s in (signed(1, 100), signed(2, 300), signed(3, 50))] \
        == [True, True, True]
    assert tower.register(signed(2, 300)) is False  # older than the one held
    yield tower, l1
    store.close()


def test_a_close_on_a_revoked_state_is_answered_with_the_latest(tower: Any) -> None:
    watchtower, l1 = tower
    watchtower.follower.commit(watchtower.apply_changes(closed_on(2)))  # B's best state
    contests = watchtower.contest_pending()
    assert l1.challenged == [signed(3, 50)]
    assert contests == [Contest(CHANNEL, 2, 3, bytes(keccak(signed(3, 50).sig_a)), 60_000)]
    # contested once: nothing left pending
    assert watchtower.get_pending() == [] and watchtower.contest_pending() == []
    assert len(l1.challenged) == 1


def test_a_close_on_the_latest_state_is_left_alone(tower: Any) -> None:
    watchtower, l1 = tower
    watchtower.follower.commit(watchtower.apply_changes(closed_on(3)))
    assert watchtower.get_pending() == []
    assert watchtower.contest_pending() == [] and l1.challenged == []


def test_a_state_signed_by_someone_else_is_not_registered(tower: Any) -> None:
    watchtower, _ = tower
    forged = signed(9, 1000)
    forged = SignedState(forged.state, forged.sig_a, sign_state(DOMAIN, forged.state, KEY_TOWER))
    with pytest.raises(ChannelError, match="not signed by both participants"):
        watchtower.register(forged)
    assert watchtower.get_state(CHANNEL) == signed(3, 50)
