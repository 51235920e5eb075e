"""Proof of work's pure rules: difficulty retargeting and the Bitcoin paper's attack odds.

Seals, fork choice and reorgs on in-process nodes are in tests/integration/test_pow_node.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from layerlab.l1.consensus.pow import MINIMAL, attacker_success_probability, next_difficulty


# -- retargeting -------------------------------------------------------------------------
def test_difficulty_rises_when_blocks_come_fast_and_falls_when_slow() -> None:
    d = 20_000
    assert next_difficulty(MINIMAL, d, 100, 101) == d + d // MINIMAL.adjustment_quotient
    assert next_difficulty(MINIMAL, d, 100, 102) == d  # on target
    assert next_difficulty(MINIMAL, d, 100, 106) < d
    assert next_difficulty(MINIMAL, d, 100, 100 + 10_000) == max(
        d - 99 * (d // MINIMAL.adjustment_quotient), MINIMAL.min_difficulty)


@given(st.integers(1, 10**12), st.integers(0, 10**6), st.integers(1, 10**6))
def test_difficulty_never_below_floor(parent: int, ts: int, gap: int) -> None:
    assert next_difficulty(MINIMAL, parent, ts, ts + gap) >= MINIMAL.min_difficulty


def test_retarget_converges_toward_target_time() -> None:
    """A miner of fixed hash rate: block time = difficulty / rate; the rule pulls it to 2 s."""
    rate, d, ts = 50_000, MINIMAL.initial_difficulty, 0
    times = []
    for _ in range(400):
        gap = max(1, round(d / rate))
        d = next_difficulty(MINIMAL, d, ts, ts + gap)
        ts += gap
        times.append(gap)
    assert 1 <= sum(times[-100:]) / 100 <= 3


def test_nakamoto_probabilities() -> None:
    """Values from the table in section 11 of the Bitcoin paper."""
    assert attacker_success_probability(0.1, 5) == pytest.approx(0.0009137, rel=1e-3)
    assert attacker_success_probability(0.3, 10) == pytest.approx(0.0416605, rel=1e-3)
    assert attacker_success_probability(0.5, 100) == 1.0
