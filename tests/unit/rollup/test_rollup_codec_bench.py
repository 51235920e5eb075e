"""The codec benchmark builds batches that really apply and reports what it measured."""

from __future__ import annotations

import json
from pathlib import Path

from layerlab.bench.rollup_codec import build_batch, calldata_gas, main
from layerlab.l2.rollup.codec import encode_inbox


def test_calldata_gas_is_eip_2028() -> None:
    assert calldata_gas(b"\x00\x01\x00\xff") == 4 + 16 + 4 + 16


def test_the_batches_are_what_the_docstring_says() -> None:
    steps, state = build_batch(40, 0.8, "round")
    assert len(state.owners) == 50 and len(steps) == 40
    assert len(encode_inbox(steps)) == 40 * 132


def test_the_report_has_every_form_and_the_compact_form_wins(tmp_path: Path) -> None:
    out = tmp_path / "rollup_codec.json"
    report = main(["--sizes", "32", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert len(report["results"]) == 4
    for row in report["results"]:
        forms = row["forms"]
        assert forms["inbox"]["bytes_per_transfer"] == 132
        assert forms["compact"]["bytes"] < forms["zlib(inbox)"]["bytes"] < forms["inbox"]["bytes"]
        assert forms["compact"]["bytes_per_transfer"] > 64  # r||s is the floor
