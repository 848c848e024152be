"""The edge-set relaxation: exact at 0/1 gates, the expected aggregation in between.

References are independent of the code under test: hookgnn's scatter on the subgraph
of kept edges (0/1 gates), and a brute-force expectation over all 2^E edge subsets
(soft gates), with its own autograd gradient.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import graphs

from hookgnn import Graph, HookedGNN, HookedMessagePassing
from hookgnn.metamers import EdgeSpace, MessageSite, find_sites, metamer, relaxed_aggregate
from hookgnn.ops import scatter

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


@SETTINGS
@given(graphs(max_nodes=6, max_edges=14, node_features=1, edge_features=None),
       st.sampled_from(["sum", "mean", "max", "min"]),
       st.integers(0, 2**31 - 1))
def test_relaxed_aggregate_at_binary_gates_is_the_aggregation_of_the_kept_edges(g, reduce, seed):
    gen = torch.Generator().manual_seed(seed)
    msg = torch.randn(g.num_edges, 3, generator=gen, dtype=torch.float64)
    msg[: g.num_edges // 3] = msg[0] if g.num_edges else msg[:0]  # ties
    keep = torch.rand(g.num_edges, generator=gen) < 0.5
    out = relaxed_aggregate(msg, keep.double(), g.edge_index[1], g.num_nodes, reduce)
    expected = scatter(msg[keep], g.edge_index[1][keep], g.num_nodes, reduce)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def brute_expectation(msg, gate, dst, num_nodes, reduce):
    """sum over all edge subsets S of P(S) * aggregation of S (independent Bernoulli edges)."""
    total = msg.new_zeros(num_nodes, msg.shape[1])
    for bits in itertools.product([0, 1], repeat=msg.shape[0]):
        keep = torch.tensor(bits, dtype=torch.bool)
        p = torch.where(keep, gate, 1 - gate).prod()
        total = total + p * scatter(msg[keep], dst[keep], num_nodes, reduce)
    return total


@SETTINGS
@given(st.integers(1, 7), st.integers(1, 3), st.sampled_from(["sum", "max", "min"]), st.integers(0, 2**31 - 1),
       st.booleans())
def test_relaxed_max_min_sum_are_the_expectation_over_random_edge_sets_with_its_gradient(num_edges, num_nodes,
                                                                                         reduce, seed, binary):
    gen = torch.Generator().manual_seed(seed)
    msg = torch.randn(num_edges, 2, generator=gen, dtype=torch.float64)
    dst = torch.randint(0, num_nodes, (num_edges,), generator=gen)
    gate = torch.rand(num_edges, generator=gen, dtype=torch.float64)
    gate[0] = 1.0  # a gate at exactly 1 (a zero factor in the product)
    if binary:  # 0/1 gates take the sort-free path; its gradients must still be the expectation's
        gate = (gate > 0.5).double()
        msg[-1] = msg[0]  # a tie
    g1, m1 = gate.clone().requires_grad_(), msg.clone().requires_grad_()
    g2, m2 = gate.clone().requires_grad_(), msg.clone().requires_grad_()
    ours = relaxed_aggregate(m1, g1, dst, num_nodes, reduce)
    brute = brute_expectation(m2, g2, dst, num_nodes, reduce)
    torch.testing.assert_close(ours, brute, rtol=1e-10, atol=1e-10)
    w = torch.randn(ours.shape, generator=gen, dtype=torch.float64)
    (ours * w).sum().backward()
    (brute * w).sum().backward()
    torch.testing.assert_close(g1.grad, g2.grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(m1.grad, m2.grad, rtol=1e-9, atol=1e-9)


def test_gate_gradient_at_binary_gates_is_the_effect_of_flipping_that_edge():
    msg = torch.tensor([[5.0], [3.0], [1.0]], dtype=torch.float64)
    dst = torch.zeros(3, dtype=torch.long)
    gate = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64, requires_grad=True)
    relaxed_aggregate(msg, gate, dst, 1, "max").sum().backward()
    # add edge 0: max 3 -> 5 (+2); remove edge 1: 3 -> 1 (-2); edge 2 loses to edge 1: 0
    assert gate.grad.tolist() == [2.0, 2.0, 0.0]


# ------------------------------------------------------------- structure recovery
class Copy(HookedMessagePassing):
    """h'_v = aggregation of h_u over in-edges (nothing else)."""

    def message(self, h_src, h_dst, edge_attr):
        return h_src

    def update(self, aggr, h):
        return aggr


