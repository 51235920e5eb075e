"""Rollup batch encodings, bytes and L1 calldata gas per transfer (``layerlab.bench.rollup_codec``).

Run from the repository root: ``python benchmarks/bench_rollup_codec.py`` (or
``python -m layerlab.bench.rollup_codec``, as ``make bench`` does); writes
``benchmarks/results/rollup_codec.json``.
"""

from layerlab.bench.rollup_codec import main

if __name__ == "__main__":
    main()
