"""Consensus engines: proof of work, proof of stake, and the PoW->PoS fork between them.

Consensus decides which blocks are valid to build on and which chain is canonical; it never
executes transactions (``l1/chain`` does) and never touches sockets (``l1/p2p`` does).
"""
