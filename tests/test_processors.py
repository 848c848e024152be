"""Every processor against a naive per-node / per-edge loop, plus hooks and gradients.

Each reference below recomputes a layer's output from the layer's own parameters with
plain Python loops: for every node ``v``, for every incoming edge ``u -> v``, the
message; then an explicit max / min / sum / softmax (0 for a node without in-edges).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strategies import batches, graphs
from torch import Tensor, nn

from hookgnn.graph import Graph
from hookgnn.models.gnn import HookedGNN
from hookgnn.nn import GAT, GINE, MPNN, PGN, PROCESSORS, HookedMLP, MinAgg, TripletGMPNN, triplet_index

D = 4
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- helpers
def lin(layer: nn.Linear, v: Tensor) -> Tensor:
    return layer.weight @ v + (0 if layer.bias is None else layer.bias)


def mlp(m: HookedMLP, v: Tensor) -> Tensor:
    return lin(m.lin_out, torch.relu(lin(m.lin_in, v)))


def reduce_vectors(vectors: list[Tensor], how: str, width: int) -> Tensor:
    """Explicit elementwise max / min / sum of a list of vectors; zeros when empty."""
    if not vectors:
        return torch.zeros(width, dtype=torch.float64)
    op = {"max": torch.maximum, "min": torch.minimum, "sum": torch.add}[how]
    return functools.reduce(op, vectors)


def incoming(edge_index: Tensor, v: int) -> list[int]:
    return [e for e in range(edge_index.shape[1]) if int(edge_index[1, e]) == v]


def outgoing(edge_index: Tensor, u: int) -> list[int]:
    return [e for e in range(edge_index.shape[1]) if int(edge_index[0, e]) == u]


def naive_triplets(edge_index: Tensor) -> list[tuple[int, int, int]]:
    """(first, second, closing) edges of every 2-path u -> k -> v and edge u -> v."""
    src, dst = edge_index.tolist()
    return [(a, b, c) for a in range(len(src)) for b in outgoing(edge_index, dst[a])
            for c in range(len(src)) if (src[c], dst[c]) == (src[a], dst[b])]


# ------------------------------------------------------------------------ references
def ref_mpnn(layer: MPNN, h, edge_index, e, x):
    out = []
    for v in range(h.shape[0]):
        msgs = [mlp(layer.message_mlp, torch.cat([x[u], h[u], x[v], h[v], e[k]]))
                for k in incoming(edge_index, v) for u in [int(edge_index[0, k])]]
        a = reduce_vectors(msgs, layer.aggr, D)
        out.append(torch.relu(mlp(layer.update_mlp, torch.cat([x[v], h[v], a]))))
    return stack(out)


def ref_minagg(layer: MinAgg, h, edge_index, e, x):
    out = []
    for v in range(h.shape[0]):
        msgs = [torch.relu(lin(layer.agg, torch.cat([h[int(edge_index[0, k])], e[k]]))) for k in incoming(edge_index, v)]
        out.append(lin(layer.up, torch.cat([reduce_vectors(msgs, "min", D), h[v]])))
    return stack(out)


def pgn_message(layer: PGN, z, edge_index, e, k):
    u, v = int(edge_index[0, k]), int(edge_index[1, k])
    return mlp(layer.message_mlp, torch.cat([z[u], z[v], e[k]]))


def triplet_message(layer: TripletGMPNN, z, edge_index, e, k):
    u, v = int(edge_index[0, k]), int(edge_index[1, k])
    tri = []
    for a in outgoing(edge_index, u):
        mid = int(edge_index[1, a])
        for b in outgoing(edge_index, mid):
            if int(edge_index[1, b]) == v:
                tri.append(lin(layer.t_u, z[u]) + lin(layer.t_k, z[mid]) + lin(layer.t_v, z[v])
                           + lin(layer.t_e1, e[a]) + lin(layer.t_e2, e[b]))
    r = reduce_vectors(tri, "max", layer.d_tri)
    return pgn_message(layer, z, edge_index, e, k) + layer.o3.weight @ r


def ref_pgn(layer: PGN, h, edge_index, e, x, message=pgn_message):
    z = torch.cat([x, h], dim=-1)
    out = []
    for v in range(h.shape[0]):
        a = reduce_vectors([message(layer, z, edge_index, e, k) for k in incoming(edge_index, v)], "max", D)
        cand = torch.relu(lin(layer.o1, z[v]) + lin(layer.o2, a))
        if not layer.gated:
            out.append(cand)
            continue
        g = torch.sigmoid(mlp(layer.gate_mlp, torch.cat([z[v], a])))
        out.append(g * cand + (1 - g) * h[v])
    return stack(out)


def ref_triplet(layer: TripletGMPNN, h, edge_index, e, x):
    return ref_pgn(layer, h, edge_index, e, x, message=triplet_message)


def ref_gat(layer: GAT, h, edge_index, e, x):
    z = torch.cat([x, h], dim=-1)
    heads, c = layer.heads, layer.d_head
    value = lambda vec: (layer.lin.weight @ vec).view(heads, c)  # noqa: E731
    out = []
    for v in range(h.shape[0]):
        edges = incoming(edge_index, v)
        per_head = []
        for k in range(heads):
            scores = []
            for j in edges:
                u = int(edge_index[0, j])
                s = (layer.att_src[k] @ value(z[u])[k] + layer.att_dst[k] @ value(z[v])[k]
                     + layer.att_edge[k] @ (layer.lin_edge.weight @ e[j]).view(heads, c)[k])
                scores.append(s if s > 0 else layer.negative_slope * s)
            top = max(scores) if scores else 0.0
            weights = [torch.exp(s - top) for s in scores]
            alphas = [w / sum(weights) for w in weights]
            terms = [alpha * value(z[int(edge_index[0, j])])[k] for alpha, j in zip(alphas, edges)]
            per_head.append(reduce_vectors(terms, "sum", c))
        a = torch.cat(per_head) if layer.concat else torch.stack(per_head).mean(0)
        out.append(torch.relu(a + lin(layer.skip, z[v])))
    return stack(out)


def ref_gine(layer: GINE, h, edge_index, e, x):
    z = torch.cat([x, h], dim=-1) if layer.use_inputs else h
    out = []
    for v in range(h.shape[0]):
        msgs = [torch.relu(z[int(edge_index[0, k])] + lin(layer.lin_edge, e[k])) for k in incoming(edge_index, v)]
        out.append(mlp(layer.mlp, (1 + layer.eps) * z[v] + reduce_vectors(msgs, "sum", layer.d_in)))
    return stack(out)


def stack(rows: list[Tensor]) -> Tensor:
    return torch.stack(rows) if rows else torch.zeros(0, D, dtype=torch.float64)


VARIANTS: dict[str, tuple[Callable[[], nn.Module], Callable]] = {
    "mpnn": (lambda: MPNN(D), ref_mpnn),
    "minagg": (lambda: MinAgg(D), ref_minagg),
    "pgn": (lambda: PGN(D), ref_pgn),
    "pgn_ungated": (lambda: PGN(D, gated=False), ref_pgn),
    "gat": (lambda: GAT(D), ref_gat),
    "gat_two_heads_concat": (lambda: GAT(D, heads=2), ref_gat),
    "gat_three_heads_mean": (lambda: GAT(D, heads=3), ref_gat),
    "gine": (lambda: GINE(D), ref_gine),
    "gine_without_inputs": (lambda: GINE(D, use_inputs=False), ref_gine),
    "triplet_gmpnn": (lambda: TripletGMPNN(D, d_tri=3), ref_triplet),
}


def randomised(layer: nn.Module, seed: int) -> nn.Module:
    """The layer in float64 with every parameter (biases, eps, gate bias) redrawn."""
    gen = torch.Generator().manual_seed(seed)
    layer = layer.double()
    with torch.no_grad():
        for p in list(layer.parameters()) + list(layer.buffers()):
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return layer


graphs64 = graphs(node_features=D, edge_features=D, dtype=torch.float64, max_edges=16)


def _awkward_graph() -> Graph:
    """Self-loops, parallel edges (0 -> 2 twice), 2-paths, an isolated node (3)."""
    gen = torch.Generator().manual_seed(7)
    edge_index = torch.tensor([[0, 1, 0, 0, 2, 1, 2, 1], [1, 2, 2, 2, 2, 1, 0, 0]])
    return Graph(x=torch.randn(4, D, generator=gen, dtype=torch.float64), edge_index=edge_index,
                 edge_attr=torch.randn(8, D, generator=gen, dtype=torch.float64))


AWKWARD = _awkward_graph()


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@SETTINGS
@given(g=graphs64, seed=st.integers(0, 2**16))
@example(g=AWKWARD, seed=0)
def test_forward_matches_naive_loop_reference(variant: str, g: Graph, seed: int) -> None:
    factory, reference = VARIANTS[variant]
    layer = randomised(factory(), seed)
    h = torch.randn(g.num_nodes, D, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    got = layer(h, g.edge_index, g.edge_attr, x=g.x)
    with torch.no_grad():
        want = reference(layer, h, g.edge_index, g.edge_attr, g.x)
    torch.testing.assert_close(got, want)


def test_every_processor_is_registered() -> None:
    assert {"mpnn", "minagg", "pgn", "gat", "gine", "triplet_gmpnn"} <= set(PROCESSORS)
    for name in ("pgn", "gat", "gine", "triplet_gmpnn"):
        assert PROCESSORS[name](5)(torch.randn(2, 5), torch.tensor([[0], [1]]), torch.randn(1, 5), x=torch.randn(2, 5)).shape == (2, 5)


#: Extra hook points (besides hook_message / hook_aggregation / hook_update) by processor,
#: with their axis and trailing width for d_hidden = D.
EXTRA_HOOKS: dict[str, dict[str, tuple[str, int]]] = {
    "mpnn": {"message_mlp.hook_post": ("edge", D), "update_mlp.hook_pre": ("node", D)},
    "minagg": {"hook_message_pre": ("edge", D)},
    "pgn": {"hook_gate": ("node", D), "hook_candidate": ("node", D),
            "message_mlp.hook_pre": ("edge", D), "gate_mlp.hook_post": ("node", D)},
    "gat": {"hook_attention": ("edge", 4)},
    "gine": {"hook_message": ("edge", 2 * D), "hook_aggregation": ("node", 2 * D), "mlp.hook_post": ("node", D)},
    "triplet_gmpnn": {"hook_triplet": ("triplet", 8), "hook_triplet_max": ("edge", 8), "hook_gate": ("node", D),
                      "message_mlp.hook_post": ("edge", D)},
}


@pytest.mark.parametrize("name", sorted(EXTRA_HOOKS))
@settings(max_examples=15, deadline=None)
@given(batch=batches(max_graphs=3, max_nodes=6, max_edges=12, node_features=2, edge_features=2))
def test_every_hook_fires_with_its_documented_shape_and_axis(name: str, batch: Graph) -> None:
    model = HookedGNN(name, d_hidden=D, node_in=2, edge_in=2, max_steps=2, tie_weights=False)
    _, cache = model.run_with_cache(batch)
    counts = {"node": batch.num_nodes, "edge": batch.num_edges, "triplet": len(naive_triplets(batch.edge_index))}
    layer_hooks = {n[len("layers.1."):]: hp for n, hp in model.hook_dict.items() if n.startswith("layers.1.")}
    assert {"hook_message", "hook_aggregation", "hook_update"} <= set(layer_hooks)
    for short, hp in layer_hooks.items():
        full = f"layers.1.{short}"
        assert full in cache, f"{full} did not fire"
        assert cache[full].shape[0] == counts[hp.axis], full
        assert cache.axes[full] == hp.axis
    for short, (axis, width) in EXTRA_HOOKS[name].items():
        assert layer_hooks[short].axis == axis
        assert cache[f"layers.1.{short}"].shape == (counts[axis], width)


@settings(max_examples=40, deadline=None)
@given(g=graphs(max_edges=16))
@example(g=AWKWARD)
def test_triplet_index_lists_every_two_path_once_per_closing_edge_in_edge_order(g: Graph) -> None:
    ti = triplet_index(g.edge_index, g.num_nodes)
    assert list(zip(ti.first.tolist(), ti.second.tolist(), ti.closing.tolist())) == naive_triplets(g.edge_index)


def test_gat_attention_sums_to_one_over_the_incoming_edges_of_each_node() -> None:
    layer = GAT(D, heads=2)
    edge_index = torch.tensor([[0, 1, 2, 2, 0], [1, 1, 1, 0, 0]])
    _, cache = _single_layer_cache(layer, edge_index)
    alpha = cache["hook_attention"]
    sums = torch.zeros(3, 2).index_add(0, edge_index[1], alpha)
    torch.testing.assert_close(sums, torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]))


def _single_layer_cache(layer: nn.Module, edge_index: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    cache: dict[str, Tensor] = {}
    for name, mod in layer.named_modules():
        if name.split(".")[-1].startswith("hook_"):
            mod.add_hook(lambda t, hook, name=name: cache.__setitem__(name, t.detach()))  # type: ignore[union-attr]
    n = int(edge_index.max()) + 1
    out = layer(torch.randn(n, D), edge_index, torch.randn(edge_index.shape[1], D), x=torch.randn(n, D))
    return out, cache


def test_triplet_contribution_is_zero_on_edges_that_close_no_two_path() -> None:
    torch.manual_seed(0)
    layer = TripletGMPNN(D)
    edge_index = torch.tensor([[0, 1, 0, 2], [1, 2, 2, 3]])  # only 0 -> 2 closes a 2-path (0 -> 1 -> 2)
    _, cache = _single_layer_cache(layer, edge_index)
    assert cache["hook_triplet"].shape == (1, 8)
    r = cache["hook_triplet_max"]
    torch.testing.assert_close(r[2], cache["hook_triplet"][0])
    assert r[[0, 1, 3]].abs().sum() == 0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@settings(max_examples=15, deadline=None)
@given(g=graphs(node_features=D, edge_features=D, dtype=torch.float64, max_edges=12), seed=st.integers(0, 2**16))
def test_gradients_flow_and_are_finite_with_empty_neighbourhoods(variant: str, g: Graph, seed: int) -> None:
    layer = randomised(VARIANTS[variant][0](), seed)
    h = torch.randn(g.num_nodes, D, dtype=torch.float64, requires_grad=True)
    x = g.x.clone().requires_grad_()
    e = g.edge_attr.clone().requires_grad_()  # type: ignore[union-attr]
    out = layer(h, g.edge_index, e, x=x)
    (out.square().sum() + out.sum()).backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()
    for t in (x, e):  # None where the layer ignores them (MinAgg ignores x)
        assert t.grad is None or torch.isfinite(t.grad).all()
    for p in layer.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_patching_one_hook_src_row_changes_only_that_edges_message(variant: str) -> None:
    """GAT is the exception: the softmax also reweights the other edges into the same node."""
    torch.manual_seed(2)
    layer = VARIANTS[variant][0]().double()
    edge_index, e, x, h = AWKWARD.edge_index, AWKWARD.edge_attr, AWKWARD.x, torch.randn(4, D, dtype=torch.float64)
    msgs: list[Tensor] = []
    layer.hook_message.add_hook(lambda t, hook: msgs.append(t.detach()))
    layer(h, edge_index, e, x=x)
    ever_changed = False
    for edge in range(edge_index.shape[1]):
        def patch(t: Tensor, hook: object, edge: int = edge) -> Tensor:
            t = t.clone()
            t[edge] += 1.0
            return t

        with layer.hook_src.add_hook(patch):
            layer(h, edge_index, e, x=x)
        changed = (msgs[-1] - msgs[0]).abs().sum(-1) > 0
        allowed = edge_index[1] == edge_index[1, edge] if isinstance(layer, GAT) else torch.arange(8) == edge
        assert not (changed & ~allowed).any(), f"patching edge {edge} changed messages {changed.nonzero().flatten().tolist()}"
        ever_changed |= bool(changed.any())
    assert ever_changed  # (a single edge's change may be clipped by a relu)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_node_without_in_edges_aggregates_to_zero_and_backward_runs(variant: str) -> None:
    torch.manual_seed(1)
    layer = VARIANTS[variant][0]().double()
    edge_index = torch.tensor([[1, 2, 2], [2, 2, 1]])  # node 0 isolated, node 1 and 2 receive
    h = torch.randn(3, D, dtype=torch.float64, requires_grad=True)
    aggr: list[Tensor] = []
    layer.hook_aggregation.add_hook(lambda t, hook: aggr.append(t))
    out = layer(h, edge_index, torch.randn(3, D, dtype=torch.float64), x=torch.randn(3, D, dtype=torch.float64))
    assert aggr[0][0].abs().sum() == 0
    out.sum().backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()


def test_every_name_in_the_guide_processor_table_builds_a_model_and_a_train_config() -> None:
    import re
    from pathlib import Path

    import hookgnn.nn
    from hookgnn.training import TrainConfig

    guide = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "hooks.md").read_text()
    table = guide.split("## Processors", 1)[1].split("\n\n")[1].splitlines()[2:]  # the rows, header dropped
    names = [name for row in table for name in re.findall(r"`([^`]+)`", row.split("|")[1])]
    assert {"mpnn", "gat", "gcn", "sage", "gin", "MLPConv"} <= set(names)
    graph = Graph(x=torch.randn(4, 1), edge_index=torch.tensor([[0, 1, 2, 3, 3], [1, 2, 3, 0, 3]]),
                  edge_attr=torch.rand(5, 1))
    for name in names:
        if name[0].isupper():  # a class for HookedGNN.from_layers
            assert name in hookgnn.nn.__all__, name
            continue
        torch.manual_seed(0)
        model = HookedGNN(name, d_hidden=4, node_in=1, edge_in=1, max_steps=2)
        out, cache = model.run_with_cache(graph)
        assert cache["update", 1].shape == (4, 4) and type(model.layers[0]) is PROCESSORS[name]
        assert TrainConfig(task="bfs", processor=name, d_hidden=4, max_steps=8, sizes=(5,), steps=1).processor == name
