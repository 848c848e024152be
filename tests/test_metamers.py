"""metamer(): reaches the tolerance on small reasoners, keeps its constraints, checks its
arguments and never leaks hooks.

Distances are re-measured here with ``run_with_cache`` on each returned graph alone and
a hand-written relative distance, not with the module's own measurement.
"""

from __future__ import annotations

import pytest
import torch

from hookgnn import Graph, HookedGNN
from hookgnn.metamers import Box, EdgeSpace, Free, OneHot, metamer


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


def ring(n: int, features: int, seed: int = 0, edge_features: int | None = None) -> Graph:
    gen = torch.Generator().manual_seed(seed)
    src = torch.arange(n)
    ei = torch.cat([torch.stack([src, (src + 1) % n]), torch.stack([src, (src + 3) % n])], 1)
    ea = None if edge_features is None else torch.rand(ei.shape[1], edge_features, generator=gen)
    return Graph(x=torch.randn(n, features, generator=gen), edge_index=ei, edge_attr=ea)


def measured(model, graph: Graph, reference: Graph, hook: str, steps: int | None = None) -> float:
    """||h(graph) - h(reference)||^2 / ||h(reference)||^2 by two plain cached runs."""
    _, a = model.run_with_cache(graph, names_filter=hook, steps=steps)
    _, b = model.run_with_cache(reference, names_filter=hook, steps=steps)
    return float(((a[hook] - b[hook]) ** 2).sum() / (b[hook] ** 2).sum())


def rebuilt(g: Graph) -> Graph:
    """The same graph through the Graph constructor again (validation)."""
    return Graph(x=g.x.clone(), edge_index=g.edge_index.clone(),
                 edge_attr=None if g.edge_attr is None else g.edge_attr.clone())


@pytest.mark.parametrize("processor", ["mpnn", "minagg"])
def test_metamers_reach_the_tolerance_on_small_reasoners_and_are_valid_graphs(processor):
    torch.manual_seed(0)
    model = HookedGNN(processor, 8, node_in=3, edge_in=1, max_steps=3)
    reference = ring(6, 3, edge_features=1)
    hook = "layers.2.hook_update"
    res = metamer(model, reference, hook, num=3, edge_features=Box(0.0, 1.0), tol=1e-3, max_steps=1500, restarts=3)
    assert bool(res.converged.all()), res
    for i in range(3):
        g = rebuilt(res.graph(i))
        assert measured(model, g, reference, hook) <= 1e-3
        again = measured(model, g, reference, hook)
        assert float(res.hook_distances[hook][i]) == pytest.approx(again, rel=1e-3, abs=1e-9)
        assert bool(((g.edge_attr >= 0) & (g.edge_attr <= 1)).all())
        assert float((g.x - reference.x).norm()) > 1e-3  # not the reference itself
    assert res.trace.shape[1] == 3 and res.trace.shape[0] == int(res.steps.max()) + 1


def test_metamer_with_structure_and_features_on_an_mpnn_matches_a_plain_forward():
    torch.manual_seed(1)
    model = HookedGNN("mpnn", 8, node_in=2, max_steps=2)
    reference = ring(5, 2, seed=2)
    hook = "layers.1.hook_update"
    res = metamer(model, reference, hook, structure=EdgeSpace(keep="self_loops"), num=2, tol=1e-3, max_steps=800)
    for i in range(2):
        g = rebuilt(res.graph(i))
        assert measured(model, g, reference, hook) == pytest.approx(float(res.distance[i]), rel=1e-3, abs=1e-9)
        loops = g.edge_index[0] == g.edge_index[1]
        assert int(loops.sum()) == 5  # kept edges are there
    assert bool(res.converged.all()), res


def test_multiple_hooks_at_different_rounds_and_axes_all_reach_the_tolerance():
    torch.manual_seed(2)
    model = HookedGNN("mpnn", 8, node_in=3, max_steps=3)
    reference = ring(6, 3, seed=4)
    hooks = ["layers.0.hook_message", "layers.2.hook_update", "layers.1.update_mlp.hook_post"]
    res = metamer(model, reference, hooks, tol=1e-3, max_steps=1500)
    assert bool(res.converged.all())
    for h in hooks:
        assert measured(model, rebuilt(res.graph(0)), reference, h) <= 1e-3