def copy_model(n: int, aggr: str) -> HookedGNN:
    model = HookedGNN(lambda d: Copy(aggr=aggr), d_hidden=n, node_in=n, max_steps=1)
    with torch.no_grad():
        model.node_encoder.lin.weight.copy_(torch.eye(n))
        model.node_encoder.lin.bias.zero_()
    return model


def adjacency(g: Graph, n: int) -> torch.Tensor:
    a = torch.zeros(n, n, dtype=torch.bool)
    a[g.edge_index[0], g.edge_index[1]] = True
    return a


@pytest.mark.parametrize(("aggr", "sign"), [("max", 1.0), ("min", -1.0), ("sum", 1.0), ("mean", 1.0)])
def test_structure_search_recovers_the_unique_edge_set(aggr, sign):
    # x_u = sign * e_u: a node's aggregation is (+-) the indicator of its in-neighbours (sum,
    # max, min) or that indicator over the in-degree (mean), 0 without in-neighbours, so the
    # edge set is the only one with these activations.
    n = 7
    model = copy_model(n, aggr)
    adj = torch.rand(n, n, generator=torch.Generator().manual_seed(3)) < 0.3
    reference = Graph(x=sign * torch.eye(n), edge_index=adj.nonzero().t())
    res = metamer(model, reference, "layers.0.hook_update", features=None, structure=EdgeSpace(), num=3,
                  tol=1e-8, max_steps=300, lr=0.1, seed=1)
    assert bool(res.converged.all())
    for i in range(3):
        assert torch.equal(adjacency(res.graph(i), n), adj)
    assert not any(torch.equal(adjacency(s, n), adj) for s in res.starts.split())  # it had to move


def test_structure_search_with_kept_self_loops_symmetric_pairs_and_a_fixed_edge_count():
    n = 6
    model = copy_model(n, "max")
    upper = torch.triu(torch.rand(n, n, generator=torch.Generator().manual_seed(5)) < 0.4, diagonal=1)
    adj = upper | upper.t() | torch.eye(n, dtype=torch.bool)
    reference = Graph(x=torch.eye(n), edge_index=adj.nonzero().t())
    structure = EdgeSpace(num_edges=int(adj.sum()), keep="self_loops", symmetric=True)
    res = metamer(model, reference, "layers.0.hook_update", features=None, structure=structure, num=2,
                  tol=1e-8, max_steps=300, lr=0.1)
    for i in range(2):
        start = adjacency(res.starts.graph(i), n)
        assert int(start.sum()) == int(adj.sum()) and torch.equal(start, start.t()) and bool(start.diag().all())
        assert torch.equal(adjacency(res.graph(i), n), adj)


def test_find_sites_refuses_layers_that_read_the_edge_set_in_their_messages():
    for processor in ("gat", "triplet_gmpnn"):
        with pytest.raises(ValueError, match="edge_index"):
            find_sites(HookedGNN(processor, 8, node_in=1, max_steps=1))
    assert [s.reduce for s in find_sites(HookedGNN("pgn", 8, node_in=1, max_steps=2))] == ["max", "max"]


def test_relaxation_check_catches_a_model_that_reads_the_edge_count():
    # a model whose hook reads x (about 1 seed in 9 gives this tiny model a hook that is all zeros, or blind to x
    # once x >= 1 through a dead ReLU: then the edge count added to x is invisible and nothing can catch it)
    torch.manual_seed(0)
    model = HookedGNN("mpnn", 4, node_in=1, max_steps=1)

    def forward(graph):  # the edge count enters outside the aggregation
        return model(graph.replace(x=graph.x + graph.num_edges))

    reference = Graph(x=torch.zeros(4, 1), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    with pytest.raises(ValueError, match="not exact"):
        metamer(model, reference, "layers.0.hook_update", forward=forward, structure=EdgeSpace(), max_steps=2)


def test_explicit_sites_let_a_structure_search_run_on_chosen_rounds():
    model = copy_model(4, "max")
    sites = [MessageSite("layers.0.hook_message", "layers.0.hook_aggregation", "max")]
    reference = Graph(x=torch.eye(4), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    res = metamer(model, reference, "layers.0.hook_update", features=None, structure=EdgeSpace(), sites=sites,
                  tol=1e-8, max_steps=200, lr=0.1)
    assert torch.equal(adjacency(res.graph(0), 4), adjacency(reference, 4))
