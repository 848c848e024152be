"""Hook points whose rows are a layer's own edge list (GCN's added self-loops, axis ``"none"``).

``Graph.collate`` of ``k`` copies and ``gcn_norm`` put every copy's edges first and then
every copy's self-loops, so the rows of such a hook do not come copy by copy. Batched
patching and EAP-IG must still give each copy its own rows: the references here run the
plain PyG network one graph at a time, with plain torch hooks (a message pre-hook on the
``x_j`` rows, a forward hook on each conv's output) and autograd.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from strategies import graphs
from torch import Tensor, nn

from hookgnn import Graph
from hookgnn.attribution import atp_star, attribute, eap
from hookgnn.circuits import Circuit, evaluate
from hookgnn.patching import Component, hooks, message_edges, messages, patch, patch_each

gnn = pytest.importorskip("torch_geometric.nn")
from torch_geometric.nn.conv.gcn_conv import gcn_norm  # noqa: E402

import hookgnn  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


class TwoGCN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([gnn.GCNConv(2, 4), gnn.GCNConv(4, 2)])

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.convs[1](torch.tanh(self.convs[0](x, edge_index)), edge_index)


def square_sum(out: Tensor, graph: Graph) -> Tensor:
    """Per graph, the sum of the squared outputs of its nodes (nonlinear: gradients differ along a path)."""
    per_node = (out ** 2).sum(1)
    return torch.zeros(graph.num_graphs, dtype=per_node.dtype).index_add_(0, graph.batch, per_node)


def setup(g: Graph) -> tuple[TwoGCN, object, Graph]:
    torch.manual_seed(0)
    raw = TwoGCN()
    corrupted = g.replace(x=g.x + 0.5 * torch.randn(g.x.shape, generator=torch.Generator().manual_seed(1)))
    return raw, hookgnn.from_pyg(raw, example=g), corrupted


# ------------------------------------------------------------ plain references
def plain_run(raw: TwoGCN, g: Graph, out_edit: dict | None = None, msg_edit: dict | None = None,
              record: dict | None = None) -> Tensor:
    """Metric of the plain network on one graph; ``out_edit[t]`` / ``msg_edit[t]``: ``{row: value}`` set
    in conv ``t``'s output / its ``x_j`` rows; ``record`` receives them (``("out", t)``, ``("msg", t)``)."""
    handles = []
    for t, conv in enumerate(raw.convs):
        def at_out(module, args, value, t=t):  # noqa: ANN001, ANN202
            value = value.clone()
            for r, v in (out_edit or {}).get(t, {}).items():
                value[r] = v
            if record is not None:
                record[("out", t)] = value
            return value

        def at_msg(module, inputs, t=t):  # noqa: ANN001, ANN202
            kwargs = dict(inputs[0])
            x_j = kwargs["x_j"].clone()
            for r, v in (msg_edit or {}).get(t, {}).items():
                x_j[r] = v
            if record is not None:
                record[("msg", t)] = x_j
            kwargs["x_j"] = x_j
            return (kwargs,)

        handles += [conv.register_forward_hook(at_out), conv.register_message_forward_pre_hook(at_msg)]
    try:
        return square_sum(raw(g.x, g.edge_index), g)
    finally:
        for h in handles:
            h.remove()


def plain_acts(raw: TwoGCN, g: Graph) -> dict:
    acts: dict = {}
    with torch.no_grad():
        plain_run(raw, g, record=acts)
    return acts


def self_loop_row(g: Graph, node: int) -> int:
    """The row of ``node``'s added self-loop in GCN's own edge list (PyG's ``gcn_norm``)."""
    own, _ = gcn_norm(g.edge_index, None, g.num_nodes, add_self_loops=True)
    rows = [r for r in range(own.shape[1]) if int(own[0, r]) == node == int(own[1, r])]
    return rows[-1]


def close(got: Tensor, want: Tensor) -> None:
    got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
    scale = float(want.abs().max()) if want.numel() else 0.0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * scale + 1e-6)


GRAPH = Graph(x=torch.randn(6, 2, generator=torch.Generator().manual_seed(2)),
              edge_index=torch.tensor([[0, 1, 2, 3, 4, 1, 5, 0], [1, 2, 3, 4, 5, 1, 0, 3]]))  # a self-loop at 1


# ------------------------------------------------------------ tests
@pytest.mark.parametrize("direction", ["denoising", "noising"])
def test_patch_each_self_loop_row_in_copy_2_matches_one_graph_at_a_time(direction: str) -> None:
    raw, model, corrupted = setup(GRAPH)
    base, src = (corrupted, GRAPH) if direction == "denoising" else (GRAPH, corrupted)
    src_hook = [model.round_hook("hook_src", t) for t in range(2)]
    assert model.hook_dict[src_hook[1]].axis == "none"
    loop = self_loop_row(GRAPH, 4)
    comps = [Component(model.output_hook(0), 1), Component(src_hook[0], 2), Component(src_hook[1], loop)]
    got = patch_each(model, GRAPH, corrupted, square_sum, comps, direction=direction)
    a = plain_acts(raw, src)
    with torch.no_grad():
        baseline = float(plain_run(raw, base))
        want = [float(plain_run(raw, base, out_edit={0: {1: a[("out", 0)][1]}})),
                float(plain_run(raw, base, msg_edit={0: {2: a[("msg", 0)][2]}})),
                float(plain_run(raw, base, msg_edit={1: {loop: a[("msg", 1)][loop]}}))]
    close(got, torch.tensor(want, dtype=torch.float64) - baseline)
    assert abs(want[2] - baseline) > 1e-4, "the self-loop patch changes nothing: the test could not fail"