def test_one_hot_features_stay_one_hot_and_box_and_fixed_nodes_are_respected():
    torch.manual_seed(3)
    model = HookedGNN("mpnn", 8, node_in=5, max_steps=2)
    gen = torch.Generator().manual_seed(0)
    cats = torch.eye(3)[torch.randint(0, 3, (6,), generator=gen)]
    source = torch.eye(6)[2].unsqueeze(1)
    reference = Graph(x=torch.cat([cats, source, torch.rand(6, 1, generator=gen)], 1), edge_index=ring(6, 1).edge_index)
    features = [OneHot(columns=(0, 3)), OneHot(over="nodes", columns=(3, 4)), Box(0.0, 1.0, columns=(4, 5))]
    res = metamer(model, reference, "layers.1.hook_update", features=features, num=3, max_steps=50, tol=1e-12)
    x = res.graphs.x
    assert torch.equal(x[:, :3].sum(1), torch.ones(18)) and bool(((x[:, :3] == 0) | (x[:, :3] == 1)).all())
    assert torch.equal(x[:, 3].view(3, 6).sum(1), torch.ones(3))
    assert bool(((x[:, 4] >= 0) & (x[:, 4] <= 1)).all())

    fixed = metamer(model, reference, "layers.1.hook_update", features=Free(columns=(4, 5)), fixed_nodes=[0, 5],
                    num=2, max_steps=30, tol=1e-12)
    xs = fixed.graphs.x.view(2, 6, 5)
    for j in range(2):
        assert torch.equal(xs[j, [0, 5]], fixed.starts.x.view(2, 6, 5)[j, [0, 5]])
        assert torch.equal(xs[j, :, :4], reference.x[:, :4])  # uncovered columns stay


def test_batched_metamers_follow_the_trajectories_they_would_follow_alone():
    torch.manual_seed(4)
    model = HookedGNN("mpnn", 8, node_in=2, max_steps=2)
    reference = ring(5, 2, seed=6)
    together = metamer(model, reference, "layers.1.hook_update", num=3, tol=1e-9, max_steps=40, seed=3)
    for j in range(3):
        alone = metamer(model, reference, "layers.1.hook_update", start=together.starts.graph(j), tol=1e-9,
                        max_steps=40)
        torch.testing.assert_close(alone.trace[:, 0], together.trace[:, j], rtol=1e-3, atol=1e-7)


def test_permuted_start_is_isomorphic_to_the_reference():
    model = HookedGNN("mpnn", 8, node_in=2, max_steps=2)
    reference = ring(6, 2, seed=1)
    res = metamer(model, reference, "layers.1.hook_update", start="permuted", num=2, max_steps=1)
    for s in res.starts.split():
        assert sorted(map(tuple, s.x.tolist())) == sorted(map(tuple, reference.x.tolist()))
        assert s.num_edges == reference.num_edges


