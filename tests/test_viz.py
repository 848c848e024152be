"""Figures: the drawn artists match what they were built from (cells, arrows, colours, widths,
colour scales, labels), checked against the inputs recomputed by hand, not against pixels."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from handbuilt import random_instance
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.colors import to_hex, to_rgba
from matplotlib.patches import Circle
from matplotlib.text import Annotation
from strategies import graphs

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hookgnn.graph import Graph  # noqa: E402
from hookgnn.patching import Component, HookScores, MessageEdge, WeightEdge  # noqa: E402
from hookgnn.viz import plot_message_circuit, plot_neuron_circuit, plot_scores  # noqa: E402

RED, BLUE, GREY = "#b2182b", "#2166ac", "#7f7f7f"
HOOKS = ("layers.0.hook_update", "layers.1.hook_update", "layers.2.hook_update")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def arrows(ax) -> dict[str, Annotation]:  # noqa: ANN001
    return {a.get_gid(): a for a in ax.texts if isinstance(a, Annotation) and a.arrow_patch is not None}


def expected_width(score: float, top: float) -> float:
    return 0.8 + 3.2 * abs(score) / top


def small_graph() -> Graph:
    """0->1, 1->1 (self-loop), 1->2 twice (parallel), 2->0."""
    return Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1, 1, 1, 2], [1, 1, 2, 2, 0]]))


# ---------------------------------------------------------------- heatmaps

def test_sweep_heatmap_has_one_cell_per_score_with_the_scores_values():
    torch.manual_seed(0)
    values = torch.randn(3, 5)
    fig = plot_scores(HookScores(values, HOOKS, ("round", "node"), baseline=0.5))
    image = fig.axes[0].images[0]
    torch.testing.assert_close(torch.as_tensor(image.get_array().data), values.double(), rtol=1e-6, atol=1e-7)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [f"{t}: hook_update" for t in range(3)]


def test_signed_effects_use_a_symmetric_scale_with_white_at_zero():
    values = torch.tensor([[0.5, -2.0, 1.0]])
    image = plot_scores(HookScores(values, HOOKS[:1], ("round", "node"), baseline=0.0)).axes[0].images[0]
    assert image.get_clim() == pytest.approx((-2.0, 2.0))
    assert to_rgba(image.cmap(image.norm(0.0))) == pytest.approx((1.0, 1.0, 1.0, 1.0), abs=0.01)


@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_one_signed_effects_use_a_sequential_scale_from_white_at_zero(sign: float):
    values = sign * torch.tensor([[0.0, 3.0, 1.5]])
    image = plot_scores(HookScores(values, HOOKS[:1], ("round", "node"), baseline=0.0)).axes[0].images[0]
    assert image.get_clim() == pytest.approx(tuple(sorted((0.0, 3.0 * sign))))
    assert to_rgba(image.cmap(image.norm(0.0))) == pytest.approx((1.0, 1.0, 1.0, 1.0), abs=0.01)
    far = to_hex(image.cmap(image.norm(3.0 * sign)))
    assert far == (RED if sign > 0 else BLUE)


def test_panels_share_one_scale_when_asked_and_each_has_a_colorbar():
    a = HookScores(torch.tensor([[0.1, -0.2], [0.0, 0.3]]), HOOKS[:2], ("round", "node"), baseline=0.0)
    b = HookScores(torch.tensor([[4.0, -1.0]]), HOOKS[:1], ("round", "node"), baseline=0.0)
    fig = plot_scores({"small": a, "large": b}, share_scale=True)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    assert all(im.get_clim() == pytest.approx((-4.0, 4.0)) for im in images)
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 2
    assert all(cb.get_ylim() == pytest.approx((-4.0, 4.0)) for cb in colorbars)
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["small  ±4", "large  ±4"]


def test_each_panel_has_its_own_scale_by_default_printed_in_its_title():
    torch.manual_seed(0)
    exact = torch.randn(3, 6) * 0.01
    overshoot = torch.randn(3, 6) * 0.5  # an estimate ~50x the exact effects
    only_negative = -torch.rand(2, 6)
    panels = {name: HookScores(v, HOOKS[:v.shape[0]], ("round", "node"), baseline=0.0)
              for name, v in (("exact", exact), ("EAP-IG", overshoot), ("neg", only_negative))}
    fig = plot_scores(panels)
    images = {ax.get_title().split()[0]: ax.images[0] for ax in fig.axes if ax.images}
    assert list(images) == ["exact", "EAP-IG", "neg"]
    for name, v in (("exact", exact), ("EAP-IG", overshoot)):
        lim = v.abs().max().item()  # both signs occur: symmetric about 0, at the panel's own max |score|
        assert images[name].get_clim() == pytest.approx((-lim, lim), rel=1e-6)
    neg_lim = only_negative.abs().max().item()
    assert images["neg"].get_clim() == pytest.approx((-neg_lim, 0.0), rel=1e-6)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == [f"exact  ±{exact.abs().max().item():.3g}", f"EAP-IG  ±{overshoot.abs().max().item():.3g}",
                      f"neg  [{-neg_lim:.3g}, 0]"]
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert [cb.get_ylim() for cb in colorbars] == [pytest.approx(im.get_clim()) for im in images.values()]


def test_edge_columns_are_labelled_u_to_v_from_the_graph():
    g = small_graph()
    src, dst = g.edge_index.tolist()
    fig = plot_scores(HookScores(torch.ones(1, 5), HOOKS[:1], ("round", "edge"), baseline=0.0), graph=g)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [f"{u}->{v}" for u, v in zip(src, dst)]


def test_heatmap_rejects_a_graph_with_other_edges_and_non_finite_effects():
    with pytest.raises(ValueError, match="5 edges but the scores have 4 edge columns"):
        plot_scores(HookScores(torch.ones(1, 4), HOOKS[:1], ("round", "edge"), baseline=0.0), graph=small_graph())
    with pytest.raises(ValueError, match="not finite"):
        plot_scores(HookScores(torch.tensor([[1.0, float("nan")]]), HOOKS[:1], ("round", "node"), baseline=0.0))


def test_caption_is_printed_under_the_figure():
    fig = plot_scores(HookScores(torch.ones(1, 2), HOOKS[:1], ("round", "node"), baseline=0.0),
                      caption="quick setting: numbers differ from the text")
    assert [t.get_text() for t in fig.texts] == ["quick setting: numbers differ from the text"]


# ---------------------------------------------------------------- message circuits

def test_message_circuit_draws_every_message_unrolled_with_colour_and_width_by_effect():
    g = small_graph()
    # the same edge in two rounds, a self-loop, and two parallel edges in one round
    circuit = [MessageEdge(0, 0, 0, 1), MessageEdge(1, 0, 0, 1), MessageEdge(1, 1, 1, 1),
               MessageEdge(2, 2, 1, 2), MessageEdge(2, 3, 1, 2)]
    effects = [0.5, -2.0, 1.0, -0.25, 0.0]
    scores = dict(zip(circuit, effects))
    fig = plot_message_circuit(g, circuit, scores, query=2, sources=[0])
    drawn = arrows(fig.axes[0])
    assert set(drawn) == {f"t{m.round}:{m.u}->{m.v}#{m.edge}" for m in circuit}
    for m, s in scores.items():
        a = drawn[f"t{m.round}:{m.u}->{m.v}#{m.edge}"]
        assert a.xy == (m.round + 1, m.v) and a.xyann == (m.round, m.u)  # rows are nodes 0..2 in order
        assert to_hex(a.arrow_patch.get_edgecolor()) == (RED if s > 0 else BLUE if s < 0 else GREY)
        assert a.arrow_patch.get_linewidth() == pytest.approx(expected_width(s, 2.0))
    loop = drawn["t1:1->1#1"]
    assert loop.xy[1] == loop.xyann[1]  # a self-loop is a horizontal arrow
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["effect > 0", "effect < 0", "query", "source"]
    marks = {c.get_gid(): c.get_offsets().tolist() for c in fig.axes[0].collections if c.get_gid()}
    assert marks == {"query": [[3.0, 2.0]], "source": [[0.0, 0.0]]}


def test_graph_panel_draws_each_message_once_upright_and_coloured_by_round():
    g = small_graph()
    circuit = [MessageEdge(0, 0, 0, 1), MessageEdge(1, 0, 0, 1), MessageEdge(1, 1, 1, 1), MessageEdge(2, 4, 2, 0)]
    fig = plot_message_circuit(g, circuit)
    panel = fig.axes[1]
    curved = arrows(panel)
    loops = [p for p in panel.patches if isinstance(p, Circle)]
    assert set(curved) | {p.get_gid() for p in loops} == {f"graph:t{m.round}:{m.u}->{m.v}#{m.edge}" for m in circuit}
    colours = {gid: to_hex(a.arrow_patch.get_edgecolor()) for gid, a in curved.items()}
    assert colours["graph:t0:0->1#0"] != colours["graph:t1:0->1#0"]  # two rounds on one edge: two colours
    bends = {a.arrow_patch.get_connectionstyle().rad for a in curved.values() if a.get_gid().endswith("0->1#0")}
    assert len(bends) == 2  # ... and two curves that do not lie on each other
    assert all(t.get_rotation() == 0 for t in panel.texts)


@settings(max_examples=12)
@given(g=graphs(max_nodes=6, max_edges=10, node_features=1, edge_features=None),
       picks=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 9), st.floats(-3, 3)), max_size=8))
def test_one_arrow_per_distinct_message_on_any_graph(g: Graph, picks: list[tuple[int, int, float]]):
    src, dst = g.edge_index.tolist()
    scores = {MessageEdge(t, e, src[e], dst[e]): s for t, e, s in picks if e < len(src)}
    fig = plot_message_circuit(g, list(scores), scores, ax=plt.subplots()[1])
    drawn = arrows(fig.axes[0])
    assert set(drawn) == {f"t{m.round}:{m.u}->{m.v}#{m.edge}" for m in scores}
    top = max((abs(s) for s in scores.values()), default=0.0)
    for m, s in scores.items():
        patch = drawn[f"t{m.round}:{m.u}->{m.v}#{m.edge}"].arrow_patch
        assert patch.get_linewidth() == pytest.approx(0.8 + (3.2 * abs(s) / top if top else 0.0))
    plt.close(fig)


def test_demo_like_chain_keeps_every_round():
    g, _, path, pedges = random_instance(seed=0)
    chain = [MessageEdge(t, e, path[t], path[t + 1]) for t, e in enumerate(pedges)]
    fig = plot_message_circuit(g, chain, {m: 1.0 + i for i, m in enumerate(chain)}, query=path[-1], sources=path[0])
    assert len(arrows(fig.axes[0])) == len(chain)


def test_message_circuit_rejects_messages_of_another_graph_and_missing_scores():
    g = small_graph()
    with pytest.raises(ValueError, match="edge 0 of the graph is 0->1, not 2->0"):
        plot_message_circuit(g, [MessageEdge(0, 0, 2, 0)])
    with pytest.raises(ValueError, match="no entry for 1 message"):
        plot_message_circuit(g, [MessageEdge(0, 0, 0, 1)], {})
    with pytest.raises(ValueError, match="query node 7 is not a node"):
        plot_message_circuit(g, [MessageEdge(0, 0, 0, 1)], query=7)


# ---------------------------------------------------------------- neuron circuits

def neuron_edges() -> list[WeightEdge]:
    a, b, c = "layers.0.hook_message_pre", "layers.0.hook_message", "layers.0.hook_aggregation"
    return [WeightEdge(Component(a, None, 0), Component(b, None, 0), "relu"),
            WeightEdge(Component(b, None, 0), Component(c, None, 0), "min"),
            WeightEdge(Component(a, None, 1), Component(b, None, 1), "relu")]


def test_neuron_circuit_draws_one_line_per_edge_and_a_dot_per_neuron():
    edges = neuron_edges()
    fig = plot_neuron_circuit(edges)
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    assert ax.collections[0].get_offsets().shape[0] == 5
    assert [t.get_text() for t in ax.get_xticklabels()] == [edges[0].src.hook, edges[0].dst.hook, edges[1].dst.hook]


def test_neuron_circuit_colour_and_width_follow_score_sign_and_size():
    edges = neuron_edges()
    scores = dict(zip(edges, [-4.0, 1.0, 2.0]))
    lines = {line.get_gid(): line for line in plot_neuron_circuit(edges, scores).axes[0].lines}
    for e, s in scores.items():
        line = lines[f"{e.src.hook}[{e.src.feature}]->{e.dst.hook}[{e.dst.feature}]"]
        assert line.get_color() == (RED if s > 0 else BLUE)
        assert line.get_linewidth() == pytest.approx(expected_width(s, 4.0))


def test_joint_circuit_colours_task_only_and_shared_edges_apart():
    edges = neuron_edges()
    groups = dict(zip(edges, ["Bellman-Ford", "shared", "BFS"]))
    scores = dict(zip(edges, [1.0, -1.0, 0.5]))
    ax = plot_neuron_circuit(edges, scores, groups=groups).axes[0]
    colour = {line.get_gid(): line.get_color() for line in ax.lines}
    style = {line.get_gid(): line.get_linestyle() for line in ax.lines}
    got = [colour[f"{e.src.hook}[{e.src.feature}]->{e.dst.hook}[{e.dst.feature}]"] for e in edges]
    assert got[1] == "k" and len(set(got)) == 3
    assert [style[f"{e.src.hook}[{e.src.feature}]->{e.dst.hook}[{e.dst.feature}]"] for e in edges] == ["-", "--", "-"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Bellman-Ford only", "BFS only", "shared",
                                                                   "score < 0"]
    with pytest.raises(ValueError, match="groups has no entry"):
        plot_neuron_circuit(edges, groups={edges[0]: "BFS"})
