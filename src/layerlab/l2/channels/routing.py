"""Source routing over the channel graph: the cheapest route that can carry a payment.

The graph's nodes are addresses and its edges channels, each with the capacity known in
each direction (exact for our own channels, the total for others'). Every node that
forwards announces one fee policy (BOLT 7 ``channel_update``, here per node): a base fee
plus ``proportional_millionths`` of the forwarded amount, and a ``cltv_delta``, the blocks
it wants between the expiry of the lock it receives and the one it offers.

:func:`find_route` runs Dijkstra backwards from the target, as lnd does: walking from the
payee towards the payer, each step knows exactly how much the next node must forward, so
the fee a node charges is computed on the right amount and fees compound correctly (a
forward search would have to guess the downstream amounts). The label of a node is the
amount it must receive to get ``amount`` to the target; since a fee never decreases when
the forwarded amount grows, the smallest label is optimal (monotone costs keep Dijkstra
exact). A node may be reached again with fewer hops at a higher cost, so ``max_hops`` is
honoured exactly rather than by pruning a cheaper but longer path.

Timelocks follow BOLT 4: the last hop's lock expires at ``current_block +
min_final_delta`` (the payee's ``min_final_cltv_expiry_delta`` from its invoice) and each
earlier hop's expires ``cltv_delta`` blocks of the forwarding node later, so every
forwarder has time to claim upstream after it learns the preimage downstream.

Retries: when a hop fails, the caller adds that channel (or node) to ``exclude_edges`` /
``exclude_nodes`` and asks again.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from layerlab.errors import ChannelError
from layerlab.l2.channels.types import ChannelId
from layerlab.primitives.types import Address, BlockNumber, Wei

DEFAULT_MIN_FINAL_DELTA = 18
"""BOLT 11's default ``min_final_cltv_expiry_delta`` (``c`` field)."""
DEFAULT_CLTV_DELTA = 40
"""lnd's default ``time_lock_delta`` for a forwarding node."""
DEFAULT_MAX_HOPS = 20
"""BOLT 4's onion holds at most 20 hops (1300 bytes of 65-byte hop payloads)."""


class RoutingError(ChannelError):
    """A routing request or graph update is invalid."""


