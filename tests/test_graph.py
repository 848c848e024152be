"""Graph batches: construction checks, collate/split round trips, conversions."""

import networkx as nx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hookgnn import Field, Graph


def _graph(n: int, edges: list[tuple[int, int]], seed: int = 0) -> Graph:
    gen = torch.Generator().manual_seed(seed)
    ei = torch.tensor(edges, dtype=torch.long).reshape(-1, 2).t()
    return Graph(
        x=torch.randn(n, 2, generator=gen),
        edge_index=ei,
        edge_attr=torch.randn(ei.shape[1], 1, generator=gen),
        fields={"h": Field(torch.randn(3, n, generator=gen), "node", time=True),
                "y": Field(torch.randn(ei.shape[1], generator=gen), "edge")},
    )


@st.composite
def small_graphs(draw) -> Graph:
    n = draw(st.integers(0, 6))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=10)) if n else []
    return _graph(n, edges, draw(st.integers(0, 1000)))


@given(st.lists(small_graphs(), min_size=1, max_size=4))
def test_collate_then_split_round_trips(graphs):
    batch = Graph.collate(graphs)
    assert batch.num_graphs == len(graphs)
    assert batch.num_nodes == sum(g.num_nodes for g in graphs)
    for g, back in zip(graphs, batch.split()):
        torch.testing.assert_close(back.x, g.x)
        torch.testing.assert_close(back.edge_index, g.edge_index)
        torch.testing.assert_close(back.edge_attr, g.edge_attr)
        torch.testing.assert_close(back["h"], g["h"])
        torch.testing.assert_close(back["y"], g["y"])


@given(st.lists(small_graphs(), min_size=1, max_size=4))
def test_collate_matches_networkx_disjoint_union(graphs):
    batch = Graph.collate(graphs)
    union = nx.disjoint_union_all([g.to_networkx() for g in graphs])
    ours = sorted(map(tuple, batch.edge_index.t().tolist()))
    assert ours == sorted((u, v) for u, v, _ in union.edges(keys=True))


def test_empty_graphs_isolated_nodes_self_loops_and_multi_edges_are_valid():
    g = _graph(3, [(0, 0), (1, 2), (1, 2)])
    empty = _graph(0, [])
    batch = Graph.collate([empty, g, empty])
    assert batch.ptr.tolist() == [0, 0, 3, 3]
    assert [s.num_nodes for s in batch.split()] == [0, 3, 0]


