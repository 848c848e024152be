"""The EAP-IG sums behind ``eap`` (``link_sums``), in every chunking, against the textbook formula
run graph by graph in plain PyTorch (float64) on a min-aggregation PyG network: per ``nn.Linear``
:math:`\\sum_r \\Delta u_{r,i}\\, \\bar g_{r,j}` and per message edge :math:`\\sum_f \\Delta x_{j,ef}\\,
\\bar g_{ef}`, for random batches with isolated nodes, edgeless graphs, self-loops and parallel edges
whose edges are not in graph order. The chunkings include base and source run once for several
chunks of IG copies, their differences cut per chunk."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_zoo import MinAggConv
from strategies import batches
from torch import nn

from hookgnn import Graph, from_pyg
from hookgnn.attribution.edge_sums import link_sums
from hookgnn.attribution.streamed import ig_alphas
from hookgnn.graph import Field
from hookgnn.metrics.per_graph import from_loss
from hookgnn.nn.wiring import links_of


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)
STEPS = 3


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([MinAggConv(2, 3, width=5), MinAggConv(3, 1, width=5)])  # MINAR's layer, narrower
        self.act = nn.ReLU()

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        return self.convs[1](self.act(self.convs[0](x, edge_index, edge_attr)), edge_index, edge_attr)


def textbook(net: Net, clean: Graph, corrupted: Graph, steps: int) -> tuple[dict, list, float]:
    """Graph by graph, step by step, in plain torch: per Linear ``du.T @ gbar`` ([in, out]), per round
    the message-edge scores ``sum_f dx_j * gbar`` at the batch's edge positions, and the base metric,
    all averaged over the graphs (the metric of a batch is the mean of its graphs' L1 errors)."""
    linears = {n: m for n, m in net.named_modules() if isinstance(m, nn.Linear)}
    per_linear = {n: torch.zeros(m.in_features, m.out_features, dtype=torch.float64) for n, m in linears.items()}
    per_edge = [torch.zeros(clean.num_edges, dtype=torch.float64) for _ in net.convs]
    base_metric = 0.0
    edge_graph = clean.batch[clean.edge_index[0]]
    ptr = clean.ptr.tolist()

    def run(x: torch.Tensor, ei: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, dict, dict, list]:
        ins, outs, xj = {}, {}, []

        def record(name: str):  # noqa: ANN202
            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                ins[name], outs[name] = inputs[0], output
            return hook

        def grab(module: nn.Module, inputs: tuple) -> tuple:
            kwargs = dict(inputs[0])
            t = kwargs["x_j"]
            kwargs["x_j"] = t if t.requires_grad or not torch.is_grad_enabled() else t.detach().requires_grad_()
            xj.append(kwargs["x_j"])
            return (kwargs,)

        hooks = [m.register_forward_hook(record(n)) for n, m in linears.items()]
        hooks += [conv.register_message_forward_pre_hook(grab) for conv in net.convs]
        try:
            return net(x, ei, e), ins, outs, xj
        finally:
            for h in hooks:
                h.remove()

    for i in range(clean.num_graphs):
        nodes = slice(ptr[i], ptr[i + 1])
        at = (edge_graph == i).nonzero().flatten()
        ei = clean.edge_index[:, at] - ptr[i]
        xb, xs = corrupted.x[nodes], clean.x[nodes]
        eb, es = corrupted.edge_attr[at], clean.edge_attr[at]
        target = clean["d"][nodes]
        with torch.no_grad():
            out, u_base, _, j_base = run(xb, ei, eb)
            base_metric += float((out.squeeze(-1) - target).abs().mean())
            _, u_src, _, j_src = run(xs, ei, es)
        gbar = {n: 0.0 for n in linears}
        jbar = [0.0 for _ in net.convs]
        for k in range(steps):
            a = (k + 0.5) / steps
            out, _, z, xj = run(xb + a * (xs - xb), ei, eb + a * (es - eb))
            grads = torch.autograd.grad((out.squeeze(-1) - target).abs().mean(), [z[n] for n in linears] + xj,
                                        allow_unused=True)
            for n, g in zip(linears, grads):
                gbar[n] = gbar[n] + g / steps
            for t, g in enumerate(grads[len(linears):]):
                jbar[t] = jbar[t] + (torch.zeros_like(xj[t]) if g is None else g) / steps
        for n in linears:
            per_linear[n] += (u_src[n] - u_base[n]).T @ gbar[n] / clean.num_graphs
        for t in range(len(net.convs)):
            per_edge[t][at] = ((j_src[t] - j_base[t]) * jbar[t]).sum(1) / clean.num_graphs
    return per_linear, per_edge, base_metric / clean.num_graphs


def _block(net: Net, link) -> tuple[str, int]:  # noqa: ANN001
    """(Linear, first input column) of a linear link: msg_mlp.0 reads [x_j, e_ij], upd_mlp.0 [aggr, x]."""
    linear = link.dst.removesuffix(".hook_out")
    conv = net.get_submodule(linear.rsplit(".", 2)[0])
    d_in, d_out = conv.msg_mlp[0].in_features - 1, conv.msg_mlp[2].out_features
    return linear, {"hook_edge_attr": d_in, "hook_input": d_out}.get(link.src.rsplit(".", 1)[-1], 0)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(min_graphs=2, max_graphs=3, min_nodes=1, max_nodes=5, max_edges=8, node_features=2,
                     edge_features=1, dtype=torch.float64),
       seed=st.integers(0, 3), chunking=st.sampled_from(["one graph, one step", "nested", "few graphs", "all"]))
def test_link_sums_equal_the_per_graph_textbook_loop_in_float64_in_any_chunking(batch, seed, chunking):
    # "nested": base and source of all graphs in one forward, the IG copies in several
    rows = {"one graph, one step": 1, "nested": 2 * (batch.num_nodes + batch.num_edges), "few graphs": 30,
            "all": 1 << 15}[chunking]
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(batch.num_edges, generator=gen)  # edges out of graph order: rows must go back
    clean = batch.replace(edge_index=batch.edge_index[:, perm], edge_attr=batch.edge_attr[perm]).with_fields(
        d=Field(torch.randn(batch.num_nodes, generator=gen, dtype=torch.float64), "node"))
    corrupted = clean.replace(x=torch.randn(clean.x.shape, generator=gen, dtype=torch.float64),
                              edge_attr=torch.randn(clean.edge_attr.shape, generator=gen, dtype=torch.float64))
    torch.manual_seed(seed)
    net = Net().double().eval()
    model = from_pyg(net, example=clean)
    links = [link for link in links_of(model, range(model.num_rounds)) if link.kind == "linear"]
    carriers = [model.round_hook("hook_src", t) for t in range(model.num_rounds)]
    metric = from_loss(F.l1_loss, target="d")
    got = link_sums(model, corrupted, clean, clean, metric, links, carriers, ig_alphas(STEPS), {}, rows)
    per_linear, per_edge, baseline = textbook(net, clean, corrupted, STEPS)

    def close(a: torch.Tensor, b: torch.Tensor) -> None:
        scale = float(b.abs().max()) if b.numel() else 0.0
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * max(scale, 1e-300))

    assert {_block(net, link)[0] for link in links} == set(per_linear)  # every Linear is scored
    for link, v in zip(links, got.links):
        linear, col = _block(net, link)
        close(v, per_linear[linear][col:col + v.shape[0]])
    for t, hook in enumerate(carriers):
        close(got.rows[hook], per_edge[t])
    assert got.baseline == pytest.approx(baseline, rel=1e-10, abs=1e-12)
