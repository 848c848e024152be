"""Weight-edge circuits: ``evaluate`` against the weights themselves.

References, independent of ``evaluate``'s hooks:

* zero ablation: the same weight entries set to 0 in a deep copy of the model;
* resample / mean ablation: the processors' rounds written out by hand below, where each
  Linear is split into the kept entries (applied to the live input) and the ablated
  entries (applied to the ablation value of that input: the corrupted run's activation,
  or the mean over the rows of a dataset run).

Circuits are random halves of the weight edges of *every* round, so a hook point that
is corrected in round t and read again in round t + 1 (``layers.t.hook_update``) is
exercised.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch
from handbuilt import no_hooks_left

from hookgnn import Graph, HookedGNN
from hookgnn.circuits import Circuit, evaluate
from hookgnn.nn.wiring import links_of
from hookgnn.ops import scatter
from hookgnn.patching.components import WeightEdge, weight_edges
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}
D, T = 4, 3


def hidden_sum(out, graph: Graph) -> torch.Tensor:
    """Per graph, the sum of every final node state (more sensitive than a decoded output)."""
    return scatter(out.hidden.sum(1), graph.batch, graph.num_graphs, "sum")


def _model(kind: str, tied: bool) -> HookedGNN:
    torch.manual_seed(3)
    model = HookedGNN(kind, d_hidden=D, node_in=1, edge_in=1, spec=SPEC, max_steps=T, tie_weights=tied).eval()
    with torch.no_grad():  # larger weights than the default init, so that every round moves the state
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(2.5)
    return model


def _graphs() -> tuple[Graph, Graph]:
    gen = torch.Generator().manual_seed(5)
    ei = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 2, 4, 1], [1, 2, 3, 4, 0, 0, 1, 2, 0, 2, 3]])  # loops, a 5-cycle, chords
    g = Graph(x=torch.randn(5, 1, generator=gen), edge_index=ei, edge_attr=torch.rand(11, 1, generator=gen))
    return g, g.replace(x=torch.randn(5, 1, generator=gen), edge_attr=torch.rand(11, 1, generator=gen))


def _weighted_edges(model: HookedGNN) -> list[WeightEdge]:
    out = []
    for link in links_of(model, range(T)):
        if link.weight is not None:
            d_dst, d_src = link.weight.shape
            out += weight_edges(link, d_src, d_dst)
    return out


def _param_slice(model: HookedGNN, edge: WeightEdge) -> tuple[torch.nn.Parameter, int, int]:
    """The parameter entry that carries a weight edge: (parameter, row, column)."""
    t = model.round_of(edge.dst.hook)
    layer, name = model.layers[t], edge.link.split(":")[1]
    i, j = edge.src.feature, edge.dst.feature
    if isinstance(layer.agg if hasattr(layer, "agg") else None, torch.nn.Linear):  # MinAgg
        w, offset = {"agg_h": (layer.agg.weight, 0), "agg_e": (layer.agg.weight, D),
                     "up_a": (layer.up.weight, 0), "up_h": (layer.up.weight, D)}[name]
        return w, j, i + offset
    k = {"m_x_src": 0, "m_h_src": 1, "m_x_dst": 2, "m_h_dst": 3, "m_e": 4, "u_x": 0, "u_h": 1, "u_a": 2}
    if name in k:
        mlp = layer.message_mlp if name.startswith("m_") else layer.update_mlp
        return mlp.lin_in.weight, j, i + k[name] * D
    mlp = layer.message_mlp if name == "m_out" else layer.update_mlp
    return mlp.lin_out.weight, j, i


def _random_circuit(edges: list[WeightEdge], seed: int) -> Circuit:
    rng = random.Random(seed)
    return Circuit.of(rng.sample(edges, len(edges) // 2))


# --------------------------------------------------------------- hand-written rounds
def _split(w: torch.Tensor, ablated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return w * ~ablated, w * ablated


def _linear(w, b, parts):
    """``b + sum_k (W_keep_k live_k + W_abl_k abl_k)`` over input blocks ``k`` of ``w``."""
    out, col = b, 0
    for live, abl, mask in parts:
        width = live.shape[1]
        keep, cut = _split(w[:, col:col + width], mask[:, col:col + width])
        out = out + live @ keep.T + abl @ cut.T
        col += width
    return out


def hand_forward(model: HookedGNN, g: Graph, masks: dict[tuple[int, str], torch.Tensor],
                 abl: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The model's rounds by hand; ``masks[(t, weight name)]`` marks ablated entries of a weight,
    whose input takes ``abl[hook]`` instead (rows aligned with the live input, or one mean row)."""
    src, dst = g.edge_index
    acts: dict[str, torch.Tensor] = {}
    x = model.node_encoder(g.x)
    e = model.edge_encoder(g.edge_attr)
    acts["hook_node_embed"], acts["hook_edge_embed"] = x, e
    a = (lambda name, like: like if abl is None else abl[name].expand_as(like))  # noqa: E731
    h, h_name = x, "hook_node_embed"
    for t in range(T):
        layer = model.layers[t]
        m = lambda key, w: masks.get((t, key), torch.zeros_like(w, dtype=torch.bool))  # noqa: E731
        h_src = h[src]
        acts[f"layers.{t}.hook_src"] = h_src
        if hasattr(layer, "agg"):
            pre = _linear(layer.agg.weight, layer.agg.bias, [
                (h_src, a(f"layers.{t}.hook_src", h_src), m("agg", layer.agg.weight)),
                (e, a("hook_edge_embed", e), m("agg", layer.agg.weight))])
            msg = torch.relu(pre)
            aggr = scatter(msg, dst, g.num_nodes, "min")
            acts[f"layers.{t}.hook_aggregation"] = aggr
            new = _linear(layer.up.weight, layer.up.bias, [
                (aggr, a(f"layers.{t}.hook_aggregation", aggr), m("up", layer.up.weight)),
                (h, a(h_name, h), m("up", layer.up.weight))])
        else:
            mm, um = layer.message_mlp, layer.update_mlp
            xs, xd, hd = x[src], x[dst], h[dst]
            pre = _linear(mm.lin_in.weight, mm.lin_in.bias, [
                (xs, a("hook_node_embed", x)[src] if abl is not None and abl["hook_node_embed"].shape[0] > 1
                 else a("hook_node_embed", xs), m("m_in", mm.lin_in.weight)),
                (h_src, a(f"layers.{t}.hook_src", h_src), m("m_in", mm.lin_in.weight)),
                (xd, a("hook_node_embed", x)[dst] if abl is not None and abl["hook_node_embed"].shape[0] > 1
                 else a("hook_node_embed", xd), m("m_in", mm.lin_in.weight)),
                (hd, a(h_name, h)[dst] if abl is not None and abl[h_name].shape[0] > 1 else a(h_name, hd),
                 m("m_in", mm.lin_in.weight)),
                (e, a("hook_edge_embed", e), m("m_in", mm.lin_in.weight))])
            post = torch.relu(pre)
            acts[f"layers.{t}.message_mlp.hook_post"] = post
            msg = _linear(mm.lin_out.weight, mm.lin_out.bias, [
                (post, a(f"layers.{t}.message_mlp.hook_post", post), m("m_out", mm.lin_out.weight))])
            aggr = scatter(msg, dst, g.num_nodes, "max")
            acts[f"layers.{t}.hook_aggregation"] = aggr
            upre = _linear(um.lin_in.weight, um.lin_in.bias, [
                (x, a("hook_node_embed", x), m("u_in", um.lin_in.weight)),
                (h, a(h_name, h), m("u_in", um.lin_in.weight)),
                (aggr, a(f"layers.{t}.hook_aggregation", aggr), m("u_in", um.lin_in.weight))])
            upost = torch.relu(upre)
            acts[f"layers.{t}.update_mlp.hook_post"] = upost
            new = torch.relu(_linear(um.lin_out.weight, um.lin_out.bias, [
                (upost, a(f"layers.{t}.update_mlp.hook_post", upost), m("u_out", um.lin_out.weight))]))
        h, h_name = new, f"layers.{t}.hook_update"
        acts[h_name] = h
    return h, acts


