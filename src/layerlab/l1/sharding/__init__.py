"""Execution shards (issue 16): S shard chains, each a devnet node process of its own,
coordinated by a beacon chain that shuffles validators into shard committees, records
their BLS-signed crosslinks and finalizes them with Casper FFG.

- :mod:`.committees` — shard committees per epoch (phase0 shuffle, own seed domain);
- :mod:`.crosslink` — shard headers, crosslinks, fraud proofs and the beacon block
  transition (pure);
- :mod:`.chain` — the coordinator's beacon chain (devnet validator keys, honest duties);
- :mod:`.replay` — py-evm re-execution of shard blocks (fraud-proof verification);
- :mod:`.coordinator` — the beacon process: reads shard heads, crosslinks, relays;
- :mod:`.network` — ``layerlab net up --shards S``, ``status``, ``down``;
- :mod:`.crossshard` — the cross-shard transfer contract and its Python API.
"""
