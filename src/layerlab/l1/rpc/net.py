"""The ``net_`` and ``web3_`` namespaces: client version, keccak, network id and peers.

``net_version`` is the chain id in decimal (what geth answers once the network id equals
the chain id, as on every post-EIP-155 network).
"""

from __future__ import annotations

from typing import Any

from eth_hash.auto import keccak

from layerlab import __version__
from layerlab.l1.rpc.codec import hex_data, hex_int, parse_data
from layerlab.l1.rpc.common import Namespace


class NetApi(Namespace):
    prefixes = ("net", "web3")

    # -- web3 / net ----------------------------------------------------------------------
    def web3_clientVersion(self) -> str:
        return f"layerlab/v{__version__}/py-evm"

    def web3_sha3(self, data: Any) -> str:
        return hex_data(keccak(parse_data(data)))

    def net_version(self) -> str:
        return str(self.node.config.chain_id)

    def net_listening(self) -> bool:
        return True

    def net_peerCount(self) -> str:
        network = self.node.network
        return hex_int(len(network.peers) if network is not None else 0)