class NoRoute(RoutingError):
    """No route from source to target carries the amount under the given exclusions."""


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """What a node charges to forward (BOLT 7 ``fee_base_msat``,
    ``fee_proportional_millionths``, ``cltv_expiry_delta``)."""

    base_fee: Wei
    proportional_millionths: int
    cltv_delta: int

    def compute_fee(self, forwarded: Wei) -> Wei:
        """``base_fee + forwarded * proportional_millionths // 1_000_000`` (BOLT 7)."""
        return Wei(self.base_fee + forwarded * self.proportional_millionths // 1_000_000)


@dataclass(frozen=True, slots=True)
class GraphChannel:
    """An edge of the graph: a channel and what it can carry each way."""

    channel_id: ChannelId
    node_a: Address
    node_b: Address
    capacity_a_to_b: Wei
    capacity_b_to_a: Wei


@dataclass(frozen=True, slots=True)
class _Incoming:
    """A directed edge ``sender -> receiver`` indexed under its receiver."""

    channel: GraphChannel
    sender: Address
    capacity: Wei


@dataclass(frozen=True, slots=True)
class ChannelGraph:
    """Channels and fee policies; build with :func:`create_graph`, change with ``apply_*``."""

    channels: Mapping[ChannelId, GraphChannel]
    policies: Mapping[Address, FeePolicy]
    _incoming: Mapping[Address, tuple[_Incoming, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        incoming: dict[Address, list[_Incoming]] = {}
        for channel in self.channels.values():
            incoming.setdefault(channel.node_b, []).append(
                _Incoming(channel, channel.node_a, channel.capacity_a_to_b))
            incoming.setdefault(channel.node_a, []).append(
                _Incoming(channel, channel.node_b, channel.capacity_b_to_a))
        object.__setattr__(self, "_incoming", MappingProxyType(
            {node: tuple(edges) for node, edges in incoming.items()}))

    def get_incoming(self, node: Address) -> tuple[_Incoming, ...]:
        return self._incoming.get(node, ())


@dataclass(frozen=True, slots=True)
class Hop:
    """One channel of a route: ``sender`` offers ``receiver`` a lock of ``amount`` expiring
    at block ``expiry`` (BOLT 4 ``amt_to_forward`` / ``outgoing_cltv_value`` of the hop
    before). ``fee`` is what ``receiver`` keeps for forwarding (0 on the last hop)."""

    channel_id: ChannelId
    sender: Address
    receiver: Address
    amount: Wei
    expiry: BlockNumber
    fee: Wei


@dataclass(frozen=True, slots=True)
class Route:
    """Hops from source to target. The source locks ``total_amount`` on the first hop; the
    target receives ``amount``; forwarders keep ``total_fees``."""

    source: Address
    target: Address
    amount: Wei
    hops: tuple[Hop, ...]

    @property
    def total_amount(self) -> Wei:
        return self.hops[0].amount

    @property
    def total_fees(self) -> Wei:
        return Wei(self.total_amount - self.amount)

    @property
    def expiry(self) -> BlockNumber:
        """The first hop's lock expiry: the longest the source's funds may stay locked."""
        return self.hops[0].expiry


def validate_fee_policy(node: Address, policy: FeePolicy) -> None:
    if min(policy.base_fee, policy.proportional_millionths, policy.cltv_delta) < 0:
        raise RoutingError(f"fee policy of 0x{node.hex()} has a negative field: {policy}")


def validate_graph_channel(channel: GraphChannel) -> None:
    if channel.node_a == channel.node_b:
        raise RoutingError(f"channel 0x{channel.channel_id.hex()} joins 0x{channel.node_a.hex()} to itself")
    if min(channel.capacity_a_to_b, channel.capacity_b_to_a) < 0:
        raise RoutingError(f"channel 0x{channel.channel_id.hex()} has a negative capacity: "
                           f"{channel.capacity_a_to_b}, {channel.capacity_b_to_a}")


def create_graph(channels: Iterable[GraphChannel] = (),
                 policies: Mapping[Address, FeePolicy] | None = None) -> ChannelGraph:
    """A graph of these channels and node policies; a channel id may appear once."""
    by_id: dict[ChannelId, GraphChannel] = {}
    for channel in channels:
        validate_graph_channel(channel)
        if channel.channel_id in by_id:
            raise RoutingError(f"channel 0x{channel.channel_id.hex()} appears twice")
        by_id[channel.channel_id] = channel
    for node, policy in (policies or {}).items():
        validate_fee_policy(node, policy)
    return ChannelGraph(MappingProxyType(by_id), MappingProxyType(dict(policies or {})))


def apply_channel(graph: ChannelGraph, channel: GraphChannel) -> ChannelGraph:
    """Add a channel, or replace it (new capacities) if its id is known."""
    validate_graph_channel(channel)
    return ChannelGraph(MappingProxyType({**graph.channels, channel.channel_id: channel}), graph.policies)


def apply_channel_closed(graph: ChannelGraph, channel_id: ChannelId) -> ChannelGraph:
    kept = {cid: channel for cid, channel in graph.channels.items() if cid != channel_id}
    return ChannelGraph(MappingProxyType(kept), graph.policies)


def apply_policy(graph: ChannelGraph, node: Address, policy: FeePolicy) -> ChannelGraph:
    validate_fee_policy(node, policy)
    return ChannelGraph(graph.channels, MappingProxyType({**graph.policies, node: policy}))


@dataclass(frozen=True, slots=True)
class _Step:
    """A partial route from some node to the target: its first channel, what crosses it,
    and the rest."""

    edge: _Incoming
    receiver: Address
    amount: Wei
    rest: _Step | None


def find_route(graph: ChannelGraph, source: Address, target: Address, amount: Wei, *,
               current_block: BlockNumber, min_final_delta: int = DEFAULT_MIN_FINAL_DELTA,
               exclude_edges: Iterable[ChannelId] = (), exclude_nodes: Iterable[Address] = (),
               max_hops: int = DEFAULT_MAX_HOPS) -> Route:
    """The route with the lowest total fee that carries ``amount`` from ``source`` to
    ``target`` in at most ``max_hops`` channels, each channel having capacity, in its
    direction, for the amount plus the fees of the nodes after it. Ties go to the smaller
    total timelock, then to fewer hops. Raises :class:`NoRoute`.

    Forwarding nodes need a fee policy in the graph; excluded channels and nodes are
    skipped (excluding the source or target is an error)."""
    if amount <= 0:
        raise RoutingError(f"amount must be positive, got {amount}")
    if source == target:
        raise RoutingError(f"source and target are the same node 0x{source.hex()}")
    if max_hops < 1 or min_final_delta < 0:
        raise RoutingError(f"max_hops must be >= 1 and min_final_delta >= 0, got {max_hops}, "
                           f"{min_final_delta}")
    banned_edges = frozenset(exclude_edges)
    banned_nodes = frozenset(exclude_nodes)
    if source in banned_nodes or target in banned_nodes:
        raise RoutingError("the source or target of a route cannot be excluded")

    # heap entries: (amount the node must receive, timelock added so far, hops, tie, node, route)
    heap: list[tuple[int, int, int, int, Address, _Step | None]] = [(amount, 0, 0, 0, target, None)]
    fewest_hops: dict[Address, int] = {}
    counter = 0
    while heap:
        needed, delta, hops, _, node, path = heapq.heappop(heap)
        if fewest_hops.get(node, max_hops + 1) <= hops:
            continue  # reached before, cheaper and in no more hops
        fewest_hops[node] = hops
        if node == source and path is not None:
            return _build_route(graph, source, target, amount, path, current_block, min_final_delta)
        if hops == max_hops:
            continue
        for edge in graph.get_incoming(node):
            sender = edge.sender
            if edge.channel.channel_id in banned_edges or sender in banned_nodes or sender == target:
                continue
            if edge.capacity < needed or fewest_hops.get(sender, max_hops + 1) <= hops + 1:
                continue
            if sender == source:
                sender_needs, sender_delta = needed, delta
            else:
                policy = graph.policies.get(sender)
                if policy is None:
                    continue
                sender_needs = needed + policy.compute_fee(Wei(needed))
                sender_delta = delta + policy.cltv_delta
            counter += 1
            heapq.heappush(heap, (sender_needs, sender_delta, hops + 1, counter, sender,
                                  _Step(edge, node, Wei(needed), path)))
    raise NoRoute(f"no route from 0x{source.hex()} to 0x{target.hex()} for amount {amount} within "
                  f"{max_hops} hops ({len(banned_edges)} channels and {len(banned_nodes)} nodes excluded)")


def _build_route(graph: ChannelGraph, source: Address, target: Address, amount: Wei, path: _Step,
                 current_block: BlockNumber, min_final_delta: int) -> Route:
    steps: list[_Step] = []
    step: _Step | None = path
    while step is not None:
        steps.append(step)
        step = step.rest
    expiry = current_block + min_final_delta
    hops: list[Hop] = []
    next_amount = amount
    for step in reversed(steps):
        if step.receiver != target:
            expiry += graph.policies[step.receiver].cltv_delta
        hops.append(Hop(channel_id=step.edge.channel.channel_id, sender=step.edge.sender,
                        receiver=step.receiver, amount=step.amount, expiry=BlockNumber(expiry),
                        fee=Wei(step.amount - next_amount)))
        next_amount = step.amount
    return Route(source=source, target=target, amount=amount, hops=tuple(reversed(hops)))
