"""PeerDAS sampling (EIP-7594) with real c-kzg cells: custody by the spec's rule, columns
that verify, recovery from half, and a sampling node that refuses withheld or forged data."""

from __future__ import annotations

import hashlib
import random

import pytest

from layerlab.errors import InvalidBlock
from layerlab.l1 import das
from layerlab.l1.das import (
    NUMBER_OF_COLUMNS,
    DasNetwork,
    DataColumn,
    DataUnavailable,
    extend_blobs,
    fooled_probability,
    get_custody_groups,
    recover_columns,
    verify_column,
)


def make_blob(seed: int) -> bytes:
    rng = random.Random(seed)
    return b"".join(b"\x00" + rng.randbytes(31) for _ in range(4096))


@pytest.fixture(scope="module")
def data() -> das.ExtendedData:
    return extend_blobs([make_blob(1), make_blob(2)])


@pytest.fixture(scope="module")
def other() -> das.ExtendedData:
    return extend_blobs([make_blob(3), make_blob(4)])


# -- custody -----------------------------------------------------------------------------------
def test_custody_groups_match_the_spec_vector() -> None:
    # consensus-spec-tests fulu/networking/get_custody_groups: node_id 1048576, count 1 -> [65]
    assert get_custody_groups(1048576, 1) == [65]
    assert get_custody_groups(7, 128) == list(range(128))
    assert get_custody_groups(7, 0) == []
    with pytest.raises(ValueError):
        get_custody_groups(7, 129)


def test_custody_id_wraps_at_uint256_max() -> None:
    def group(i: int) -> int:
        return int.from_bytes(hashlib.sha256(i.to_bytes(32, "little")).digest()[:8], "little") % 128

    groups = get_custody_groups(das.UINT256_MAX, 2)
    assert groups == sorted({group(das.UINT256_MAX), group(0)})
    assert len(set(get_custody_groups(12345, 4))) == 4


# -- columns -----------------------------------------------------------------------------------
def test_every_column_verifies_and_a_foreign_one_does_not(data: das.ExtendedData,
                                                          other: das.ExtendedData) -> None:
    assert len(data.columns) == NUMBER_OF_COLUMNS
    assert all(verify_column(c, data.commitments) for c in data.columns[::16])
    assert not verify_column(other.columns[5], data.commitments)  # another block's column
    moved = DataColumn(6, data.columns[5].cells, data.columns[5].proofs)
    assert not verify_column(moved, data.commitments)  # a cell presented at another index
    short = DataColumn(5, data.columns[5].cells[:1], data.columns[5].proofs[:1])
    assert not verify_column(short, data.commitments)


def test_any_half_of_the_columns_recovers_the_rest(data: das.ExtendedData) -> None:
    rng = random.Random(9)
    half = rng.sample(range(NUMBER_OF_COLUMNS), NUMBER_OF_COLUMNS // 2)
    recovered = recover_columns([data.columns[j] for j in half], len(data.commitments))
    assert recovered == data.columns
    with pytest.raises(DataUnavailable):
        recover_columns([data.columns[j] for j in half[:-1]], len(data.commitments))


def test_fooled_probability_is_the_hypergeometric_tail() -> None:
    # k samples all avoid w withheld of 128: prod_{i<k} (128 - w - i) / (128 - i)
    expected = 1.0
    for i in range(8):
        expected *= (128 - 64 - i) / (128 - i)
    assert fooled_probability(64, 8) == pytest.approx(expected)
    assert fooled_probability(64, 8) < 2**-8
    assert fooled_probability(0, 8) == 1.0 and fooled_probability(121, 8) == 0.0


# -- the network -------------------------------------------------------------------------------
def test_an_honest_block_is_accepted_by_every_sampler_for_a_fraction_of_its_bytes(
        data: das.ExtendedData) -> None:
    net = DasNetwork(24, seed=1)
    net.publish(data)
    full = sum(c.size for c in data.columns)
    for node in net.nodes[1:]:
        result = net.accept(node)
        assert len(result.checked) == 12  # 4 custody columns and 8 samples
        assert 0 < result.bytes_downloaded <= 8 * data.columns[0].size < full // 10


def test_withholding_more_than_half_is_refused_by_every_sampler(data: das.ExtendedData) -> None:
    # 65 withheld: the 63 left cannot recover the block, so sampling is the only defence
    withheld = set(random.Random(2).sample(range(NUMBER_OF_COLUMNS), 65))
    net = DasNetwork(24, seed=2)
    net.publish(data, withheld)
    assert net.reconstruct() == 0
    results = [net.sample(node) for node in net.nodes[1:]]
    for result in results:
        assert set(result.missing) == set(result.checked) & withheld
        assert result.accepted == (not set(result.checked) & withheld)
    assert not any(r.accepted for r in results)
    with pytest.raises(DataUnavailable) as info:
        net.accept(net.nodes[1])
    assert info.value.check == "data-unavailable" and info.value.missing


def test_withholding_half_or_less_is_healed_by_reconstruction(data: das.ExtendedData) -> None:
    withheld = set(range(0, NUMBER_OF_COLUMNS, 2))  # 64 columns: the other 64 recover them
    net = DasNetwork(24, seed=3)
    net.publish(data, withheld)
    before = [net.sample(node) for node in net.nodes[1:]]
    assert any(not r.accepted for r in before)
    assert net.reconstruct() > 0
    assert all(net.sample(node).accepted for node in net.nodes[1:])


def test_forged_cells_from_peers_are_not_taken_for_data(data: das.ExtendedData) -> None:
    net = DasNetwork(24, seed=4)
    net.publish(data)
    sampler = net.nodes[5]
    for node in net.nodes:
        node.tampers = node is not sampler  # every peer answers with a corrupted cell
    result = net.sample(sampler)
    sampled = set(result.checked) - set(sampler.custody)
    assert set(result.invalid) == sampled and not result.accepted
    # one honest custodian of each column is enough
    net.nodes[0].tampers = False  # the supernode
    assert net.sample(sampler).accepted


def test_random_blob_bytes_must_be_canonical_field_elements() -> None:
    with pytest.raises(InvalidBlock, match="blob 0"):  # an element >= the BLS12-381 modulus
        extend_blobs([b"\xff" * 32 * 4096])
    with pytest.raises(InvalidBlock, match="blob 1"):
        extend_blobs([make_blob(1), b"\x00" * 100])


def test_extension_from_given_cell_proofs_equals_the_computed_one(data: das.ExtendedData) -> None:
    """EIP-7594 wrappers carry the cell proofs: the columns built from them and the blobs'
    cells are those computed from scratch."""
    import ckzg

    from layerlab.l1.blobs import get_trusted_setup

    blobs_ = [make_blob(1), make_blob(2)]
    proofs = [[bytes(p) for p in ckzg.compute_cells_and_kzg_proofs(b, get_trusted_setup())[1]]
              for b in blobs_]
    fast = das.extend_blobs_with_proofs(blobs_, data.commitments, proofs)
    assert fast == data
    with pytest.raises(InvalidBlock, match="do not match"):
        das.extend_blobs_with_proofs(blobs_, data.commitments, [proofs[0], proofs[1][:127]])
