"""Shared fixtures: real node processes on 127.0.0.1 and web3 clients bound to them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3

from tests.nodeproc import NodeProcess


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    """One in-memory automining node process per test module."""
    with NodeProcess() as proc:
        yield proc


@pytest.fixture(scope="module")
def w3(node: NodeProcess) -> Web3:
    return Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
