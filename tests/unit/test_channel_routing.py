"""Routing over the channel graph: cheapest by fees compounded backwards, capacity per
direction, BOLT 4 timelocks, retries by exclusion, and a brute-force cross-check."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.l2.channels.routing import (
    ChannelGraph,
    FeePolicy,
    GraphChannel,
    Hop,
    NoRoute,
    RoutingError,
    apply_channel,
    apply_channel_closed,
    apply_policy,
    create_graph,
    find_route,
)
from layerlab.l2.channels.types import ChannelId
from layerlab.primitives.types import Address, BlockNumber, Wei

BLOCK = BlockNumber(1000)


def node(name: str) -> Address:
    return Address(name.encode().ljust(20, b"\x00"))


def cid(name: str) -> ChannelId:
    return ChannelId(name.encode().ljust(32, b"\x00"))


S, A, B, C, T = (node(n) for n in "SABCT")


def channel(name: str, x: Address, y: Address, x_to_y: int = 10**6, y_to_x: int = 10**6) -> GraphChannel:
    return GraphChannel(cid(name), x, y, Wei(x_to_y), Wei(y_to_x))


def policy(base: int, ppm: int, delta: int = 40) -> FeePolicy:
    return FeePolicy(Wei(base), ppm, delta)


def diamond(**capacities: int) -> ChannelGraph:
    """S-A-T (cheap) and S-B-T (dearer)."""
    return create_graph(
        [channel("SA", S, A, capacities.get("SA", 10**6)), channel("AT", A, T, capacities.get("AT", 10**6)),
         channel("SB", S, B), channel("BT", B, T)],
        {A: policy(1, 1000), B: policy(5, 5000)})


def test_fees_compound_backwards_and_timelocks_decrease() -> None:
    graph = create_graph([channel("SA", S, A), channel("AB", A, B), channel("BT", B, T)],
                         {A: policy(10, 10_000, 30), B: policy(5, 20_000, 50)})
    route = find_route(graph, S, T, Wei(1000), current_block=BLOCK, min_final_delta=18)
    # B forwards 1000 and keeps 5 + 2% = 25; A forwards 1025 and keeps 10 + 1% of 1025 = 20.
    assert route.hops == (
        Hop(cid("SA"), S, A, Wei(1045), BlockNumber(BLOCK + 18 + 50 + 30), Wei(20)),
        Hop(cid("AB"), A, B, Wei(1025), BlockNumber(BLOCK + 18 + 50), Wei(25)),
        Hop(cid("BT"), B, T, Wei(1000), BlockNumber(BLOCK + 18), Wei(0)),
    )
    assert (route.amount, route.total_amount, route.total_fees) == (1000, 1045, 45)
    assert route.expiry == BLOCK + 98


def test_cheapest_route_wins_even_if_longer() -> None:
    graph = create_graph(
        [channel("ST", S, C), channel("CT", C, T), channel("SA", S, A), channel("AB", A, B),
         channel("BT", B, T)],
        {C: policy(100, 0), A: policy(1, 0), B: policy(1, 0)})
    route = find_route(graph, S, T, Wei(500), current_block=BLOCK)
    assert [hop.receiver for hop in route.hops] == [A, B, T]
    assert route.total_fees == 2
    short = find_route(graph, S, T, Wei(500), current_block=BLOCK, max_hops=2)
    assert [hop.receiver for hop in short.hops] == [C, T] and short.total_fees == 100


def test_capacity_must_cover_amount_plus_downstream_fees() -> None:
    # through A, S must lock 1000 + 1 + 1 = 1002 on SA
    assert find_route(diamond(SA=1002), S, T, Wei(1000), current_block=BLOCK).hops[0].receiver == A
    route = find_route(diamond(SA=1001), S, T, Wei(1000), current_block=BLOCK)
    assert route.hops[0].receiver == B and route.total_fees == 10
    assert find_route(diamond(AT=999), S, T, Wei(1000), current_block=BLOCK).hops[0].receiver == B


def test_capacity_is_per_direction() -> None:
    graph = create_graph([channel("ST", S, T, x_to_y=10, y_to_x=10**9)])
    assert find_route(graph, S, T, Wei(10), current_block=BLOCK).total_amount == 10
    with pytest.raises(NoRoute):
        find_route(graph, S, T, Wei(11), current_block=BLOCK)
    assert find_route(graph, T, S, Wei(10**9), current_block=BLOCK).total_amount == 10**9


def test_retry_excluding_the_failed_channel_or_node_takes_another_route() -> None:
    graph = diamond()
    first = find_route(graph, S, T, Wei(1000), current_block=BLOCK)
    assert [hop.channel_id for hop in first.hops] == [cid("SA"), cid("AT")]
    retry = find_route(graph, S, T, Wei(1000), current_block=BLOCK, exclude_edges=[cid("AT")])
    assert [hop.channel_id for hop in retry.hops] == [cid("SB"), cid("BT")]
    assert retry.total_fees > first.total_fees
    assert find_route(graph, S, T, Wei(1000), current_block=BLOCK, exclude_nodes=[A]).hops[0].receiver == B
    with pytest.raises(NoRoute, match="2 channels and 0 nodes excluded"):
        find_route(graph, S, T, Wei(1000), current_block=BLOCK, exclude_edges=[cid("AT"), cid("SB")])


def test_parallel_channels_are_distinct_edges() -> None:
    graph = create_graph([channel("ST1", S, T, 100), channel("ST2", S, T, 5000)])
    assert find_route(graph, S, T, Wei(50), current_block=BLOCK).total_fees == 0
    route = find_route(graph, S, T, Wei(1000), current_block=BLOCK)
    assert route.hops[0].channel_id == cid("ST2")
    retry = find_route(graph, S, T, Wei(50), current_block=BLOCK, exclude_edges=[cid("ST1")])
    assert retry.hops[0].channel_id == cid("ST2")


def test_no_route_and_bad_requests() -> None:
    graph = diamond()
    with pytest.raises(NoRoute, match="for amount 2000000"):
        find_route(graph, S, T, Wei(2 * 10**6), current_block=BLOCK)
    with pytest.raises(NoRoute):
        find_route(graph, S, C, Wei(1), current_block=BLOCK)
    with pytest.raises(RoutingError, match="positive"):
        find_route(graph, S, T, Wei(0), current_block=BLOCK)
    with pytest.raises(RoutingError, match="same node"):
        find_route(graph, S, S, Wei(1), current_block=BLOCK)
    with pytest.raises(RoutingError, match="cannot be excluded"):
        find_route(graph, S, T, Wei(1), current_block=BLOCK, exclude_nodes=[T])


def test_nodes_without_a_policy_do_not_forward() -> None:
    graph = create_graph([channel("SA", S, A), channel("AT", A, T)])
    with pytest.raises(NoRoute):
        find_route(graph, S, T, Wei(1), current_block=BLOCK)
    routed = apply_policy(graph, A, policy(0, 0, 7))
    assert find_route(routed, S, T, Wei(1), current_block=BLOCK).expiry == BLOCK + 18 + 7


def test_graph_updates() -> None:
    graph = diamond()
    graph = apply_channel(graph, channel("SA", S, A, 1))
    assert find_route(graph, S, T, Wei(1000), current_block=BLOCK).hops[0].receiver == B
    graph = apply_channel_closed(graph, cid("SB"))
    with pytest.raises(NoRoute):
        find_route(graph, S, T, Wei(1000), current_block=BLOCK)
    with pytest.raises(RoutingError, match="appears twice"):
        create_graph([channel("X", S, A), channel("X", A, T)])
    with pytest.raises(RoutingError, match="to itself"):
        create_graph([channel("X", S, S)])
    with pytest.raises(RoutingError, match="negative"):
        create_graph([], {A: policy(-1, 0)})


# ------------------------------------------------------------------ brute-force cross-check

NODES = [node(f"n{i}") for i in range(6)]


def brute_force_fee(graph: ChannelGraph, source: Address, target: Address, amount: int,
                    max_hops: int) -> int | None:
    """The lowest total fee over every simple path, computed backwards; None if none fits."""
    best: int | None = None
    channels = list(graph.channels.values())
    others = [n for n in NODES if n not in (source, target)]
    for length in range(0, max_hops):
        for middle in itertools.permutations(others, length):
            path = [source, *middle, target]
            needed = amount
            fits = True
            for hop in range(len(path) - 2, -1, -1):
                sender, receiver = path[hop], path[hop + 1]
                capacities = [c.capacity_a_to_b if c.node_a == sender else c.capacity_b_to_a
                              for c in channels if {c.node_a, c.node_b} == {sender, receiver}]
                if not capacities or max(capacities) < needed:
                    fits = False
                    break
                if sender != source:
                    needed += graph.policies[sender].compute_fee(Wei(needed))
            if fits and (best is None or needed - amount < best):
                best = needed - amount
    return best


@st.composite
def graphs(draw: st.DrawFn) -> ChannelGraph:
    direct = draw(st.booleans())
    pairs = draw(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)).filter(
        lambda p: p[0] != p[1] and (direct or {p[0], p[1]} != {0, 1})), min_size=3, max_size=14))
    capacity = st.one_of(st.integers(0, 3000), st.just(10**6))
    channels = [GraphChannel(cid(f"c{i}"), NODES[x], NODES[y], Wei(draw(capacity)), Wei(draw(capacity)))
                for i, (x, y) in enumerate(pairs)]
    policies = {n: FeePolicy(Wei(draw(st.integers(0, 50))), draw(st.integers(0, 200_000)),
                             draw(st.integers(0, 50))) for n in NODES}
    return create_graph(channels, policies)


@settings(max_examples=300, deadline=None)
@given(graph=graphs(), amount=st.integers(1, 2000), max_hops=st.integers(1, 5))
def test_matches_brute_force(graph: ChannelGraph, amount: int, max_hops: int) -> None:
    source, target = NODES[0], NODES[1]
    expected = brute_force_fee(graph, source, target, amount, max_hops)
    try:
        route = find_route(graph, source, target, Wei(amount), current_block=BLOCK, max_hops=max_hops)
    except NoRoute:
        assert expected is None
        return
    assert route.total_fees == expected
    assert len(route.hops) <= max_hops
    assert route.hops[0].sender == source and route.hops[-1].receiver == target
    assert route.hops[-1].amount == amount and route.hops[-1].expiry == BLOCK + 18
    for hop, after in itertools.pairwise(route.hops):
        assert hop.receiver == after.sender
        forwarder = graph.policies[hop.receiver]
        assert hop.amount == after.amount + forwarder.compute_fee(after.amount) == after.amount + hop.fee
        assert hop.expiry == after.expiry + forwarder.cltv_delta
    for hop in route.hops:
        edge = graph.channels[hop.channel_id]
        capacity = edge.capacity_a_to_b if edge.node_a == hop.sender else edge.capacity_b_to_a
        assert {edge.node_a, edge.node_b} == {hop.sender, hop.receiver} and hop.amount <= capacity
