"""Network and consensus: geth's ``admin_*`` peer methods and the ``layerlab_*`` ones
(PoS validators, slashing evidence, block arrival times, node status).
"""

from __future__ import annotations

from typing import Any

from layerlab.l1.consensus.beacon import PosEngine
from layerlab.l1.consensus.merge import pos_of
from layerlab.l1.rpc.codec import InvalidParams, hex_data, parse_data
from layerlab.l1.rpc.common import Namespace
from layerlab.orchestration import ServiceError, parse_peer_address


class AdminApi(Namespace):
    prefixes = ("admin", "layerlab")

    def _network(self) -> Any:
        if self.node.network is None:
            raise InvalidParams("this node runs without a p2p network (start it with --p2p-port)")
        return self.node.network

    @staticmethod
    def _peer_address(addr: Any) -> tuple[str, int]:
        try:
            return parse_peer_address(addr)
        except ServiceError as exc:
            raise InvalidParams(str(exc)) from exc

    def admin_peers(self) -> list[dict[str, Any]]:
        return list(self._network().status())

    def admin_nodeInfo(self) -> dict[str, Any]:
        net = self._network()
        return {"id": net.node_id.hex(), "listenAddr": f"{net.host}:{net.port}"}

    def admin_addPeer(self, addr: Any) -> bool:
        self._network().add_peer(*self._peer_address(addr))
        return True

    def admin_removePeer(self, addr: Any) -> bool:
        return bool(self._network().remove_peer(*self._peer_address(addr)))

    def _pos(self) -> PosEngine:
        pos_engine = pos_of(self.node.engine)
        if pos_engine is None:
            raise InvalidParams("this chain is not (yet) running proof of stake")
        return pos_engine

    def layerlab_validators(self) -> list[dict[str, Any]]:
        """The PoS validator registry at the head: balances, activation, exits, slashings."""
        return list(self._pos().validators())

    def layerlab_submitSlashing(self, evidence: Any) -> bool:
        """Submit slashing evidence (two conflicting signed blocks or votes, encoded as a
        consensus body); anyone may, as on the beacon chain. Gossiped if it is new."""
        from layerlab.l1.consensus.beacon import decode_slashing, encode_slashing

        item = decode_slashing(parse_data(evidence))
        new = bool(self._pos().on_slashing(item))
        if new and self.node.network is not None:
            self.node.network.broadcast_vote(6, encode_slashing(item))
        return new

    def layerlab_blockArrivals(self) -> dict[str, float]:
        """When this node first saw each recent block (unix seconds): built here or received.
        Nodes on one machine share a clock, so comparing nodes gives propagation times."""
        network = self._network()
        return {hex_data(h): t for h, t in list(network.block_arrival.items())[-2000:]}

    def layerlab_status(self) -> dict[str, Any]:
        """Head, finality, peers and fork statistics (what ``layerlab net status`` shows)."""
        node = self.node
        head = node.head
        out: dict[str, Any] = {
            "head": {"number": head.block_number, "hash": hex_data(head.hash),
                     "timestamp": head.timestamp},
            "consensus": "dev", "pending": len(node.pool),
            "reorgs": len(node.reorgs), "maxReorgDepth": max((d for d, _ in node.reorgs), default=0),
        }
        if node.engine is not None:
            out.update(node.engine.status())
            fin = node.engine.finality(head)
            out["finalized"] = {"kind": fin.kind, "number": fin.number,
                                "hash": hex_data(fin.block_hash) if fin.block_hash else None,
                                **fin.detail}
        if node.network is not None:
            out["peers"] = len(node.network.peers)
            out["p2p"] = {**node.network.stats, "port": node.network.port}
        if node.producer is not None:
            out["producer"] = node.producer.status()
        return out
