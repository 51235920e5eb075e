"""eth_blobBaseFee's formula against EIP-4844's own pseudo-code, beyond the devnet's zero excess."""

from __future__ import annotations

import pytest

from layerlab.l1.blobs import compute_blob_base_fee


def fake_exponential(factor: int, numerator: int, denominator: int) -> int:
    """EIP-4844's pseudo-code, verbatim in meaning."""
    i, output, numerator_accum = 1, 0, factor * denominator
    while numerator_accum > 0:
        output += numerator_accum
        numerator_accum = (numerator_accum * numerator) // (denominator * i)
        i += 1
    return output // denominator


@pytest.mark.parametrize("excess", [0, 131072, 393216, 3338477, 10 * 3338477, 2**27 + 5])
def test_blob_base_fee_is_eip4844_fake_exponential(excess: int) -> None:
    assert compute_blob_base_fee(excess) == fake_exponential(1, excess, 3338477)


def test_blob_base_fee_grows_by_e_per_update_fraction() -> None:
    assert compute_blob_base_fee(0) == 1  # MIN_BASE_FEE_PER_BLOB_GAS
    assert compute_blob_base_fee(3338477 * 20) == fake_exponential(1, 3338477 * 20, 3338477)
    assert 4.8e8 < compute_blob_base_fee(3338477 * 20) < 4.9e8  # e**20 = 4.85e8
