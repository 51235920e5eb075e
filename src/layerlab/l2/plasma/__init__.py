"""Plasma: a UTXO child chain committed to the L1, kept safe by its exit game."""