@settings(max_examples=8)
@given(graphs(min_nodes=2, max_nodes=6, max_edges=8, node_features=2, edge_features=None))
def test_sweep_over_own_rows_matches_plain_loop(g: Graph) -> None:
    """Every row of both rounds' ``hook_src`` (graph edges, multi-edges, self-loops, added
    loops) patched alone, batched, against one plain forward per patch."""
    raw, model, corrupted = setup(g)
    names = [model.round_hook("hook_src", t) for t in range(2)]
    got = patch(model, g, corrupted, square_sum, hooks(model, names), copies=64)
    a = plain_acts(raw, g)
    rows = a[("msg", 0)].shape[0]
    assert got.values.shape == (2, rows)
    with torch.no_grad():
        baseline = float(plain_run(raw, corrupted))
        want = torch.tensor([[float(plain_run(raw, corrupted, msg_edit={t: {r: a[("msg", t)][r]}})) - baseline
                              for r in range(rows)] for t in range(2)])
    close(got.values, want)


@pytest.mark.parametrize("keep", ["all", "rows"])
def test_eap_ig_rows_of_own_edge_list_match_plain_autograd(keep: str) -> None:
    raw, model, corrupted = setup(GRAPH)
    names = [model.round_hook("hook_src", t) for t in range(2)]
    steps = 4
    a_base, a_src = plain_acts(raw, corrupted), plain_acts(raw, GRAPH)
    mean_grad = {t: torch.zeros_like(a_base[("msg", t)]) for t in range(2)}
    for k in range(steps):
        alpha = (k + 0.5) / steps
        g = corrupted.replace(x=corrupted.x + alpha * (GRAPH.x - corrupted.x))
        acts: dict = {}
        m = plain_run(raw, g, record=acts).sum()
        grads = torch.autograd.grad(m, [acts[("msg", t)] for t in range(2)])
        for t in range(2):
            mean_grad[t] += grads[t] / steps
    want = torch.stack([((a_src[("msg", t)] - a_base[("msg", t)]) * mean_grad[t]).sum(1) for t in range(2)])
    got = attribute(model, GRAPH, corrupted, square_sum, ig_steps=steps, names_filter=names, keep=keep)
    close(got.rows(names).values, want)
    assert want[1, self_loop_row(GRAPH, 4)].abs() > 1e-5


def test_graph_edge_messages_refused_where_rows_are_the_layers_own() -> None:
    """Graph edge ``e`` is not row ``e`` of GCN's own edge list (the graph's self-loop at 1 moves
    to the end): single graph-edge messages are refused, naming the hook and its axis."""
    raw, model, corrupted = setup(GRAPH)
    names = [model.round_hook("hook_src", t) for t in range(2)]
    edges = message_edges(GRAPH.edge_index, [1], model)
    calls = {
        "patch messages": lambda: patch(model, GRAPH, corrupted, square_sum, messages(model)),
        "messages of one round": lambda: messages(model, [1]),
        "atp_star": lambda: atp_star(model, GRAPH, corrupted, square_sum),
        "evaluate": lambda: evaluate(model, GRAPH, corrupted, square_sum, Circuit(), edges),
        "eap": lambda: eap(model, GRAPH, corrupted, square_sum, level="message"),
    }
    for what, call in calls.items():
        with pytest.raises(ValueError, match="axis 'none'.*own edge list") as e:
            call()
        assert any(str(e.value).startswith(f"{n} has axis") for n in names), what
    assert all(info.num_fwd == 0 and info.num_bwd == 0 for info in model.list_hooks())


def test_own_edge_list_of_the_same_length_is_not_taken_for_the_graphs_edges() -> None:
    """Every node already has a self-loop, so GCN's own edge list has as many rows as the
    graph has edges, but in another order (``gcn_norm`` moves the self-loops to the end):
    graph edge e is not row e, so message functions must refuse rather than score row e."""
    ei = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 0]])
    own, _ = gcn_norm(ei, None, 3, add_self_loops=True)
    assert own.shape == ei.shape and not torch.equal(own, ei)  # the premise: same count, other rows
    g = Graph(x=torch.randn(3, 2, generator=torch.Generator().manual_seed(2)), edge_index=ei)
    raw, hooked, corrupted = setup(g)
    assert hooked.hook_dict["convs.0.hook_src"].axis == "none"
    with pytest.raises(ValueError, match="axis 'none'.*own edge list"):
        patch(hooked, g, corrupted, square_sum, messages(hooked))
