"""One rule for metric targets: a field-name target is read from the clean graph, in every function.

Each function is run twice, with ``PointerLogProb("pi")`` (a field name) and with
``PointerLogProb(target=clean["pi"])`` (an explicit tensor holding the clean graph's
targets), on a pair whose corruption also changes the ``pi`` field; the two must agree.
The sweep's baseline is also checked against a plain-torch computation.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import batches

from hookgnn import Graph, HookedGNN, parallel
from hookgnn.attribution import atp_star, attribute, eap, integrated_gradients_at
from hookgnn.circuits import Circuit, audit, evaluate, faithfulness_curve, verify
from hookgnn.graph import Field
from hookgnn.metrics import PointerLogProb
from hookgnn.metrics.targets import clean_targets, with_clean_fields
from hookgnn.patching import Component, messages, nodes, patch, patch_each, path_patch, round_hooks
from hookgnn.patching.components import MessageEdge, message_hooks
from hookgnn.spec import FeatureSpec

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = {"pi": FeatureSpec("output", "node", "pointer")}


def _pointer_mask(edge_index: torch.Tensor, num_nodes: int, gen: torch.Generator) -> torch.Tensor:
    """A 0/1 edge mask with exactly one chosen incoming edge per node."""
    mask = torch.zeros(edge_index.shape[1])
    for v in range(num_nodes):
        incoming = (edge_index[1] == v).nonzero().flatten()
        mask[incoming[torch.randint(len(incoming), (1,), generator=gen)]] = 1.0
    return mask


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(7)
    gen = torch.Generator().manual_seed(7)
    model = HookedGNN("mpnn", d_hidden=6, node_in=2, edge_in=1, spec=SPEC, max_steps=3).eval()
    n = 6
    loops = torch.arange(n).repeat(2, 1)  # every node has an incoming edge
    ei = torch.cat([loops, torch.randint(0, n, (2, 12), generator=gen)], dim=1)
    e = ei.shape[1]
    clean = Graph(x=torch.randn(n, 2, generator=gen), edge_index=ei, edge_attr=torch.rand(e, 1, generator=gen),
                  fields={"pi": Field(_pointer_mask(ei, n, gen), "edge")})
    pi_corr = _pointer_mask(ei, n, gen)
    while torch.equal(pi_corr, clean["pi"]):
        pi_corr = _pointer_mask(ei, n, gen)
    corrupted = clean.replace(x=torch.randn(n, 2, generator=gen), edge_attr=torch.rand(e, 1, generator=gen),
                              fields={"pi": Field(pi_corr, "edge")})
    return model, clean, corrupted


def _hand_log_prob(logits: torch.Tensor, target: torch.Tensor, edge_index: torch.Tensor, n: int) -> float:
    """Mean over nodes of sum_{u -> v} target * log softmax over v's incoming edges, in float64 loops."""
    logits, total = logits.double().flatten().tolist(), 0.0
    for v in range(n):
        inc = [j for j in range(edge_index.shape[1]) if int(edge_index[1, j]) == v]
        norm = math.log(sum(math.exp(logits[j]) for j in inc))
        total += sum(float(target[j]) * (logits[j] - norm) for j in inc)
    return total / n


def _hooks(model):
    return round_hooks(model, "update")


def _carriers(model, g):
    """Four single messages as components: each message's sender state as that edge reads it."""
    src, dst = g.edge_index.tolist()
    return [MessageEdge(t, e, src[e], dst[e], message_hooks(model, t)).carrier for t in (0, 2) for e in (1, 7)]


