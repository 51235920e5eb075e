"""The JSON-RPC method table: every namespace module's methods, bound to one node.

Each namespace (:mod:`~layerlab.l1.rpc.eth`, :mod:`~layerlab.l1.rpc.net` for ``net_`` and
``web3_``, :mod:`~layerlab.l1.rpc.debug`, :mod:`~layerlab.l1.rpc.txpool`,
:mod:`~layerlab.l1.rpc.dev` for ``evm_``/``anvil_``/``hardhat_``, :mod:`~layerlab.l1.rpc.admin`
for ``admin_``/``layerlab_``) registers its own methods; what they share lives in
:mod:`~layerlab.l1.rpc.common`. Methods take the raw JSON params and parse them with
:mod:`layerlab.l1.rpc.codec`, so a wrong type becomes error -32602 naming the parameter.
Semantics follow the Ethereum execution-apis spec and, for dev methods, Anvil and Hardhat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from layerlab.l1.node import Node
from layerlab.l1.rpc.admin import AdminApi
from layerlab.l1.rpc.common import Namespace
from layerlab.l1.rpc.debug import DebugApi
from layerlab.l1.rpc.dev import DevApi
from layerlab.l1.rpc.eth import EthApi
from layerlab.l1.rpc.net import NetApi
from layerlab.l1.rpc.txpool import TxpoolApi

NAMESPACES: tuple[type[Namespace], ...] = (EthApi, NetApi, DebugApi, TxpoolApi, DevApi, AdminApi)


def rpc_functions() -> dict[str, Callable[..., Any]]:
    """Every RPC method name -> its unbound function (the table without a node)."""
    out: dict[str, Callable[..., Any]] = {}
    for cls in NAMESPACES:
        out.update(cls.rpc_functions())
    return out


class RpcApi:
    """RPC methods bound to one :class:`Node`: one instance of each namespace."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.namespaces = [cls(node) for cls in NAMESPACES]
        self.methods: dict[str, Callable[..., Any]] = {}
        for namespace in self.namespaces:
            self.methods.update(namespace.methods())
