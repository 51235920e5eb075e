"""The L1 peer-to-peer network: TCP framing, gossip of transactions, blocks and votes,
and chain sync from peers (on 127.0.0.1 in this lab)."""
