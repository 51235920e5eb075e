"""Payment channels: two-party off-chain state, HTLC multi-hop payments, L1 disputes.

The design follows the Lightning Network (BOLT 2/3/4/11) in what it guarantees and Raiden
in how it is built, simplified where Ethereum allows:

* A channel's off-chain state is a :class:`~layerlab.l2.channels.types.ChannelState`
  countersigned by both parties (EIP-712). Every update raises ``nonce`` by one, and a
  party signs state n+2 only once it holds both signatures on n+1, so at most one state
  is ever "in flight". A state two or more nonces below one both signed is *revoked*:
  closing on it and being shown the newer one costs the closer the whole channel (the
  Lightning penalty, BOLT 5, without per-commitment revocation keys since the contract
  can compare nonces). A state exactly one newer only replaces the closed one: the
  counterparty may have withheld its last acknowledgement, so closing on n is honest
  when n+1 was never fully received.
* Cooperative close takes a *final* state (``nonce == 2**64 - 1``, no locks) signed by
  both, and pays out at once.
* Multi-hop payments use hash time-locked contracts (:class:`Lock`): amount, hash lock,
  expiry as an L1 block number that decreases along the route (BOLT 2 ``cltv_expiry``).
  Pending locks are committed to in the state by ``locks_hash``; on L1 a lock is claimed
  with its preimage before expiry or refunded after.
* Conservation: ``balance_a + balance_b + sum(lock.amount) == deposit_a + deposit_b``
  holds for every state, checked after every transition and by the contract.
"""