def _masks(model: HookedGNN, circuit: Circuit, universe: list[WeightEdge]) -> dict[tuple[int, str], torch.Tensor]:
    """Per (round, weight): entries of the ablated edges (universe minus circuit)."""
    group = {"agg_h": "agg", "agg_e": "agg", "up_a": "up", "up_h": "up", "m_out": "m_out", "u_out": "u_out"}
    masks: dict[tuple[int, str], torch.Tensor] = {}
    for edge in universe:
        if edge in circuit:
            continue
        t = model.round_of(edge.dst.hook)
        name = edge.link.split(":")[1]
        key = group.get(name, "m_in" if name.startswith("m_") else "u_in")
        w, row, col = _param_slice(model, edge)
        masks.setdefault((t, key), torch.zeros_like(w, dtype=torch.bool))[row, col] = True
    return masks


KINDS = ["minagg", "mpnn"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_zero_ablation_of_weight_edges_in_every_round_equals_zeroed_weights(kind, seed):
    model = _model(kind, tied=False)
    g, corr = _graphs()
    metric = hidden_sum
    universe = _weighted_edges(model)
    circuit = _random_circuit(universe, seed)
    assert {model.round_of(e.dst.hook) for e in set(universe) - circuit.edges} == set(range(T))
    got = evaluate(model, g, corr, metric, circuit, universe, ablation="zero")
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for edge in universe:
            if edge not in circuit:
                w, row, col = _param_slice(zeroed, edge)
                w[row, col] = 0.0
    with torch.no_grad():
        want = float(metric(zeroed(g), g))
    assert got == pytest.approx(want, abs=1e-5)
    with torch.no_grad():
        assert got != pytest.approx(float(metric(model(g), g)), abs=1e-2)  # the ablation matters
    assert no_hooks_left(model)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_ablation_of_the_same_entries_in_every_round_equals_zeroing_a_tied_weight(kind):
    model = _model(kind, tied=True)
    g, corr = _graphs()
    metric = hidden_sum
    universe = _weighted_edges(model)
    rng = random.Random(7)
    per_round = [e for e in universe if model.round_of(e.dst.hook) == 0]
    kept0 = set(rng.sample(per_round, len(per_round) // 2))
    same = lambda e, f: (e.link.split(":")[1], e.src.feature, e.dst.feature) == (f.link.split(":")[1], f.src.feature, f.dst.feature)  # noqa: E731
    circuit = Circuit.of([e for e in universe if any(same(e, k) for k in kept0)])
    got = evaluate(model, g, corr, metric, circuit, universe, ablation="zero")
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for edge in per_round:
            if edge not in kept0:
                w, row, col = _param_slice(zeroed, edge)
                w[row, col] = 0.0
    with torch.no_grad():
        assert got == pytest.approx(float(metric(zeroed(g), g)), abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ablation", ["resample", "mean"])
def test_resample_and_mean_ablation_of_weight_edges_equal_hand_written_rounds(kind, ablation):
    model = _model(kind, tied=False)
    g, corr = _graphs()
    metric = hidden_sum
    universe = _weighted_edges(model)
    circuit = _random_circuit(universe, 11)
    dataset = Graph.collate([g, corr])
    got = evaluate(model, g, corr, metric, circuit, universe, ablation=ablation, dataset=dataset)
    with torch.no_grad():
        if ablation == "resample":
            _, abl = hand_forward(model, corr, {}, None)
        else:
            _, data = hand_forward(model, dataset, {}, None)
            abl = {k: v.mean(0, keepdim=True) for k, v in data.items()}
        out, _ = hand_forward(model, g, _masks(model, circuit, universe), abl)
        plain, _ = hand_forward(model, g, {}, None)
    torch.testing.assert_close(plain, model(g).hidden.detach())  # the hand-written rounds are the model
    assert got == pytest.approx(float(out.sum()), abs=1e-5)
    assert got != pytest.approx(float(plain.sum()), abs=1e-2)