def test_time_fields_of_different_lengths_pad_with_the_last_step():
    a = Graph(x=torch.zeros(1, 1), edge_index=torch.zeros(2, 0, dtype=torch.long),
              fields={"h": Field(torch.tensor([[1.0], [2.0]]), "node", time=True)})
    b = a.with_fields(h=Field(torch.tensor([[5.0], [6.0], [7.0]]), "node", time=True))
    assert Graph.collate([a, b])["h"].tolist() == [[1.0, 5.0], [2.0, 6.0], [2.0, 7.0]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(edge_index=torch.tensor([[0, 3], [1, 1]])), r"edge_index\[0, 1\] = 3 is out of range for 3 nodes"),
        (dict(edge_index=torch.tensor([[0, 1], [1, -1]])), r"edge_index\[1, 1\] = -1 is out of range"),
        (dict(edge_index=torch.tensor([[0.0, 1.0], [1.0, 2.0]])), "integer tensor"),
        (dict(edge_index=torch.tensor([0, 1, 2])), r"shape \[2, E\]"),
        (dict(edge_attr=torch.zeros(3, 1)), "edge_attr has 3 rows but the graph has 2"),
        (dict(x=torch.tensor([[0.0], [float("nan")], [1.0]])), r"x contains nan \(first in row 1, column 0\)"),
        (dict(x=torch.tensor([[0.0], [float("inf")], [1.0]])), r"x contains inf \(first in row 1, column 0\)"),
        (dict(edge_attr=torch.tensor([[0.0], [-float("inf")]])), r"edge_attr contains -inf \(first in row 1"),
        (dict(graph_attr=torch.tensor([[float("inf")]])), r"graph_attr contains inf"),
        (dict(fields={"f": Field(torch.tensor([0.0, float("inf")]), "edge")}), r"field 'f' contains ±inf"),
        (dict(ptr=torch.tensor([0.0, 2.7, 3.0])), r"ptr must be an integer tensor .* got torch.float32"),
        (dict(batch=torch.tensor([0.0, 0.0, 1.0])), r"batch must be an integer tensor .* got torch.float32"),
        (dict(edge_attr=torch.zeros(2, 1, dtype=torch.float64)), r"edge_attr has dtype torch.float64 but x has torch.float32"),
        (dict(x=torch.zeros(3, 1, dtype=torch.long)), "x must be floating point"),
        (dict(x=torch.zeros(3)), "x must be a 2-D tensor"),
        (dict(graph_attr=torch.zeros(2, 1)), "graph_attr has 2 rows but the graph has 1"),
        (dict(ptr=torch.tensor([0, 2])), "ptr must be"),
        (dict(ptr=torch.tensor([0, 2, 1, 3])), "non-decreasing"),
        (dict(batch=torch.tensor([1, 0, 0])), "sorted"),
        (dict(ptr=torch.tensor([0, 1, 3]), edge_index=torch.tensor([[0], [1]])), r"edge 0 \(0 -> 1\) joins two graphs"),
        (dict(fields={"f": Field(torch.zeros(4), "node")}), "field 'f' on nodes has shape"),
        (dict(fields={"f": Field(torch.tensor([float("nan")] * 2), "edge")}), "field 'f' contains NaN"),
    ],
)
def test_malformed_graph_raises_value_error_naming_the_problem(kwargs, message):
    base = dict(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(ValueError, match=message):
        Graph(**{**base, **kwargs})


def test_batch_argument_builds_ptr():
    g = Graph(x=torch.zeros(4, 1), edge_index=torch.tensor([[0, 2], [1, 3]]), batch=torch.tensor([0, 0, 1, 1]))
    assert g.ptr.tolist() == [0, 2, 4] and g.edge_batch.tolist() == [0, 1]


def test_from_networkx_gives_both_directions_of_undirected_edges():
    nxg = nx.Graph()
    nxg.add_nodes_from([(0, {"a": 1.0}), (1, {"a": 2.0}), (2, {"a": 3.0})])
    nxg.add_edge(0, 1, w=0.5)
    nxg.add_edge(2, 2, w=1.5)
    g = Graph.from_networkx(nxg, node_attrs=["a"], edge_attrs=["w"])
    assert g.x.flatten().tolist() == [1.0, 2.0, 3.0]
    assert sorted(zip(g.edge_index[0].tolist(), g.edge_index[1].tolist(), g.edge_attr.flatten().tolist())) == [
        (0, 1, 0.5), (1, 0, 0.5), (2, 2, 1.5)]


def test_pyg_round_trip_keeps_structure():
    pytest.importorskip("torch_geometric")
    batch = Graph.collate([_graph(3, [(0, 1), (2, 2)]), _graph(2, [(1, 0)])])
    back = Graph.from_pyg(batch.to_pyg())
    torch.testing.assert_close(back.x, batch.x)
    torch.testing.assert_close(back.edge_index, batch.edge_index)
    torch.testing.assert_close(back.ptr, batch.ptr)
    torch.testing.assert_close(back.edge_attr, batch.edge_attr)


def test_graph_index_out_of_range_raises():
    with pytest.raises(IndexError, match="graph index 3 out of range for a batch of 1"):
        _graph(2, []).graph(3)


def test_replace_with_batch_rebuilds_ptr():
    g = Graph(x=torch.zeros(4, 1), edge_index=torch.tensor([[0, 2], [1, 3]]))
    assert g.replace(batch=torch.tensor([0, 0, 1, 1])).ptr.tolist() == [0, 2, 4]


@given(st.lists(small_graphs(), min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_split_equals_graph_i_when_edges_of_graphs_are_interleaved(graphs, rng):
    batch = Graph.collate(graphs)
    perm = list(range(batch.num_edges))
    rng.shuffle(perm)
    fields = {k: Field(f.value[..., perm] if f.location == "edge" else f.value, f.location, f.time)
              for k, f in batch.fields.items()}
    mixed = batch.replace(edge_index=batch.edge_index[:, perm], edge_attr=batch.edge_attr[perm], fields=fields)
    for i, part in enumerate(mixed.split()):
        ref = mixed.graph(i)  # masks over the whole batch: the plain reference
        for a, b in ((part.x, ref.x), (part.edge_index, ref.edge_index), (part.edge_attr, ref.edge_attr),
                     (part.ptr, ref.ptr), (part.batch, ref.batch), (part["h"], ref["h"]), (part["y"], ref["y"])):
            assert torch.equal(a, b)