def test_the_model_parameters_and_their_grads_are_untouched():
    torch.manual_seed(0)  # a model whose hook is not all zeros on the ring (else metamer refuses it first)
    model = HookedGNN("mpnn", 8, node_in=2, max_steps=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metamer(model, ring(5, 2), "layers.1.hook_update", max_steps=5, structure=EdgeSpace())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------ failures
def no_hooks_left(model) -> bool:
    return all(info.num_fwd == 0 and info.num_bwd == 0 for info in model.list_hooks())


@pytest.mark.parametrize("structure", [None, EdgeSpace()])
def test_hooks_are_removed_when_the_forward_raises_mid_optimisation(structure):
    torch.manual_seed(0)  # a model whose hook is not all zeros on the ring (else metamer refuses it first)
    model = HookedGNN("mpnn", 8, node_in=2, max_steps=2)
    calls = []

    def forward(graph):
        calls.append(1)
        if len(calls) == 6:
            raise RuntimeError("boom")
        return model(graph)

    with pytest.raises(RuntimeError, match="boom"):
        metamer(model, ring(5, 2), "layers.1.hook_update", forward=forward, structure=structure, max_steps=50,
                tol=1e-12)
    assert no_hooks_left(model)


def test_hooks_are_removed_when_the_distance_becomes_nan():
    torch.manual_seed(0)  # a model whose hook is not all zeros on the ring (else metamer refuses it first)
    model = HookedGNN("mpnn", 8, node_in=2, max_steps=2)
    calls = []

    def forward(graph):
        calls.append(1)
        out = model(graph)
        return out

    def poison(t, hook):
        return t * float("nan") if len(calls) > 3 else None

    model.add_hook("layers.0.hook_update", poison, is_permanent=True)
    with pytest.raises(FloatingPointError, match="step"):
        metamer(model, ring(5, 2), "layers.1.hook_update", forward=forward, max_steps=50, tol=1e-12)
    model.reset_hooks(including_permanent=True)
    assert no_hooks_left(model)


MODEL = HookedGNN("mpnn", 8, node_in=2, max_steps=2)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(hooks="layers.1.hook_updat"), KeyError, "did you mean"),
    (dict(forward=lambda g: MODEL(g, steps=1)), ValueError, "never fired"),
    (dict(tol=0.0), ValueError, "tol"),
    (dict(tol=float("nan")), ValueError, "tol"),
    (dict(num=0), ValueError, "num"),
    (dict(max_steps=0), ValueError, "max_steps"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(fixed_nodes=[7]), ValueError, "fixed_nodes"),
    (dict(fixed_nodes=[1, 1]), ValueError, "repeat"),
    (dict(features=[Free(columns=(0, 2)), Box(columns=(1, 2))]), ValueError, "more than one"),
    (dict(features=Free(columns=(1, 5))), ValueError, "out of range"),
    (dict(features=OneHot(), start="permuted"), ValueError, "not 0 or 1"),
    (dict(features=Box(0.0, 0.1), start="permuted"), ValueError, "outside the box"),
    (dict(edge_features=Box()), ValueError, "no edge_attr"),
    (dict(features=None), ValueError, "nothing to optimise"),
    (dict(structure=EdgeSpace(), hooks="layers.1.hook_message"), ValueError, "node- and graph-axis"),
    (dict(structure=EdgeSpace(num_edges=100)), ValueError, "impossible"),
    (dict(structure=EdgeSpace(candidates=torch.tensor([[0, 9], [1, 2]]))), ValueError, "node index"),
    (dict(structure=EdgeSpace(candidates=torch.tensor([[0, 1], [1, 2]]))), ValueError, "not a candidate"),
    (dict(structure=EdgeSpace(symmetric=True), start="permuted"), ValueError, "reverse"),
    (dict(start=ring(4, 2)), ValueError, "4 nodes"),
    (dict(start=ring(5, 3)), ValueError, "columns"),
    (dict(hooks="layers.1.hook_message", start="permuted"), ValueError, "edge-axis"),
])
def test_bad_arguments_raise_clear_errors_before_optimising(kwargs, error, match):
    kwargs = dict(kwargs)
    hooks = kwargs.pop("hooks", "layers.1.hook_update")
    kwargs.setdefault("max_steps", 3)
    with pytest.raises(error, match=match):
        metamer(MODEL, ring(5, 2), hooks, **kwargs)
    assert no_hooks_left(MODEL)


def test_reference_must_be_a_single_graph_and_not_all_zero_at_the_hook():
    model = HookedGNN("minagg", 4, node_in=1, max_steps=1)
    with pytest.raises(ValueError, match="one non-empty Graph"):
        metamer(model, Graph.collate([ring(4, 1), ring(4, 1)]), "layers.0.hook_update")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    with pytest.raises(ValueError, match="all zeros"):
        metamer(model, ring(4, 1), "layers.0.hook_message")