# Each entry: (name, function of (model, clean, corrupted, metric, direction) -> a tensor of numbers).
RUNS = {
    "patch nodes batched": lambda m, c, x, met, d: patch(m, c, x, met, nodes(m, "update"), direction=d,
                                                         copies=4).effects().values,
    "patch nodes loop": lambda m, c, x, met, d: patch(m, c, x, met, nodes(m, "update"), direction=d,
                                                      method="loop").effects().values,
    "patch nodes baseline": lambda m, c, x, met, d: torch.tensor(
        patch(m, c, x, met, nodes(m, "update"), direction=d).baseline),
    "patch messages": lambda m, c, x, met, d: patch(m, c, x, met, messages(m), direction=d).effects().values,
    "patch_each": lambda m, c, x, met, d: patch_each(
        m, c, x, met, [Component("layers.1.hook_update", i) for i in range(4)], direction=d),
    "path_patch messages": lambda m, c, x, met, d: torch.tensor(path_patch(
        m, c, x, met, _carriers(m, c), _carriers(m, c), freeze=(), direction=d)),
    "path_patch": lambda m, c, x, met, d: torch.tensor(path_patch(
        m, c, x, met, [Component("layers.0.hook_update", 2)], [Component("layers.2.hook_aggregation", 3)],
        direction=d)),
    "attribute": lambda m, c, x, met, d: attribute(m, c, x, met, direction=d).rows(
        _hooks(m)).effects().values,
    "attribute ig streamed": lambda m, c, x, met, d: attribute(
        m, c, x, met, ig_steps=4, direction=d, keep="rows").rows(_hooks(m)).effects().values,
    "integrated_gradients_at": lambda m, c, x, met, d: integrated_gradients_at(
        m, c, x, met, "layers.1.hook_update", 4, direction=d).rows(["layers.1.hook_update"]).effects().values,
    "eap": lambda m, c, x, met, d: eap(m, c, x, met, ig_steps=2, direction=d, level="message").scores,
    "atp_star": lambda m, c, x, met, d: atp_star(m, c, x, met, direction=d).effects().values,
    "evaluate": lambda m, c, x, met, d: torch.tensor(evaluate(
        m, c, x, met, Circuit(frozenset({Component("layers.1.hook_update", 0)})),
        [Component("layers.1.hook_update", i) for i in range(6)])),
    "verify": lambda m, c, x, met, d: torch.tensor(list(verify(
        m, c, x, met, attribute(m, c, x, met, direction=d).rows(_hooks(m)), k=5).exact.values())),
    "parallel.over_pairs patch": lambda m, c, x, met, d: parallel.over_pairs(
        patch, m, [(c, x), (c, x)], met, components=nodes(m, "update"), direction=d).effects().values,
    "parallel.over_pairs eap": lambda m, c, x, met, d: parallel.over_pairs(
        eap, m, [(c, x)], met, ig_steps=2, direction=d, level="message").scores,
}


@pytest.mark.parametrize("direction", ["denoising", "noising"])
@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_field_target_is_read_from_the_clean_graph(pair, name, direction):
    model, clean, corrupted = pair
    by_field = RUNS[name](model, clean, corrupted, PointerLogProb("pi"), direction)
    by_tensor = RUNS[name](model, clean, corrupted, PointerLogProb(target=clean["pi"].clone()), direction)
    scale = float(by_tensor.abs().max()) + 1e-3
    torch.testing.assert_close(by_field.double(), by_tensor.double(), rtol=1e-5, atol=1e-6 * scale)


def test_faithfulness_curve_and_audit_read_clean_targets(pair):
    model, clean, corrupted = pair
    universe = [Component("layers.1.hook_update", i) for i in range(6)]
    ranked = universe[::-1]
    field, tensor = PointerLogProb("pi"), PointerLogProb(target=clean["pi"].clone())
    curve = lambda met: faithfulness_curve(model, clean, corrupted, met, ranked, [1, 3], universe)  # noqa: E731
    torch.testing.assert_close(curve(field), curve(tensor))
    hooks = ["layers.1.hook_update"]

    def run(met):
        est = attribute(model, clean, corrupted, met).rows(hooks)
        exact = patch(model, clean, corrupted, met, nodes(model, "update", [1]))
        return audit(model, clean, corrupted, met, est, exact, k=3, warn_below=-2.0)

    a, b = run(field), run(tensor)
    assert (a.size_exact, a.size_estimate, a.k) == (b.size_exact, b.size_estimate, b.k)
    assert a.spearman == pytest.approx(b.spearman) and a.recall_at_k == pytest.approx(b.recall_at_k)


