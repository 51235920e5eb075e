"""Payment channels: two-party off-chain state, HTLC multi-hop payments, L1 disputes.

The design follows the Lightning Network (BOLT 2/3/4/11) in what it guarantees and Raiden
in how it is built, simplified where Ethereum allows:

* A channel's off-chain state is a :class:`~layerlab.l2.channels.types.ChannelState`
  countersigned by both parties (EIP-712). Every update raises ``nonce``; the highest
  nonce both signed is the only valid one. A state with a lower nonce is *revoked*:
  closing on it and being shown a newer one costs the closer the whole channel (the
  Lightning penalty, without per-commitment revocation keys since the contract can
  compare nonces).
* Multi-hop payments use hash time-locked contracts (:class:`Lock`): amount, hash lock,
  expiry as an L1 block number that decreases along the route (BOLT 2 ``cltv_expiry``).
  Pending locks are committed to in the state by ``locks_hash``; on L1 a lock is claimed
  with its preimage before expiry or refunded after.
* Conservation: ``balance_a + balance_b + sum(lock.amount) == deposit_a + deposit_b``
  holds for every state, checked after every transition and by the contract.
"""
