"""Benchmarks: deterministic workloads, load drivers and reference systems (py-evm, Hardhat)."""