@pytest.mark.parametrize("direction", ["denoising", "noising"])
def test_sweep_baseline_is_the_unpatched_base_run_against_clean_targets_by_hand(pair, direction):
    """Denoising and noising score the same targets: the denoising baseline is the corrupted run and the
    noising baseline the clean run, each against the clean graph's pointers (computed by hand)."""
    model, clean, corrupted = pair
    base = corrupted if direction == "denoising" else clean
    with torch.no_grad():
        logits = model(base)["pi"]
    want = _hand_log_prob(logits, clean["pi"], clean.edge_index, clean.num_nodes)
    got = patch(model, clean, corrupted, PointerLogProb("pi"), nodes(model, "update"), direction=direction)
    assert got.baseline == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_clean_graph_of_another_structure_raises_naming_the_field(pair):
    model, clean, _ = pair
    other = Graph(x=torch.zeros(3, 2), edge_index=torch.tensor([[0, 1, 2], [1, 2, 0]]),
                  fields={"pi": Field(torch.ones(3), "edge")})
    metric = clean_targets(PointerLogProb("pi"), clean)
    with pytest.raises(ValueError, match=r"field 'pi'.*\(18,\)"):
        metric({"pi": torch.zeros(3)}, other)
    rewired = clean.replace(edge_index=clean.edge_index.flip(0))
    with pytest.raises(ValueError, match="structure row for row"):
        metric({"pi": torch.zeros(clean.num_edges)}, rewired)


def test_clean_targets_tile_over_copies_and_do_not_nest(pair):
    _, clean, corrupted = pair
    metric = clean_targets(clean_targets(PointerLogProb("pi"), corrupted), clean)
    assert metric.metric == PointerLogProb("pi") and metric.clean is clean
    logits = torch.randn(clean.num_edges)
    batch = Graph.collate([corrupted] * 3)
    got = metric({"pi": logits.repeat(3)}, batch)
    want = _hand_log_prob(logits, clean["pi"], clean.edge_index, clean.num_nodes)
    torch.testing.assert_close(got.double(), torch.full((3,), want, dtype=torch.float64), rtol=1e-5, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(clean=batches(max_graphs=3, max_nodes=5, max_edges=8), copies=st.integers(1, 3), steps=st.integers(1, 3))
def test_clean_fields_tiled_over_copies_equal_the_collated_clean_graphs(clean, copies, steps):
    """Empty graphs, isolated nodes, self-loops, multi-edges: the fields a metric sees on ``copies`` copies of
    the corrupted run are those of ``copies`` collated clean graphs (time-major fields included)."""
    gen = torch.Generator().manual_seed(copies * 10 + steps)
    clean = clean.with_fields(
        e=Field(torch.rand(clean.num_edges, 2, generator=gen), "edge"),
        v=Field(torch.rand(steps, clean.num_nodes, generator=gen), "node", time=True),
        g=Field(torch.rand(clean.num_graphs, generator=gen), "graph"))
    corrupted = clean.replace(x=clean.x + 1, fields={k: Field(f.value + 1, f.location, f.time)
                                                     for k, f in clean.fields.items()})
    run = Graph.collate([corrupted] * copies)
    got = with_clean_fields(run, clean)
    want = Graph.collate([clean] * copies)
    assert torch.equal(got.x, run.x) and torch.equal(got.edge_index, run.edge_index)
    assert set(got.fields) == set(want.fields)
    for name, f in want.fields.items():
        assert (got.fields[name].location, got.fields[name].time) == (f.location, f.time)
        assert torch.equal(got[name], f.value), name
